package oktafake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const apiToken = "00SSWS-test-token"

var (
	clientKey = sync.OnceValue(func() *rsa.PrivateKey { return genKey() })
	strayKey  = sync.OnceValue(func() *rsa.PrivateKey { return genKey() })
	start     = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
)

func genKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func newServer(t *testing.T) *Server {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	s.SetNow(func() time.Time { return start })
	s.AddAPIToken(apiToken)
	s.AddClient("0oac", &clientKey().PublicKey, "kid1", "okta.groups.read", "okta.users.read")
	s.AddGroup(Group{ID: "00g1", Name: "wandb-a", LastUpdated: start.Add(-time.Hour), Profile: map[string]string{"department": "ml-platform"}})
	s.AddGroup(Group{ID: "00g2", Name: "wandb-b", Type: "APP_GROUP", SourceID: "0oaad", LastUpdated: start.Add(-2 * time.Hour),
		Profile: map[string]string{"department": "ml-infra"}})
	s.AddGroup(Group{ID: "00g3", Name: "Other", Description: "not wandb"})
	s.AddUser(User{ID: "00u1", Login: "a@x.io", Email: "a@x.io"})
	s.AddMember("00g1", "00u1")
	return s
}

func do(t *testing.T, s *Server, method, path, auth string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestAPIStrictness(t *testing.T) {
	q := url.QueryEscape
	tests := []struct {
		name     string
		method   string
		path     string
		auth     string
		status   int
		contains string
	}{
		{name: "no credentials", path: "/api/v1/groups", status: 401, contains: "E0000011"},
		{name: "wrong token", path: "/api/v1/groups", auth: "SSWS nope", status: 401, contains: "E0000011"},
		{name: "unknown bearer", path: "/api/v1/groups", auth: "Bearer nope", status: 401, contains: "E0000011"},
		{name: "write method", method: http.MethodPost, path: "/api/v1/groups", status: 405, contains: "E0000022"},
		{name: "limit over 200 is Okta's advice, not a refusal", path: "/api/v1/groups?limit=201", status: 200, contains: "00g1"},
		{name: "limit 10000", path: "/api/v1/groups?limit=10000", status: 200, contains: "00g1"},
		{name: "limit over 10000", path: "/api/v1/groups?limit=10001", status: 400, contains: "limit"},
		{name: "limit zero", path: "/api/v1/groups?limit=0", status: 400, contains: "limit"},
		{name: "limit not a number", path: "/api/v1/groups?limit=ten", status: 400, contains: "limit"},
		{name: "member limit over 1000", path: "/api/v1/groups/00g1/users?limit=1001", status: 400, contains: "limit"},
		{name: "member limit 1000", path: "/api/v1/groups/00g1/users?limit=1000", status: 200, contains: "a@x.io"},
		{name: "unknown parameter", path: "/api/v1/groups?pageSize=10", status: 400, contains: "unknown query parameter"},
		{name: "q not implemented", path: "/api/v1/groups?q=wandb", status: 400, contains: "not implemented"},
		{name: "repeated parameter", path: "/api/v1/groups?limit=2&limit=3", status: 400, contains: "more than once"},
		{name: "search and filter", path: "/api/v1/groups?search=" + q(`id eq "00g1"`) + "&filter=" + q(`id eq "00g1"`), status: 400, contains: "E0000031"},
		{name: "bad operator", path: "/api/v1/groups?search=" + q(`profile.name zz "a"`), status: 400, contains: "E0000031"},
		{name: "co only on profile", path: "/api/v1/groups?search=" + q(`id co "00"`), status: 400, contains: "E0000031"},
		{name: "filter on profile", path: "/api/v1/groups?filter=" + q(`profile.name eq "a"`), status: 400, contains: "E0000031"},
		{name: "filter on source.id", path: "/api/v1/groups?filter=" + q(`source.id eq "0oaad"`), status: 400, contains: "E0000031"},
		{name: "unknown profile attribute", path: "/api/v1/groups?search=" + q(`profile.costCenter eq "1"`), status: 400, contains: "E0000031"},
		{name: "co on a custom attribute", path: "/api/v1/groups?search=" + q(`profile.department co "ML"`), status: 400, contains: "E0000031"},
		{name: "sw on source.id", path: "/api/v1/groups?search=" + q(`source.id sw "0oa"`), status: 400, contains: "E0000031"},
		{name: "unquoted value", path: "/api/v1/groups?search=" + q(`id eq 00g1`), status: 400, contains: "E0000031"},
		{name: "unbalanced parens", path: "/api/v1/groups?search=" + q(`(id eq "00g1"`), status: 400, contains: "E0000031"},
		{name: "bad timestamp", path: "/api/v1/groups?filter=" + q(`lastUpdated gt "yesterday"`), status: 400, contains: "E0000031"},
		{name: "get with parameter", path: "/api/v1/groups/00g1?expand=stats", status: 400, contains: "unknown query parameter"},
		{name: "missing group", path: "/api/v1/groups/00g9", status: 404, contains: "E0000007"},
		{name: "members of missing group", path: "/api/v1/groups/00g9/users", status: 404, contains: "E0000007"},
		{name: "unknown path", path: "/api/v1/groups/00g1/apps", status: 404, contains: "E0000007"},
		{name: "logs", path: "/api/v1/logs?since=2026-03-02T09:00:00Z&filter=" + q(`eventType eq "group.user_membership.add"`), status: 200, contains: "00g1"},
		{name: "logs limit 1000", path: "/api/v1/logs?limit=1000", status: 200, contains: "group.lifecycle.create"},
		{name: "logs limit over 1000", path: "/api/v1/logs?limit=1001", status: 400, contains: "limit must be between 0 and 1000"},
		{name: "logs since not a time", path: "/api/v1/logs?since=yesterday", status: 400, contains: "date format"},
		{name: "logs since over 180 days", path: "/api/v1/logs?since=2025-09-01T00:00:00Z", status: 400, contains: "over 180 days"},
		{name: "logs since and after", path: "/api/v1/logs?since=2026-03-02T09:00:00Z&after=x", status: 400, contains: "mutually exclusive"},
		{name: "logs after unknown", path: "/api/v1/logs?after=x", status: 400, contains: "after"},
		{name: "logs filter on published", path: "/api/v1/logs?filter=" + q(`published gt "2026-03-01T00:00:00Z"`), status: 400, contains: "E0000053"},
		{name: "logs filter operator", path: "/api/v1/logs?filter=" + q(`eventType eqq "x"`), status: 400, contains: "E0000053"},
		{name: "logs filter and", path: "/api/v1/logs?filter=" + q(`eventType eq "a" and eventType eq "b"`), status: 400, contains: "not implemented"},
		{name: "logs filter dangling or", path: "/api/v1/logs?filter=" + q(`eventType eq "a" or`), status: 400, contains: "E0000053"},
		{name: "logs bounded", path: "/api/v1/logs?until=2026-03-02T09:00:00Z", status: 400, contains: "not implemented"},
		{name: "logs descending", path: "/api/v1/logs?sortOrder=DESCENDING", status: 400, contains: "not implemented"},
		{name: "logs keyword", path: "/api/v1/logs?q=wandb", status: 400, contains: "not implemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			auth := tt.auth
			if auth == "" && tt.name != "no credentials" {
				auth = "SSWS " + apiToken
			}
			status, body, _ := do(t, s, method, tt.path, auth)
			if status != tt.status || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s = %d %s, want %d containing %q", method, tt.path, status, body, tt.status, tt.contains)
			}
		})
	}
}

func TestSearchAndFilter(t *testing.T) {
	tests := []struct {
		param, expr string
		want        []string
	}{
		{"search", `profile.name sw "WANDB-"`, []string{"00g1", "00g2"}},
		{"search", `profile.description co "WANDB"`, []string{"00g3"}},
		{"search", `profile.name sw "wandb-" and type eq "APP_GROUP" or id eq "00g3"`, []string{"00g2", "00g3"}},
		{"search", `profile.name sw "wandb-" and (type eq "APP_GROUP" or id eq "00g3")`, []string{"00g2"}},
		{"search", `profile.name eq "wandb-a" OR profile.name eq "Other"`, []string{"00g1", "00g3"}},
		// Okta's documented examples (https://developer.okta.com/docs/api/resources/groups).
		{"search", `type eq "APP_GROUP" and source.id eq "0oaad"`, []string{"00g2"}},
		{"search", `source.id eq "0oaother"`, nil},
		{"search", `type eq "OKTA_GROUP"`, []string{"00g1", "00g3"}},
		{"search", `lastUpdated gt "2026-03-02T08:30:00.000Z"`, []string{"00g1"}},
		{"search", `profile.department eq "ml-platform"`, []string{"00g1"}},
		{"search", `profile.department sw "ML-"`, []string{"00g1", "00g2"}},
		{"search", `profile.department sw "ml-" and source.id eq "0oaad"`, []string{"00g2"}},
		{"filter", `type eq "APP_GROUP"`, []string{"00g2"}},
		{"filter", `lastUpdated gt "2026-03-02T08:30:00.000Z"`, []string{"00g1"}},
		{"filter", `id eq "00g1" or id eq "00g3"`, []string{"00g1", "00g3"}},
	}
	s := newServer(t)
	for _, tt := range tests {
		status, body, _ := do(t, s, http.MethodGet, "/api/v1/groups?"+tt.param+"="+url.QueryEscape(tt.expr), "SSWS "+apiToken)
		var groups []struct {
			ID string `json:"id"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &groups) != nil {
			t.Fatalf("%s=%s: %d %s", tt.param, tt.expr, status, body)
		}
		var got []string
		for _, g := range groups {
			got = append(got, g.ID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s=%s matched %v, want %v", tt.param, tt.expr, got, tt.want)
		}
	}
}

func TestPagingAndRateLimit(t *testing.T) {
	s := newServer(t)
	s.SetPageSize(2)
	s.SetRateLimit(2)
	status, _, h := do(t, s, http.MethodGet, "/api/v1/groups?limit=200", "SSWS "+apiToken)
	links := h.Values("Link")
	if status != 200 || len(links) != 2 || !strings.Contains(links[1], `after=00g2`) || !strings.HasSuffix(links[1], `>; rel="next"`) {
		t.Fatalf("first page: %d, links %q", status, links)
	}
	if h.Get("X-Rate-Limit-Remaining") != "1" {
		t.Errorf("X-Rate-Limit-Remaining = %q, want 1", h.Get("X-Rate-Limit-Remaining"))
	}
	next := strings.TrimPrefix(links[1][:strings.Index(links[1], ">")], "<"+s.URL)
	status, _, h = do(t, s, http.MethodGet, next, "SSWS "+apiToken)
	if status != 200 || len(h.Values("Link")) != 1 {
		t.Fatalf("last page: %d, links %q", status, h.Values("Link"))
	}
	status, body, h := do(t, s, http.MethodGet, next, "SSWS "+apiToken)
	wantReset := "1772445660" // 10:01:00Z
	if status != 429 || !strings.Contains(body, "E0000047") || h.Get("X-Rate-Limit-Reset") != wantReset ||
		h.Get("X-Rate-Limit-Remaining") != "0" || h.Get("Date") != "Mon, 02 Mar 2026 10:00:00 GMT" {
		t.Errorf("third request: %d %s %v", status, body, h)
	}
}

func sign(t *testing.T, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestTokenEndpoint(t *testing.T) {
	type mod func(h, c map[string]any, f url.Values) *rsa.PrivateKey
	tests := []struct {
		name   string
		mod    mod
		status int
		want   string
	}{
		{name: "valid", status: 200, want: `"token_type":"Bearer"`},
		{name: "wrong audience", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey {
			c["aud"] = "https://other.okta.com/oauth2/v1/token"
			return nil
		}, status: 401, want: "audience"},
		{name: "expired", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey {
			c["exp"] = start.Add(-time.Second).Unix()
			return nil
		}, status: 401, want: "expired"},
		{name: "exp over an hour", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey {
			c["exp"] = start.Add(61 * time.Minute).Unix()
			return nil
		}, status: 401, want: "too far"},
		{name: "no jti", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { delete(c, "jti"); return nil }, status: 401, want: "jti"},
		{name: "sub differs", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { c["sub"] = "someone"; return nil }, status: 401, want: "sub"},
		{name: "HS256", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { h["alg"] = "HS256"; return nil }, status: 401, want: "algorithm"},
		{name: "other key", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { return strayKey() }, status: 401, want: "signature is invalid"},
		{name: "other kid", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { h["kid"] = "kid2"; return nil }, status: 401, want: "kid"},
		{name: "unknown client", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey {
			c["iss"], c["sub"] = "0oax", "0oax"
			return nil
		}, status: 401, want: "client_id is invalid"},
		{name: "client_id mismatch", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { f.Set("client_id", "0oax"); return nil }, status: 401, want: "client_id"},
		{name: "no scope", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { f.Del("scope"); return nil }, status: 400, want: "invalid_scope"},
		{name: "scope not granted", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey {
			f.Set("scope", "okta.groups.read okta.users.manage")
			return nil
		}, status: 400, want: "okta.users.manage"},
		{name: "wrong grant", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { f.Set("grant_type", "password"); return nil }, status: 400, want: "unsupported_grant_type"},
		{name: "client secret", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey { f.Set("client_secret", "x"); return nil }, status: 400, want: "client_secret"},
		{name: "wrong assertion type", mod: func(h, c map[string]any, f url.Values) *rsa.PrivateKey {
			f.Set("client_assertion_type", "jwt")
			return nil
		}, status: 401, want: "client_assertion_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			h := map[string]any{"alg": "RS256", "typ": "JWT", "kid": "kid1"}
			c := map[string]any{"iss": "0oac", "sub": "0oac", "aud": s.URL + "/oauth2/v1/token",
				"iat": start.Unix(), "exp": start.Add(5 * time.Minute).Unix(), "jti": "j1"}
			f := url.Values{"grant_type": {"client_credentials"}, "scope": {"okta.groups.read okta.users.read"},
				"client_assertion_type": {assertionType}}
			key := clientKey()
			if tt.mod != nil {
				if k := tt.mod(h, c, f); k != nil {
					key = k
				}
			}
			f.Set("client_assertion", sign(t, key, h, c))
			status, body := postToken(t, s, f)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("token = %d %s, want %d containing %q", status, body, tt.status, tt.want)
			}
		})
	}
}

func postToken(t *testing.T, s *Server, f url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/oauth2/v1/token", strings.NewReader(f.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestTokenReplayAndUse(t *testing.T) {
	s := newServer(t)
	c := map[string]any{"iss": "0oac", "sub": "0oac", "aud": s.URL + "/oauth2/v1/token",
		"iat": start.Unix(), "exp": start.Add(5 * time.Minute).Unix(), "jti": "once"}
	f := url.Values{"grant_type": {"client_credentials"}, "scope": {"okta.users.read"},
		"client_assertion_type": {assertionType}, "client_assertion": {sign(t, clientKey(), map[string]any{"alg": "RS256"}, c)}}
	status, body := postToken(t, s, f)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &tr) != nil {
		t.Fatalf("token: %d %s", status, body)
	}
	if status, body := postToken(t, s, f); status != 401 || !strings.Contains(body, "already been used") {
		t.Errorf("replayed assertion: %d %s", status, body)
	}
	// The token lacks okta.groups.read: the Groups API refuses it.
	if status, body, _ := do(t, s, http.MethodGet, "/api/v1/groups", "Bearer "+tr.AccessToken); status != 403 || !strings.Contains(body, "E0000006") {
		t.Errorf("groups with users-only scope: %d %s", status, body)
	}
}

func FuzzParseExpr(f *testing.F) {
	for _, seed := range []string{`profile.name sw "a"`, `(id eq "1" or (type eq "X")) and profile.name co "\"q"`, `((((`, `a b c d`} {
		f.Add(seed, false)
	}
	g := &Group{ID: "00g1", Name: "wandb-a"}
	f.Fuzz(func(t *testing.T, expr string, filter bool) {
		mode := modeSearch
		if filter {
			mode = modeFilter
		}
		if pred, err := parseExpr(expr, mode); err == nil {
			pred(g)
		}
	})
}

// TestDPoPAndAdminRole: an app requiring DPoP gets no token without a proof; an app without an admin role
// gets a token the Groups API refuses; a request carrying a DPoP header is refused (the fake does no DPoP).
func TestDPoPAndAdminRole(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(s *Server)
		tokenStatus int
		tokenWant   string
		apiStatus   int // 0: not called
		apiWant     string
		dpopHeader  bool
	}{
		{name: "defaults", setup: func(*Server) {}, tokenStatus: 200, tokenWant: `"token_type":"Bearer"`, apiStatus: 200, apiWant: "00g1"},
		{name: "DPoP required", setup: func(s *Server) { s.RequireDPoP("0oac", true) },
			tokenStatus: 400, tokenWant: `{"error":"invalid_dpop_proof","error_description":"The DPoP proof JWT header is missing."}`},
		{name: "DPoP turned off again", setup: func(s *Server) { s.RequireDPoP("0oac", true); s.RequireDPoP("0oac", false) },
			tokenStatus: 200, tokenWant: `"token_type":"Bearer"`, apiStatus: 200, apiWant: "00g1"},
		{name: "no admin role", setup: func(s *Server) { s.SetAdminRole("0oac", false) },
			tokenStatus: 200, tokenWant: `"token_type":"Bearer"`, apiStatus: 403, apiWant: "E0000006"},
		{name: "role given back", setup: func(s *Server) { s.SetAdminRole("0oac", false); s.SetAdminRole("0oac", true) },
			tokenStatus: 200, tokenWant: `"token_type":"Bearer"`, apiStatus: 200, apiWant: "00g1"},
		{name: "DPoP header on an API call", setup: func(*Server) {}, dpopHeader: true,
			tokenStatus: 200, tokenWant: `"token_type":"Bearer"`, apiStatus: 401, apiWant: "E0000011"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			tt.setup(s)
			c := map[string]any{"iss": "0oac", "sub": "0oac", "aud": s.URL + "/oauth2/v1/token",
				"iat": start.Unix(), "exp": start.Add(5 * time.Minute).Unix(), "jti": "j-" + tt.name}
			f := url.Values{"grant_type": {"client_credentials"}, "scope": {"okta.groups.read"},
				"client_assertion_type": {assertionType}, "client_assertion": {sign(t, clientKey(), map[string]any{"alg": "RS256", "kid": "kid1"}, c)}}
			status, body := postToken(t, s, f)
			if status != tt.tokenStatus || !strings.Contains(body, tt.tokenWant) {
				t.Fatalf("token = %d %s, want %d containing %s", status, body, tt.tokenStatus, tt.tokenWant)
			}
			if tt.apiStatus == 0 {
				return
			}
			var tr struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal([]byte(body), &tr); err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/api/v1/groups", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
			if tt.dpopHeader {
				req.Header.Set("DPoP", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.apiStatus || !strings.Contains(string(got), tt.apiWant) {
				t.Errorf("groups = %d %s, want %d containing %s", resp.StatusCode, got, tt.apiStatus, tt.apiWant)
			}
		})
	}
}

// TestLogsPolling: the System Log records the fake's changes, filters them by type, pages them with a
// next link that is always there, and needs okta.logs.read with OAuth.
func TestLogsPolling(t *testing.T) {
	s := newServer(t)
	s.SetPageSize(1)
	auth := "SSWS " + apiToken
	filter := url.QueryEscape(`eventType eq "group.user_membership.add" or eventType eq "group.user_membership.remove"`)
	path := "/api/v1/logs?since=2026-03-02T09:00:00Z&sortOrder=ASCENDING&filter=" + filter
	var got []string
	for range 4 {
		status, body, h := do(t, s, http.MethodGet, path, auth)
		if status != 200 {
			t.Fatalf("%s = %d %s", path, status, body)
		}
		var page []struct {
			EventType string
			Target    []struct{ ID, Type string }
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.EventType+" "+e.Target[1].ID)
		}
		next := nextOf(h)
		if next == "" {
			t.Fatalf("no next link on %s", path)
		}
		u, _ := url.Parse(next)
		path = u.RequestURI()
		if len(page) == 0 {
			break
		}
		s.RemoveMember("00g1", "00u1") // recorded while polling: the next pages see it
	}
	if want := []string{"group.user_membership.add 00g1", "group.user_membership.remove 00g1"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}

	s.AddClient("0oagroups", &clientKey().PublicKey, "", "okta.groups.read")
	tok := accessTokenFor(t, s, "0oagroups", "okta.groups.read")
	if status, body, _ := do(t, s, http.MethodGet, "/api/v1/logs", "Bearer "+tok); status != 403 || !strings.Contains(body, "E0000006") {
		t.Errorf("logs without okta.logs.read = %d %s", status, body)
	}
}

func nextOf(h http.Header) string {
	for _, v := range h.Values("Link") {
		if target, ok := strings.CutSuffix(v, `>; rel="next"`); ok {
			return strings.TrimPrefix(target, "<")
		}
	}
	return ""
}

// accessTokenFor gets an access token for a client registered with clientKey.
func accessTokenFor(t *testing.T, s *Server, clientID, scope string) string {
	t.Helper()
	c := map[string]any{"iss": clientID, "sub": clientID, "aud": s.URL + "/oauth2/v1/token",
		"iat": start.Unix(), "exp": start.Add(5 * time.Minute).Unix(), "jti": randomHex(8)}
	f := url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {assertionType}, "client_assertion": {sign(t, clientKey(), map[string]any{"alg": "RS256"}, c)}}
	status, body := postToken(t, s, f)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &tr) != nil {
		t.Fatalf("token: %d %s", status, body)
	}
	return tr.AccessToken
}

func FuzzParseLogFilter(f *testing.F) {
	for _, seed := range []string{`eventType eq "a"`, `eventType eq "a" or eventType eq "b"`, `published gt "x"`, `eventType eq`, `(eventType eq "a")`, `or or or`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if match, err := parseLogFilter(expr); err == nil {
			match("group.user_membership.add")
		}
	})
}

// signProof signs a DPoP proof of claims with key.
func signProof(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	jwk := map[string]string{"kty": "RSA", "e": enc.EncodeToString(big.NewInt(int64(key.E)).Bytes()), "n": enc.EncodeToString(key.N.Bytes())}
	return sign(t, key, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}, claims)
}

func ath(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestDPoPFlow walks Okta's DPoP flow for a service app that requires it: a proof without the nonce
// gets use_dpop_nonce and the nonce, one with it a DPoP token; API calls need a fresh proof of the same
// key for that method and URL carrying the token's hash.
func TestDPoPFlow(t *testing.T) {
	s := newServer(t)
	s.RequireDPoP("0oac", true)
	dkey := strayKey() // not the client's key: Okta wants them separate
	tokenURL := s.URL + "/oauth2/v1/token"
	n := 0
	token := func(proof string) (int, string, http.Header) {
		n++
		c := map[string]any{"iss": "0oac", "sub": "0oac", "aud": tokenURL, "iat": start.Unix(), "exp": start.Add(5 * time.Minute).Unix(), "jti": fmt.Sprint("a", n)}
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {"okta.groups.read"},
			"client_assertion_type": {assertionType}, "client_assertion": {sign(t, clientKey(), map[string]any{"alg": "RS256"}, c)}}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, tokenURL, strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", proof)
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	claims := func(jti string) map[string]any {
		return map[string]any{"htm": "POST", "htu": tokenURL, "iat": start.Unix(), "jti": jti}
	}
	status, body, h := token(signProof(t, dkey, claims("p1")))
	nonce := h.Get("DPoP-Nonce")
	if status != 400 || !strings.Contains(body, `"use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("proof without nonce = %d %s, nonce %q", status, body, nonce)
	}
	wrongURL := claims("p2")
	wrongURL["htu"], wrongURL["nonce"] = s.URL+"/oauth2/default/v1/token", nonce
	if status, body, _ := token(signProof(t, dkey, wrongURL)); status != 400 || !strings.Contains(body, "htu") {
		t.Errorf("proof for another URL = %d %s", status, body)
	}
	good := claims("p3")
	good["nonce"] = nonce
	status, body, _ = token(signProof(t, dkey, good))
	var tr struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &tr) != nil || tr.TokenType != "DPoP" {
		t.Fatalf("proof with nonce = %d %s", status, body)
	}
	if status, body, _ := token(signProof(t, dkey, good)); status != 400 || !strings.Contains(body, "jti") {
		t.Errorf("replayed proof = %d %s", status, body)
	}

	groupsURL := s.URL + "/api/v1/groups"
	api := map[string]struct {
		scheme string
		key    *rsa.PrivateKey
		mod    func(c map[string]any)
		status int
	}{
		"good":             {"DPoP", dkey, func(map[string]any) {}, 200},
		"as a bearer":      {"Bearer", nil, nil, 401},
		"other key":        {"DPoP", clientKey(), func(map[string]any) {}, 401},
		"wrong method":     {"DPoP", dkey, func(c map[string]any) { c["htm"] = "POST" }, 401},
		"wrong URL":        {"DPoP", dkey, func(c map[string]any) { c["htu"] = s.URL + "/api/v1/users" }, 401},
		"query in htu":     {"DPoP", dkey, func(c map[string]any) { c["htu"] = groupsURL + "?limit=1" }, 401},
		"no ath":           {"DPoP", dkey, func(c map[string]any) { delete(c, "ath") }, 401},
		"ath of another":   {"DPoP", dkey, func(c map[string]any) { c["ath"] = ath("other") }, 401},
		"stale":            {"DPoP", dkey, func(c map[string]any) { c["iat"] = start.Add(-time.Hour).Unix() }, 401},
		"no proof":         {"DPoP", nil, nil, 401},
		"nonce not needed": {"DPoP", dkey, func(c map[string]any) { c["nonce"] = nonce }, 200},
	}
	for name, tt := range api {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, groupsURL+"?limit=1", nil)
			req.Header.Set("Authorization", tt.scheme+" "+tr.AccessToken)
			if tt.key != nil {
				c := map[string]any{"htm": "GET", "htu": groupsURL, "iat": start.Unix(), "jti": "api-" + name, "ath": ath(tr.AccessToken)}
				tt.mod(c)
				req.Header.Set("DPoP", signProof(t, tt.key, c))
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}
