package wandb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// UserTeamRoles returns a user's roles by team name, as GET /Users/{id} shows them in teamRoles
// (https://docs.wandb.ai/platform/hosting/iam/scim, "Get user"; the attribute is the one the teamRoles
// PATCH sets). A team the list does not name is absent from the map.
func (c *Client) UserTeamRoles(ctx context.Context, userID string) (map[string]string, error) {
	_, body, err := c.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(userID), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the team roles of user %s: %w", userID, err)
	}
	var w struct {
		TeamRoles []struct {
			RoleName string `json:"roleName"`
			TeamName string `json:"teamName"`
		} `json:"teamRoles"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("reading the team roles of user %s: decoding: %w", userID, err)
	}
	roles := make(map[string]string, len(w.TeamRoles))
	for _, tr := range w.TeamRoles {
		roles[tr.TeamName] = tr.RoleName
	}
	return roles, nil
}
