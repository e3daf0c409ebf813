package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// decodes returns how many records, and bytes of them, d decoded while fn ran.
func decodes(d *DB, fn func()) (n, bytes int64) {
	n0, b0 := d.hooks.decoded.Load(), d.hooks.decodedBytes.Load()
	fn()
	return d.hooks.decoded.Load() - n0, d.hooks.decodedBytes.Load() - b0
}

func TestSCIMListsDecodeOnlyWhatTheyReturn(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	const n = 40
	big := strings.Repeat("x", 4000) // each user is over 4 KB: bytes decoded show which were read
	for i := range n {
		u := scimUser(fmt.Sprintf("user-%02d", i))
		u.ExternalID = fmt.Sprintf("ext-%d", i%20) // two users share each externalId
		u.Attributes["title"] = big
		if _, err := d.CreateSCIMUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	all := func(SCIMUser) bool { return true }
	for _, tc := range []struct {
		name                 string
		q                    SCIMList[SCIMUser]
		page, total, decoded int
	}{
		{"a page of all", SCIMList[SCIMUser]{Start: 10, Count: 5}, 5, n, 5},
		{"the last page", SCIMList[SCIMUser]{Start: 38, Count: 5}, 2, n, 2},
		{"count only", SCIMList[SCIMUser]{Count: 0}, 0, n, 0},
		{"userName eq, folded and normalised", SCIMList[SCIMUser]{By: SCIMByUserName, Value: " USER-07 ", Count: 100}, 1, 1, 1},
		{"userName eq, absent", SCIMList[SCIMUser]{By: SCIMByUserName, Value: "nobody", Count: 100}, 0, 0, 0},
		{"externalId eq", SCIMList[SCIMUser]{By: SCIMByExternalID, Value: "ext-3", Count: 100}, 2, 2, 2},
		{"externalId is exact", SCIMList[SCIMUser]{By: SCIMByExternalID, Value: "EXT-3", Count: 100}, 0, 0, 0},
		{"id eq", SCIMList[SCIMUser]{By: SCIMByID, Value: "nope", Count: 100}, 0, 0, 0},
		// Other filters test each user in turn: all are decoded, one at a time, none kept beyond the page.
		{"scan", SCIMList[SCIMUser]{Keep: all, Start: 5, Count: 3}, 3, n, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				page  []SCIMUser
				total int
				err   error
			)
			got, bytes := decodes(d, func() { page, total, err = d.ListSCIMUsers(ctx, tc.q) })
			if err != nil || len(page) != tc.page || total != tc.total {
				t.Fatalf("page %d total %d err %v, want page %d total %d", len(page), total, err, tc.page, tc.total)
			}
			if got != int64(tc.decoded) || bytes > int64(tc.decoded)*5000 {
				t.Fatalf("decoded %d records (%d bytes), want %d", got, bytes, tc.decoded)
			}
		})
	}

	// Concurrent lists of big users: the bytes decoded are those of the pages, not of every user
	// per request (issue 14 measured 709 MB for 4 lists of 20 users of 900 KB).
	var wg sync.WaitGroup
	got, bytes := decodes(d, func() {
		for i := range 4 {
			wg.Go(func() {
				if page, _, err := d.ListSCIMUsers(ctx, SCIMList[SCIMUser]{Start: i * 5, Count: 5}); err != nil || len(page) != 5 {
					t.Errorf("list %d: %d %v", i, len(page), err)
				}
			})
		}
		wg.Wait()
	})
	if got != 20 || bytes > 20*5000 {
		t.Fatalf("4 concurrent pages of 5 decoded %d users, %d bytes", got, bytes)
	}

	// A list stops when its context ends (the client went away).
	cctx, cancel := context.WithCancel(ctx)
	seen := 0
	got, _ = decodes(d, func() {
		_, _, err := d.ListSCIMUsers(cctx, SCIMList[SCIMUser]{Count: 100, Keep: func(SCIMUser) bool {
			if seen++; seen == 3 {
				cancel()
			}
			return true
		}})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled list: %v", err)
		}
	})
	if got != 3 {
		t.Fatalf("a cancelled list decoded %d users, want 3", got)
	}

	// Group member resolution reads summaries, never the (large) users.
	ids := make([]string, 0, n)
	us, _ := d.SCIMUsers(ctx)
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	g := mustGroup(t, d, "big", ids...)
	if got, bytes := decodes(d, func() {
		if ms, err := d.SCIMMembers(ctx, g.MemberIDs); err != nil || len(ms) != n {
			t.Fatalf("members %d %v", len(ms), err)
		}
	}); got != 0 || bytes != 0 {
		t.Fatalf("resolving members decoded %d records", got)
	}
}

func TestSCIMUpdatesPrepareOutsideTheWriteTransaction(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	u := mustUser(t, d, "member")
	g := mustGroup(t, d, "team", u.ID)

	// While fn (the PATCH's parse and merge) runs, no write transaction is open: another writer
	// completes meanwhile (it would wait forever for a transaction fn held).
	var other SCIMUser
	_, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error {
		if n := d.hooks.writing.Load(); n != 0 {
			t.Fatalf("fn runs with %d write transactions open", n)
		}
		var err error
		other, err = d.CreateSCIMUser(ctx, scimUser("created-meanwhile"))
		g.MemberIDs = append(g.MemberIDs, other.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := d.SCIMGroup(ctx, g.ID); !slices.Contains(got.MemberIDs, other.ID) {
		t.Fatalf("members %v", got.MemberIDs)
	}
	_, _, err = d.UpdateSCIMUser(ctx, u.ID, func(u *SCIMUser) error {
		if n := d.hooks.writing.Load(); n != 0 {
			t.Fatalf("user fn runs with %d write transactions open", n)
		}
		u.Active = false
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A user deleted while fn runs makes the prepared result stale: fn runs again, and the deleted
	// user is not stored as a member.
	runs := 0
	got, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error {
		if runs++; runs == 1 {
			if _, err := d.DeleteSCIMUser(ctx, other.ID, nil); err != nil {
				return err
			}
		}
		g.MemberIDs = []string{u.ID, other.ID}
		g.ExternalID = "x"
		return nil
	})
	if err != nil || runs != 2 || !slices.Equal(got.MemberIDs, []string{u.ID}) {
		t.Fatalf("stale update: runs %d, members %v, %v", runs, got.MemberIDs, err)
	}
	if stored, _ := d.SCIMGroup(ctx, g.ID); !slices.Equal(stored.MemberIDs, []string{u.ID}) {
		t.Fatalf("stored members %v", stored.MemberIDs)
	}

	// A deletion of a user the update does not add leaves it valid: fn runs once.
	unrelated, added := mustUser(t, d, "unrelated"), mustUser(t, d, "added")
	runs = 0
	got, err = d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error {
		if runs++; runs == 1 {
			if _, err := d.DeleteSCIMUser(ctx, unrelated.ID, nil); err != nil {
				return err
			}
		}
		g.MemberIDs = append(g.MemberIDs, added.ID)
		return nil
	})
	if err != nil || runs != 1 || len(got.MemberIDs) != 2 {
		t.Fatalf("update during an unrelated deletion: runs %d, members %v, %v", runs, got.MemberIDs, err)
	}
	if n := len(d.locks.m); n != 0 {
		t.Fatalf("%d record locks left behind", n)
	}
}

func TestSCIMLimits(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	d.SetSCIMLimits(SCIMLimits{MaxUsers: 3, MaxGroups: 1, MaxMembers: 2, MaxUserBytes: 2000})
	if l := d.SCIMLimits(); l != (SCIMLimits{MaxUsers: 3, MaxGroups: 1, MaxMembers: 2, MaxUserBytes: 2000}) {
		t.Fatalf("limits %+v", l)
	}
	a, b, c := mustUser(t, d, "a"), mustUser(t, d, "b"), mustUser(t, d, "c")
	var lim *SCIMLimitError
	if _, err := d.CreateSCIMUser(ctx, scimUser("d")); !errors.As(err, &lim) || lim.What != "users" || !errors.Is(err, ErrSCIMLimit) {
		t.Fatalf("fourth user: %v", err)
	}
	if _, _, err := d.UpdateSCIMUser(ctx, a.ID, func(u *SCIMUser) error { u.Attributes["title"] = strings.Repeat("x", 2000); return nil }); !errors.As(err, &lim) || lim.What != "bytes of one user" {
		t.Fatalf("oversized user: %v", err)
	}
	if _, err := d.CreateSCIMGroup(ctx, SCIMGroup{DisplayName: "g", MemberIDs: []string{a.ID, b.ID, c.ID}}); !errors.As(err, &lim) || lim.What != "members of one group" {
		t.Fatalf("group over the member limit: %v", err)
	}
	g := mustGroup(t, d, "g", a.ID, b.ID)
	if _, err := d.CreateSCIMGroup(ctx, SCIMGroup{DisplayName: "h"}); !errors.As(err, &lim) || lim.What != "groups" {
		t.Fatalf("second group: %v", err)
	}
	if _, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error { g.MemberIDs = append(g.MemberIDs, c.ID); return nil }); !errors.As(err, &lim) {
		t.Fatalf("adding a third member: %v", err)
	}
	// A limit lowered below what is stored still lets the group shrink.
	d.SetSCIMLimits(SCIMLimits{MaxMembers: 1})
	if _, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error { g.ExternalID = "e"; return nil }); err != nil {
		t.Fatalf("group over a lowered limit cannot change: %v", err)
	}
	if _, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteSCIMUser(ctx, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	d.SetSCIMLimits(SCIMLimits{MaxUsers: 3, MaxGroups: 1})
	mustUser(t, d, "d") // deletions free room
	mustGroup(t, d, "h")
}

func TestNormalizeSCIMName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"alice", "alice", ""},
		{"  alice\t", "alice", ""},
		{"re\u0301sume\u0301", "r\u00e9sum\u00e9", ""}, // NFD to NFC
		{"Ω", "Ω", ""},
		{"", "", "empty"},
		{" \u00a0 ", "", "empty"},
		{"a\x00b", "", "U+0000"},
		{"a\nb", "", "U+000A"},
		{"admin\u202Egpj.exe", "", "U+202E"},
		{"\u2066x", "", "U+2066"},
		{"bad\xffutf8", "", "UTF-8"},
	} {
		got, err := NormalizeSCIMName(tc.in)
		if tc.err != "" {
			if !errors.Is(err, ErrSCIMInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %q %v, want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.in, got, err, tc.want)
		}
	}
	d, _ := openTemp(t)
	if _, err := d.CreateSCIMUser(context.Background(), scimUser(" padded")); !errors.Is(err, ErrSCIMInvalid) {
		t.Fatalf("a writer must normalise: %v", err)
	}
}

// FuzzNormalizeSCIMName: a normalised name is stable, holds no control or bidi character, and
// the store accepts it.
func FuzzNormalizeSCIMName(f *testing.F) {
	for _, s := range []string{"alice", " a\u0301 ", "\u202e", "a\x00", "ǅ", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeSCIMName(s)
		if err != nil {
			return
		}
		if again, err := NormalizeSCIMName(n); err != nil || again != n {
			t.Fatalf("%q -> %q -> %q %v", s, n, again, err)
		}
		if strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f || bidiControl(r) }) || CheckSCIMName(n) != nil {
			t.Fatalf("%q -> %q", s, n)
		}
	})
}

func TestSCIMMigrationFromSchema1(t *testing.T) {
	ctx := context.Background()
	d, path := openTemp(t)
	now := time.Now().UTC()
	// A schema-1 file: records only, names as the IdP sent them, deleted groups among the live.
	users := []SCIMUser{
		{ID: "u1", UserName: "alice", Attributes: map[string]any{"userName": "alice"}, ExternalID: "e1", Email: "a@x", Active: true},
		{ID: "u2", UserName: " Alice", Attributes: map[string]any{"userName": " Alice"}},         // collides once normalised
		{ID: "u3", UserName: "bo\u0301b ", Attributes: map[string]any{"userName": "bo\u0301b "}}, // NFD, padded
		{ID: "u4", UserName: "evil\u202E", Attributes: map[string]any{"userName": "evil\u202E"}}, // cannot be normalised
	}
	groups := []SCIMGroup{
		{ID: "g1", DisplayName: " Team ", MemberIDs: []string{"u1", "u3", "gone"}},
		{ID: "g2", DisplayName: "old", MemberIDs: []string{"u1"}, Deleted: true},
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSCIMUsers, bucketSCIMGroups} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		for _, u := range users {
			u.Version, u.Created, u.Modified = 1, now, now
			raw, _ := json.Marshal(u)
			tx.Bucket(bucketSCIMUsers).Put([]byte(u.ID), raw)
		}
		for _, g := range groups {
			raw, _ := json.Marshal(g)
			tx.Bucket(bucketSCIMGroups).Put([]byte(g.ID), raw)
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	all, err := d.SCIMUsers(ctx)
	if err != nil || len(all) != len(users) {
		t.Fatalf("users after migration: %d %v (nothing may be lost)", len(all), err)
	}
	want := map[string]string{"u1": "alice", "u2": " Alice", "u3": "b\u00f3b", "u4": "evil\u202E"}
	for _, u := range all {
		if u.UserName != want[u.ID] || u.Attributes["userName"] != want[u.ID] {
			t.Errorf("%s: userName %q (attribute %q), want %q", u.ID, u.UserName, u.Attributes["userName"], want[u.ID])
		}
	}
	for _, tc := range []struct{ name, id string }{{"ALICE", "u1"}, {" Alice", "u1"}, {"b\u00f3b", "u3"}, {"bo\u0301b", "u3"}, {"EVIL\u202E", "u4"}} {
		page, _, err := d.ListSCIMUsers(ctx, SCIMList[SCIMUser]{By: SCIMByUserName, Value: tc.name, Count: 10})
		if err != nil || len(page) != 1 || page[0].ID != tc.id {
			t.Errorf("lookup %q: %+v %v", tc.name, page, err)
		}
	}
	if page, _, _ := d.ListSCIMUsers(ctx, SCIMList[SCIMUser]{By: SCIMByExternalID, Value: "e1", Count: 10}); len(page) != 1 {
		t.Errorf("externalId index not rebuilt: %+v", page)
	}
	if _, total, _ := d.ListSCIMUsers(ctx, SCIMList[SCIMUser]{}); total != 4 {
		t.Errorf("user count %d", total)
	}
	gs, err := d.SCIMGroups(ctx)
	if err != nil || len(gs) != 2 {
		t.Fatalf("groups %+v %v", gs, err)
	}
	if g := gs[0]; g.DisplayName != "Team" || !slices.Equal(g.MemberIDs, []string{"u1", "u3"}) || len(g.Members) != 2 {
		t.Errorf("live group %+v", g)
	}
	if g := gs[1]; !g.Deleted || g.MemberIDs != nil {
		t.Errorf("deleted group %+v", g)
	}
	if _, groups, err := d.UpdateSCIMUser(ctx, "u3", func(u *SCIMUser) error { u.Active = true; return nil }); err != nil || !slices.Equal(groups, []string{"g1"}) {
		t.Errorf("member-of index not rebuilt: %v %v", groups, err)
	}
	if _, err := d.CreateSCIMGroup(ctx, SCIMGroup{DisplayName: "team"}); !errors.Is(err, ErrSCIMConflict) {
		t.Errorf("normalised group name not claimed: %v", err)
	}
	var v string
	d.db.View(func(tx *bolt.Tx) error { v = string(tx.Bucket(bucketMeta).Get(keySchema)); return nil })
	if v != strconv.Itoa(SchemaVersion) {
		t.Errorf("schema version %q", v)
	}
}

func TestPurgeDeletedSCIMGroups(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return clock }
	a, b := mustGroup(t, d, "a"), mustGroup(t, d, "b")
	for _, g := range []SCIMGroup{a, b} {
		if _, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d.PurgeDeletedSCIMGroups(ctx, clock); n != 0 || err != nil {
		t.Fatalf("purged groups deleted at the reconcile's start: %d %v", n, err)
	}
	later := clock.Add(time.Minute)
	if n, err := d.PurgeDeletedSCIMGroups(ctx, later, b.ID); n != 1 || err != nil {
		t.Fatalf("purge one: %d %v", n, err)
	}
	if _, err := d.SCIMGroup(ctx, b.ID); !errors.Is(err, ErrSCIMNotFound) {
		t.Fatalf("purged group still there: %v", err)
	}
	if n, err := d.PurgeDeletedSCIMGroups(ctx, later); n != 1 || err != nil {
		t.Fatalf("purge all: %d %v", n, err)
	}
	if gs, _ := d.SCIMGroups(ctx); len(gs) != 0 {
		t.Fatalf("groups left %+v", gs)
	}
}
