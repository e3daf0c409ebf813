package leader

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/pgstate"
)

const wait = 30 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.SharedPostgres.Close()
	os.Exit(code)
}

func TestSingleLeadsUntilStopped(t *testing.T) {
	var tr Tracker
	var changes []Status
	tr.OnChange = func(s Status) { changes = append(changes, s) }
	ctx, cancel := context.WithCancel(t.Context())
	during := make(chan Status, 1)
	done := make(chan error, 1)
	go func() {
		done <- tr.Run(ctx, Single, func(ctx context.Context, epoch int64) {
			during <- tr.Status()
			<-ctx.Done()
		})
	}()
	if s := <-during; !s.Leading || s.Epoch != 0 || s.Terms != 1 {
		t.Fatalf("status while leading: %+v", s)
	}
	cancel()
	<-done
	if s := tr.Status(); s.Leading || s.Terms != 1 || s.Ended.IsZero() {
		t.Fatalf("status after the stop: %+v", s)
	}
	if len(changes) != 2 || !changes[0].Leading || changes[1].Leading {
		t.Fatalf("changes %+v, want leading then not", changes)
	}
}

// replica campaigns on s as holder; its terms' epochs and the term it was told of come out of terms.
type replica struct {
	tr     Tracker
	terms  chan [2]int64 // epoch given to lead, and the epoch a write under its context records
	cancel context.CancelFunc
	done   chan struct{}
}

func campaign(t *testing.T, s *pgstate.Store, dsn, holder string) *replica {
	e, err := s.Elector(pgstate.LeaseConfig{Name: "test", Holder: holder, Duration: time.Hour, RenewDeadline: 30 * time.Minute, RetryPeriod: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{terms: make(chan [2]int64, 10), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel = cancel
	f := s.FencedByContext()
	go func() {
		defer close(r.done)
		r.tr.Run(ctx, Lease(e), func(ctx context.Context, epoch int64) {
			rec, err := f.Update(ctx, "team-"+holder, func(r *state.Record) error { r.Phase = state.PhaseInSync; return nil })
			if err != nil {
				t.Errorf("%s: write under its term %d: %v", holder, epoch, err)
			}
			r.terms <- [2]int64{epoch, writtenBy(t, dsn, rec.Name)}
			<-ctx.Done()
		})
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// writtenBy reads the epoch a team's record was last written by, from the database.
func writtenBy(t *testing.T, dsn, name string) int64 {
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close(t.Context())
	var epoch int64
	if err := conn.QueryRow(t.Context(), `SELECT epoch FROM team_records WHERE name = $1`, name).Scan(&epoch); err != nil {
		t.Error(err)
	}
	return epoch
}

// TestLeaseHandsOver: of two replicas one leads; when it stops (releasing the lease) the other leads
// with the next epoch, each Status saying so.
func TestLeaseHandsOver(t *testing.T) {
	dsn := testenv.PostgresDatabase(t)
	s, err := pgstate.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := campaign(t, s, dsn, "a")
	first := <-a.terms
	if first[0] != 1 || first[1] != 1 {
		t.Fatalf("a's first term: epoch %d, written by epoch %d; want 1", first[0], first[1])
	}
	b := campaign(t, s, dsn, "b")
	if st := a.tr.Status(); !st.Leading || st.Epoch != 1 {
		t.Fatalf("a: %+v", st)
	}
	if st := b.tr.Status(); st.Leading {
		t.Fatalf("b leads while a holds an hour-long lease: %+v", st)
	}
	a.cancel()
	<-a.done
	select {
	case got := <-b.terms:
		if got[0] != 2 || got[1] != 2 {
			t.Fatalf("b's term: epoch %d, written by epoch %d; want 2", got[0], got[1])
		}
	case <-time.After(wait):
		t.Fatalf("b did not lead within %v of a's stop", wait)
	}
	if st := a.tr.Status(); st.Leading || st.Terms != 1 {
		t.Fatalf("a after its stop: %+v", st)
	}
	if st := b.tr.Status(); !st.Leading || st.Epoch != 2 || st.Terms != 1 {
		t.Fatalf("b: %+v", st)
	}
}
