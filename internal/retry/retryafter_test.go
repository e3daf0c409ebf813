package retry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"0", 0, true},
		{"-3", 0, true},
		{"99999999999", 24 * time.Hour, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), 24 * time.Hour, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		if got, ok := ParseRetryAfter(tt.in, now); got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestTransportWaits: a throttled answer comes back only after the Retry-After it carries; answers
// that ask for no wait, or for more than Max, come back at once.
func TestTransportWaits(t *testing.T) {
	var header atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", header.Load().(string))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	c := &http.Client{Transport: &Transport{Max: 30 * time.Second}}
	for _, tt := range []struct {
		header   string
		min, max time.Duration
	}{
		{"1", time.Second, 10 * time.Second},
		{"0", 0, 10 * time.Second},
		{"45", 0, 10 * time.Second}, // over Max: not waited at all
		{"soon", 0, 10 * time.Second},
	} {
		header.Store(tt.header)
		start := time.Now()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); took < tt.min || took > tt.max || resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("Retry-After %q: answer %d after %v, want within [%v, %v]", tt.header, resp.StatusCode, took, tt.min, tt.max)
		}
	}
}

func TestWait(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if err := Wait(ctx, time.Hour); err != context.Canceled {
		t.Errorf("Wait on a canceled context = %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Second {
		t.Error("Wait did not return at once")
	}
	if err := Wait(t.Context(), time.Millisecond); err != nil {
		t.Errorf("Wait = %v", err)
	}
}
