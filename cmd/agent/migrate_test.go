package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/pgstate"
	"github.com/byob-agent/byob-agent/state/statetest"
)

// TestStateMigrate: a state file copied into PostgreSQL and back into a new file is the same state;
// the DSN (a secret) is never printed; a destination that is not empty or new is refused.
func TestStateMigrate(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	db, err := state.Open(src, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := db.Update(ctx, fmt.Sprintf("team-%02d", i), func(r *state.Record) error {
			r.Phase, r.GroupID, r.LastVerified = state.PhaseInSync, fmt.Sprint("g", i), time.Now()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetCursor(ctx, "graph/delta", "link"); err != nil {
		t.Fatal(err)
	}
	statetest.Fill(t, db)
	var want bytes.Buffer
	if err := db.Export(ctx, &want); err != nil {
		t.Fatal(err)
	}
	db.Close()

	dsn := testenv.PostgresDatabase(t)
	// Trust authentication ignores the password, so a DSN with one still works: it must never show.
	dsn = strings.Replace(dsn, "postgres@", "postgres:hunter2-dsn-secret@", 1)
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	migrate := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"state", "migrate"}, args...), &out, &out)
		if err != nil {
			out.WriteString(err.Error())
		}
		if strings.Contains(out.String(), "hunter2-dsn-secret") {
			t.Errorf("state migrate %v printed the DSN's password:\n%s", args, out.String())
		}
		return out.String(), err
	}
	out, err := migrate("--to", "postgres", "--file", src, "--dsn-file", dsnFile)
	if err != nil || !strings.Contains(out, "copied 20 teams, 1 cursors, 6 SCIM users and 3 SCIM groups") || !strings.Contains(out, "verified record by record") {
		t.Fatalf("--to postgres: %v\n%s", err, out)
	}
	pg, err := pgstate.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	var inPG bytes.Buffer
	if err := pg.Export(ctx, &inPG); err != nil {
		t.Fatal(err)
	}
	if inPG.String() != want.String() {
		t.Fatal("PostgreSQL's export differs from the state file's")
	}

	back := filepath.Join(dir, "back.db")
	t.Setenv("MIGRATE_TEST_DSN", dsn)
	if out, err := migrate("--to", "bolt", "--file", back, "--dsn-env", "MIGRATE_TEST_DSN"); err != nil || !strings.Contains(out, "6 SCIM users and 3 SCIM groups") {
		t.Fatalf("--to bolt: %v\n%s", err, out)
	}
	db, err = state.Open(back, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	err = db.Export(ctx, &got)
	db.Close()
	if err != nil || got.String() != want.String() {
		t.Fatalf("the state file copied back differs from the original (%v)", err)
	}

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"into a database with records", []string{"--to", "postgres", "--file", src, "--dsn-file", dsnFile}, 1, "import only into a new state"},
		{"into an existing file", []string{"--to", "bolt", "--file", back, "--dsn-file", dsnFile}, 2, "exists; name a new file"},
		{"no DSN", []string{"--to", "bolt", "--file", filepath.Join(dir, "x.db"), "--dsn-env", "MIGRATE_TEST_UNSET"}, 2, "set MIGRATE_TEST_UNSET"},
		{"bad direction", []string{"--to", "etcd", "--file", src, "--dsn-file", dsnFile}, 2, "--to must be postgres or bolt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := migrate(tt.args...)
			code := 1
			if ee := (*exitError)(nil); errors.As(err, &ee) {
				code = ee.code
			}
			if err == nil || code != tt.code || !strings.Contains(out, tt.msg) {
				t.Errorf("got %v (exit %d), want exit %d with %q:\n%s", err, code, tt.code, tt.msg, out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused migration left a state file: %v", err)
	}
}
