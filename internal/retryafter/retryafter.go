// Package retryafter provides an http.RoundTripper that waits out a server's Retry-After before handing
// a throttled answer back. The AWS and Google SDKs retry 429 and 503 with their own backoff and ignore the
// header; with this transport below them, their next attempt comes no sooner than the server asked.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transport waits, after a 429 or 503 carrying Retry-After, for the time the header gives (seconds or an
// HTTP date), at most Max, or until the request's context ends; then it returns the answer as it came.
// A wait longer than Max is not waited at all: the caller's own retries and backoff decide.
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
	wait, ok := Parse(resp.Header.Get("Retry-After"), now())
	limit := t.Max
	if limit == 0 {
		limit = 30 * time.Second
	}
	if !ok || wait <= 0 || wait > limit {
		return resp, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.Context().Done():
	}
	return resp, nil
}

// Parse reads a Retry-After value: delay-seconds, or an HTTP date (relative to now). ok is false when
// the value is absent or unreadable; a date in the past is 0, and anything over a day is a day (far
// longer than any caller waits).
func Parse(v string, now time.Time) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(max(0, min(s, int64(maxWait/time.Second)))) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(0, at.Sub(now)), maxWait), true
	}
	return 0, false
}

const maxWait = 24 * time.Hour
