package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/byob-agent/byob-agent/team"
	bolt "go.etcd.io/bbolt"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

func TestUpdateGetList(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	if _, err := d.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: got %v, want ErrNotFound", err)
	}
	st := team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-a", Region: "us-east-1"}
	r, err := d.Update(ctx, "a", func(r *Record) error {
		r.Phase = PhaseDesired
		r.Storage = st
		r.StorageDigest = st.Digest()
		r.Intent = &Intent{Op: OpEnsureBucket, Target: "wandb-a"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.CreatedAt.IsZero() || r.UpdatedAt.IsZero() {
		t.Fatalf("timestamps not set: %+v", r)
	}
	got, err := d.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Storage != st || got.Intent == nil || got.Intent.Op != OpEnsureBucket {
		t.Fatalf("round trip lost data: %+v", got)
	}
	// An error from fn stores nothing.
	if _, err := d.Update(ctx, "a", func(r *Record) error { r.Phase = PhaseInSync; return fmt.Errorf("boom") }); err == nil {
		t.Fatal("want error")
	}
	if got, _ := d.Get(ctx, "a"); got.Phase != PhaseDesired {
		t.Fatalf("failed update was stored: phase %s", got.Phase)
	}
	if _, err := d.Update(ctx, "b", func(r *Record) error { r.Phase = PhaseInSync; return nil }); err != nil {
		t.Fatal(err)
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("List = %+v", list)
	}
}

func TestUpdateWithoutChangeDoesNotWrite(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	first, err := d.Update(ctx, "a", func(r *Record) error { r.Phase = PhaseInSync; return nil })
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.Update(ctx, "a", func(r *Record) error { r.Phase = PhaseInSync; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !second.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatalf("no-op update changed UpdatedAt: %v -> %v", first.UpdatedAt, second.UpdatedAt)
	}
}

func TestConcurrentUpdatesAllLand(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := d.Update(ctx, fmt.Sprintf("t%02d", i), func(r *Record) error { r.Attempts++; return nil }); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	list, _ := d.List(ctx)
	if len(list) != 50 {
		t.Fatalf("got %d records", len(list))
	}
	for _, r := range list {
		if r.Attempts != 10 {
			t.Fatalf("%s: attempts %d, want 10", r.Name, r.Attempts)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	d, path := openTemp(t)
	if err := d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("99"))
	}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("got %v, want schema error", err)
	}
}

func TestExportHasNoSecretsAndAllTeams(t *testing.T) {
	ctx := context.Background()
	d, _ := openTemp(t)
	for _, n := range []string{"x", "y"} {
		if _, err := d.Update(ctx, n, func(r *Record) error { r.Phase = PhaseInSync; r.GroupID = "g-" + n; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := d.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"schemaVersion": 2`, `"g-x"`, `"g-y"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("export lacks %s:\n%s", want, buf.String())
		}
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		r    Record
		want string
	}{
		{Record{Phase: PhaseInSync}, "in_sync"},
		{Record{Phase: PhaseDesired, LastError: "x"}, "failed"},
		{Record{Phase: PhaseInSync, Conflict: "y", LastError: "x"}, "conflict"},
		{Record{Phase: PhaseInSync, Orphaned: true}, "orphaned"},
	}
	for _, tt := range tests {
		if got := tt.r.Status(); got != tt.want {
			t.Errorf("%+v: Status() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// TestMarkRegistered: registration is per bucket, so every team on the bucket is marked, and only those.
func TestMarkRegistered(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	shared := team.Storage{Provider: team.ProviderS3Compatible, Endpoint: "http://s3", Bucket: "shared", Shared: true}
	for name, st := range map[string]team.Storage{
		"a": {Provider: shared.Provider, Endpoint: shared.Endpoint, Bucket: shared.Bucket, Shared: true, Path: "a"},
		"b": {Provider: shared.Provider, Endpoint: shared.Endpoint, Bucket: shared.Bucket, Shared: true, Path: "b"},
		"c": {Provider: shared.Provider, Endpoint: shared.Endpoint, Bucket: "own"},
	} {
		if _, err := db.Update(ctx, name, func(r *Record) error { r.Phase, r.Storage = PhaseBucketReady, st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Update(ctx, "d", func(r *Record) error { r.Phase = PhaseDesired; return nil }); err != nil {
		t.Fatal(err)
	}
	marked, err := db.MarkRegistered(ctx, "a")
	if err != nil || len(marked) != 2 {
		t.Fatalf("MarkRegistered(a) = %d records, %v; want a and b", len(marked), err)
	}
	for name, want := range map[string]bool{"a": true, "b": true, "c": false, "d": false} {
		if r, _ := db.Get(ctx, name); r.Registered != want {
			t.Errorf("%s registered = %v, want %v", name, r.Registered, want)
		}
	}
	if _, err := db.MarkRegistered(ctx, "d"); err == nil || !strings.Contains(err.Error(), "not ready yet") {
		t.Errorf("MarkRegistered of a team without a bucket: %v", err)
	}
	if _, err := db.MarkRegistered(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkRegistered of an unknown team: %v", err)
	}
}
