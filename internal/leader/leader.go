// Package leader provides the daemon's leadership: which replica runs the reconcile machinery, and its
// status for metrics and /admin/status. With the bbolt state a replica is alone and leads from start
// to stop (Single); with PostgreSQL the replicas campaign for pgstate's fenced lease (Lease).
package leader

import (
	"context"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/state/pgstate"
)

// Campaign calls lead each time this replica becomes leader, with the term's epoch and a context that
// ends when the term does, and waits for lead to return before campaigning again; lead returning
// early gives the term up. Campaign returns when ctx ends.
type Campaign func(ctx context.Context, lead func(ctx context.Context, epoch int64)) error

// Single is the campaign of a replica alone with its state: one term, epoch 0, until ctx ends.
func Single(ctx context.Context, lead func(context.Context, int64)) error {
	lead(ctx, 0)
	return ctx.Err()
}

// Lease campaigns for e's lease. Each term's context carries its term (pgstate.WithTerm), so a store
// FencedByContext fences the term's writes.
func Lease(e *pgstate.Elector) Campaign {
	return func(ctx context.Context, lead func(context.Context, int64)) error {
		return e.Run(ctx, func(ctx context.Context, t *pgstate.Term) {
			lead(pgstate.WithTerm(ctx, t), t.Epoch)
		})
	}
}

// Status is a replica's leadership now.
type Status struct {
	Leading bool      `json:"leading"`
	Epoch   int64     `json:"epoch"`          // of the current or last term; 0 with the bbolt state
	Since   time.Time `json:"since,omitzero"` // when the current or last term began
	Terms   int64     `json:"terms"`          // terms this replica has begun
	Ended   time.Time `json:"ended,omitzero"` // when the last term ended; zero while leading
}

// Tracker runs a campaign and keeps this replica's Status.
type Tracker struct {
	// OnChange is told every change of status (metrics); called without locks held.
	OnChange func(Status)

	mu sync.Mutex
	st Status
}

// Run runs c until ctx ends, recording each term around lead.
func (t *Tracker) Run(ctx context.Context, c Campaign, lead func(ctx context.Context, epoch int64)) error {
	return c(ctx, func(ctx context.Context, epoch int64) {
		t.set(func(s *Status) { *s = Status{Leading: true, Epoch: epoch, Since: time.Now(), Terms: s.Terms + 1} })
		defer t.set(func(s *Status) { s.Leading, s.Ended = false, time.Now() })
		lead(ctx, epoch)
	})
}

func (t *Tracker) set(change func(*Status)) {
	t.mu.Lock()
	change(&t.st)
	st := t.st
	t.mu.Unlock()
	if t.OnChange != nil {
		t.OnChange(st)
	}
}

// Status returns the status now.
func (t *Tracker) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}
