package wandb

import (
	"context"
	"encoding/json"
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
}

// userWire decodes W&B's user, whose emails may be a list or a single object.
type userWire struct {
	ID       string          `json:"id"`
	UserName string          `json:"userName"`
	Emails   json.RawMessage `json:"emails"`
}

type emailWire struct {
	Value string `json:"value"`
}

func (w userWire) user() User {
	u := User{ID: w.ID, UserName: w.UserName}
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

// CreateUser creates a user with email as user name and primary email.
func (c *Client) CreateUser(ctx context.Context, email string) (User, error) {
	req := map[string]any{
		"schemas":  []string{SchemaUser},
		"userName": email,
		"emails":   []map[string]any{{"value": email, "primary": true}},
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

// memberChunk bounds the members one PATCH adds, so a large team is not one huge request.
const memberChunk = 100

// AddMembers adds users (by id) to a team, in chunks. Adding a member twice is harmless.
func (c *Client) AddMembers(ctx context.Context, groupID string, userIDs []string) error {
	for start := 0; start < len(userIDs); start += memberChunk {
		chunk := userIDs[start:min(start+memberChunk, len(userIDs))]
		value := make([]Member, len(chunk))
		for i, id := range chunk {
			value[i] = Member{Value: id}
		}
		op := map[string]any{"op": "add", "path": "members", "value": value}
		if err := c.patch(ctx, groupID, op); err != nil {
			return fmt.Errorf("adding %d members to team %s: %w", len(chunk), groupID, err)
		}
	}
	return nil
}

// RemoveMember removes one user (by id) from a team.
func (c *Client) RemoveMember(ctx context.Context, groupID, userID string) error {
	op := map[string]any{"op": "remove", "path": "members[value eq " + quoteFilterValue(userID) + "]"}
	if err := c.patch(ctx, groupID, op); err != nil {
		return fmt.Errorf("removing member %s from team %s: %w", userID, groupID, err)
	}
	return nil
}

// SetTeamRole gives a user a role (admin, member, viewer or a custom role) in one team, with the
// teamRoles PATCH of the user. W&B documents the operation as "replace" with the teams listed; only
// this team is listed, so the user's roles in other teams are not touched.
func (c *Client) SetTeamRole(ctx context.Context, userID, teamName, role string) error {
	op := map[string]any{"op": "replace", "path": "teamRoles", "value": []map[string]string{{"roleName": role, "teamName": teamName}}}
	req := map[string]any{"schemas": []string{SchemaPatchOp}, "Operations": []map[string]any{op}}
	if _, _, err := c.do(ctx, http.MethodPatch, "/Users/"+url.PathEscape(userID), nil, req); err != nil {
		return fmt.Errorf("setting role %q of user %s in team %q: %w", role, userID, teamName, err)
	}
	return nil
}

func (c *Client) patch(ctx context.Context, groupID string, op map[string]any) error {
	req := map[string]any{"schemas": []string{SchemaPatchOp}, "Operations": []map[string]any{op}}
	_, _, err := c.do(ctx, http.MethodPatch, "/Groups/"+url.PathEscape(groupID), nil, req)
	return err
}
