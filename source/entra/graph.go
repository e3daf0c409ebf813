package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
)

const (
	// maxRetries bounds how often one request is repeated after 429/503 or a transport error before
	// the error is returned.
	maxRetries = 6
	// maxBody bounds one response body; a page of 999 members with two fields is a few hundred KB.
	maxBody = 32 << 20
	// maxPages stops a listing whose next links never end (a server bug must not hang a reconcile).
	maxPages = 100_000
	// maxErrorText bounds the vendor message quoted in an error.
	maxErrorText = 300
)

// ErrAuth is matched (errors.Is) by failures to get a token and by Graph's 401 and 403 answers: wrong
// tenant, client id or secret, or an app registration without the needed application permissions.
var ErrAuth = errors.New("entra: authentication or authorization failed")

// apiError is an error answer of the token endpoint or of Graph. Its text is the vendor's code and
// message, redacted of the client secret and the access token.
type apiError struct {
	status    int
	code      string
	message   string
	requestID string
	auth      bool
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.status)
	if e.code != "" {
		b.WriteString(" " + e.code)
	}
	if e.message != "" {
		b.WriteString(": " + e.message)
	}
	if e.status == http.StatusForbidden {
		b.WriteString(" (the app registration needs the admin-consented application permissions GroupMember.Read.All and User.Read.All, and Group.Read.All for subscriptions)")
	}
	if e.requestID != "" {
		b.WriteString(" (request-id " + e.requestID + ")")
	}
	return b.String()
}

func (e *apiError) Is(target error) bool { return target == ErrAuth && e.auth }

func statusIs(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == status
}

// lock is a mutex whose waiters give up when their context ends.
type lock chan struct{}

func (l lock) acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l lock) release() { <-l }

// tokenResponse is the token endpoint's answer; expires_in is a number in v2.0 but a string in v1.0.
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
}

type tokenErrorResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

type graphErrorResponse struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// decodeToken reads a successful token response into the token and its lifetime.
func decodeToken(r io.Reader) (string, time.Duration, error) {
	var t tokenResponse
	if err := json.NewDecoder(io.LimitReader(r, maxBody)).Decode(&t); err != nil {
		return "", 0, fmt.Errorf("decoding the token response: %w", err)
	}
	if t.AccessToken == "" || !strings.EqualFold(t.TokenType, "Bearer") {
		return "", 0, errors.New("the token response has no bearer access_token")
	}
	secs, err := strconv.ParseInt(strings.Trim(string(t.ExpiresIn), `"`), 10, 64)
	if err != nil || secs <= 0 || secs > 24*3600 {
		return "", 0, fmt.Errorf("the token response has an invalid expires_in %.20q", t.ExpiresIn)
	}
	return t.AccessToken, time.Duration(secs) * time.Second, nil
}

// refreshMargin is how long before expiry a cached token is replaced: 5 minutes, less for short tokens.
func refreshMargin(life time.Duration) time.Duration {
	return min(5*time.Minute, life/4)
}

// accessToken returns a cached token, fetching a new one shortly before the old one expires.
func (s *Source) accessToken(ctx context.Context) (string, error) {
	return s.tokens.Token(ctx, func(ctx context.Context) (string, time.Duration, error) {
		value, life, err := s.fetchToken(ctx)
		if err != nil {
			return "", 0, fmt.Errorf("getting a token for client %s in tenant %s: %w", s.clientID, s.tenant, err)
		}
		return value, life, nil
	})
}

// dropToken forgets a token Graph refused, unless another caller already replaced it.
func (s *Source) dropToken(ctx context.Context, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.tokens.Forget(value)
	return nil
}

func (s *Source) fetchToken(ctx context.Context) (string, time.Duration, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {s.clientID},
		"client_secret": {s.secret},
		"scope":         {s.graphURL + "/.default"},
	}.Encode()
	resp, err := s.send(ctx, true, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
		}
		return req, err
	})
	if err != nil {
		return "", 0, err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", 0, s.tokenError(resp)
	}
	return decodeToken(resp.Body)
}

// tokenError turns an error answer of the token endpoint into an apiError. Entra's description starts
// with the AADSTS code and message and continues with trace ids on further lines: keep the first line.
func (s *Source) tokenError(resp *http.Response) error {
	var t tokenErrorResponse
	_ = json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&t)
	desc, _, _ := strings.Cut(t.Description, "\n")
	return &apiError{
		status:  resp.StatusCode,
		code:    clip(s.redact(t.Error)),
		message: clip(s.redact(strings.TrimSpace(desc))),
		auth:    resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests,
	}
}

// send does one request, repeating it while the server answers 429 or 503 (after its Retry-After,
// else after the policy's backoff) and, when the request is repeatable, after a transport error.
// Graph's backoff used to leave transport errors to the next reconcile; they are retried now, as every
// other client does. A POST that creates something is not repeatable: it may have been done before
// the connection broke, and a second subscription would double every notification.
func (s *Source) send(ctx context.Context, repeatable bool, build func() (*http.Request, error)) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		req, err := build()
		if err != nil {
			return nil, err
		}
		resp, err := s.http.Do(req)
		var ask time.Duration
		var asked bool
		switch {
		case err != nil:
			if ctx.Err() != nil || !repeatable {
				return nil, err
			}
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			ask, asked = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
		default:
			return resp, nil
		}
		wait, ok := s.policy.Delay(attempt, ask, asked)
		if !ok {
			return resp, err // the last answer, or the last transport error
		}
		if resp != nil {
			drainClose(resp.Body)
		}
		if err := s.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// Extra request headers of call.
var (
	// advancedQuery is what Graph's advanced queries require besides $count=true.
	advancedQuery = http.Header{"Consistencylevel": {"eventual"}}
	// minimalReturn asks a delta query for the changed properties only (learn.microsoft.com/graph/api/group-delta#request-headers).
	minimalReturn = http.Header{"Prefer": {"return=minimal"}}
)

// call sends one Graph request with a bearer token and the extra headers hdr (nil for none), and
// decodes a 2xx answer into out (when not nil). A 401 is retried once with a fresh token, in case
// the cached one was revoked before its expiry.
func (s *Source) call(ctx context.Context, method, u string, in, out any, hdr http.Header) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for refreshed := false; ; refreshed = true {
		tok, err := s.accessToken(ctx)
		if err != nil {
			return err
		}
		resp, err := s.send(ctx, method != http.MethodPost, func() (*http.Request, error) {
			var rd io.Reader
			if body != nil {
				rd = bytes.NewReader(body)
			}
			req, err := http.NewRequestWithContext(ctx, method, u, rd)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/json")
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range hdr {
				req.Header[k] = v
			}
			return req, nil
		})
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized && !refreshed {
			drainClose(resp.Body)
			if err := s.dropToken(ctx, tok); err != nil {
				return err
			}
			continue
		}
		return s.finish(resp, out, tok)
	}
}

func (s *Source) finish(resp *http.Response, out any, tok string) error {
	defer drainClose(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var g graphErrorResponse
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&g)
		return &apiError{
			status:    resp.StatusCode,
			code:      clip(s.redact(g.Error.Code, tok)),
			message:   clip(s.redact(g.Error.Message, tok)),
			requestID: clip(resp.Header.Get("request-id")),
			auth:      resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden,
		}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return fmt.Errorf("decoding the response: %w", err)
	}
	return nil
}

// page is one page of a Graph collection.
type page[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// listAll reads every page of a Graph collection, following @odata.nextLink; hdr are extra request
// headers.
func listAll[T any](ctx context.Context, s *Source, u string, hdr http.Header, each func(T) error) error {
	for n := 0; ; n++ {
		if n == maxPages {
			return fmt.Errorf("more than %d pages", maxPages)
		}
		var p page[T]
		if err := s.call(ctx, http.MethodGet, u, nil, &p, hdr); err != nil {
			return err
		}
		for _, v := range p.Value {
			if err := each(v); err != nil {
				return err
			}
		}
		if p.NextLink == "" {
			return nil
		}
		if p.NextLink == u {
			return errors.New("the @odata.nextLink repeats the page it is on")
		}
		if err := s.checkLink("@odata.nextLink", p.NextLink); err != nil {
			return err
		}
		u = p.NextLink
	}
}

// checkLink accepts a link Graph gave (what: @odata.nextLink, @odata.deltaLink) only under the Graph
// base URL: the bearer token goes with it.
func (s *Source) checkLink(what, link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("the %s is not a URL", what)
	}
	if !strings.EqualFold(u.Scheme, s.graph.Scheme) || !strings.EqualFold(u.Host, s.graph.Host) || u.User != nil ||
		!strings.HasPrefix(u.Path, s.graph.Path+"/") || path.Clean(u.Path) != u.Path {
		return fmt.Errorf("refusing an %s to %s://%s%s, which is not under the Graph URL %s", what, u.Scheme, u.Host, clip(u.Path), s.graphURL)
	}
	return nil
}

// endpoint is the Graph URL of path (which starts with /v1.0/) with the query q. Spaces are encoded
// as %20: OData reads a '+' in $filter literally in some places.
func (s *Source) endpoint(path string, q url.Values) string {
	u := s.graphURL + path
	if len(q) > 0 {
		u += "?" + strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	return u
}

// redact removes the client secret and the given token from vendor text quoted in an error.
func (s *Source) redact(text string, tokens ...string) string {
	for _, secret := range append([]string{s.secret}, tokens...) {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "[redacted]")
		}
	}
	return text
}

func clip(s string) string {
	if len(s) > maxErrorText {
		return strings.ToValidUTF8(s[:maxErrorText], "") + "..."
	}
	return s
}

// drainClose reads a little of an unread body so the connection can be reused, then closes it.
func drainClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	_ = rc.Close()
}
