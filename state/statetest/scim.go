package statetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/state"
)

// SCIMStore is the SCIM push store of a state backend.
type SCIMStore interface {
	CreateSCIMUser(ctx context.Context, u state.SCIMUser) (state.SCIMUser, error)
	SCIMUser(ctx context.Context, id string) (state.SCIMUser, error)
	SCIMUsers(ctx context.Context) ([]state.SCIMUser, error)
	ListSCIMUsers(ctx context.Context, q state.SCIMList[state.SCIMUser]) ([]state.SCIMUser, int, error)
	UpdateSCIMUser(ctx context.Context, id string, fn func(*state.SCIMUser) error) (state.SCIMUser, []string, error)
	DeleteSCIMUser(ctx context.Context, id string, check func(state.SCIMUser) error) ([]string, error)
	CreateSCIMGroup(ctx context.Context, g state.SCIMGroup) (state.SCIMGroup, error)
	SCIMGroup(ctx context.Context, id string) (state.SCIMGroup, error)
	SCIMGroups(ctx context.Context) ([]state.SCIMGroup, error)
	ListSCIMGroups(ctx context.Context, q state.SCIMList[state.SCIMGroup]) ([]state.SCIMGroup, int, error)
	SCIMMembers(ctx context.Context, ids []string) ([]state.SCIMMember, error)
	UpdateSCIMGroup(ctx context.Context, id string, fn func(*state.SCIMGroup) error) (state.SCIMGroup, error)
	PurgeDeletedSCIMGroups(ctx context.Context, before time.Time, ids ...string) (int, error)
	SetSCIMLimits(l state.SCIMLimits)
	state.SCIMCopyTarget
}

// SCIM runs the SCIM suite; open returns a new, empty store that the test's cleanup closes.
func SCIM(t *testing.T, open func(t *testing.T) SCIMStore) {
	t.Run("CopyThroughAnother", func(t *testing.T) { copySCIM(t, open(t), open(t), open(t)) })
	for _, tc := range []struct {
		name string
		run  func(*testing.T, SCIMStore)
	}{
		{"UserUniqueness", userUniqueness},
		{"UserUpdates", userUpdates},
		{"GroupUniqueness", groupUniqueness},
		{"Paging", paging},
		{"IndexLookups", indexLookups},
		{"Members", groupMembers},
		{"DeleteUserLeavesGroups", deleteUserLeavesGroups},
		{"DeleteAndPurgeGroups", deleteAndPurge},
		{"Limits", limits},
		{"ConcurrentGroupUpdates", concurrentGroupUpdates},
		{"ConcurrentCreatesOfOneName", concurrentCreatesOfOneName},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func newUser(t *testing.T, s SCIMStore, name string) state.SCIMUser {
	t.Helper()
	u, err := s.CreateSCIMUser(t.Context(), state.SCIMUser{UserName: name, Email: name + "@example.com", Active: true,
		Attributes: map[string]any{"userName": name, "displayName": "D " + name}})
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

func newGroup(t *testing.T, s SCIMStore, name string, members ...string) state.SCIMGroup {
	t.Helper()
	g, err := s.CreateSCIMGroup(t.Context(), state.SCIMGroup{DisplayName: name, MemberIDs: members})
	if err != nil {
		t.Fatalf("create group %s: %v", name, err)
	}
	return g
}

func userUniqueness(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	alice := newUser(t, s, "alice")
	if alice.ID == "" || alice.Version != 1 || alice.Created.IsZero() || !alice.Created.Equal(alice.Modified) {
		t.Fatalf("create did not set id, version and times: %+v", alice)
	}
	for _, name := range []string{"ALICE", "Alice", "aLiCe"} {
		if _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: name}); !errors.Is(err, state.ErrSCIMConflict) {
			t.Errorf("create %q beside alice: %v, want ErrSCIMConflict", name, err)
		}
	}
	// The long s folds to s, as strings.EqualFold has it (and NFC keeps it).
	newUser(t, s, "sam")
	if _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: "\u017Fam"}); !errors.Is(err, state.ErrSCIMConflict) {
		t.Errorf("create with a long s beside sam: %v, want ErrSCIMConflict", err)
	}
	for _, name := range []string{"", " alice", "bad\u202Ename", "nul\x00"} {
		if _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: name}); !errors.Is(err, state.ErrSCIMInvalid) {
			t.Errorf("create %q: %v, want ErrSCIMInvalid", name, err)
		}
	}
	bob := newUser(t, s, "bob")
	if _, _, err := s.UpdateSCIMUser(ctx, bob.ID, func(u *state.SCIMUser) error { u.UserName = "Alice"; return nil }); !errors.Is(err, state.ErrSCIMConflict) {
		t.Errorf("rename bob to Alice: %v, want ErrSCIMConflict", err)
	}
	// A change of case of one's own name is no conflict, and a rename frees the old name.
	if _, _, err := s.UpdateSCIMUser(ctx, alice.ID, func(u *state.SCIMUser) error { u.UserName = "ALICE"; return nil }); err != nil {
		t.Errorf("rename alice to ALICE: %v", err)
	}
	if _, _, err := s.UpdateSCIMUser(ctx, alice.ID, func(u *state.SCIMUser) error { u.UserName = "alicia"; return nil }); err != nil {
		t.Errorf("rename to alicia: %v", err)
	}
	newUser(t, s, "alice")
	// A deleted user frees its name.
	if _, err := s.DeleteSCIMUser(ctx, bob.ID, nil); err != nil {
		t.Fatal(err)
	}
	newUser(t, s, "BOB")
	if _, err := s.SCIMUser(ctx, bob.ID); !errors.Is(err, state.ErrSCIMNotFound) {
		t.Errorf("deleted user: %v, want ErrSCIMNotFound", err)
	}
	for _, id := range []string{"nope", "", "nul\x00", "\xff"} {
		if _, err := s.SCIMUser(ctx, id); !errors.Is(err, state.ErrSCIMNotFound) {
			t.Errorf("SCIMUser(%q): %v, want ErrSCIMNotFound", id, err)
		}
		if _, err := s.SCIMGroup(ctx, id); !errors.Is(err, state.ErrSCIMNotFound) {
			t.Errorf("SCIMGroup(%q): %v, want ErrSCIMNotFound", id, err)
		}
	}
}

func userUpdates(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	u := newUser(t, s, "carol")
	same, groups, err := s.UpdateSCIMUser(ctx, u.ID, func(*state.SCIMUser) error { return nil })
	if err != nil || same.Version != 1 || groups != nil {
		t.Fatalf("no-op update: %+v %v %v", same, groups, err)
	}
	boom := errors.New("boom")
	if _, _, err := s.UpdateSCIMUser(ctx, u.ID, func(u *state.SCIMUser) error { u.Email = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing fn: %v, want boom", err)
	}
	next, _, err := s.UpdateSCIMUser(ctx, u.ID, func(u *state.SCIMUser) error {
		u.ID, u.Version, u.Email, u.ExternalID = "other", 99, "c@example.org", "ext-c"
		u.Attributes["nickName"] = "nul\x00 in an attribute"
		return nil
	})
	if err != nil || next.ID != u.ID || next.Version != 2 || !next.Created.Equal(u.Created) || next.Modified.Before(u.Modified) {
		t.Fatalf("update: %+v %v", next, err)
	}
	got, err := s.SCIMUser(ctx, u.ID)
	if err != nil || got.Email != "c@example.org" || got.ExternalID != "ext-c" || got.Version != 2 || got.Attributes["nickName"] != "nul\x00 in an attribute" {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if _, _, err := s.UpdateSCIMUser(ctx, "nope", func(*state.SCIMUser) error { return nil }); !errors.Is(err, state.ErrSCIMNotFound) {
		t.Fatalf("update of a missing user: %v", err)
	}
	if _, err := s.DeleteSCIMUser(ctx, u.ID, func(state.SCIMUser) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("delete refused by check: %v", err)
	}
	if _, err := s.SCIMUser(ctx, u.ID); err != nil {
		t.Fatalf("a refused delete deleted: %v", err)
	}
}

func groupUniqueness(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	g := newGroup(t, s, "Team Straße")
	if _, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "team straße"}); !errors.Is(err, state.ErrSCIMConflict) {
		t.Errorf("displayName differing in case: %v, want ErrSCIMConflict", err)
	}
	// NFC: a decomposed name is the precomposed one.
	e := newGroup(t, s, "caf\u00e9")
	if _, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "cafe\u0301"}); err == nil {
		t.Errorf("a decomposed name that is not normalised was accepted")
	}
	if _, err := s.UpdateSCIMGroup(ctx, e.ID, func(g *state.SCIMGroup) error { g.DisplayName = "TEAM STRAßE"; return nil }); !errors.Is(err, state.ErrSCIMConflict) {
		t.Errorf("rename onto another group's name: %v, want ErrSCIMConflict", err)
	}
	// A user and a group may share a name.
	newUser(t, s, "Team Straße")
	if _, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
	again := newGroup(t, s, "TEAM STRAßE")
	if again.ID == g.ID {
		t.Fatal("a new group got the deleted one's id")
	}
}

func paging(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	var ids []string
	for i := range 7 {
		ids = append(ids, newUser(t, s, fmt.Sprintf("user%d", i)).ID)
	}
	slices.Sort(ids)
	var seen []string
	for start := 0; start < 9; start += 3 {
		page, total, err := s.ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{Start: start, Count: 3})
		if err != nil || total != 7 {
			t.Fatalf("page at %d: total %d, %v", start, total, err)
		}
		for _, u := range page {
			seen = append(seen, u.ID)
		}
	}
	if !slices.Equal(seen, ids) {
		t.Fatalf("pages gave %v, want every user once in id order %v", seen, ids)
	}
	odd := func(u state.SCIMUser) bool { return u.UserName[len(u.UserName)-1]%2 == 1 }
	page, total, err := s.ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{Keep: odd, Start: 1, Count: 2})
	if err != nil || total != 3 || len(page) != 2 || !odd(page[0]) || !odd(page[1]) {
		t.Fatalf("filtered page: %d of %d, %v", len(page), total, err)
	}
	if page, total, err := s.ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{Start: 10, Count: 5}); err != nil || total != 7 || len(page) != 0 {
		t.Fatalf("page past the end: %d of %d, %v", len(page), total, err)
	}
	if page, total, err := s.ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{Count: 0}); err != nil || total != 7 || len(page) != 0 {
		t.Fatalf("count 0: %d of %d, %v", len(page), total, err)
	}
	all, err := s.SCIMUsers(ctx)
	if err != nil || len(all) != 7 {
		t.Fatalf("SCIMUsers: %d, %v", len(all), err)
	}
	g1, g2 := newGroup(t, s, "g1"), newGroup(t, s, "g2")
	if _, err := s.UpdateSCIMGroup(ctx, g1.ID, func(g *state.SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
	groups, total, err := s.ListSCIMGroups(ctx, state.SCIMList[state.SCIMGroup]{Count: 10})
	if err != nil || total != 1 || len(groups) != 1 || groups[0].ID != g2.ID {
		t.Fatalf("groups list without the deleted one: %+v of %d, %v", groups, total, err)
	}
}

func indexLookups(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	a := newUser(t, s, "Ünïcode")
	b := newUser(t, s, "other")
	for _, u := range []state.SCIMUser{a, b} {
		if _, _, err := s.UpdateSCIMUser(ctx, u.ID, func(u *state.SCIMUser) error { u.ExternalID = "shared"; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	g := newGroup(t, s, "Eng")
	if _, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.ExternalID = "eng-ext"; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		by    state.SCIMIndex
		value string
		want  []string
	}{
		{state.SCIMByUserName, "üNÏCODE", []string{a.ID}},
		{state.SCIMByUserName, " ünïcode ", []string{a.ID}},
		{state.SCIMByUserName, "nobody", nil},
		{state.SCIMByUserName, "nul\x00", nil},
		{state.SCIMByExternalID, "shared", sorted(a.ID, b.ID)},
		{state.SCIMByExternalID, "SHARED", nil},
		{state.SCIMByExternalID, "\xff\x00", nil},
		{state.SCIMByID, b.ID, []string{b.ID}},
		{state.SCIMByID, "nul\x00", nil},
	} {
		page, total, err := s.ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{By: tc.by, Value: tc.value, Count: 10})
		var got []string
		for _, u := range page {
			got = append(got, u.ID)
		}
		if err != nil || total != len(tc.want) || !slices.Equal(got, tc.want) {
			t.Errorf("users %s eq %q: %v (total %d), %v; want %v", tc.by, tc.value, got, total, err, tc.want)
		}
	}
	for _, tc := range []struct {
		by    state.SCIMIndex
		value string
		want  int
	}{{state.SCIMByDisplayName, "eng", 1}, {state.SCIMByExternalID, "eng-ext", 1}, {state.SCIMByExternalID, "eng", 0}} {
		page, total, err := s.ListSCIMGroups(ctx, state.SCIMList[state.SCIMGroup]{By: tc.by, Value: tc.value, Count: 10})
		if err != nil || total != tc.want || len(page) != tc.want || (tc.want == 1 && page[0].ID != g.ID) {
			t.Errorf("groups %s eq %q: %d (total %d), %v; want %d", tc.by, tc.value, len(page), total, err, tc.want)
		}
	}
	// A deleted group is not found by its old name or externalId.
	if _, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, q := range []state.SCIMList[state.SCIMGroup]{{By: state.SCIMByDisplayName, Value: "Eng", Count: 1}, {By: state.SCIMByExternalID, Value: "eng-ext", Count: 1}, {By: state.SCIMByID, Value: g.ID, Count: 1}} {
		if page, total, err := s.ListSCIMGroups(ctx, q); err != nil || total != 0 || len(page) != 0 {
			t.Errorf("deleted group by %s: %d (total %d), %v", q.By, len(page), total, err)
		}
	}
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

func groupMembers(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	a, b, c := newUser(t, s, "a"), newUser(t, s, "b"), newUser(t, s, "c")
	g := newGroup(t, s, "team", c.ID, a.ID, "ghost", a.ID, "")
	if want := sorted(a.ID, c.ID); !slices.Equal(g.MemberIDs, want) {
		t.Fatalf("create kept members %v, want %v (sorted, known, once)", g.MemberIDs, want)
	}
	g, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error {
		g.MemberIDs = append(g.MemberIDs, b.ID, "ghost2", "nul\x00")
		return nil
	})
	if want := sorted(a.ID, b.ID, c.ID); err != nil || !slices.Equal(g.MemberIDs, want) || g.Version != 2 {
		t.Fatalf("add members: %v (version %d), %v; want %v", g.MemberIDs, g.Version, err, want)
	}
	if _, _, err := s.UpdateSCIMUser(ctx, b.ID, func(u *state.SCIMUser) error { u.Active = false; u.Attributes["displayName"] = "Bee"; return nil }); err != nil {
		t.Fatal(err)
	}
	ms, err := s.SCIMMembers(ctx, []string{c.ID, "ghost", b.ID})
	if err != nil || len(ms) != 2 || ms[0].ID != c.ID || ms[1] != (state.SCIMMember{ID: b.ID, UserName: "b", DisplayName: "Bee", Email: "b@example.com"}) {
		t.Fatalf("SCIMMembers: %+v, %v", ms, err)
	}
	all, err := s.SCIMGroups(ctx)
	if err != nil || len(all) != 1 || len(all[0].Members) != 3 || all[0].Members[0].UserName == "" {
		t.Fatalf("SCIMGroups resolves members: %+v, %v", all, err)
	}
	_, groups, err := s.UpdateSCIMUser(ctx, a.ID, func(u *state.SCIMUser) error { u.Email = "new@example.com"; return nil })
	if err != nil || !slices.Equal(groups, []string{g.ID}) {
		t.Fatalf("user update names its groups: %v, %v", groups, err)
	}
	g, err = s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.MemberIDs = []string{b.ID}; return nil })
	if err != nil || !slices.Equal(g.MemberIDs, []string{b.ID}) {
		t.Fatalf("replace members: %v, %v", g.MemberIDs, err)
	}
	if _, groups, err := s.UpdateSCIMUser(ctx, a.ID, func(u *state.SCIMUser) error { u.Email = "newer@example.com"; return nil }); err != nil || len(groups) != 0 {
		t.Fatalf("a user that left names no group: %v, %v", groups, err)
	}
}

func deleteUserLeavesGroups(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	a, b := newUser(t, s, "a"), newUser(t, s, "b")
	g1, g2 := newGroup(t, s, "g1", a.ID, b.ID), newGroup(t, s, "g2", a.ID)
	left, err := s.DeleteSCIMUser(ctx, a.ID, nil)
	if err != nil || !slices.Equal(left, sorted(g1.ID, g2.ID)) {
		t.Fatalf("delete: left %v, %v", left, err)
	}
	for _, tc := range []struct {
		id   string
		want []string
	}{{g1.ID, []string{b.ID}}, {g2.ID, nil}} {
		g, err := s.SCIMGroup(ctx, tc.id)
		if err != nil || !slices.Equal(g.MemberIDs, tc.want) || g.Version != 2 {
			t.Errorf("group after the member's deletion: %v (version %d), %v; want %v", g.MemberIDs, g.Version, err, tc.want)
		}
	}
	if _, err := s.DeleteSCIMUser(ctx, a.ID, nil); !errors.Is(err, state.ErrSCIMNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// The deleted user cannot be added back by id.
	g, err := s.UpdateSCIMGroup(ctx, g2.ID, func(g *state.SCIMGroup) error { g.MemberIDs = []string{a.ID, b.ID}; return nil })
	if err != nil || !slices.Equal(g.MemberIDs, []string{b.ID}) {
		t.Fatalf("adding a deleted user: %v, %v", g.MemberIDs, err)
	}
}

func deleteAndPurge(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	a := newUser(t, s, "a")
	g1, g2, g3 := newGroup(t, s, "g1", a.ID), newGroup(t, s, "g2"), newGroup(t, s, "g3")
	var deleted []state.SCIMGroup
	for _, g := range []state.SCIMGroup{g1, g2} {
		d, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.Deleted = true; return nil })
		if err != nil || !d.Deleted || d.MemberIDs != nil {
			t.Fatalf("delete group: %+v, %v", d, err)
		}
		deleted = append(deleted, d)
	}
	if _, err := s.UpdateSCIMGroup(ctx, g1.ID, func(*state.SCIMGroup) error { return nil }); !errors.Is(err, state.ErrSCIMNotFound) {
		t.Fatalf("update of a deleted group: %v", err)
	}
	got, err := s.SCIMGroup(ctx, g1.ID)
	if err != nil || !got.Deleted || got.DisplayName != "g1" {
		t.Fatalf("a deleted group stays readable until purged: %+v, %v", got, err)
	}
	if _, groups, err := s.UpdateSCIMUser(ctx, a.ID, func(u *state.SCIMUser) error { u.Email = "x@y"; return nil }); err != nil || len(groups) != 0 {
		t.Fatalf("a deleted group keeps no member: %v, %v", groups, err)
	}
	all, err := s.SCIMGroups(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("SCIMGroups includes deleted ones: %d, %v", len(all), err)
	}
	if n, err := s.PurgeDeletedSCIMGroups(ctx, deleted[0].Modified); err != nil || n != 0 {
		t.Fatalf("purge at the time of the first deletion: %d, %v", n, err)
	}
	after := deleted[1].Modified.Add(time.Nanosecond)
	if n, err := s.PurgeDeletedSCIMGroups(ctx, after, g2.ID, g3.ID, "nul\x00"); err != nil || n != 1 {
		t.Fatalf("purge of g2 (and live g3): %d, %v", n, err)
	}
	if n, err := s.PurgeDeletedSCIMGroups(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("purge of the rest: %d, %v", n, err)
	}
	for _, id := range []string{g1.ID, g2.ID} {
		if _, err := s.SCIMGroup(ctx, id); !errors.Is(err, state.ErrSCIMNotFound) {
			t.Errorf("purged group %s: %v", id, err)
		}
	}
	if _, err := s.SCIMGroup(ctx, g3.ID); err != nil {
		t.Errorf("live group was purged: %v", err)
	}
}

func limits(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	s.SetSCIMLimits(state.SCIMLimits{MaxUsers: 3, MaxGroups: 2, MaxMembers: 2, MaxUserBytes: 400})
	var users []string
	for i := range 3 {
		users = append(users, newUser(t, s, fmt.Sprintf("u%d", i)).ID)
	}
	if _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: "u3"}); !errors.Is(err, state.ErrSCIMLimit) {
		t.Fatalf("fourth user: %v, want ErrSCIMLimit", err)
	}
	if _, err := s.DeleteSCIMUser(ctx, users[2], nil); err != nil {
		t.Fatal(err)
	}
	users[2] = newUser(t, s, "u3").ID // a deletion frees a place
	if _, _, err := s.UpdateSCIMUser(ctx, users[0], func(u *state.SCIMUser) error {
		u.Attributes["title"] = string(make([]byte, 500))
		return nil
	}); !errors.Is(err, state.ErrSCIMLimit) {
		t.Fatalf("oversized user: %v, want ErrSCIMLimit", err)
	}
	if _, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "big", MemberIDs: users}); !errors.Is(err, state.ErrSCIMLimit) {
		t.Fatalf("group with 3 members: %v, want ErrSCIMLimit", err)
	}
	g := newGroup(t, s, "g1", users[:2]...)
	if _, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.MemberIDs = users; return nil }); !errors.Is(err, state.ErrSCIMLimit) {
		t.Fatalf("growing past the member limit: %v, want ErrSCIMLimit", err)
	}
	newGroup(t, s, "g2")
	if _, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "g3"}); !errors.Is(err, state.ErrSCIMLimit) {
		t.Fatalf("third group: %v, want ErrSCIMLimit", err)
	}
	if _, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
	newGroup(t, s, "g3") // a deleted group frees a place
	// Limits lowered below what is stored keep what is there: shrinking is allowed.
	s.SetSCIMLimits(state.SCIMLimits{MaxMembers: 1})
	g4 := newGroup(t, s, "g4", users[0])
	s.SetSCIMLimits(state.SCIMLimits{})
	if g4, err := s.UpdateSCIMGroup(ctx, g4.ID, func(g *state.SCIMGroup) error { g.MemberIDs = users; return nil }); err != nil || len(g4.MemberIDs) != 3 {
		t.Fatalf("defaults restored: %v, %v", g4.MemberIDs, err)
	}
}

// concurrentGroupUpdates adds members to one group from many goroutines, while users outside the
// group are deleted: no added member may be lost, and no deleted user may stay.
func concurrentGroupUpdates(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	const n = 24
	g := newGroup(t, s, "shared")
	var ids, doomed []string
	for i := range n {
		ids = append(ids, newUser(t, s, fmt.Sprintf("m%02d", i)).ID)
		doomed = append(doomed, newUser(t, s, fmt.Sprintf("d%02d", i)).ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			_, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error {
				g.MemberIDs = append(g.MemberIDs, ids[i], doomed[i])
				return nil
			})
			errs <- err
		})
		wg.Go(func() { _, err := s.DeleteSCIMUser(ctx, doomed[i], nil); errs <- err })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.SCIMGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := sorted(ids...); !slices.Equal(got.MemberIDs, want) {
		t.Fatalf("after %d concurrent adds and deletions the group has %d members %v, want exactly the %d kept users", n, len(got.MemberIDs), got.MemberIDs, n)
	}
	all, err := s.SCIMGroups(ctx)
	if err != nil || len(all) != 1 || len(all[0].Members) != n {
		t.Fatalf("resolved members: %v, %v", all, err)
	}
}

// concurrentCreatesOfOneName: of many concurrent creates of one name (in different cases), exactly
// one succeeds.
func concurrentCreatesOfOneName(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	names := []string{"dup", "DUP", "Dup", "dUp", "duP", "DuP", "dUP", "DUp"}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(names))
	for _, name := range names {
		wg.Go(func() { _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: name}); errs <- err })
		wg.Go(func() { _, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: name}); errs <- err })
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, state.ErrSCIMConflict):
			t.Errorf("concurrent create: %v, want success or ErrSCIMConflict", err)
		}
	}
	if ok != 2 {
		t.Fatalf("%d concurrent creates of one name succeeded, want one user and one group", ok)
	}
}

// Fill gives a SCIM store users and groups of every kind (with externalIds and attributes, members,
// a deleted group), for copies.
func Fill(t *testing.T, s SCIMStore) {
	ctx := t.Context()
	var ids []string
	for i := range 6 {
		u := newUser(t, s, fmt.Sprintf("Fill-%d", i))
		if _, _, err := s.UpdateSCIMUser(ctx, u.ID, func(u *state.SCIMUser) error { u.ExternalID = fmt.Sprint("x", i%3); return nil }); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	newGroup(t, s, "fill-a", ids[:4]...)
	b := newGroup(t, s, "fill-b", ids[2:]...)
	if _, err := s.UpdateSCIMGroup(ctx, b.ID, func(g *state.SCIMGroup) error { g.ExternalID = "gx"; return nil }); err != nil {
		t.Fatal(err)
	}
	c := newGroup(t, s, "fill-c", ids[0])
	if _, err := s.UpdateSCIMGroup(ctx, c.ID, func(g *state.SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
}

// copySCIM: a copy of a copy reads back the same, indexes work in it, and a second import is refused.
func copySCIM(t *testing.T, first, second, third SCIMStore) {
	ctx := t.Context()
	Fill(t, first)
	for _, hop := range []struct{ dst, src SCIMStore }{{second, first}, {third, second}} {
		n, err := state.CopySCIM(ctx, hop.dst, hop.src)
		if err != nil || n != (state.Copied{Users: 6, Groups: 3}) {
			t.Fatalf("CopySCIM: %+v, %v", n, err)
		}
	}
	want, err := first.SCIMGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := third.SCIMGroups(ctx)
	if err != nil || len(got) != len(want) {
		t.Fatalf("groups of the copy of a copy: %d, %v", len(got), err)
	}
	for i := range want {
		if got[i].ID != want[i].ID || !got[i].Modified.Equal(want[i].Modified) || got[i].Version != want[i].Version || !slices.Equal(got[i].Members, want[i].Members) {
			t.Errorf("group %s differs in the copy of a copy:\n%+v\n%+v", want[i].ID, got[i], want[i])
		}
	}
	if _, err := third.CreateSCIMUser(ctx, state.SCIMUser{UserName: "FILL-0"}); !errors.Is(err, state.ErrSCIMConflict) {
		t.Errorf("the copy lacks its userName index: %v", err)
	}
	if page, total, err := third.ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{By: state.SCIMByExternalID, Value: "x1", Count: 5}); err != nil || total != 2 || len(page) != 2 {
		t.Errorf("the copy's externalId index: %d of %d, %v", len(page), total, err)
	}
	if _, total, err := third.ListSCIMGroups(ctx, state.SCIMList[state.SCIMGroup]{Count: 5}); err != nil || total != 2 {
		t.Errorf("the copy counts %d live groups, %v; want 2", total, err)
	}
	if _, err := state.CopySCIM(ctx, second, first); err == nil {
		t.Error("a copy into a store that has SCIM users was accepted")
	}
}
