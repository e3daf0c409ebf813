package pgstate

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/statetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.SharedPostgres.Close()
	os.Exit(code)
}

// newDatabase returns the DSN of a new, empty database.
func newDatabase(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresDatabase(t)
	return dsn
}

// open returns a store on a new database, closed when the test ends.
func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), newDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRecords(t *testing.T) {
	statetest.Records(t, func(t *testing.T) statetest.Store { return open(t) })
}

func TestSCIM(t *testing.T) {
	statetest.SCIM(t, func(t *testing.T) statetest.SCIMStore { return open(t) })
}

// BenchmarkUpdate measures concurrent read-modify-write updates of 100 teams, unfenced and fenced
// (the fence adds one locking read of the lease row to each transaction).
func BenchmarkUpdate(b *testing.B) {
	for _, fenced := range []bool{false, true} {
		b.Run(map[bool]string{false: "unfenced", true: "fenced"}[fenced], func(b *testing.B) {
			dsn := testenv.PostgresDatabase(b)
			s, err := Open(b.Context(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if fenced {
				s = s.Fenced(benchTerm(b, s))
			}
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := fmt.Sprintf("team-%03d", n.Add(1)%100)
					if _, err := s.Update(b.Context(), name, func(r *state.Record) error { r.Attempts++; return nil }); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchTerm takes the lease for a benchmark and keeps it for the benchmark's length.
func benchTerm(b *testing.B, s *Store) *Term {
	e, err := s.Elector(LeaseConfig{Name: "bench", Holder: "bench", Duration: time.Minute, RenewDeadline: 30 * time.Second, RetryPeriod: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	terms, done := make(chan *Term), make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx, func(ctx context.Context, t *Term) { terms <- t; <-ctx.Done() })
	}()
	b.Cleanup(func() { cancel(); <-done })
	return <-terms
}
