package pgstate

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/byob-agent/byob-agent/state"
)

// TestConcurrentOpenMigratesOnce: replicas starting at once on an empty database all open it, and each
// migration is applied once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := newDatabase(t)
	const replicas = 6
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn)
			if err == nil {
				_, err = s.Update(t.Context(), "a", func(r *state.Record) error { r.Attempts++; return nil })
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	conn := connect(t, dsn)
	var versions, max int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&versions, &max); err != nil {
		t.Fatal(err)
	}
	if versions != SchemaVersion || max != SchemaVersion {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", versions, max, SchemaVersion)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dsn := newDatabase(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := connect(t, dsn).Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES (99)`); err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), dsn)
	if err == nil || !strings.Contains(err.Error(), "newer than this byob-agent understands") {
		t.Fatalf("got %v, want the newer-schema error", err)
	}
}

// TestOpenErrorHidesPassword: the DSN is a secret, so an error opening it never quotes the password.
func TestOpenErrorHidesPassword(t *testing.T) {
	dsn := strings.Replace(newDatabase(t), "postgres@", "nobody:s3cr3t-pw@", 1)
	dsn = strings.Replace(dsn, "/t_", "/missing_", 1)
	for _, d := range []string{dsn, "postgres://u:s3cr3t-pw@127.0.0.1:1/x?sslmode=bogus"} {
		_, err := Open(t.Context(), d)
		if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("Open: %v; want an error without the password", err)
		}
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
