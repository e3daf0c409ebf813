package pgstate

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state/statetest"
)

var postgres = testenv.NewShared("PostgreSQL", time.Minute, func(ctx context.Context) (*testenv.PostgresEnv, error) {
	return testenv.StartPostgres(ctx, testenv.PostgresOptions{})
})

func TestMain(m *testing.M) {
	code := m.Run()
	postgres.Close()
	os.Exit(code)
}

// newDatabase returns the DSN of a new, empty database.
func newDatabase(t *testing.T) string {
	t.Helper()
	dsn, err := postgres.Get(t).NewDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// open returns a store on a new database, closed when the test ends.
func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), newDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestRecords(t *testing.T) {
	statetest.Records(t, func(t *testing.T) statetest.Store { return open(t) })
}
