package pgstate

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state"
)

// TestLookupsUseIndexes: the queries behind the SCIM filters `userName eq`, `displayName eq`,
// `externalId eq` and `id eq` are index scans. Sequential scans are disabled for the EXPLAIN, as
// a planner rightly prefers them on a table this small.
func TestLookupsUseIndexes(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for i := range 20 {
		if _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: fmt.Sprint("u", i), ExternalID: fmt.Sprint("x", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: fmt.Sprint("g", i), ExternalID: fmt.Sprint("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `ANALYZE; SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET enable_seqscan`)
	for _, tc := range []struct {
		table string
		by    state.SCIMIndex
		arg   any
		index string
	}{
		{"scim_users", state.SCIMByUserName, []byte("u1"), "scim_users_name_key"},
		{"scim_users", state.SCIMByExternalID, []byte("x1"), "scim_users_external_id"},
		{"scim_users", state.SCIMByID, "abc", "scim_users_pkey"},
		{"scim_groups", state.SCIMByDisplayName, []byte("g1"), "scim_groups_name_key"},
		{"scim_groups", state.SCIMByExternalID, []byte("x1"), "scim_groups_external_id"},
		{"scim_groups", state.SCIMByID, "abc", "scim_groups_pkey"},
	} {
		rows, err := conn.Query(ctx, `EXPLAIN `+lookup(tc.table, tc.by), tc.arg)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if text := strings.Join(plan, "\n"); !strings.Contains(text, "Index Scan using "+tc.index) && !strings.Contains(text, "Bitmap Index Scan on "+tc.index) {
			t.Errorf("%s by %s does not use %s:\n%s", tc.table, tc.by, tc.index, text)
		}
	}
}

// TestFencedSCIMWrites: once a term is over, every SCIM write of its fenced store fails with
// ErrFenced and stores nothing; the unfenced store (what every replica's SCIM endpoint writes with)
// and the new term's store write.
func TestFencedSCIMWrites(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	a := newCandidate(t, s, "a", time.Minute)
	ta := a.term(t)
	old := s.Fenced(ta)
	u, err := old.CreateSCIMUser(ctx, state.SCIMUser{UserName: "alice"})
	if err != nil {
		t.Fatalf("the leader's fenced create: %v", err)
	}
	g, err := old.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "team", MemberIDs: []string{u.ID}})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSCIMGroup(ctx, dead.ID, func(g *state.SCIMGroup) error { g.Deleted = true; return nil }); err != nil {
		t.Fatal(err)
	}
	b := newCandidate(t, s, "b", time.Minute)
	a.stop()
	a.end(t, ta)
	tb := b.term(t)

	for name, write := range map[string]func() error{
		"CreateSCIMUser": func() error { _, err := old.CreateSCIMUser(ctx, state.SCIMUser{UserName: "bob"}); return err },
		"UpdateSCIMUser": func() error {
			_, _, err := old.UpdateSCIMUser(ctx, u.ID, func(u *state.SCIMUser) error { u.Email = "x"; return nil })
			return err
		},
		"DeleteSCIMUser":  func() error { _, err := old.DeleteSCIMUser(ctx, u.ID, nil); return err },
		"CreateSCIMGroup": func() error { _, err := old.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "other"}); return err },
		"UpdateSCIMGroup": func() error {
			_, err := old.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.MemberIDs = nil; return nil })
			return err
		},
		"PurgeDeletedSCIMGroups": func() error { _, err := old.PurgeDeletedSCIMGroups(ctx, time.Now().Add(time.Hour)); return err },
		"ImportSCIM":             func() error { return old.ImportSCIM(ctx, nil, nil) },
	} {
		if err := write(); !errors.Is(err, ErrFenced) {
			t.Errorf("%s of the old term: %v, want ErrFenced", name, err)
		}
	}
	users, err := s.SCIMUsers(ctx)
	if err != nil || len(users) != 1 || users[0].Email != "" {
		t.Fatalf("users after the fenced writes: %+v, %v", users, err)
	}
	groups, err := s.SCIMGroups(ctx)
	if err != nil || len(groups) != 2 || len(groups[1].Members)+len(groups[0].Members) != 1 {
		t.Fatalf("groups after the fenced writes: %+v, %v", groups, err)
	}
	if _, err := s.Fenced(tb).CreateSCIMUser(ctx, state.SCIMUser{UserName: "bob"}); err != nil {
		t.Fatalf("the new term's write: %v", err)
	}
	if _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: "carol"}); err != nil {
		t.Fatalf("an unfenced write: %v", err)
	}
	var stale int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM scim_users WHERE epoch = $1 AND updated_at > (SELECT acquired_at FROM leader_terms WHERE epoch = $2))
		+ (SELECT count(*) FROM scim_groups WHERE epoch = $1 AND updated_at > (SELECT acquired_at FROM leader_terms WHERE epoch = $2))`, ta.Epoch, tb.Epoch).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d SCIM rows written by epoch %d after epoch %d began (%v)", stale, ta.Epoch, tb.Epoch, err)
	}
}

// TestDeadlockIsRetried: a group update that adds a user waits for that user's row while holding the
// group's; a user deletion holds the user's row and then wants the group's. PostgreSQL aborts one of
// the two (the first waiter, the update); the update runs again and succeeds.
func TestDeadlockIsRetried(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	u, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "team"})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM scim_users WHERE id = $1 FOR UPDATE`, u.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.MemberIDs = []string{u.ID}; return nil })
		done <- err
	}()
	waitFor(t, "the group update to wait for the user's row", func() bool {
		var n int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n == 1
	})
	// The deadlock: PostgreSQL aborts one side; when it is this one, the update has gone through.
	_, lockErr := tx.Exec(ctx, `SELECT 1 FROM scim_groups WHERE id = $1 FOR UPDATE`, g.ID)
	tx.Rollback(ctx)
	if err := <-done; err != nil {
		t.Fatalf("the group update after a deadlock (the other side: %v): %v", lockErr, err)
	}
	got, err := s.SCIMGroup(ctx, g.ID)
	if err != nil || len(got.MemberIDs) != 1 {
		t.Fatalf("group after the retried update: %+v, %v", got, err)
	}
}

// BenchmarkSCIMWrites measures concurrent SCIM writes: user creations, and membership changes spread
// over 20 groups (each a locked read-modify-write of the group row).
func BenchmarkSCIMWrites(b *testing.B) {
	dsn := testenv.PostgresDatabase(b)
	s, err := Open(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	var groups []string
	for i := range 20 {
		g, err := s.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: fmt.Sprint("g", i)})
		if err != nil {
			b.Fatal(err)
		}
		groups = append(groups, g.ID)
	}
	var n atomic.Int64
	b.Run("CreateUser", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.CreateSCIMUser(ctx, state.SCIMUser{UserName: fmt.Sprint("user", n.Add(1))}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	users, err := s.SCIMUsers(ctx)
	if err != nil || len(users) == 0 {
		b.Fatal(len(users), err)
	}
	b.Run("AddMember", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				u := users[int(i)%len(users)].ID
				if _, err := s.UpdateSCIMGroup(ctx, groups[int(i)%len(groups)], func(g *state.SCIMGroup) error {
					g.MemberIDs = append(g.MemberIDs, u)
					return nil
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestSCIMAcrossReplicas: two stores on one database (two replicas' pools) add members to one group
// and create users of one name at once: no member is lost, and the name is taken once.
func TestSCIMAcrossReplicas(t *testing.T) {
	dsn := newDatabase(t)
	var replicas [2]*Store
	for i := range replicas {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		replicas[i] = s
	}
	ctx := t.Context()
	g, err := replicas[0].CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 30 {
		u, err := replicas[i%2].CreateSCIMUser(ctx, state.SCIMUser{UserName: fmt.Sprint("u", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(ids))
	for i, id := range ids {
		wg.Go(func() {
			_, err := replicas[i%2].UpdateSCIMGroup(ctx, g.ID, func(g *state.SCIMGroup) error { g.MemberIDs = append(g.MemberIDs, id); return nil })
			errs <- err
		})
		wg.Go(func() {
			_, err := replicas[i%2].CreateSCIMUser(ctx, state.SCIMUser{UserName: "Same"})
			if errors.Is(err, state.ErrSCIMConflict) {
				err = nil
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := replicas[1].SCIMGroup(ctx, g.ID)
	if err != nil || len(got.MemberIDs) != len(ids) || got.Version != uint64(len(ids))+1 {
		t.Fatalf("after %d adds from two replicas: %d members, version %d (%v)", len(ids), len(got.MemberIDs), got.Version, err)
	}
	if _, total, err := replicas[0].ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{By: state.SCIMByUserName, Value: "same", Count: 5}); err != nil || total != 1 {
		t.Fatalf("users named same: %d, %v", total, err)
	}
}
