package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

const (
	graphState1 = "graph-client-state-one"
	graphState2 = "graph-client-state-two"
)

// graphItem is one notification; fields left empty are omitted.
type graphItem struct {
	ClientState    string            `json:"clientState,omitempty"`
	ChangeType     string            `json:"changeType,omitempty"`
	Resource       string            `json:"resource,omitempty"`
	ResourceData   map[string]string `json:"resourceData,omitempty"`
	LifecycleEvent string            `json:"lifecycleEvent,omitempty"`
	SubscriptionID string            `json:"subscriptionId,omitempty"`
}

func graphBody(t testing.TB, items ...graphItem) string {
	b, err := json.Marshal(map[string]any{"value": items})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func graphGroup(state, id string) graphItem {
	return graphItem{ClientState: state, ChangeType: "updated", Resource: "Groups/" + id,
		ResourceData: map[string]string{"@odata.type": "#Microsoft.Graph.Group", "id": id}}
}

func TestGraph(t *testing.T) {
	post := func(body string) call { return call{contentType: "application/json; charset=utf-8", body: body} }
	validate := func(token string) call {
		return call{target: "/hook?validationToken=" + url.QueryEscape(token), contentType: "text/plain"}
	}
	accepted := []string{OutcomeAccepted}
	byResourceOnly := graphItem{ClientState: graphState1, ChangeType: "deleted", Resource: "/groups/g3"}
	tests := []struct {
		name string
		call call
		want want
	}{
		{"validation", validate("Validation: Testing client application reachability"),
			want{status: 200, outcomes: []string{OutcomeVerified}, body: "Validation: Testing client application reachability"}},
		{"validation echo is plain text", validate("<script>x</script>"),
			want{status: 200, outcomes: []string{OutcomeVerified}, body: "<script>x</script>"}},
		{"empty validation token", validate(""), want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"oversized validation token", validate(strings.Repeat("t", maxValidationTokenLength+1)), want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"batch", post(graphBody(t, graphGroup(graphState1, "g1"), graphGroup(graphState1, "g2"), graphGroup(graphState1, "g1"), byResourceOnly)),
			want{status: 202, keys: []queuekey.Key{"group:graph:g1", "group:graph:g2", "group:graph:g3"}, outcomes: accepted}},
		{"rotated client state", post(graphBody(t, graphGroup(graphState2, "g1"))),
			want{status: 202, keys: []queuekey.Key{"group:graph:g1"}, outcomes: accepted}},
		{"forged items are dropped", post(graphBody(t, graphGroup("forged", "g1"), graphGroup(graphState1, "g2"), graphGroup("", "g3"))),
			want{status: 202, keys: []queuekey.Key{"group:graph:g2"}, outcomes: []string{OutcomeUnauthorized, OutcomeAccepted}}},
		{"all forged", post(graphBody(t, graphGroup("forged", "g1"), graphGroup("", "g2"))),
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"lifecycle notification", post(graphBody(t, graphGroup(graphState1, "g1"),
			graphItem{ClientState: graphState1, LifecycleEvent: "reauthorizationRequired", Resource: "groups"})),
			want{status: 202, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"forged lifecycle notification", post(graphBody(t, graphItem{ClientState: "forged", LifecycleEvent: "reauthorizationRequired"})),
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"group cannot be told", post(graphBody(t, graphItem{ClientState: graphState1, ChangeType: "updated", Resource: "Groups"})),
			want{status: 202, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"empty batch", post(`{"value":[]}`), want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"invalid JSON", post(`{"value":[{]}`), want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"wrong method", call{method: "GET", target: "/hook?validationToken=x"}, want{status: 405, outcomes: []string{OutcomeBadRequest}}},
		{"wrong content type", call{contentType: "text/plain", body: graphBody(t, graphGroup(graphState1, "g1"))},
			want{status: 415, outcomes: []string{OutcomeBadRequest}}},
		{"oversized body", post(graphBody(t, slices.Repeat([]graphItem{graphGroup(graphState1, "g1")}, 60)...)),
			want{status: 413, outcomes: []string{OutcomeTooLarge}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h := NewGraph(GraphOptions{ClientStates: []string{graphState1, "", graphState2}, Queue: rec, Observe: rec.observer(SourceGraph), MaxBody: 4096})
			tt.want.check(t, tt.call.do(h), rec, graphState1, graphState2)
		})
	}
}

// lifecycleCall is one run of the lifecycle hook.
type lifecycleCall struct{ event, sub string }

func TestGraphLifecycle(t *testing.T) {
	post := func(items ...graphItem) call {
		return call{contentType: "application/json", body: graphBody(t, items...)}
	}
	life := func(event, sub string) graphItem {
		return graphItem{ClientState: graphState1, LifecycleEvent: event, Resource: "groups", SubscriptionID: sub}
	}
	tests := []struct {
		name      string
		call      call
		wantKeys  []queuekey.Key
		wantCalls []lifecycleCall
	}{
		{"reauthorizationRequired reauthorizes, nothing was missed", post(life(LifecycleReauthorizationRequired, "s1")),
			nil, []lifecycleCall{{LifecycleReauthorizationRequired, "s1"}}},
		{"subscriptionRemoved recreates and catches up", post(life(LifecycleSubscriptionRemoved, "s1")),
			[]queuekey.Key{queuekey.All}, []lifecycleCall{{LifecycleSubscriptionRemoved, "s1"}}},
		{"missed catches up", post(life(LifecycleMissed, "s1")),
			[]queuekey.Key{queuekey.All}, []lifecycleCall{{LifecycleMissed, "s1"}}},
		{"with a group change", post(graphGroup(graphState1, "g1"), life(LifecycleReauthorizationRequired, "s2")),
			[]queuekey.Key{"group:graph:g1"}, []lifecycleCall{{LifecycleReauthorizationRequired, "s2"}}},
		{"forged lifecycle events are not acted on", post(graphItem{ClientState: "forged", LifecycleEvent: LifecycleSubscriptionRemoved}, graphGroup(graphState1, "g1")),
			[]queuekey.Key{"group:graph:g1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			calls := make(chan lifecycleCall, 10)
			h := NewGraph(GraphOptions{ClientStates: []string{graphState1}, Queue: rec, Lifecycle: func(ctx context.Context, event, sub string) error {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("the lifecycle hook runs without a deadline")
				}
				calls <- lifecycleCall{event, sub}
				return errors.New("logged, not answered")
			}})
			if w := tt.call.do(h); w.Code != 202 {
				t.Fatalf("status %d, want 202", w.Code)
			}
			for _, want := range tt.wantCalls {
				if got := <-calls; got != want {
					t.Errorf("lifecycle hook called with %+v, want %+v", got, want)
				}
			}
			if !slices.Equal(rec.keys, tt.wantKeys) {
				t.Errorf("keys = %q, want %q", rec.keys, tt.wantKeys)
			}
			// Runs start (or are marked to run again) before the answer: their number is known now.
			g := h.(*graph)
			g.mu.Lock()
			if len(g.runs) != len(tt.wantCalls) {
				t.Errorf("%d lifecycle runs started, want %d", len(g.runs), len(tt.wantCalls))
			}
			g.mu.Unlock()
		})
	}
}

// TestGraphLifecycleCoalesced: an event of the kind being acted on makes the hook run once more
// afterwards, with the latest subscription id, instead of running concurrently.
func TestGraphLifecycleCoalesced(t *testing.T) {
	started := make(chan string)
	release := make(chan struct{})
	var running, overlaps int
	h := NewGraph(GraphOptions{ClientStates: []string{graphState1}, Queue: &recorder{}, Lifecycle: func(_ context.Context, _, sub string) error {
		running++ // guarded by the hook never running concurrently, which -race checks
		if running > 1 {
			overlaps++
		}
		started <- sub
		<-release
		running--
		return nil
	}})
	send := func(sub string) {
		body := graphBody(t, graphItem{ClientState: graphState1, LifecycleEvent: LifecycleReauthorizationRequired, SubscriptionID: sub})
		if w := (call{contentType: "application/json", body: body}).do(h); w.Code != 202 {
			t.Fatalf("status %d", w.Code)
		}
	}
	send("s1")
	if sub := <-started; sub != "s1" {
		t.Fatalf("first run for %q", sub)
	}
	send("s2") // while s1 runs
	send("s3")
	release <- struct{}{}
	if sub := <-started; sub != "s3" {
		t.Errorf("second run for %q, want the latest, s3", sub)
	}
	release <- struct{}{}
	if overlaps != 0 {
		t.Errorf("the hook ran concurrently %d times", overlaps)
	}
}

func TestGraphValidationHeaders(t *testing.T) {
	rec := &recorder{}
	w := call{target: "/hook?validationToken=%3Cb%3E"}.do(NewGraph(GraphOptions{Queue: rec}))
	if got := w.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
}

func FuzzGraph(f *testing.F) {
	f.Add("POST", "/hook", "application/json", []byte(graphBody(f, graphGroup(graphState1, "g1"), graphGroup("x", "g2"))))
	f.Add("POST", "/hook", "application/json", []byte(graphBody(f, graphItem{ClientState: graphState1, LifecycleEvent: "missed"})))
	f.Add("POST", "/hook?validationToken=abc%20def", "text/plain", []byte(nil))
	f.Add("POST", "/hook", "application/json", []byte(`{"value":[{"clientState":null,"resourceData":"x"}]}`))
	f.Fuzz(func(t *testing.T, method, target, contentType string, body []byte) {
		rec := &recorder{}
		h := NewGraph(GraphOptions{ClientStates: []string{graphState1}, Queue: rec, MaxBody: 4096})
		// A notification is authentic only if an item carries the client state.
		var n struct {
			Value []struct{ ClientState string }
		}
		authenticated := json.Unmarshal(body, &n) == nil && slices.ContainsFunc(n.Value, func(i struct{ ClientState string }) bool {
			return i.ClientState == graphState1
		})
		fuzzCall(t, h, method, target, map[string]string{"Content-Type": contentType}, body, []int{200, 202, 400, 401, 405, 413, 415}, rec, authenticated)
	})
}
