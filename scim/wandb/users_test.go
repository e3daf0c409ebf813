package wandb

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// TestCreateUserShape pins the POST /Users body per deployment, as W&B's "Create user" shows it
// (https://docs.wandb.ai/platform/hosting/iam/scim#create-user).
func TestCreateUserShape(t *testing.T) {
	const plain = `{"emails":[{"primary":true,"value":"ada@example.com"}],"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com"}`
	tests := []struct {
		name       string
		deployment string
		teams      []string
		want       string
	}{
		{"self-managed (unset)", "", []string{"ml"}, plain},
		{"dedicated", DeploymentDedicated, nil, plain},
		{"self-managed", DeploymentSelfManaged, []string{"ml"}, plain},
		{"multi-tenant, one team", DeploymentMultiTenant, []string{"ml"},
			`{"emails":[{"primary":true,"value":"ada@example.com"}],"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:teams:2.0:User"],"urn:ietf:params:scim:schemas:extension:teams:2.0:User":{"teams":["ml"]},"userName":"ada@example.com"}`},
		{"multi-tenant, no team", DeploymentMultiTenant, nil,
			`{"emails":[{"primary":true,"value":"ada@example.com"}],"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:teams:2.0:User"],"urn:ietf:params:scim:schemas:extension:teams:2.0:User":{"teams":[]},"userName":"ada@example.com"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = string(b)
				writeSCIM(w, 201, map[string]any{"id": "U1", "userName": "ada@example.com",
					"teamRoles": []map[string]string{{"teamName": "ml", "roleName": "member"}}})
			}, func(o *Options) { o.Deployment = tt.deployment })
			u, err := c.CreateUserInTeams(t.Context(), "ada@example.com", tt.teams)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("body\n%s\nwant\n%s", got, tt.want)
			}
			if u.ID != "U1" || !reflect.DeepEqual(u.TeamRoles, map[string]string{"ml": "member"}) {
				t.Fatalf("user %+v", u)
			}
		})
	}
}

// TestTeamRolesDecoding: teamRoles as W&B shows them, absent (nil from AssignTeamRole, empty from
// UserTeamRoles) or empty.
func TestTeamRolesDecoding(t *testing.T) {
	tests := []struct {
		name       string
		answer     string
		wantAssign map[string]string
		wantRead   map[string]string
	}{
		{"two teams", `{"id":"U1","teamRoles":[{"teamName":"ml","roleName":"admin"},{"teamName":"cv","roleName":"ML Reviewer"}]}`,
			map[string]string{"ml": "admin", "cv": "ML Reviewer"}, map[string]string{"ml": "admin", "cv": "ML Reviewer"}},
		{"absent", `{"id":"U1"}`, nil, map[string]string{}},
		{"null", `{"id":"U1","teamRoles":null}`, nil, map[string]string{}},
		{"empty", `{"id":"U1","teamRoles":[]}`, map[string]string{}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotBody map[string]any
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPatch {
					_ = json.NewDecoder(r.Body).Decode(&gotBody)
				}
				w.Header().Set("Content-Type", "application/scim+json")
				_, _ = io.WriteString(w, tt.answer)
			}, nil)
			roles, err := c.AssignTeamRole(t.Context(), "U1", "ml", "admin")
			if err != nil || !reflect.DeepEqual(roles, tt.wantAssign) || (roles == nil) != (tt.wantAssign == nil) {
				t.Fatalf("AssignTeamRole = %#v, %v; want %#v", roles, err, tt.wantAssign)
			}
			wantOp := map[string]any{"op": "replace", "path": "teamRoles", "value": []any{map[string]any{"roleName": "admin", "teamName": "ml"}}}
			if ops, _ := gotBody["Operations"].([]any); len(ops) != 1 || !reflect.DeepEqual(ops[0], wantOp) {
				t.Fatalf("PATCH body %v", gotBody)
			}
			read, err := c.UserTeamRoles(t.Context(), "U1")
			if err != nil || read == nil || !reflect.DeepEqual(read, tt.wantRead) {
				t.Fatalf("UserTeamRoles = %#v, %v; want %#v", read, err, tt.wantRead)
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { scimError(w, 404, "no such user") }, nil)
		if _, err := c.UserTeamRoles(t.Context(), "U9"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err %v, want ErrNotFound", err)
		}
	})
}
