package entra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/source/internal/oauth"
)

const (
	// DefaultAuthorityURL is the Microsoft identity platform of the global cloud.
	DefaultAuthorityURL = "https://login.microsoftonline.com"
	// DefaultGraphURL is Microsoft Graph in the global cloud.
	DefaultGraphURL = "https://graph.microsoft.com"
	// DefaultMaxWait caps one wait before a retry when Options.MaxWait is zero.
	DefaultMaxWait = 2 * time.Minute
	// maxTop is Graph's largest page size for directory collections.
	maxTop = "999"
)

// Options configures a Source. Exactly one of Filter and GroupIDs selects the groups.
type Options struct {
	TenantID     string // tenant id (GUID) or a verified domain
	ClientID     string // the app registration's application (client) id
	ClientSecret string
	AuthorityURL string // DefaultAuthorityURL if empty
	GraphURL     string // DefaultGraphURL if empty; also the token's audience (scope <GraphURL>/.default)

	// Filter is an OData $filter on groups, e.g. startswith(displayName,'wandb-'). A filter Graph
	// serves only as an advanced query (endswith, ne, not) is sent with ConsistencyLevel: eventual and
	// $count=true once Graph asks for them; its results may then lag recent changes by a little.
	Filter string
	// GroupIDs are the object ids of the selected groups; one that no longer exists is left out.
	GroupIDs []string

	HTTPClient *http.Client                                     // a client with a 60 s timeout if nil
	Sleep      func(ctx context.Context, d time.Duration) error // waits out throttling; a timer if nil
	Now        func() time.Time                                 // time.Now if nil
	MaxWait    time.Duration                                    // cap on one throttling or backoff wait; DefaultMaxWait if zero
}

// Source reads the selected groups of one tenant. It is safe for concurrent use.
type Source struct {
	tenant, clientID, secret string
	tokenURL, graphURL       string
	graph                    *url.URL
	filter                   string
	ids                      []string
	idSet                    map[string]bool
	http                     *http.Client
	sleep                    func(context.Context, time.Duration) error
	now                      func() time.Time
	policy                   retry.Policy

	tokens *oauth.Cache

	// nestedMu guards nested: for each selected group read, the ids of the groups nested in it at any
	// depth (from its transitiveMembers), for Containing.
	nestedMu sync.Mutex
	nested   map[string]map[string]bool

	// advanced is set once Graph has said the filter needs its advanced query parameters, which are
	// then always sent. They are not sent before: their results are only eventually consistent.
	advanced atomic.Bool
	// fullyRead is set once Groups succeeded: from then on the selection and its nesting are known.
	fullyRead atomic.Bool
}

var (
	_ source.Source  = (*Source)(nil)
	_ source.Nesting = (*Source)(nil)
)

// New checks the options and returns a Source. It makes no request.
func New(o Options) (*Source, error) {
	s := &Source{
		tenant: strings.TrimSpace(o.TenantID), clientID: strings.TrimSpace(o.ClientID), secret: o.ClientSecret,
		filter: strings.TrimSpace(o.Filter),
		http:   o.HTTPClient, sleep: o.Sleep, now: o.Now,
	}
	switch {
	case s.tenant == "" || strings.ContainsAny(s.tenant, "/?#% "):
		return nil, errors.New("entra: a tenant id (GUID or verified domain) is required")
	case s.clientID == "":
		return nil, errors.New("entra: a client id is required")
	case s.secret == "":
		return nil, errors.New("entra: a client secret is required")
	case s.filter != "" && len(o.GroupIDs) > 0:
		return nil, errors.New("entra: select groups either by filter or by group ids, not both")
	case s.filter == "" && len(o.GroupIDs) == 0:
		return nil, errors.New("entra: a group filter or a list of group ids is required: selecting every group of a tenant is refused")
	}
	s.nested = map[string]map[string]bool{}
	s.idSet = map[string]bool{}
	for _, id := range o.GroupIDs {
		id = strings.ToLower(strings.TrimSpace(id))
		if !isGUID(id) {
			return nil, fmt.Errorf("entra: group id %q is not an object id (GUID)", id)
		}
		if !s.idSet[id] {
			s.idSet[id] = true
			s.ids = append(s.ids, id)
		}
	}
	authority, err := baseURL("authority", o.AuthorityURL, DefaultAuthorityURL)
	if err != nil {
		return nil, err
	}
	if s.graph, err = baseURL("Graph", o.GraphURL, DefaultGraphURL); err != nil {
		return nil, err
	}
	s.graphURL = s.graph.String()
	s.tokenURL = authority.String() + "/" + url.PathEscape(s.tenant) + "/oauth2/v2.0/token"
	if s.http == nil {
		s.http = &http.Client{Timeout: 60 * time.Second}
	}
	if s.sleep == nil {
		s.sleep = retry.Wait
	}
	if s.now == nil {
		s.now = time.Now
	}
	maxWait := o.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	s.policy = retry.Policy{
		// The backoff is for transport errors and throttling without Retry-After, which Graph rarely
		// sends. Full jitter, as the W&B client has; Graph's backoff had none.
		Base: time.Second, Max: maxWait, Jitter: retry.Full(),
		Attempts: maxRetries + 1,
		// Graph asks clients to wait exactly its Retry-After, on 429 and on 503
		// (learn.microsoft.com/graph/throttling); a longer one is cut to MaxWait, not given up on.
		RetryAfter: retry.RetryAfter{Max: maxWait},
	}
	s.tokens = oauth.NewCache(oauth.CacheOptions{Margin: refreshMargin, Now: s.now})
	return s, nil
}

// baseURL parses a base URL. Plain http is accepted only on loopback (tests): the client secret and
// tokens travel to these URLs.
func baseURL(what, raw, def string) (*url.URL, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("entra: the %s URL %q is not a base URL like %s", what, raw, def)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("entra: the %s URL %q must use https", what, raw)
	}
	return u, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// isGUID reports whether s is an object id: 8-4-4-4-12 hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
			return false
		}
	}
	return true
}

// groupHead is a group as listed, before its members are read.
type groupHead struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// Groups returns the selected groups with their members, sorted by id. A group deleted while it is
// being read is left out.
func (s *Source) Groups(ctx context.Context) ([]source.Group, error) {
	var heads []groupHead
	if s.filter != "" {
		var err error
		if heads, err = s.listGroups(ctx, s.filter); err != nil {
			return nil, fmt.Errorf("entra: listing groups matching %q: %w", s.filter, err)
		}
	} else {
		for _, id := range s.ids {
			h, found, err := s.getGroup(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("entra: reading group %s: %w", id, err)
			}
			if found {
				heads = append(heads, h)
			}
		}
	}
	groups := make([]source.Group, 0, len(heads))
	for _, h := range heads {
		g, found, err := s.withMembers(ctx, h)
		if err != nil {
			return nil, err
		}
		if found {
			groups = append(groups, g)
		}
	}
	slices.SortFunc(groups, func(a, b source.Group) int { return strings.Compare(a.ID, b.ID) })
	s.keepOnly(groups)
	s.fullyRead.Store(true)
	return groups, nil
}

// Containing returns the selected groups that held id nested in them (at any depth) when they were
// read last, sorted. Graph notifies a change to a nested group under that group's id only; its
// containing groups' members changed as well.
func (s *Source) Containing(id string) []string {
	id = strings.ToLower(id)
	s.nestedMu.Lock()
	defer s.nestedMu.Unlock()
	var out []string
	for parent, nested := range s.nested {
		if nested[id] {
			out = append(out, parent)
		}
	}
	slices.Sort(out)
	return out
}

// setNested records the groups nested in a selected group; nil forgets the group.
func (s *Source) setNested(id string, nested map[string]bool) {
	s.nestedMu.Lock()
	defer s.nestedMu.Unlock()
	if nested == nil {
		delete(s.nested, strings.ToLower(id))
	} else {
		s.nested[strings.ToLower(id)] = nested
	}
}

// keepOnly forgets the nesting of groups a full read did not return.
func (s *Source) keepOnly(groups []source.Group) {
	keep := map[string]bool{}
	for _, g := range groups {
		keep[strings.ToLower(g.ID)] = true
	}
	s.nestedMu.Lock()
	defer s.nestedMu.Unlock()
	for id := range s.nested {
		if !keep[id] {
			delete(s.nested, id)
		}
	}
}

// Group reads one group with its members. found is false when the group does not exist or is not
// selected (any more): renamed out of the filter, or not among GroupIDs.
func (s *Source) Group(ctx context.Context, id string) (source.Group, bool, error) {
	if !isGUID(id) {
		return source.Group{}, false, nil // Entra ids are GUIDs: nothing else can exist
	}
	var (
		h     groupHead
		found bool
	)
	if s.filter != "" {
		// Ask Graph whether the group matches the filter rather than reimplementing OData here.
		heads, err := s.listGroups(ctx, "("+s.filter+") and id eq '"+strings.ToLower(id)+"'")
		if err != nil {
			return source.Group{}, false, fmt.Errorf("entra: reading group %s: %w", id, err)
		}
		if found = len(heads) > 0; found {
			h = heads[0]
		}
	} else if s.idSet[strings.ToLower(id)] {
		var err error
		if h, found, err = s.getGroup(ctx, strings.ToLower(id)); err != nil {
			return source.Group{}, false, fmt.Errorf("entra: reading group %s: %w", id, err)
		}
	}
	if !found {
		s.setNested(id, nil)
		return source.Group{}, false, nil
	}
	return s.withMembers(ctx, h)
}

// listGroups lists the groups matching filter. When Graph answers that the filter needs advanced
// query parameters (Request_UnsupportedQuery), it repeats the listing with them, and keeps them.
func (s *Source) listGroups(ctx context.Context, filter string) ([]groupHead, error) {
	adv := s.advanced.Load()
	heads, err := s.listGroupsWith(ctx, filter, adv)
	var ae *apiError
	if !adv && errors.As(err, &ae) && ae.status == http.StatusBadRequest && ae.code == "Request_UnsupportedQuery" {
		s.advanced.Store(true)
		heads, err = s.listGroupsWith(ctx, filter, true)
	}
	return heads, err
}

func (s *Source) listGroupsWith(ctx context.Context, filter string, advanced bool) ([]groupHead, error) {
	q := url.Values{"$filter": {filter}, "$select": {"id,displayName"}, "$top": {maxTop}}
	if advanced {
		q.Set("$count", "true")
	}
	var heads []groupHead
	seen := map[string]bool{}
	var hdr http.Header
	if advanced {
		hdr = advancedQuery
	}
	err := listAll(ctx, s, s.endpoint("/v1.0/groups", q), hdr, func(h groupHead) error {
		if !isGUID(h.ID) {
			return fmt.Errorf("graph listed a group with the invalid id %.40q", h.ID)
		}
		if !seen[h.ID] { // a page boundary can repeat an item when the directory changes mid-listing
			seen[h.ID] = true
			heads = append(heads, h)
		}
		return nil
	})
	return heads, err
}

// getGroup reads one group by id; found is false on 404.
func (s *Source) getGroup(ctx context.Context, id string) (groupHead, bool, error) {
	var h groupHead
	err := s.call(ctx, http.MethodGet, s.endpoint("/v1.0/groups/"+url.PathEscape(id), url.Values{"$select": {"id,displayName"}}), nil, &h, nil)
	if statusIs(err, http.StatusNotFound) {
		return groupHead{}, false, nil
	}
	if err == nil && !strings.EqualFold(h.ID, id) {
		err = fmt.Errorf("graph answered with group %.40q", h.ID)
	}
	return h, err == nil, err
}

// withMembers reads the members of a listed group; found is false when the group is gone by now.
func (s *Source) withMembers(ctx context.Context, h groupHead) (source.Group, bool, error) {
	members, nested, found, err := s.members(ctx, h.ID)
	if err != nil {
		return source.Group{}, false, fmt.Errorf("entra: reading the members of group %s (%q): %w", h.ID, h.DisplayName, err)
	}
	if found {
		s.setNested(h.ID, nested)
	} else {
		s.setNested(h.ID, nil)
	}
	return source.Group{ID: h.ID, Name: h.DisplayName, Members: members}, found, nil
}

// member is one transitive member of a group: a user, group, device, contact or service principal.
type member struct {
	Type           string `json:"@odata.type"`
	ID             string `json:"id"`
	Mail           string `json:"mail"`
	UPN            string `json:"userPrincipalName"`
	AccountEnabled *bool  `json:"accountEnabled"`
}

// ErrUserReadPermission is matched (errors.Is) when Graph listed user members without their
// details: the app registration lacks the application permission User.Read.All. It matches ErrAuth too.
//
// Graph lists a member the app may not read with only its @odata.type and id, every other property
// null (learn.microsoft.com/graph/permissions-overview#limited-information-returned-for-inaccessible-member-objects),
// so with GroupMember.Read.All alone every user has neither mail nor userPrincipalName. A user always
// has a userPrincipalName, so a null one means the permission is missing, not that the user has no
// address. accountEnabled is not part of the basic profile that User.ReadBasic.All covers, so that
// permission is not enough either.
var ErrUserReadPermission = fmt.Errorf("%w: graph withheld the members' user details; the app registration needs the admin-consented application permission User.Read.All", ErrAuth)

// memberSelect are the member properties read: the addresses, and accountEnabled to leave out
// disabled users.
const memberSelect = "id,mail,userPrincipalName,accountEnabled"

// members reads the users among the transitive members of a group as sorted unique emails, and the
// ids of the groups nested in it (lowercase). Disabled
// users (accountEnabled false) are not members, as Okta's deprovisioned and Google's suspended users
// are not.
//
// It lists every transitive member and keeps the users itself: the OData cast
// .../transitiveMembers/microsoft.graph.user needs the advanced query parameters, whose index is
// only eventually consistent, so a read triggered by a change notification could miss that change.
func (s *Source) members(ctx context.Context, id string) ([]string, map[string]bool, bool, error) {
	q := url.Values{"$select": {memberSelect}, "$top": {maxTop}}
	set, nested := map[string]bool{}, map[string]bool{}
	err := listAll(ctx, s, s.endpoint("/v1.0/groups/"+url.PathEscape(id)+"/transitiveMembers", q), nil, func(m member) error {
		if err := m.check(); err != nil {
			return err
		}
		if m.Type == "#microsoft.graph.group" && isGUID(m.ID) {
			nested[strings.ToLower(m.ID)] = true
		}
		if e, ok := m.email(); ok {
			set[e] = true
		}
		return nil
	})
	if statusIs(err, http.StatusNotFound) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	emails := make([]string, 0, len(set))
	for e := range set {
		emails = append(emails, e)
	}
	slices.Sort(emails)
	return emails, nested, true, nil
}

// check refuses a user member whose details Graph withheld (see ErrUserReadPermission).
func (m member) check() error {
	if m.Type != "#microsoft.graph.user" {
		return nil
	}
	switch {
	case strings.TrimSpace(m.UPN) == "":
		return fmt.Errorf("user %.40s came without userPrincipalName or mail: %w", m.ID, ErrUserReadPermission)
	case m.AccountEnabled == nil:
		return fmt.Errorf("user %.40s came without accountEnabled (User.ReadBasic.All does not cover it): %w", m.ID, ErrUserReadPermission)
	}
	return nil
}

// email is a user's mail, else its userPrincipalName when that is an address. A guest's UPN
// (alice_example.com#EXT#@tenant.onmicrosoft.com) is not one. Other member types have no email here:
// a nested group's own mail address is not a person. A disabled user has none either.
func (m member) email() (string, bool) {
	if m.Type != "#microsoft.graph.user" || m.AccountEnabled != nil && !*m.AccountEnabled {
		return "", false
	}
	if e, ok := normalizeEmail(m.Mail); ok {
		return e, true
	}
	if strings.Contains(strings.ToUpper(m.UPN), "#EXT#") {
		return "", false
	}
	return normalizeEmail(m.UPN)
}

// normalizeEmail lowercases a plain address (local@domain.tld) and rejects anything else.
func normalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(s) > 254 || strings.Contains(domain, "@") ||
		!strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return "", false
		}
	}
	return s, true
}
