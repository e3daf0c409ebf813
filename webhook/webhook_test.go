package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// recorder is a fake, non-blocking queue and observer.
type recorder struct {
	mu       sync.Mutex
	keys     []queuekey.Key
	outcomes []string
	fail     error // Enqueue's answer while set
}

func (r *recorder) Enqueue(_ context.Context, keys []queuekey.Key) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.keys = append(r.keys, keys...)
	return nil
}

func (r *recorder) observer(source string) Observer {
	return func(s, outcome string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if s != source {
			outcome = "wrong source " + s
		}
		r.outcomes = append(r.outcomes, outcome)
	}
}

// call is one request to a handler under test.
type call struct {
	method      string
	target      string
	contentType string
	header      map[string]string
	body        string
	chunked     bool // send no Content-Length, so the size cap must act while reading
}

func (c call) do(h http.Handler) *httptest.ResponseRecorder {
	method, target := c.method, c.target
	if method == "" {
		method = http.MethodPost
	}
	if target == "" {
		target = "/hook"
	}
	var body io.Reader = strings.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(body) // hides the length from NewRequest
	}
	req := httptest.NewRequest(method, target, body)
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// want is what a call must produce.
type want struct {
	status   int
	keys     []queuekey.Key
	outcomes []string
	body     string // expected body, if not empty
}

func (wt want) check(t *testing.T, w *httptest.ResponseRecorder, rec *recorder, secrets ...string) {
	t.Helper()
	if w.Code != wt.status {
		t.Errorf("status = %d, want %d (body %q)", w.Code, wt.status, w.Body.String())
	}
	if !slices.Equal(rec.keys, wt.keys) {
		t.Errorf("keys = %q, want %q", rec.keys, wt.keys)
	}
	if !slices.Equal(rec.outcomes, wt.outcomes) {
		t.Errorf("outcomes = %q, want %q", rec.outcomes, wt.outcomes)
	}
	if wt.body != "" && w.Body.String() != wt.body {
		t.Errorf("body = %q, want %q", w.Body.String(), wt.body)
	}
	for _, s := range secrets {
		if strings.Contains(w.Body.String(), s) {
			t.Errorf("response body reveals a secret: %q", w.Body.String())
		}
	}
}

func TestSecretSet(t *testing.T) {
	s := newSecretSet([]string{"", "one", "two"})
	for v, want := range map[string]bool{"one": true, "two": true, "": false, "on": false, "one ": false, "three": false} {
		if got := s.match(v); got != want {
			t.Errorf("match(%q) = %v, want %v", v, got, want)
		}
	}
	if newSecretSet([]string{""}).match("") {
		t.Error("an empty secret matched a missing header")
	}
}

func TestReplayCache(t *testing.T) {
	c := newReplayCache(2)
	steps := []struct {
		id           string
		expires, now int64
		want         bool
	}{
		{"a", 100, 0, true},
		{"a", 100, 50, false},
		{"b", 200, 50, true},
		{"c", 300, 60, true},   // full: "a", expiring first, is forgotten
		{"b", 200, 60, false},  // still remembered
		{"a", 100, 60, true},   // forgotten early: accepted again (costs one extra reconcile)
		{"c", 400, 301, true},  // expired, and sent again later
		{"c", 400, 301, false}, // and remembered again
	}
	for i, s := range steps {
		if got := c.add(s.id, s.expires, s.now); got != s.want {
			t.Errorf("step %d: add(%q) = %v, want %v", i, s.id, got, s.want)
		}
		if len(c.ids) > 2 || len(c.ids) != len(c.byTime) {
			t.Fatalf("step %d: %d ids, %d heap entries; cap 2", i, len(c.ids), len(c.byTime))
		}
	}
}

func TestNewPanicsWithoutQueue(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewOkta without a queue did not panic")
		}
	}()
	NewOkta(OktaOptions{Secrets: []string{"x"}})
}

// fuzzCall sends one fuzzed request and checks what every receiver promises whatever the input: no
// panic, a status among allowed, and nothing enqueued unless the request was authenticated.
func fuzzCall(t *testing.T, h http.Handler, method, target string, header map[string]string, body []byte, allowed []int, rec *recorder, authenticated bool) {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return // not a request a server could receive
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if !slices.Contains(allowed, w.Code) {
		t.Errorf("status %d not in %v", w.Code, allowed)
	}
	if len(rec.keys) > 0 && !authenticated {
		t.Errorf("unauthenticated request enqueued %q", rec.keys)
	}
	if len(rec.keys) > DefaultMaxKeys {
		t.Errorf("one delivery enqueued %d keys, more than %d", len(rec.keys), DefaultMaxKeys)
	}
}

// One authenticated delivery enqueues at most MaxKeys keys (more become one full reconcile), and group
// keys of sources the agent does not read are dropped instead of becoming full reconciles; either is
// counted and logged once, with a count and a short sample.
func TestDeliveryKeysBounded(t *testing.T) {
	const maxKeys = 4
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("g%03d", i)
		}
		return out
	}
	groupKeys := func(source string, ids []string) []queuekey.Key {
		out := make([]queuekey.Key, len(ids))
		for i, id := range ids {
			out[i] = queuekey.Group(source, id)
		}
		return out
	}
	known := func(source string) bool { return source != "nowhere" }
	type receiver struct {
		source string
		build  func(rec *recorder, log *slog.Logger) http.Handler
		call   func(t *testing.T, ids []string) call
	}
	receivers := []receiver{
		{SourceOkta, func(rec *recorder, log *slog.Logger) http.Handler {
			return NewOkta(OktaOptions{Secrets: []string{oktaSecret1}, Queue: rec, Observe: rec.observer(SourceOkta), MaxKeys: maxKeys, Known: known, Logger: log})
		}, func(t *testing.T, ids []string) call {
			var events []string
			for _, id := range ids {
				events = append(events, oktaEvent("group.user_membership.add", oktaTarget("UserGroup", id)))
			}
			return call{contentType: "application/json", header: map[string]string{"Authorization": oktaSecret1}, body: oktaEvents(events...)}
		}},
		{SourceGraph, func(rec *recorder, log *slog.Logger) http.Handler {
			return NewGraph(GraphOptions{ClientStates: []string{graphState1}, Queue: rec, Observe: rec.observer(SourceGraph), MaxKeys: maxKeys, Known: known, Logger: log})
		}, func(t *testing.T, ids []string) call {
			var items []graphItem
			for _, id := range ids {
				items = append(items, graphGroup(graphState1, id))
			}
			return call{contentType: "application/json", body: graphBody(t, items...)}
		}},
		{SourceGeneric, func(rec *recorder, log *slog.Logger) http.Handler {
			return NewGeneric(GenericOptions{Secrets: [][]byte{genericSecret}, Now: func() time.Time { return genericNow }, Queue: rec,
				Observe: rec.observer(SourceGeneric), MaxKeys: maxKeys, Known: known, Logger: log})
		}, func(t *testing.T, ids []string) call {
			b, _ := json.Marshal(map[string][]string{"groups": ids})
			return signedCall(genericKey1, "msg_1", 0, string(b))
		}},
	}
	for _, r := range receivers {
		status := http.StatusNoContent
		if r.source == SourceGraph {
			status = http.StatusAccepted
		}
		type keysCase struct {
			name     string
			ids      []string
			keys     []queuekey.Key
			outcomes []string
			log      string
		}
		tests := []keysCase{
			{"at the cap", ids(maxKeys), groupKeys(r.source, ids(maxKeys)), []string{OutcomeAccepted}, ""},
			{"duplicates count once", append(ids(maxKeys), ids(maxKeys)...), groupKeys(r.source, ids(maxKeys)), []string{OutcomeAccepted}, ""},
			{"over the cap", ids(2000), []queuekey.Key{queuekey.All}, []string{OutcomeTooManyKeys, OutcomeAccepted}, "count=2000 max=4"},
		}
		if r.source == SourceGeneric { // only a generic delivery names other sources' groups
			tests = append(tests, keysCase{"unknown source", []string{"nowhere:g1", "okta:g2", "nowhere:g3"}, []queuekey.Key{"group:okta:g2"}, []string{OutcomeUnknownSource, OutcomeAccepted}, "count=2"})
		}
		for _, tt := range tests {
			t.Run(r.source+" "+tt.name, func(t *testing.T) {
				rec, logs := &recorder{}, &bytes.Buffer{}
				h := r.build(rec, slog.New(slog.NewTextHandler(logs, nil)))
				ids := tt.ids
				if r.source == SourceGeneric && !strings.Contains(ids[0], ":") {
					ids = slices.Clone(ids)
					for i := range ids {
						ids[i] = r.source + ":" + ids[i]
					}
				}
				want{status: status, keys: tt.keys, outcomes: tt.outcomes}.check(t, r.call(t, ids).do(h), rec)
				if tt.log == "" {
					return
				}
				if !strings.Contains(logs.String(), tt.log) {
					t.Errorf("log lacks %q:\n%s", tt.log, logs.String())
				}
				if lines := strings.Count(logs.String(), "level=WARN"); lines != 1 || logs.Len() > 1000 {
					t.Errorf("%d warnings, %d bytes of log, want one short line:\n%s", lines, logs.Len(), logs.String())
				}
			})
		}
	}
}
