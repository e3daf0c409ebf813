package state

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/team"
	bolt "go.etcd.io/bbolt"
)

// seed writes n teams like the agent's, and a SCIM user and group, in one transaction.
func seed(tb testing.TB, d *DB, n int) {
	tb.Helper()
	ctx := context.Background()
	if _, err := d.CreateSCIMUser(ctx, SCIMUser{UserName: "ada@example.com", Active: true}); err != nil {
		tb.Fatal(err)
	}
	if _, err := d.CreateSCIMGroup(ctx, SCIMGroup{DisplayName: "wandb-vision"}); err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	err := d.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			name := fmt.Sprintf("team-%05d", i)
			st := team.Storage{Provider: team.ProviderAWS, Bucket: "acme-wandb-" + name, Region: "us-east-1",
				KMSKeyARN: "arn:aws:kms:us-east-1:123456789012:key/" + name}
			v, err := json.Marshal(Record{Name: name, Profile: "main", Source: "yaml", Phase: PhaseInSync, Storage: st,
				StorageDigest: st.Digest(), GroupID: "g-" + name, MemberEmails: []string{"ada@example.com", "bob@example.com"},
				MemberIDs: []string{"u1", "u2"}, CreatedAt: now, UpdatedAt: now, BucketReady: now, TeamCreated: now, LastVerified: now})
			if err != nil {
				return err
			}
			if err := teams(tx).Put([]byte(name), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// seededFile is a closed state file of n teams.
func seededFile(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "state.db")
	d, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	seed(tb, d, n)
	if err := d.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestLockedByAnotherProcess holds the state in a second process (this test binary, see TestMain).
func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("holder: %q %v %s", line, err, stderr.String())
	}

	for _, readOnly := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: readOnly, LockTimeout: 100 * time.Millisecond})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("open (read-only %v) while another process holds it: got %v, want ErrLocked", readOnly, err)
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "in use by another byob-agent process") {
			t.Errorf("message %q does not name the file and its holder", msg)
		}
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v %s", err, stderr.String())
	}
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open after the holder exited: %v", err)
	}
	defer d.Close()
	if r, err := d.Get(t.Context(), "held"); err != nil || r.Phase != PhaseInSync {
		t.Errorf("the holder's record: %+v %v", r, err)
	}
}

func TestDamagedFileIsReported(t *testing.T) {
	src := seededFile(t, 300)
	good, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	leaves, branches := pagesOf(t, src, "leaf"), pagesOf(t, src, "branch")
	if len(leaves) < 4 || len(branches) == 0 {
		t.Fatalf("%d leaf and %d branch pages: seed more teams", len(leaves), len(branches))
	}
	// farChild points the first child of a branch page terabytes past the end of the file: reading it
	// faults, which only SetPanicOnFault turns into an error instead of a crash.
	farChild := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(farChild[branches[0]*pageSize+16+8:], 1<<30) // page header, then pos, ksize, pgid
	// scribble overwrites bytes at the start of a leaf page: the part of a page that is in use.
	scribble := func(seed uint64) []byte {
		rnd := rand.New(rand.NewPCG(seed, seed))
		b := append([]byte(nil), good...)
		at := leaves[len(leaves)/4+rnd.IntN(len(leaves)/2)]*pageSize + rnd.IntN(512)
		for i := range 64 {
			b[at+i] = byte(rnd.Uint32())
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated to half", good[:len(good)/2]},
		{"truncated to one page", good[:pageSize]},
		{"a YAML file", []byte("wandb:\n  scimURL: https://api.wandb.ai/scim/v2\nstate:\n  path: state.db\n")},
		{"text of two pages", []byte(strings.Repeat("x", 2*pageSize))},
		{"a branch page pointing past the end", farChild},
	}
	for seed := range uint64(5) {
		tests = append(tests, struct {
			name string
			data []byte
		}{fmt.Sprintf("random bytes in a page, seed %d", seed), scribble(seed)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, readOnly := range []bool{false, true} {
				path := filepath.Join(t.TempDir(), "state.db")
				if err := os.WriteFile(path, tt.data, 0o600); err != nil {
					t.Fatal(err)
				}
				d, err := Open(path, Options{ReadOnly: readOnly})
				if err == nil {
					d.Close()
					t.Fatalf("read-only %v: the damaged file opened", readOnly)
				}
				var de *DamagedError
				if msg := err.Error(); !errors.As(err, &de) || !strings.Contains(msg, path) || !strings.Contains(msg, "byob-agent state backup") {
					t.Errorf("read-only %v: %q does not name the file and the way out", readOnly, msg)
				}
				// The file was not changed, and its lock was released (bbolt panicked on some of them).
				if got, _ := os.ReadFile(path); string(got) != string(tt.data) {
					t.Errorf("read-only %v: opening the damaged file changed it", readOnly)
				}
				if _, err := Open(path, Options{ReadOnly: readOnly, LockTimeout: 50 * time.Millisecond}); errors.Is(err, ErrLocked) {
					t.Errorf("read-only %v: the failed open left the file locked", readOnly)
				}
			}
		})
	}
}

// pagesOf are the numbers of a state file's pages of one type.
func pagesOf(t *testing.T, path, typ string) []int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []int
	err = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == typ {
				out = append(out, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenCreatesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "..", "state.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(t.Context(), "a", func(r *Record) error { r.Phase = PhaseDesired; return nil }); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := Open(filepath.Join(t.TempDir(), "missing.db"), Options{ReadOnly: true}); err == nil {
		t.Error("a read-only open created a missing file")
	}
	d, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer d.Close()
	if recs, err := d.List(t.Context()); err != nil || len(recs) != 1 {
		t.Errorf("List = %v, %v", recs, err)
	}
}

// BenchmarkOpen is what the check costs at every start, on a state of 5,000 teams: the record walk
// and bbolt's tx.Check, alone and within Open.
func BenchmarkOpen(b *testing.B) {
	path := seededFile(b, 5000)
	if fi, err := os.Stat(path); err == nil {
		b.Logf("state of 5,000 teams: %d bytes", fi.Size())
	}
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			d, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			d.Close()
		}
	})
	d, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if err := d.db.View(func(tx *bolt.Tx) error { return tx.ForEach(walk) }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tx.Check", func(b *testing.B) {
		for b.Loop() {
			if err := d.db.View(func(tx *bolt.Tx) error {
				var errs []error
				for err := range tx.Check() {
					errs = append(errs, err)
				}
				return errors.Join(errs...)
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
