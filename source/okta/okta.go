package okta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/source"
)

const (
	// pageLimit is the page size for both listings: Okta "strongly encourages" at most 200 groups a page
	// (larger pages hurt performance and accuracy) though it serves more
	// (https://developer.okta.com/docs/api/resources/groups).
	pageLimit      = 200
	defaultMaxWait = 2 * time.Minute
	defaultTimeout = 30 * time.Second
)

// Options configure a Source. Set APIToken, or ClientID and PrivateKeyPEM.
type Options struct {
	OrgURL   string // https://acme.okta.com (not the -admin URL)
	APIToken string // sent as `Authorization: SSWS <token>`
	// OAuth 2.0 client credentials with private_key_jwt: the service app's client id, its RSA private key
	// (PKCS#1 or PKCS#8 PEM) and, optionally, the key's kid as registered in Okta. The app needs the
	// okta.groups.read scope and an admin role that can read groups; DPoP, when the app requires it, is
	// handled (dpop.go).
	ClientID      string
	PrivateKeyPEM []byte
	KeyID         string
	// Group selection: an Okta `search` expression (e.g. `profile.name sw "wandb-"`) or a `filter`
	// expression (e.g. `type eq "OKTA_GROUP"`); at most one; neither selects every group. Search is
	// eventually consistent at Okta, filter is not.
	Search string
	Filter string

	HTTPClient *http.Client                                     // default: 30 s timeout
	Sleep      func(ctx context.Context, d time.Duration) error // default: a timer that honours ctx
	Now        func() time.Time                                 // default: time.Now
	MaxWait    time.Duration                                    // cap on one rate-limit or backoff wait (default 2m)
}

// Source reads one Okta org. It is safe for concurrent use.
type Source struct {
	base           *url.URL
	apiToken       string
	oauth          *tokenSource // nil with an API token
	dpop           *dpop        // OAuth's DPoP state, shared by its token sources; nil with an API token
	search, filter string
	client         *http.Client
	sleep          func(context.Context, time.Duration) error
	now            func() time.Time
	maxWait        time.Duration
	policy         retry.Policy
}

var _ source.Source = (*Source)(nil)

// New checks the options and returns a Source. Errors never quote the token or the key.
func New(o Options) (*Source, error) {
	base, err := parseOrgURL(o.OrgURL)
	if err != nil {
		return nil, fmt.Errorf("okta: org URL: %w", err)
	}
	s := &Source{
		base: base, search: strings.TrimSpace(o.Search), filter: strings.TrimSpace(o.Filter),
		client: o.HTTPClient, sleep: o.Sleep, now: o.Now, maxWait: o.MaxWait,
	}
	if s.search != "" && s.filter != "" {
		return nil, errors.New("okta: set search or filter, not both")
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: defaultTimeout}
	}
	if s.sleep == nil {
		s.sleep = retry.Wait
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch {
	case s.maxWait < 0:
		return nil, errors.New("okta: MaxWait must not be negative")
	case s.maxWait == 0:
		s.maxWait = defaultMaxWait
	}
	s.policy = retry.Policy{
		Base: firstBackoff, Max: s.maxWait,
		// Full jitter, as the W&B client has. Okta's backoff had none, so every source failing at
		// the same moment retried at the same moment.
		Jitter:   retry.Full(),
		Attempts: maxAttempts,
		// Okta announces the end of a rate-limit window in X-Rate-Limit-Reset, not Retry-After (see
		// untilReset). A longer wait is cut to MaxWait, not given up on: Okta's windows last a minute,
		// less than the default MaxWait.
		RetryAfter: retry.RetryAfter{Max: s.maxWait},
	}
	oauth := o.ClientID != "" || len(o.PrivateKeyPEM) > 0 || o.KeyID != ""
	switch {
	case o.APIToken != "" && oauth:
		return nil, errors.New("okta: set an API token or OAuth client credentials, not both")
	case o.APIToken != "":
		s.apiToken = strings.TrimSpace(o.APIToken)
		if !headerSafe(s.apiToken) {
			return nil, errors.New("okta: the API token contains characters a header cannot carry")
		}
	case o.ClientID == "" || len(o.PrivateKeyPEM) == 0:
		return nil, errors.New("okta: credentials: set an API token, or a client id and a private key")
	default:
		key, err := parseRSAKey(o.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("okta: private key: %w", err)
		}
		s.dpop = &dpop{}
		s.oauth = newTokenSource(o.ClientID, o.KeyID, key, base.JoinPath("/oauth2/v1/token").String(), groupsScope, func() time.Time { return s.now() })
	}
	return s, nil
}

func parseOrgURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case raw == "":
		return nil, errors.New("missing")
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "https":
		return nil, errors.New("must be https://<org>.okta.com")
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return nil, errors.New("must be just https://<org host>, without path, query or credentials")
	case strings.Contains(u.Hostname(), "-admin."):
		return nil, errors.New("use the org URL, not the admin console's (-admin) URL")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// headerSafe reports whether s is a non-empty, printable ASCII string without spaces.
func headerSafe(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return s != ""
}

// Groups returns every selected group with its members, sorted by id.
func (s *Source) Groups(ctx context.Context) ([]source.Group, error) {
	q := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	switch {
	case s.search != "":
		q.Set("search", s.search)
	case s.filter != "":
		q.Set("filter", s.filter)
	}
	groups, err := s.listGroups(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("okta: listing groups: %w", err)
	}
	out := make([]source.Group, 0, len(groups))
	for _, g := range groups {
		members, found, err := s.members(ctx, g.ID)
		if err != nil {
			return nil, fmt.Errorf("okta: listing members of group %s %q: %w", g.ID, g.Profile.Name, err)
		}
		if !found { // deleted since it was listed
			continue
		}
		out = append(out, source.Group{ID: g.ID, Name: g.Profile.Name, Members: members})
	}
	return out, nil
}

// Group reads one group by id. found is false when the group does not exist or the selection no
// longer matches it. With a Search selection, Okta answers from its search index, which may lag a
// change briefly; the periodic full reconcile catches up.
func (s *Source) Group(ctx context.Context, id string) (source.Group, bool, error) {
	if !validID(id) {
		return source.Group{}, false, fmt.Errorf("okta: reading group: %q is not an Okta group id", id)
	}
	g, found, err := s.getSelected(ctx, id)
	if err != nil {
		return source.Group{}, false, fmt.Errorf("okta: reading group %s: %w", id, err)
	}
	if !found {
		return source.Group{}, false, nil
	}
	members, found, err := s.members(ctx, id)
	if err != nil {
		return source.Group{}, false, fmt.Errorf("okta: listing members of group %s %q: %w", id, g.Profile.Name, err)
	}
	if !found { // deleted between the two calls
		return source.Group{}, false, nil
	}
	return source.Group{ID: g.ID, Name: g.Profile.Name, Members: members}, true, nil
}

// getSelected reads a group, asking Okta whether the selection matches it by adding `id eq` to the
// selection's expression: the one call answers both "does it exist" and "is it selected".
func (s *Source) getSelected(ctx context.Context, id string) (apiGroup, bool, error) {
	param, expr := "search", s.search
	if s.filter != "" {
		param, expr = "filter", s.filter
	}
	if expr == "" {
		resp, err := s.get(ctx, s.base.JoinPath("/api/v1/groups", id))
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return apiGroup{}, false, nil
		}
		if err != nil {
			return apiGroup{}, false, err
		}
		var g apiGroup
		if err := json.Unmarshal(resp.body, &g); err != nil {
			return apiGroup{}, false, fmt.Errorf("decoding group: %w", err)
		}
		if g.ID != id {
			return apiGroup{}, false, fmt.Errorf("okta answered with group %q", g.ID)
		}
		return g, true, nil
	}
	q := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	q.Set(param, fmt.Sprintf(`(%s) and id eq "%s"`, expr, id)) // validID keeps id free of quotes
	groups, err := s.listGroups(ctx, q)
	if err != nil {
		return apiGroup{}, false, err
	}
	for _, g := range groups {
		if g.ID == id {
			return g, true, nil
		}
	}
	return apiGroup{}, false, nil
}

// validID accepts Okta's ids (00g…, alphanumeric), which also keeps them safe in paths and expressions.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

type apiGroup struct {
	ID      string `json:"id"`
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
}

type apiUser struct {
	Status  string `json:"status"`
	Profile struct {
		Login string `json:"login"`
		Email string `json:"email"`
	} `json:"profile"`
}

func (s *Source) listGroups(ctx context.Context, q url.Values) ([]apiGroup, error) {
	u := s.base.JoinPath("/api/v1/groups")
	u.RawQuery = q.Encode()
	var out []apiGroup
	seen := map[string]bool{}
	err := s.pages(ctx, u, func(body []byte) error {
		groups, err := decodeGroups(body)
		for _, g := range groups {
			if !seen[g.ID] { // a group changed while paging may show up twice
				seen[g.ID] = true
				out = append(out, g)
			}
		}
		return err
	})
	slices.SortFunc(out, func(a, b apiGroup) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

func decodeGroups(body []byte) ([]apiGroup, error) {
	var groups []apiGroup
	if err := json.Unmarshal(body, &groups); err != nil {
		return nil, fmt.Errorf("decoding groups: %w", err)
	}
	for _, g := range groups {
		if !validID(g.ID) {
			return nil, fmt.Errorf("decoding groups: group with invalid id %q", g.ID)
		}
	}
	return groups, nil
}

// members lists a group's members' emails; found is false when the group is gone.
func (s *Source) members(ctx context.Context, groupID string) ([]string, bool, error) {
	u := s.base.JoinPath("/api/v1/groups", groupID, "users")
	u.RawQuery = url.Values{"limit": {strconv.Itoa(pageLimit)}}.Encode()
	var emails []string
	err := s.pages(ctx, u, func(body []byte) error {
		page, err := decodeMembers(body)
		emails = append(emails, page...)
		return err
	})
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	slices.Sort(emails)
	return slices.Compact(emails), true, nil
}

// decodeMembers returns the lowercased emails of one page of users, skipping deprovisioned users and
// users without an email.
func decodeMembers(body []byte) ([]string, error) {
	var users []apiUser
	if err := json.Unmarshal(body, &users); err != nil {
		return nil, fmt.Errorf("decoding members: %w", err)
	}
	var emails []string
	for _, u := range users {
		if u.Status == "DEPROVISIONED" {
			continue
		}
		if e := email(u.Profile.Email); e != "" {
			emails = append(emails, e)
		} else if e := email(u.Profile.Login); e != "" {
			emails = append(emails, e)
		}
	}
	return emails, nil
}

// email returns s lowercased when it is a bare email address, else "".
func email(s string) string {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return ""
	}
	return strings.ToLower(s)
}
