package google

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/source"
)

const (
	// DefaultBaseURL is the Admin SDK's endpoint.
	DefaultBaseURL = "https://admin.googleapis.com"
	// DefaultCustomer is the alias for the account the impersonated admin belongs to.
	DefaultCustomer = "my_customer"

	// pageSize is the documented maximum of maxResults for both groups.list and members.list.
	pageSize = 200
)

// Options configure a Source.
type Options struct {
	// CredentialsJSON is the service account key file (client_email, private_key, token_uri). Secret.
	CredentialsJSON []byte
	// Subject is the admin user the service account impersonates.
	Subject string
	// Customer is the customer ID whose groups are listed; DefaultCustomer when empty.
	Customer string
	// Query selects groups with the Directory API's search syntax, e.g. "email:wandb-*" or
	// "name='Data Science'"; every group of the customer when empty.
	Query string
	// BaseURL of the Directory API; DefaultBaseURL when empty.
	BaseURL string
	// HTTPClient makes the calls; one with a 30 s timeout when nil.
	HTTPClient *http.Client
	// Sleep waits between retries and must return early with ctx's error; a timer when nil.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for JWTs and token expiry; time.Now when nil.
	Now func() time.Time
}

// Source reads the groups of one Google Workspace customer. It is safe for concurrent use.
type Source struct {
	base     string
	customer string
	query    string
	client   *http.Client
	sleep    func(ctx context.Context, d time.Duration) error
	now      func() time.Time
	tokens   *tokenSource
}

var _ source.Source = (*Source)(nil)

// New checks the options and parses the key; it makes no network call.
func New(o Options) (*Source, error) {
	if len(o.CredentialsJSON) == 0 {
		return nil, errors.New("google source: CredentialsJSON (service account key) is required")
	}
	creds, err := parseCredentials(o.CredentialsJSON)
	if err != nil {
		return nil, fmt.Errorf("google source: %w", err)
	}
	if !strings.Contains(o.Subject, "@") {
		return nil, fmt.Errorf("google source: Subject must be the email of the admin to impersonate, got %q", o.Subject)
	}
	s := &Source{
		base:     strings.TrimRight(o.BaseURL, "/"),
		customer: o.Customer,
		query:    o.Query,
		client:   o.HTTPClient,
		sleep:    o.Sleep,
		now:      o.Now,
	}
	if s.base == "" {
		s.base = DefaultBaseURL
	}
	if u, err := url.Parse(s.base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("google source: BaseURL %q is not an http(s) URL", o.BaseURL)
	}
	if s.customer == "" {
		s.customer = DefaultCustomer
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.sleep == nil {
		s.sleep = retry.Wait
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.tokens = newTokenSource(creds, o.Subject, s.client, s.now, s.retry)
	return s, nil
}

// Groups lists the selected groups, then the members of each, following every page.
func (s *Source) Groups(ctx context.Context) ([]source.Group, error) {
	var listed []apiGroup
	seen := map[string]bool{}
	err := s.eachGroup(ctx, func(g apiGroup) bool {
		if !seen[g.ID] { // a group can move across a page boundary while we page
			seen[g.ID] = true
			listed = append(listed, g)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]source.Group, 0, len(listed))
	for _, g := range listed {
		members, found, err := s.members(ctx, g.ID)
		if err != nil {
			return nil, fmt.Errorf("google source: list members of group %s (%s): %w", g.Email, g.ID, err)
		}
		if !found { // deleted since it was listed: it is no longer desired
			continue
		}
		out = append(out, source.Group{ID: g.ID, Name: g.Name, Members: members})
	}
	return out, nil
}

// Group reads one group by its ID (an email works too). A group that exists but that Query does not
// select is reported as not found.
func (s *Source) Group(ctx context.Context, id string) (source.Group, bool, error) {
	if id == "" {
		return source.Group{}, false, errors.New("google source: group id is empty")
	}
	var g apiGroup
	err := s.get(ctx, "/admin/directory/v1/groups/"+url.PathEscape(id), nil, &g)
	if isNotFound(err) {
		return source.Group{}, false, nil
	}
	if err != nil {
		return source.Group{}, false, fmt.Errorf("google source: get group %s: %w", id, err)
	}
	if g.ID == "" {
		return source.Group{}, false, fmt.Errorf("google source: get group %s: answer has no id", id)
	}
	if s.query != "" {
		// The API cannot evaluate a query against one group, and re-implementing its search rules here
		// could disagree with it: ask the same listing Groups uses whether the group is in it.
		selected := false
		err := s.eachGroup(ctx, func(l apiGroup) bool {
			selected = l.ID == g.ID
			return !selected
		})
		if err != nil {
			return source.Group{}, false, err
		}
		if !selected {
			return source.Group{}, false, nil
		}
	}
	members, found, err := s.members(ctx, g.ID)
	if err != nil {
		return source.Group{}, false, fmt.Errorf("google source: list members of group %s (%s): %w", g.Email, g.ID, err)
	}
	if !found {
		return source.Group{}, false, nil
	}
	return source.Group{ID: g.ID, Name: g.Name, Members: members}, true, nil
}

// eachGroup pages through groups.list with the configured selection until yield returns false.
func (s *Source) eachGroup(ctx context.Context, yield func(apiGroup) bool) error {
	q := url.Values{"customer": {s.customer}, "maxResults": {fmt.Sprint(pageSize)}}
	if s.query != "" {
		q.Set("query", s.query)
	}
	for page := 1; ; page++ {
		var p groupsPage
		if err := s.get(ctx, "/admin/directory/v1/groups", q, &p); err != nil {
			return fmt.Errorf("google source: list groups (page %d): %w", page, err)
		}
		for _, g := range p.Groups {
			if g.ID != "" && !yield(g) {
				return nil
			}
		}
		if p.NextPageToken == "" {
			return nil
		}
		if p.NextPageToken == q.Get("pageToken") {
			return fmt.Errorf("google source: list groups (page %d): the API returned the same page token again", page)
		}
		q.Set("pageToken", p.NextPageToken)
	}
}

// members lists a group's users, nested groups flattened; found is false when the group is gone.
func (s *Source) members(ctx context.Context, groupID string) ([]string, bool, error) {
	q := url.Values{"maxResults": {fmt.Sprint(pageSize)}, "includeDerivedMembership": {"true"}}
	var all []apiMember
	for page := 1; ; page++ {
		var p membersPage
		err := s.get(ctx, "/admin/directory/v1/groups/"+url.PathEscape(groupID)+"/members", q, &p)
		if isNotFound(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("page %d: %w", page, err)
		}
		all = append(all, p.Members...)
		if p.NextPageToken == "" {
			return memberEmails(all), true, nil
		}
		if p.NextPageToken == q.Get("pageToken") {
			return nil, false, fmt.Errorf("page %d: the API returned the same page token again", page)
		}
		q.Set("pageToken", p.NextPageToken)
	}
}
