package wandb

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinels matched by errors.Is against an *APIError, by HTTP status class.
var (
	ErrBadRequest   = errors.New("scim: bad request")  // 400
	ErrUnauthorized = errors.New("scim: unauthorized") // 401
	ErrForbidden    = errors.New("scim: forbidden")    // 403
	ErrNotFound     = errors.New("scim: not found")    // 404
	ErrConflict     = errors.New("scim: conflict")     // 409: the name is taken, possibly by our own lost POST
	// ErrPreconditionFailed is 412: an If-Match did not match, the resource changed since it was read.
	ErrPreconditionFailed = errors.New("scim: precondition failed")
	ErrRateLimited        = errors.New("scim: rate limited") // 429
	ErrServer             = errors.New("scim: server error") // 5xx
)

// APIError is a non-2xx answer from the SCIM API.
type APIError struct {
	Method, Path string // Path is relative to the base URL, without query
	StatusCode   int
	SCIMType     string // RFC 7644 scimType, when the server sent one
	Detail       string // the server's detail, with any secret removed
	// Attempts is how many requests were made.
	Attempts int
	// EarlierAttemptMayHaveApplied is set when an earlier attempt of this request got no answer (a
	// timeout, a dropped connection) or a 5xx: W&B may have carried it out, so a 409 to a create may
	// be our own earlier POST. Attempts refused with 429 did nothing.
	EarlierAttemptMayHaveApplied bool
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scim: %s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	if e.SCIMType != "" {
		fmt.Fprintf(&b, " (%s)", e.SCIMType)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	} else if t := http.StatusText(e.StatusCode); t != "" {
		fmt.Fprintf(&b, ": %s", t)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	return b.String()
}

// Is lets errors.Is(err, ErrConflict) and friends work on the status code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrPreconditionFailed:
		return e.StatusCode == http.StatusPreconditionFailed
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500 && e.StatusCode < 600
	}
	return false
}

// maxDetail bounds how much of a non-SCIM error body ends up in an error message.
const maxDetail = 512

func newAPIError(method, path string, status int, body []byte, secrets []string) *APIError {
	e := &APIError{Method: method, Path: path, StatusCode: status}
	if eb, err := decodeErrorBody(body); err == nil {
		e.SCIMType, e.Detail = redact(eb.SCIMType, secrets), redact(eb.Detail, secrets)
	} else {
		// Not a SCIM error body (a proxy's HTML page, say): keep the start of it for the operator.
		// Redact before cutting, so a cut cannot leave half a secret behind.
		e.Detail = truncate(strings.TrimSpace(redact(string(body), secrets)), maxDetail)
	}
	return e
}

// truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
