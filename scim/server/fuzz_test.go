package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzHandler sends arbitrary requests. Whatever arrives, the endpoint must not panic, must not
// answer 5xx (501 for the endpoints SCIM lets a server leave out), must answer every error with a
// SCIM error body, and must leave the stored state consistent. "$U" and "$G" in the input stand
// for the ids of an existing user and group.
func FuzzHandler(f *testing.F) {
	e := newEnv(f)
	uid := e.createUser("fuzz.user", "externalId", "x")
	gid := e.createGroup("fuzz-group", uid)
	ids := strings.NewReplacer("$U", uid, "$G", gid)

	for _, s := range []struct{ method, path, query, body, ifMatch string }{
		{"GET", "/Users", `filter=userName eq "fuzz.user"&startIndex=0&count=-1`, "", ""},
		{"GET", "/Users/", `filter=emails[type eq "work"].value eq "a@b"`, "", ""},
		{"GET", "/Groups", `filter=id eq "$G" and members eq "$U"&excludedAttributes=members`, "", ""},
		{"GET", "/Users/$U", "attributes=name.givenName,emails.value", "", ""},
		{"GET", "/Users", `filter=emails eq "x"`, "", ""},
		{"GET", "/Users", `filter=not (name.givenName pr) or userName co "z"`, "", ""},
		{"POST", "/Users", "", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u2","active":"False","password":"p"}`, ""},
		{"POST", "/Groups", "", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"g2","members":[{"value":"$U"},{"value":"nope"}]}`, ""},
		{"PATCH", "/Groups/$G", "", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"$U\"]"}]}`, ""},
		{"PATCH", "/Groups/$G", "", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"members","value":[]},{"op":"replace","value":{"displayName":"G"}}]}`, `W/"1"`},
		{"PATCH", "/Users/$U", "", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"emails[type eq \"home\"].value","value":"h@x"},{"op":"remove","path":"name"}]}`, ""},
		{"PATCH", "/Users/$U", "", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"$U"}}}}]}`, ""},
		{"PUT", "/Users/$U", "", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"fuzz.user"}`, "*"},
		{"DELETE", "/Groups/$G", "", "", `"9"`},
		{"GET", "/ServiceProviderConfig", "", "", ""},
		{"GET", "/Schemas", `filter=attributes eq "x"`, "", ""},
		{"POST", "/Users/.search", "", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"emails eq \"x\""}`, ""},
		{"GET", "/Me", "", "", ""},
		{"GET", "/Groups", "attributes=displayName,members.value&excludedAttributes=members.display,members", "", ""},
		{"GET", "/Users", "attributes=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,emails.value,,EMAILS.value&excludedAttributes=name.givenName", "", ""},
		{"GET", "/Groups/$G", "excludedAttributes=" + strings.Repeat("members,", 40), "", ""},
		{"POST", "/Users", "attributes=userName", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":" zoe\u0308 "}`, ""},
		{"POST", "/Groups", "", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"te\u202eam"}`, ""},
		{"PATCH", "/Groups/$G", "excludedAttributes=members", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"$U"},{"value":"$U"},{"value":"x"}]}]}`, ""},
	} {
		f.Add(s.method, s.path, s.query, s.body, s.ifMatch)
	}
	f.Fuzz(func(t *testing.T, method, path, query, body, ifMatch string) {
		req := httptest.NewRequest("GET", "/", strings.NewReader(ids.Replace(body)))
		req.Method = method
		req.URL.Path = "/scim/v2" + ids.Replace(path)
		req.URL.RawQuery = ids.Replace(query)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/scim+json")
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)

		endpoint := normalizePath(ids.Replace(path))
		notImplemented := rec.Code == http.StatusNotImplemented && (endpoint == "/Me" || strings.HasSuffix(endpoint, "/.search"))
		if rec.Code >= 500 && !notImplemented {
			t.Fatalf("%s %q ?%q: %d %s", method, path, query, rec.Code, rec.Body)
		}
		if err := checkAnswer(rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Fatalf("%s %q: %v", method, path, err)
		}
		checkInvariants(t, e)
	})
}

// checkInvariants: live group names are unique case-insensitively, and members name users.
func checkInvariants(t *testing.T, e *env) {
	ctx := context.Background()
	users, err := e.db.SCIMUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	names := map[string]bool{}
	for _, u := range users {
		known[u.ID] = true
		if names[strings.ToLower(u.UserName)] {
			t.Fatalf("duplicate userName %q", u.UserName)
		}
		names[strings.ToLower(u.UserName)] = true
		if u.Attributes["password"] != nil {
			t.Fatal("password stored")
		}
	}
	groups, err := e.db.SCIMGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names = map[string]bool{}
	for _, g := range groups {
		for _, m := range g.MemberIDs {
			if !known[m] {
				t.Fatalf("group %s has member %s, who is no user", g.ID, m)
			}
		}
		if g.Deleted {
			continue
		}
		if names[strings.ToLower(g.DisplayName)] {
			t.Fatalf("duplicate live group %q", g.DisplayName)
		}
		names[strings.ToLower(g.DisplayName)] = true
	}
}

// FuzzFilter compiles arbitrary filters for both resource types and runs them on sample
// resources: an error is fine (400 invalidFilter), a panic is not.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		`userName eq "a"`, `emails[type eq "work"].value eq "a"`, `id eq "g" and members eq "u"`,
		`emails eq "x"`, `name.givenName pr`, `not (active eq true)`, `members[value eq "u" or display co "x"]`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`, `a[b eq "]"].c eq "d"`,
	} {
		f.Add(s)
	}
	samples := []map[string]any{
		{"id": "u", "userName": "a", "active": true, "name": map[string]any{"givenName": "g"},
			"emails": []any{map[string]any{"value": "a", "type": "work"}, "not an object"},
			entURN:   map[string]any{"manager": map[string]any{"value": "m"}}},
		{"id": "g", "displayName": "d", "members": []any{map[string]any{"value": "u"}}},
		{"userName": 7, "emails": "x", "members": map[string]any{}},
		{},
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, sc := range []scope{userScope, groupScope} {
			q, err := sc.parseFilter(text)
			if err != nil {
				continue
			}
			for _, s := range samples {
				q.match(s)
			}
		}
	})
}

// FuzzAttributeList parses arbitrary attributes/excludedAttributes for both resource types and
// projects sample resources with them: a 400 is fine, a panic is not, the caps hold, and the
// projection never adds an attribute the resource lacks.
func FuzzAttributeList(f *testing.F) {
	for _, s := range []string{"userName", "emails.value,emails.type", "members", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
		"name.givenName,,name", strings.Repeat("a,", 40), "emails[type eq \"work\"].value", "Members.VALUE"} {
		f.Add(s, "members")
	}
	sample := map[string]any{"userName": "a", "displayName": "d", "active": true, "name": map[string]any{"givenName": "g"},
		"emails":  []any{map[string]any{"value": "a", "type": "work"}, "not an object"},
		"members": []any{map[string]any{"value": "u", "display": "U"}},
		entURN:    map[string]any{"manager": map[string]any{"value": "m"}}}
	f.Fuzz(func(t *testing.T, include, exclude string) {
		for _, sc := range []scope{userScope, groupScope} {
			p, err := sc.parseProjection(url.Values{"attributes": {include}, "excludedAttributes": {exclude}})
			if err != nil {
				if err.Status != 400 || (len(include) <= maxAttrList && len(exclude) <= maxAttrList &&
					strings.Count(include, ",") < maxAttrEntries && strings.Count(exclude, ",") < maxAttrEntries) {
					t.Fatalf("%q %q refused: %+v", include, exclude, err)
				}
				continue
			}
			if len(p.include) > maxAttrEntries || len(p.exclude) > maxAttrEntries {
				t.Fatalf("%d/%d entries kept", len(p.include), len(p.exclude))
			}
			for k := range p.project(sample) {
				if _, ok := sample[k]; !ok {
					t.Fatalf("projection added %q", k)
				}
			}
		}
	})
}
