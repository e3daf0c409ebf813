package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// /readyz, unauthenticated, gives a generic reason; the details (URLs, internals of the error) are
// only in status(), which /admin/status serves behind the admin token.
func TestReadyzIsGeneric(t *testing.T) {
	const detail = `reconcile: list W&B teams: Get "https://acme.wandb.io/scim/Groups?count=100": 401 Unauthorized`
	tests := []struct {
		name     string
		ok       bool   // a reconcile reached W&B
		err      string // the last reconcile's error
		code     int
		body     string
		ready    bool
		errField string
		follower bool // replicas share the state and another one leads
		noState  bool // the shared state does not answer
	}{
		{"starting", false, "", 503, reasonStarting, false, "", false, false},
		{"failing", true, detail, 503, reasonFailing, false, detail, false, false},
		{"failing from the start", false, detail, 503, reasonFailing, false, detail, false, false},
		{"ready", true, "", 200, reasonReady, true, "", false, false},
		// A follower serves SCIM and webhooks, whatever its own last term's reconciles did.
		{"follower", false, "", 200, reasonReady, true, "", true, false},
		{"follower that failed while leading", true, detail, 200, reasonReady, true, detail, true, false},
		// Cut off from the shared state, a replica can record no SCIM write or webhook: not ready.
		{"follower without the state database", true, "", 503, reasonNoState, false, "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &daemon{}
			if tt.follower {
				d.repl = &replication{ping: func(context.Context) error { return nil }}
				if tt.noState {
					d.repl.ping = func(context.Context) error { return errors.New("dial tcp 127.0.0.1:5432: connection refused") }
				}
			}
			if tt.ok {
				d.lastOK.Store(time.Now().UnixNano())
			}
			if tt.err != "" {
				msg := tt.err
				d.lastErr.Store(&msg)
			}
			w := httptest.NewRecorder()
			d.readyz(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if w.Code != tt.code || strings.TrimSpace(w.Body.String()) != tt.body {
				t.Errorf("readyz: %d %q, want %d %q", w.Code, w.Body.String(), tt.code, tt.body)
			}
			for _, leak := range []string{"https://", "401", "list W&B", "5432"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Errorf("readyz shows %q: %s", leak, w.Body.String())
				}
			}
			if s := d.status(); s.Ready != tt.ready || s.Reason != tt.body || s.LastReconcileError != tt.errField {
				t.Errorf("status %+v", s)
			}
		})
	}
}
