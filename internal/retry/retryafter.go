package retry

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transport waits, after a 429 or 503 carrying Retry-After, for the time the header gives (seconds or an
// HTTP date), at most Max, or until the request's context ends; then it returns the answer as it came.
// The AWS and Google SDKs retry 429 and 503 with their own backoff and ignore the header; with this
// transport below them, their next attempt comes no sooner than the server asked. A wait longer than
// Max is not waited at all: the caller's own retries and backoff decide.
type Transport struct {
	Base http.RoundTripper // http.DefaultTransport if nil
	Max  time.Duration     // longest wait honoured; 0 means 30 s
	now  func() time.Time
}

func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	wait, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now())
	limit := t.Max
	if limit == 0 {
		limit = 30 * time.Second
	}
	if !ok || wait <= 0 || wait > limit {
		return resp, nil
	}
	_ = Wait(r.Context(), wait) // a cancelled request gets the answer now; its caller sees the context
	return resp, nil
}

// Wait waits d, or less if ctx ends first, and then returns ctx's error (nil when d passed).
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ParseRetryAfter reads a Retry-After value: delay-seconds, or an HTTP date (relative to now). ok is
// false when the value is absent or unreadable; a date in the past is 0, and anything over a day is a
// day (far longer than any caller waits).
func ParseRetryAfter(v string, now time.Time) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(max(0, min(s, int64(maxRetryAfter/time.Second)))) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(0, at.Sub(now)), maxRetryAfter), true
	}
	return 0, false
}

const maxRetryAfter = 24 * time.Hour
