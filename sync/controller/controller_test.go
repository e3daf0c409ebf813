package controller

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/applytest"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/sync/workqueue"
	"github.com/byob-agent/byob-agent/team"
)

func TestControllerReconcilesKeys(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Rec.Now = time.Now
	e.Rec.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	e.Factory.FailOn["ensure:b"] = errors.New("flaky")
	q := workqueue.NewQueue(workqueue.QueueOptions{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	var mu sync.Mutex
	var keys []queuekey.Key
	var desiredErr error
	done := make(chan queuekey.Key, 100)
	c := &Controller{
		Queue:      q,
		Reconciler: func() *apply.Reconciler { return e.Rec },
		Desired: func(context.Context, queuekey.Key) ([]team.Team, error) {
			mu.Lock()
			defer mu.Unlock()
			return applytest.Teams("a", "b"), desiredErr
		},
		Resolve: func(_ context.Context, key queuekey.Key) ([]string, bool) { return []string{"a"}, key == "group:x:1" },
		Workers: 2,
		OnReconcile: func(key queuekey.Key, _ []apply.Result, _ error, _ time.Duration) {
			mu.Lock()
			keys = append(keys, key)
			if key == queuekey.All {
				delete(e.Factory.FailOn, "ensure:b") // the retry succeeds
			}
			mu.Unlock()
			done <- key
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { c.Run(ctx, t.Context()); close(stopped) }()

	q.Add(queuekey.All)
	if k := <-done; k != queuekey.All {
		t.Fatalf("first key %q", k)
	}
	// b failed: it comes back as its own key after its retry time, and then succeeds.
	if k := <-done; k != queuekey.Team("b") {
		t.Fatalf("second key %q, want team:b", k)
	}
	if r := e.Record(t, "b"); r.LastError != "" || r.GroupID == "" {
		t.Fatalf("team b after its retry: %+v", r)
	}
	// A resolved group key reconciles only its team; an unresolved one reconciles all.
	q.Add("group:x:1")
	<-done
	// A reconcile that cannot run is retried with backoff.
	mu.Lock()
	desiredErr = errors.New("state unreadable")
	mu.Unlock()
	q.Add(queuekey.All)
	<-done
	mu.Lock()
	desiredErr = nil
	mu.Unlock()
	if k := <-done; k != queuekey.All {
		t.Fatalf("retried key %q", k)
	}
	cancel()
	<-stopped
	if q.Failures(queuekey.All) != 0 {
		t.Errorf("a successful retry must reset the key's failures")
	}
}

// TestControllerNeverWorksOnATeamTwice runs a full reconcile and a team key at once: the team key
// waits, so the team is planned and applied by one reconcile at a time.
func TestControllerNeverWorksOnATeamTwice(t *testing.T) {
	e := applytest.NewEnv(t)
	f := &applytest.OverlapFactory{FakeFactory: applytest.FakeFactory{FailOn: map[string]error{}}}
	e.Rec.Profiles["main"] = apply.Profile{Factory: f}
	q := workqueue.NewQueue(workqueue.QueueOptions{})
	done := make(chan queuekey.Key, 10)
	c := &Controller{
		Queue:       q,
		Reconciler:  func() *apply.Reconciler { return e.Rec },
		Desired:     func(context.Context, queuekey.Key) ([]team.Team, error) { return applytest.Teams("a"), nil },
		Workers:     2,
		OnReconcile: func(key queuekey.Key, _ []apply.Result, _ error, _ time.Duration) { done <- key },
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.Run(ctx, t.Context())
	q.Add(queuekey.All)
	q.Add(queuekey.Team("a"))
	<-done
	<-done
	if f.Overlap.Load() {
		t.Error("two reconciles worked on team a at once")
	}
	if n := len(e.Emu.Groups()); n != 1 {
		t.Errorf("W&B has %d teams, want 1", n)
	}
	if got := e.Emu.Counts()["POST /scim/Groups"]; got != 1 {
		t.Errorf("%d team creations sent, want 1 (the second reconcile must see the first one's result)", got)
	}
}
