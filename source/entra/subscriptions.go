package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// MaxSubscriptionLifetime is Graph's limit for subscriptions on groups (41,760 minutes).
	MaxSubscriptionLifetime = 41760 * time.Minute
	// DefaultSubscriptionLifetime leaves a day of margin below the limit for clock skew.
	DefaultSubscriptionLifetime = MaxSubscriptionLifetime - 24*time.Hour
	// groupChangeTypes are the changes Graph notifies for groups; a group's creation fires "updated".
	groupChangeTypes = "updated,deleted"
	groupsResource   = "/groups"
)

// ErrSubscriptionPermission is matched (errors.Is) when Graph refuses (403) to create, read, renew or
// reauthorize the /groups subscription: Graph's create-subscription permissions table lists
// Group.Read.All as the application permission for the group resource
// (learn.microsoft.com/graph/api/subscription-post-subscriptions#permissions); GroupMember.Read.All
// is not enough. It matches ErrAuth too.
var ErrSubscriptionPermission = fmt.Errorf("%w: graph refused the /groups change-notification subscription; the app registration needs the admin-consented application permission Group.Read.All", ErrAuth)

// subscriptionError names the missing permission on a 403.
func subscriptionError(what string, err error) error {
	if statusIs(err, http.StatusForbidden) {
		return fmt.Errorf("%s: %w (%v)", what, ErrSubscriptionPermission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// SubscriptionOptions configures the change-notification subscription on /groups.
type SubscriptionOptions struct {
	NotificationURL string // https URL of the agent's Graph webhook receiver
	LifecycleURL    string // receives reauthorizationRequired; NotificationURL if empty
	ClientState     string // the secret Graph echoes in every notification (at most 128 characters)
	// Lifetime asked for at each creation and renewal: DefaultSubscriptionLifetime if zero, at most
	// MaxSubscriptionLifetime. The subscription is renewed once less than a third of it is left.
	Lifetime time.Duration
	// Load and Save, when set, persist the subscription id so that a restart reuses the subscription.
	Load func(ctx context.Context) (string, error)
	Save func(ctx context.Context, id string) error
}

// Subscriptions keeps one Graph change-notification subscription for /groups alive: call Ensure at
// start and then periodically (hourly is plenty), and Lifecycle when a lifecycle notification arrives
// (the daemon's Graph webhook does). It is safe for concurrent use.
//
// Without a stored id it adopts an existing subscription of this app with the same notificationUrl
// and resource rather than creating a duplicate. Graph never returns a subscription's clientState, so
// an adopted subscription keeps the clientState it was created with: after rotating ClientState,
// keep the old value accepted by the webhook until the old subscription lapses (at most 29 days).
type Subscriptions struct {
	src *Source
	o   SubscriptionOptions

	mu      lock
	loaded  bool      // Load was called successfully
	id      string    // current subscription, "" if none known
	expires time.Time // its expirationDateTime as Graph last said
	unsaved bool      // id has not reached Save yet

	errMu   sync.Mutex // guards lastErr alone, so that Err never waits for a Graph call
	lastErr error      // the outcome of the last Ensure or Reauthorize
}

// NewSubscriptions returns the keeper of the /groups subscription read and renewed through src.
// Problems with the options are reported by Ensure.
func NewSubscriptions(src *Source, o SubscriptionOptions) *Subscriptions {
	if o.LifecycleURL == "" {
		o.LifecycleURL = o.NotificationURL
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultSubscriptionLifetime
	}
	o.Lifetime = min(o.Lifetime, MaxSubscriptionLifetime)
	return &Subscriptions{src: src, o: o, mu: make(lock, 1)}
}

// subscription is Graph's subscription resource, as far as the agent uses it.
type subscription struct {
	ID                       string     `json:"id,omitempty"`
	ChangeType               string     `json:"changeType,omitempty"`
	NotificationURL          string     `json:"notificationUrl,omitempty"`
	LifecycleNotificationURL string     `json:"lifecycleNotificationUrl,omitempty"`
	Resource                 string     `json:"resource,omitempty"`
	ExpirationDateTime       *time.Time `json:"expirationDateTime,omitempty"`
	ClientState              string     `json:"clientState,omitempty"`
}

// ID is the current subscription id, "" before the first successful Ensure.
func (s *Subscriptions) ID() string {
	if s.mu.acquire(context.Background()) != nil {
		return ""
	}
	defer s.mu.release()
	return s.id
}

// Ensure makes sure the subscription exists and has at least a third of its lifetime left: it reads
// it (or adopts or creates one), and renews it when due. A subscription Graph no longer knows is
// created again.
func (s *Subscriptions) Ensure(ctx context.Context) error {
	if err := s.mu.acquire(ctx); err != nil {
		return err
	}
	defer s.mu.release()
	return s.done(s.ensure(ctx))
}

// done records and returns the outcome of Ensure or Reauthorize.
func (s *Subscriptions) done(err error) error {
	if err != nil {
		err = fmt.Errorf("entra: keeping the /groups change-notification subscription: %w", err)
	}
	s.errMu.Lock()
	s.lastErr = err
	s.errMu.Unlock()
	return err
}

// Err is the error of the last Ensure or Reauthorize, nil when it succeeded or none ran yet: while
// it is not nil, change notifications may not arrive and only the schedule reads the groups. It does
// not wait for a running Ensure.
func (s *Subscriptions) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.lastErr
}

// Reauthorize answers a reauthorizationRequired lifecycle notification: it reauthorizes the
// subscription, then makes sure it exists and is not due for renewal (creating it if Graph dropped it).
func (s *Subscriptions) Reauthorize(ctx context.Context) error {
	if err := s.mu.acquire(ctx); err != nil {
		return err
	}
	defer s.mu.release()
	if s.id != "" {
		err := s.src.call(ctx, http.MethodPost, s.src.endpoint("/v1.0/subscriptions/"+url.PathEscape(s.id)+"/reauthorize", nil), nil, nil, nil)
		switch {
		case statusIs(err, http.StatusNotFound):
			s.forget()
		case err != nil:
			return s.done(subscriptionError("reauthorizing subscription "+s.id, err))
		}
	}
	return s.done(s.ensure(ctx))
}

// Lifecycle acts on a lifecycle notification Graph sent for a subscription
// (learn.microsoft.com/graph/change-notifications-lifecycle-events): reauthorizationRequired
// reauthorizes it (Reauthorize); subscriptionRemoved forgets it, when it is ours or none is known,
// and creates one again; missed, and any other event, makes sure the subscription exists and is not
// due (Ensure). Catching up on changes that went unnotified is the caller's (Delta). That page
// lists only reauthorizationRequired for groups; the other two are handled should Graph send them.
func (s *Subscriptions) Lifecycle(ctx context.Context, event, subscriptionID string) error {
	switch event {
	case "reauthorizationRequired":
		return s.Reauthorize(ctx)
	case "subscriptionRemoved":
		if err := s.mu.acquire(ctx); err != nil {
			return err
		}
		defer s.mu.release()
		if s.id == "" || strings.EqualFold(s.id, subscriptionID) {
			s.forget()
		}
		return s.done(s.ensure(ctx))
	default:
		return s.Ensure(ctx)
	}
}

func (s *Subscriptions) ensure(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if !s.loaded {
		if s.o.Load != nil {
			id, err := s.o.Load(ctx)
			if err != nil {
				return fmt.Errorf("loading the stored subscription id: %w", err)
			}
			s.id = strings.TrimSpace(id)
		}
		s.loaded = true
	}
	if s.id != "" {
		var sub subscription
		err := s.src.call(ctx, http.MethodGet, s.src.endpoint("/v1.0/subscriptions/"+url.PathEscape(s.id), nil), nil, &sub, nil)
		switch {
		case statusIs(err, http.StatusNotFound):
			s.forget()
		case err != nil:
			return subscriptionError("reading subscription "+s.id, err)
		case !s.ours(sub):
			// The stored id names a subscription for another URL (the configuration changed): it
			// lapses by itself; ours is adopted or created below.
			s.forget()
		default:
			s.expires = *sub.ExpirationDateTime
		}
	}
	if s.id == "" {
		if err := s.adopt(ctx); err != nil {
			return err
		}
	}
	if s.id == "" {
		if err := s.create(ctx); err != nil {
			return err
		}
	} else if s.expires.Sub(s.src.now()) < s.o.Lifetime/3 {
		if err := s.renew(ctx); err != nil {
			return err
		}
	}
	if s.unsaved && s.o.Save != nil {
		if err := s.o.Save(ctx, s.id); err != nil {
			return fmt.Errorf("storing subscription id %s: %w", s.id, err)
		}
	}
	s.unsaved = false
	return nil
}

func (s *Subscriptions) check() error {
	for _, u := range []struct{ what, url string }{{"notification", s.o.NotificationURL}, {"lifecycle notification", s.o.LifecycleURL}} {
		p, err := url.Parse(u.url)
		if err != nil || p.Scheme != "https" || p.Host == "" {
			return fmt.Errorf("the %s URL %q is not an https URL, which Graph requires", u.what, u.url)
		}
	}
	if s.o.ClientState == "" || len(s.o.ClientState) > 128 {
		return errors.New("a clientState of 1 to 128 characters is required")
	}
	return nil
}

// ours reports whether a subscription Graph returned is the /groups subscription these options describe.
func (s *Subscriptions) ours(sub subscription) bool {
	return sub.ID != "" && sub.ExpirationDateTime != nil && sub.NotificationURL == s.o.NotificationURL &&
		strings.EqualFold(strings.Trim(sub.Resource, "/"), strings.Trim(groupsResource, "/")) &&
		sameChangeTypes(sub.ChangeType, groupChangeTypes)
}

func sameChangeTypes(a, b string) bool {
	set := func(s string) map[string]bool {
		m := map[string]bool{}
		for t := range strings.SplitSeq(s, ",") {
			m[strings.ToLower(strings.TrimSpace(t))] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for t := range sa {
		if !sb[t] {
			return false
		}
	}
	return true
}

// adopt takes over the existing subscription of this app that matches ours and lives longest.
func (s *Subscriptions) adopt(ctx context.Context) error {
	err := listAll(ctx, s.src, s.src.endpoint("/v1.0/subscriptions", nil), nil, func(sub subscription) error {
		if s.ours(sub) && sub.ExpirationDateTime.After(s.src.now()) && (s.id == "" || sub.ExpirationDateTime.After(s.expires)) {
			s.id, s.expires, s.unsaved = sub.ID, *sub.ExpirationDateTime, true
		}
		return nil
	})
	if err != nil {
		s.forget()
		return subscriptionError("listing subscriptions", err)
	}
	return nil
}

func (s *Subscriptions) expiry() *time.Time {
	t := s.src.now().Add(s.o.Lifetime).UTC().Truncate(time.Second)
	return &t
}

func (s *Subscriptions) create(ctx context.Context) error {
	in := subscription{
		ChangeType: groupChangeTypes, NotificationURL: s.o.NotificationURL, LifecycleNotificationURL: s.o.LifecycleURL,
		Resource: groupsResource, ExpirationDateTime: s.expiry(), ClientState: s.o.ClientState,
	}
	var out subscription
	if err := s.src.call(ctx, http.MethodPost, s.src.endpoint("/v1.0/subscriptions", nil), in, &out, nil); err != nil {
		return subscriptionError("creating the subscription for "+s.o.NotificationURL, err)
	}
	if out.ID == "" || out.ExpirationDateTime == nil {
		return errors.New("creating the subscription: graph answered without id or expirationDateTime")
	}
	s.id, s.expires, s.unsaved = out.ID, *out.ExpirationDateTime, true
	return nil
}

// renew extends the subscription; one that Graph no longer knows is created again.
func (s *Subscriptions) renew(ctx context.Context) error {
	var out subscription
	err := s.src.call(ctx, http.MethodPatch, s.src.endpoint("/v1.0/subscriptions/"+url.PathEscape(s.id), nil),
		subscription{ExpirationDateTime: s.expiry()}, &out, nil)
	if statusIs(err, http.StatusNotFound) {
		s.forget()
		return s.create(ctx)
	}
	if err != nil {
		return subscriptionError("renewing subscription "+s.id, err)
	}
	if out.ExpirationDateTime == nil {
		return fmt.Errorf("renewing subscription %s: graph answered without expirationDateTime", s.id)
	}
	s.expires = *out.ExpirationDateTime
	return nil
}

func (s *Subscriptions) forget() {
	s.id, s.expires, s.unsaved = "", time.Time{}, false
}
