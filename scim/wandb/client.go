package wandb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/internal/transport"
)

// AuthMode selects how the API key is presented to W&B's SCIM API.
type AuthMode string

// The three ways W&B accepts an API key (see docs/wandb.md).
const (
	AuthBearer              AuthMode = "bearer"                // Authorization: Bearer <key>
	AuthBasicUser           AuthMode = "basic-user"            // Authorization: Basic base64(<username>:<key>)
	AuthBasicServiceAccount AuthMode = "basic-service-account" // Authorization: Basic base64(:<key>)
)

// Defaults applied by NewClient to zero Options fields.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 5
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultUserAgent  = "byob-agent"
)

// pageSize is the count asked for per ListGroups page: W&B documents up to 9999 results per request,
// so one request lists the teams of all but the largest organisations.
const pageSize = 9999

// maxResponseBytes bounds how much of a response is read, so a broken server cannot exhaust memory.
const maxResponseBytes = 64 << 20

// Options configures a Client.
type Options struct {
	BaseURL    string // full SCIM base URL, e.g. https://api.wandb.ai/scim/v2; /Groups and /Users are appended
	Auth       AuthMode
	Username   string       // basic-user only
	APIKey     string       // secret: never put into errors
	HTTPClient *http.Client // optional; http.DefaultClient's transport when nil

	Timeout time.Duration // per attempt; default 30s

	// MaxRetries is how many times a failed attempt is repeated: 0 means DefaultMaxRetries, negative means never.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff (full jitter) between attempts.
	// A Retry-After longer than MaxBackoff is not waited for: the call fails with an *APIError
	// carrying RetryAfter, so a caller with a work queue can requeue instead of blocking a worker.
	MinBackoff, MaxBackoff time.Duration
	UserAgent              string

	// Deployment is the W&B deployment: DeploymentMultiTenant, DeploymentDedicated or
	// DeploymentSelfManaged ("" is taken as dedicated or self-managed, which share a wire format).
	// Multi-tenant Cloud creates users with W&B's teams extension schema (see CreateUserInTeams).
	Deployment string
}

// Client talks to W&B's SCIM API. It is safe for concurrent use.
//
// Retries: 429, 5xx, per-attempt timeouts and connection errors are retried with backoff; other
// statuses are not. POST /Groups is retried too although it is not idempotent: if W&B created the team
// but the response was lost, the retry gets 409 (ErrConflict). A 409 is our own team only when an
// earlier attempt of the same request may have been carried out (APIError.EarlierAttemptMayHaveApplied)
// or the caller's own records say an earlier POST may have reached W&B; otherwise the name was taken by
// someone else.
type Client struct {
	base        string
	authHeader  string
	secrets     []string // substrings scrubbed from every error
	hc          *http.Client
	timeout     time.Duration
	policy      retry.Policy
	userAgent   string
	multiTenant bool
	sleep       func(ctx context.Context, d time.Duration) error // replaced in tests

	// etags holds the last ETag W&B showed per team id, for the If-Match of membership PATCHes.
	// An entry with "" means W&B answered for that team without an ETag: PATCHes go unconditional.
	etagMu sync.Mutex
	etags  map[string]string
}

// NewClient checks o and returns a Client.
func NewClient(o Options) (*Client, error) {
	u, err := url.Parse(o.BaseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("scim: parsing base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return nil, fmt.Errorf("scim: base URL %q must be an absolute http or https URL", u.Redacted())
	case u.User != nil:
		// Credentials belong in APIKey, where they are kept out of errors.
		return nil, fmt.Errorf("scim: base URL %q must not contain credentials", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("scim: base URL %q must not have a query or fragment", u.Redacted())
	}
	if o.APIKey == "" {
		return nil, errors.New("scim: API key is empty")
	}
	switch o.Deployment {
	case "", DeploymentMultiTenant, DeploymentDedicated, DeploymentSelfManaged:
	default:
		return nil, fmt.Errorf("scim: unknown deployment %q (want %s, %s or %s)", o.Deployment, DeploymentMultiTenant, DeploymentDedicated, DeploymentSelfManaged)
	}
	var cred string
	switch o.Auth {
	case AuthBearer:
	case AuthBasicUser:
		if o.Username == "" {
			return nil, errors.New("scim: auth mode basic-user needs a username")
		}
		cred = base64.StdEncoding.EncodeToString([]byte(o.Username + ":" + o.APIKey))
	case AuthBasicServiceAccount:
		cred = base64.StdEncoding.EncodeToString([]byte(":" + o.APIKey))
	default:
		return nil, fmt.Errorf("scim: unknown auth mode %q (want %s, %s or %s)", o.Auth, AuthBearer, AuthBasicUser, AuthBasicServiceAccount)
	}
	c := &Client{
		base:        strings.TrimRight(u.String(), "/"),
		secrets:     []string{o.APIKey},
		hc:          o.HTTPClient,
		timeout:     o.Timeout,
		userAgent:   o.UserAgent,
		multiTenant: o.Deployment == DeploymentMultiTenant,
		sleep:       retry.Wait,
		etags:       map[string]string{},
	}
	if cred == "" {
		c.authHeader = "Bearer " + o.APIKey
	} else {
		c.authHeader = "Basic " + cred
		c.secrets = append(c.secrets, cred)
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	retries := o.MaxRetries
	switch {
	case retries == 0:
		retries = DefaultMaxRetries
	case retries < 0:
		retries = 0
	}
	minBackoff, maxBackoff := o.MinBackoff, o.MaxBackoff
	if minBackoff <= 0 {
		minBackoff = DefaultMinBackoff
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	if minBackoff > maxBackoff {
		return nil, fmt.Errorf("scim: min backoff %v is longer than max backoff %v", minBackoff, maxBackoff)
	}
	c.policy = retry.Policy{
		Base: minBackoff, Max: maxBackoff,
		// Full jitter: every worker of the agent may hit the same throttled W&B at once, and full
		// jitter spreads their retries widest while never waiting longer than MaxBackoff.
		Jitter:   retry.Full(),
		Attempts: retries + 1,
		// MaxBackoff is also the longest Retry-After waited for; see Options.
		RetryAfter: retry.RetryAfter{Max: maxBackoff, GiveUp: true},
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	return c, nil
}

// ListGroups returns every team, following startIndex/count paging, or an error: never a partial list.
// W&B documents at most 9999 results per request and does not document startIndex or count on /Groups
// (https://docs.wandb.ai/platform/hosting/iam/scim), so a server may cap pages and ignore startIndex.
// A team missing from the list would be planned as absent, so the list is refused (a *PartialListError)
// when a page repeats a team already listed, or when totalResults says there are more teams than the
// pages held. Without totalResults the list ends at an empty page.
func (c *Client) ListGroups(ctx context.Context) ([]Group, error) {
	var all []Group
	seen := map[string]bool{}
	start := 1
	for {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(pageSize)}}
		_, body, err := c.do(ctx, http.MethodGet, "/Groups", q, nil)
		if err != nil {
			return nil, fmt.Errorf("listing teams: %w", err)
		}
		page, err := decodeGroupList(body)
		if err != nil {
			return nil, fmt.Errorf("listing teams: page at %d: %w", start, err)
		}
		repeated := 0
		for _, g := range page.Resources {
			c.remember(g, false)
			if seen[g.ID] {
				repeated++
				continue
			}
			seen[g.ID] = true
			all = append(all, g)
		}
		switch {
		case repeated > 0:
			return nil, &PartialListError{Listed: len(all), Total: page.TotalResults, StartIndex: start, Repeated: repeated}
		case len(page.Resources) == 0:
			if page.TotalResults > len(all) {
				return nil, &PartialListError{Listed: len(all), Total: page.TotalResults, StartIndex: start}
			}
			return all, nil
		case page.TotalResults > 0 && len(all) >= page.TotalResults:
			return all, nil
		}
		start += len(page.Resources)
	}
}

// PartialListError is a team list that cannot be trusted to be whole.
type PartialListError struct {
	Listed, Total int // teams collected; totalResults (0 when W&B sent none)
	StartIndex    int // of the page that gave it away
	Repeated      int // teams that page repeated
}

func (e *PartialListError) Error() string {
	total := "an unknown number"
	if e.Total > 0 {
		total = strconv.Itoa(e.Total)
	}
	why := fmt.Sprintf("the page at startIndex %d repeated %d team(s) already listed (W&B may not page /Groups)", e.StartIndex, e.Repeated)
	if e.Repeated == 0 {
		why = fmt.Sprintf("the pages ended at startIndex %d", e.StartIndex)
	}
	return fmt.Sprintf("listing teams: W&B's list is partial: %d of %s teams collected, %s; nothing is planned on a partial list, since a team missing from it would look absent. "+
		"If the next run says the same, W&B does not page /Groups for this organisation: report it to W&B support with this message", e.Listed, total, why)
}

// FindGroup returns the team named displayName, or nil if there is none.
func (c *Client) FindGroup(ctx context.Context, displayName string) (*Group, error) {
	q := url.Values{"filter": {"displayName eq " + quoteFilterValue(displayName)}}
	_, body, err := c.do(ctx, http.MethodGet, "/Groups", q, nil)
	if err != nil {
		return nil, fmt.Errorf("looking up team %q: %w", displayName, err)
	}
	page, err := decodeGroupList(body)
	if err != nil {
		return nil, fmt.Errorf("looking up team %q: %w", displayName, err)
	}
	for _, g := range page.Resources {
		c.remember(g, false)
	}
	// Match again locally: a server that ignores the filter must not make another team look like ours.
	for _, g := range page.Resources {
		if g.DisplayName == displayName {
			return &g, nil
		}
	}
	// SCIM treats displayName as case-insensitive; W&B names are lowercase, so this only catches server quirks.
	for _, g := range page.Resources {
		if strings.EqualFold(g.DisplayName, displayName) {
			return &g, nil
		}
	}
	return nil, nil
}

// CreateGroup creates a team. W&B answers 201. See Client for why ErrConflict must lead to a lookup.
func (c *Client) CreateGroup(ctx context.Context, g NewGroup) (Group, error) {
	req := struct {
		Schemas       []string       `json:"schemas"`
		DisplayName   string         `json:"displayName"`
		Members       []Member       `json:"members"`
		StorageBucket *StorageBucket `json:"storageBucket,omitempty"`
	}{[]string{SchemaGroup}, g.DisplayName, g.Members, g.StorageBucket}
	if req.Members == nil {
		req.Members = []Member{} // W&B documents a list, possibly empty
	}
	res, err := c.send(ctx, http.MethodPost, "/Groups", nil, req, nil)
	if err != nil {
		return Group{}, fmt.Errorf("creating team %q: %w", g.DisplayName, err)
	}
	if res.status != http.StatusCreated {
		return Group{}, fmt.Errorf("creating team %q: got HTTP %d, want 201", g.DisplayName, res.status)
	}
	created, err := decodeGroupResponse(res)
	if err != nil {
		return Group{}, fmt.Errorf("creating team %q: %w", g.DisplayName, err)
	}
	c.remember(created, true)
	return created, nil
}

// GetGroup returns the team with the given id, or nil if W&B answers 404.
func (c *Client) GetGroup(ctx context.Context, id string) (*Group, error) {
	g, err := c.readGroup(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// readGroup is GET /Groups/{id}; a 404 is an error matching ErrNotFound.
func (c *Client) readGroup(ctx context.Context, id string) (Group, error) {
	res, err := c.send(ctx, http.MethodGet, "/Groups/"+url.PathEscape(id), nil, nil, nil)
	if errors.Is(err, ErrNotFound) {
		c.forget(id)
	}
	if err != nil {
		return Group{}, fmt.Errorf("reading team %s: %w", id, err)
	}
	g, err := decodeGroupResponse(res)
	if err != nil {
		return Group{}, fmt.Errorf("reading team %s: %w", id, err)
	}
	c.remember(g, true)
	return g, nil
}

// decodeGroupResponse decodes a single-team answer; its ETag header, when present, is the version.
func decodeGroupResponse(res response) (Group, error) {
	g, err := decodeGroup(res.body)
	if err != nil {
		return Group{}, err
	}
	if et := res.header.Get("ETag"); et != "" {
		g.ETag = et
	}
	return g, nil
}

// remember records the ETag W&B showed for g. A single-team answer (whole) without one is recorded as
// "W&B sends none for this team"; a list entry without one leaves what is known alone, since a list
// may leave meta.version out while single answers carry the ETag header.
func (c *Client) remember(g Group, whole bool) {
	if g.ID == "" || (g.ETag == "" && !whole) {
		return
	}
	c.etagMu.Lock()
	defer c.etagMu.Unlock()
	c.etags[g.ID] = g.ETag
}

// forget drops what is known of a team's ETag, so the next membership PATCH reads the team first.
func (c *Client) forget(id string) {
	c.etagMu.Lock()
	defer c.etagMu.Unlock()
	delete(c.etags, id)
}

// knownETag is the team's last ETag; ok is false when no answer about the team was seen yet.
func (c *Client) knownETag(id string) (etag string, ok bool) {
	c.etagMu.Lock()
	defer c.etagMu.Unlock()
	etag, ok = c.etags[id]
	return etag, ok
}

// quoteFilterValue renders s as a SCIM filter string literal, which uses JSON string syntax (RFC 7644 3.4.2.2).
func quoteFilterValue(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	return strings.TrimSuffix(b.String(), "\n")
}

// response is a final answer: its status, body and headers.
type response struct {
	status int
	body   []byte
	header http.Header
}

// do sends one request, retrying as documented on Client. A non-2xx final answer is an *APIError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in any) (int, []byte, error) {
	res, err := c.send(ctx, method, path, query, in, nil)
	return res.status, res.body, err
}

// send is do with extra request headers (such as If-Match), returning the answer's headers too.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any, hdr http.Header) (response, error) {
	var payload []byte
	if in != nil {
		var err error
		if payload, err = json.Marshal(in); err != nil {
			return response{}, fmt.Errorf("encoding request: %w", err)
		}
	}
	target := c.base + path
	if len(query) > 0 {
		// W&B's examples encode a space in a filter as %20; url.Values writes '+', which a server may
		// read literally. A '+' in a value is already %2B, so the replacement is exact.
		target += "?" + strings.ReplaceAll(query.Encode(), "+", "%20")
	}
	mayHaveApplied := false // an earlier attempt got no answer or a 5xx: W&B may have carried it out
	for attempt := 1; ; attempt++ {
		res, retryAfter, err := c.attempt(ctx, method, target, payload, hdr)
		status, body := res.status, res.body
		var apiErr *APIError
		switch {
		case err == nil && status >= 200 && status < 300:
			return res, nil
		case err == nil:
			apiErr = newAPIError(method, path, status, body, c.secrets)
			apiErr.Attempts = attempt
			apiErr.EarlierAttemptMayHaveApplied = mayHaveApplied
			apiErr.RetryAfter = retryAfter
			err = apiErr
		case transport.AsCertError(err) != nil:
			// An untrusted certificate stays untrusted: say so once, without the URL layer around it.
			return response{}, c.scrub(fmt.Errorf("scim: %s %s: %w", method, path, transport.AsCertError(err)))
		default:
			err = c.scrub(fmt.Errorf("scim: %s %s (attempt %d): %w", method, path, attempt, err))
		}
		// A 429 is W&B declining to do anything; no answer, or a 5xx, may come after the work was done.
		mayHaveApplied = mayHaveApplied || status == 0 || status >= 500
		failed := response{status: status, header: res.header}
		if ctx.Err() != nil || !retryable(status) {
			return failed, err
		}
		// Not ok: the retries are spent, or the server wants longer than we block for (the caller requeues).
		wait, ok := c.policy.Delay(attempt, retryAfter, retryAfter > 0)
		if !ok {
			return failed, err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return failed, fmt.Errorf("%w (gave up waiting to retry: %w)", err, serr)
		}
	}
}

// attempt makes one HTTP exchange. status is 0 when no response arrived.
func (c *Client) attempt(ctx context.Context, method, target string, payload []byte, hdr http.Header) (res response, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return response{}, 0, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", c.authHeader)
	req.Header.Set("Content-Type", "application/scim+json")
	req.Header.Set("Accept", "application/scim+json, application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		// A body cut short is a transport failure: retry it like one.
		return response{}, 0, fmt.Errorf("reading response (HTTP %d): %w", resp.StatusCode, err)
	}
	return response{status: resp.StatusCode, body: body, header: resp.Header}, serverWait(resp.Header), nil
}

// retryable reports whether an answer (0: none arrived) may succeed if asked again.
func retryable(status int) bool {
	return status == 0 || status == http.StatusTooManyRequests || status >= 500
}

// serverWait is the wait the server asked for with Retry-After; 0 without one.
func serverWait(h http.Header) time.Duration {
	d, _ := retry.ParseRetryAfter(h.Get("Retry-After"), time.Now())
	return d
}

// scrub makes sure err's message carries no secret, keeping the chain for errors.Is/As.
func (c *Client) scrub(err error) error {
	msg := err.Error()
	clean := redact(msg, c.secrets)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}
