package okta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

const (
	maxAttempts  = 5
	firstBackoff = 500 * time.Millisecond
	maxBody      = 32 << 20
	userAgent    = "byob-agent"
)

// APIError is an error answer from Okta: the API's error object, or the token endpoint's OAuth error.
type APIError struct {
	Status  int       // HTTP status
	Code    string    // errorCode (E0000011) or OAuth error (invalid_client)
	Summary string    // errorSummary or error_description
	ErrorID string    // errorId, for Okta support
	Reset   time.Time // on 429: when Okta's rate-limit window resets

	hint      string // what to change, when the request's context tells better than the status
	dpopNonce string // the DPoP-Nonce header of a use_dpop_nonce answer
}

// dpopFix is what to do when Okta refuses the agent's DPoP proofs, which it sends once Okta asks for
// them (dpop.go): turn the requirement off. The checkbox is under the General tab's General Settings,
// "Proof of possession", as Okta's own service-app setup steps ("In General Settings, click Edit. Disable
// Require Demonstrating Proof of Possession (DPoP) header in token requests", developer.okta.com's MCP
// server guide) and https://devforum.okta.com/t/client-credentials-oauth-for-okta-with-dpop-enabled/30239 show.
const dpopFix = `Okta refused the agent's DPoP proof (it sends RS256 proofs once Okta asks for them); to run without DPoP, ` +
	`in the Okta Admin Console open the service app, General tab, General Settings, Edit, and under Proof of possession ` +
	`clear "Require Demonstrating Proof of Possession (DPoP) header in token requests", then Save ` +
	`(API: settings.oauthClient.dpop_bound_access_tokens false)`

// roleFix is what a service app needs besides the scope: Okta assigns no admin role to a service app
// (https://developer.okta.com/docs/reference/api/roles), and without one every management call is refused.
const roleFix = `the service app needs the okta.groups.read scope granted (Okta API Scopes tab) and an admin role ` +
	`assigned (Admin roles tab, Edit assignments: Read-Only Administrator, or a custom role that can view groups and their members)`

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "okta answered HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Summary != "" {
		b.WriteString(": " + e.Summary)
	}
	if e.ErrorID != "" {
		b.WriteString(" (errorId " + e.ErrorID + ")")
	}
	switch {
	case e.hint != "":
		b.WriteString("; " + e.hint)
	case e.Code == "invalid_dpop_proof" || e.Code == "use_dpop_nonce":
		b.WriteString("; " + dpopFix)
	case e.Status == http.StatusUnauthorized:
		b.WriteString("; check the API token, or the client id and its registered public key")
	case e.Status == http.StatusForbidden:
		b.WriteString("; the API token's admin needs read access to groups and their members (e.g. Read-Only Administrator)")
	case e.Status == http.StatusTooManyRequests && !e.Reset.IsZero():
		b.WriteString("; rate limit resets at " + e.Reset.UTC().Format(time.RFC3339))
	}
	return b.String()
}

func newAPIError(status int, h http.Header, body []byte) *APIError {
	var b struct {
		ErrorCode        string `json:"errorCode"`
		ErrorSummary     string `json:"errorSummary"`
		ErrorID          string `json:"errorId"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &b) // a proxy's HTML error page still gets its status reported
	e := &APIError{Status: status, Code: clean(b.ErrorCode + b.Error), Summary: clean(b.ErrorSummary + b.ErrorDescription), ErrorID: clean(b.ErrorID),
		dpopNonce: h.Get("DPoP-Nonce")}
	if e.Code == "" && e.Summary == "" {
		e.Summary = http.StatusText(status)
	}
	if reset, err := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64); err == nil && reset > 0 {
		e.Reset = time.Unix(reset, 0)
	}
	return e
}

// clean keeps Okta's text printable and short, so it cannot forge log lines.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

type response struct {
	header http.Header
	body   []byte
}

// send performs one logical request; build makes a fresh request for each attempt. A 429 waits for
// Okta's reset, 5xx answers and transport errors back off exponentially, other answers are final.
func (s *Source) send(ctx context.Context, build func() (*http.Request, error)) (*response, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		req, err := build()
		if err != nil {
			return nil, err
		}
		var reset time.Duration // until Okta's rate limit resets, when it said
		var hasReset bool
		resp, err := s.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
		} else {
			body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
			resp.Body.Close()
			switch {
			case readErr != nil:
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				lastErr = fmt.Errorf("reading response: %w", readErr)
			case len(body) > maxBody:
				return nil, fmt.Errorf("response larger than %d bytes", maxBody)
			case resp.StatusCode >= 200 && resp.StatusCode < 300:
				return &response{header: resp.Header, body: body}, nil
			case resp.StatusCode == http.StatusTooManyRequests:
				lastErr = newAPIError(resp.StatusCode, resp.Header, body)
				reset, hasReset = s.untilReset(resp.Header)
			case resp.StatusCode >= 500:
				lastErr = newAPIError(resp.StatusCode, resp.Header, body)
			default:
				return nil, newAPIError(resp.StatusCode, resp.Header, body)
			}
		}
		wait, ok := s.policy.Delay(attempt, reset, hasReset)
		if !ok {
			return nil, fmt.Errorf("giving up after %d attempts: %w", attempt, lastErr)
		}
		if err := s.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("waiting to retry after %v: %w", lastErr, err)
		}
	}
}

// untilReset is the time until X-Rate-Limit-Reset, measured from the response's Date header as Okta
// advises (the local clock may be off), at least a second; ok is false without the header.
func (s *Source) untilReset(h http.Header) (d time.Duration, ok bool) {
	reset, err := strconv.ParseInt(h.Get("X-Rate-Limit-Reset"), 10, 64)
	if err != nil || reset <= 0 {
		return 0, false
	}
	now := s.now()
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return max(time.Unix(reset, 0).Sub(now), time.Second), true
}

// get GETs a Groups API URL with the source's credentials.
func (s *Source) get(ctx context.Context, u *url.URL) (*response, error) {
	resp, err := s.getWith(ctx, u, s.oauth)
	var ae *APIError
	if s.oauth != nil && errors.As(err, &ae) && ae.Status == http.StatusForbidden && ae.hint == "" {
		ae.hint = roleFix
	}
	return resp, err
}

// getWith GETs an API URL with the API token, or with an access token from oauth (nil with an API
// token). With OAuth, a 401 from the API gets one retry with a fresh access token, in case the cached
// one was revoked.
func (s *Source) getWith(ctx context.Context, u *url.URL, oauth *tokenSource) (*response, error) {
	raw := u.String()
	for retried := false; ; retried = true {
		var bearer string
		var tokenErr error
		resp, err := s.send(ctx, func() (*http.Request, error) {
			auth, proof := "SSWS "+s.apiToken, ""
			if oauth != nil {
				bearer, tokenErr = oauth.token(ctx, s)
				if tokenErr != nil {
					return nil, tokenErr
				}
				auth = "Bearer " + bearer
				if s.dpop.enabled() {
					if proof, _, tokenErr = s.dpop.proof(http.MethodGet, raw, s.now(), bearer, false); tokenErr != nil {
						return nil, tokenErr
					}
					auth = "DPoP " + bearer
				}
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
			if err != nil {
				return nil, fmt.Errorf("building request: %w", err)
			}
			req.Header.Set("Authorization", auth)
			if proof != "" {
				req.Header.Set("DPoP", proof)
			}
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", userAgent)
			return req, nil
		})
		var ae *APIError
		if !retried && oauth != nil && tokenErr == nil && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			oauth.forget(bearer)
			continue
		}
		return resp, err
	}
}

// pages GETs u and every page after it, handing each page's body to page.
func (s *Source) pages(ctx context.Context, u *url.URL, page func(body []byte) error) error {
	seen := map[string]bool{}
	for {
		if seen[u.String()] {
			return errors.New("okta's next links loop")
		}
		seen[u.String()] = true
		resp, err := s.get(ctx, u)
		if err != nil {
			return err
		}
		if err := page(resp.body); err != nil {
			return err
		}
		next, ok := nextLink(resp.header.Values("Link"))
		if !ok {
			return nil
		}
		if u, err = s.follow(u, next); err != nil {
			return err
		}
	}
}

// follow resolves a next link, refusing one that leaves the org: the credentials go wherever it points.
func (s *Source) follow(cur *url.URL, next string) (*url.URL, error) {
	u, err := cur.Parse(next)
	if err != nil {
		return nil, errors.New("okta's next link is not a URL")
	}
	if u.Scheme != s.base.Scheme || !strings.EqualFold(u.Host, s.base.Host) || u.User != nil {
		return nil, fmt.Errorf("refusing okta's next link to %q: not the org %s", u.Scheme+"://"+u.Host, s.base.Host)
	}
	return u, nil
}

// nextLink finds the rel="next" target among Link header values (RFC 8288). Okta sends one link per
// header, but several comma-separated links in one value are valid too.
func nextLink(values []string) (string, bool) {
	for _, v := range values {
		for {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				break
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			target := v[1:end]
			params, rest, _ := cutUnquoted(v[end+1:], ',')
			if relNext(params) {
				return target, true
			}
			v = rest
		}
	}
	return "", false
}

func relNext(params string) bool {
	for params != "" {
		var p string
		p, params, _ = cutUnquoted(params, ';')
		name, value, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
			continue
		}
		for rel := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(value), `"`)) {
			if strings.EqualFold(rel, "next") {
				return true
			}
		}
	}
	return false
}

// cutUnquoted splits s at the first sep outside a quoted string.
func cutUnquoted(s string, sep byte) (before, after string, found bool) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
