package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestBackupWhileWriting takes copies while writers update every team: each copy opens, every
// record in it decodes, and it holds every team the state had when the copy began.
func TestBackupWhileWriting(t *testing.T) {
	ctx := t.Context()
	d, _ := openTemp(t)
	seed(t, d, 200)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("team-%05d", (w*50+i)%200)
				if _, err := d.Update(ctx, name, func(r *Record) error {
					r.Attempts++
					r.LastError = strings.Repeat("x", i%3000) // records grow and shrink: pages split and are freed
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
				if _, err := d.Update(ctx, fmt.Sprintf("new-%d-%d", w, i), func(r *Record) error { r.Phase = PhaseDesired; return nil }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	dir := t.TempDir()
	for i := range 5 {
		before, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("copy-%d.db", i))
		n, err := WriteCopy(ctx, path, func(w io.Writer) error { _, err := d.Backup(ctx, w); return err })
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		if n < len(before) {
			t.Errorf("copy %d has %d teams, the state had %d before it began", i, n, len(before))
		}
		c, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("copy %d does not open: %v", i, err)
		}
		got, err := c.List(ctx) // decodes every record
		c.Close()
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		byName := map[string]Record{}
		for _, r := range got {
			byName[r.Name] = r
		}
		for _, r := range before {
			if c, ok := byName[r.Name]; !ok || c.Attempts < r.Attempts {
				t.Errorf("copy %d: team %s is %+v, before the copy it had %d attempts", i, r.Name, c, r.Attempts)
				break
			}
		}
	}
	close(stop)
	wg.Wait()

	// With the writers stopped, a copy equals the state record for record.
	var buf bytes.Buffer
	if _, err := d.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "final.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want, got bytes.Buffer
	if err := d.Export(ctx, &want); err != nil {
		t.Fatal(err)
	}
	if err := c.Export(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if want.String() != got.String() {
		t.Error("the copy taken after the writes stopped differs from the state")
	}
}

func TestBackupStopsWithItsContext(t *testing.T) {
	d, _ := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.Backup(ctx, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestWriteCopy(t *testing.T) {
	ctx := t.Context()
	d, _ := openTemp(t)
	seed(t, d, 10)
	var good bytes.Buffer
	if _, err := d.Backup(ctx, &good); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(path+".tmp", []byte("left over"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := WriteCopy(ctx, path, func(w io.Writer) error { _, err := w.Write(good.Bytes()); return err })
	if err != nil || n != 10 {
		t.Fatalf("WriteCopy = %d, %v; want 10 teams", n, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copy: %v, mode %v; want 0600", err, fi.Mode())
	}

	// A cut-short download or a failing source leaves the previous copy in place and no temporary file.
	tests := []struct {
		name  string
		write func(io.Writer) error
		msg   string
	}{
		{"cut short", func(w io.Writer) error { _, err := w.Write(good.Bytes()[:good.Len()/2]); return err }, "the copy is not a whole state file"},
		{"source fails", func(w io.Writer) error { return errors.New("connection reset") }, "connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := WriteCopy(ctx, path, tt.write)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %v, want an error naming %s with %q", err, path, tt.msg)
			}
			if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary file left: %v", err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, good.Bytes()) {
				t.Error("the previous copy was changed")
			}
		})
	}
}
