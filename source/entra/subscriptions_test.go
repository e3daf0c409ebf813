package entra

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/graphfake"
)

const (
	hookURL     = "https://agent.example.com/webhooks/graph"
	clientState = "client-state-secret-0123456789"
)

// store is a persistence hook for the subscription id.
type store struct {
	mu    sync.Mutex
	id    string
	saves int
}

func (s *store) Load(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, nil
}

func (s *store) Save(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id = id
	s.saves++
	return nil
}

func (e *env) subscriptions(t *testing.T, st *store, edit func(*SubscriptionOptions)) *Subscriptions {
	t.Helper()
	o := SubscriptionOptions{NotificationURL: hookURL, ClientState: clientState}
	if st != nil {
		o.Load, o.Save = st.Load, st.Save
	}
	if edit != nil {
		edit(&o)
	}
	return NewSubscriptions(e.source(t, nil), o)
}

// count counts the requests with method on /v1.0/subscriptions (and below).
func (e *env) count(method string) int {
	n := 0
	for _, r := range e.fake.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, "/v1.0/subscriptions") {
			n++
		}
	}
	return n
}

func ensure(t *testing.T, s *Subscriptions) {
	t.Helper()
	if err := s.Ensure(context.Background()); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
}

func TestEnsureCreatesOnceAndRenews(t *testing.T) {
	e := newEnv(t)
	st := &store{}
	s := e.subscriptions(t, st, nil)

	ensure(t, s)
	subs := e.fake.Subscriptions()
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions after Ensure, want 1", len(subs))
	}
	got := subs[0]
	want := graphfake.Subscription{
		ID: s.ID(), Resource: "/groups", ChangeType: "updated,deleted", NotificationURL: hookURL,
		LifecycleNotificationURL: hookURL, ClientState: clientState,
		ExpirationDateTime: e.clock.Now().Add(DefaultSubscriptionLifetime),
	}
	if got != want {
		t.Errorf("created %+v, want %+v", got, want)
	}
	if st.id != got.ID || st.saves != 1 {
		t.Errorf("stored id %q after %d saves, want %q once", st.id, st.saves, got.ID)
	}

	// Nothing due: a read, no change.
	e.clock.Advance(24 * time.Hour)
	ensure(t, s)
	if p, pa := e.count(http.MethodPost), e.count(http.MethodPatch); p != 1 || pa != 0 {
		t.Errorf("second Ensure: %d POSTs, %d PATCHes; want no change", p, pa)
	}

	// Less than a third of the lifetime left: renewed to a full lifetime.
	e.clock.Advance(DefaultSubscriptionLifetime*2/3 - 24*time.Hour + time.Minute)
	ensure(t, s)
	if pa := e.count(http.MethodPatch); pa != 1 {
		t.Errorf("%d PATCHes when due, want 1", pa)
	}
	if exp := e.fake.Subscriptions()[0].ExpirationDateTime; !exp.Equal(e.clock.Now().Add(DefaultSubscriptionLifetime)) {
		t.Errorf("renewed to %v, want %v", exp, e.clock.Now().Add(DefaultSubscriptionLifetime))
	}
	if st.saves != 1 {
		t.Errorf("renewal saved the id again (%d saves)", st.saves)
	}
}

func TestEnsureRecreates(t *testing.T) {
	tests := []struct {
		name string
		lose func(e *env, id string)
	}{
		{"deleted", func(e *env, id string) { e.fake.DeleteSubscription(id) }},
		{"expired", func(e *env, id string) { e.fake.ExpireSubscription(id) }},
		{"gone between the read and the renewal", func(e *env, id string) {
			e.clock.Advance(DefaultSubscriptionLifetime * 3 / 4)
			e.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPatch {
					e.fake.DeleteSubscription(id)
				}
				e.fake.ServeHTTP(w, r)
			}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			st := &store{}
			s := e.subscriptions(t, st, nil)
			ensure(t, s)
			old := s.ID()
			tt.lose(e, old)
			ensure(t, s)
			subs := e.fake.Subscriptions()
			if len(subs) != 1 || subs[0].ID == old || subs[0].ID != s.ID() {
				t.Fatalf("after losing %s: subscriptions %+v, keeper has %q", old, subs, s.ID())
			}
			if st.id != s.ID() {
				t.Errorf("stored id %q, want the new %q", st.id, s.ID())
			}
		})
	}
}

func TestRestartReusesSubscription(t *testing.T) {
	tests := []struct {
		name      string
		stored    bool // the persistence hook knows the id
		wantPatch int
		age       time.Duration
	}{
		{"stored id", true, 0, time.Hour},
		{"adopted by notificationUrl and resource", false, 0, time.Hour},
		{"adopted and renewed when due", false, 1, DefaultSubscriptionLifetime * 3 / 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			first := e.subscriptions(t, &store{}, nil)
			ensure(t, first)
			id := first.ID()
			// Someone else's subscriptions of the same app are left alone.
			e.fake.AddSubscription(graphfake.Subscription{Resource: "/groups", ChangeType: "updated,deleted", NotificationURL: "https://other.example.com/hook", ExpirationDateTime: e.clock.Now().Add(time.Hour * 600)})
			e.fake.AddSubscription(graphfake.Subscription{Resource: "/users", ChangeType: "updated,deleted", NotificationURL: hookURL, ExpirationDateTime: e.clock.Now().Add(time.Hour * 600)})
			e.clock.Advance(tt.age)

			st := &store{}
			if tt.stored {
				st.id = id
			}
			restarted := e.subscriptions(t, st, nil)
			ensure(t, restarted)
			if restarted.ID() != id {
				t.Errorf("restart uses %q, want %q", restarted.ID(), id)
			}
			if n := e.count(http.MethodPost); n != 1 {
				t.Errorf("%d subscriptions created in all, want 1", n)
			}
			if n := e.count(http.MethodPatch); n != tt.wantPatch {
				t.Errorf("%d renewals, want %d", n, tt.wantPatch)
			}
			if st.id != id {
				t.Errorf("stored id %q, want %q", st.id, id)
			}
		})
	}
}

func TestReauthorize(t *testing.T) {
	e := newEnv(t)
	s := e.subscriptions(t, nil, nil)
	ensure(t, s)
	id := s.ID()
	if err := s.Reauthorize(context.Background()); err != nil {
		t.Fatalf("Reauthorize: %v", err)
	}
	if n := e.fake.Reauthorizations(id); n != 1 {
		t.Errorf("%d reauthorize calls, want 1", n)
	}
	e.fake.DeleteSubscription(id)
	if err := s.Reauthorize(context.Background()); err != nil {
		t.Fatalf("Reauthorize of a dropped subscription: %v", err)
	}
	if s.ID() == id || len(e.fake.Subscriptions()) != 1 {
		t.Errorf("a dropped subscription was not created again: %q, %+v", s.ID(), e.fake.Subscriptions())
	}
}

func TestLifetimeClampedToGraphsLimit(t *testing.T) {
	e := newEnv(t)
	s := e.subscriptions(t, nil, func(o *SubscriptionOptions) { o.Lifetime = 60 * 24 * time.Hour })
	ensure(t, s)
	if exp := e.fake.Subscriptions()[0].ExpirationDateTime; !exp.Equal(e.clock.Now().Add(MaxSubscriptionLifetime)) {
		t.Errorf("expiry %v, want the 41,760-minute limit", exp)
	}
}

func TestEnsureErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*SubscriptionOptions)
		setup   func(*env)
		wantErr string
	}{
		{"http notification URL", func(o *SubscriptionOptions) { o.NotificationURL = "http://agent.example.com/hook" }, nil, "https"},
		{"no clientState", func(o *SubscriptionOptions) { o.ClientState = "" }, nil, "clientState"},
		{"clientState too long", func(o *SubscriptionOptions) { o.ClientState = strings.Repeat("x", 129) }, nil, "clientState"},
		{"load fails", func(o *SubscriptionOptions) {
			o.Load = func(context.Context) (string, error) { return "", errors.New("disk on fire") }
		}, nil, "disk on fire"},
		{"no permission", nil, func(e *env) { e.fake.SetPermissions(graphfake.GroupMemberReadAll, graphfake.UserReadAll) }, "HTTP 403"},
		{"lifetime refused by Graph", func(o *SubscriptionOptions) { o.Lifetime = MaxSubscriptionLifetime }, func(e *env) {
			// Graph's clock is ahead of ours: the requested expiry exceeds its limit.
			e.serve(graphfake.New(graphfake.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret,
				Now: func() time.Time { return e.clock.Now().Add(-time.Minute) }}))
		}, "41760 minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			err := e.subscriptions(t, nil, tt.edit).Ensure(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Ensure = %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), clientState) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains a secret", err)
			}
		})
	}
}

// TestValidationHandshake has the fake perform Graph's validation request against a receiver.
func TestValidationHandshake(t *testing.T) {
	tests := []struct {
		name    string
		echo    func(token string) string
		wantErr string
	}{
		{"echoed", func(tok string) string { return tok }, ""},
		{"not echoed", func(string) string { return "nope" }, "ValidationError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write([]byte(tt.echo(r.URL.Query().Get("validationToken"))))
			}))
			defer hook.Close()
			e := newEnv(t)
			e.serve(graphfake.New(graphfake.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret,
				Now: e.clock.Now, ValidationClient: hook.Client()}))
			err := e.subscriptions(t, nil, func(o *SubscriptionOptions) { o.NotificationURL = hook.URL + "/webhooks/graph" }).Ensure(context.Background())
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Ensure = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSubscriptionsConcurrentUse(t *testing.T) {
	e := newEnv(t)
	s := e.subscriptions(t, &store{}, nil)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			f := s.Ensure
			if i%2 == 1 {
				f = s.Reauthorize
			}
			if err := f(context.Background()); err != nil {
				t.Errorf("concurrent call: %v", err)
			}
		})
	}
	wg.Wait()
	if n := e.count(http.MethodPost) - countReauth(e); n != 1 {
		t.Errorf("%d subscriptions created by concurrent callers, want 1", n)
	}
}

func countReauth(e *env) int {
	n := 0
	for _, r := range e.fake.Requests() {
		if strings.HasSuffix(r.Path, "/reauthorize") {
			n++
		}
	}
	return n
}

// TestSubscriptionNeedsGroupReadAll: Graph's create-subscription table asks Group.Read.All for
// /groups. A 403 at any step is ErrSubscriptionPermission, naming the permission, and stays visible
// through Err until a later Ensure succeeds.
func TestSubscriptionNeedsGroupReadAll(t *testing.T) {
	readOnly := []graphfake.Permission{graphfake.GroupMemberReadAll, graphfake.UserReadAll}
	tests := []struct {
		name string
		// before runs with every permission granted; then the app is left with readOnly.
		before func(t *testing.T, e *env, s *Subscriptions)
		call   func(s *Subscriptions) error
	}{
		{"create", nil, func(s *Subscriptions) error { return s.Ensure(context.Background()) }},
		{"renew", func(t *testing.T, e *env, s *Subscriptions) {
			ensure(t, s)
			e.clock.Advance(DefaultSubscriptionLifetime * 3 / 4) // due for renewal
		}, func(s *Subscriptions) error { return s.Ensure(context.Background()) }},
		{"reauthorize", func(t *testing.T, e *env, s *Subscriptions) { ensure(t, s) },
			func(s *Subscriptions) error { return s.Reauthorize(context.Background()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.subscriptions(t, nil, nil)
			if tt.before != nil {
				tt.before(t, e, s)
			}
			e.fake.SetPermissions(readOnly...)
			err := tt.call(s)
			if !errors.Is(err, ErrSubscriptionPermission) || !errors.Is(err, ErrAuth) {
				t.Fatalf("error %v, want ErrSubscriptionPermission", err)
			}
			if !strings.Contains(err.Error(), "Group.Read.All") || !strings.Contains(err.Error(), "403") {
				t.Errorf("error %q does not name Group.Read.All and the 403", err)
			}
			if !errors.Is(s.Err(), ErrSubscriptionPermission) {
				t.Errorf("Err() = %v, want the last failure", s.Err())
			}
			e.fake.SetPermissions(graphfake.DefaultPermissions...)
			ensure(t, s)
			if s.Err() != nil {
				t.Errorf("Err() = %v after a successful Ensure, want nil", s.Err())
			}
			if len(e.fake.Subscriptions()) != 1 {
				t.Errorf("subscriptions %+v, want one", e.fake.Subscriptions())
			}
		})
	}
}

// TestLifecycle: each lifecycle event Graph sends is acted on.
func TestLifecycle(t *testing.T) {
	tests := []struct {
		name       string
		event      string
		graphDrops bool // Graph removed our subscription before notifying
		otherID    bool // the notification names another subscription
		wantReauth int
		wantNewID  bool
		wantPosts  int // POST /v1.0/subscriptions after the first Ensure (creation and reauthorize)
	}{
		{"reauthorizationRequired reauthorizes", "reauthorizationRequired", false, false, 1, false, 1},
		{"subscriptionRemoved creates it again", "subscriptionRemoved", true, false, 0, true, 1},
		{"subscriptionRemoved of another subscription keeps ours", "subscriptionRemoved", false, true, 0, false, 0},
		{"missed checks the subscription", "missed", false, false, 0, false, 0},
		{"missed after Graph dropped it creates it again", "missed", true, false, 0, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			st := &store{}
			s := e.subscriptions(t, st, nil)
			ensure(t, s)
			id := s.ID()
			if tt.graphDrops {
				e.fake.DeleteSubscription(id)
			}
			posts := e.count(http.MethodPost)
			named := id
			if tt.otherID {
				named = "dddddddd-0000-0000-0000-000000000001"
			}
			if err := s.Lifecycle(context.Background(), tt.event, named); err != nil {
				t.Fatalf("Lifecycle: %v", err)
			}
			if n := e.fake.Reauthorizations(id); n != tt.wantReauth {
				t.Errorf("%d reauthorize calls, want %d", n, tt.wantReauth)
			}
			if n := e.count(http.MethodPost) - posts; n != tt.wantPosts {
				t.Errorf("%d POSTs, want %d", n, tt.wantPosts)
			}
			subs := e.fake.Subscriptions()
			if len(subs) != 1 || subs[0].ID != s.ID() || (s.ID() != id) != tt.wantNewID {
				t.Errorf("after %s: ours %q (was %q), Graph has %+v", tt.event, s.ID(), id, subs)
			}
			if st.id != s.ID() {
				t.Errorf("stored id %q, want %q", st.id, s.ID())
			}
		})
	}
}
