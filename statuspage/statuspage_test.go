package statuspage

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

const (
	viewerToken = "viewer-token-0123456789"
	adminToken  = "admin-token-0123456789"
)

var now = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

type fakeStore []state.Record

func (f fakeStore) List(context.Context) ([]state.Record, error) { return slices.Clone(f), nil }

func (f fakeStore) Get(_ context.Context, name string) (state.Record, error) {
	for _, r := range f {
		if r.Name == name {
			return r, nil
		}
	}
	return state.Record{}, fmt.Errorf("team %q: %w", name, state.ErrNotFound)
}

func records() fakeStore {
	return fakeStore{
		{Name: "ml", Profile: "main", Source: "yaml", Phase: state.PhaseInSync, GroupID: "grp-1",
			Storage: team.Storage{Provider: "aws", Bucket: "acme-ml", Path: "runs"},
			History: []state.Event{
				{Time: now.Add(-time.Hour), Outcome: "created", Steps: []state.StepResult{{Step: "ensure_bucket", Time: now.Add(-time.Hour)}, {Step: "create_team", Time: now.Add(-time.Hour)}}},
				{Time: now.Add(-time.Minute), Outcome: "repaired", Changes: []string{"s3: CORS rules restored", "members: added 2"}},
			}},
		{Name: "vision", Profile: "onprem", Source: "scim", Phase: state.PhaseDesired, LastError: "ensure bucket: AccessDenied",
			NextRetry: now.Add(5 * time.Minute), Storage: team.Storage{Provider: "s3-compatible", Bucket: "acme-vision"},
			History: []state.Event{{Time: now, Outcome: "failed", Error: "ensure bucket: AccessDenied",
				Steps: []state.StepResult{{Step: "ensure_bucket", Time: now, Error: "AccessDenied"}}}}},
		{Name: "audio", Profile: "onprem", Source: "okta", Phase: state.PhaseBucketReady, Storage: team.Storage{Bucket: "acme-audio"}},
		{Name: `evil<script>alert(1)</script>`, Profile: "main", Source: "yaml", Phase: state.PhaseDesired,
			LastError: `<img src=x onerror=alert(2)>`, Storage: team.Storage{Bucket: "b"}},
	}
}

type fixture struct {
	h      http.Handler
	cookie *http.Cookie
}

func newFixture(t testing.TB, o Options) *fixture {
	t.Helper()
	if o.Store == nil {
		o.Store = records()
	}
	if o.Tokens == nil {
		o.Tokens = []string{viewerToken, adminToken}
	}
	if o.Key == nil {
		o.Key = []byte("0123456789abcdef0123456789abcdef")
	}
	if o.Status == nil {
		o.Status = func() Status {
			return Status{
				Backends:   []metrics.TargetHealth{{Target: "wandb", Requests: 10, Window: 10, ErrorRate: 0.1, LastSuccess: now}},
				LastReload: Reload{At: now.Add(-time.Hour), Trigger: "start"},
				Reconciles: []Reconcile{{At: now, Key: "all", Took: time.Second}, {At: now, Key: "team:ml", Took: 2 * time.Second, Error: true}},
			}
		}
	}
	o.Now = func() time.Time { return now }
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h}
	rec := f.post(t, "/status/login", url.Values{"token": {viewerToken}}, nil)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	f.cookie = rec.Result().Cookies()[0]
	return f
}

func (f *fixture) post(t testing.TB, path string, form url.Values, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) get(t testing.TB, target string, cookie *http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func TestLogin(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name     string
		token    string
		hdr      http.Header
		wantCode int
		wantBody string
	}{
		{name: "viewer token", token: viewerToken, wantCode: http.StatusSeeOther},
		{name: "admin token", token: adminToken, wantCode: http.StatusSeeOther},
		{name: "wrong token", token: "viewer-token-012345678X", wantCode: http.StatusUnauthorized, wantBody: "That token is not accepted."},
		{name: "a prefix of a token", token: viewerToken[:10], wantCode: http.StatusUnauthorized, wantBody: "That token is not accepted."},
		{name: "empty", token: "", wantCode: http.StatusUnauthorized, wantBody: "That token is not accepted."},
		{name: "from another site", token: viewerToken, hdr: http.Header{"Sec-Fetch-Site": {"cross-site"}}, wantCode: http.StatusForbidden},
		{name: "from another origin", token: viewerToken, hdr: http.Header{"Origin": {"https://evil.example"}}, wantCode: http.StatusForbidden},
		{name: "same origin", token: viewerToken, hdr: http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"http://example.com"}}, wantCode: http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.post(t, "/status/login", url.Values{"token": {tt.token}}, tt.hdr)
			if rec.Code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body lacks %q:\n%s", tt.wantBody, rec.Body)
			}
			cookies := rec.Result().Cookies()
			if (tt.wantCode == http.StatusSeeOther) != (len(cookies) == 1) {
				t.Errorf("cookies %v", cookies)
			}
			if tt.wantCode == http.StatusUnauthorized && !strings.Contains(rec.Body.String(), `<form method="post" action="/status/login">`) {
				t.Error("a refused login does not show the form again")
			}
		})
	}
}

func TestCookie(t *testing.T) {
	tests := []struct {
		name       string
		secure     bool
		tls        bool
		wantName   string
		wantSecure bool
	}{
		{name: "plain HTTP", wantName: "byob_status"},
		{name: "listener serves TLS", secure: true, wantName: "__Host-byob_status", wantSecure: true},
		{name: "request came over TLS", tls: true, wantName: "__Host-byob_status", wantSecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{Secure: tt.secure})
			target := "http://example.com/status/login"
			if tt.tls {
				target = "https://example.com/status/login"
			}
			req := httptest.NewRequest(http.MethodPost, target, strings.NewReader("token="+adminToken))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			c := rec.Result().Cookies()
			if len(c) != 1 {
				t.Fatalf("cookies %v", c)
			}
			got := c[0]
			if got.Name != tt.wantName || got.Secure != tt.wantSecure || !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != "/" ||
				got.MaxAge != int(sessionTTL.Seconds()) {
				t.Errorf("cookie %+v", got)
			}
			if strings.Contains(got.Value, adminToken) || strings.Contains(rec.Header().Get("Set-Cookie"), adminToken) {
				t.Error("the cookie holds the token")
			}
			if code := f.get(t, "/status/", got).Code; code != http.StatusOK {
				t.Errorf("with the cookie: %d", code)
			}
		})
	}
}

func TestAccessNeedsASession(t *testing.T) {
	f := newFixture(t, Options{})
	good := f.cookie
	mk := func(v string) *http.Cookie { return &http.Cookie{Name: cookieName, Value: v} }
	p := &page{key: []byte("0123456789abcdef0123456789abcdef"), tokens: []string{viewerToken}, o: Options{Now: func() time.Time { return now }}}
	expired := p.session(viewerToken, now.Add(-time.Second))
	tooLong := p.session(viewerToken, now.Add(sessionTTL+time.Hour))
	otherKey := (&page{key: []byte("another key, another key, another"), tokens: []string{viewerToken}}).session(viewerToken, now.Add(time.Hour))
	removed := p.session("a token no longer configured", now.Add(time.Hour))
	tests := []struct {
		name   string
		cookie *http.Cookie
		bearer string
		want   int
	}{
		{name: "logged in", cookie: good, want: http.StatusOK},
		{name: "no cookie", want: http.StatusSeeOther},
		{name: "the token as the cookie", cookie: mk(viewerToken), want: http.StatusSeeOther},
		{name: "expired", cookie: mk(expired), want: http.StatusSeeOther},
		{name: "expiry beyond the session length", cookie: mk(tooLong), want: http.StatusSeeOther},
		{name: "signed with another key", cookie: mk(otherKey), want: http.StatusSeeOther},
		{name: "token removed from the configuration", cookie: mk(removed), want: http.StatusSeeOther},
		{name: "garbage", cookie: mk("1.2.3"), want: http.StatusSeeOther},
		{name: "bearer token", bearer: adminToken, want: http.StatusOK},
		{name: "wrong bearer token", bearer: "nope", want: http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/status/", "/status/teams/ml"} {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				if tt.cookie != nil {
					req.AddCookie(tt.cookie)
				}
				if tt.bearer != "" {
					req.Header.Set("Authorization", "Bearer "+tt.bearer)
				}
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, req)
				if rec.Code != tt.want {
					t.Errorf("%s: %d, want %d", path, rec.Code, tt.want)
				}
				if rec.Code == http.StatusSeeOther && rec.Header().Get("Location") != "/status/login" {
					t.Errorf("%s: redirected to %q", path, rec.Header().Get("Location"))
				}
				if rec.Code != http.StatusOK && strings.Contains(rec.Body.String(), "acme-") {
					t.Errorf("%s: shown without a session:\n%s", path, rec.Body)
				}
			}
		})
	}
}

// TestHeaders checks what every answer carries, the login form and errors included.
func TestHeaders(t *testing.T) {
	f := newFixture(t, Options{})
	for _, target := range []string{"/status/", "/status/login", "/status/style.css", "/status/teams/ml", "/status/teams/nope", "/status/?status=bogus", "/status/nothing-here"} {
		rec := f.get(t, target, f.cookie)
		h := rec.Header()
		if h.Get("Content-Security-Policy") != csp || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", target, h)
		}
	}
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	if css := f.get(t, "/status/style.css", nil); css.Code != http.StatusOK || css.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("stylesheet: %d %v", css.Code, css.Header())
	}
}

func TestListFilters(t *testing.T) {
	f := newFixture(t, Options{})
	all := []string{"audio", "evil<script>alert(1)</script>", "ml", "vision"}
	tests := []struct {
		query    string
		wantCode int
		want     []string
	}{
		{query: "", wantCode: 200, want: all},
		{query: "status=failed", wantCode: 200, want: []string{"evil<script>alert(1)</script>", "vision"}},
		{query: "status=in_sync", wantCode: 200, want: []string{"ml"}},
		{query: "source=scim", wantCode: 200, want: []string{"vision"}},
		{query: "status=failed&source=scim", wantCode: 200, want: []string{"vision"}},
		{query: "source=nowhere", wantCode: 200, want: nil},
		{query: "q=ACME-ML", wantCode: 200, want: []string{"ml"}},          // bucket, any case
		{query: "q=accessdenied", wantCode: 200, want: []string{"vision"}}, // last error
		{query: "q=grp-1", wantCode: 200, want: []string{"ml"}},            // W&B id
		{query: "status=bogus", wantCode: 400},
		{query: "q=" + strings.Repeat("x", maxQuery+1), wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			rec := f.get(t, "/status/?"+tt.query, f.cookie)
			if rec.Code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 200 {
				return
			}
			body := rec.Body.String()
			var got []string
			for _, r := range records() {
				if strings.Contains(body, `data-team="`+html.EscapeString(r.Name)+`"`) {
					got = append(got, r.Name)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("teams %q, want %q", got, tt.want)
			}
			if want := fmt.Sprintf(`%d of %d`, len(tt.want), len(all)); !strings.Contains(body, want) {
				t.Errorf("no %q shown", want)
			}
		})
	}
}

// TestEscaping shows names and errors that hold markup as text.
func TestEscaping(t *testing.T) {
	f := newFixture(t, Options{})
	for _, target := range []string{"/status/", "/status/teams/" + url.PathEscape("evil<script>alert(1)</script>")} {
		rec := f.get(t, target, f.cookie)
		if rec.Code != 200 {
			t.Fatalf("%s: %d", target, rec.Code)
		}
		body := rec.Body.String()
		for _, raw := range []string{"<script>", "<img src=x"} {
			if strings.Contains(body, raw) {
				t.Errorf("%s: %q is not escaped", target, raw)
			}
		}
		if !strings.Contains(body, "evil&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(body, "&lt;img src=x onerror=alert(2)&gt;") {
			t.Errorf("%s: the escaped name or error is missing:\n%s", target, body)
		}
	}
}

func TestTeamPage(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		team     string
		wantCode int
		want     []string
	}{
		{team: "ml", wantCode: 200, want: []string{"in_sync", "acme-ml/runs", "grp-1", "s3: CORS rules restored", "members: added 2", "ensure_bucket", "create_team", "doctor"}},
		{team: "vision", wantCode: 200, want: []string{"failed", "ensure bucket: AccessDenied", "ensure_bucket</code> 10:00:00 failed</li>", "5m from now"}},
		{team: "nope", wantCode: 404, want: []string{"No team of that name"}},
	}
	for _, tt := range tests {
		t.Run(tt.team, func(t *testing.T) {
			rec := f.get(t, "/status/teams/"+tt.team, f.cookie)
			if rec.Code != tt.wantCode {
				t.Fatalf("code %d: %s", rec.Code, rec.Body)
			}
			for _, w := range tt.want {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
	// Newest first: the repair comes before the creation.
	body := f.get(t, "/status/teams/ml", f.cookie).Body.String()
	if strings.Index(body, "outcome-repaired") > strings.Index(body, "outcome-created") {
		t.Error("history is not newest first")
	}
}

func TestHeaderShowsDaemon(t *testing.T) {
	f := newFixture(t, Options{})
	body := f.get(t, "/status/", f.cookie).Body.String()
	for _, want := range []string{
		`<td>wandb</td>`, "10% of 10", // backend health
		"Configuration loaded 2026-12-02 09:00:00 UTC (1h ago) (start)", // last reload
		`<rect x="0" y="60" width="24" height="60" class="bar-ok">`,     // half the longest
		`<rect x="26" y="0" width="24" height="120" class="bar-error">`,
		`href="/status/?status=failed">failed <b>2</b>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t, Options{})
	req := httptest.NewRequest(http.MethodPost, "/status/logout", nil)
	req.AddCookie(f.cookie)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	c := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(c) != 1 || c[0].MaxAge >= 0 || c[0].Value != "" {
		t.Errorf("logout: %d %v", rec.Code, c)
	}
}

func TestNewNeedsATokenAndKey(t *testing.T) {
	base := Options{Store: records(), Tokens: []string{viewerToken}, Key: make([]byte, 32), Status: func() Status { return Status{} }}
	for _, tt := range []struct {
		name string
		mod  func(*Options)
	}{
		{"no token", func(o *Options) { o.Tokens = nil }},
		{"short key", func(o *Options) { o.Key = make([]byte, 16) }},
		{"no store", func(o *Options) { o.Store = nil }},
	} {
		o := base
		tt.mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

// FuzzStatusPage sends arbitrary query strings, login bodies and cookies: the page never fails with
// a 5xx, always sends its headers, and never shows the teams without a valid session.
func FuzzStatusPage(f *testing.F) {
	f.Add("status=failed&source=scim&q=acme", "token="+viewerToken, "1.abc")
	f.Add("q=%3Cscript%3E", "token=%00", "")
	f.Add("status=%ff", "token=a&token=b", "99999999999999999999.x")
	fx := newFixture(f, Options{})
	f.Fuzz(func(t *testing.T, query, body, cookie string) {
		check := func(rec *httptest.ResponseRecorder, what string) {
			if rec.Code >= 500 {
				t.Fatalf("%s: %d", what, rec.Code)
			}
			if rec.Header().Get("Content-Security-Policy") != csp {
				t.Fatalf("%s: no CSP", what)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/status/", nil)
		req.URL.RawQuery = query // as the server would have it: any bytes after '?'
		req.AddCookie(fx.cookie)
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		check(rec, "list")
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("list: %d", rec.Code)
		}
		req = httptest.NewRequest(http.MethodPost, "/status/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec = httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		check(rec, "login")
		if v, _ := url.ParseQuery(body); rec.Code == http.StatusSeeOther && v.Get("token") != viewerToken && v.Get("token") != adminToken {
			t.Fatalf("login with %q accepted", body)
		}
		req = httptest.NewRequest(http.MethodGet, "/status/", nil)
		req.Header.Set("Cookie", cookieName+"="+cookie)
		rec = httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		check(rec, "cookie")
		if rec.Code != http.StatusSeeOther && cookie != fx.cookie.Value {
			t.Fatalf("cookie %q let in: %d", cookie, rec.Code)
		}
	})
}
