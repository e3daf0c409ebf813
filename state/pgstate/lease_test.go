package pgstate

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/state"
)

// wait bounds every wait for a condition: a failure, not a pass, takes this long.
const wait = 30 * time.Second

// fakeClock is the renew deadline's clock: it moves only when a test moves it, so a leader steps down
// for a missed deadline exactly when a test says, never because the machine was slow.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// candidate is one replica campaigning in a goroutine; its terms are reported as they begin and end.
type candidate struct {
	holder  string
	e       *Elector
	clock   *fakeClock
	started chan *Term
	ended   chan *Term
	stop    context.CancelFunc
	done    chan error

	mu      sync.Mutex
	renewFn func(context.Context) error // what beforeRenew does now
	renews  atomic.Int64                // renewals attempted
}

func newCandidate(t *testing.T, s *Store, holder string, duration time.Duration) *candidate {
	t.Helper()
	e, err := s.Elector(LeaseConfig{Name: "test", Holder: holder, Duration: duration, RenewDeadline: duration / 2, RetryPeriod: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := &candidate{holder: holder, e: e, clock: &fakeClock{}, started: make(chan *Term, 10), ended: make(chan *Term, 10), done: make(chan error, 1)}
	e.now = c.clock.now
	e.beforeRenew = func(ctx context.Context) error {
		c.renews.Add(1)
		c.mu.Lock()
		fn := c.renewFn
		c.mu.Unlock()
		if fn == nil {
			return nil
		}
		return fn(ctx)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go func() {
		c.done <- e.Run(ctx, func(ctx context.Context, term *Term) {
			c.started <- term
			<-ctx.Done()
			c.ended <- term
		})
	}()
	t.Cleanup(func() { c.stop(); <-c.done })
	return c
}

func (c *candidate) setRenew(fn func(context.Context) error) {
	c.mu.Lock()
	c.renewFn = fn
	c.mu.Unlock()
}

// term waits for c's next term.
func (c *candidate) term(t *testing.T) *Term {
	t.Helper()
	select {
	case term := <-c.started:
		return term
	case <-time.After(wait):
		t.Fatalf("%s did not take the lease within %v", c.holder, wait)
		return nil
	}
}

// end waits for term of c to end.
func (c *candidate) end(t *testing.T, want *Term) {
	t.Helper()
	select {
	case got := <-c.ended:
		if got != want {
			t.Fatalf("%s: term %d ended, want %d", c.holder, got.Epoch, want.Epoch)
		}
	case <-time.After(wait):
		t.Fatalf("%s: term %d did not end within %v", c.holder, want.Epoch, wait)
	}
}

// lease reads the lease row.
func lease(t *testing.T, s *Store) (holder string, epoch int64) {
	t.Helper()
	if err := s.pool.QueryRow(t.Context(), `SELECT holder, epoch FROM leader_lease WHERE name = 'test'`).Scan(&holder, &epoch); err != nil {
		t.Fatal(err)
	}
	return holder, epoch
}

func setPhase(ctx context.Context, s *Store, name string, p state.Phase) error {
	_, err := s.Update(ctx, name, func(r *state.Record) error { r.Phase = p; return nil })
	return err
}

// TestOneLeaderThenHandover: of two candidates one leads and writes under its epoch; the other never
// takes an unexpired lease; when the leader stops, the other takes over with the next epoch, and the
// old term's writes fail.
func TestOneLeaderThenHandover(t *testing.T) {
	s := open(t)
	a := newCandidate(t, s, "a", time.Minute)
	ta := a.term(t)
	b := newCandidate(t, s, "b", time.Minute)
	if h, e := lease(t, s); h != "a" || e != ta.Epoch || ta.Epoch != 1 {
		t.Fatalf("lease is %s/%d, term a/%d; want a/1", h, e, ta.Epoch)
	}
	if err := setPhase(t.Context(), s.Fenced(ta), "x", state.PhaseDesired); err != nil {
		t.Fatalf("the leader's fenced write: %v", err)
	}
	// b campaigns on while a renews: a's lease never expires, so b must not lead.
	waitFor(t, "20 renewals of a", func() bool { return a.renews.Load() >= 20 })
	select {
	case tb := <-b.started:
		t.Fatalf("b took the lease (epoch %d) while a held it", tb.Epoch)
	default:
	}

	a.stop() // releases the lease
	a.end(t, ta)
	tb := b.term(t)
	if tb.Epoch != ta.Epoch+1 {
		t.Fatalf("b's epoch %d, want %d", tb.Epoch, ta.Epoch+1)
	}
	if err := setPhase(t.Context(), s.Fenced(ta), "x", state.PhaseInSync); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old leader's write: %v, want ErrFenced", err)
	}
	if err := setPhase(t.Context(), s.Fenced(tb), "x", state.PhaseBucketReady); err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}
	checkEpochs(t, s, map[string]int64{"x": tb.Epoch})
}

// TestPausedLeaderIsFenced: a leader that stops renewing (paused, like SIGSTOP) loses the lease to
// the other candidate, epoch+1; its writes fail and commit nothing; when it runs again it steps down.
func TestPausedLeaderIsFenced(t *testing.T) {
	s := open(t)
	a := newCandidate(t, s, "a", 3*time.Second) // the lease expires 3 s after a's last renewal
	ta := a.term(t)
	if err := setPhase(t.Context(), s.Fenced(ta), "x", state.PhaseDesired); err != nil {
		t.Fatal(err)
	}
	resume := make(chan struct{})
	a.setRenew(func(ctx context.Context) error {
		select {
		case <-resume:
			return nil
		case <-ctx.Done(): // the test ended early
			return ctx.Err()
		}
	})
	b := newCandidate(t, s, "b", time.Minute)
	tb := b.term(t)
	if tb.Epoch != ta.Epoch+1 {
		t.Fatalf("b's epoch %d, want %d", tb.Epoch, ta.Epoch+1)
	}
	// a's term has not ended on its side (it is paused), but the database refuses its writes.
	select {
	case <-ta.ctx.Done():
		t.Fatal("the paused leader's term ended without it running")
	default:
	}
	if err := setPhase(t.Context(), s.Fenced(ta), "x", state.PhaseInSync); !errors.Is(err, ErrFenced) {
		t.Fatalf("the paused leader's write: %v, want ErrFenced", err)
	}
	if _, err := s.Fenced(ta).MarkRegistered(t.Context(), "x"); !errors.Is(err, ErrFenced) {
		t.Fatalf("the paused leader's MarkRegistered: %v, want ErrFenced", err)
	}
	if err := s.Fenced(ta).SetCursor(t.Context(), "c", "v"); !errors.Is(err, ErrFenced) {
		t.Fatalf("the paused leader's SetCursor: %v, want ErrFenced", err)
	}
	if r, err := s.Get(t.Context(), "x"); err != nil || r.Phase != state.PhaseDesired {
		t.Fatalf("x is %s (%v) after the fenced write, want desired", r.Phase, err)
	}
	if v, _ := s.Cursor(t.Context(), "c"); v != "" {
		t.Fatalf("the fenced SetCursor stored %q", v)
	}
	checkEpochs(t, s, map[string]int64{"x": ta.Epoch})

	close(resume) // a runs again: its renewal finds epoch+1 and it steps down
	a.end(t, ta)
	if cause := context.Cause(ta.ctx); !errors.Is(cause, ErrFenced) {
		t.Errorf("a's term ended with %v, want ErrFenced", cause)
	}
	if h, e := lease(t, s); h != "b" || e != tb.Epoch {
		t.Fatalf("lease is %s/%d after a resumed, want b/%d", h, e, tb.Epoch)
	}
}

// TestTerminatedConnectionEndsTerm: the server ends the leader's lease connection
// (pg_terminate_backend) while its process runs on: the term ends, its writes fail, and the
// replica campaigns again on a new connection (its own unexpired lease: epoch+1).
func TestTerminatedConnectionEndsTerm(t *testing.T) {
	s := open(t)
	a := newCandidate(t, s, "a", time.Minute)
	ta := a.term(t)
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'byob-agent lease a'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d lease connections (%v), want 1", n, err)
	}
	a.end(t, ta)
	if err := setPhase(t.Context(), s.Fenced(ta), "x", state.PhaseInSync); !errors.Is(err, ErrFenced) {
		t.Fatalf("a write of the ended term: %v, want ErrFenced", err)
	}
	next := a.term(t)
	if next.Epoch != ta.Epoch+1 {
		t.Fatalf("next epoch %d, want %d", next.Epoch, ta.Epoch+1)
	}
	if _, err := s.Get(t.Context(), "x"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("the ended term's write was committed: %v", err)
	}
}

// TestRenewDeadline: a leader whose renewals keep failing steps down once its renew deadline has
// passed on its own clock, and not before.
func TestRenewDeadline(t *testing.T) {
	s := open(t)
	a := newCandidate(t, s, "a", time.Minute) // renew deadline 30 s on the fake clock
	ta := a.term(t)
	a.setRenew(func(context.Context) error { return errors.New("injected: the database does not answer") })
	n := a.renews.Load()
	waitFor(t, "five failed renewals", func() bool { return a.renews.Load() >= n+5 }) // within the deadline
	select {
	case <-ta.ctx.Done():
		t.Fatalf("a stepped down before its renew deadline: %v", context.Cause(ta.ctx))
	default:
	}
	a.clock.advance(30 * time.Second)
	a.end(t, ta)
	if cause := context.Cause(ta.ctx); !errors.Is(cause, ErrFenced) {
		t.Errorf("a's term ended with %v, want ErrFenced (renew deadline)", cause)
	}
	if err := setPhase(t.Context(), s.Fenced(ta), "x", state.PhaseInSync); !errors.Is(err, ErrFenced) {
		t.Fatalf("a write of the ended term: %v, want ErrFenced", err)
	}
}

// TestTakeoverWaitsForInFlightWrite: a fenced write that began before the lease expired holds the
// lease row, so the takeover waits for its commit; in the database every write of epoch e precedes
// the start of term e+1.
func TestTakeoverWaitsForInFlightWrite(t *testing.T) {
	s := open(t)
	a := newCandidate(t, s, "a", 2*time.Second)
	ta := a.term(t)
	a.setRenew(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }) // paused until its term ends
	inFn, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) }) // a failed test must not leave the write open
	written := make(chan error, 1)
	go func() {
		_, err := s.Fenced(ta).Update(context.Background(), "x", func(r *state.Record) error {
			close(inFn)
			<-release
			r.Phase = state.PhaseBucketReady
			return nil
		})
		written <- err
	}()
	<-inFn
	b := newCandidate(t, s, "b", time.Minute)
	// b's attempts after the expiry block on the lease row; a's write then commits, and b takes over.
	waitFor(t, "b's takeover waiting on the lease row", func() bool {
		var blocked int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'byob-agent lease b' AND wait_event_type = 'Lock'`).Scan(&blocked); err != nil {
			t.Fatal(err)
		}
		return blocked > 0
	})
	releaseOnce.Do(func() { close(release) })
	if err := <-written; err != nil {
		t.Fatalf("a's write, begun in its term: %v", err)
	}
	tb := b.term(t)
	if tb.Epoch != ta.Epoch+1 {
		t.Fatalf("b's epoch %d, want %d", tb.Epoch, ta.Epoch+1)
	}
	checkEpochs(t, s, map[string]int64{"x": ta.Epoch})
}

// checkEpochs checks the database: each team was last written by the given epoch, and no write of
// any epoch was made after the next term began.
func checkEpochs(t *testing.T, s *Store, want map[string]int64) {
	t.Helper()
	for name, epoch := range want {
		var got *int64
		if err := s.pool.QueryRow(t.Context(), `SELECT epoch FROM team_records WHERE name = $1`, name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == nil || *got != epoch {
			t.Errorf("%s written by epoch %v, want %d", name, got, epoch)
		}
	}
	var stale int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM team_records r JOIN leader_terms n
		ON n.name = 'test' AND n.epoch = r.epoch + 1 WHERE r.updated_at >= n.acquired_at`).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d records were written by an epoch after the next term began", stale)
	}
}

// waitFor polls cond until it holds, or fails the test after wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, wait)
		}
	}
}

func TestLeaseConfig(t *testing.T) {
	tests := []struct {
		cfg  LeaseConfig
		want string // error text; "" valid
	}{
		{LeaseConfig{Holder: "h"}, ""},
		{LeaseConfig{}, "holder is required"},
		{LeaseConfig{Holder: "h", Duration: 5 * time.Second}, "renewDeadline 10s must be shorter than the lease duration 5s"},
		{LeaseConfig{Holder: "h", RenewDeadline: time.Second}, "retryPeriod 2s must be shorter than renewDeadline 1s"},
	}
	for _, tt := range tests {
		err := tt.cfg.setDefaults()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
	c := LeaseConfig{Holder: "h"}
	if err := c.setDefaults(); err != nil || c.Name != "byob-agent" || c.Duration != DefaultLeaseDuration ||
		c.RenewDeadline != DefaultRenewDeadline || c.RetryPeriod != DefaultRetryPeriod {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

// TestPausedWriteDoesNotBlockTakeover: a leader paused inside a fenced write transaction (holding the
// lease row FOR SHARE) keeps the others out only until the server ends its idle transaction (twice the
// lease); then another replica takes over, and the paused write commits nothing.
func TestPausedWriteDoesNotBlockTakeover(t *testing.T) {
	s := open(t)
	a := newCandidate(t, s, "a", 2*time.Second)
	ta := a.term(t)
	a.setRenew(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }) // paused until its term ends
	inFn, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	written := make(chan error, 1)
	go func() {
		_, err := s.Fenced(ta).Update(context.Background(), "x", func(r *state.Record) error {
			close(inFn)
			<-release // never, until the test ends
			r.Phase = state.PhaseBucketReady
			return nil
		})
		written <- err
	}()
	<-inFn
	b := newCandidate(t, s, "b", time.Minute)
	if tb := b.term(t); tb.Epoch != ta.Epoch+1 {
		t.Fatalf("b's epoch %d, want %d", tb.Epoch, ta.Epoch+1)
	}
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM team_records WHERE name = 'x'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the paused write left %d rows (%v), want none", n, err)
	}
}
