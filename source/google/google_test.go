package google_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/directoryfake"
	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/source/google"
)

// seed fills a fake with a small directory:
//
//	wandb-empty     no members
//	wandb-ml        Alice (twice, in two cases), Bob, a CUSTOMER member, and the nested group eng-core
//	eng-core        Carol, alice again, suspended Dave       (not selected by email:wandb-*)
//	wandb-research  five users
//	other           Erin                                      (not selected by email:wandb-*)
func seed(f *directoryfake.Server) {
	f.AddGroup(directoryfake.Group{ID: "03ml", Email: "wandb-ml@example.com", Name: "W&B ML"})
	f.AddGroup(directoryfake.Group{ID: "03core", Email: "eng-core@example.com", Name: "Eng Core"})
	f.AddGroup(directoryfake.Group{ID: "03research", Email: "wandb-research@example.com", Name: "W&B Research"})
	f.AddGroup(directoryfake.Group{ID: "03empty", Email: "wandb-empty@example.com", Name: "W&B Empty"})
	f.AddGroup(directoryfake.Group{ID: "03other", Email: "other@example.com", Name: "Other"})
	f.AddMembers("03core",
		directoryfake.Member{Email: "carol@example.com"},
		directoryfake.Member{Email: "alice@example.com"},
		directoryfake.Member{Email: "dave@example.com", Status: directoryfake.StatusSuspended},
	)
	f.AddMembers("03ml",
		directoryfake.Member{Email: "Alice@Example.com", Role: "OWNER"},
		directoryfake.Member{Email: "bob@example.com"},
		directoryfake.Member{ID: "C00fake", Type: directoryfake.TypeCustomer},
		directoryfake.Member{Email: "eng-core@example.com", Type: directoryfake.TypeGroup},
		directoryfake.Member{Email: " ALICE@example.com"},
	)
	for _, u := range []string{"v", "u", "z", "x", "y"} {
		f.AddMembers("03research", directoryfake.Member{Email: u + "@example.com"})
	}
	f.AddMembers("03other", directoryfake.Member{Email: "erin@example.com"})
}

var (
	groupML       = source.Group{ID: "03ml", Name: "W&B ML", Members: []string{"alice@example.com", "bob@example.com", "carol@example.com"}}
	groupCore     = source.Group{ID: "03core", Name: "Eng Core", Members: []string{"alice@example.com", "carol@example.com"}}
	groupResearch = source.Group{ID: "03research", Name: "W&B Research", Members: []string{"u@example.com", "v@example.com", "x@example.com", "y@example.com", "z@example.com"}}
	groupEmpty    = source.Group{ID: "03empty", Name: "W&B Empty", Members: []string{}}
	groupOther    = source.Group{ID: "03other", Name: "Other", Members: []string{"erin@example.com"}}
	// wandbGroups is what email:wandb-* selects, in the API's (email) order.
	wandbGroups = []source.Group{groupEmpty, groupML, groupResearch}
)

// sleeps records the waits a Source asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func newFake(t *testing.T, o directoryfake.Options) *directoryfake.Server {
	t.Helper()
	f := directoryfake.New(o)
	t.Cleanup(f.Close)
	seed(f)
	return f
}

func newSource(t *testing.T, f *directoryfake.Server, sl *sleeps, mutate func(*google.Options)) *google.Source {
	t.Helper()
	o := google.Options{
		CredentialsJSON: f.CredentialsJSON(),
		Subject:         f.Admin,
		Query:           "email:wandb-*",
		BaseURL:         f.URL,
		Sleep:           sl.sleep,
	}
	if mutate != nil {
		mutate(&o)
	}
	s, err := google.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestGroups(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		pageSize int
		want     []source.Group
	}{
		{"email prefix, two pages of groups and three of members", "email:wandb-*", 2, wandbGroups},
		{"email prefix, one page each", "email:wandb-*", 0, wandbGroups},
		{"every group when no query", "", 2, []source.Group{groupCore, groupOther, groupEmpty, groupML, groupResearch}},
		{"exact quoted name", "name='W&B ML'", 1, []source.Group{groupML}},
		{"two clauses are ANDed", `email:wandb-* name:'w&b r*'`, 1, []source.Group{groupResearch}},
		{"nothing selected", "email:nope*", 2, []source.Group{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, directoryfake.Options{PageSize: tt.pageSize})
			s := newSource(t, f, &sleeps{}, func(o *google.Options) { o.Query = tt.query })
			got, err := s.Groups(t.Context())
			if err != nil {
				t.Fatalf("Groups: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Groups =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

// TestGroupsRequests checks the calls themselves: documented page size, derived membership, the
// customer, page tokens followed, and one token for the whole run.
func TestGroupsRequests(t *testing.T) {
	f := newFake(t, directoryfake.Options{PageSize: 2})
	s := newSource(t, f, &sleeps{}, nil)
	if _, err := s.Groups(t.Context()); err != nil {
		t.Fatalf("Groups: %v", err)
	}
	var groupPages, memberPages int
	for _, r := range f.Requests() {
		method, uri, _ := strings.Cut(r, " ")
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		switch {
		case method == http.MethodPost && u.Path == "/token":
		case u.Path == "/admin/directory/v1/groups":
			groupPages++
			if q.Get("customer") != "my_customer" || q.Get("maxResults") != "200" || q.Get("query") != "email:wandb-*" {
				t.Errorf("groups.list request %s: want customer=my_customer, maxResults=200, query=email:wandb-*", r)
			}
		case strings.HasSuffix(u.Path, "/members"):
			memberPages++
			if q.Get("includeDerivedMembership") != "true" || q.Get("maxResults") != "200" {
				t.Errorf("members.list request %s: want includeDerivedMembership=true, maxResults=200", r)
			}
		default:
			t.Errorf("unexpected request %s", r)
		}
	}
	// 3 groups at 2 a page; members: empty 1 page, ml 8 entries (with derived) 4 pages, research 5 entries 3 pages.
	if groupPages != 2 || memberPages != 8 {
		t.Errorf("pages: groups %d, members %d; want 2 and 8", groupPages, memberPages)
	}
	if n := len(f.IssuedTokens()); n != 1 {
		t.Errorf("tokens issued = %d, want 1 (cached)", n)
	}
}

func TestGroupsLargeGroupPagesAt200(t *testing.T) {
	f := newFake(t, directoryfake.Options{})
	want := make([]string, 450)
	for i := range want {
		want[i] = fmt.Sprintf("user%03d@example.com", i)
		f.AddMembers("03empty", directoryfake.Member{Email: strings.ToUpper(want[i])})
	}
	s := newSource(t, f, &sleeps{}, nil)
	g, found, err := s.Group(t.Context(), "03empty")
	if err != nil || !found {
		t.Fatalf("Group = found %v, err %v", found, err)
	}
	if !reflect.DeepEqual(g.Members, want) {
		t.Errorf("got %d members, want the 450 lowercased and sorted", len(g.Members))
	}
	pages := 0
	for _, r := range f.Requests() {
		if strings.Contains(r, "/groups/03empty/members") {
			pages++
		}
	}
	if pages != 3 {
		t.Errorf("member pages = %d, want 3 (200+200+50)", pages)
	}
}

func afterFirstPage(path string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return strings.HasSuffix(r.URL.Path, path) && r.URL.Query().Get("pageToken") != ""
	}
}

func TestGroupsWaitsOutThrottling(t *testing.T) {
	tests := []struct {
		name      string
		match     func(*http.Request) bool
		fault     directoryfake.Fault
		times     int
		minFirst  time.Duration // the least the first wait may be
		wantWaits int
	}{
		{"429 in the middle of the group listing", afterFirstPage("/groups"), directoryfake.RateLimitExceeded, 2, time.Second, 2},
		{"403 userRateLimitExceeded in the middle of a member listing", afterFirstPage("/members"), directoryfake.UserRateLimitExceeded, 3, time.Second, 3},
		{"403 quotaExceeded in the middle of a member listing", afterFirstPage("/members"), directoryfake.QuotaExceeded, 3, time.Second, 3},
		{"403 quotaExceeded in the middle of the group listing", afterFirstPage("/groups"), directoryfake.QuotaExceeded, 1, time.Second, 1},
		{"403 rateLimitExceeded", afterFirstPage("/members"), directoryfake.RateLimitExceeded403, 1, time.Second, 1},
		{"503 backendError", afterFirstPage("/members"), directoryfake.BackendError, 1, time.Second, 1},
		{"429 with Retry-After longer than the backoff", afterFirstPage("/groups"),
			directoryfake.Fault{Status: 429, Reason: "rateLimitExceeded", RetryAfter: 7 * time.Second}, 1, 7 * time.Second, 1},
		{"token endpoint 503", func(r *http.Request) bool { return r.URL.Path == "/token" }, directoryfake.BackendError, 2, time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, directoryfake.Options{PageSize: 2})
			f.FailWhen(tt.match, tt.fault, tt.times)
			sl := &sleeps{}
			s := newSource(t, f, sl, nil)
			got, err := s.Groups(t.Context())
			if err != nil {
				t.Fatalf("Groups: %v", err)
			}
			if !reflect.DeepEqual(got, wandbGroups) {
				t.Errorf("Groups =\n%v\nwant\n%v", got, wandbGroups)
			}
			waits := sl.get()
			if len(waits) != tt.wantWaits {
				t.Fatalf("waits = %v, want %d of them", waits, tt.wantWaits)
			}
			if waits[0] < tt.minFirst {
				t.Errorf("first wait %v, want at least %v", waits[0], tt.minFirst)
			}
			for i := 1; i < len(waits); i++ {
				if lo := time.Second << i; waits[i] < lo || waits[i] >= lo+time.Second {
					t.Errorf("wait %d = %v, want exponential backoff in [%v, %v)", i, waits[i], lo, lo+time.Second)
				}
			}
		})
	}
}

// A quota answer that does not go away ends in an error that names the quota and is never read as a
// permission problem, although Google sends most of them with 403.
func TestGroupsGivesUpOnPersistentThrottling(t *testing.T) {
	tests := []struct {
		fault     directoryfake.Fault
		wantWaits int
		want      []string
	}{
		{directoryfake.QuotaExceeded, 5, []string{"giving up after 6 attempts", "HTTP 403 quotaExceeded", "not a permission problem"}},
		{directoryfake.UserRateLimitExceeded, 5, []string{"giving up after 6 attempts", "HTTP 403 userRateLimitExceeded", "not a permission problem"}},
		{directoryfake.RateLimitExceeded, 5, []string{"giving up after 6 attempts", "HTTP 429 rateLimitExceeded", "not a permission problem"}},
		{directoryfake.RateLimitExceeded403, 5, []string{"giving up after 6 attempts", "HTTP 403 rateLimitExceeded", "not a permission problem"}},
		// Not to be retried (earlier versions of the limits page), and not a permission problem either.
		{directoryfake.DailyLimitExceeded, 0, []string{"HTTP 403 dailyLimitExceeded", "daily Admin SDK quota", "not a permission problem"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.fault.Status, " ", tt.fault.Reason), func(t *testing.T) {
			f := newFake(t, directoryfake.Options{PageSize: 2})
			f.FailWhen(afterFirstPage("/members"), tt.fault, 100)
			sl := &sleeps{}
			_, err := newSource(t, f, sl, nil).Groups(t.Context())
			if err == nil {
				t.Fatal("Groups succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Subject an admin") {
				t.Errorf("err = %v: a quota answer is reported as a permission problem", err)
			}
			if n := len(sl.get()); n != tt.wantWaits {
				t.Errorf("waited %d times, want %d", n, tt.wantWaits)
			}
		})
	}
}

func TestGroupsCanceledWhileWaiting(t *testing.T) {
	f := newFake(t, directoryfake.Options{PageSize: 2})
	f.FailWhen(afterFirstPage("/groups"), directoryfake.RateLimitExceeded, 100)
	ctx, cancel := context.WithCancel(t.Context())
	s := newSource(t, f, &sleeps{}, func(o *google.Options) {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			cancel() // the daemon is shutting down while we back off
			<-ctx.Done()
			return ctx.Err()
		}
	})
	_, err := s.Groups(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestGroup(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		id        string
		prepare   func(*directoryfake.Server)
		want      source.Group
		wantFound bool
	}{
		{name: "selected group", query: "email:wandb-*", id: "03ml", want: groupML, wantFound: true},
		{name: "selected group on the second page of the selection", query: "email:wandb-*", id: "03research", want: groupResearch, wantFound: true},
		{name: "by email", query: "email:wandb-*", id: "wandb-ml@example.com", want: groupML, wantFound: true},
		{name: "no query selects every group", id: "03other", want: groupOther, wantFound: true},
		{name: "unknown id", query: "email:wandb-*", id: "03nope"},
		{name: "exists but not selected", query: "email:wandb-*", id: "03core"},
		{name: "id that needs escaping", id: "a/b?c"},
		{name: "deleted", query: "email:wandb-*", id: "03ml", prepare: func(f *directoryfake.Server) { f.RemoveGroup("03ml") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, directoryfake.Options{PageSize: 2})
			if tt.prepare != nil {
				tt.prepare(f)
			}
			s := newSource(t, f, &sleeps{}, func(o *google.Options) { o.Query = tt.query })
			got, found, err := s.Group(t.Context(), tt.id)
			if err != nil {
				t.Fatalf("Group: %v", err)
			}
			if found != tt.wantFound || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Group = %v, %v; want %v, %v", got, found, tt.want, tt.wantFound)
			}
		})
	}
}

// secretsOf returns what must never appear in an error: the lines of the private key and every access token.
func secretsOf(t *testing.T, f *directoryfake.Server, keyFiles ...[]byte) []string {
	t.Helper()
	var out []string
	for _, kf := range keyFiles {
		var k struct {
			PrivateKey string `json:"private_key"`
		}
		if err := json.Unmarshal(kf, &k); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(k.PrivateKey, "\n") {
			if !strings.HasPrefix(line, "-----") && len(line) > 8 {
				out = append(out, line)
			}
		}
	}
	return append(out, f.IssuedTokens()...)
}

func assertNoSecrets(t *testing.T, err error, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a secret (%.12s…): %v", s, err)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		fakeOpts  directoryfake.Options
		prepare   func(f *directoryfake.Server, o *google.Options)
		wantErr   []string
		wantWaits int
	}{
		{
			name: "key unknown to Google (rotated or deleted)",
			prepare: func(f *directoryfake.Server, o *google.Options) {
				o.CredentialsJSON = directoryfake.KeyFile(f.ClientEmail, f.KeyID, f.TokenURI, otherKey)
			},
			wantErr: []string{"get access token", "HTTP 400: invalid_grant: Invalid JWT Signature."},
		},
		{
			name: "another service account",
			prepare: func(f *directoryfake.Server, o *google.Options) {
				o.CredentialsJSON = directoryfake.KeyFile("intruder@evil.iam.gserviceaccount.com", f.KeyID, f.TokenURI, otherKey)
			},
			wantErr: []string{"invalid_grant"},
		},
		{
			name:    "subject is not the admin",
			prepare: func(f *directoryfake.Server, o *google.Options) { o.Subject = "someone@example.com" },
			wantErr: []string{"as someone@example.com", "invalid_grant: Invalid email or User ID"},
		},
		{
			name:     "delegation lacks the group scope",
			fakeOpts: directoryfake.Options{DelegatedScopes: []string{directoryfake.ScopeMemberReadonly}},
			wantErr:  []string{"HTTP 401: unauthorized_client", "domain-wide delegation", "admin.directory.group.readonly"},
		},
		{
			name: "access token refused even after a fresh one",
			prepare: func(f *directoryfake.Server, o *google.Options) {
				f.FailWhen(func(r *http.Request) bool { return r.URL.Path != "/token" },
					directoryfake.Fault{Status: 401, Reason: "authError", Message: "Invalid Credentials"}, 2)
			},
			wantErr: []string{"list groups", "HTTP 401 authError: Invalid Credentials", "refused twice"},
		},
		{
			name: "subject without admin rights",
			prepare: func(f *directoryfake.Server, o *google.Options) {
				f.FailWhen(func(r *http.Request) bool { return r.URL.Path != "/token" },
					directoryfake.Fault{Status: 403, Reason: "forbidden", Message: "Not Authorized to access this resource/api"}, 1)
			},
			wantErr: []string{"HTTP 403 forbidden: Not Authorized", "Subject an admin"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.fakeOpts)
			sl := &sleeps{}
			var keyFile []byte
			s := newSource(t, f, sl, func(o *google.Options) {
				if tt.prepare != nil {
					tt.prepare(f, o)
				}
				keyFile = o.CredentialsJSON
			})
			_, err := s.Groups(t.Context())
			if err == nil {
				t.Fatal("Groups succeeded, want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			if n := len(sl.get()); n != tt.wantWaits {
				t.Errorf("waited %d times, want %d: auth failures are not retried", n, tt.wantWaits)
			}
			assertNoSecrets(t, err, secretsOf(t, f, keyFile))
		})
	}
}

func TestRevokedTokenIsReplaced(t *testing.T) {
	f := newFake(t, directoryfake.Options{})
	s := newSource(t, f, &sleeps{}, nil)
	if _, err := s.Groups(t.Context()); err != nil {
		t.Fatalf("first Groups: %v", err)
	}
	f.RevokeTokens()
	got, err := s.Groups(t.Context())
	if err != nil {
		t.Fatalf("Groups after revocation: %v", err)
	}
	if !reflect.DeepEqual(got, wandbGroups) {
		t.Errorf("Groups = %v", got)
	}
	if n := len(f.IssuedTokens()); n != 2 {
		t.Errorf("tokens issued = %d, want 2", n)
	}
}

// clock is a settable time shared by the fake and the Source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTokenIsCachedUntilNearExpiry(t *testing.T) {
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	f := newFake(t, directoryfake.Options{Now: c.Now})
	s := newSource(t, f, &sleeps{}, func(o *google.Options) { o.Now = c.Now })
	steps := []struct {
		advance    time.Duration
		wantTokens int
	}{
		{0, 1},
		{30 * time.Minute, 1},
		{28 * time.Minute, 1}, // 58 min: Google's token (3599 s) still has over a minute left
		{90 * time.Second, 2}, // 59.5 min: inside the refresh margin
		{2 * time.Hour, 3},    // long idle
		{time.Second, 3},
	}
	for i, st := range steps {
		c.advance(st.advance)
		if _, err := s.Groups(t.Context()); err != nil {
			t.Fatalf("step %d: Groups: %v", i, err)
		}
		if n := len(f.IssuedTokens()); n != st.wantTokens {
			t.Errorf("step %d: tokens issued = %d, want %d", i, n, st.wantTokens)
		}
	}
}

func TestConcurrentGroups(t *testing.T) {
	f := newFake(t, directoryfake.Options{PageSize: 2})
	s := newSource(t, f, &sleeps{}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			got, err := s.Groups(t.Context())
			if err == nil && !reflect.DeepEqual(got, wandbGroups) {
				err = fmt.Errorf("Groups = %v", got)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(f.IssuedTokens()); n != 1 {
		t.Errorf("tokens issued = %d, want 1 shared by all callers", n)
	}
}

func TestNew(t *testing.T) {
	f := newFake(t, directoryfake.Options{})
	good := f.CredentialsJSON()
	const secret = "SECRETKEYMATERIAL"
	keyWith := func(field, value string) []byte {
		var m map[string]string
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = value
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name    string
		mutate  func(*google.Options)
		wantErr string // "" means New succeeds
	}{
		{"valid", func(*google.Options) {}, ""},
		{"defaults", func(o *google.Options) { o.BaseURL, o.Query, o.Sleep = "", "", nil }, ""},
		{"no key", func(o *google.Options) { o.CredentialsJSON = nil }, "CredentialsJSON (service account key) is required"},
		{"truncated JSON", func(o *google.Options) { o.CredentialsJSON = []byte(`{"private_key":"` + secret) }, "not valid JSON"},
		{"wrong JSON shape", func(o *google.Options) { o.CredentialsJSON = []byte(`{"private_key":["` + secret + `"]}`) }, "shape of a key file"},
		{"not a service account key", func(o *google.Options) { o.CredentialsJSON = keyWith("type", "authorized_user") }, `type is "authorized_user"`},
		{"no client_email", func(o *google.Options) { o.CredentialsJSON = keyWith("client_email", "") }, "client_email is missing"},
		{"no private key", func(o *google.Options) { o.CredentialsJSON = keyWith("private_key", "") }, "private_key is missing"},
		{"private key not PEM", func(o *google.Options) { o.CredentialsJSON = keyWith("private_key", secret) }, "private_key is not PEM"},
		{"private key garbage in PEM", func(o *google.Options) {
			o.CredentialsJSON = keyWith("private_key", "-----BEGIN PRIVATE KEY-----\nU0VDUkVUS0VZTUFURVJJQUw=\n-----END PRIVATE KEY-----\n")
		}, "neither a PKCS#8 nor a PKCS#1 RSA key"},
		{"token_uri not a URL", func(o *google.Options) { o.CredentialsJSON = keyWith("token_uri", "file:///etc/passwd") }, "token_uri"},
		{"no subject", func(o *google.Options) { o.Subject = "" }, "Subject must be the email"},
		{"bad base URL", func(o *google.Options) { o.BaseURL = "admin.googleapis.com" }, "BaseURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := google.Options{CredentialsJSON: good, Subject: f.Admin, BaseURL: f.URL, Query: "email:wandb-*"}
			tt.mutate(&o)
			_, err := google.New(o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "U0VDUkVU") {
				t.Fatalf("error quotes key material: %v", err)
			}
			assertNoSecrets(t, err, secretsOf(t, f, good))
		})
	}
}

func TestCustomer(t *testing.T) {
	tests := []struct {
		customer string
		wantErr  string
	}{
		{"", ""}, // my_customer
		{"C00fake", ""},
		{"C999", "HTTP 403 forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.customer, func(t *testing.T) {
			f := newFake(t, directoryfake.Options{CustomerID: "C00fake"})
			s := newSource(t, f, &sleeps{}, func(o *google.Options) { o.Customer = tt.customer })
			got, err := s.Groups(t.Context())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, wandbGroups) {
				t.Fatalf("Groups = %v, %v", got, err)
			}
		})
	}
}

func TestUnreachableAPIIsRetriedThenReported(t *testing.T) {
	f := newFake(t, directoryfake.Options{})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // its port now refuses connections
	sl := &sleeps{}
	s := newSource(t, f, sl, func(o *google.Options) { o.BaseURL = down.URL })
	_, err := s.Groups(t.Context())
	if err == nil || !strings.Contains(err.Error(), "giving up after 6 attempts") {
		t.Fatalf("err = %v, want giving up after 6 attempts", err)
	}
	if n := len(sl.get()); n != 5 {
		t.Errorf("waited %d times, want 5", n)
	}
	assertNoSecrets(t, err, secretsOf(t, f, f.CredentialsJSON()))
}
