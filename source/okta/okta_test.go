package okta

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/internal/testsupport/oktafake"
	"github.com/byob-agent/byob-agent/source"
)

const (
	apiToken = "00SSWS-secret-api-token"
	clientID = "0oaagentclient"
	keyID    = "kid-1"
)

// Keys are generated once: RSA generation is slow, especially under -race.
var (
	testKey  = sync.OnceValue(func() *rsa.PrivateKey { return genKey(2048) })
	otherKey = sync.OnceValue(func() *rsa.PrivateKey { return genKey(2048) })
)

func genKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func pkcs8PEM(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// clock is the shared fake time: the fake Okta reads it, and the client's injected Sleep advances it.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

type env struct {
	fake  *oktafake.Server
	clock *clock
}

// newEnv starts a fake org at the start of a minute (so rate-limit windows are predictable), seeded with
// the groups and users below, an API token and an OAuth client.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fake: oktafake.New(), clock: &clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}}
	t.Cleanup(e.fake.Close)
	e.fake.SetNow(e.clock.Now)
	e.fake.AddAPIToken(apiToken)
	e.fake.AddClient(clientID, &testKey().PublicKey, keyID, "okta.groups.read", "okta.users.read")
	for _, g := range []oktafake.Group{
		{ID: "00g001", Name: "wandb-ml"},
		{ID: "00g002", Name: "WANDB-infra", Type: "APP_GROUP"},
		{ID: "00g003", Name: "Engineering"},
		{ID: "00g004", Name: "wandb-empty"},
	} {
		e.fake.AddGroup(g)
	}
	for _, u := range []oktafake.User{
		{ID: "00u1", Login: "alice@example.com", Email: "Alice@Example.com"},
		{ID: "00u2", Login: "bob", Email: "bob@example.com"},
		{ID: "00u3", Login: "Carol@Example.COM"}, // no email: the login is one
		{ID: "00u4", Login: "dave@example.com", Email: "dave@example.com", Status: "DEPROVISIONED"},
		{ID: "00u5", Login: "erin"}, // no email at all: skipped
		{ID: "00u6", Login: "alice2@example.com", Email: "ALICE@example.com"},
		{ID: "00u7", Login: "frank@example.com", Email: "frank@example.com", Status: "SUSPENDED"},
		{ID: "00u8", Login: "gina@example.com", Email: "not an email"},
	} {
		e.fake.AddUser(u)
	}
	for _, u := range []string{"00u1", "00u2", "00u3", "00u4", "00u5", "00u6", "00u7", "00u8"} {
		e.fake.AddMember("00g001", u)
	}
	for _, u := range []string{"00u2", "00u7"} {
		e.fake.AddMember("00g002", u)
		e.fake.AddMember("00g003", u)
	}
	return e
}

var (
	wantML    = source.Group{ID: "00g001", Name: "wandb-ml", Members: []string{"alice@example.com", "bob@example.com", "carol@example.com", "frank@example.com", "gina@example.com"}}
	wantInfra = source.Group{ID: "00g002", Name: "WANDB-infra", Members: []string{"bob@example.com", "frank@example.com"}}
	wantEng   = source.Group{ID: "00g003", Name: "Engineering", Members: []string{"bob@example.com", "frank@example.com"}}
	wantEmpty = source.Group{ID: "00g004", Name: "wandb-empty"}
)

type auth int

const (
	ssws auth = iota
	oauth
)

func (e *env) source(t *testing.T, a auth, mod func(*Options)) *Source {
	t.Helper()
	o := Options{OrgURL: e.fake.URL, HTTPClient: e.fake.Client(), Sleep: e.clock.Sleep, Now: e.clock.Now}
	if a == ssws {
		o.APIToken = apiToken
	} else {
		o.ClientID, o.PrivateKeyPEM, o.KeyID = clientID, pkcs8PEM(t, testKey()), keyID
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGroups(t *testing.T) {
	tests := []struct {
		name     string
		auth     auth
		search   string
		filter   string
		pageSize int
		want     []source.Group
	}{
		{name: "all groups, API token, one page each", auth: ssws, want: []source.Group{wantML, wantInfra, wantEng, wantEmpty}},
		{name: "all groups, OAuth, two per page", auth: oauth, pageSize: 2, want: []source.Group{wantML, wantInfra, wantEng, wantEmpty}},
		{name: "search, one per page", auth: ssws, search: `profile.name sw "wandb-"`, pageSize: 1, want: []source.Group{wantML, wantInfra, wantEmpty}},
		{name: "search with or", auth: oauth, search: `profile.name eq "Engineering" or profile.name eq "wandb-ml"`, pageSize: 1, want: []source.Group{wantML, wantEng}},
		{name: "filter", auth: ssws, filter: `type eq "APP_GROUP"`, pageSize: 1, want: []source.Group{wantInfra}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetPageSize(tt.pageSize)
			s := e.source(t, tt.auth, func(o *Options) { o.Search, o.Filter = tt.search, tt.filter })
			got, err := s.Groups(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Groups =\n%v\nwant\n%v", got, tt.want)
			}
			var pages int
			for _, r := range e.fake.Requests() {
				if !strings.Contains(r, "limit=200") {
					t.Errorf("request %s does not ask for 200 a page", r)
				}
				if strings.Contains(r, "after=") {
					pages++
				}
			}
			if tt.pageSize > 0 && pages == 0 {
				t.Error("no request followed a next link")
			}
		})
	}
}

func TestGroupsManyPages(t *testing.T) {
	e := newEnv(t)
	for i := range 450 {
		e.fake.AddGroup(oktafake.Group{ID: fmt.Sprintf("00gx%04d", i), Name: fmt.Sprintf("wandb-bulk-%d", i)})
	}
	s := e.source(t, ssws, func(o *Options) { o.Search = `profile.name sw "wandb-bulk"` })
	got, err := s.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 450 {
		t.Fatalf("got %d groups, want 450", len(got))
	}
	var listings int
	for _, r := range e.fake.Requests() {
		if strings.HasPrefix(r, "/api/v1/groups?") {
			listings++
		}
	}
	if listings != 3 {
		t.Errorf("%d listing pages, want 3 of at most 200", listings)
	}
}

func TestRateLimitMidListing(t *testing.T) {
	e := newEnv(t)
	e.fake.SetPageSize(1)
	e.fake.SetRateLimit(3) // the 4th request of each minute gets a 429
	// The client's clock is an hour off: the wait must come from Okta's Date header, not the local clock.
	s := e.source(t, ssws, func(o *Options) { o.Now = func() time.Time { return e.clock.Now().Add(time.Hour) } })
	got, err := s.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []source.Group{wantML, wantInfra, wantEng, wantEmpty}; !reflect.DeepEqual(got, want) {
		t.Errorf("Groups =\n%v\nwant\n%v", got, want)
	}
	slept := e.clock.Slept()
	if len(slept) == 0 {
		t.Fatal("never waited for the rate limit")
	}
	for _, d := range slept {
		if d != time.Minute { // each 429 comes at the start of a window, which resets a minute later
			t.Errorf("waited %v, want 1m (until X-Rate-Limit-Reset)", d)
		}
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(e *env)
		maxWait    time.Duration
		wantErr    string // empty: success
		wantStatus int
		wantSlept  []time.Duration
	}{
		{name: "5xx backs off and succeeds", setup: func(e *env) { e.fake.FailNext(503, 500) },
			wantSlept: []time.Duration{500 * time.Millisecond, time.Second}},
		{name: "5xx until giving up", setup: func(e *env) { e.fake.FailNext(500, 500, 500, 500, 500) },
			wantErr: "giving up after 5 attempts", wantStatus: 500,
			wantSlept: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}},
		{name: "backoff capped by MaxWait", setup: func(e *env) { e.fake.FailNext(502, 502, 502) }, maxWait: 700 * time.Millisecond,
			wantSlept: []time.Duration{500 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond}},
		{name: "rate-limit wait capped, then giving up", setup: func(e *env) { e.fake.SetRateLimit(1) }, maxWait: 5 * time.Second,
			wantErr: "rate limit resets at 2026-03-02T10:01:00Z", wantStatus: 429,
			wantSlept: []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(e)
			s := e.source(t, ssws, func(o *Options) { o.MaxWait = tt.maxWait })
			s.policy.Jitter = retry.Jitter{} // the schedule, without the jitter TestBackoffJitters checks
			_, err := s.Groups(t.Context())
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				var ae *APIError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ae) || ae.Status != tt.wantStatus {
					t.Fatalf("err = %v, want HTTP %d and %q", err, tt.wantStatus, tt.wantErr)
				}
			}
			if got := e.clock.Slept(); !reflect.DeepEqual(got, tt.wantSlept) {
				t.Errorf("slept %v, want %v", got, tt.wantSlept)
			}
		})
	}
}

// TestBackoffJitters: 5xx backoff is fully jittered, each wait within [0, the exponential schedule].
func TestBackoffJitters(t *testing.T) {
	e := newEnv(t)
	e.fake.FailNext(500, 500, 500, 500)
	s := e.source(t, ssws, nil)
	s.policy.Rand = mrand.New(mrand.NewPCG(1, 2))
	if _, err := s.Groups(t.Context()); err != nil {
		t.Fatal(err)
	}
	slept := e.clock.Slept()
	if len(slept) != 4 {
		t.Fatalf("slept %v, want 4 waits", slept)
	}
	exact := true
	for i, d := range slept {
		ceil := 500 * time.Millisecond << i
		if d < 0 || d > ceil {
			t.Errorf("wait %d = %v, want within [0, %v]", i, d, ceil)
		}
		exact = exact && d == ceil
	}
	if exact {
		t.Errorf("slept %v: no jitter", slept)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	e := newEnv(t)
	s := e.source(t, ssws, func(o *Options) { o.Search = `profile.name zz "x"` })
	_, err := s.Groups(t.Context())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "E0000031" {
		t.Fatalf("err = %v, want 400 E0000031", err)
	}
	if n := len(e.fake.Requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestCancelDuringRateLimitWait(t *testing.T) {
	e := newEnv(t)
	e.fake.SetRateLimit(0) // every request is throttled, and the fake clock never reaches the reset
	s := e.source(t, ssws, func(o *Options) { o.Sleep = nil })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Groups(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to notice the cancellation", d)
	}
}

func TestGroup(t *testing.T) {
	tests := []struct {
		name      string
		auth      auth
		search    string
		filter    string
		id        string
		remove    bool
		want      source.Group
		wantFound bool
		wantErr   string
	}{
		{name: "found", auth: ssws, id: "00g001", want: wantML, wantFound: true},
		{name: "found with OAuth", auth: oauth, id: "00g002", want: wantInfra, wantFound: true},
		{name: "not found", auth: ssws, id: "00g999"},
		{name: "deleted", auth: ssws, id: "00g001", remove: true},
		{name: "selected by search", auth: ssws, search: `profile.name sw "wandb-"`, id: "00g001", want: wantML, wantFound: true},
		{name: "not selected by search", auth: ssws, search: `profile.name sw "wandb-"`, id: "00g003"},
		{name: "selected by search with or", auth: ssws, search: `profile.name eq "wandb-ml" or profile.name eq "Engineering"`, id: "00g003", want: wantEng, wantFound: true},
		{name: "not selected by search with or", auth: ssws, search: `profile.name eq "wandb-ml" or profile.name eq "Engineering"`, id: "00g002"},
		{name: "selected by filter", auth: oauth, filter: `type eq "APP_GROUP"`, id: "00g002", want: wantInfra, wantFound: true},
		{name: "not selected by filter", auth: ssws, filter: `type eq "APP_GROUP"`, id: "00g001"},
		{name: "invalid id", auth: ssws, id: `00g" or id sw "`, wantErr: "not an Okta group id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetPageSize(1)
			if tt.remove {
				e.fake.RemoveGroup(tt.id)
			}
			s := e.source(t, tt.auth, func(o *Options) { o.Search, o.Filter = tt.search, tt.filter })
			got, found, err := s.Group(t.Context(), tt.id)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.wantFound || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Group = %v, %v; want %v, %v", got, found, tt.want, tt.wantFound)
			}
			// The selection is asked as one expression, parenthesised so that its own `or` keeps its meaning.
			param, expr := "search", tt.search
			if tt.filter != "" {
				param, expr = "filter", tt.filter
			}
			if expr != "" {
				r := e.fake.Requests()[0]
				q, err := url.ParseQuery(r[strings.Index(r, "?")+1:])
				if want := "(" + expr + `) and id eq "` + tt.id + `"`; err != nil || q.Get(param) != want {
					t.Errorf("first request %s, want %s=%s", r, param, want)
				}
			}
		})
	}
}

func TestAuthFailures(t *testing.T) {
	tests := []struct {
		name     string
		opts     func(o *Options)
		setup    func(f *oktafake.Server)
		wantCode string
		status   int
		wantText string // what the error must tell the admin
	}{
		{name: "wrong API token", opts: func(o *Options) { o.APIToken = "00SSWS-wrong-secret" }, status: 401, wantCode: "E0000011", wantText: "check the API token"},
		{name: "key not registered", opts: func(o *Options) {
			o.ClientID, o.PrivateKeyPEM = clientID, pkcs8PEM(t, otherKey())
		}, status: 401, wantCode: "invalid_client", wantText: "registered public key"},
		{name: "unknown client", opts: func(o *Options) {
			o.ClientID, o.PrivateKeyPEM = "0oaunknown", pkcs8PEM(t, testKey())
		}, status: 401, wantCode: "invalid_client"},
		{name: "wrong kid", opts: func(o *Options) {
			o.ClientID, o.PrivateKeyPEM, o.KeyID = clientID, pkcs8PEM(t, testKey()), "kid-other"
		}, status: 401, wantCode: "invalid_client"},
		{name: "okta.groups.read not granted", opts: func(o *Options) {
			o.ClientID, o.PrivateKeyPEM = "0oausersonly", pkcs8PEM(t, testKey())
		}, status: 400, wantCode: "invalid_scope", wantText: "requests only the scope okta.groups.read: grant it"},
		{name: "no admin role", opts: func(o *Options) {
			o.ClientID, o.PrivateKeyPEM, o.KeyID = clientID, pkcs8PEM(t, testKey()), keyID
		}, setup: func(f *oktafake.Server) { f.SetAdminRole(clientID, false) },
			status: 403, wantCode: "E0000006", wantText: "an admin role assigned (Admin roles tab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.AddClient("0oausersonly", &testKey().PublicKey, "", "okta.users.read")
			if tt.setup != nil {
				tt.setup(e.fake)
			}
			o := Options{OrgURL: e.fake.URL, HTTPClient: e.fake.Client(), Sleep: e.clock.Sleep, Now: e.clock.Now}
			tt.opts(&o)
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Groups(t.Context())
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.wantCode {
				t.Fatalf("err = %v, want %d %s", err, tt.status, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("err = %v, want it to say %q", err, tt.wantText)
			}
			assertNoSecrets(t, err.Error(), o)
			if len(e.clock.Slept()) != 0 || e.fake.TokenRequests() > 1 {
				t.Error("retried an authentication failure")
			}
		})
	}
}

// TestLeastScope: a service app granted only okta.groups.read reads groups and their members, because
// that is all the agent asks for (the fake refuses a token request naming a scope not granted).
func TestLeastScope(t *testing.T) {
	e := newEnv(t)
	e.fake.AddClient("0oagroupsonly", &testKey().PublicKey, "", "okta.groups.read")
	s := e.source(t, oauth, func(o *Options) { o.ClientID, o.KeyID = "0oagroupsonly", "" })
	got, err := s.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !slices.Equal(got[0].Members, wantML.Members) {
		t.Errorf("groups = %v, want %v first", got, wantML)
	}
}

// assertNoSecrets fails if msg quotes the token or any line of the key.
func assertNoSecrets(t *testing.T, msg string, o Options) {
	t.Helper()
	if o.APIToken != "" && strings.Contains(msg, o.APIToken) {
		t.Errorf("error quotes the API token: %s", msg)
	}
	for line := range strings.SplitSeq(string(o.PrivateKeyPEM), "\n") {
		if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
			t.Errorf("error quotes the private key: %s", msg)
		}
	}
}

func TestOAuthTokenCache(t *testing.T) {
	e := newEnv(t)
	s := e.source(t, oauth, nil)
	groups := func() {
		t.Helper()
		if _, err := s.Groups(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	groups()
	groups()
	if n := e.fake.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests for two listings, want 1 (cached)", n)
	}
	e.clock.Advance(59*time.Minute + time.Second) // within the last minute of the hour-long token
	groups()
	if n := e.fake.TokenRequests(); n != 2 {
		t.Fatalf("%d token requests, want a refresh before expiry", n)
	}
	e.fake.RevokeAccessTokens()
	groups()
	if n := e.fake.TokenRequests(); n != 3 {
		t.Fatalf("%d token requests, want a fresh token after a 401", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	s := e.source(t, oauth, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := s.Groups(t.Context()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.fake.TokenRequests(); n != 1 {
		t.Errorf("%d token requests from concurrent callers, want 1", n)
	}
}

func TestNextLinkToAnotherHost(t *testing.T) {
	e := newEnv(t)
	e.fake.SetPageSize(1)
	e.fake.SetLinkBase("https://collector.example.net")
	s := e.source(t, ssws, nil)
	_, err := s.Groups(t.Context())
	if err == nil || !strings.Contains(err.Error(), `refusing okta's next link to "https://collector.example.net"`) {
		t.Fatalf("err = %v, want the next link refused", err)
	}
}

func TestNew(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	smallKey := genKey(1024)
	garbage := []byte("-----BEGIN PRIVATE KEY-----\nU0VDUkVUS0VZTUFURVJJQUxTRUNSRVRLRVlNQVRFUklBTA==\n-----END PRIVATE KEY-----\n")
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKey())})
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{name: "API token", o: Options{OrgURL: "https://acme.okta.com/", APIToken: apiToken}},
		{name: "OAuth PKCS#1", o: Options{OrgURL: "https://acme.okta.com", ClientID: clientID, PrivateKeyPEM: pkcs1}},
		{name: "OAuth PKCS#8", o: Options{OrgURL: "https://acme.okta.com", ClientID: clientID, PrivateKeyPEM: pkcs8PEM(t, testKey()), KeyID: keyID}},
		{name: "no org", o: Options{APIToken: apiToken}, wantErr: "org URL: missing"},
		{name: "http", o: Options{OrgURL: "http://acme.okta.com", APIToken: apiToken}, wantErr: "must be https"},
		{name: "path", o: Options{OrgURL: "https://acme.okta.com/oauth2/default", APIToken: apiToken}, wantErr: "without path"},
		{name: "admin URL", o: Options{OrgURL: "https://acme-admin.okta.com", APIToken: apiToken}, wantErr: "not the admin console"},
		{name: "no credentials", o: Options{OrgURL: "https://acme.okta.com"}, wantErr: "set an API token, or a client id"},
		{name: "both credentials", o: Options{OrgURL: "https://acme.okta.com", APIToken: apiToken, ClientID: clientID}, wantErr: "not both"},
		{name: "key without client", o: Options{OrgURL: "https://acme.okta.com", PrivateKeyPEM: pkcs1}, wantErr: "set an API token, or a client id"},
		{name: "token with space", o: Options{OrgURL: "https://acme.okta.com", APIToken: "00SSWS secret"}, wantErr: "characters a header cannot carry"},
		{name: "search and filter", o: Options{OrgURL: "https://acme.okta.com", APIToken: apiToken, Search: "a", Filter: "b"}, wantErr: "search or filter, not both"},
		{name: "negative MaxWait", o: Options{OrgURL: "https://acme.okta.com", APIToken: apiToken, MaxWait: -1}, wantErr: "MaxWait"},
		{name: "not PEM", o: Options{OrgURL: "https://acme.okta.com", ClientID: clientID, PrivateKeyPEM: []byte("SECRETKEYMATERIAL")}, wantErr: "no PEM block"},
		{name: "corrupt key", o: Options{OrgURL: "https://acme.okta.com", ClientID: clientID, PrivateKeyPEM: garbage}, wantErr: "not a valid PKCS#8"},
		{name: "EC key", o: Options{OrgURL: "https://acme.okta.com", ClientID: clientID, PrivateKeyPEM: pkcs8PEM(t, ecKey)}, wantErr: "needs an RSA key"},
		{name: "small key", o: Options{OrgURL: "https://acme.okta.com", ClientID: clientID, PrivateKeyPEM: pkcs8PEM(t, smallKey)}, wantErr: "at least 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			assertNoSecrets(t, err.Error(), tt.o)
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "secret") {
				t.Errorf("error quotes secret material: %v", err)
			}
		})
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{name: "Okta: one link per header", values: []string{`<https://o/api/v1/groups?limit=2>; rel="self"`, `<https://o/api/v1/groups?after=00g2&limit=2>; rel="next"`}, want: "https://o/api/v1/groups?after=00g2&limit=2"},
		{name: "last page", values: []string{`<https://o/api/v1/groups?limit=2>; rel="self"`}},
		{name: "several in one value", values: []string{`<https://o/a>; rel="self", <https://o/b>; rel="next"`}, want: "https://o/b"},
		{name: "unquoted, mixed case, several rels", values: []string{`<https://o/b>; title="x, y"; REL=Next`}, want: "https://o/b"},
		{name: "rel list", values: []string{`<https://o/b>; rel="prefetch next"`}, want: "https://o/b"},
		{name: "quoted comma before next link", values: []string{`<https://o/a>; title="a, <https://evil/>; rel=next"; rel="self"`}},
		{name: "garbage", values: []string{`https://o/b; rel="next"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := nextLink(tt.values)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("nextLink = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}
