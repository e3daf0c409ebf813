package webhook

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// chanQueue hands every enqueued key to a channel, so a test can wait for background runs.
type chanQueue chan queuekey.Key

func (q chanQueue) Enqueue(_ context.Context, keys []queuekey.Key) error {
	for _, k := range keys {
		q <- k
	}
	return nil
}

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

// TestGraphCatchUp: lifecycle events that may mean lost notifications ask for a catch-up (which
// enqueues only the changed groups) after the lifecycle hook acted, instead of reading everything.
func TestGraphCatchUp(t *testing.T) {
	tests := []struct {
		name      string
		event     string
		lifecycle bool
		wantSteps []string
		wantKeys  []queuekey.Key
	}{
		{"missed", LifecycleMissed, true, []string{"lifecycle " + LifecycleMissed, "catch-up"}, nil},
		{"subscription removed: recreated first", LifecycleSubscriptionRemoved, true, []string{"lifecycle " + LifecycleSubscriptionRemoved, "catch-up"}, nil},
		{"reauthorization required: delivery may have paused", LifecycleReauthorizationRequired, true, []string{"lifecycle " + LifecycleReauthorizationRequired, "catch-up"}, nil},
		{"missed without a lifecycle hook", LifecycleMissed, false, []string{"catch-up"}, nil},
		{"unknown event reads everything", "somethingNew", true, []string{"lifecycle somethingNew"}, []queuekey.Key{queuekey.All}},
		{"reauthorization without a hook reads everything", LifecycleReauthorizationRequired, false, nil, []queuekey.Key{queuekey.All}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := make(chanQueue, 10)
			steps := make(chan string, 10)
			o := GraphOptions{ClientStates: []string{graphState1}, Queue: q, CatchUp: func() { steps <- "catch-up" }}
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
			select {
			case k := <-q:
				t.Errorf("the receiver also enqueued %q", k)
			case s := <-steps:
				t.Errorf("unexpected step %q", s)
			default:
			}
		})
	}
}
