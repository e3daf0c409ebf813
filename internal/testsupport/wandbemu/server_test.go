package wandbemu_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
)

const apiKey = "emu-test-key"

type env struct {
	t   *testing.T
	emu *wandbemu.Server
	url string // server root, without /scim
}

func start(t *testing.T, o wandbemu.Options) *env {
	t.Helper()
	if o.APIKey == "" {
		o.APIKey = apiKey
	}
	emu := wandbemu.New(o)
	srv := httptest.NewServer(emu) // httptest listens on 127.0.0.1
	t.Cleanup(func() { emu.Close(); srv.Close() })
	return &env{t: t, emu: emu, url: srv.URL}
}

type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// do sends body (a string is sent as is, anything else as JSON) with a valid bearer token.
func (e *env) do(method, path string, body any) resp {
	e.t.Helper()
	return e.doWith(method, path, body, map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": "application/scim+json"})
}

func (e *env) doWith(method, path string, body any, hdr map[string]string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	r := resp{status: res.StatusCode, header: res.Header}
	if r.raw, err = io.ReadAll(res.Body); err != nil {
		e.t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/scim+json" {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(r.raw, &r.body); err != nil {
		e.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, r.raw, err)
	}
	return r
}

// wantError checks a SCIM error body: the status as a string, the error schema, and a detail containing want.
func (r resp) wantError(t *testing.T, status int, scimType, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if r.body["status"] != fmt.Sprint(status) || fmt.Sprint(r.body["schemas"]) != "["+wandb.SchemaError+"]" {
		t.Fatalf("not a SCIM error body with string status: %s", r.raw)
	}
	if d, _ := r.body["detail"].(string); !strings.Contains(d, want) {
		t.Fatalf("detail %q does not contain %q", d, want)
	}
	if scimType != "" && r.body["scimType"] != scimType {
		t.Fatalf("scimType %v, want %q", r.body["scimType"], scimType)
	}
}

func newGroup(name string, sb *wandb.StorageBucket, members ...string) map[string]any {
	g := map[string]any{"schemas": []string{wandb.SchemaGroup}, "displayName": name, "members": []map[string]string{}}
	for _, m := range members {
		g["members"] = append(g["members"].([]map[string]string), map[string]string{"value": m})
	}
	if sb != nil {
		g["storageBucket"] = sb
	}
	return g
}

func patch(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{wandb.SchemaPatchOp}, "Operations": ops}
}

func memberIDs(t *testing.T, g wandbemu.EmuGroup) []string {
	t.Helper()
	ids := []string{}
	for _, m := range g.Members {
		ids = append(ids, m.Value)
	}
	return ids
}

func TestAuth(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"bearer", "Bearer " + apiKey, 200},
		{"bearer lowercase scheme", "bearer " + apiKey, 200},
		{"basic admin user", basic("admin:" + apiKey), 200},
		{"basic service account", basic(":" + apiKey), 200},
		{"bearer wrong key", "Bearer nope", 401},
		{"basic other user", basic("mallory:" + apiKey), 401},
		{"basic wrong key", basic("admin:nope"), 401},
		{"no header", "", 401},
		{"unknown scheme", "Token " + apiKey, 401},
		{"bearer prefix of key", "Bearer " + apiKey[:4], 401},
	}
	e := start(t, wandbemu.Options{Username: "admin"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.doWith("GET", "/scim/Groups", nil, map[string]string{"Authorization": tt.header})
			if tt.want == 401 {
				r.wantError(t, 401, "", "API key")
				return
			}
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.raw)
			}
		})
	}
	t.Run("empty APIKey rejects everything", func(t *testing.T) {
		emu := wandbemu.New(wandbemu.Options{})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/scim/Groups", nil)
		req.Header.Set("Authorization", "Bearer ")
		emu.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Fatalf("status %d, want 401", rec.Code)
		}
	})
}

// fakeChecker rejects buckets listed in bad and records what it was asked.
type fakeChecker struct {
	mu    sync.Mutex
	bad   map[string]string
	asked []wandb.StorageBucket
}

func (f *fakeChecker) CheckBucket(_ context.Context, sb wandb.StorageBucket) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, sb)
	if reason, ok := f.bad[sb.Name]; ok {
		return errors.New(reason)
	}
	return nil
}

func TestCreateGroup(t *testing.T) {
	good := &wandb.StorageBucket{Name: "wandb-ml", Provider: "AWS", KMSKeyID: "arn:aws:kms:us-east-1:1:key/k"}
	tests := []struct {
		name     string
		body     any
		ctype    string
		status   int
		scimType string
		detail   string
	}{
		{"with storage", newGroup("ml", good), "", 201, "", ""},
		{"without storage", newGroup("plain", nil), "", 201, "", ""},
		{"with a member by email", newGroup("withmember", nil, "ada@example.com"), "", 201, "", ""},
		{"every provider spelled right", newGroup("cw", &wandb.StorageBucket{Name: "b", Provider: "COREWEAVE"}), "", 201, "", ""},
		{"plain application/json", newGroup("jsonct", nil), "application/json; charset=utf-8", 201, "", ""},
		{"duplicate name", newGroup("taken", nil), "", 409, "uniqueness", `"taken" already exists`},
		{"displayName missing", map[string]any{"schemas": []string{wandb.SchemaGroup}}, "", 400, "invalidValue", "displayName is required"},
		{"displayName empty", newGroup("", nil), "", 400, "invalidValue", "displayName is required"},
		{"displayName upper case", newGroup("ML", nil), "", 400, "invalidValue", "lowercase"},
		{"displayName with space", newGroup("ml team", nil), "", 400, "invalidValue", "spaces"},
		{"schemas missing", map[string]any{"displayName": "x"}, "", 400, "invalidSyntax", wandb.SchemaGroup},
		{"provider lower case", newGroup("p1", &wandb.StorageBucket{Name: "b", Provider: "aws"}), "", 400, "invalidValue", "allowed values are AWS, GCP, AZURE, COREWEAVE, MINIO"},
		{"provider unknown", newGroup("p2", &wandb.StorageBucket{Name: "b", Provider: "S3"}), "", 400, "invalidValue", `"S3" is invalid`},
		{"provider empty", newGroup("p3", &wandb.StorageBucket{Name: "b"}), "", 400, "invalidValue", "allowed values"},
		{"bucket name empty", newGroup("p4", &wandb.StorageBucket{Provider: "GCP"}), "", 400, "invalidValue", "storageBucket.name is required"},
		{"unknown member", newGroup("p5", nil, "nobody@example.com"), "", 400, "invalidValue", "nobody@example.com"},
		{"not JSON", `{"displayName":`, "", 400, "invalidSyntax", "not valid JSON"},
		{"wrong content type", newGroup("p6", nil), "text/plain", 415, "", "Content-Type"},
		{"members missing", map[string]any{"schemas": []string{wandb.SchemaGroup}, "displayName": "nomembers"}, "", 400, "invalidValue", "members is required"},
		{"underscore in name", newGroup("ml_team", nil), "", 400, "invalidValue", "lowercase letters, numbers and hyphens only"},
		{"dot in name", newGroup("ml.team", nil), "", 400, "invalidValue", "lowercase letters, numbers and hyphens only"},
		{"hyphens and digits", newGroup("ml-team-2", nil), "", 201, "", ""},
	}
	e := start(t, wandbemu.Options{})
	e.emu.AddUser("ada", "ada@example.com")
	if r := e.do("POST", "/scim/Groups", newGroup("taken", nil)); r.status != 201 {
		t.Fatalf("setup: %s", r.raw)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.emu.Groups())
			ct := tt.ctype
			if ct == "" {
				ct = "application/scim+json"
			}
			r := e.doWith("POST", "/scim/Groups", tt.body, map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": ct})
			after := len(e.emu.Groups())
			if tt.status != 201 {
				r.wantError(t, tt.status, tt.scimType, tt.detail)
				if after != before {
					t.Fatal("a refused create made a team")
				}
				return
			}
			if r.status != 201 || after != before+1 {
				t.Fatalf("status %d, teams %d -> %d: %s", r.status, before, after, r.raw)
			}
		})
	}
}

// TestDeploymentProviders: Multi-tenant Cloud takes no Azure or S3-compatible team storage.
func TestDeploymentProviders(t *testing.T) {
	for _, tt := range []struct {
		deployment, provider string
		status               int
	}{
		{"multi-tenant", "AWS", 201}, {"multi-tenant", "GCP", 201}, {"multi-tenant", "COREWEAVE", 201},
		{"multi-tenant", "AZURE", 400}, {"multi-tenant", "MINIO", 400},
		{"dedicated", "AZURE", 201}, {"dedicated", "MINIO", 201}, {"", "MINIO", 201},
	} {
		e := start(t, wandbemu.Options{Deployment: tt.deployment})
		r := e.do("POST", "/scim/Groups", newGroup("t", &wandb.StorageBucket{Name: "b", Provider: tt.provider}))
		if tt.status == 400 {
			r.wantError(t, 400, "invalidValue", "not available on Multi-tenant Cloud")
		} else if r.status != tt.status {
			t.Errorf("%s %s: status %d: %s", tt.deployment, tt.provider, r.status, r.raw)
		}
	}
}

// TestServiceAccounts: W&B puts every organisation service account into each new team; member
// operations are for users, so they neither add nor remove one, and clearing or replacing the list
// keeps them.
func TestServiceAccounts(t *testing.T) {
	e := start(t, wandbemu.Options{ServiceAccounts: []string{"ci-bot"}})
	sa := e.emu.ServiceAccountIDs()
	ada := e.emu.AddUser("ada", "ada@example.com")
	id := e.do("POST", "/scim/Groups", newGroup("ml", nil, "ada@example.com")).body["id"].(string)
	members := func() []string { return memberIDs(t, e.emu.Groups()[0]) }
	if got := members(); !reflect.DeepEqual(got, []string{ada, sa[0]}) {
		t.Fatalf("members of a new team %v, want ada and the service account", got)
	}
	e.do("PATCH", "/scim/Groups/"+id, patch(map[string]any{"op": "remove", "path": `members[value eq "` + sa[0] + `"]`})).wantError(t, 400, "invalidValue", "service account")
	e.do("PATCH", "/scim/Groups/"+id, patch(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": sa[0]}}})).wantError(t, 400, "invalidValue", "service account")
	if r := e.do("PATCH", "/scim/Groups/"+id, patch(map[string]any{"op": "remove", "path": "members"})); r.status != 200 {
		t.Fatalf("remove all: %s", r.raw)
	}
	if got := members(); !reflect.DeepEqual(got, []string{sa[0]}) {
		t.Fatalf("after removing every member: %v, want the service account alone", got)
	}
	if r := e.do("PUT", "/scim/Groups/"+id, newGroup("ml", nil, "ada@example.com")); r.status != 200 {
		t.Fatalf("PUT: %s", r.raw)
	}
	if got := members(); !reflect.DeepEqual(got, []string{ada, sa[0]}) {
		t.Fatalf("after PUT: %v, want ada and the service account", got)
	}
}

func TestCreatedGroupShape(t *testing.T) {
	e := start(t, wandbemu.Options{BaseURL: "http://emu.test/scim/"})
	ada := e.emu.AddUser("ada", "ada@example.com")
	sb := &wandb.StorageBucket{Name: "b", Provider: "MINIO", Path: "teams/ml"}

	r := e.do("POST", "/scim/Groups", newGroup("ml", sb, "ada@example.com"))
	if r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	id, _ := r.body["id"].(string)
	if raw, err := base64.StdEncoding.DecodeString(id); err != nil || string(raw) != "Group:1" {
		t.Fatalf("id %q is not base64 of Group:1", id)
	}
	if r.header.Get("Location") != "http://emu.test/scim/Groups/"+id {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	if _, ok := r.body["storageBucket"]; ok {
		t.Error("responses must not echo storageBucket: W&B does not document it")
	}
	wantMembers := []any{map[string]any{"Value": ada, "Ref": "", "Type": "", "Display": "ada"}}
	if !reflect.DeepEqual(r.body["members"], wantMembers) {
		t.Errorf("members %v, want %v (capitalised keys, resolved to the user id)", r.body["members"], wantMembers)
	}
	m, _ := r.body["meta"].(map[string]any)
	if m["resourceType"] != "Group" || m["location"] != "http://emu.test/scim/Groups/"+id {
		t.Errorf("meta %v", m)
	}

	empty := e.do("POST", "/scim/Groups", newGroup("empty", nil))
	if v, ok := empty.body["members"]; !ok || v != nil {
		t.Errorf(`an empty team must answer "members": null, got %s`, empty.raw)
	}

	want := []wandbemu.EmuGroup{
		{ID: id, DisplayName: "ml", Members: []wandb.Member{{Value: ada, Display: "ada"}}, StorageBucket: sb},
		{ID: empty.body["id"].(string), DisplayName: "empty"},
	}
	if got := e.emu.Groups(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Groups() = %+v, want %+v", got, want)
	}
	// The snapshot is a copy.
	e.emu.Groups()[0].StorageBucket.Name = "changed"
	if e.emu.Groups()[0].StorageBucket.Name != "b" {
		t.Fatal("Groups() shares storage with the emulator")
	}
}

func TestCheckerRejectsBucket(t *testing.T) {
	chk := &fakeChecker{bad: map[string]string{"missing": "NoSuchBucket: the bucket does not exist"}}
	e := start(t, wandbemu.Options{Checker: chk})
	bad := wandb.StorageBucket{Name: "missing", Provider: "AWS"}
	e.do("POST", "/scim/Groups", newGroup("ml", &bad)).wantError(t, 400, "invalidValue", `storage bucket "missing" (AWS) failed W&B's check, team not created: NoSuchBucket`)
	if g := e.emu.Groups(); len(g) != 0 {
		t.Fatalf("a rejected bucket created a team: %+v", g)
	}
	if r := e.do("GET", `/scim/Groups?filter=displayName+eq+%22ml%22`, nil); r.body["totalResults"] != 0.0 {
		t.Fatalf("team visible after rejection: %s", r.raw)
	}
	good := wandb.StorageBucket{Name: "there", Provider: "AWS", Path: "p"}
	if r := e.do("POST", "/scim/Groups", newGroup("ml", &good)); r.status != 201 {
		t.Fatalf("the same name with a good bucket: %d %s", r.status, r.raw)
	}
	if !reflect.DeepEqual(chk.asked, []wandb.StorageBucket{bad, good}) {
		t.Fatalf("checker asked %+v", chk.asked)
	}
	// Teams without storage use the instance default: nothing to check.
	e.do("POST", "/scim/Groups", newGroup("default-storage", nil))
	if len(chk.asked) != 2 {
		t.Fatal("checker called for a team without storageBucket")
	}
}

func TestListGroups(t *testing.T) {
	e := start(t, wandbemu.Options{MaxPageSize: 3})
	var names []string
	for i := range 5 {
		names = append(names, fmt.Sprintf("team-%d", i+1))
		e.do("POST", "/scim/Groups", newGroup(names[i], nil))
	}
	tests := []struct {
		name      string
		query     string
		wantNames []string
		wantTotal int
		wantStart int
	}{
		{"all, capped by page size", "", names[:3], 5, 1},
		{"second page", "?startIndex=4&count=3", names[3:], 5, 4},
		{"count below page size", "?startIndex=2&count=2", names[1:3], 5, 2},
		{"count above page size is capped", "?count=1000", names[:3], 5, 1},
		{"startIndex below 1 is 1", "?startIndex=0&count=1", names[:1], 5, 1},
		{"negative count is 0", "?count=-1", nil, 5, 1},
		{"beyond the end", "?startIndex=9", nil, 5, 9},
		{"filter match", `?filter=` + urlQuery(`displayName eq "team-4"`), names[3:4], 1, 1},
		{"filter no match", `?filter=` + urlQuery(`displayName eq "nope"`), nil, 0, 1},
		{"filter attribute name case-insensitive", `?filter=` + urlQuery(`DISPLAYNAME EQ "team-2"`), names[1:2], 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", "/scim/Groups"+tt.query, nil)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			keys := []string{}
			for k := range r.body {
				keys = append(keys, k)
			}
			if len(keys) != 5 || fmt.Sprint(r.body["schemas"]) != "["+wandb.SchemaListResponse+"]" {
				t.Fatalf("not a ListResponse: %s", r.raw)
			}
			res, ok := r.body["Resources"].([]any)
			if !ok {
				t.Fatalf("Resources must be a list, even empty: %s", r.raw)
			}
			var got []string
			for _, g := range res {
				got = append(got, g.(map[string]any)["displayName"].(string))
			}
			if !reflect.DeepEqual(got, tt.wantNames) || r.body["totalResults"] != float64(tt.wantTotal) ||
				r.body["itemsPerPage"] != float64(len(tt.wantNames)) || r.body["startIndex"] != float64(tt.wantStart) {
				t.Fatalf("got %v total %v per page %v start %v", got, r.body["totalResults"], r.body["itemsPerPage"], r.body["startIndex"])
			}
		})
	}
	bad := []struct{ name, query, scimType, detail string }{
		{"filter on id", `?filter=` + urlQuery(`id eq "x"`), "invalidFilter", `filtering on "id" is not supported`},
		{"filter with co", `?filter=` + urlQuery(`displayName co "x"`), "invalidFilter", "not supported"},
		{"filter with or", `?filter=` + urlQuery(`displayName eq "a" or displayName eq "b"`), "invalidFilter", "not supported"},
		{"filter unquoted", `?filter=` + urlQuery(`displayName eq team-1`), "invalidFilter", "not supported"},
		{"startIndex not a number", "?startIndex=x", "invalidValue", "startIndex"},
		{"count not a number", "?count=1.5", "invalidValue", "count"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			e.do("GET", "/scim/Groups"+tt.query, nil).wantError(t, 400, tt.scimType, tt.detail)
		})
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer(" ", "%20", `"`, "%22").Replace(s)
}

func TestGetGroup(t *testing.T) {
	e := start(t, wandbemu.Options{})
	id := e.do("POST", "/scim/Groups", newGroup("ml", &wandb.StorageBucket{Name: "b", Provider: "GCP"})).body["id"].(string)
	r := e.do("GET", "/scim/Groups/"+id, nil)
	if r.status != 200 || r.body["displayName"] != "ml" || r.body["id"] != id {
		t.Fatalf("GET: %d %s", r.status, r.raw)
	}
	if _, ok := r.body["storageBucket"]; ok {
		t.Error("GET must not echo storageBucket")
	}
	e.do("GET", "/scim/Groups/R3JvdXA6OTk=", nil).wantError(t, 404, "", "not found")
}

func TestPatchGroup(t *testing.T) {
	tests := []struct {
		name        string
		body        any
		status      int
		scimType    string
		detail      string
		wantMembers []string // user names, after the request
		wantNull    bool     // response has "members": null
	}{
		{"add by email", patch(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": "bob@example.com"}}}), 200, "", "", []string{"ada", "bob"}, false},
		{"add by id, already a member", patch(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": "ID:ada"}}}), 200, "", "", []string{"ada"}, false},
		{"op and path case-insensitive", patch(map[string]any{"op": "Add", "path": "Members", "value": []map[string]string{{"value": "bob@example.com"}}}), 200, "", "", []string{"ada", "bob"}, false},
		{"remove one", patch(map[string]any{"op": "remove", "path": `members[value eq "ID:ada"]`}), 200, "", "", nil, true},
		{"remove one not a member", patch(map[string]any{"op": "remove", "path": `members[value eq "ID:bob"]`}), 200, "", "", []string{"ada"}, false},
		{"remove all", patch(map[string]any{"op": "remove", "path": "members"}), 200, "", "", nil, true},
		{"several ops", patch(
			map[string]any{"op": "remove", "path": "members"},
			map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": "bob@example.com"}}},
		), 200, "", "", []string{"bob"}, false},
		{"rename", patch(map[string]any{"op": "replace", "path": "displayName", "value": "other"}), 400, "mutability", "cannot be changed", []string{"ada"}, false},
		{"change storage", patch(map[string]any{"op": "replace", "path": "storageBucket.name", "value": "other"}), 400, "mutability", "cannot be changed", []string{"ada"}, false},
		{"path-less rename", patch(map[string]any{"op": "replace", "value": map[string]any{"displayName": "other"}}), 400, "mutability", "cannot be changed", []string{"ada"}, false},
		{"path-less storage", patch(map[string]any{"op": "add", "value": map[string]any{"storageBucket": map[string]string{"name": "x"}}}), 400, "mutability", "cannot be changed", []string{"ada"}, false},
		{"path-less members", patch(map[string]any{"op": "add", "value": map[string]any{"members": []any{}}}), 400, "invalidPath", "membership only", []string{"ada"}, false},
		{"replace members", patch(map[string]any{"op": "replace", "path": "members", "value": []any{map[string]any{"value": "bob@example.com"}}}), 200, "", "", []string{"bob"}, false},
		{"replace members with none", patch(map[string]any{"op": "replace", "path": "members", "value": []any{}}), 200, "", "", nil, true},
		{"replace with a filter", patch(map[string]any{"op": "replace", "path": `members[value eq "ID:ada"]`, "value": []any{}}), 400, "invalidValue", "replace takes path", []string{"ada"}, false},
		{"add with filter", patch(map[string]any{"op": "add", "path": `members[value eq "x"]`, "value": []any{}}), 400, "invalidValue", "add takes", []string{"ada"}, false},
		{"add empty list", patch(map[string]any{"op": "add", "path": "members", "value": []any{}}), 400, "invalidValue", "add takes", []string{"ada"}, false},
		{"bad filter in path", patch(map[string]any{"op": "remove", "path": `members[display eq "ada"]`}), 400, "invalidPath", "not supported", []string{"ada"}, false},
		{"all or nothing", patch(
			map[string]any{"op": "remove", "path": "members"},
			map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": "nobody@example.com"}}},
		), 400, "invalidValue", "nobody@example.com", []string{"ada"}, false},
		{"no PatchOp schema", map[string]any{"Operations": []any{map[string]any{"op": "remove", "path": "members"}}}, 400, "invalidSyntax", wandb.SchemaPatchOp, []string{"ada"}, false},
		{"no operations", patch(), 400, "invalidSyntax", "Operations", []string{"ada"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, wandbemu.Options{})
			ids := map[string]string{"ada": e.emu.AddUser("ada", "ada@example.com"), "bob": e.emu.AddUser("bob", "bob@example.com")}
			sb := &wandb.StorageBucket{Name: "b", Provider: "AWS"}
			id := e.do("POST", "/scim/Groups", newGroup("ml", sb, "ada@example.com")).body["id"].(string)
			// Tests name users "ID:<name>"; substitute real ids.
			raw, _ := json.Marshal(tt.body)
			body := string(raw)
			for n, uid := range ids {
				body = strings.ReplaceAll(body, "ID:"+n, uid)
			}
			r := e.do("PATCH", "/scim/Groups/"+id, body)
			if tt.status != 200 {
				r.wantError(t, tt.status, tt.scimType, tt.detail)
			} else if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			} else if v, ok := r.body["members"]; tt.wantNull != (ok && v == nil) {
				t.Fatalf("members in response: %s", r.raw)
			}
			g := e.emu.Groups()[0]
			var want []string
			for _, n := range tt.wantMembers {
				want = append(want, ids[n])
			}
			if got := memberIDs(t, g); !reflect.DeepEqual(got, append([]string{}, want...)) {
				t.Fatalf("members %v, want %v", got, want)
			}
			if g.DisplayName != "ml" || !reflect.DeepEqual(g.StorageBucket, sb) {
				t.Fatalf("name or storage changed: %+v", g)
			}
		})
	}
	t.Run("unknown team", func(t *testing.T) {
		e := start(t, wandbemu.Options{})
		e.do("PATCH", "/scim/Groups/R3JvdXA6OQ==", patch(map[string]any{"op": "remove", "path": "members"})).wantError(t, 404, "", "not found")
	})
}

func TestPutGroup(t *testing.T) {
	sb := wandb.StorageBucket{Name: "b", Provider: "AWS", Path: "p"}
	other := sb
	other.Path = "q"
	tests := []struct {
		name        string
		body        map[string]any
		withStorage bool // the team was created with sb
		status      int
		detail      string
		wantMembers int
	}{
		{"replace members", newGroup("ml", nil, "bob@example.com", "ada@example.com"), true, 200, "", 2},
		{"empty members", newGroup("ml", nil), true, 200, "", 0},
		{"displayName omitted", map[string]any{"schemas": []string{wandb.SchemaGroup}, "members": []any{}}, true, 200, "", 0},
		{"same storage repeated", newGroup("ml", &sb, "bob@example.com"), true, 200, "", 1},
		{"storage changed", newGroup("ml", &other), true, 400, "immutable", 1},
		{"storage added", newGroup("ml", &sb), false, 400, "immutable", 1},
		{"renamed", newGroup("other", nil), true, 400, "displayName cannot be changed", 1},
		{"unknown member", newGroup("ml", nil, "nobody@example.com"), true, 400, "nobody", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, wandbemu.Options{})
			e.emu.AddUser("ada", "ada@example.com")
			e.emu.AddUser("bob", "bob@example.com")
			var created *wandb.StorageBucket
			if tt.withStorage {
				created = &sb
			}
			id := e.do("POST", "/scim/Groups", newGroup("ml", created, "ada@example.com")).body["id"].(string)
			r := e.do("PUT", "/scim/Groups/"+id, tt.body)
			if tt.status != 200 {
				r.wantError(t, tt.status, "", tt.detail)
			} else if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			g := e.emu.Groups()[0]
			if len(g.Members) != tt.wantMembers || g.DisplayName != "ml" || !reflect.DeepEqual(g.StorageBucket, created) {
				t.Fatalf("after PUT: %+v", g)
			}
		})
	}
}

func TestNoTeamDeletion(t *testing.T) {
	e := start(t, wandbemu.Options{})
	id := e.do("POST", "/scim/Groups", newGroup("ml", nil)).body["id"].(string)
	r := e.do("DELETE", "/scim/Groups/"+id, nil)
	r.wantError(t, 405, "", "cannot be deleted")
	if r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	if len(e.emu.Groups()) != 1 {
		t.Fatal("team deleted")
	}
}

func TestCountsAndUnknownRoutes(t *testing.T) {
	e := start(t, wandbemu.Options{})
	id := e.do("POST", "/scim/Groups", newGroup("ml", nil)).body["id"].(string)
	e.do("POST", "/scim/Groups", newGroup("ml", nil)) // 409 still counts
	e.do("GET", "/scim/Groups", nil)
	e.do("GET", "/scim/Groups/"+id, nil)
	e.do("GET", "/scim/Groups/other", nil)
	e.do("PATCH", "/scim/Groups/"+id, patch(map[string]any{"op": "remove", "path": "members"}))
	e.do("DELETE", "/scim/Groups/"+id, nil)
	e.do("GET", "/scim/Nope", nil).wantError(t, 404, "", "no SCIM endpoint")
	e.doWith("PUT", "/scim/Groups/"+id, "{}", nil) // 401 still counts
	want := map[string]int{
		"POST /scim/Groups":        2,
		"GET /scim/Groups":         1,
		"GET /scim/Groups/{id}":    2,
		"PATCH /scim/Groups/{id}":  1,
		"DELETE /scim/Groups/{id}": 1,
		"PUT /scim/Groups/{id}":    1,
		"GET /scim/Nope":           1,
	}
	if got := e.emu.Counts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Counts() = %v, want %v", got, want)
	}
	if got := e.emu.MutatingCount(); got != 5 {
		t.Fatalf("MutatingCount() = %d, want 5", got)
	}
	e.emu.ResetCounts()
	if len(e.emu.Counts()) != 0 || e.emu.MutatingCount() != 0 {
		t.Fatal("ResetCounts did not reset")
	}
}

func TestUsers(t *testing.T) {
	e := start(t, wandbemu.Options{})
	user := func(name string, emails any) map[string]any {
		return map[string]any{"schemas": []string{wandb.SchemaUser}, "userName": name, "emails": emails}
	}
	create := []struct {
		name   string
		body   any
		status int
		detail string
	}{
		{"emails as list", user("ada", []map[string]any{{"value": "x@example.com"}, {"value": "ada@example.com", "primary": true}}), 201, ""},
		{"emails as one object", user("bob", map[string]any{"Value": "bob@example.com", "Primary": true}), 201, ""},
		{"duplicate userName", user("ada", []map[string]any{{"value": "new@example.com"}}), 409, "already exists"},
		{"duplicate email", user("eve", []map[string]any{{"value": "ADA@example.com"}}), 409, "already exists"},
		{"no email", user("carl", []any{}), 400, "emails"},
		{"no userName", user("", []map[string]any{{"value": "c@example.com"}}), 400, "userName"},
		{"no schemas", map[string]any{"userName": "d"}, 400, wandb.SchemaUser},
	}
	for _, tt := range create {
		t.Run("create "+tt.name, func(t *testing.T) {
			r := e.do("POST", "/scim/Users", tt.body)
			if tt.status != 201 {
				r.wantError(t, tt.status, "", tt.detail)
				return
			}
			if r.status != 201 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			if _, isObject := r.body["emails"].(map[string]any); !isObject {
				t.Fatalf("W&B answers emails as one object: %s", r.raw)
			}
		})
	}
	find := []struct {
		name, filter string
		want         []string
	}{
		{"by userName", `userName eq "ada"`, []string{"ada"}},
		{"by email", `emails.value eq "bob@example.com"`, []string{"bob"}},
		{"by primary email only", `emails.value eq "x@example.com"`, nil},
		{"none", `userName eq "zed"`, nil},
	}
	for _, tt := range find {
		t.Run("find "+tt.name, func(t *testing.T) {
			r := e.do("GET", "/scim/Users?filter="+urlQuery(tt.filter), nil)
			var got []string
			for _, u := range r.body["Resources"].([]any) {
				got = append(got, u.(map[string]any)["userName"].(string))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	e.do("GET", "/scim/Users?filter="+urlQuery(`displayName eq "ada"`), nil).wantError(t, 400, "invalidFilter", "userName or emails.value")
	r := e.do("GET", "/scim/Users?filter="+urlQuery(`userName eq "ada"`), nil)
	id := r.body["Resources"].([]any)[0].(map[string]any)["id"].(string)
	if g := e.do("GET", "/scim/Users/"+id, nil); g.status != 200 || g.body["userName"] != "ada" {
		t.Fatalf("GET user: %s", g.raw)
	}
	e.do("GET", "/scim/Users/VXNlcjo5OQ==", nil).wantError(t, 404, "", "not found")
	e.do("DELETE", "/scim/Users/"+id, nil).wantError(t, 501, "", "not emulated")
}

func TestFaults(t *testing.T) {
	var mu sync.Mutex
	var fault wandbemu.Fault
	e := start(t, wandbemu.Options{Fault: func(r *http.Request) wandbemu.Fault {
		mu.Lock()
		defer mu.Unlock()
		f := fault
		fault = wandbemu.Fault{} // one request only
		return f
	}})
	set := func(f wandbemu.Fault) { mu.Lock(); fault = f; mu.Unlock() }

	t.Run("status with Retry-After, nothing done", func(t *testing.T) {
		set(wandbemu.Fault{Status: 429, RetryAfter: "3"})
		r := e.do("POST", "/scim/Groups", newGroup("a", nil))
		r.wantError(t, 429, "", "injected")
		if r.header.Get("Retry-After") != "3" || len(e.emu.Groups()) != 0 {
			t.Fatalf("Retry-After %q, teams %d", r.header.Get("Retry-After"), len(e.emu.Groups()))
		}
	})
	t.Run("applied, then 500", func(t *testing.T) {
		set(wandbemu.Fault{Status: 500, AfterApply: true})
		e.do("POST", "/scim/Groups", newGroup("b", nil)).wantError(t, 500, "", "injected")
		if g := e.emu.Groups(); len(g) != 1 || g[0].DisplayName != "b" {
			t.Fatalf("the team must exist although the answer was 500: %+v", g)
		}
	})
	t.Run("applied, then hang until the client gives up", func(t *testing.T) {
		set(wandbemu.Fault{Hang: true, AfterApply: true})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/scim/Groups", strings.NewReader(`{"schemas":["`+wandb.SchemaGroup+`"],"displayName":"c","members":[]}`))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/scim+json")
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			t.Fatal("want a timeout")
		}
		if g := e.emu.Groups(); len(g) != 2 || g[1].DisplayName != "c" {
			t.Fatalf("the team must exist although no answer came: %+v", g)
		}
	})
	t.Run("Close releases a hung request", func(t *testing.T) {
		emu := wandbemu.New(wandbemu.Options{APIKey: apiKey, Fault: func(*http.Request) wandbemu.Fault { return wandbemu.Fault{Hang: true} }})
		done := make(chan struct{})
		go func() {
			emu.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/scim/Groups", nil))
			close(done)
		}()
		emu.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("hung request not released by Close")
		}
	})
}

func TestConcurrentCreatesOfOneName(t *testing.T) {
	e := start(t, wandbemu.Options{Checker: &fakeChecker{}})
	const n = 16
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			statuses <- e.do("POST", "/scim/Groups", newGroup("race", &wandb.StorageBucket{Name: "b", Provider: "AWS"})).status
		})
	}
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	if got[201] != 1 || got[409] != n-1 || len(e.emu.Groups()) != 1 {
		t.Fatalf("statuses %v, teams %d; want one 201 and the rest 409", got, len(e.emu.Groups()))
	}
}

// TestGroupETags: single-team answers carry an ETag (also meta.version); PATCH and PUT of a team honour
// If-Match, answering 412 when it does not match, and apply a request without one.
func TestGroupETags(t *testing.T) {
	const stale = `W/"0"`
	addBob := patch(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": "bob@example.com"}}})
	addAda := patch(map[string]any{"op": "add", "path": "members", "value": []map[string]string{{"value": "ada@example.com"}}})
	putBob := map[string]any{"schemas": []string{wandb.SchemaGroup}, "displayName": "ml", "members": []map[string]string{{"value": "bob@example.com"}}}
	tests := []struct {
		name    string
		method  string
		body    any
		ifMatch func(current string) string // "" sends no If-Match
		status  int
		members []string // user names after the request
		newETag bool     // the team's ETag changed
	}{
		{"PATCH, no If-Match: applied", "PATCH", addBob, nil, 200, []string{"ada", "bob"}, true},
		{"PATCH, current ETag", "PATCH", addBob, func(c string) string { return c }, 200, []string{"ada", "bob"}, true},
		{"PATCH, stale ETag", "PATCH", addBob, func(string) string { return stale }, 412, []string{"ada"}, false},
		{"PATCH, star", "PATCH", addBob, func(string) string { return "*" }, 200, []string{"ada", "bob"}, true},
		{"PATCH, list holding the current ETag", "PATCH", addBob, func(c string) string { return stale + ", " + c }, 200, []string{"ada", "bob"}, true},
		{"PATCH, strong form of the current ETag", "PATCH", addBob, func(c string) string { return strings.TrimPrefix(c, "W/") }, 200, []string{"ada", "bob"}, true},
		{"PATCH, stale ETag, no-op change", "PATCH", addAda, func(string) string { return stale }, 412, []string{"ada"}, false},
		{"PATCH, current ETag, no-op change: same version", "PATCH", addAda, func(c string) string { return c }, 200, []string{"ada"}, false},
		{"PUT, no If-Match: applied", "PUT", putBob, nil, 200, []string{"bob"}, true},
		{"PUT, current ETag", "PUT", putBob, func(c string) string { return c }, 200, []string{"bob"}, true},
		{"PUT, stale ETag", "PUT", putBob, func(string) string { return stale }, 412, []string{"ada"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, wandbemu.Options{})
			ids := map[string]string{"ada": e.emu.AddUser("ada", "ada@example.com"), "bob": e.emu.AddUser("bob", "bob@example.com")}
			created := e.do("POST", "/scim/Groups", newGroup("ml", nil, "ada@example.com"))
			id := created.body["id"].(string)
			etag := created.header.Get("ETag")
			if etag == "" || created.body["meta"].(map[string]any)["version"] != etag {
				t.Fatalf("POST: ETag %q, meta %v: want an ETag equal to meta.version", etag, created.body["meta"])
			}
			if got := e.do("GET", "/scim/Groups/"+id, nil).header.Get("ETag"); got != etag {
				t.Fatalf("GET ETag %q, POST said %q", got, etag)
			}
			hdr := map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": "application/scim+json"}
			if tt.ifMatch != nil {
				hdr["If-Match"] = tt.ifMatch(etag)
			}
			r := e.doWith(tt.method, "/scim/Groups/"+id, tt.body, hdr)
			if tt.status == 412 {
				r.wantError(t, 412, "", "does not match")
			} else if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			after := e.do("GET", "/scim/Groups/"+id, nil)
			now := after.header.Get("ETag")
			if (now != etag) != tt.newETag {
				t.Fatalf("ETag went from %q to %q; want a change: %v", etag, now, tt.newETag)
			}
			if tt.status == 200 && (r.header.Get("ETag") != now || r.body["meta"].(map[string]any)["version"] != now) {
				t.Fatalf("%s answer: ETag %q, meta %v; the team's ETag is %q", tt.method, r.header.Get("ETag"), r.body["meta"], now)
			}
			var want []string
			for _, n := range tt.members {
				want = append(want, ids[n])
			}
			if got := memberIDs(t, e.emu.Groups()[0]); !reflect.DeepEqual(got, want) {
				t.Fatalf("members %v, want %v", got, want)
			}
		})
	}
	t.Run("unknown team with If-Match: 404", func(t *testing.T) {
		e := start(t, wandbemu.Options{})
		hdr := map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": "application/scim+json", "If-Match": stale}
		e.doWith("PATCH", "/scim/Groups/R3JvdXA6OQ==", patch(map[string]any{"op": "remove", "path": "members"}), hdr).wantError(t, 404, "", "not found")
	})
	t.Run("lists show meta.version; ChangeMembers makes a new one", func(t *testing.T) {
		e := start(t, wandbemu.Options{})
		bob := e.emu.AddUser("bob", "bob@example.com")
		id := e.do("POST", "/scim/Groups", newGroup("ml", nil)).body["id"].(string)
		version := func() any {
			return e.do("GET", "/scim/Groups", nil).body["Resources"].([]any)[0].(map[string]any)["meta"].(map[string]any)["version"]
		}
		before := version()
		if before != e.do("GET", "/scim/Groups/"+id, nil).header.Get("ETag") {
			t.Fatalf("list meta.version %v is not the team's ETag", before)
		}
		if err := e.emu.ChangeMembers(id, []string{bob}, nil); err != nil {
			t.Fatal(err)
		}
		if after := version(); after == before {
			t.Fatalf("version still %v after a member change", after)
		}
		if err := e.emu.ChangeMembers("R3JvdXA6OQ==", nil, nil); err == nil {
			t.Fatal("ChangeMembers of an unknown team: no error")
		}
	})
}

// TestCreateUserByDeployment: Multi-tenant Cloud creates users with W&B's teams extension schema,
// joining the teams it lists; elsewhere the plain shape is taken.
func TestCreateUserByDeployment(t *testing.T) {
	plain := func(name string) map[string]any {
		return map[string]any{"schemas": []string{wandb.SchemaUser}, "userName": name,
			"emails": []map[string]any{{"primary": true, "value": name + "@example.com"}}}
	}
	withTeams := func(name string, ext any) map[string]any {
		u := plain(name)
		u["schemas"] = []string{wandb.SchemaUser, wandb.SchemaTeamsUser}
		if ext != nil {
			u[wandb.SchemaTeamsUser] = ext
		}
		return u
	}
	tests := []struct {
		name       string
		deployment string
		body       map[string]any
		status     int
		scimType   string
		detail     string
		inTeam     bool // the user joined team "ml" (role member) and ml has a new ETag
	}{
		{"multi-tenant, plain shape", "multi-tenant", plain("ada"), 400, "invalidSyntax", wandb.SchemaTeamsUser, false},
		{"multi-tenant, schema without the extension object", "multi-tenant", withTeams("ada", nil), 400, "invalidValue", `{"teams"`, false},
		{"multi-tenant, extension object without teams", "multi-tenant", withTeams("ada", map[string]any{}), 400, "invalidValue", `{"teams"`, false},
		{"multi-tenant, teams not a list", "multi-tenant", withTeams("ada", map[string]any{"teams": "ml"}), 400, "invalidValue", `{"teams"`, false},
		{"multi-tenant, unknown team", "multi-tenant", withTeams("ada", map[string]any{"teams": []string{"nope"}}), 400, "invalidValue", `team "nope" not found`, false},
		{"multi-tenant, no teams", "multi-tenant", withTeams("ada", map[string]any{"teams": []string{}}), 201, "", "", false},
		{"multi-tenant, one team", "multi-tenant", withTeams("ada", map[string]any{"teams": []string{"ml"}}), 201, "", "", true},
		{"dedicated, plain shape", "dedicated", plain("ada"), 201, "", "", false},
		{"self-managed (default), plain shape", "", plain("ada"), 201, "", "", false},
		{"dedicated, teams extension is ignored", "dedicated", withTeams("ada", map[string]any{"teams": []string{"ml"}}), 201, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, wandbemu.Options{Deployment: tt.deployment})
			team := e.do("POST", "/scim/Groups", newGroup("ml", nil))
			teamID, before := team.body["id"].(string), team.header.Get("ETag")
			r := e.do("POST", "/scim/Users", tt.body)
			if tt.status != 201 {
				r.wantError(t, tt.status, tt.scimType, tt.detail)
				if got := e.do("GET", "/scim/Users", nil).body["totalResults"]; got != float64(0) {
					t.Fatalf("a refused create left %v users", got)
				}
				return
			}
			if r.status != 201 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			id := r.body["id"].(string)
			wantSchemas := fmt.Sprint([]string{wandb.SchemaUser})
			if tt.deployment == "multi-tenant" {
				wantSchemas = fmt.Sprint([]string{wandb.SchemaUser, wandb.SchemaTeamsUser})
			}
			if got := fmt.Sprint(r.body["schemas"]); got != wantSchemas {
				t.Errorf("schemas %s, want %s", got, wantSchemas)
			}
			g := e.emu.Groups()[0]
			joined := len(g.Members) == 1 && g.Members[0].Value == id
			after := e.do("GET", "/scim/Groups/"+teamID, nil).header.Get("ETag")
			if joined != tt.inTeam || (e.emu.TeamRole(id, "ml") == "member") != tt.inTeam || (after != before) != tt.inTeam {
				t.Fatalf("in team %v (members %v), role %q, ETag %s -> %s; want in team: %v", joined, g.Members, e.emu.TeamRole(id, "ml"), before, after, tt.inTeam)
			}
		})
	}
}
