package wandbemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/byob-agent/byob-agent/scim/wandb"
)

// memberOut is a member as W&B's own examples show it: capitalised keys.
type memberOut struct {
	Value   string `json:"Value"`
	Ref     string `json:"Ref"`
	Type    string `json:"Type"`
	Display string `json:"Display"`
}

// groupOut is a team as W&B answers it: no storageBucket, "members": null when empty.
type groupOut struct {
	Schemas     []string    `json:"schemas"`
	ID          string      `json:"id"`
	DisplayName string      `json:"displayName"`
	Members     []memberOut `json:"members"`
	Meta        meta        `json:"meta"`
}

// groupIn is a POST or PUT body. Pointers tell "absent" from "empty".
type groupIn struct {
	Schemas       []string             `json:"schemas"`
	DisplayName   *string              `json:"displayName"`
	Members       []memberIn           `json:"members"`
	StorageBucket *wandb.StorageBucket `json:"storageBucket"`
}

type memberIn struct {
	Value string `json:"value"`
}

func (s *Server) groupOut(g *group) groupOut {
	out := groupOut{
		Schemas:     []string{wandb.SchemaGroup},
		ID:          g.ID,
		DisplayName: g.DisplayName,
		Meta: meta{
			ResourceType: "Group",
			Created:      g.created.Format(time.RFC3339),
			LastModified: g.modified.Format(time.RFC3339),
			Location:     s.location("Groups", g.ID),
			Version:      g.etag(),
		},
	}
	for _, m := range g.Members {
		out.Members = append(out.Members, memberOut{Value: m.Value, Display: m.Display})
	}
	return out
}

// ETags. W&B documents them in "ETag Support" (https://docs.wandb.ai/platform/hosting/iam/scim#etag-support):
// "ETags are returned in the ETag response header and the meta.version field"; its example shows a weak
// ETag (ETag: W/"xyz123") sent back as If-Match on a PATCH; "A 412 Precondition Failed error response
// indicates that the resource has been modified since you retrieved it" (also in the page's error table:
// "412 Precondition Failed - ETag mismatch"). The emulator sends the header on every single-team answer
// (GET, POST, PATCH, PUT of a team) and meta.version everywhere, lists included.
// Inferences, since the page does not say:
//   - the value: W/"<n>", n a per-team counter; it changes when the member list changes, and only then;
//   - If-Match is honoured on PATCH and PUT of /Groups/{id} (the page's example is a PATCH of a user);
//     "*" matches any team, a list matches if one entry does, and W/ is ignored when comparing (as
//     RFC 7644 3.14 does, which sends weak ETags in If-Match);
//   - a request without If-Match is applied unconditionally (the page presents ETags as opt-in: "To use
//     ETags"; RFC 7644 3.14 makes versioning optional).

// etag is the team's current ETag.
func (g *group) etag() string { return `W/"` + strconv.Itoa(g.version) + `"` }

// changed records that the team's members changed: a new lastModified and a new ETag.
func (g *group) changed() {
	g.modified = time.Now().UTC()
	g.version++
}

// ifMatch reports whether the request's If-Match, if any, matches the team's current ETag.
func ifMatch(r *http.Request, g *group) bool {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return true
	}
	opaque := func(tag string) string { return strings.TrimPrefix(strings.TrimSpace(tag), "W/") }
	current := opaque(g.etag())
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			if t := strings.TrimSpace(tag); t == "*" || opaque(t) == current {
				return true
			}
		}
	}
	return false
}

// preconditionFailed answers a PATCH or PUT whose If-Match does not match: 412 with a SCIM error.
func preconditionFailed(w http.ResponseWriter, r *http.Request, g *group) {
	w.Header().Set("ETag", g.etag())
	writeError(w, http.StatusPreconditionFailed, "", "If-Match %q does not match the current version %s of team %q: it changed since it was read",
		strings.Join(r.Header.Values("If-Match"), ", "), g.etag(), g.DisplayName)
}

// writeGroup answers with one team and its ETag header.
func (s *Server) writeGroup(w http.ResponseWriter, status int, g *group) {
	w.Header().Set("ETag", g.etag())
	writeJSON(w, status, s.groupOut(g))
}

func (s *Server) groupsCollection(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.listGroups(w, r)
	case http.MethodPost:
		s.createGroup(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "", "%s is not supported on /Groups", r.Method)
	}
}

func (s *Server) groupItem(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.getGroup(w, r)
	case http.MethodPatch:
		s.patchGroup(w, r)
	case http.MethodPut:
		s.putGroup(w, r)
	default:
		// W&B has no DELETE /Groups/{id}: teams cannot be deleted through SCIM.
		w.Header().Set("Allow", "GET, PATCH, PUT")
		writeError(w, http.StatusMethodNotAllowed, "", "%s is not supported on /Groups/{id}: W&B teams cannot be deleted or otherwise changed through SCIM", r.Method)
	}
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	var match func(*group) bool
	if f := r.URL.Query().Get("filter"); f != "" {
		_, value, err := parseEqFilter(f, "displayName") // the only group filter W&B documents
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalidFilter", "%v", err)
			return
		}
		match = func(g *group) bool { return g.DisplayName == value }
	}
	start, count, err := s.paging(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalidValue", "%v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	serveList(w, start, count, s.groups, match, s.groupOut)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupByID(r.PathValue("id"))
	if g == nil {
		writeError(w, http.StatusNotFound, "", "team %s not found", r.PathValue("id"))
		return
	}
	s.writeGroup(w, http.StatusOK, g)
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	var in groupIn
	if !decodeBody(w, r, &in) {
		return
	}
	if !slices.Contains(in.Schemas, wandb.SchemaGroup) {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "schemas must contain %s", wandb.SchemaGroup)
		return
	}
	if in.DisplayName == nil || *in.DisplayName == "" {
		writeError(w, http.StatusBadRequest, "invalidValue", "displayName is required")
		return
	}
	// members is marked required on POST /Groups (an empty list is fine):
	// https://docs.wandb.ai/platform/hosting/iam/scim, "Create team". The status of a body without it is
	// not documented; 400 is an inference.
	if in.Members == nil {
		writeError(w, http.StatusBadRequest, "invalidValue", "members is required (an empty list is fine)")
		return
	}
	name := *in.DisplayName
	if err := validTeamName(name); err != "" {
		writeError(w, http.StatusBadRequest, "invalidValue", "displayName %q is not a valid team name: %s", name, err)
		return
	}
	if sb := in.StorageBucket; sb != nil {
		if !slices.Contains(wandb.Providers, sb.Provider) {
			writeError(w, http.StatusBadRequest, "invalidValue", "storageBucket.provider %q is invalid: allowed values are %s", sb.Provider, strings.Join(wandb.Providers, ", "))
			return
		}
		// Multi-tenant Cloud offers team-level storage on CoreWeave, AWS and GCS only
		// (https://docs.wandb.ai/platform/hosting/data-security/secure-storage-connector, availability
		// table). The error W&B returns is not documented; 400 is an inference.
		if s.multiTenant() && (sb.Provider == "AZURE" || sb.Provider == "MINIO") {
			writeError(w, http.StatusBadRequest, "invalidValue", "storageBucket.provider %q is not available on Multi-tenant Cloud", sb.Provider)
			return
		}
		if sb.Name == "" {
			writeError(w, http.StatusBadRequest, "invalidValue", "storageBucket.name is required")
			return
		}
	}
	s.mu.Lock()
	members, bad := s.resolveMembersLocked(in.Members)
	exists := s.groupByName(name) != nil
	s.mu.Unlock()
	switch {
	case bad != "":
		writeError(w, http.StatusBadRequest, "invalidValue", "member %q: no such user", bad)
		return
	case exists:
		writeError(w, http.StatusConflict, "uniqueness", "team %q already exists", name)
		return
	}
	// Like W&B, check the bucket before creating anything; outside the lock since it does I/O.
	if sb := in.StorageBucket; sb != nil && s.opts.Checker != nil {
		if err := s.opts.Checker.CheckBucket(r.Context(), *sb); err != nil {
			writeError(w, http.StatusBadRequest, "invalidValue", "storage bucket %q (%s) failed W&B's check, team not created: %v", sb.Name, sb.Provider, err)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groupByName(name) != nil { // created by a concurrent request while the bucket was checked
		writeError(w, http.StatusConflict, "uniqueness", "team %q already exists", name)
		return
	}
	s.nextGroup++
	now := time.Now().UTC()
	g := &group{EmuGroup: EmuGroup{ID: opaqueID("Group", s.nextGroup), DisplayName: name, Members: s.withServiceAccountsLocked(members)}, created: now, modified: now, version: 1}
	if in.StorageBucket != nil {
		sb := *in.StorageBucket
		g.StorageBucket = &sb
	}
	s.groups = append(s.groups, g)
	if loc := s.location("Groups", g.ID); loc != "" {
		w.Header().Set("Location", loc)
	}
	s.writeGroup(w, http.StatusCreated, g)
}

// putGroup replaces the member list. displayName and storageBucket may be repeated but not changed.
func (s *Server) putGroup(w http.ResponseWriter, r *http.Request) {
	var in groupIn
	if !decodeBody(w, r, &in) {
		return
	}
	if !slices.Contains(in.Schemas, wandb.SchemaGroup) {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "schemas must contain %s", wandb.SchemaGroup)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupByID(r.PathValue("id"))
	switch {
	case g == nil:
		writeError(w, http.StatusNotFound, "", "team %s not found", r.PathValue("id"))
		return
	case !ifMatch(r, g):
		preconditionFailed(w, r, g)
		return
	case in.DisplayName != nil && *in.DisplayName != g.DisplayName:
		writeError(w, http.StatusBadRequest, "mutability", "displayName cannot be changed (team %q)", g.DisplayName)
		return
	case in.StorageBucket != nil && (g.StorageBucket == nil || *in.StorageBucket != *g.StorageBucket):
		writeError(w, http.StatusBadRequest, "mutability", "storageBucket of team %q is immutable: storage cannot be changed after the team is created", g.DisplayName)
		return
	}
	members, bad := s.resolveMembersLocked(in.Members)
	if bad != "" {
		writeError(w, http.StatusBadRequest, "invalidValue", "member %q: no such user", bad)
		return
	}
	if sa := s.serviceAccountIn(members); sa != "" {
		writeError(w, http.StatusBadRequest, "invalidValue", "member %q is a service account: member operations are for users only", sa)
		return
	}
	s.setMembersLocked(g, s.keepServiceAccounts(g.Members, members))
	s.writeGroup(w, http.StatusOK, g)
}

type patchIn struct {
	Schemas    []string `json:"schemas"`
	Operations []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	} `json:"Operations"`
}

// decodePatch reads a PatchOp request with at least one operation, answering the error itself when
// it returns false.
func decodePatch(w http.ResponseWriter, r *http.Request) (patchIn, bool) {
	var in patchIn
	if !decodeBody(w, r, &in) {
		return in, false
	}
	if !slices.Contains(in.Schemas, wandb.SchemaPatchOp) {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "schemas must contain %s", wandb.SchemaPatchOp)
		return in, false
	}
	if len(in.Operations) == 0 {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "Operations is empty")
		return in, false
	}
	return in, true
}

// patchGroup applies membership changes in the forms docs/wandb.md lists, all or nothing.
func (s *Server) patchGroup(w http.ResponseWriter, r *http.Request) {
	in, ok := decodePatch(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupByID(r.PathValue("id"))
	if g == nil {
		writeError(w, http.StatusNotFound, "", "team %s not found", r.PathValue("id"))
		return
	}
	if !ifMatch(r, g) {
		preconditionFailed(w, r, g)
		return
	}
	members := slices.Clone(g.Members)
	for i, op := range in.Operations {
		attr, filter, hasFilter, perr := parsePatchPath(op.Path)
		switch {
		case perr != nil:
			writeError(w, http.StatusBadRequest, "invalidPath", "operation %d: %v", i, perr)
			return
		case touchesImmutable(attr, op.Value):
			writeError(w, http.StatusBadRequest, "mutability", "operation %d: displayName and storageBucket cannot be changed; PATCH changes team membership only", i)
			return
		case !strings.EqualFold(attr, "members"):
			writeError(w, http.StatusBadRequest, "invalidPath", "operation %d: path %q is not supported: PATCH changes team membership only", i, op.Path)
			return
		}
		switch strings.ToLower(op.Op) {
		case "add":
			var add []memberIn
			if hasFilter || json.Unmarshal(op.Value, &add) != nil || len(add) == 0 {
				writeError(w, http.StatusBadRequest, "invalidValue", `operation %d: add takes path "members" and a non-empty list of {"value": "<user id or email>"}`, i)
				return
			}
			resolved, bad := s.resolveMembersLocked(add)
			if bad != "" {
				writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: member %q: no such user", i, bad)
				return
			}
			if sa := s.serviceAccountIn(resolved); sa != "" {
				writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: member %q is a service account: member operations are for users only", i, sa)
				return
			}
			for _, m := range resolved {
				if !slices.ContainsFunc(members, func(x wandb.Member) bool { return x.Value == m.Value }) {
					members = append(members, m)
				}
			}
		case "replace":
			// "replace" on members is among the supported PATCH operations
			// (https://docs.wandb.ai/platform/hosting/iam/scim, "Patch team"): the list becomes value.
			var repl []memberIn
			if hasFilter || json.Unmarshal(op.Value, &repl) != nil {
				writeError(w, http.StatusBadRequest, "invalidValue", `operation %d: replace takes path "members" and a list of {"value": "<user id or email>"}`, i)
				return
			}
			resolved, bad := s.resolveMembersLocked(repl)
			if bad != "" {
				writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: member %q: no such user", i, bad)
				return
			}
			if sa := s.serviceAccountIn(resolved); sa != "" {
				writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: member %q is a service account: member operations are for users only", i, sa)
				return
			}
			members = s.keepServiceAccounts(members, resolved)
		case "remove":
			if !hasFilter {
				members = s.keepServiceAccounts(members, nil)
				continue
			}
			u := s.userByIDOrEmail(filter)
			if u != nil && u.serviceAccount {
				writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: member %q is a service account: member operations are for users only", i, filter)
				return
			}
			members = slices.DeleteFunc(members, func(m wandb.Member) bool { return m.Value == filter || (u != nil && m.Value == u.id) })
		default:
			writeError(w, http.StatusBadRequest, "invalidValue", "operation %d: op %q is not supported on teams: use add, remove or replace (or PUT to replace all members)", i, op.Op)
			return
		}
	}
	s.setMembersLocked(g, members)
	s.writeGroup(w, http.StatusOK, g)
}

// setMembersLocked gives a team a new member list, and a new version when the list differs.
func (s *Server) setMembersLocked(g *group, members []wandb.Member) {
	if len(members) == 0 {
		members = nil // W&B answers "members": null once the list is empty
	}
	if !slices.Equal(members, g.Members) {
		g.changed()
	}
	g.Members = members
}

// touchesImmutable reports whether a patch operation targets displayName or storageBucket, by path
// or (for a path-less operation) by a key of its value object.
func touchesImmutable(attr string, value json.RawMessage) bool {
	immutable := func(k string) bool {
		k, _, _ = strings.Cut(k, ".")
		return strings.EqualFold(k, "displayName") || strings.EqualFold(k, "storageBucket")
	}
	if attr != "" {
		return immutable(attr)
	}
	var obj map[string]json.RawMessage
	_ = json.Unmarshal(value, &obj) // not an object: no immutable key, and the missing path is refused later
	for k := range obj {
		if immutable(k) {
			return true
		}
	}
	return false
}

// validTeamName applies W&B's documented rule, "lowercase letters, numbers and hyphens" (W&B support:
// https://docs.wandb.ai/support/create_team, inferred to apply to SCIM-created teams too); "" means
// valid. No length limit is documented.
func validTeamName(name string) string {
	for _, r := range name {
		switch {
		case unicode.IsSpace(r):
			return "team names cannot contain spaces"
		case unicode.IsUpper(r):
			return "team names must be lowercase"
		case !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'):
			return fmt.Sprintf("team names may contain lowercase letters, numbers and hyphens only, not %q", r)
		}
	}
	return ""
}

// Service accounts: W&B adds them to new teams and documents member operations for users only
// (https://docs.wandb.ai/platform/hosting/iam/scim). What W&B answers to a member operation naming one,
// and that replacing or clearing the member list keeps them, are inferences.

// withServiceAccountsLocked adds the organisation's service accounts to a new team's members.
func (s *Server) withServiceAccountsLocked(members []wandb.Member) []wandb.Member {
	for _, u := range s.users {
		if u.serviceAccount {
			members = append(members, wandb.Member{Value: u.id, Display: u.userName})
		}
	}
	return members
}

// serviceAccountIn returns the first member that is a service account ("" if none).
func (s *Server) serviceAccountIn(members []wandb.Member) string {
	for _, m := range members {
		if u := s.userByID(m.Value); u != nil && u.serviceAccount {
			return m.Value
		}
	}
	return ""
}

// keepServiceAccounts is next as a member list, plus the service accounts of old.
func (s *Server) keepServiceAccounts(old, next []wandb.Member) []wandb.Member {
	out := slices.Clone(next)
	for _, m := range old {
		if u := s.userByID(m.Value); u != nil && u.serviceAccount {
			out = append(out, m)
		}
	}
	return out
}

// resolveMembersLocked maps ids or emails to users; bad is the first value that matches nobody.
func (s *Server) resolveMembersLocked(in []memberIn) (members []wandb.Member, bad string) {
	for _, m := range in {
		u := s.userByIDOrEmail(m.Value)
		if u == nil {
			return nil, m.Value
		}
		if !slices.ContainsFunc(members, func(x wandb.Member) bool { return x.Value == u.id }) {
			members = append(members, wandb.Member{Value: u.id, Display: u.userName})
		}
	}
	return members, ""
}

func (s *Server) groupByID(id string) *group {
	for _, g := range s.groups {
		if g.ID == id {
			return g
		}
	}
	return nil
}

func (s *Server) groupByName(name string) *group {
	for _, g := range s.groups {
		if g.DisplayName == name {
			return g
		}
	}
	return nil
}
