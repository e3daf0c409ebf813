package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHealth sends requests through the transport and reads back what the page would show.
func TestHealth(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	m := New()
	wandb := &http.Client{Transport: m.Transport("wandb", nil)}
	get := func(c *http.Client, url string) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
		}
	}
	for range 3 {
		get(wandb, srv.URL)
	}
	status = http.StatusNotFound // an answer: not a failure
	get(wandb, srv.URL)
	status = http.StatusServiceUnavailable
	get(wandb, srv.URL)
	get(&http.Client{Transport: m.Transport("s3", nil)}, "http://127.0.0.1:1/unreachable")

	got := m.Health()
	if len(got) != 2 || got[0].Target != "s3" || got[1].Target != "wandb" {
		t.Fatalf("targets = %+v", got)
	}
	s3, w := got[0], got[1]
	if s3.Requests != 1 || s3.ErrorRate != 1 || !s3.LastSuccess.IsZero() || s3.LastError.IsZero() {
		t.Errorf("s3 = %+v", s3)
	}
	if w.Requests != 5 || w.Window != 5 || w.ErrorRate != 0.2 || w.LastSuccess.IsZero() || w.LastError.Before(w.LastSuccess) {
		t.Errorf("wandb = %+v", w)
	}
}

// TestHealthWindow takes the error rate over the latest requests only.
func TestHealthWindow(t *testing.T) {
	var h health
	var m Metrics
	for range healthWindow {
		h.observe("kms", true, testTime)
	}
	for range healthWindow / 4 {
		h.observe("kms", false, testTime)
	}
	m.health.targets = h.targets
	got := m.Health()[0]
	if got.Requests != healthWindow+healthWindow/4 || got.Window != healthWindow || got.ErrorRate != 0.75 {
		t.Errorf("kms = %+v", got)
	}
}

var testTime = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
