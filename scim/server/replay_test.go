package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// The request sequences below are what Okta and Microsoft Entra ID send when provisioning a
// group with its members (bodies as in their documentation and the library's captured traffic).
// Each step checks the answer, and the stored state the daemon reads.

func TestReplayOkta(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// Okta looks the user up before creating it.
	r := e.mustCode(e.do("GET", "/Users?filter=userName+eq+%22test.user%40okta.local%22&startIndex=1&count=100", nil), 200)
	if r.Body["totalResults"] != 0.0 || len(r.Body["Resources"].([]any)) != 0 {
		t.Fatalf("lookup before create: %s", r.Raw)
	}
	r = e.mustCode(e.do("POST", "/Users", `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName": "test.user@okta.local",
		"name": {"givenName": "Test", "familyName": "User"},
		"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
		"displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
		"groups": [], "password": "1mz050nq", "active": true}`), 201)
	uid := r.Body["id"].(string)
	if r.Body["userName"] != "test.user@okta.local" || r.Header.Get("Location") != testBase+"/Users/"+uid {
		t.Fatalf("create user: %v %s", r.Header, r.Raw)
	}
	r = e.mustCode(e.do("GET", "/Users?filter=userName+eq+%22test.user%40okta.local%22&startIndex=1&count=100", nil), 200)
	if r.Body["totalResults"] != 1.0 || r.Body["itemsPerPage"] != 1.0 {
		t.Fatalf("lookup after create: %s", r.Raw)
	}
	other := e.createUser("other.user@okta.local")

	// Push Groups: create the group empty, then add members.
	r = e.mustCode(e.do("POST", "/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "wandb-ml", "members": []}`), 201)
	gid := r.Body["id"].(string)
	if g := e.group(gid); g.DisplayName != "wandb-ml" || g.MemberIDs != nil {
		t.Fatalf("stored group: %+v", g)
	}
	e.mustCode(e.do("PATCH", "/Groups/"+gid, fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "add", "path": "members", "value": [
			{"value": %q, "display": "test.user@okta.local"}, {"value": %q, "display": "other.user@okta.local"}]}]}`, uid, other)), 200)
	g := e.group(gid)
	if !slices.Equal(g.MemberIDs, sorted(uid, other)) || len(g.Members) != 2 {
		t.Fatalf("members after add: %+v", g)
	}

	// Remove one member with a value filter.
	e.mustCode(e.do("PATCH", "/Groups/"+gid, fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "remove", "path": "members[value eq \"%s\"]"}]}`, other)), 200)
	if g := e.group(gid); !slices.Equal(g.MemberIDs, []string{uid}) {
		t.Fatalf("members after remove: %v", g.MemberIDs)
	}

	// Rename: a path-less replace carrying the id.
	r = e.mustCode(e.do("PATCH", "/Groups/"+gid, fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "replace", "value": {"id": %q, "displayName": "wandb-ml-platform"}}]}`, gid)), 200)
	if r.Body["displayName"] != "wandb-ml-platform" || e.group(gid).DisplayName != "wandb-ml-platform" {
		t.Fatalf("rename: %s", r.Raw)
	}

	// Deactivate the user.
	e.takeChanges()
	r = e.mustCode(e.do("PATCH", "/Users/"+uid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "replace", "value": {"active": false}}]}`), 200)
	if r.Body["active"] != false {
		t.Fatalf("deactivate: %s", r.Raw)
	}
	if g := e.group(gid); len(g.Members) != 1 || g.Members[0].Active {
		t.Fatalf("the daemon does not see the deactivation: %+v", g.Members)
	}
	if c := e.takeChanges(); !slices.Equal(c, []string{gid}) {
		t.Fatalf("OnChange after deactivation: %v", c)
	}

	// Okta's profile push is a PUT of the whole user (with id, groups and meta).
	r = e.mustCode(e.do("PUT", "/Users/"+uid, fmt.Sprintf(`{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": %q,
		"userName": "test.user@okta.local", "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
		"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work", "display": "test.user@okta.local"}],
		"active": true, "groups": [], "meta": {"resourceType": "User"}}`, uid)), 200)
	if u := e.user(uid); !u.Active || asMap(u.Attributes["name"])["middleName"] != "Excited" {
		t.Fatalf("PUT: %+v", u)
	}

	// Delete the group: gone for Okta, kept (deleted) for the daemon.
	e.mustCode(e.do("DELETE", "/Groups/"+gid, nil), 204)
	e.mustCode(e.do("GET", "/Groups/"+gid, nil), 404)
	all, err := e.db.SCIMGroups(ctx)
	if err != nil || len(all) != 1 || !all[0].Deleted || all[0].DisplayName != "wandb-ml-platform" {
		t.Fatalf("daemon's view after delete: %+v %v", all, err)
	}
}

func TestReplayEntra(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// Entra's connection test and its lookup before create.
	r := e.mustCode(e.do("GET", "/Users?filter=userName+eq+%22ffffffff-1111-2222-3333-444444444444%22", nil), 200)
	if r.Body["totalResults"] != 0.0 {
		t.Fatalf("connection test: %s", r.Raw)
	}
	e.mustCode(e.do("GET", "/Users?filter=userName+eq+%22Test_User_ab6490ee%40contoso.com%22", nil), 200)
	r = e.mustCode(e.do("POST", "/Users", `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
		"userName": "Test_User_ab6490ee@contoso.com", "active": true,
		"emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@contoso.com"}],
		"meta": {"resourceType": "User"},
		"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
		"roles": [],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Research", "employeeNumber": "42"}}`,
		"Content-Type", "application/json"), 201)
	uid := r.Body["id"].(string)
	if u := e.user(uid); u.Email != "Test_User_fd0ea19b@contoso.com" || u.ExternalID != "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" {
		t.Fatalf("stored user: %+v", u)
	}
	// Entra matches on the work email when so configured.
	r = e.mustCode(e.do("GET", "/Users"+q(`emails[type eq "work"].value eq "test_user_fd0ea19b@contoso.com"`), nil), 200)
	if r.Body["totalResults"] != 1.0 {
		t.Fatalf("work email lookup: %s", r.Raw)
	}

	// The group: look up, create, add the member.
	r = e.mustCode(e.do("GET", "/Groups?excludedAttributes=members&filter=displayName+eq+%22wandb-research%22", nil), 200)
	if r.Body["totalResults"] != 0.0 {
		t.Fatalf("group lookup: %s", r.Raw)
	}
	r = e.mustCode(e.do("POST", "/Groups", `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "wandb-research",
		"meta": {"resourceType": "Group"}}`), 201)
	gid := r.Body["id"].(string)
	e.takeChanges()
	e.mustCode(e.do("PATCH", "/Groups/"+gid, fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": %q}]}]}`, uid)), 200)
	if g := e.group(gid); !slices.Equal(g.MemberIDs, []string{uid}) || g.Members[0].UserName != "Test_User_ab6490ee@contoso.com" {
		t.Fatalf("after add: %+v", g)
	}
	if c := e.takeChanges(); !slices.Equal(c, []string{gid}) {
		t.Fatalf("OnChange after add: %v", c)
	}

	// Entra checks membership with a filter, without members in the answer.
	r = e.mustCode(e.do("GET", "/Groups"+q(fmt.Sprintf(`id eq %q and members eq %q`, gid, uid), "excludedAttributes", "members"), nil), 200)
	res := r.Body["Resources"].([]any)
	if r.Body["totalResults"] != 1.0 || len(res) != 1 || res[0].(map[string]any)["members"] != nil {
		t.Fatalf("membership check: %s", r.Raw)
	}

	// Remove the member Entra's way (a value list), then re-add and remove it by filter.
	e.mustCode(e.do("PATCH", "/Groups/"+gid, fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": %q}]}]}`, uid)), 200)
	if g := e.group(gid); g.MemberIDs != nil {
		t.Fatalf("after Remove with value: %v", g.MemberIDs)
	}
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("Add", "members", members(uid)))), 200)
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("Remove", fmt.Sprintf("members[value eq %q]", uid), nil))), 200)
	if g := e.group(gid); g.MemberIDs != nil {
		t.Fatalf("after Remove by filter: %v", g.MemberIDs)
	}
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("Add", "members", members(uid)))), 200)

	// Rename, as Entra does: a Replace with a path.
	e.mustCode(e.do("PATCH", "/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "Replace", "path": "displayName", "value": "wandb-research-2"}]}`), 200)
	if g := e.group(gid); g.DisplayName != "wandb-research-2" || len(g.MemberIDs) != 1 {
		t.Fatalf("after rename: %+v", g)
	}

	// Soft delete: Entra's legacy PATCH sends the boolean as a string.
	e.takeChanges()
	e.mustCode(e.do("PATCH", "/Users/"+uid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}`), 200)
	if u := e.user(uid); u.Active {
		t.Fatalf("user still active: %+v", u)
	}
	if g := e.group(gid); g.Members[0].Active {
		t.Fatalf("the daemon does not see the deactivation: %+v", g.Members)
	}
	if c := e.takeChanges(); !slices.Equal(c, []string{gid}) {
		t.Fatalf("OnChange after deactivation: %v", c)
	}

	// Attribute updates.
	r = e.mustCode(e.do("PATCH", "/Users/"+uid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [
			{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@contoso.com"},
			{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
			{"op": "Replace", "path": "userName", "value": "renamed@contoso.com"},
			{"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "ML"}]}`), 200)
	u := e.user(uid)
	if u.UserName != "renamed@contoso.com" || u.Email != "updatedEmail@contoso.com" || asMap(u.Attributes["name"])["givenName"] != "givenName" ||
		asMap(u.Attributes[entURN])["department"] != "ML" || asMap(u.Attributes[entURN])["employeeNumber"] != "42" {
		t.Fatalf("after attribute updates: %+v", u)
	}
	if g := e.group(gid); g.Members[0].UserName != "renamed@contoso.com" {
		t.Fatalf("group member not renamed: %+v", g.Members)
	}

	// Hard delete of the user, then of the group.
	e.mustCode(e.do("DELETE", "/Users/"+uid, nil), 204)
	if g := e.group(gid); g.MemberIDs != nil {
		t.Fatalf("deleted user still a member: %v", g.MemberIDs)
	}
	e.mustCode(e.do("DELETE", "/Groups/"+gid, nil), 204)
	groups, err := e.db.SCIMGroups(ctx)
	if err != nil || len(groups) != 1 || !groups[0].Deleted {
		t.Fatalf("daemon's view: %+v %v", groups, err)
	}
	r = e.mustCode(e.do("GET", "/Groups"+q(`displayName eq "wandb-research-2"`), nil), 200)
	if r.Body["totalResults"] != 0.0 {
		t.Fatalf("deleted group still found: %s", r.Raw)
	}
}
