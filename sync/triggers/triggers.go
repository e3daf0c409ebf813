// Package triggers provides the Relay that brings triggers accepted by any replica (webhooks, SCIM
// changes, kept in the database's outbox) to the leader's work queue, and forgets each only once a
// reconcile of its key that began after it was queued has succeeded: a leader that dies mid-way
// leaves it for the next one.
package triggers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/state/pgstate"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// Outbox is where the triggers wait (pgstate.Store, fenced by the leader's term).
type Outbox interface {
	Triggers(ctx context.Context, after int64, limit int) ([]pgstate.Trigger, error)
	DeleteTriggers(ctx context.Context, ids []int64) error
	ListenTriggers(ctx context.Context, wake func()) error
}

// batch is how many triggers one read takes.
const batch = 500

// Relay is one leader term's consumer of the outbox.
type Relay struct {
	Outbox  Outbox
	Enqueue func(source string, key queuekey.Key)
	// Poll is how often the outbox is read without a notification: a lost NOTIFY (listening
	// connection down) delays a trigger by at most this.
	Poll time.Duration
	Log  *slog.Logger

	mu      sync.Mutex
	after   int64                     // highest id queued
	pending map[queuekey.Key][]queued // queued, not yet known reconciled
}

type queued struct {
	id int64
	at time.Time
}

// Run queues the outbox's triggers, then each new one as it is notified or polled, until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	wake := make(chan struct{}, 1)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	go func() {
		for ctx.Err() == nil {
			if err := r.Outbox.ListenTriggers(ctx, notify); err != nil {
				r.Log.Warn("listening for triggers failed; polling until it is back", "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(r.Poll):
				}
			}
		}
	}()
	tick := time.NewTicker(r.Poll)
	defer tick.Stop()
	for {
		r.read(ctx)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

// read queues every trigger past the last one queued.
func (r *Relay) read(ctx context.Context) {
	for ctx.Err() == nil {
		r.mu.Lock()
		after := r.after
		r.mu.Unlock()
		ts, err := r.Outbox.Triggers(ctx, after, batch)
		if err != nil {
			if ctx.Err() == nil {
				r.Log.Warn("reading triggers failed; will retry", "error", err)
			}
			return
		}
		now := time.Now()
		r.mu.Lock()
		if r.pending == nil {
			r.pending = map[queuekey.Key][]queued{}
		}
		for _, t := range ts {
			k := queuekey.Key(t.Key)
			r.pending[k] = append(r.pending[k], queued{t.ID, now})
			r.after = t.ID
		}
		r.mu.Unlock()
		for _, t := range ts { // after recording them: a reconcile ending at once finds them
			r.Enqueue(t.Source, queuekey.Key(t.Key))
		}
		if len(ts) < batch {
			return
		}
	}
}

// Reconciled is told that a reconcile of key that began at began succeeded: the triggers of key
// queued before then are done and leave the outbox. A failure to delete is logged; they are queued
// again by the next leader, which costs a reconcile, not correctness.
func (r *Relay) Reconciled(ctx context.Context, key queuekey.Key, began time.Time) {
	r.mu.Lock()
	var done []int64
	keep := r.pending[key][:0]
	for _, q := range r.pending[key] {
		if q.at.Before(began) {
			done = append(done, q.id)
		} else {
			keep = append(keep, q)
		}
	}
	if len(keep) == 0 {
		delete(r.pending, key)
	} else {
		r.pending[key] = keep
	}
	r.mu.Unlock()
	if len(done) == 0 {
		return
	}
	if err := r.Outbox.DeleteTriggers(ctx, done); err != nil {
		r.Log.Warn("could not delete processed triggers", "key", key, "error", err)
	}
}
