package google

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
)

// The parts of the Directory API's answers the agent reads.
type (
	apiGroup struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	groupsPage struct {
		Groups        []apiGroup `json:"groups"`
		NextPageToken string     `json:"nextPageToken"`
	}
	apiMember struct {
		Email  string `json:"email"`
		Type   string `json:"type"`   // USER, GROUP, CUSTOMER
		Status string `json:"status"` // ACTIVE, SUSPENDED, ...
	}
	membersPage struct {
		Members       []apiMember `json:"members"`
		NextPageToken string      `json:"nextPageToken"`
	}
)

// memberEmails keeps the users that can sign in: lowercased, sorted, unique (see the package comment).
func memberEmails(ms []apiMember) []string {
	set := map[string]struct{}{}
	for _, m := range ms {
		email := strings.ToLower(strings.TrimSpace(m.Email))
		if m.Type != "USER" || m.Status == "SUSPENDED" || email == "" {
			continue
		}
		set[email] = struct{}{}
	}
	return append([]string{}, slices.Sorted(maps.Keys(set))...)
}

// maxBody bounds what is read of one answer; a page of 200 members is a few tens of KiB.
const maxBody = 8 << 20

// policy is Google's advice for the Directory API (developers.google.com/workspace/admin/directory/v1/limits#backoff):
// double the wait from a second, add up to a second of jitter, stop growing at 32 s or 64 s.
var policy = retry.Policy{
	Base: time.Second, Max: 32 * time.Second, Jitter: retry.UpTo(time.Second),
	Attempts: 6,
	// Google does not promise a Retry-After; one that comes only lengthens the backoff, and one beyond
	// 2 minutes is cut to it (the next full reconcile comes sooner anyway).
	RetryAfter: retry.RetryAfter{Max: 2 * time.Minute, AtLeastBackoff: true},
}

// apiError is a Directory API error answer: {"error":{"code","message","errors":[{"reason"}],"status"}}.
type apiError struct {
	Status  int
	Reason  string // errors[0].reason, e.g. notFound, quotaExceeded, userRateLimitExceeded, forbidden
	Message string
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("Directory API answered HTTP %d", e.Status)
	if e.Reason != "" {
		msg += " " + e.Reason
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		msg += " (the access token was refused twice)"
	case isQuota(e.Reason):
		msg += " (a Directory API quota, not a permission problem)"
	case e.Reason == "dailyLimitExceeded":
		msg += " (the Cloud project's daily Admin SDK quota is spent, not a permission problem)"
	case e.Status == http.StatusForbidden:
		msg += " (is the impersonated Subject an admin allowed to read groups?)"
	}
	return msg
}

func decodeAPIError(status int, body []byte) *apiError {
	var b struct {
		Error struct {
			Message string `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	e := &apiError{Status: status}
	if json.Unmarshal(body, &b) == nil {
		e.Message = clip(b.Error.Message)
		if len(b.Error.Errors) > 0 {
			e.Reason = clip(b.Error.Errors[0].Reason)
		}
	}
	return e
}

// isQuota reports whether reason is one of the quota answers that the Directory API's limits page
// (developers.google.com/workspace/admin/directory/v1/limits) says to retry with exponential backoff:
// 403 quotaExceeded, 403 userRateLimitExceeded and 429 rateLimitExceeded. rateLimitExceeded is retried
// with 403 too (older Google APIs send it so; inferred, not on that page). dailyLimitExceeded is not
// among them: earlier versions of the page said not to retry it.
func isQuota(reason string) bool {
	switch reason {
	case "quotaExceeded", "userRateLimitExceeded", "rateLimitExceeded":
		return true
	}
	return false
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// retryableError marks a failure worth another attempt: throttling, a server error, a dropped connection.
type retryableError struct {
	err  error
	wait time.Duration // the server's Retry-After, if any
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// retry runs op until it succeeds, fails for good, or the policy's attempts are spent, sleeping with
// exponential backoff between attempts. The error it returns is never retryable, so retries do not nest.
func (s *Source) retry(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		var re *retryableError
		if !errors.As(err, &re) {
			return err
		}
		wait, ok := policy.Delay(attempt, re.wait, re.wait > 0)
		if !ok {
			return fmt.Errorf("giving up after %d attempts: %w", attempt, re.err)
		}
		if err := s.sleep(ctx, wait); err != nil {
			return fmt.Errorf("waiting to retry after %v: %w", re.err, err)
		}
	}
}

// get calls the Directory API and decodes a 200 answer into out. A 401 drops the cached token and tries
// once more with a new one; throttling and server errors are retried.
func (s *Source) get(ctx context.Context, path string, q url.Values, out any) error {
	u := s.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	refreshed := false
	return s.retry(ctx, func() error {
		for {
			tok, err := s.tokens.get(ctx)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return fmt.Errorf("build request: %w", err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/json")
			status, header, body, err := send(ctx, s.client, req)
			if err != nil {
				return err
			}
			if status == http.StatusOK {
				if err := json.Unmarshal(body, out); err != nil {
					return fmt.Errorf("decode answer: %w", err)
				}
				return nil
			}
			ae := decodeAPIError(status, body)
			switch {
			case status == http.StatusUnauthorized && !refreshed:
				s.tokens.invalidate(tok)
				refreshed = true
				continue
			case status == http.StatusTooManyRequests || status >= 500 ||
				(status == http.StatusForbidden && isQuota(ae.Reason)):
				return &retryableError{err: ae, wait: retryAfter(header, s.now())}
			}
			return ae
		}
	})
}

// send does one request and reads the answer. Transport failures are retryable unless ctx ended.
func send(ctx context.Context, c *http.Client, req *http.Request) (int, http.Header, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, nil, ctx.Err()
		}
		return 0, nil, nil, &retryableError{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, nil, ctx.Err()
		}
		return 0, nil, nil, &retryableError{err: fmt.Errorf("read answer: %w", err)}
	}
	if len(body) > maxBody {
		return 0, nil, nil, fmt.Errorf("answer of %s is larger than %d bytes", req.URL.Path, maxBody)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// retryAfter reads a Retry-After header in either of its forms; zero when absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	d, _ := retry.ParseRetryAfter(h.Get("Retry-After"), now)
	return d
}

// clip shortens a server-supplied string so an odd answer cannot flood an error or a log line.
func clip(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}
