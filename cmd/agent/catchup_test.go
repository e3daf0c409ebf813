package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/sync/workqueue"
)

// TestCatchUpTriggers: a triggered catch-up runs once per trigger that arrives while it is idle,
// triggers during a run coalesce into one more run (never two at once), a failure is kept for
// readiness until a run succeeds, and the keys it finds reach the queue.
func TestCatchUpTriggers(t *testing.T) {
	d := &daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: metrics.New(),
		queue: workqueue.NewQueue(workqueue.QueueOptions{}), enqueued: map[queuekey.Key]enqueue{}, catchUpErrs: map[string]string{}}
	started, release := make(chan int), make(chan error)
	runs, running := 0, false
	c := catchUp{source: "entra", now: make(chan struct{}, 1), poll: func(ctx context.Context, enqueue func(queuekey.Key)) (int, error) {
		if running {
			t.Error("two runs at once")
		}
		running = true
		runs++
		enqueue(queuekey.Group("graph", "g1"))
		started <- runs
		err := <-release
		running = false
		return 1, err
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.startCatchUps(ctx, []catchUp{c})

	c.trigger() // no interval: nothing runs until triggered
	if n := <-started; n != 1 {
		t.Fatalf("run %d, want 1", n)
	}
	c.trigger()
	c.trigger()
	c.trigger()
	release <- errors.New("graph down")
	if n := <-started; n != 2 { // the three triggers during run 1 made one more run
		t.Fatalf("run %d, want 2", n)
	}
	d.mu.Lock()
	got := d.catchUpErrs["entra"]
	d.mu.Unlock()
	if got != "graph down" {
		t.Errorf("readiness error %q after a failed run, want it kept", got)
	}
	release <- nil
	c.trigger()
	if n := <-started; n != 3 {
		t.Fatalf("run %d, want 3", n)
	}
	d.mu.Lock()
	got = d.catchUpErrs["entra"]
	d.mu.Unlock()
	if got != "" {
		t.Errorf("readiness error %q after a good run, want none", got)
	}
	if d.queue.Len() != 1 {
		t.Errorf("queue holds %d keys, want the one group", d.queue.Len())
	}
	release <- nil
}
