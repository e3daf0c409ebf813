package wandbemu

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/scim/wandb"
)

// emailOut is how W&B's examples show a user's email: one object with capitalised keys, not a list.
type emailOut struct {
	Value   string `json:"Value"`
	Display string `json:"Display"`
	Type    string `json:"Type"`
	Primary bool   `json:"Primary"`
}

type userOut struct {
	Schemas  []string `json:"schemas"`
	ID       string   `json:"id"`
	UserName string   `json:"userName"`
	Active   bool     `json:"active"`
	Emails   emailOut `json:"emails"`
	// TeamRoles is how W&B shows the roles set by the teamRoles PATCH.
	TeamRoles []teamRole `json:"teamRoles,omitempty"`
	Meta      meta       `json:"meta"`
}

type teamRole struct {
	RoleName string `json:"roleName"`
	TeamName string `json:"teamName"`
}

type userIn struct {
	Schemas  []string `json:"schemas"`
	UserName string   `json:"userName"`
	Emails   emailsIn `json:"emails"`
	// Teams is W&B's teams extension, with which Multi-tenant Cloud creates users; raw, so that its
	// shape is checked where it matters.
	Teams json.RawMessage `json:"urn:ietf:params:scim:schemas:extension:teams:2.0:User"`
}

// teamsIn reads the teams extension of a POST /Users on Multi-tenant Cloud. W&B's "Create User Request
// (Multi-tenant)" (https://docs.wandb.ai/platform/hosting/iam/scim#create-user) sends
//
//	"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:teams:2.0:User"],
//	"urn:ietf:params:scim:schemas:extension:teams:2.0:User": {"teams": ["my-team"]}
//
// and answers with the user in those teams (teamRoles [{"teamName": "my-team", "roleName": "member"}]).
// Inferences, since the page only shows this shape: that W&B refuses the plain shape there (400), that
// an empty teams list is accepted, and that an unknown team is refused (400). It answers the error
// itself when it returns false.
func (s *Server) teamsIn(w http.ResponseWriter, in userIn) (teams []string, ok bool) {
	if !slices.Contains(in.Schemas, wandb.SchemaTeamsUser) {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "on Multi-tenant Cloud users are created with the teams extension: schemas must contain %s and %s", wandb.SchemaUser, wandb.SchemaTeamsUser)
		return nil, false
	}
	var ext struct {
		Teams *[]string `json:"teams"`
	}
	if len(in.Teams) == 0 || json.Unmarshal(in.Teams, &ext) != nil || ext.Teams == nil { // absent, null, or no teams list
		writeError(w, http.StatusBadRequest, "invalidValue", `on Multi-tenant Cloud the body must carry "%s": {"teams": ["<team name>", ...]}`, wandb.SchemaTeamsUser)
		return nil, false
	}
	return *ext.Teams, true
}

type emailIn struct {
	Value   string `json:"value"`
	Primary bool   `json:"primary"`
}

// emailsIn accepts a list of emails or, as W&B itself sends them, a single object.
type emailsIn []emailIn

func (e *emailsIn) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
		var one emailIn
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*e = emailsIn{one}
		return nil
	}
	return json.Unmarshal(b, (*[]emailIn)(e))
}

// primary returns the primary email, else the first.
func (e emailsIn) primary() string {
	for _, m := range e {
		if m.Primary {
			return m.Value
		}
	}
	if len(e) > 0 {
		return e[0].Value
	}
	return ""
}

func (s *Server) userOut(u *user) userOut {
	ts := u.created.Format(time.RFC3339)
	var roles []teamRole
	for _, t := range slices.Sorted(maps.Keys(u.teamRoles)) {
		roles = append(roles, teamRole{RoleName: u.teamRoles[t], TeamName: t})
	}
	schemas := []string{wandb.SchemaUser}
	if s.multiTenant() {
		schemas = append(schemas, wandb.SchemaTeamsUser) // as the page's "Create User Response (Multi-tenant)"
	}
	return userOut{
		TeamRoles: roles,
		Schemas:   schemas,
		ID:        u.id,
		UserName:  u.userName,
		Active:    true,
		Emails:    emailOut{Value: u.email, Primary: true},
		Meta:      meta{ResourceType: "User", Created: ts, LastModified: ts, Location: s.location("Users", u.id)},
	}
}

func (s *Server) usersCollection(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.listUsers(w, r)
	case http.MethodPost:
		s.createUser(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "", "%s is not supported on /Users", r.Method)
	}
}

func (s *Server) userItem(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		defer s.mu.Unlock()
		u := s.userByID(r.PathValue("id"))
		if u == nil {
			writeError(w, http.StatusNotFound, "", "user %s not found", r.PathValue("id"))
			return
		}
		writeJSON(w, http.StatusOK, s.userOut(u))
	case http.MethodPatch:
		s.patchUser(w, r)
	case http.MethodDelete:
		// W&B has it; the agent never deletes users, so the emulator says so instead of guessing.
		writeError(w, http.StatusNotImplemented, "", "%s /Users/{id} is not emulated", r.Method)
	default:
		w.Header().Set("Allow", "GET, PATCH, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "", "%s is not supported on /Users/{id}", r.Method)
	}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	var match func(*user) bool
	if f := r.URL.Query().Get("filter"); f != "" {
		attr, value, err := parseEqFilter(f, "userName", "emails.value")
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalidFilter", "%v", err)
			return
		}
		match = func(u *user) bool {
			if attr == "userName" {
				return strings.EqualFold(u.userName, value)
			}
			return strings.EqualFold(u.email, value)
		}
	}
	start, count, err := s.paging(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalidValue", "%v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	serveList(w, start, count, s.users, match, s.userOut)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var in userIn
	if !decodeBody(w, r, &in) {
		return
	}
	email := in.Emails.primary()
	switch {
	case !slices.Contains(in.Schemas, wandb.SchemaUser):
		writeError(w, http.StatusBadRequest, "invalidSyntax", "schemas must contain %s", wandb.SchemaUser)
		return
	case in.UserName == "":
		writeError(w, http.StatusBadRequest, "invalidValue", "userName is required")
		return
	case email == "":
		writeError(w, http.StatusBadRequest, "invalidValue", "emails must hold an email address")
		return
	}
	// Dedicated and Self-Managed take the plain shape (the page's "Create User Request
	// (Dedicated/Self-Managed)"); a teams extension sent there is ignored (inference).
	var teams []string
	if s.multiTenant() {
		var ok bool
		if teams, ok = s.teamsIn(w, in); !ok {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.userName, in.UserName) || strings.EqualFold(u.email, email) {
			writeError(w, http.StatusConflict, "uniqueness", "user %q already exists", in.UserName)
			return
		}
	}
	var joins []*group
	for _, name := range teams {
		g := s.groupByName(name)
		if g == nil {
			writeError(w, http.StatusBadRequest, "invalidValue", "team %q not found", name)
			return
		}
		joins = append(joins, g)
	}
	u := s.addUserLocked(in.UserName, email)
	for _, g := range joins {
		if !slices.ContainsFunc(g.Members, func(m wandb.Member) bool { return m.Value == u.id }) {
			s.setMembersLocked(g, append(slices.Clone(g.Members), wandb.Member{Value: u.id, Display: u.userName}))
		}
		if u.teamRoles == nil {
			u.teamRoles = map[string]string{}
		}
		u.teamRoles[g.DisplayName] = "member"
	}
	if loc := s.location("Users", u.id); loc != "" {
		w.Header().Set("Location", loc)
	}
	writeJSON(w, http.StatusCreated, s.userOut(u))
}

func (s *Server) userByID(id string) *user {
	for _, u := range s.users {
		if u.id == id {
			return u
		}
	}
	return nil
}

func (s *Server) userByIDOrEmail(v string) *user {
	for _, u := range s.users {
		if u.id == v || strings.EqualFold(u.email, v) {
			return u
		}
	}
	return nil
}

// patchUser applies the teamRoles PATCH, all operations or none. Other user attributes (active,
// organizationRole, ...) exist in W&B but the agent never changes them: the emulator says so.
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) {
	in, ok := decodePatch(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByID(r.PathValue("id"))
	if u == nil {
		writeError(w, http.StatusNotFound, "", "user %s not found", r.PathValue("id"))
		return
	}
	roles := maps.Clone(u.teamRoles)
	if roles == nil {
		roles = map[string]string{}
	}
	for i, op := range in.Operations {
		if !strings.EqualFold(op.Path, "teamRoles") {
			writeError(w, http.StatusNotImplemented, "", "operation %d: path %q is not emulated (only teamRoles is)", i, op.Path)
			return
		}
		if !strings.EqualFold(op.Op, "replace") {
			writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: teamRoles takes op replace, not %q", i, op.Op)
			return
		}
		var value []teamRole
		if err := json.Unmarshal(op.Value, &value); err != nil || len(value) == 0 {
			writeError(w, http.StatusBadRequest, "invalidValue", `operation %d: teamRoles takes a non-empty list of {"roleName": ..., "teamName": ...}`, i)
			return
		}
		for _, tr := range value {
			// teamRoles takes admin, member, viewer or a custom role's name ("automate IAM",
			// https://docs.wandb.ai/platform/hosting/iam/automate_iam). That an unknown name is refused
			// with 400, and that predefined names are case-insensitive, are inferences.
			role := strings.ToLower(tr.RoleName)
			if !slices.Contains([]string{"admin", "member", "viewer"}, role) {
				if !slices.Contains(s.opts.CustomRoles, tr.RoleName) {
					writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: role %q does not exist (admin, member, viewer or a custom role)", i, tr.RoleName)
					return
				}
				role = tr.RoleName
			}
			g := s.groupByName(tr.TeamName)
			if g == nil {
				writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: team %q not found", i, tr.TeamName)
				return
			}
			if !slices.ContainsFunc(g.Members, func(m wandb.Member) bool { return m.Value == u.id }) {
				writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: user %s is not a member of team %q", i, u.id, tr.TeamName)
				return
			}
			roles[tr.TeamName] = role
		}
	}
	u.teamRoles = roles
	writeJSON(w, http.StatusOK, s.userOut(u))
}
