package sync

import (
	"context"
	"errors"
	gosync "sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/team"
)

func TestControllerReconcilesKeys(t *testing.T) {
	e := newEnv(t)
	e.rec.Now = time.Now
	e.rec.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	e.factory.failOn["ensure:b"] = errors.New("flaky")
	q := NewQueue(QueueOptions{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	var mu gosync.Mutex
	var keys []string
	var desiredErr error
	done := make(chan string, 100)
	c := &Controller{
		Queue:      q,
		Reconciler: func() *Reconciler { return e.rec },
		Desired: func(context.Context, string) ([]team.Team, error) {
			mu.Lock()
			defer mu.Unlock()
			return teams("a", "b"), desiredErr
		},
		Resolve: func(_ context.Context, key string) ([]string, bool) { return []string{"a"}, key == "group:x:1" },
		Workers: 2,
		OnReconcile: func(key string, _ []Result, _ error, _ time.Duration) {
			mu.Lock()
			keys = append(keys, key)
			if key == KeyAll {
				delete(e.factory.failOn, "ensure:b") // the retry succeeds
			}
			mu.Unlock()
			done <- key
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { c.Run(ctx, t.Context()); close(stopped) }()

	q.Add(KeyAll)
	if k := <-done; k != KeyAll {
		t.Fatalf("first key %q", k)
	}
	// b failed: it comes back as its own key after its retry time, and then succeeds.
	if k := <-done; k != TeamKey("b") {
		t.Fatalf("second key %q, want team:b", k)
	}
	if r := e.record(t, "b"); r.LastError != "" || r.GroupID == "" {
		t.Fatalf("team b after its retry: %+v", r)
	}
	// A resolved group key reconciles only its team; an unresolved one reconciles all.
	q.Add("group:x:1")
	<-done
	// A reconcile that cannot run is retried with backoff.
	mu.Lock()
	desiredErr = errors.New("state unreadable")
	mu.Unlock()
	q.Add(KeyAll)
	<-done
	mu.Lock()
	desiredErr = nil
	mu.Unlock()
	if k := <-done; k != KeyAll {
		t.Fatalf("retried key %q", k)
	}
	cancel()
	<-stopped
	if q.Failures(KeyAll) != 0 {
		t.Errorf("a successful retry must reset the key's failures")
	}
}

// TestControllerNeverWorksOnATeamTwice runs a full reconcile and a team key at once: the team key
// waits, so the team is planned and applied by one reconcile at a time.
func TestControllerNeverWorksOnATeamTwice(t *testing.T) {
	e := newEnv(t)
	f := &overlapFactory{fakeFactory: fakeFactory{failOn: map[string]error{}}}
	e.rec.Profiles["main"] = Profile{Factory: f}
	q := NewQueue(QueueOptions{})
	done := make(chan string, 10)
	c := &Controller{
		Queue:       q,
		Reconciler:  func() *Reconciler { return e.rec },
		Desired:     func(context.Context, string) ([]team.Team, error) { return teams("a"), nil },
		Workers:     2,
		OnReconcile: func(key string, _ []Result, _ error, _ time.Duration) { done <- key },
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go c.Run(ctx, t.Context())
	q.Add(KeyAll)
	q.Add(TeamKey("a"))
	<-done
	<-done
	if f.overlap.Load() {
		t.Error("two reconciles worked on team a at once")
	}
	if n := len(e.emu.Groups()); n != 1 {
		t.Errorf("W&B has %d teams, want 1", n)
	}
	if got := e.emu.Counts()["POST /scim/Groups"]; got != 1 {
		t.Errorf("%d team creations sent, want 1 (the second reconcile must see the first one's result)", got)
	}
}
