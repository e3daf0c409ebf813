package webhook

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// DefaultCatchUpTimeout bounds one catch-up run: a delta round is a few pages unless much changed.
const DefaultCatchUpTimeout = 5 * time.Minute

// GraphCatchUp finds and enqueues the groups that changed while Graph's change notifications may have
// been lost. Graph's lifecycle page asks for a delta query after missed and subscriptionRemoved
// notifications, and after reauthorizationRequired, while delivery may have paused
// (learn.microsoft.com/graph/change-notifications-lifecycle-events); the daemon also triggers it on a
// schedule. Runs happen in the background, one at a time: a trigger during a run makes it run once
// more afterwards, since the run may have read Graph before the change that trigger announces.
type GraphCatchUp struct {
	find    func(ctx context.Context) (groupIDs []string, full bool, err error)
	queue   Enqueuer
	log     *slog.Logger
	timeout time.Duration
	runs    rerun
}

// NewGraphCatchUp returns a catch-up that asks find for the ids of the changed groups (each enqueued
// as queuekey.Group(SourceGraph, id)), or full when it cannot tell (no delta link yet, or it
// expired); full, or an error, enqueues queuekey.All. A run gets timeout (DefaultCatchUpTimeout if zero).
func NewGraphCatchUp(find func(ctx context.Context) (groupIDs []string, full bool, err error), queue Enqueuer, log *slog.Logger, timeout time.Duration) *GraphCatchUp {
	if log == nil {
		log = slog.Default()
	}
	if timeout <= 0 {
		timeout = DefaultCatchUpTimeout
	}
	return &GraphCatchUp{find: find, queue: queue, log: log, timeout: timeout}
}

// Trigger starts a catch-up in the background, or makes the running one run again when it ends.
func (c *GraphCatchUp) Trigger() { c.runs.trigger(c.run) }

func (c *GraphCatchUp) run() {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ids, full, err := c.find(ctx)
	switch {
	case err != nil:
		c.log.Error("catching up on graph group changes failed: reconciling everything", "error", err)
		c.queue.Enqueue(queuekey.All)
	case full:
		c.queue.Enqueue(queuekey.All)
	default:
		var ks keySet
		for _, id := range ids {
			if validID(id) {
				ks.add(queuekey.Group(SourceGraph, id))
			} else {
				ks.add(queuekey.All)
			}
		}
		for _, k := range ks.list() {
			c.queue.Enqueue(k)
		}
	}
}

// rerun runs a function in the background, one run at a time; a trigger during a run makes it run
// once more afterwards rather than concurrently (client-go's workqueue does the same per key, but
// needs a worker that outlives the handler; these runs are rare).
type rerun struct {
	mu             sync.Mutex
	running, again bool
}

// trigger starts fn in the background unless a run is going on, which is then marked to run again.
func (r *rerun) trigger(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		r.again = true
		return
	}
	r.running = true
	go func() {
		for {
			fn()
			r.mu.Lock()
			if !r.again {
				r.running = false
				r.mu.Unlock()
				return
			}
			r.again = false
			r.mu.Unlock()
		}
	}()
}
