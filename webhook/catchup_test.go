package webhook

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// chanQueue hands every enqueued key to a channel, so a test can wait for background runs.
type chanQueue chan queuekey.Key

func (q chanQueue) Enqueue(k queuekey.Key) { q <- k }

// take waits for n keys; the timeout only turns a hang into a failure.
func (q chanQueue) take(t *testing.T, n int) []queuekey.Key {
	t.Helper()
	var keys []queuekey.Key
	for range n {
		select {
		case k := <-q:
			keys = append(keys, k)
		case <-time.After(10 * time.Second):
			t.Fatalf("got keys %q, waited for %d", keys, n)
		}
	}
	return keys
}

// TestGraphCatchUp: lifecycle events that may mean lost notifications catch up with the delta query
// after the lifecycle hook acted, and enqueue only the changed groups; everything when the catch-up
// cannot tell or fails.
func TestGraphCatchUp(t *testing.T) {
	g1, g2 := queuekey.Group(SourceGraph, "g1"), queuekey.Group(SourceGraph, "g2")
	tests := []struct {
		name      string
		event     string
		lifecycle bool
		ids       []string
		full      bool
		err       error
		wantSteps []string
		wantKeys  []queuekey.Key
	}{
		{"missed", LifecycleMissed, true, []string{"g1", "g2"}, false, nil, []string{"lifecycle " + LifecycleMissed, "find"}, []queuekey.Key{g1, g2}},
		{"subscription removed: recreated first", LifecycleSubscriptionRemoved, true, []string{"g2"}, false, nil, []string{"lifecycle " + LifecycleSubscriptionRemoved, "find"}, []queuekey.Key{g2}},
		{"reauthorization required: delivery may have paused", LifecycleReauthorizationRequired, true, nil, false, nil, []string{"lifecycle " + LifecycleReauthorizationRequired, "find"}, nil},
		{"missed without a lifecycle hook", LifecycleMissed, false, []string{"g1"}, false, nil, []string{"find"}, []queuekey.Key{g1}},
		{"no delta link yet", LifecycleMissed, true, nil, true, nil, []string{"lifecycle " + LifecycleMissed, "find"}, []queuekey.Key{queuekey.All}},
		{"catch-up fails", LifecycleMissed, true, []string{"g1"}, false, errors.New("graph down"), []string{"lifecycle " + LifecycleMissed, "find"}, []queuekey.Key{queuekey.All}},
		{"an id no key can hold", LifecycleMissed, true, []string{"g1", "a/b"}, false, nil, []string{"lifecycle " + LifecycleMissed, "find"}, []queuekey.Key{queuekey.All}},
		{"unknown event reads everything", "somethingNew", true, nil, false, nil, []string{"lifecycle somethingNew"}, []queuekey.Key{queuekey.All}},
		{"reauthorization without a hook reads everything", LifecycleReauthorizationRequired, false, nil, false, nil, nil, []queuekey.Key{queuekey.All}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := make(chanQueue, 10)
			steps := make(chan string, 10)
			cu := NewGraphCatchUp(func(ctx context.Context) ([]string, bool, error) {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("the catch-up runs without a deadline")
				}
				steps <- "find"
				return tt.ids, tt.full, tt.err
			}, q, nil, 0)
			o := GraphOptions{ClientStates: []string{graphState1}, Queue: q, CatchUp: cu}
			if tt.lifecycle {
				o.Lifecycle = func(_ context.Context, event, _ string) error {
					steps <- "lifecycle " + event
					return nil
				}
			}
			body := graphBody(t, graphItem{ClientState: graphState1, LifecycleEvent: tt.event, SubscriptionID: "s1"})
			if w := (call{contentType: "application/json", body: body}).do(NewGraph(o)); w.Code != 202 {
				t.Fatalf("status %d", w.Code)
			}
			var got []string
			for range tt.wantSteps {
				got = append(got, <-steps)
			}
			if !slices.Equal(got, tt.wantSteps) {
				t.Errorf("steps %q, want %q", got, tt.wantSteps)
			}
			if keys := q.take(t, len(tt.wantKeys)); !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("keys %q, want %q", keys, tt.wantKeys)
			}
		})
	}
}

// TestGraphCatchUpCoalesced: triggers during a run make it run once more, not concurrently.
func TestGraphCatchUpCoalesced(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	runs := 0
	cu := NewGraphCatchUp(func(context.Context) ([]string, bool, error) {
		runs++ // never concurrent, which -race checks
		started <- struct{}{}
		<-release
		return []string{"g1"}, false, nil
	}, make(chanQueue, 10), nil, time.Minute)
	cu.Trigger()
	<-started
	cu.Trigger()
	cu.Trigger()
	release <- struct{}{}
	<-started // the one run more
	release <- struct{}{}
	cu.Trigger() // after both ended (or marks the second to run again): either way one more run
	<-started
	release <- struct{}{}
	if runs != 3 {
		t.Errorf("%d runs, want 3", runs)
	}
}
