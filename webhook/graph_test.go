package webhook

import (
	"encoding/json"
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
