package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/byob-agent/byob-agent/state"
)

const (
	testBase  = "https://agent.example.com/scim/v2"
	testToken = "current-token"
	userURN   = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupURN  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	patchURN  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	entURN    = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

type env struct {
	t   testing.TB
	db  *state.DB
	h   http.Handler
	rec *recorder
}

// recorder collects OnChange calls.
type recorder struct {
	mu      sync.Mutex
	changes []string
}

// in is the same environment reporting to a subtest.
func (e *env) in(t testing.TB) *env { return &env{t: t, db: e.db, h: e.h, rec: e.rec} }

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, rec: &recorder{}}
	e.h, err = New(Options{
		BaseURL:  testBase + "/",
		Tokens:   []string{"previous-token", testToken},
		Store:    db,
		OnChange: func(id string) { e.rec.mu.Lock(); e.rec.changes = append(e.rec.changes, id); e.rec.mu.Unlock() },
		MaxBody:  64 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// takeChanges returns and forgets the OnChange calls so far.
func (e *env) takeChanges() []string {
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	c := e.rec.changes
	e.rec.changes = nil
	return c
}

type resp struct {
	Code   int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// do sends one request (target is relative to the base URL) with the test token and a SCIM
// content type unless headers (name, value pairs; empty value deletes) say otherwise, and checks
// what every answer must satisfy.
func (e *env) do(method, target string, body any, headers ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, "https://agent.example.com/scim/v2"+target, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/scim+json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	r := resp{Code: rec.Code, Header: rec.Header(), Raw: rec.Body.String()}
	if err := checkAnswer(rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	if rec.Body.Len() > 0 {
		json.Unmarshal(rec.Body.Bytes(), &r.Body)
	}
	return r
}

// checkAnswer enforces what every answer must satisfy: a SCIM content type, a SCIM error body on
// every error (status as a string), and never a password.
func checkAnswer(code int, h http.Header, body []byte) error {
	if len(body) > 0 && h.Get("Content-Type") != "application/scim+json" {
		return fmt.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	if strings.Contains(string(body), `"password":`) {
		return fmt.Errorf("password echoed: %s", body)
	}
	if code < 400 {
		return nil
	}
	var e struct {
		Schemas []string `json:"schemas"`
		Status  any      `json:"status"`
	}
	if err := json.Unmarshal(body, &e); err != nil || !slices.Equal(e.Schemas, []string{"urn:ietf:params:scim:api:messages:2.0:Error"}) || e.Status != strconv.Itoa(code) {
		return fmt.Errorf("status %d without a SCIM error body: %s", code, body)
	}
	return nil
}

func (e *env) mustCode(r resp, want int) resp {
	e.t.Helper()
	if r.Code != want {
		e.t.Fatalf("status %d, want %d: %s", r.Code, want, r.Raw)
	}
	return r
}

func (e *env) createUser(name string, extra ...any) string {
	e.t.Helper()
	body := map[string]any{"schemas": []string{userURN}, "userName": name, "active": true,
		"emails": []any{map[string]any{"value": name + "@example.com", "type": "work", "primary": true}}}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i].(string)] = extra[i+1]
	}
	return e.mustCode(e.do("POST", "/Users", body), http.StatusCreated).Body["id"].(string)
}

func (e *env) createGroup(name string, members ...string) string {
	e.t.Helper()
	var ms []any
	for _, m := range members {
		ms = append(ms, map[string]any{"value": m})
	}
	r := e.mustCode(e.do("POST", "/Groups", map[string]any{"schemas": []string{groupURN}, "displayName": name, "members": ms}), http.StatusCreated)
	return r.Body["id"].(string)
}

// group is a stored group with its members resolved, as the daemon sees it.
func (e *env) group(id string) state.SCIMGroup {
	e.t.Helper()
	g, err := e.db.SCIMGroup(context.Background(), id)
	if err == nil {
		g.Members, err = e.db.SCIMMembers(context.Background(), g.MemberIDs)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

func (e *env) user(id string) state.SCIMUser {
	e.t.Helper()
	u, err := e.db.SCIMUser(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func patch(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{patchURN}, "Operations": ops}
}

func op(kind, path string, value any) map[string]any {
	o := map[string]any{"op": kind}
	if path != "" {
		o["path"] = path
	}
	if value != nil {
		o["value"] = value
	}
	return o
}

func members(ids ...string) []any {
	out := []any{}
	for _, id := range ids {
		out = append(out, map[string]any{"value": id})
	}
	return out
}

func q(filter string, extra ...string) string {
	v := url.Values{"filter": {filter}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return "?" + v.Encode()
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

func TestNewRejectsBadOptions(t *testing.T) {
	db, err := state.Open(filepath.Join(t.TempDir(), "s.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, o := range map[string]Options{
		"relative base": {BaseURL: "/scim/v2", Tokens: []string{"t"}, Store: db},
		"no tokens":     {BaseURL: testBase, Store: db},
		"empty token":   {BaseURL: testBase, Tokens: []string{"t", ""}, Store: db},
		"no store":      {BaseURL: testBase, Tokens: []string{"t"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"missing", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"basic scheme", "Basic " + testToken, 401},
		{"token prefix", "Bearer " + testToken[:5], 401},
		{"current token", "Bearer " + testToken, 200},
		{"previous token (rotation)", "Bearer previous-token", 200},
		{"scheme case-insensitive", "bearer " + testToken, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.do("GET", "/Users", nil, "Authorization", tc.auth)
			e.mustCode(r, tc.want)
			if tc.want == 401 && (r.Header.Get("WWW-Authenticate") == "" || strings.Contains(r.Raw, testToken)) {
				t.Fatalf("401 without challenge or with the token: %v %s", r.Header, r.Raw)
			}
		})
	}
}

func TestRoutingNormalisation(t *testing.T) {
	e := newEnv(t)
	uid := e.createUser("alice")
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/Users", 200},
		{"/users", 200},
		{"/USERS/", 200},
		{"/Users/" + q(`userName eq "alice"`), 200},
		{"/users/" + uid, 200},
		{"/Users/" + uid + "/", 200},
		{"/Users/nope", 404},
		{"/groups", 200},
		{"/serviceproviderconfig", 200},
		{"/ServiceProviderConfig/", 200},
		{"/schemas", 200},
		{"/resourcetypes/", 200},
		{"/Nowhere", 404},
		{"", 400}, // the root has no query handler: tooMany
	} {
		r := e.do("GET", tc.target, nil)
		if r.Code != tc.want {
			t.Errorf("GET %s: %d, want %d: %s", tc.target, r.Code, tc.want, r.Raw)
		}
	}
	// Outside the base path: not ours.
	req := httptest.NewRequest("GET", "https://agent.example.com/scim/v2x/Users", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 404 || checkAnswer(rec.Code, rec.Header(), rec.Body.Bytes()) != nil {
		t.Fatalf("path outside base: %d %s", rec.Code, rec.Body)
	}
}

func TestServiceProviderConfigTellsTheTruth(t *testing.T) {
	e := newEnv(t)
	r := e.mustCode(e.do("GET", "/ServiceProviderConfig", nil), 200)
	for _, feature := range []string{"etag", "patch", "filter"} {
		if r.Body[feature].(map[string]any)["supported"] != true {
			t.Errorf("%s not advertised: %s", feature, r.Raw)
		}
	}
	if r.Body["bulk"].(map[string]any)["supported"] != false {
		t.Errorf("bulk advertised")
	}
	schemas := e.mustCode(e.do("GET", "/Schemas/"+groupURN, nil), 200)
	if !strings.Contains(schemas.Raw, `"uniqueness":"server"`) {
		t.Errorf("group schema does not declare displayName unique: %s", schemas.Raw)
	}
}

func TestRequestBodies(t *testing.T) {
	e := newEnv(t)
	user := func(name string) string {
		return fmt.Sprintf(`{"schemas":[%q],"userName":%q}`, userURN, name)
	}
	for _, tc := range []struct {
		name, ct, body string
		want           int
	}{
		{"scim+json", "application/scim+json", user("a"), 201},
		{"json with charset", "application/json; charset=utf-8", user("b"), 201},
		{"no content type", "", user("c"), 201},
		{"text/plain", "text/plain", user("d"), 415},
		{"too large", "application/json", user(strings.Repeat("x", 70<<10)), 413},
		{"not json", "application/json", "{", 400},
		{"no schemas", "application/json", `{"userName":"e"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			e.mustCode(e.do("POST", "/Users", tc.body, "Content-Type", tc.ct), tc.want)
		})
	}
	uid := e.createUser("patched")
	big := patch(op("replace", "displayName", strings.Repeat("x", 70<<10)))
	e.mustCode(e.do("PATCH", "/Users/"+uid, big), 413)
	e.mustCode(e.do("PUT", "/Users/"+uid, map[string]any{"schemas": []string{userURN}, "userName": strings.Repeat("x", 70<<10)}), 413)
}

func TestCreateUser(t *testing.T) {
	e := newEnv(t)
	r := e.mustCode(e.do("POST", "/Users", map[string]any{
		"schemas": []string{userURN, entURN}, "userName": "Alice@Example.com", "externalId": "ext-1",
		"password": "hunter2", "active": "False", "roles": []any{},
		entURN: map[string]any{"department": "ML"},
	}), 201)
	id := r.Body["id"].(string)
	loc := testBase + "/Users/" + id
	meta := r.Body["meta"].(map[string]any)
	if r.Header.Get("Location") != loc || meta["location"] != loc {
		t.Fatalf("Location %q, meta.location %v, want %q", r.Header.Get("Location"), meta["location"], loc)
	}
	if r.Header.Get("Etag") != `W/"1"` || meta["version"] != `W/"1"` {
		t.Fatalf("ETag %q, meta.version %v", r.Header.Get("Etag"), meta["version"])
	}
	u := e.user(id)
	if u.Active || u.UserName != "Alice@Example.com" || u.ExternalID != "ext-1" || u.Attributes["password"] != nil || u.Attributes["roles"] != nil {
		t.Fatalf("stored user: %+v", u)
	}
	if asMap(u.Attributes[entURN])["department"] != "ML" {
		t.Fatalf("extension not stored: %+v", u.Attributes)
	}
	// Uniqueness is case-insensitive, like the userName filter the IdP runs first.
	dup := e.mustCode(e.do("POST", "/Users", map[string]any{"schemas": []string{userURN}, "userName": "alice@example.COM"}), 409)
	if dup.Body["scimType"] != "uniqueness" {
		t.Fatalf("409 without scimType uniqueness: %s", dup.Raw)
	}
	found := e.mustCode(e.do("GET", "/Users"+q(`userName eq "alice@example.COM"`), nil), 200)
	if found.Body["totalResults"] != 1.0 {
		t.Fatalf("filter lookup does not see the row the uniqueness check saw: %s", found.Raw)
	}
	e.mustCode(e.do("POST", "/Users", map[string]any{"schemas": []string{userURN}, "userName": "  "}), 400)
}

func TestPutAndETags(t *testing.T) {
	e := newEnv(t)
	uid := e.createUser("bob")
	put := map[string]any{"schemas": []string{userURN}, "userName": "bob", "displayName": "Bob", "active": true}
	e.mustCode(e.do("PUT", "/Users/does-not-exist", put), 404)
	if users, _ := e.db.SCIMUsers(context.Background()); len(users) != 1 {
		t.Fatalf("PUT created a user: %d users", len(users))
	}
	e.mustCode(e.do("PUT", "/Users/"+uid, put, "If-Match", `W/"7"`), 412)
	r := e.mustCode(e.do("PUT", "/Users/"+uid, put, "If-Match", `W/"1"`), 200)
	if r.Header.Get("Etag") != `W/"2"` || r.Body["displayName"] != "Bob" || r.Body["emails"] != nil {
		t.Fatalf("PUT did not replace: %v %s", r.Header, r.Raw)
	}
	e.mustCode(e.do("PATCH", "/Users/"+uid, patch(op("replace", "displayName", "B")), "If-Match", `W/"1"`), 412)
	e.mustCode(e.do("PATCH", "/Users/"+uid, patch(op("replace", "displayName", "B")), "If-Match", `"2", "9"`), 200)
	e.mustCode(e.do("DELETE", "/Users/"+uid, nil, "If-Match", `W/"2"`), 412)
	e.mustCode(e.do("DELETE", "/Users/"+uid, nil, "If-Match", "*"), 204)
	e.mustCode(e.do("GET", "/Users/"+uid, nil), 404)
	e.mustCode(e.do("DELETE", "/Users/"+uid, nil), 404)

	gid := e.createGroup("team")
	e.mustCode(e.do("PUT", "/Groups/nope", map[string]any{"schemas": []string{groupURN}, "displayName": "x"}), 404)
	e.mustCode(e.do("DELETE", "/Groups/"+gid, nil, "If-Match", `W/"5"`), 412)
	if e.group(gid).Deleted {
		t.Fatal("a failed If-Match deleted the group")
	}
	g := e.mustCode(e.do("GET", "/Groups/"+gid, nil), 200)
	if g.Header.Get("Etag") != `W/"1"` {
		t.Fatalf("group ETag %q", g.Header.Get("Etag"))
	}
	// PUT replaces the whole group, members included.
	member := e.createUser("member")
	e.takeChanges()
	g = e.mustCode(e.do("PUT", "/Groups/"+gid, map[string]any{"schemas": []string{groupURN}, "displayName": "team-2", "members": members(member)}, "If-Match", `W/"1"`), 200)
	if got := e.group(gid); got.DisplayName != "team-2" || !slices.Equal(got.MemberIDs, []string{member}) || g.Header.Get("Etag") != `W/"2"` {
		t.Fatalf("PUT group: %+v", got)
	}
	if c := e.takeChanges(); !slices.Equal(c, []string{gid}) {
		t.Fatalf("OnChange %v", c)
	}
}

func TestFilters(t *testing.T) {
	e := newEnv(t)
	alice := e.createUser("Alice", "externalId", "ExtA", "emails", []any{
		map[string]any{"value": "alice@home.example", "type": "home"},
		map[string]any{"value": "alice@work.example", "type": "work"},
	})
	bob := e.createUser("bob", "externalId", "extB", "active", false)
	g1 := e.createGroup("ML Team", alice)
	g2 := e.createGroup("Research", bob)

	for _, tc := range []struct {
		name, endpoint, filter string
		want                   []string // ids; nil: none
		status                 int      // 0: 200
	}{
		{"userName eq is case-insensitive", "/Users", `userName eq "ALICE"`, []string{alice}, 0},
		{"operator case", "/Users", `UserName EQ "alice"`, []string{alice}, 0},
		{"no match", "/Users", `userName eq "carol"`, nil, 0},
		{"externalId eq is case-exact", "/Users", `externalId eq "exta"`, nil, 0},
		{"externalId eq", "/Users", `externalId eq "ExtA"`, []string{alice}, 0},
		{"work email (Entra)", "/Users", `emails[type eq "work"].value eq "alice@work.example"`, []string{alice}, 0},
		{"home email is not work", "/Users", `emails[type eq "work"].value eq "alice@home.example"`, nil, 0},
		{"value path", "/Users", `emails[type eq "work" and value eq "ALICE@WORK.EXAMPLE"]`, []string{alice}, 0},
		{"emails eq compares value", "/Users", `emails eq "alice@home.example"`, []string{alice}, 0},
		{"emails.value sw", "/Users", `emails.value sw "bob@"`, []string{bob}, 0},
		{"active eq false", "/Users", `active eq false`, []string{bob}, 0},
		{"or and not", "/Users", `userName eq "alice" or not (active eq true)`, sorted(alice, bob), 0},
		{"id eq", "/Users", fmt.Sprintf(`id eq %q`, bob), []string{bob}, 0},
		{"escaped quote", "/Users", `userName eq "a\"b"`, nil, 0},
		{"displayName eq is case-insensitive", "/Groups", `displayName eq "ml team"`, []string{g1}, 0},
		{"membership check (Entra)", "/Groups", fmt.Sprintf(`id eq %q and members eq %q`, g1, alice), []string{g1}, 0},
		{"membership check, not a member", "/Groups", fmt.Sprintf(`id eq %q and members eq %q`, g2, alice), nil, 0},
		{"members.value", "/Groups", fmt.Sprintf(`members.value eq %q`, bob), []string{g2}, 0},
		{"unsupported operator", "/Users", `userName gt "a"`, nil, 400},
		{"unknown attribute", "/Users", `shoeSize eq "9"`, nil, 400},
		{"meta is not filterable", "/Users", `meta.lastModified gt "2020-01-01T00:00:00Z"`, nil, 400},
		{"complex without sub-attribute", "/Users", `name eq "x"`, nil, 400},
		{"unknown value path", "/Users", `foo[bar eq "x"]`, nil, 400},
		{"wrong type", "/Users", `userName eq 5`, nil, 400},
		{"syntax", "/Users", `userName eq`, nil, 400},
		{"group attribute on users", "/Users", `displayName eq "x" and members eq "y"`, nil, 400},
		{"too long", "/Users", strings.Repeat("(", 2000) + `userName eq "a"` + strings.Repeat(")", 2000), nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.do("GET", tc.endpoint+q(tc.filter), nil)
			if tc.status != 0 {
				e.mustCode(r, tc.status)
				if r.Body["scimType"] != "invalidFilter" {
					t.Fatalf("scimType %v, want invalidFilter", r.Body["scimType"])
				}
				return
			}
			e.mustCode(r, 200)
			var got []string
			for _, res := range r.Body["Resources"].([]any) {
				got = append(got, res.(map[string]any)["id"].(string))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || r.Body["totalResults"] != float64(len(tc.want)) {
				t.Fatalf("got %v (total %v), want %v", got, r.Body["totalResults"], tc.want)
			}
		})
	}
	// Filters make no sense elsewhere: refuse rather than ignore.
	e.mustCode(e.do("GET", "/Schemas"+q(`id eq "x"`), nil), 400)
	e.mustCode(e.do("GET", "/Users/"+alice+q(`userName eq "x"`), nil), 400)
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.createUser(fmt.Sprint("user", i))
	}
	for _, tc := range []struct {
		query            string
		total, items, at int
	}{
		{"", 5, 5, 1},
		{"?startIndex=0", 5, 5, 1},
		{"?startIndex=-3&count=2", 5, 2, 1},
		{"?startIndex=2&count=2", 5, 2, 2},
		{"?startIndex=4&count=10", 5, 2, 4},
		{"?startIndex=9", 5, 0, 9},
		{"?count=0", 5, 0, 1},
		{"?count=-1", 5, 0, 1},
		{"?count=1000", 5, 5, 1},
		{q(`userName eq "nobody"`), 0, 0, 1},
	} {
		t.Run(tc.query, func(t *testing.T) {
			e := e.in(t)
			r := e.mustCode(e.do("GET", "/Users"+tc.query, nil), 200)
			res, ok := r.Body["Resources"].([]any)
			if !ok || len(res) != tc.items || r.Body["itemsPerPage"] != float64(tc.items) ||
				r.Body["totalResults"] != float64(tc.total) || r.Body["startIndex"] != float64(tc.at) {
				t.Fatalf("got %s", r.Raw)
			}
		})
	}
	e.mustCode(e.do("GET", "/Users?count=ten", nil), 400)
	// Pages are disjoint and cover everything.
	var seen []string
	for start := 1; start <= 5; start += 2 {
		r := e.do("GET", fmt.Sprintf("/Users?startIndex=%d&count=2", start), nil)
		for _, res := range r.Body["Resources"].([]any) {
			seen = append(seen, res.(map[string]any)["userName"].(string))
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"user0", "user1", "user2", "user3", "user4"}) {
		t.Fatalf("paging saw %v", seen)
	}
}

func TestAttributeProjection(t *testing.T) {
	e := newEnv(t)
	uid := e.createUser("carol", "name", map[string]any{"givenName": "Carol", "familyName": "C"}, entURN, map[string]any{"department": "ML"})
	gid := e.createGroup("team", uid)
	for _, tc := range []struct {
		name, target string
		has, lacks   []string // top-level keys
		check        func(map[string]any) bool
	}{
		{"excludedAttributes=members (Entra)", "/Groups?excludedAttributes=members", []string{"displayName", "id", "meta"}, []string{"members"}, nil},
		{"single group excluded", "/Groups/" + gid + "?excludedAttributes=members", []string{"displayName"}, []string{"members"}, nil},
		{"attributes=userName", "/Users/" + uid + "?attributes=userName", []string{"userName", "id", "schemas"}, []string{"emails", "name", "active"}, nil},
		{"attributes=emails.value", "/Users/" + uid + "?attributes=emails.value", []string{"emails"}, []string{"userName"}, func(m map[string]any) bool {
			el := m["emails"].([]any)[0].(map[string]any)
			return len(el) == 1 && el["value"] == "carol@example.com"
		}},
		{"excluded sub-attribute", "/Users/" + uid + "?excludedAttributes=name.givenName", []string{"name", "userName"}, nil, func(m map[string]any) bool {
			n := m["name"].(map[string]any)
			return n["givenName"] == nil && n["familyName"] == "C"
		}},
		{"extension attribute", "/Users/" + uid + "?attributes=" + url.QueryEscape(entURN+":department"), []string{entURN}, []string{"userName"}, nil},
		{"excluded extension", "/Users/" + uid + "?excludedAttributes=" + url.QueryEscape(entURN), []string{"userName"}, []string{entURN}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.mustCode(e.do("GET", tc.target, nil), 200)
			res := r.Body
			if list, ok := r.Body["Resources"].([]any); ok {
				res = list[0].(map[string]any)
			}
			for _, k := range tc.has {
				if _, ok := res[k]; !ok {
					t.Errorf("missing %s: %s", k, r.Raw)
				}
			}
			for _, k := range tc.lacks {
				if _, ok := res[k]; ok {
					t.Errorf("has %s: %s", k, r.Raw)
				}
			}
			if tc.check != nil && !tc.check(res) {
				t.Errorf("wrong content: %s", r.Raw)
			}
		})
	}
	// Projection never touches the stored record.
	if g := e.group(gid); len(g.MemberIDs) != 1 {
		t.Fatalf("stored members changed: %+v", g)
	}
}

func TestPatchGroupMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  func(u1, u2, u3 string) []map[string]any
		want func(u1, u2, u3 string) []string
	}{
		{"add is a union", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("add", "members", members(u2, u3))}
		}, func(u1, u2, u3 string) []string { return sorted(u1, u2, u3) }},
		{"unknown member ids do not reject the list", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("add", "members", members("no-such-user", u3))}
		}, func(u1, u2, u3 string) []string { return sorted(u1, u2, u3) }},
		{"remove members[value eq]", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("remove", fmt.Sprintf("members[value eq %q]", u1), nil)}
		}, func(u1, u2, u3 string) []string { return sorted(u2) }},
		{"remove members with a value list (Entra)", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("Remove", "members", []any{map[string]any{"value": u2, "$ref": nil}})}
		}, func(u1, u2, u3 string) []string { return sorted(u1) }},
		{"remove members without value clears", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("remove", "members", nil)}
		}, func(u1, u2, u3 string) []string { return nil }},
		{"replace members [] clears", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("replace", "members", []any{})}
		}, func(u1, u2, u3 string) []string { return nil }},
		{"replace members", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("Replace", "members", members(u3))}
		}, func(u1, u2, u3 string) []string { return sorted(u3) }},
		{"path-less replace with members", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("replace", "", map[string]any{"members": members(u2)})}
		}, func(u1, u2, u3 string) []string { return sorted(u2) }},
		{"Okta's remove, add, replace in one PATCH", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{
				op("remove", fmt.Sprintf("members[value eq %q]", u2), nil),
				op("add", "members", []any{map[string]any{"value": u3, "display": "u3"}}),
				op("replace", "members", members(u1, u3)),
			}
		}, func(u1, u2, u3 string) []string { return sorted(u1, u3) }},
		{"remove with an or filter", func(u1, u2, u3 string) []map[string]any {
			return []map[string]any{op("remove", fmt.Sprintf("members[value eq %q or value eq %q]", u1, u2), nil)}
		}, func(u1, u2, u3 string) []string { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			u1, u2, u3 := e.createUser("u1"), e.createUser("u2"), e.createUser("u3")
			gid := e.createGroup("team", u1, u2)
			e.takeChanges()
			r := e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(tc.ops(u1, u2, u3)...)), 200)
			want := tc.want(u1, u2, u3)
			g := e.group(gid)
			if !slices.Equal(g.MemberIDs, want) {
				t.Fatalf("stored members %v, want %v", g.MemberIDs, want)
			}
			if got := len(asMapSlice(r.Body["members"])); got != len(want) {
				t.Fatalf("response has %d members, want %d: %s", got, len(want), r.Raw)
			}
			if g.DisplayName != "team" {
				t.Fatalf("displayName changed: %q", g.DisplayName)
			}
			if c := e.takeChanges(); !slices.Equal(c, []string{gid}) {
				t.Fatalf("OnChange calls %v", c)
			}
		})
	}
}

func asMapSlice(v any) []any { l, _ := v.([]any); return l }

func TestPatchGroupAttributes(t *testing.T) {
	e := newEnv(t)
	u := e.createUser("u")
	gid := e.createGroup("team", u)
	other := e.createGroup("other")
	e.takeChanges()

	// Okta renames with a path-less replace carrying the id.
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("replace", "", map[string]any{"id": gid, "displayName": "team-2"}))), 200)
	if g := e.group(gid); g.DisplayName != "team-2" || len(g.MemberIDs) != 1 || g.Version != 2 {
		t.Fatalf("rename: %+v", g)
	}
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("Add", "externalId", "ext-9"))), 200)
	if g := e.group(gid); g.ExternalID != "ext-9" {
		t.Fatalf("externalId: %+v", g)
	}
	// A no-op PATCH writes nothing and wakes nobody.
	e.takeChanges()
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("add", "members", members(u)))), 200)
	if g := e.group(gid); g.Version != 3 || len(e.takeChanges()) != 0 {
		t.Fatalf("no-op PATCH wrote: %+v", g)
	}

	for _, tc := range []struct {
		name string
		ops  []map[string]any
		code int
		kind string
	}{
		{"rename onto another group (case-insensitive), after a member change", []map[string]any{op("remove", "members", nil), op("replace", "displayName", "OTHER")}, 409, "uniqueness"},
		{"remove displayName", []map[string]any{op("remove", "displayName", nil)}, 400, "invalidValue"},
		{"blank displayName", []map[string]any{op("replace", "displayName", " ")}, 400, "invalidValue"},
		{"unknown op", []map[string]any{op("move", "displayName", "x")}, 400, ""},
		{"unknown path", []map[string]any{op("replace", "owner", "x")}, 400, "invalidPath"},
		{"remove without path", []map[string]any{op("remove", "", nil)}, 400, "noTarget"},
		{"id is not patchable", []map[string]any{op("replace", "id", "x")}, 400, "invalidPath"},
		{"sub-attribute of members", []map[string]any{op("replace", "members.value", "x")}, 400, "invalidPath"},
		{"filter on a single-valued attribute", []map[string]any{op("replace", `displayName[value eq "x"]`, "y")}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(tc.ops...)), tc.code)
			if tc.kind != "" && r.Body["scimType"] != tc.kind {
				t.Fatalf("scimType %v, want %s", r.Body["scimType"], tc.kind)
			}
			// Each PATCH is one transaction: nothing of a failed one is stored.
			if g := e.group(gid); g.DisplayName != "team-2" || len(g.MemberIDs) != 1 || g.Version != 3 {
				t.Fatalf("failed PATCH left changes: %+v", g)
			}
		})
	}
	e.mustCode(e.do("PATCH", "/Groups/nope", patch(op("add", "members", members(u)))), 404)
	if e.group(other).DisplayName != "other" {
		t.Fatal("other group changed")
	}
}

func TestPatchUser(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ops   []map[string]any
		check func(state.SCIMUser) bool
	}{
		{"Okta deactivation", []map[string]any{op("replace", "", map[string]any{"active": false})}, func(u state.SCIMUser) bool { return !u.Active }},
		{"Entra's \"False\" string", []map[string]any{op("Replace", "active", "False")}, func(u state.SCIMUser) bool {
			return !u.Active && u.Attributes["active"] == false
		}},
		{"Entra's path-less \"False\"", []map[string]any{op("Replace", "", map[string]any{"active": "False"})}, func(u state.SCIMUser) bool { return !u.Active }},
		{"replace the work email", []map[string]any{op("Replace", `emails[type eq "work"].value`, "new@example.com")}, func(u state.SCIMUser) bool {
			return u.Email == "new@example.com" && len(list(u.Attributes["emails"])) == 1
		}},
		{"add a home email that did not exist", []map[string]any{op("Add", `emails[type eq "home"].value`, "home@example.com")}, func(u state.SCIMUser) bool {
			return len(list(u.Attributes["emails"])) == 2 && u.Email == "dave@example.com"
		}},
		{"remove the work email", []map[string]any{op("remove", `emails[type eq "work"]`, nil)}, func(u state.SCIMUser) bool {
			return u.Attributes["emails"] == nil && u.Email == ""
		}},
		{"name sub-attribute", []map[string]any{op("Add", "name.givenName", "Dave"), op("Replace", "name.familyName", "D")}, func(u state.SCIMUser) bool {
			n := asMap(u.Attributes["name"])
			return n["givenName"] == "Dave" && n["familyName"] == "D"
		}},
		{"complex replace merges", []map[string]any{op("replace", "name", map[string]any{"givenName": "X"}), op("replace", "name", map[string]any{"familyName": "Y"})}, func(u state.SCIMUser) bool {
			n := asMap(u.Attributes["name"])
			return n["givenName"] == "X" && n["familyName"] == "Y"
		}},
		{"enterprise extension", []map[string]any{op("Add", entURN+":department", "ML")}, func(u state.SCIMUser) bool {
			return asMap(u.Attributes[entURN])["department"] == "ML"
		}},
		{"path-less extension object", []map[string]any{op("add", "", map[string]any{entURN: map[string]any{"employeeNumber": "7"}})}, func(u state.SCIMUser) bool {
			return asMap(u.Attributes[entURN])["employeeNumber"] == "7"
		}},
		{"rename", []map[string]any{op("replace", "userName", "david")}, func(u state.SCIMUser) bool { return u.UserName == "david" }},
		{"remove externalId", []map[string]any{op("remove", "externalId", nil)}, func(u state.SCIMUser) bool { return u.ExternalID == "" }},
		{"a password is never stored", []map[string]any{op("replace", "password", "hunter2"), op("replace", "", map[string]any{"password": "x", "title": "T"})}, func(u state.SCIMUser) bool {
			return u.Attributes["password"] == nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			uid := e.createUser("dave", "externalId", "ext-d")
			gid := e.createGroup("team", uid)
			e.takeChanges()
			e.mustCode(e.do("PATCH", "/Users/"+uid, patch(tc.ops...)), 200)
			if u := e.user(uid); !tc.check(u) {
				t.Fatalf("stored user: %+v", u)
			}
			if c := e.takeChanges(); !slices.Equal(c, []string{gid}) {
				t.Fatalf("the user's group was not reported: %v", c)
			}
		})
	}
	e := newEnv(t)
	uid := e.createUser("erin")
	e.createUser("frank")
	for _, tc := range []struct {
		name string
		ops  []map[string]any
		code int
	}{
		{"rename onto another user", []map[string]any{op("replace", "userName", "FRANK")}, 409},
		{"remove userName", []map[string]any{op("remove", "userName", nil)}, 400},
		{"groups are read-only", []map[string]any{op("add", "groups", []any{map[string]any{"value": "g"}})}, 400},
		{"not a boolean", []map[string]any{op("replace", "active", "maybe")}, 400},
		{"replace a filtered element with no match and no seed", []map[string]any{op("replace", `emails[value co "zzz"].type`, "work")}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			e.mustCode(e.do("PATCH", "/Users/"+uid, patch(tc.ops...)), tc.code)
			if u := e.user(uid); u.Version != 1 {
				t.Fatalf("failed PATCH stored: %+v", u)
			}
		})
	}
}

func TestDeleteGroupKeepsRecordForDaemon(t *testing.T) {
	e := newEnv(t)
	uid := e.createUser("u")
	gid := e.createGroup("team", uid)
	dup := e.mustCode(e.do("POST", "/Groups", map[string]any{"schemas": []string{groupURN}, "displayName": "TEAM"}), 409)
	if dup.Body["scimType"] != "uniqueness" {
		t.Fatalf("duplicate group: %s", dup.Raw)
	}
	e.takeChanges()
	e.mustCode(e.do("DELETE", "/Groups/"+gid, nil), 204)
	if c := e.takeChanges(); !slices.Equal(c, []string{gid}) {
		t.Fatalf("OnChange %v", c)
	}
	e.mustCode(e.do("GET", "/Groups/"+gid, nil), 404)
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("add", "members", members(uid)))), 404)
	e.mustCode(e.do("DELETE", "/Groups/"+gid, nil), 404)
	if r := e.do("GET", "/Groups", nil); r.Body["totalResults"] != 0.0 {
		t.Fatalf("deleted group listed: %s", r.Raw)
	}
	// The daemon keeps the name (to orphan the team), not the members.
	if g := e.group(gid); !g.Deleted || g.DisplayName != "team" || len(g.MemberIDs) != 0 {
		t.Fatalf("daemon's record of the deleted group: %+v", g)
	}
	// The IdP may push a group of the same name again.
	e.createGroup("team")
}

func TestDeleteUserLeavesGroups(t *testing.T) {
	e := newEnv(t)
	a, b := e.createUser("a"), e.createUser("b")
	g := e.createGroup("team", a, b)
	e.takeChanges()
	e.mustCode(e.do("DELETE", "/Users/"+a, nil), 204)
	if got := e.group(g).MemberIDs; !slices.Equal(got, []string{b}) {
		t.Fatalf("members %v", got)
	}
	if c := e.takeChanges(); !slices.Equal(c, []string{g}) {
		t.Fatalf("OnChange %v", c)
	}
}

// Parallel PATCHes of one group (Okta pushes memberships concurrently) must all land.
func TestConcurrentPatches(t *testing.T) {
	e := newEnv(t)
	gid := e.createGroup("team")
	var ids []string
	for i := range 10 {
		ids = append(ids, e.createUser(fmt.Sprint("u", i)))
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if r := e.do("PATCH", "/Groups/"+gid, patch(op("add", "members", members(id)))); r.Code != 200 {
				t.Errorf("PATCH: %d %s", r.Code, r.Raw)
			}
		})
	}
	wg.Wait()
	if got := e.group(gid).MemberIDs; !slices.Equal(got, sorted(ids...)) {
		t.Fatalf("lost updates: %d of %d members", len(got), len(ids))
	}
}

// A store failure is the one 5xx, and its detail is not sent.
func TestStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.createUser("u")
	e.db.Close()
	for _, tc := range []struct{ method, target string }{{"GET", "/Users"}, {"GET", "/Groups/x"}, {"POST", "/Groups"}} {
		r := e.do(tc.method, tc.target, map[string]any{"schemas": []string{groupURN}, "displayName": "x"})
		e.mustCode(r, 500)
		if strings.Contains(r.Raw, "database") || strings.Contains(r.Raw, ".db") {
			t.Fatalf("store detail leaked: %s", r.Raw)
		}
	}
}

// TestGroupMemberDisplay: a member shows as its displayName, as Entra and Okta show it, and as its
// userName when it has none.
func TestGroupMemberDisplay(t *testing.T) {
	e := newEnv(t)
	ada := e.createUser("ada", "displayName", "Ada Lovelace")
	bob := e.createUser("bob")
	gid := e.createGroup("team-1", ada, bob)
	r := e.mustCode(e.do("GET", "/Groups/"+gid, nil), http.StatusOK)
	got := map[string]string{}
	for _, m := range r.Body["members"].([]any) {
		m := m.(map[string]any)
		got[m["value"].(string)] = m["display"].(string)
	}
	if want := map[string]string{ada: "Ada Lovelace", bob: "bob"}; !maps.Equal(got, want) {
		t.Errorf("member display = %v, want %v", got, want)
	}
}
