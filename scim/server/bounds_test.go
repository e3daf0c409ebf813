package server

import (
	"encoding/json"
	"slices"

	"bytes"
	"context"
	"fmt"
	"github.com/elimity-com/scim"
	filter "github.com/scim2/filter-parser/v2"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/byob-agent/byob-agent/state"
)

// withStore is e with its handler serving through store (a wrapper of e.db) and a 1 MiB body cap.
func (e *env) withStore(store Store, log *slog.Logger) *env {
	e.t.Helper()
	h, err := New(Options{BaseURL: testBase, Tokens: []string{testToken}, Store: store, MaxBody: 1 << 20, Logger: log})
	if err != nil {
		e.t.Fatal(err)
	}
	return &env{t: e.t, db: e.db, h: h, rec: e.rec}
}

// spyStore records what the endpoint asks of the store, and lets a test act inside its calls.
type spyStore struct {
	*state.DB
	userLists  []state.SCIMList[state.SCIMUser]
	groupLists []state.SCIMList[state.SCIMGroup]
	members    atomic.Int64
	onMembers  func()
	inPatch    func()
}

func (s *spyStore) ListSCIMUsers(ctx context.Context, q state.SCIMList[state.SCIMUser]) ([]state.SCIMUser, int, error) {
	s.userLists = append(s.userLists, q)
	return s.DB.ListSCIMUsers(ctx, q)
}

func (s *spyStore) ListSCIMGroups(ctx context.Context, q state.SCIMList[state.SCIMGroup]) ([]state.SCIMGroup, int, error) {
	s.groupLists = append(s.groupLists, q)
	return s.DB.ListSCIMGroups(ctx, q)
}

func (s *spyStore) SCIMMembers(ctx context.Context, ids []string) ([]state.SCIMMember, error) {
	s.members.Add(1)
	if s.onMembers != nil {
		s.onMembers()
	}
	return s.DB.SCIMMembers(ctx, ids)
}

func (s *spyStore) UpdateSCIMGroup(ctx context.Context, id string, fn func(*state.SCIMGroup) error) (state.SCIMGroup, error) {
	return s.DB.UpdateSCIMGroup(ctx, id, func(g *state.SCIMGroup) error {
		if s.inPatch != nil {
			s.inPatch()
		}
		return fn(g)
	})
}

func TestFiltersUseTheIndexes(t *testing.T) {
	e := newEnv(t)
	spy := &spyStore{DB: e.db}
	e = e.withStore(spy, nil)
	uid := e.createUser("Zoe", "externalId", "E-1")
	gid := e.createGroup("Team", uid)
	for _, tc := range []struct {
		path, filter string
		by           state.SCIMIndex
		keep         bool // the store tests each candidate with the filter
		hits         float64
	}{
		{"/Users", `userName eq "zoe"`, state.SCIMByUserName, false, 1},
		{"/Users", `USERNAME eq " ZOE "`, state.SCIMByUserName, false, 1}, // compared as stored: normalised
		{"/Users", `userName eq "zoe" and active eq true`, state.SCIMByUserName, true, 1},
		{"/Users", `active eq true and externalId eq "E-1"`, state.SCIMByExternalID, true, 1},
		{"/Users", `externalId eq "e-1"`, state.SCIMByExternalID, false, 0}, // caseExact
		{"/Users", `id eq "` + uid + `"`, state.SCIMByID, false, 1},
		{"/Users", `userName co "zo"`, "", true, 1},
		{"/Users", `userName eq "zoe" or active eq false`, "", true, 1},
		{"/Groups", `displayName eq "TEAM"`, state.SCIMByDisplayName, false, 1},
		{"/Groups", `id eq "` + gid + `" and members eq "` + uid + `"`, state.SCIMByID, true, 1},
		{"/Groups", `externalId eq "x"`, state.SCIMByExternalID, false, 0},
	} {
		spy.userLists, spy.groupLists = nil, nil
		r := e.mustCode(e.do("GET", tc.path+q(tc.filter), nil), 200)
		if r.Body["totalResults"] != tc.hits {
			t.Errorf("%s: %s", tc.filter, r.Raw)
		}
		by, keep := state.SCIMIndex("?"), false
		if len(spy.userLists) == 1 {
			by, keep = spy.userLists[0].By, spy.userLists[0].Keep != nil
		}
		if len(spy.groupLists) == 1 {
			by, keep = spy.groupLists[0].By, spy.groupLists[0].Keep != nil
		}
		if by != tc.by || keep != tc.keep {
			t.Errorf("%s: store asked by %q keep %v, want %q %v", tc.filter, by, keep, tc.by, tc.keep)
		}
	}
}

func TestAttributeListsParsedOncePerRequest(t *testing.T) {
	e := newEnv(t)
	for i := range 20 {
		e.createUser(fmt.Sprintf("u%02d", i))
	}
	before := attrListParses.Load()
	r := e.mustCode(e.do("GET", "/Users?count=20&attributes=userName,emails.value,emails.value,EMAILS.VALUE&excludedAttributes=emails.type", nil), 200)
	if n := attrListParses.Load() - before; n != 2 {
		t.Fatalf("%d attribute-list parses for one request of 20 users, want 2", n)
	}
	res := r.Body["Resources"].([]any)
	if len(res) != 20 {
		t.Fatalf("resources: %s", r.Raw)
	}
	u := res[0].(map[string]any)
	if u["active"] != nil || fmt.Sprint(u["emails"]) != fmt.Sprintf("[map[value:%s@example.com]]", u["userName"]) {
		t.Fatalf("projection: %v", u)
	}
	before = attrListParses.Load()
	e.mustCode(e.do("GET", "/Users?count=20", nil), 200)
	if n := attrListParses.Load() - before; n != 0 {
		t.Fatalf("%d parses without attribute lists", n)
	}
}

func TestAttributeListCaps(t *testing.T) {
	e := newEnv(t)
	uid := e.createUser("capped")
	many := strings.TrimSuffix(strings.Repeat("userName,", maxAttrEntries+1), ",")
	for _, tc := range []struct {
		name, query, scimType string
		code                  int
	}{
		{"at the entry cap", "attributes=" + strings.TrimSuffix(strings.Repeat("userName,", maxAttrEntries), ","), "", 200},
		{"too many entries", "attributes=" + url.QueryEscape(many), "tooMany", 400},
		{"too many excluded", "excludedAttributes=" + url.QueryEscape(many), "tooMany", 400},
		{"too long", "attributes=" + strings.Repeat("a", maxAttrList+1), "invalidValue", 400},
		{"unknown names are ignored", "attributes=nope,name.nope,urn:x:y", "", 200},
	} {
		for _, path := range []string{"/Users", "/Users/" + uid} {
			r := e.mustCode(e.do("GET", path+"?"+tc.query, nil), tc.code)
			if tc.code == 400 && (r.Body["scimType"] != tc.scimType || !strings.Contains(r.Body["detail"].(string), "ttributes")) {
				t.Errorf("%s %s: %s", tc.name, path, r.Raw)
			}
		}
	}
}

func TestPatchCaps(t *testing.T) {
	e := newEnv(t)
	e = e.withStore(e.db, nil)
	gid := e.createGroup("big")
	ops := make([]map[string]any, maxOperations+1)
	for i := range ops {
		ops[i] = op("replace", "externalId", fmt.Sprint(i))
	}
	if r := e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(ops...)), 400); r.Body["scimType"] != "tooMany" {
		t.Fatalf("too many operations: %s", r.Raw)
	}
	ids := make([]string, maxValues+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032d", i)
	}
	if r := e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("add", "members", members(ids...)))), 400); r.Body["scimType"] != "tooMany" {
		t.Fatalf("too many values: %s", r.Raw)
	}
	if r := e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("add", "", map[string]any{"members": members(ids...)}))), 400); r.Body["scimType"] != "tooMany" {
		t.Fatalf("too many values, path-less: %s", r.Raw)
	}
	if g := e.group(gid); g.Version != 1 {
		t.Fatalf("a refused PATCH changed the group: %+v", g)
	}
}

// A member merge looks each value up in a map: merging n values into m costs n+m.
func TestMemberMergeByMap(t *testing.T) {
	cur := members(sorted("a", "b", "c")...)
	set := newValueSet(cur)
	if len(set.others) != 0 || len(set.byValue) != 3 {
		t.Fatalf("member values not in the map: %+v", set)
	}
	for _, tc := range []struct {
		el   any
		want bool
	}{
		{map[string]any{"value": "b"}, true},
		{map[string]any{"value": "b", "display": "B"}, true}, // same entry: compared by value
		{map[string]any{"value": "z"}, false},
		{"b", false},
		{map[string]any{"type": "work"}, false},
	} {
		if got := set.has(tc.el); got != tc.want {
			t.Errorf("has(%v) = %v", tc.el, got)
		}
	}
	set.add(map[string]any{"type": "work"})
	if !set.has(map[string]any{"type": "work"}) || len(set.others) != 1 {
		t.Fatalf("value-less element: %+v", set)
	}
}

// The PATCH's parse and merge run while no write transaction is open: a POST /Users arriving
// meanwhile completes (it would wait forever if the PATCH held the write lock).
func TestBigPatchDoesNotBlockOtherWrites(t *testing.T) {
	e := newEnv(t)
	spy := &spyStore{DB: e.db}
	e = e.withStore(spy, nil)
	ids := seedUsers(t, e.db, 2000)
	gid := e.createGroup("big", ids[:1000]...)
	posted := 0
	spy.inPatch = func() {
		if posted == 0 {
			e.createUser("created-during-the-patch")
		}
		posted++
	}
	e.mustCode(e.do("PATCH", "/Groups/"+gid+"?excludedAttributes=members", patch(op("add", "members", members(ids[1000:]...)))), 200)
	if g := e.group(gid); len(g.MemberIDs) != 2000 || posted != 1 {
		t.Fatalf("members %d, fn runs %d", len(g.MemberIDs), posted)
	}
}

// Rendering stops when the client is gone: a page of groups whose client disconnects while the
// first one renders reads no other group's members.
func TestRenderingStopsWhenTheClientIsGone(t *testing.T) {
	e := newEnv(t)
	spy := &spyStore{DB: e.db}
	e = e.withStore(spy, nil)
	uid := e.createUser("member")
	for i := range 10 {
		e.createGroup(fmt.Sprintf("g%d", i), uid)
	}
	ctx, cancel := context.WithCancel(context.Background())
	spy.onMembers = cancel
	spy.members.Store(0)
	req := httptest.NewRequestWithContext(ctx, "GET", testBase+"/Groups?count=10", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	e.h.ServeHTTP(httptest.NewRecorder(), req)
	if n := spy.members.Load(); n != 1 {
		t.Fatalf("members read for %d groups after the client left, want 1", n)
	}
}

func TestUnknownMemberLogIsBounded(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t)
	e = e.withStore(e.db, slog.New(slog.NewTextHandler(&buf, nil)))
	uid := e.createUser("known")
	gid := e.createGroup("g")
	unknown := make([]string, 500)
	for i := range unknown {
		unknown[i] = fmt.Sprintf("no-such-user-%04d", i)
	}
	buf.Reset()
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("add", "members", members(append(unknown, uid)...)))), 200)
	line := buf.String()
	if !strings.Contains(line, "count=500") || strings.Count(line, "no-such-user-") != logSample || len(line) > 1000 {
		t.Fatalf("log line (%d bytes): %s", len(line), line)
	}
}

func TestNamesNormalisedOrRefused(t *testing.T) {
	e := newEnv(t)
	nfd := "  zoe\u0308 " // "zoë" decomposed, padded
	r := e.mustCode(e.do("POST", "/Users", map[string]any{"schemas": []string{userURN}, "userName": nfd}), 201)
	if r.Body["userName"] != "zo\u00eb" {
		t.Fatalf("userName stored as %q", r.Body["userName"])
	}
	if r := e.mustCode(e.do("GET", "/Users"+q("userName eq \"ZO\u00cb\""), nil), 200); r.Body["totalResults"] != 1.0 {
		t.Fatalf("lookup: %s", r.Raw)
	}
	if r := e.do("POST", "/Users", map[string]any{"schemas": []string{userURN}, "userName": "zo\u00eb"}); r.Code != 409 {
		t.Fatalf("same name in NFC: %d %s", r.Code, r.Raw)
	}
	for _, bad := range []string{"ev\u202eil", "nul\x00", "line\nbreak", "\u2067x"} {
		r := e.mustCode(e.do("POST", "/Users", map[string]any{"schemas": []string{userURN}, "userName": bad}), 400)
		if r.Body["scimType"] != "invalidValue" || !strings.Contains(r.Body["detail"].(string), "userName: the name holds the control character U+") {
			t.Errorf("%q: %s", bad, r.Raw)
		}
		r = e.mustCode(e.do("POST", "/Groups", map[string]any{"schemas": []string{groupURN}, "displayName": bad}), 400)
		if !strings.Contains(r.Raw, "displayName: the name holds") {
			t.Errorf("group %q: %s", bad, r.Raw)
		}
	}
	gid := e.createGroup(" Team ")
	if g := e.group(gid); g.DisplayName != "Team" {
		t.Fatalf("displayName stored as %q", g.DisplayName)
	}
	e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("replace", "displayName", "bad\u200f"))), 400)
}

func TestLimitsAnswered(t *testing.T) {
	e := newEnv(t)
	e.db.SetSCIMLimits(state.SCIMLimits{MaxUsers: 1, MaxUserBytes: 1000, MaxGroups: 1, MaxMembers: 1})
	uid := e.createUser("one")
	r := e.mustCode(e.do("POST", "/Users", map[string]any{"schemas": []string{userURN}, "userName": "two"}), 403)
	if !strings.Contains(r.Body["detail"].(string), "at most 1 users") || !strings.Contains(r.Raw, "scim.limits") {
		t.Fatalf("user quota: %s", r.Raw)
	}
	r = e.mustCode(e.do("PATCH", "/Users/"+uid, patch(op("replace", "title", strings.Repeat("x", 1000)))), 400)
	if r.Body["scimType"] != "invalidValue" || !strings.Contains(r.Raw, "at most 1000 bytes of one user") {
		t.Fatalf("user size: %s", r.Raw)
	}
	gid := e.createGroup("g", uid)
	e.mustCode(e.do("POST", "/Groups", map[string]any{"schemas": []string{groupURN}, "displayName": "h"}), 403)
	e.db.SetSCIMLimits(state.SCIMLimits{MaxMembers: 1})
	other := e.createUser("other")
	r = e.mustCode(e.do("PATCH", "/Groups/"+gid, patch(op("add", "members", members(other)))), 400)
	if !strings.Contains(r.Raw, "members of one group") {
		t.Fatalf("members: %s", r.Raw)
	}
	if g := e.group(gid); len(g.MemberIDs) != 1 || g.Version != 1 {
		t.Fatalf("refused writes changed the group: %+v", g)
	}
}

// The member fast path gives what the general PATCH path gives.
func TestMemberOpsMatchTheGeneralPath(t *testing.T) {
	start := []string{"a", "b", "c"}
	for _, ops := range [][]map[string]any{
		{op("add", "members", members("d", "a"))},
		{op("Add", "MEMBERS", members("e")), op("remove", "members", members("a", "zz"))},
		{op("remove", "members", nil)},
		{op("remove", "members", []any{}), op("add", "members", members("x"))},
		{op("replace", "members", members("y", "y"))},
		{op("replace", "members", nil)},
		{op("add", "members", map[string]any{"value": "single"})},
	} {
		var parsed []scim.PatchOperation
		for _, o := range ops { // as the library parses them
			p, err := filter.ParsePath([]byte(o["path"].(string)))
			if err != nil {
				t.Fatal(err)
			}
			parsed = append(parsed, scim.PatchOperation{Op: o["op"].(string), Path: &p, Value: normalise(o["value"])})
		}
		merge, ok := memberOps(parsed)
		if !ok {
			t.Fatalf("%v: no fast path", ops)
		}
		fast := sorted(merge(slices.Clone(start))...)
		g := state.SCIMGroup{DisplayName: "g", MemberIDs: slices.Clone(start)}
		attrs := groupAttrs(g)
		for _, o := range parsed {
			if err := groupScope.apply(attrs, o); err != nil {
				t.Fatal(err)
			}
		}
		if err := setGroup(&g, attrs); err != nil {
			t.Fatal(err)
		}
		if general := slices.Compact(sorted(g.MemberIDs...)); !slices.Equal(fast, general) { // the store dedupes
			t.Errorf("%v: fast %v, general %v", ops, fast, general)
		}
	}
	filtered, _ := filter.ParsePath([]byte(`members[value eq "a"]`))
	if _, ok := memberOps([]scim.PatchOperation{{Op: "remove", Path: &filtered}}); ok {
		t.Fatal("a value filter took the fast path")
	}
}

// normalise turns test values into what JSON decoding gives ([]any of map[string]any).
func normalise(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	json.Unmarshal(raw, &out)
	return out
}
