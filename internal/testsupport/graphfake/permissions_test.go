package graphfake

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestPermissionsPerEndpoint checks each endpoint against the permissions its Graph page requires.
func TestPermissionsPerEndpoint(t *testing.T) {
	subBody := func(h *harness) string {
		return `{"changeType":"updated,deleted","notificationUrl":"https://h.example/x","resource":"/groups","clientState":"s","expirationDateTime":"` +
			h.clock.now().Add(time.Hour).Format(time.RFC3339) + `"}`
	}
	tests := []struct {
		name       string
		perms      []Permission
		method     string
		path       string
		body       bool
		wantStatus int
	}{
		{"list groups with GroupMember.Read.All", []Permission{GroupMemberReadAll}, "GET", "/v1.0/groups", false, 200},
		{"list groups with Directory.Read.All", []Permission{DirectoryReadAll}, "GET", "/v1.0/groups", false, 200},
		{"list groups with only User.Read.All", []Permission{UserReadAll}, "GET", "/v1.0/groups", false, 403},
		{"get a group without permissions", nil, "GET", "/v1.0/groups/" + g1, false, 403},
		{"members with GroupMember.Read.All", []Permission{GroupMemberReadAll}, "GET", "/v1.0/groups/" + g1 + "/transitiveMembers", false, 200},
		{"members without a group permission", []Permission{UserReadAll}, "GET", "/v1.0/groups/" + g1 + "/transitiveMembers", false, 403},
		{"subscribe with Group.Read.All", []Permission{GroupReadAll}, "POST", "/v1.0/subscriptions", true, 201},
		{"subscribe with GroupMember.Read.All only", []Permission{GroupMemberReadAll, UserReadAll}, "POST", "/v1.0/subscriptions", true, 403},
		{"subscribe with Directory.Read.All only", []Permission{DirectoryReadAll}, "POST", "/v1.0/subscriptions", true, 403},
		{"list subscriptions without permissions", nil, "GET", "/v1.0/subscriptions", false, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.f.SetPermissions(tt.perms...)
			body := ""
			if tt.body {
				body = subBody(h)
			}
			status, resp := h.do(t, tt.method, tt.path, "", body)
			if status != tt.wantStatus {
				t.Fatalf("%s %s = %d %v, want %d", tt.method, tt.path, status, resp, tt.wantStatus)
			}
			if status == 403 && errCode(resp) != "Authorization_RequestDenied" {
				t.Errorf("403 with code %q, want Authorization_RequestDenied", errCode(resp))
			}
		})
	}
}

// TestLimitedMemberInformation checks Graph's rule for members of a type the app may not read:
// listed, with @odata.type and id only.
func TestLimitedMemberInformation(t *testing.T) {
	tests := []struct {
		name        string
		perms       []Permission
		wantMail    any
		wantUPN     any
		wantEnabled any
	}{
		{"GroupMember.Read.All only", []Permission{GroupMemberReadAll}, nil, nil, nil},
		{"with User.ReadBasic.All", []Permission{GroupMemberReadAll, UserReadBasicAll}, "one@example.com", "one@example.com", nil},
		{"with User.Read.All", []Permission{GroupMemberReadAll, UserReadAll}, "one@example.com", "one@example.com", false},
		{"Directory.Read.All", []Permission{DirectoryReadAll}, "one@example.com", "one@example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.f.SetPermissions(tt.perms...)
			h.f.SetAccountEnabled(u1, false)
			status, body := h.do(t, http.MethodGet, "/v1.0/groups/"+g1+"/transitiveMembers?$select=id,mail,userPrincipalName,accountEnabled", "", "")
			if status != 200 {
				t.Fatalf("status %d %v", status, body)
			}
			items, _ := body["value"].([]any)
			if len(items) != 1 {
				t.Fatalf("page = %v, want one member (page size 1)", items)
			}
			m := items[0].(map[string]any)
			if m["id"] != u1 || m["@odata.type"] != "#microsoft.graph.user" {
				t.Errorf("member = %v, want id and @odata.type always", m)
			}
			for _, kv := range []struct {
				key  string
				want any
			}{{"mail", tt.wantMail}, {"userPrincipalName", tt.wantUPN}, {"accountEnabled", tt.wantEnabled}} {
				got, present := m[kv.key]
				if !present || got != kv.want {
					t.Errorf("%s = %v (present %v), want %v", kv.key, got, present, kv.want)
				}
			}
		})
	}
}

func TestDefaultPermissions(t *testing.T) {
	f := New(Config{})
	if !slices.Equal(f.perms, DefaultPermissions) {
		t.Errorf("default permissions %v, want %v", f.perms, DefaultPermissions)
	}
}
