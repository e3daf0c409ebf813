package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func scimUser(name string) SCIMUser {
	return SCIMUser{UserName: name, Email: name + "@example.com", Active: true, Attributes: map[string]any{"userName": name}}
}

func mustUser(t *testing.T, d *DB, name string) SCIMUser {
	t.Helper()
	u, err := d.CreateSCIMUser(context.Background(), scimUser(name))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustGroup(t *testing.T, d *DB, name string, members ...string) SCIMGroup {
	t.Helper()
	g, err := d.CreateSCIMGroup(context.Background(), SCIMGroup{DisplayName: name, MemberIDs: members})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSCIMUserLifecycle(t *testing.T) {
	ctx := context.Background()
	d, path := openTemp(t)
	u := mustUser(t, d, "alice")
	if u.ID == "" || u.Version != 1 || u.Created.IsZero() {
		t.Fatalf("create did not assign id, version, time: %+v", u)
	}
	if _, err := d.CreateSCIMUser(ctx, scimUser("ALICE")); !errors.Is(err, ErrSCIMConflict) {
		t.Fatalf("userName differing only in case: got %v, want ErrSCIMConflict", err)
	}
	if _, err := d.CreateSCIMUser(ctx, SCIMUser{}); !errors.Is(err, ErrSCIMInvalid) {
		t.Fatalf("user without userName: got %v, want ErrSCIMInvalid", err)
	}

	// An update that changes nothing writes nothing.
	same, groups, err := d.UpdateSCIMUser(ctx, u.ID, func(*SCIMUser) error { return nil })
	if err != nil || same.Version != 1 || groups != nil {
		t.Fatalf("no-op update: %+v %v %v", same, groups, err)
	}
	// An error from fn stores nothing.
	boom := errors.New("boom")
	if _, _, err := d.UpdateSCIMUser(ctx, u.ID, func(u *SCIMUser) error { u.UserName = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: got %v", err)
	}
	// Renaming frees the old name; fn cannot move the id or version.
	renamed, _, err := d.UpdateSCIMUser(ctx, u.ID, func(u *SCIMUser) error {
		u.UserName, u.ID, u.Version = "alicia", "other", 99
		return nil
	})
	if err != nil || renamed.ID != u.ID || renamed.Version != 2 || renamed.UserName != "alicia" {
		t.Fatalf("rename: %+v %v", renamed, err)
	}
	mustUser(t, d, "Alice")

	// Durable: a reopened file has it.
	d.Close()
	d2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	got, err := d2.SCIMUser(ctx, u.ID)
	if err != nil || got.UserName != "alicia" || got.Attributes["userName"] != "alice" {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	if _, err := d2.SCIMUser(ctx, "nope"); !errors.Is(err, ErrSCIMNotFound) {
		t.Fatalf("missing user: %v", err)
	}
}

func TestSCIMEmptyStateReads(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	users, err := d.SCIMUsers(ctx)
	if err != nil || users != nil {
		t.Fatalf("SCIMUsers on a state without SCIM buckets: %v %v", users, err)
	}
	groups, err := d.SCIMGroups(ctx)
	if err != nil || groups != nil {
		t.Fatalf("SCIMGroups: %v %v", groups, err)
	}
	if _, err := d.SCIMGroup(ctx, "x"); !errors.Is(err, ErrSCIMNotFound) {
		t.Fatalf("SCIMGroup: %v", err)
	}
}

func TestSCIMGroupMembers(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	a, b := mustUser(t, d, "a"), mustUser(t, d, "b")
	g := mustGroup(t, d, "Team", b.ID, "unknown", a.ID, b.ID)
	want := []string{a.ID, b.ID}
	slices.Sort(want)
	if !slices.Equal(g.MemberIDs, want) {
		t.Fatalf("members not sorted, deduped, unknown dropped: %v", g.MemberIDs)
	}
	if ms, err := d.SCIMMembers(ctx, g.MemberIDs); err != nil || len(ms) != 2 || ms[0].UserName == "" || ms[0].Email == "" {
		t.Fatalf("members not resolved: %+v %v", ms, err)
	}
	if _, err := d.CreateSCIMGroup(ctx, SCIMGroup{DisplayName: "team"}); !errors.Is(err, ErrSCIMConflict) {
		t.Fatalf("displayName differing in case: %v", err)
	}

	// A user's change reports the groups it is in; deleting it removes it from them.
	_, groups, err := d.UpdateSCIMUser(ctx, a.ID, func(u *SCIMUser) error { u.Active = false; return nil })
	if err != nil || !slices.Equal(groups, []string{g.ID}) {
		t.Fatalf("deactivate: groups %v, %v", groups, err)
	}
	all, _ := d.SCIMGroups(ctx)
	if i := slices.IndexFunc(all[0].Members, func(m SCIMMember) bool { return m.ID == a.ID }); i < 0 || all[0].Members[i].Active {
		t.Fatalf("deactivated member not resolved inactive: %+v", all[0].Members)
	}
	check := errors.New("precondition")
	if _, err := d.DeleteSCIMUser(ctx, a.ID, func(SCIMUser) error { return check }); !errors.Is(err, check) {
		t.Fatalf("rejected delete: %v", err)
	}
	left, err := d.DeleteSCIMUser(ctx, a.ID, nil)
	if err != nil || !slices.Equal(left, []string{g.ID}) {
		t.Fatalf("delete user: left %v, %v", left, err)
	}
	got, _ := d.SCIMGroup(ctx, g.ID)
	if !slices.Equal(got.MemberIDs, []string{b.ID}) || got.Version != g.Version+1 {
		t.Fatalf("deleted user still a member or version not bumped: %+v", got)
	}
	if _, err := d.CreateSCIMUser(ctx, scimUser("a")); err != nil {
		t.Fatalf("deleted user's name not freed: %v", err)
	}
}

func TestSCIMGroupDelete(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	u := mustUser(t, d, "u")
	g := mustGroup(t, d, "Team", u.ID)
	del, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error { g.Deleted = true; return nil })
	if err != nil || !del.Deleted {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if _, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error { g.Deleted = false; return nil }); !errors.Is(err, ErrSCIMNotFound) {
		t.Fatalf("a deleted group must stay deleted: %v", err)
	}
	again := mustGroup(t, d, "TEAM") // the name is free again
	all, err := d.SCIMGroups(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("SCIMGroups: %+v %v", all, err)
	}
	for _, x := range all {
		if (x.ID == g.ID) != x.Deleted {
			t.Fatalf("deleted flag wrong: %+v", x)
		}
		// The daemon needs a deleted group's name (to orphan its team), not its members.
		if x.ID == g.ID && (x.DisplayName != "Team" || x.MemberIDs != nil || x.Members != nil) {
			t.Fatalf("deleted group: %+v", x)
		}
	}
	// Renaming onto a live group's name conflicts and stores nothing.
	other := mustGroup(t, d, "Other")
	if _, err := d.UpdateSCIMGroup(ctx, other.ID, func(g *SCIMGroup) error { g.DisplayName = "team"; return nil }); !errors.Is(err, ErrSCIMConflict) {
		t.Fatalf("rename onto %q: %v", again.DisplayName, err)
	}
	if got, _ := d.SCIMGroup(ctx, other.ID); got.DisplayName != "Other" || got.Version != 1 {
		t.Fatalf("failed rename was stored: %+v", got)
	}
}

// Concurrent read-modify-writes of one group must not lose updates.
func TestSCIMConcurrentGroupUpdates(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	g := mustGroup(t, d, "Team")
	var ids []string
	for i := range 20 {
		ids = append(ids, mustUser(t, d, fmt.Sprint("u", i)).ID)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if _, err := d.UpdateSCIMGroup(ctx, g.ID, func(g *SCIMGroup) error {
				g.MemberIDs = append(g.MemberIDs, id)
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := d.SCIMGroup(ctx, g.ID)
	if len(got.MemberIDs) != len(ids) || got.Version != uint64(1+len(ids)) {
		t.Fatalf("lost updates: %d members, version %d", len(got.MemberIDs), got.Version)
	}
}

// FoldSCIMName must agree with strings.EqualFold, which the SCIM filters use, so the uniqueness check
// and the IdP's lookup before a POST see the same rows.
func FuzzFoldKey(f *testing.F) {
	for _, s := range [][2]string{{"alice", "ALICE"}, {"K", "\u212a"}, {"s", "\u017f"}, {"ß", "SS"}, {"\xff", "\ufffd"}, {"Σ", "ς"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := FoldSCIMName(a) == FoldSCIMName(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("FoldSCIMName(%q)==FoldSCIMName(%q) is %v, EqualFold is %v", a, b, got, want)
		}
	})
}
