package entra

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/internal/testsupport/graphfake"
	"github.com/byob-agent/byob-agent/source"
)

const (
	tenant   = "contoso.onmicrosoft.com"
	clientID = "0b7c6f2e-1111-4a4a-9c9c-000000000001"
	secret   = "Zq8~client-secret-value.DO-NOT-LEAK"

	gML       = "aaaaaaaa-0000-0000-0000-000000000001" // wandb-ml: alice, bob, nested contractors
	gVision   = "aaaaaaaa-0000-0000-0000-000000000002" // wandb-vision: UPN fallback, guest, mixed case
	gEmpty    = "aaaaaaaa-0000-0000-0000-000000000003" // WANDB-empty: no members
	gNested   = "aaaaaaaa-0000-0000-0000-000000000004" // contractors (not selected): carol, alice, contact, device
	gOther    = "aaaaaaaa-0000-0000-0000-000000000005" // other-team (not selected)
	gMissing  = "aaaaaaaa-0000-0000-0000-0000000000ff"
	uAlice    = "bbbbbbbb-0000-0000-0000-000000000001"
	uBob      = "bbbbbbbb-0000-0000-0000-000000000002"
	uCarol    = "bbbbbbbb-0000-0000-0000-000000000003"
	uDave     = "bbbbbbbb-0000-0000-0000-000000000004"
	uEve      = "bbbbbbbb-0000-0000-0000-000000000005"
	uFrank    = "bbbbbbbb-0000-0000-0000-000000000006"
	uNoMail   = "bbbbbbbb-0000-0000-0000-000000000007"
	uGrace    = "bbbbbbbb-0000-0000-0000-000000000008" // disabled (accountEnabled false): in wandb-vision and contractors
	oContact  = "cccccccc-0000-0000-0000-000000000001"
	oDevice   = "cccccccc-0000-0000-0000-000000000002"
	wandbOnly = "startswith(displayName,'wandb-')"
)

// clock is a fake time source; sleeping on it advances it and records the wait.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}

func (c *clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

type env struct {
	fake  *graphfake.Fake
	srv   *httptest.Server
	clock *clock

	mu      sync.Mutex
	handler http.Handler // what srv serves: the fake, or a test's wrapper of it
}

// serve replaces what the server answers with.
func (e *env) serve(h http.Handler) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.handler = h
}

// newEnv starts a fake tenant holding the groups described next to the constants, two per page.
func newEnv(t *testing.T) *env {
	t.Helper()
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := graphfake.New(graphfake.Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret, PageSize: 2, Now: c.Now})
	f.AddUser(uAlice, "Alice@Contoso.com", "alice@contoso.com")
	f.AddUser(uBob, "bob@contoso.com", "bob@contoso.com")
	f.AddUser(uCarol, "carol@partner.example", "carol@contoso.com")
	f.AddUser(uDave, "", "Dave@Contoso.com")
	f.AddUser(uEve, "", "eve_partner.example#EXT#@contoso.onmicrosoft.com")
	f.AddUser(uFrank, "Frank@Contoso.COM", "frank@contoso.com")
	f.AddUser(uNoMail, "", "service-account") // neither is an address
	f.AddUser(uGrace, "grace@contoso.com", "grace@contoso.com")
	f.SetAccountEnabled(uGrace, false)
	f.AddObject(oContact, "#microsoft.graph.orgContact", "vendor@example.org")
	f.AddObject(oDevice, "#microsoft.graph.device", "")
	f.AddGroup(gML, "wandb-ml", "wandb-ml@contoso.com", uAlice, uBob, gNested)
	f.AddGroup(gNested, "contractors", "contractors@contoso.com", uCarol, uAlice, oContact, oDevice, uGrace)
	f.AddGroup(gVision, "wandb-vision", "", uDave, uEve, uFrank, uNoMail, uGrace)
	f.AddGroup(gEmpty, "WANDB-empty", "")
	f.AddGroup(gOther, "other-team", "", uBob)
	e := &env{fake: f, clock: c, handler: f}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		h := e.handler
		e.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// source returns a client of the fake; edit adjusts the options first.
func (e *env) source(t *testing.T, edit func(*Options)) *Source {
	t.Helper()
	o := Options{
		TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		AuthorityURL: e.srv.URL, GraphURL: e.srv.URL, Filter: wandbOnly,
		HTTPClient: e.srv.Client(), Sleep: e.clock.Sleep, Now: e.clock.Now, MaxWait: 5 * time.Second,
	}
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

var (
	wantML     = source.Group{ID: gML, Name: "wandb-ml", Members: []string{"alice@contoso.com", "bob@contoso.com", "carol@partner.example"}}
	wantVision = source.Group{ID: gVision, Name: "wandb-vision", Members: []string{"dave@contoso.com", "frank@contoso.com"}}
	wantEmpty  = source.Group{ID: gEmpty, Name: "WANDB-empty", Members: []string{}}
)

func equalGroups(a, b []source.Group) bool {
	return slices.EqualFunc(a, b, func(x, y source.Group) bool {
		return x.ID == y.ID && x.Name == y.Name && slices.Equal(x.Members, y.Members)
	})
}

func TestGroups(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want []source.Group
	}{
		{"filter, multi-page groups and members, nested flattened", nil, []source.Group{wantML, wantVision, wantEmpty}},
		{"explicit ids, a missing one left out", func(o *Options) {
			o.Filter = ""
			o.GroupIDs = []string{gVision, strings.ToUpper(gML), gMissing, gML}
		}, []source.Group{wantML, wantVision}},
		{"eq filter", func(o *Options) { o.Filter = "displayName eq 'WANDB-ML'" }, []source.Group{wantML}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			got, err := e.source(t, tt.edit).Groups(context.Background())
			if err != nil {
				t.Fatalf("Groups: %v", err)
			}
			if !equalGroups(got, tt.want) {
				t.Errorf("Groups =\n%v\nwant\n%v", got, tt.want)
			}
			pages := 0
			for _, r := range e.fake.Requests() {
				if r.ConsistencyLevel != "" {
					t.Errorf("%s %s sent ConsistencyLevel %q: default queries are strongly consistent", r.Method, r.Path, r.ConsistencyLevel)
				}
				if r.Query.Has("$skiptoken") {
					pages++
				}
				if strings.HasSuffix(r.Path, "/transitiveMembers") && r.Query.Get("$top") != "999" {
					t.Errorf("members listed with $top %q, want 999", r.Query.Get("$top"))
				}
			}
			if pages == 0 {
				t.Error("no next page was followed; the test data should span pages")
			}
		})
	}
}

func TestGroup(t *testing.T) {
	ids := func(o *Options) { o.Filter, o.GroupIDs = "", []string{gML, gMissing} }
	tests := []struct {
		name      string
		edit      func(*Options)
		id        string
		want      source.Group
		wantFound bool
	}{
		{"filter: selected", nil, gML, wantML, true},
		{"filter: upper-case id", nil, strings.ToUpper(gVision), wantVision, true},
		{"filter: exists but not selected", nil, gOther, source.Group{}, false},
		{"filter: does not exist", nil, gMissing, source.Group{}, false},
		{"filter: not an object id", nil, "wandb-ml", source.Group{}, false},
		{"ids: listed", ids, gML, wantML, true},
		{"ids: exists but not listed", ids, gVision, source.Group{}, false},
		{"ids: listed but deleted", ids, gMissing, source.Group{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			got, found, err := e.source(t, tt.edit).Group(context.Background(), tt.id)
			if err != nil {
				t.Fatalf("Group: %v", err)
			}
			if found != tt.wantFound || (found && !equalGroups([]source.Group{got}, []source.Group{tt.want})) {
				t.Errorf("Group(%s) = %v, %v; want %v, %v", tt.id, got, found, tt.want, tt.wantFound)
			}
		})
	}
}

func TestThrottlingMidListing(t *testing.T) {
	tests := []struct {
		name      string
		throttle  graphfake.Throttle
		wantSleep []time.Duration
	}{
		{"429 with Retry-After on a members page", graphfake.Throttle{Path: "/transitiveMembers", NextPagesOnly: true, RetryAfter: "3"}, []time.Duration{3 * time.Second}},
		{"429 twice on a groups page", graphfake.Throttle{Path: "/v1.0/groups", NextPagesOnly: true, Times: 2, RetryAfter: "1"}, []time.Duration{time.Second, time.Second}},
		{"503 with Retry-After", graphfake.Throttle{Path: "/transitiveMembers", NextPagesOnly: true, Status: http.StatusServiceUnavailable, RetryAfter: "2"}, []time.Duration{2 * time.Second}},
		{"429 without Retry-After backs off", graphfake.Throttle{NextPagesOnly: true, Times: 2}, []time.Duration{time.Second, 2 * time.Second}},
		{"a long Retry-After is capped at MaxWait", graphfake.Throttle{NextPagesOnly: true, RetryAfter: "600"}, []time.Duration{5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.Throttle(tt.throttle)
			s := e.source(t, nil)
			s.policy.Jitter = retry.Jitter{} // the schedule, without the jitter TestTransportErrorsRetried sees
			got, err := s.Groups(context.Background())
			if err != nil {
				t.Fatalf("Groups: %v", err)
			}
			if !equalGroups(got, []source.Group{wantML, wantVision, wantEmpty}) {
				t.Errorf("Groups after throttling = %v", got)
			}
			if s := e.clock.Sleeps(); !slices.Equal(s, tt.wantSleep) {
				t.Errorf("slept %v, want %v", s, tt.wantSleep)
			}
		})
	}
}

func TestThrottlingGivesUp(t *testing.T) {
	e := newEnv(t)
	e.fake.Throttle(graphfake.Throttle{Path: "/v1.0/groups", Times: 100, RetryAfter: "1"})
	_, err := e.source(t, nil).Groups(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 429 TooManyRequests") {
		t.Fatalf("Groups under endless throttling: %v, want an HTTP 429 error", err)
	}
	if n := len(e.clock.Sleeps()); n != maxRetries {
		t.Errorf("waited %d times, want %d", n, maxRetries)
	}
}

func TestThrottlingWaitEndsWithContext(t *testing.T) {
	e := newEnv(t)
	e.fake.Throttle(graphfake.Throttle{Path: "/v1.0/groups", RetryAfter: "30"})
	s := e.source(t, func(o *Options) { o.Sleep, o.MaxWait = nil, time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Groups(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Groups = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the wait ignored the context: took %v", d)
	}
}

func TestAuthFailures(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*Options)
		setup    func(*graphfake.Fake)
		wantText []string
	}{
		{"wrong client secret", func(o *Options) { o.ClientSecret = "wrong-" + secret }, nil, []string{"HTTP 401 invalid_client", "AADSTS7000215", clientID, tenant}},
		{"unknown client", func(o *Options) { o.ClientID = "99999999-0000-0000-0000-000000000000" }, nil, []string{"unauthorized_client", "AADSTS700016"}},
		{"unknown tenant", func(o *Options) { o.TenantID = "fabrikam.onmicrosoft.com" }, nil, []string{"AADSTS90002", "fabrikam"}},
		{"no permission at all", nil, func(f *graphfake.Fake) { f.SetPermissions() }, []string{"HTTP 403 Authorization_RequestDenied", "GroupMember.Read.All", "request-id"}},
		{"no group permission", nil, func(f *graphfake.Fake) { f.SetPermissions(graphfake.UserReadAll) }, []string{"HTTP 403 Authorization_RequestDenied", "GroupMember.Read.All"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e.fake)
			}
			_, err := e.source(t, tt.edit).Groups(context.Background())
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("Groups = %v, want ErrAuth", err)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Trace ID") {
				t.Errorf("error %q quotes Entra's trace lines", err)
			}
			assertNoSecret(t, err.Error())
		})
	}
}

// assertNoSecret fails when text holds the client secret.
func assertNoSecret(t *testing.T, text string) {
	t.Helper()
	if strings.Contains(text, secret) || strings.Contains(text, "DO-NOT-LEAK") {
		t.Errorf("%q contains the client secret", text)
	}
}

// TestSecretsRedacted makes the vendor echo the secret and the token in its error messages.
func TestSecretsRedacted(t *testing.T) {
	var token string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /t/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.PostForm.Get("client_secret") != secret {
			t.Errorf("token request without the secret")
		}
		token = "tok-" + strings.Repeat("x", 40)
		_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": token})
	})
	mux.HandleFunc("GET /v1.0/groups", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"code": "BadRequest", "message": "echo " + r.Header.Get("Authorization") + " and " + secret}})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s, err := New(Options{TenantID: "t", ClientID: "c", ClientSecret: secret, AuthorityURL: srv.URL, GraphURL: srv.URL, Filter: wandbOnly})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Groups(context.Background())
	if err == nil {
		t.Fatal("Groups succeeded on a 400")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), token) {
		t.Errorf("error leaks a secret: %q", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q: want the echoed secrets replaced", err)
	}
}

func TestTokenCache(t *testing.T) {
	e := newEnv(t)
	s := e.source(t, nil)
	ctx := context.Background()
	steps := []struct {
		name       string
		before     func()
		wantTokens int
	}{
		{"first read fetches a token", nil, 1},
		{"the token is reused", nil, 1},
		{"still reused 50 minutes later", func() { e.clock.Advance(50 * time.Minute) }, 1},
		{"renewed within 5 minutes of expiry", func() { e.clock.Advance(5 * time.Minute) }, 2},
		{"a revoked token is replaced once on 401", e.fake.RevokeTokens, 3},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		if _, err := s.Groups(ctx); err != nil {
			t.Fatalf("%s: Groups: %v", st.name, err)
		}
		if n := e.fake.TokenRequests(); n != st.wantTokens {
			t.Errorf("%s: %d token requests, want %d", st.name, n, st.wantTokens)
		}
	}
}

func TestAdvancedQueryFallback(t *testing.T) {
	e := newEnv(t)
	s := e.source(t, func(o *Options) { o.Filter = "endswith(displayName,'-ml') or displayName eq 'wandb-vision'" })
	for i := range 2 {
		got, err := s.Groups(context.Background())
		if err != nil {
			t.Fatalf("Groups #%d: %v", i, err)
		}
		if !equalGroups(got, []source.Group{wantML, wantVision}) {
			t.Errorf("Groups #%d = %v", i, got)
		}
	}
	var plain, advanced int
	for _, r := range e.fake.Requests() {
		if r.Path != "/v1.0/groups" {
			continue
		}
		if r.ConsistencyLevel == "eventual" && r.Query.Get("$count") == "true" {
			advanced++
		} else {
			plain++
		}
	}
	// One refused plain listing, then advanced listings only (pages of two groups: one page each).
	if plain != 1 || advanced != 2 {
		t.Errorf("group listings: %d plain, %d advanced; want 1 refused plain and 2 advanced", plain, advanced)
	}
	if _, found, err := s.Group(context.Background(), gML); err != nil || !found {
		t.Errorf("Group with an advanced filter = %v, %v", found, err)
	}
}

func TestBadNextLinkRefused(t *testing.T) {
	const refused = "refusing an @odata.nextLink"
	tests := []struct{ name, link, wantErr string }{
		{"other host", "http://graph.evil.example/v1.0/groups?$skiptoken=x", refused},
		{"other scheme", "https://HOST/v1.0/groups?$skiptoken=x", refused},
		{"dot segments", "http://HOST/v1.0/../../token", refused},
		{"with credentials", "http://user:pw@HOST/v1.0/groups", refused},
		{"the same page again", "http://HOST/v1.0/groups?%24filter=startswith%28displayName%2C%27wandb-%27%29&%24select=id%2CdisplayName&%24top=999", "repeats the page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var host string
			mux := http.NewServeMux()
			mux.HandleFunc("POST /t/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": "tok"})
			})
			mux.HandleFunc("GET /v1.0/groups", func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]any{"value": []any{}, "@odata.nextLink": strings.ReplaceAll(tt.link, "HOST", host)})
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			host = strings.TrimPrefix(srv.URL, "http://")
			s, err := New(Options{TenantID: "t", ClientID: "c", ClientSecret: "s", AuthorityURL: srv.URL, GraphURL: srv.URL, Filter: wandbOnly})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Groups(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Groups = %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q quotes the link's credentials", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	base := Options{TenantID: tenant, ClientID: clientID, ClientSecret: secret, Filter: wandbOnly}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"defaults", func(*Options) {}, ""},
		{"no tenant", func(o *Options) { o.TenantID = "" }, "tenant"},
		{"tenant with a slash", func(o *Options) { o.TenantID = "a/b" }, "tenant"},
		{"no client id", func(o *Options) { o.ClientID = "" }, "client id"},
		{"no secret", func(o *Options) { o.ClientSecret = "" }, "client secret"},
		{"no selection", func(o *Options) { o.Filter = "" }, "filter or a list"},
		{"both selections", func(o *Options) { o.GroupIDs = []string{gML} }, "not both"},
		{"bad group id", func(o *Options) { o.Filter, o.GroupIDs = "", []string{"wandb-ml"} }, "not an object id"},
		{"plain http Graph", func(o *Options) { o.GraphURL = "http://graph.microsoft.com" }, "https"},
		{"http on loopback", func(o *Options) { o.GraphURL, o.AuthorityURL = "http://127.0.0.1:1/", "http://localhost:2" }, ""},
		{"authority with a query", func(o *Options) { o.AuthorityURL = "https://login.example/?x=1" }, "base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.edit(&o)
			_, err := New(o)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New = %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	s := e.source(t, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Groups(context.Background()); err != nil {
				t.Errorf("Groups: %v", err)
			}
			if _, _, err := s.Group(context.Background(), gVision); err != nil {
				t.Errorf("Group: %v", err)
			}
		})
	}
	wg.Wait()
	if n := e.fake.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for concurrent readers, want 1", n)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		h       string
		attempt int
		want    time.Duration
	}{
		{"7", 0, 7 * time.Second},
		{" 0 ", 3, 0},
		{"-5", 0, 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 0, 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, 0},
		{"", 0, time.Second},
		{"soon", 3, 8 * time.Second},
		{"", 60, time.Hour}, // capped at MaxWait
	}
	e := newEnv(t)
	s := e.source(t, func(o *Options) { o.MaxWait = time.Hour })
	p := s.policy
	p.Jitter, p.Attempts = retry.Jitter{}, 0 // the waits alone
	for _, tt := range tests {
		ask, asked := retry.ParseRetryAfter(tt.h, now)
		if got, _ := p.Delay(tt.attempt+1, ask, asked); got != tt.want {
			t.Errorf("retryAfter(%q, attempt %d) = %v, want %v", tt.h, tt.attempt, got, tt.want)
		}
	}
}

// TestTransportErrorsRetried: a broken answer is retried after a jittered backoff, like a 429 without
// Retry-After; a POST that creates a subscription is not, as it may have been done.
func TestTransportErrorsRetried(t *testing.T) {
	e := newEnv(t)
	var drops atomic.Int32
	// break answers n requests with method on path with bytes that are not HTTP; net/http does not
	// repeat such a request itself, as it may for a connection closed before any answer.
	breakAnswers := func(method, path string, n int32) {
		e.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == method && r.URL.Path == path && drops.Add(1) <= n {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_, _ = conn.Write([]byte("not HTTP\r\n\r\n"))
					conn.Close()
				}
				return
			}
			e.fake.ServeHTTP(w, r)
		}))
	}
	breakAnswers(http.MethodGet, "/v1.0/groups", 2)
	got, err := e.source(t, nil).Groups(context.Background())
	if err != nil {
		t.Fatalf("Groups after dropped connections: %v", err)
	}
	if !equalGroups(got, []source.Group{wantML, wantVision, wantEmpty}) {
		t.Errorf("Groups after dropped connections = %v", got)
	}
	sleeps := e.clock.Sleeps()
	if len(sleeps) != 2 || sleeps[0] > time.Second || sleeps[1] > 2*time.Second {
		t.Errorf("slept %v, want two full-jitter waits within 1 s and 2 s", sleeps)
	}

	drops.Store(0)
	breakAnswers(http.MethodPost, "/v1.0/subscriptions", 1)
	if err := e.subscriptions(t, nil, nil).Ensure(context.Background()); err == nil {
		t.Fatal("Ensure succeeded although its POST was dropped")
	}
	if n := drops.Load(); n != 1 {
		t.Errorf("%d POSTs to /v1.0/subscriptions, want 1 (not repeated)", n)
	}
}

func TestMemberEmail(t *testing.T) {
	tests := []struct {
		m    member
		want string
	}{
		{member{Type: "#microsoft.graph.user", Mail: " Alice@Contoso.COM ", UPN: "x@y.z"}, "alice@contoso.com"},
		{member{Type: "#microsoft.graph.user", UPN: "Bob@Contoso.com"}, "bob@contoso.com"},
		{member{Type: "#microsoft.graph.user", Mail: "not an address", UPN: "bob@contoso.com"}, "bob@contoso.com"},
		{member{Type: "#microsoft.graph.user", UPN: "eve_x.com#EXT#@contoso.onmicrosoft.com"}, ""},
		{member{Type: "#microsoft.graph.user", UPN: "svc"}, ""},
		{member{Type: "#microsoft.graph.user", Mail: "a@b@c.d"}, ""},
		{member{Type: "#microsoft.graph.user", Mail: "a@localhost"}, ""},
		{member{Type: "#microsoft.graph.group", Mail: "team@contoso.com"}, ""},
		{member{Type: "#microsoft.graph.orgContact", Mail: "v@example.org"}, ""},
		{member{Type: "#microsoft.graph.user", Mail: "g@contoso.com", UPN: "g@contoso.com", AccountEnabled: new(false)}, ""},
		{member{Type: "#microsoft.graph.user", Mail: "g@contoso.com", UPN: "g@contoso.com", AccountEnabled: new(true)}, "g@contoso.com"},
	}
	for _, tt := range tests {
		got, ok := tt.m.email()
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%+v.email() = %q, %v; want %q", tt.m, got, ok, tt.want)
		}
	}
}

// TestMemberDetailsNeedUserRead follows Graph's limited-information rule: without a permission to
// read users, every user member comes with @odata.type and id only. The reader must say which
// permission is missing instead of reading the groups as empty.
func TestMemberDetailsNeedUserRead(t *testing.T) {
	tests := []struct {
		name     string
		perms    []graphfake.Permission
		wantErr  string // "" when the groups read normally
		wantWhat string
	}{
		{"GroupMember.Read.All only", []graphfake.Permission{graphfake.GroupMemberReadAll}, "User.Read.All", "without userPrincipalName"},
		{"User.ReadBasic.All hides accountEnabled", []graphfake.Permission{graphfake.GroupMemberReadAll, graphfake.UserReadBasicAll}, "User.Read.All", "without accountEnabled"},
		{"GroupMember.Read.All and User.Read.All", []graphfake.Permission{graphfake.GroupMemberReadAll, graphfake.UserReadAll}, "", ""},
		{"Directory.Read.All", []graphfake.Permission{graphfake.DirectoryReadAll}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetPermissions(tt.perms...)
			src := e.source(t, nil)
			got, err := src.Groups(context.Background())
			_, _, oneErr := src.Group(context.Background(), gML)
			if tt.wantErr == "" {
				if err != nil || oneErr != nil {
					t.Fatalf("Groups = %v, Group = %v; want no error", err, oneErr)
				}
				if !equalGroups(got, []source.Group{wantML, wantVision, wantEmpty}) {
					t.Errorf("Groups = %v", got)
				}
				return
			}
			for _, err := range []error{err, oneErr} {
				if !errors.Is(err, ErrUserReadPermission) || !errors.Is(err, ErrAuth) {
					t.Fatalf("error %v, want ErrUserReadPermission and ErrAuth", err)
				}
				for _, w := range []string{tt.wantErr, tt.wantWhat, "wandb-ml"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			}
		})
	}
}

// TestContaining: the selected groups that hold a nested group are known from their last read, and
// follow changes to the nesting.
func TestContaining(t *testing.T) {
	e := newEnv(t)
	src := e.source(t, nil)
	if got := src.Containing(gNested); got != nil {
		t.Errorf("Containing before any read = %v", got)
	}
	if _, err := src.Groups(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		want []string
	}{
		{gNested, []string{gML}},
		{strings.ToUpper(gNested), []string{gML}},
		{gML, nil},
		{gOther, nil},
	}
	for _, tt := range tests {
		if got := src.Containing(tt.id); !slices.Equal(got, tt.want) {
			t.Errorf("Containing(%s) = %v, want %v", tt.id, got, tt.want)
		}
	}
	// contractors now also nests in wandb-vision; wandb-ml drops it. Re-reading each group updates it.
	e.fake.AddGroup(gVision, "wandb-vision", "", uDave, gNested)
	e.fake.AddGroup(gML, "wandb-ml", "wandb-ml@contoso.com", uAlice, uBob)
	if _, _, err := src.Group(context.Background(), gVision); err != nil {
		t.Fatal(err)
	}
	if got := src.Containing(gNested); !slices.Equal(got, []string{gML, gVision}) {
		t.Errorf("after re-reading wandb-vision: %v, want both", got)
	}
	if _, err := src.Groups(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := src.Containing(gNested); !slices.Equal(got, []string{gVision}) {
		t.Errorf("after a full read: %v, want wandb-vision only", got)
	}
	// A group that leaves the selection is forgotten.
	e.fake.AddGroup(gVision, "renamed", "", uDave, gNested)
	if _, found, err := src.Group(context.Background(), gVision); err != nil || found {
		t.Fatalf("Group(renamed) = %v, %v", found, err)
	}
	if got := src.Containing(gNested); got != nil {
		t.Errorf("after wandb-vision left the selection: %v", got)
	}
}
