// Package statetest is the behavioural suite every state backend passes: team records, their intents,
// registration, cursors and export, and concurrent updates of one team losing nothing. A backend's
// test calls Records with a function that opens a new, empty store.
package statetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

// Store is the team-record and cursor part of a state backend.
type Store interface {
	Get(ctx context.Context, name string) (state.Record, error)
	List(ctx context.Context) ([]state.Record, error)
	Update(ctx context.Context, name string, fn func(*state.Record) error) (state.Record, error)
	MarkRegistered(ctx context.Context, name string) ([]state.Record, error)
	Cursor(ctx context.Context, name string) (string, error)
	SetCursor(ctx context.Context, name, value string) error
	Export(ctx context.Context, w io.Writer) error
	CountByStatus(ctx context.Context) (map[string]int, error)
	state.CopyTarget
}

// Records runs the suite; open returns a new, empty store that the test's cleanup closes.
func Records(t *testing.T, open func(t *testing.T) Store) {
	t.Run("CopyThroughAnother", func(t *testing.T) { copyThrough(t, open(t), open(t), open(t)) })
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Store)
	}{
		{"UpdateGetList", updateGetList},
		{"CountByStatus", countByStatus},
		{"EveryFieldRoundTrips", everyFieldRoundTrips},
		{"FailedUpdateStoresNothing", failedUpdateStoresNothing},
		{"UpdateWithoutChangeDoesNotWrite", updateWithoutChange},
		{"Intents", intents},
		{"ConcurrentUpdatesOfOneTeam", concurrentOneTeam},
		{"ConcurrentUpdatesOfManyTeams", concurrentManyTeams},
		{"MarkRegistered", markRegistered},
		{"MarkRegisteredWhileUpdating", markRegisteredWhileUpdating},
		{"Cursors", cursors},
		{"Export", export},
		{"Import", importInto},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func update(t *testing.T, s Store, name string, fn func(*state.Record)) state.Record {
	t.Helper()
	r, err := s.Update(t.Context(), name, func(r *state.Record) error { fn(r); return nil })
	if err != nil {
		t.Fatalf("update %s: %v", name, err)
	}
	return r
}

func get(t *testing.T, s Store, name string) state.Record {
	t.Helper()
	r, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return r
}

func updateGetList(t *testing.T, s Store) {
	ctx := t.Context()
	if _, err := s.Get(ctx, "a"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get of a missing team: %v, want ErrNotFound", err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List of an empty store = %v, %v", list, err)
	}
	r := update(t, s, "a", func(r *state.Record) { r.Phase = state.PhaseDesired })
	if r.Name != "a" || r.CreatedAt.IsZero() || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Fatalf("first update returned %+v: want the name and equal CreatedAt, UpdatedAt", r)
	}
	// Byte order, as bbolt keeps keys: upper case before lower case, "b" before "b-1".
	for _, n := range []string{"b-1", "B", "b"} {
		update(t, s, n, func(r *state.Record) { r.Phase = state.PhaseInSync })
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list {
		names = append(names, r.Name)
	}
	if got, want := strings.Join(names, ","), "B,a,b,b-1"; got != want {
		t.Fatalf("List names = %s, want %s", got, want)
	}
}

func everyFieldRoundTrips(t *testing.T, s Store) {
	started := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	want := update(t, s, "full", func(r *state.Record) {
		*r = state.Record{
			Name: "full", Profile: "aws", Source: "scim", Phase: state.PhaseTeamCreated,
			Storage:       team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-full", Region: "eu-west-1", Path: "p"},
			StorageDigest: "d", KMSKeyARN: "arn:aws:kms:eu-west-1:1:key/k", GroupID: "g1",
			Intent:   &state.Intent{Op: state.OpCreateTeam, Target: "full", Started: started},
			Attempts: 3, LastError: "boom ✓", NextRetry: started.Add(time.Minute), Conflict: "c",
			Orphaned: true, Registered: true,
			MemberEmails: []string{"a@x", "b@x"}, MemberIDs: []string{"1", "2"}, MembersAdded: []string{"2"},
			MemberUsers: map[string]string{"a@x": "1"}, MemberRoles: map[string]string{"a@x": "admin"},
			InitialMemberIDs: []string{"sa"}, BucketReady: started, TeamCreated: started, LastVerified: started,
		}
	})
	got := get(t, s, "full")
	if a, b := jsonOf(t, got), jsonOf(t, want); a != b {
		t.Fatalf("stored record differs from the one Update returned:\n got %s\nwant %s", a, b)
	}
}

func failedUpdateStoresNothing(t *testing.T, s Store) {
	ctx := t.Context()
	update(t, s, "a", func(r *state.Record) { r.Phase = state.PhaseDesired })
	boom := errors.New("boom")
	if _, err := s.Update(ctx, "a", func(r *state.Record) error { r.Phase = state.PhaseInSync; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if got := get(t, s, "a"); got.Phase != state.PhaseDesired {
		t.Fatalf("a failed update was stored: phase %s", got.Phase)
	}
	if _, err := s.Update(ctx, "new", func(r *state.Record) error { r.Phase = state.PhaseInSync; return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if _, err := s.Get(ctx, "new"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a failed first update created the team: %v", err)
	}
}

func updateWithoutChange(t *testing.T, s Store) {
	ctx := t.Context()
	first := update(t, s, "a", func(r *state.Record) { r.Phase = state.PhaseInSync })
	second := update(t, s, "a", func(r *state.Record) { r.Phase = state.PhaseInSync })
	if !second.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatalf("a no-op update changed UpdatedAt: %v -> %v", first.UpdatedAt, second.UpdatedAt)
	}
	if r := update(t, s, "ghost", func(*state.Record) {}); r.Name != "ghost" || !r.CreatedAt.IsZero() {
		t.Fatalf("a no-op update of a missing team returned %+v, want the zero record with its name", r)
	}
	if _, err := s.Get(ctx, "ghost"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a no-op update created the team: %v", err)
	}
}

// intents: an intent recorded before an external call is there after it, until the result clears it.
func intents(t *testing.T, s Store) {
	started := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	update(t, s, "a", func(r *state.Record) {
		r.Intent = &state.Intent{Op: state.OpEnsureBucket, Target: "wandb-a", Started: started}
	})
	if got := get(t, s, "a").Intent; got == nil || *got != (state.Intent{Op: state.OpEnsureBucket, Target: "wandb-a", Started: started}) {
		t.Fatalf("intent = %+v", got)
	}
	update(t, s, "a", func(r *state.Record) { r.Intent, r.Phase = nil, state.PhaseBucketReady })
	if got := get(t, s, "a"); got.Intent != nil || got.Phase != state.PhaseBucketReady {
		t.Fatalf("after the result: intent %+v, phase %s", got.Intent, got.Phase)
	}
}

// concurrentOneTeam: read-modify-write updates of one team from many goroutines lose none.
func concurrentOneTeam(t *testing.T, s Store) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Update(t.Context(), "hot", func(r *state.Record) error {
					r.Attempts++
					r.MemberIDs = append(r.MemberIDs, fmt.Sprintf("%d-%d", w, i))
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := get(t, s, "hot")
	if got.Attempts != workers*each || len(got.MemberIDs) != workers*each {
		t.Fatalf("after %d updates: attempts %d, %d member ids", workers*each, got.Attempts, len(got.MemberIDs))
	}
}

func concurrentManyTeams(t *testing.T, s Store) {
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for range 5 {
				if _, err := s.Update(t.Context(), fmt.Sprintf("t%02d", i), func(r *state.Record) error { r.Attempts++; return nil }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	list, err := s.List(t.Context())
	if err != nil || len(list) != 20 {
		t.Fatalf("List = %d records, %v; want 20", len(list), err)
	}
	for _, r := range list {
		if r.Attempts != 5 {
			t.Errorf("%s: attempts %d, want 5", r.Name, r.Attempts)
		}
	}
}

// markRegistered: registration is per bucket, so every team on the bucket is marked, and only those.
func markRegistered(t *testing.T, s Store) {
	ctx := t.Context()
	shared := team.Storage{Provider: team.ProviderS3Compatible, Endpoint: "http://s3", Bucket: "shared", Shared: true}
	for name, st := range map[string]team.Storage{
		"a": {Provider: shared.Provider, Endpoint: shared.Endpoint, Bucket: shared.Bucket, Shared: true, Path: "a"},
		"b": {Provider: shared.Provider, Endpoint: shared.Endpoint, Bucket: shared.Bucket, Shared: true, Path: "b"},
		"c": {Provider: shared.Provider, Endpoint: shared.Endpoint, Bucket: "own"},
	} {
		update(t, s, name, func(r *state.Record) { r.Phase, r.Storage = state.PhaseBucketReady, st })
	}
	update(t, s, "d", func(r *state.Record) { r.Phase = state.PhaseDesired })
	marked, err := s.MarkRegistered(ctx, "a")
	if err != nil || len(marked) != 2 || marked[0].Name != "a" || marked[1].Name != "b" {
		t.Fatalf("MarkRegistered(a) = %+v, %v; want a and b", marked, err)
	}
	for name, want := range map[string]bool{"a": true, "b": true, "c": false, "d": false} {
		if r := get(t, s, name); r.Registered != want {
			t.Errorf("%s registered = %v, want %v", name, r.Registered, want)
		}
	}
	if _, err := s.MarkRegistered(ctx, "d"); err == nil || !strings.Contains(err.Error(), "not ready yet") {
		t.Errorf("MarkRegistered of a team without a bucket: %v", err)
	}
	if _, err := s.MarkRegistered(ctx, "nope"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("MarkRegistered of an unknown team: %v", err)
	}
}

// markRegisteredWhileUpdating: registrations of a shared bucket and updates of its teams at once
// neither deadlock nor lose each other's changes.
func markRegisteredWhileUpdating(t *testing.T, s Store) {
	const teams, each = 4, 10
	st := team.Storage{Provider: team.ProviderS3Compatible, Endpoint: "http://s3", Bucket: "shared", Shared: true}
	for i := range teams {
		update(t, s, fmt.Sprintf("s%d", i), func(r *state.Record) {
			r.Phase, r.Storage = state.PhaseBucketReady, st
			r.Storage.Path = r.Name
		})
	}
	var wg sync.WaitGroup
	for i := range teams {
		wg.Go(func() {
			for range each {
				if _, err := s.Update(t.Context(), fmt.Sprintf("s%d", i), func(r *state.Record) error { r.Attempts++; return nil }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 5 {
				if marked, err := s.MarkRegistered(t.Context(), "s0"); err != nil || len(marked) != teams {
					t.Errorf("MarkRegistered = %d records, %v; want %d", len(marked), err, teams)
				}
			}
		})
	}
	wg.Wait()
	for i := range teams {
		if r := get(t, s, fmt.Sprintf("s%d", i)); r.Attempts != each || !r.Registered {
			t.Errorf("%s: attempts %d, registered %v; want %d, true", r.Name, r.Attempts, r.Registered, each)
		}
	}
}

func cursors(t *testing.T, s Store) {
	ctx := t.Context()
	if v, err := s.Cursor(ctx, "graph/delta"); err != nil || v != "" {
		t.Fatalf("Cursor on a new state = %q, %v; want empty", v, err)
	}
	for _, want := range []string{"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=a", "b", ""} {
		if err := s.SetCursor(ctx, "graph/delta", want); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Cursor(ctx, "graph/delta"); err != nil || got != want {
			t.Fatalf("Cursor = %q, %v; want %q", got, err, want)
		}
	}
	if err := s.SetCursor(ctx, "okta/logs", "x"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Cursor(ctx, "okta/logs"); got != "x" {
		t.Fatalf("Cursor(okta/logs) = %q, want x", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.SetCursor(cancelled, "okta/logs", "y"); !errors.Is(err, context.Canceled) {
		t.Errorf("SetCursor with a cancelled context: %v, want context.Canceled", err)
	}
	if got, _ := s.Cursor(ctx, "okta/logs"); got != "x" {
		t.Errorf("a cancelled SetCursor stored %q", got)
	}
}

// export: the records as List has them, with the schema version, and an empty store as an empty list.
func export(t *testing.T, s Store) {
	ctx := t.Context()
	var empty bytes.Buffer
	if err := s.Export(ctx, &empty); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("{\n  \"schemaVersion\": %d,\n  \"teams\": []\n}\n", state.SchemaVersion); empty.String() != want {
		t.Fatalf("export of an empty store = %q, want %q", empty.String(), want)
	}
	for _, n := range []string{"x", "y"} {
		update(t, s, n, func(r *state.Record) { r.Phase, r.GroupID = state.PhaseInSync, "g-"+n })
	}
	var buf bytes.Buffer
	if err := s.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := state.WriteExport(&want, list); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want.String() {
		t.Fatalf("export:\n%s\nwant:\n%s", buf.String(), want.String())
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// importInto: Import stores records as they are, timestamps included, and only into an empty store.
func importInto(t *testing.T, s Store) {
	ctx := t.Context()
	at := time.Date(2025, 12, 1, 10, 0, 0, 42, time.UTC)
	recs := []state.Record{
		{Name: "a", Phase: state.PhaseInSync, CreatedAt: at, UpdatedAt: at.Add(time.Hour)},
		{Name: "b", Phase: state.PhaseDesired, Intent: &state.Intent{Op: state.OpCreateKey, Target: "alias/b", Started: at}, CreatedAt: at, UpdatedAt: at},
	}
	cursors := map[string]string{"graph/delta": "d", "okta/logs": "o"}
	if err := s.Import(ctx, recs, cursors); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := jsonOf(t, list), jsonOf(t, recs); a != b {
		t.Fatalf("after Import, List =\n%s\nwant\n%s", a, b)
	}
	if got, err := s.Cursors(ctx); err != nil || !maps.Equal(got, cursors) {
		t.Fatalf("Cursors = %v, %v; want %v", got, err, cursors)
	}
	err = s.Import(ctx, []state.Record{{Name: "c"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "import only into a new state") {
		t.Fatalf("a second Import: %v, want a refusal", err)
	}
	if _, err := s.Get(ctx, "c"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("the refused Import stored a team: %v", err)
	}
}

// copyThrough copies a store with records and cursors into a second and that into a third: every
// copy is verified, and the last exports exactly as the first.
func copyThrough(t *testing.T, first, second, third Store) {
	ctx := t.Context()
	for i := range 30 {
		update(t, first, fmt.Sprintf("team-%02d", i), func(r *state.Record) {
			r.Phase, r.Attempts = state.PhaseBucketReady, i
			if i%3 == 0 {
				r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: r.Name, Started: time.Now()}
			}
		})
	}
	if err := first.SetCursor(ctx, "graph/delta", "link"); err != nil {
		t.Fatal(err)
	}
	for _, hop := range []struct{ dst, src Store }{{second, first}, {third, second}} {
		n, err := state.Copy(ctx, hop.dst, hop.src)
		if err != nil || n != (state.Copied{Teams: 30, Cursors: 1}) {
			t.Fatalf("Copy = %+v, %v; want 30 teams and 1 cursor", n, err)
		}
	}
	var a, b bytes.Buffer
	if err := first.Export(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if err := third.Export(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatal("the copy of a copy exports differently from the original")
	}
	if _, err := state.Copy(ctx, second, first); err == nil {
		t.Fatal("Copy into a store that has records succeeded")
	}
}

// countByStatus: the backend's partial read counts as Status does on whole records.
func countByStatus(t *testing.T, s Store) {
	ctx := t.Context()
	recs := map[string]func(*state.Record){
		"a": func(r *state.Record) { r.Phase = state.PhaseInSync },
		"b": func(r *state.Record) { r.Phase = state.PhaseInSync },
		"c": func(r *state.Record) { r.Phase, r.LastError = state.PhaseDesired, "boom" },
		"d": func(r *state.Record) { r.Phase, r.Conflict, r.LastError = state.PhaseInSync, "taken", "x" },
		"e": func(r *state.Record) { r.Phase, r.Orphaned = state.PhaseInSync, true },
		"f": func(r *state.Record) { r.Phase = state.PhaseBucketReady },
	}
	want := map[string]int{}
	for name, fn := range recs {
		r := update(t, s, name, fn)
		want[r.Status()]++
	}
	got, err := s.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CountByStatus = %v, want %v", got, want)
	}
}
