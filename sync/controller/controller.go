// Package controller provides the daemon's Controller: workers take keys from the work queue and
// reconcile the teams each key names, one worker per team at a time, requeueing failures with backoff.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/sync/internal/keylock"
	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/sync/workqueue"
	"github.com/byob-agent/byob-agent/team"
)

// Controller runs the daemon's reconciles: workers take keys from the queue, one worker per key at a
// time, and a failed key comes back with backoff.
type Controller struct {
	Queue *workqueue.Queue
	// Reconciler returns the reconciler to use now (it changes when the configuration is reloaded).
	Reconciler func() *apply.Reconciler
	// Desired returns every desired team now (configuration, pushed and read sources). key is the key
	// being reconciled: a source may re-read everything for queuekey.All and only one group for a group key.
	Desired func(ctx context.Context, key queuekey.Key) ([]team.Team, error)
	// Resolve maps any other key (e.g. "group:scim:<id>") to the teams it concerns; ok=false
	// reconciles everything.
	Resolve func(ctx context.Context, key queuekey.Key) (teams []string, ok bool)
	Workers int
	Logger  *slog.Logger
	// OnReconcile, if set, is told the end of every reconcile (metrics, readiness).
	OnReconcile func(key queuekey.Key, results []apply.Result, err error, took time.Duration)

	// A full reconcile excludes every other; reconciles of named teams share the way but lock their
	// teams, so no team is ever planned or applied by two workers at once and no plan goes stale.
	all   sync.RWMutex
	teams keylock.Map
}

// Run starts the workers and returns when ctx is done (no new key is taken) and every reconcile in
// flight has ended. Reconciles run with work, which the caller cancels only when in-flight work must
// be cut short; every step is checkpointed in the state, so a cut reconcile resumes where it stopped.
func (c *Controller) Run(ctx, work context.Context) {
	done := make(chan struct{})
	for range max(c.Workers, 1) {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				key, ok := c.Queue.Get(ctx)
				if !ok {
					return
				}
				c.process(work, key)
			}
		}()
	}
	for range max(c.Workers, 1) {
		<-done
	}
}

func (c *Controller) process(ctx context.Context, key queuekey.Key) {
	defer c.Queue.Done(key)
	start := time.Now()
	results, err := c.Reconcile(ctx, key)
	if c.OnReconcile != nil {
		c.OnReconcile(key, results, err, time.Since(start))
	}
	if err != nil {
		c.logger().Error("reconcile failed; will retry", "key", key, "attempt", c.Queue.Failures(key)+1, "error", err)
		c.Queue.AddRateLimited(key)
		return
	}
	c.Queue.Forget(key)
	for _, r := range results {
		if (r.Outcome == apply.OutcomeFailed || r.Outcome == apply.OutcomeWaiting) && !r.RetryAt.IsZero() {
			c.Queue.AddAfter(queuekey.Team(r.Team), time.Until(r.RetryAt))
		}
	}
}

// Reconcile syncs the teams a key names. An error means the reconcile could not run (state or W&B
// unreachable); a team that failed is in the results and in the state, not an error.
func (c *Controller) Reconcile(ctx context.Context, key queuekey.Key) ([]apply.Result, error) {
	desired, err := c.Desired(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read desired teams: %w", err)
	}
	o := apply.PlanOptions{RespectBackoff: true}
	name, isTeam := key.Team()
	switch {
	case key == queuekey.All:
	case isTeam:
		o.Only = map[string]bool{name: true}
	case c.Resolve != nil:
		if names, ok := c.Resolve(ctx, key); ok {
			o.Only = make(map[string]bool, len(names))
			for _, n := range names {
				o.Only[n] = true
			}
		}
	}
	if o.Only == nil {
		c.all.Lock()
		defer c.all.Unlock()
	} else {
		c.all.RLock()
		defer c.all.RUnlock()
		names := slices.Sorted(maps.Keys(o.Only)) // one order, so two keys never wait on each other
		for _, n := range names {
			defer c.teams.Lock(n)()
		}
	}
	return c.Reconciler().Sync(ctx, desired, o)
}

func (c *Controller) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}
