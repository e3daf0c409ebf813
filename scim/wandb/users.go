package wandb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// User is a W&B user as SCIM shows it.
type User struct {
	ID       string
	UserName string
	Emails   []string
	// TeamRoles maps team name to role name (admin, member, viewer or a custom role), from the user's
	// teamRoles; nil when the answer did not list them (W&B's list and create examples often do not).
	TeamRoles map[string]string
}

// userWire decodes W&B's user, whose emails may be a list or a single object.
type userWire struct {
	ID        string          `json:"id"`
	UserName  string          `json:"userName"`
	Emails    json.RawMessage `json:"emails"`
	TeamRoles json.RawMessage `json:"teamRoles"`
}

type emailWire struct {
	Value string `json:"value"`
}

// teamRoleWire is one entry of a user's teamRoles, as W&B shows it: {"teamName": ..., "roleName": ...}
// ("Assign team role", https://docs.wandb.ai/platform/hosting/iam/scim#assign-team-role).
type teamRoleWire struct {
	TeamName string `json:"teamName"`
	RoleName string `json:"roleName"`
}

func (w userWire) user() User {
	u := User{ID: w.ID, UserName: w.UserName, TeamRoles: teamRoles(w.TeamRoles)}
	var list []emailWire
	if json.Unmarshal(w.Emails, &list) != nil {
		var one emailWire
		if json.Unmarshal(w.Emails, &one) == nil {
			list = []emailWire{one}
		}
	}
	for _, e := range list {
		if e.Value != "" {
			u.Emails = append(u.Emails, e.Value)
		}
	}
	return u
}

// teamRoles decodes a teamRoles value: nil when absent, null or not a list; otherwise a map (possibly
// empty) from team name to role name.
func teamRoles(raw json.RawMessage) map[string]string {
	var list []teamRoleWire
	if len(raw) == 0 || json.Unmarshal(raw, &list) != nil || list == nil {
		return nil
	}
	roles := make(map[string]string, len(list))
	for _, tr := range list {
		if tr.TeamName != "" {
			roles[tr.TeamName] = tr.RoleName
		}
	}
	return roles
}

// FindUser returns the user whose userName, or else whose email, is email; nil when there is none.
func (c *Client) FindUser(ctx context.Context, email string) (*User, error) {
	for _, filter := range []string{"userName eq ", "emails.value eq "} {
		q := url.Values{"filter": {filter + quoteFilterValue(email)}}
		_, body, err := c.do(ctx, http.MethodGet, "/Users", q, nil)
		if err != nil {
			return nil, fmt.Errorf("looking up user %q: %w", email, err)
		}
		var page struct {
			Resources []userWire `json:"Resources"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("looking up user %q: decoding: %w", email, err)
		}
		// Match locally too: a server that ignores the filter must not make another user match.
		for _, w := range page.Resources {
			u := w.user()
			if u.ID == "" {
				continue
			}
			if strings.EqualFold(u.UserName, email) {
				return &u, nil
			}
			for _, e := range u.Emails {
				if strings.EqualFold(e, email) {
					return &u, nil
				}
			}
		}
	}
	return nil, nil
}

// CreateUserInTeams creates a user with email as user name and primary email, in the shape W&B's
// "Create user" shows for the deployment (https://docs.wandb.ai/platform/hosting/iam/scim#create-user):
//
//   - Dedicated and Self-Managed:
//     {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":E,"emails":[{"primary":true,"value":E}]}
//   - Multi-tenant Cloud, with W&B's teams extension schema listing the teams the user joins:
//     {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:teams:2.0:User"],
//     "userName":E,"emails":[{"primary":true,"value":E}],
//     "urn:ietf:params:scim:schemas:extension:teams:2.0:User":{"teams":["<team name>", ...]}}
//
// teams is sent on Multi-tenant Cloud only (an empty list when none is given: that W&B accepts an empty
// list is an inference, its example names one team); elsewhere the plain shape has no place for it and
// the user joins teams through AddMembers. Adding a user W&B put in a team this way again is harmless.
func (c *Client) CreateUserInTeams(ctx context.Context, email string, teams []string) (User, error) {
	req := map[string]any{
		"schemas":  []string{SchemaUser},
		"userName": email,
		"emails":   []map[string]any{{"primary": true, "value": email}},
	}
	if c.multiTenant {
		if teams == nil {
			teams = []string{}
		}
		req["schemas"] = []string{SchemaUser, SchemaTeamsUser}
		req[SchemaTeamsUser] = map[string]any{"teams": teams}
	}
	_, body, err := c.do(ctx, http.MethodPost, "/Users", nil, req)
	if err != nil {
		return User{}, fmt.Errorf("creating user %q: %w", email, err)
	}
	var w userWire
	if err := json.Unmarshal(body, &w); err != nil || w.ID == "" {
		return User{}, fmt.Errorf("creating user %q: the answer has no user id", email)
	}
	return w.user(), nil
}

// UserTeamRoles re-reads a user (GET /Users/{id}) and returns their team roles, team name -> role name
// (admin, member, viewer or a custom role), from the user's teamRoles (shown in W&B's examples as
// [{"teamName": "team1", "roleName": "admin"}], https://docs.wandb.ai/platform/hosting/iam/scim#assign-team-role).
// The map is empty, never nil, when W&B lists no roles. An unknown user is an error matching ErrNotFound.
func (c *Client) UserTeamRoles(ctx context.Context, userID string) (map[string]string, error) {
	_, body, err := c.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(userID), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("reading team roles of user %s: %w", userID, err)
	}
	var w userWire
	if err := json.Unmarshal(body, &w); err != nil || w.ID == "" {
		return nil, fmt.Errorf("reading team roles of user %s: the answer is not a user", userID)
	}
	roles := teamRoles(w.TeamRoles)
	if roles == nil {
		roles = map[string]string{}
	}
	return roles, nil
}

// memberChunk bounds the members one PATCH adds, so a large team is not one huge request.
const memberChunk = 100

// maxMemberPatchAttempts bounds the PATCHes of one membership change that W&B refuses with 412 (the
// team changed since it was read): each refusal re-reads the team and tries again with its new ETag.
const maxMemberPatchAttempts = 4

// AddMembers adds users (by id) to a team, in chunks, each a conditional PATCH (see patchMembers):
//
//	{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
//	 "Operations":[{"op":"add","path":"members","value":[{"value":"<user id>"}, ...]}]}
//
// Adding a member twice is harmless; users already in the team when it is re-read are not sent.
func (c *Client) AddMembers(ctx context.Context, groupID string, userIDs []string) error {
	for start := 0; start < len(userIDs); start += memberChunk {
		chunk := userIDs[start:min(start+memberChunk, len(userIDs))]
		op := func(current *Group) map[string]any {
			var value []Member
			for _, id := range chunk {
				if current == nil || !hasMember(current, id) {
					value = append(value, Member{Value: id})
				}
			}
			if len(value) == 0 {
				return nil
			}
			return map[string]any{"op": "add", "path": "members", "value": value}
		}
		if err := c.patchMembers(ctx, groupID, op); err != nil {
			return fmt.Errorf("adding %d members to team %s: %w", len(chunk), groupID, err)
		}
	}
	return nil
}

// RemoveMember removes one user (by id) from a team, with a conditional PATCH (see patchMembers):
//
//	{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
//	 "Operations":[{"op":"remove","path":"members[value eq \"<user id>\"]"}]}
//
// A user already gone when the team is re-read is not sent.
func (c *Client) RemoveMember(ctx context.Context, groupID, userID string) error {
	op := func(current *Group) map[string]any {
		if current != nil && !hasMember(current, userID) {
			return nil
		}
		return map[string]any{"op": "remove", "path": "members[value eq " + quoteFilterValue(userID) + "]"}
	}
	if err := c.patchMembers(ctx, groupID, op); err != nil {
		return fmt.Errorf("removing member %s from team %s: %w", userID, groupID, err)
	}
	return nil
}

func hasMember(g *Group, userID string) bool {
	for _, m := range g.Members {
		if m.Value == userID {
			return true
		}
	}
	return false
}

// patchMembers sends a membership PATCH of a team with If-Match: <the team's last ETag>, as W&B's
// "ETag Support" shows (https://docs.wandb.ai/platform/hosting/iam/scim#etag-support: GET, note the
// ETag header, send it as If-Match; "A 412 Precondition Failed error response indicates that the
// resources has been modified since you retrieved it").
//
// The ETag is the one of W&B's last answer about the team (list, lookup, create, read or PATCH); with
// none yet, the team is read first. op builds the operation from the team as last read (nil: not read
// by this call, send everything asked); it returns nil when nothing is left to do. On 412 the team is
// re-read and op asked again, at most maxMemberPatchAttempts PATCHes in all. When W&B shows no ETag
// for the team (a W&B version without ETag support: an inference) the PATCH is sent without If-Match.
func (c *Client) patchMembers(ctx context.Context, groupID string, op func(current *Group) map[string]any) error {
	var current *Group
	etag, known := c.knownETag(groupID)
	if !known {
		g, err := c.readGroup(ctx, groupID)
		if err != nil {
			return err
		}
		current, etag = &g, g.ETag
	}
	path := "/Groups/" + url.PathEscape(groupID)
	for attempt := 1; ; attempt++ {
		o := op(current)
		if o == nil {
			return nil
		}
		req := map[string]any{"schemas": []string{SchemaPatchOp}, "Operations": []map[string]any{o}}
		var hdr http.Header
		if etag != "" {
			hdr = http.Header{"If-Match": {etag}}
		}
		res, err := c.send(ctx, http.MethodPatch, path, nil, req, hdr)
		if err == nil {
			if g, derr := decodeGroupResponse(res); derr == nil {
				c.remember(g, true)
			} else {
				c.forget(groupID) // the new ETag is unknown: read the team before the next PATCH
			}
			return nil
		}
		if !errors.Is(err, ErrPreconditionFailed) {
			return err
		}
		c.forget(groupID)
		if attempt >= maxMemberPatchAttempts {
			return fmt.Errorf("%w (the team kept changing: %d conditional PATCHes refused)", err, attempt)
		}
		g, rerr := c.readGroup(ctx, groupID)
		if rerr != nil {
			return fmt.Errorf("%w; re-reading the team: %w", err, rerr)
		}
		current, etag = &g, g.ETag
	}
}

// AssignTeamRole gives a user a role (admin, member, viewer or a custom role) in one team, with the
// teamRoles PATCH of the user ("Assign team role", https://docs.wandb.ai/platform/hosting/iam/scim#assign-team-role):
//
//	{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
//	 "Operations":[{"op":"replace","path":"teamRoles","value":[{"roleName":"<role>","teamName":"<team>"}]}]}
//
// Only this team is listed; that the user's roles in other teams stay is an inference (docs/wandb.md).
// It returns the user's team roles (team name -> role name) as W&B's answer lists them (W&B's example
// answers with the user and its teamRoles), or nil when the answer does not list them: then
// UserTeamRoles reads them.
func (c *Client) AssignTeamRole(ctx context.Context, userID, teamName, role string) (map[string]string, error) {
	op := map[string]any{"op": "replace", "path": "teamRoles", "value": []map[string]string{{"roleName": role, "teamName": teamName}}}
	req := map[string]any{"schemas": []string{SchemaPatchOp}, "Operations": []map[string]any{op}}
	_, body, err := c.do(ctx, http.MethodPatch, "/Users/"+url.PathEscape(userID), nil, req)
	if err != nil {
		return nil, fmt.Errorf("setting role %q of user %s in team %q: %w", role, userID, teamName, err)
	}
	var w userWire
	if json.Unmarshal(body, &w) != nil {
		return nil, nil // the role is set; what the answer holds is only a convenience
	}
	return teamRoles(w.TeamRoles), nil
}
