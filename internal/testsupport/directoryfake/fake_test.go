package directoryfake

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The fake is exercised end to end by the google package's tests; these cover the refusals the client
// never provokes on purpose.

func newTestServer(t *testing.T) (*Server, string) {
	t.Helper()
	s := New(Options{})
	t.Cleanup(s.Close)
	s.AddGroup(Group{ID: "g1", Email: "wandb-a@example.com", Name: "A"})
	s.AddMembers("g1", Member{Email: "a@example.com"})
	tok := "test-token"
	s.tokens[tok] = issued{scopes: map[string]bool{ScopeGroupReadonly: true}, expiry: time.Now().Add(time.Hour)}
	s.tokens["members-only"] = issued{scopes: map[string]bool{ScopeMemberReadonly: true}, expiry: time.Now().Add(time.Hour)}
	s.tokens["group-rw"] = issued{scopes: map[string]bool{ScopeGroup: true}, expiry: time.Now().Add(time.Hour)}
	return s, tok
}

type apiAnswer struct {
	Error struct {
		Code   int `json:"code"`
		Errors []struct {
			Reason string `json:"reason"`
		} `json:"errors"`
	} `json:"error"`
	NextPageToken string `json:"nextPageToken"`
}

func get(t *testing.T, s *Server, token, uri string) (int, apiAnswer) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a apiAnswer
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%s: answer is not JSON: %s", uri, b)
	}
	return resp.StatusCode, a
}

func TestAPIRefusals(t *testing.T) {
	s, tok := newTestServer(t)
	otherListing := base64.RawURLEncoding.EncodeToString([]byte(`{"l":"members\u0000g1\u0000false\u0000","o":1}`))
	tests := []struct {
		name       string
		token      string
		uri        string
		wantStatus int
		wantReason string
	}{
		{"no token", "", "/admin/directory/v1/groups?customer=my_customer", 401, "required"},
		{"unknown token", "nope", "/admin/directory/v1/groups?customer=my_customer", 401, "authError"},
		{"token without the groups scope", "members-only", "/admin/directory/v1/groups?customer=my_customer", 403, "insufficientPermissions"},
		{"unknown parameter", tok, "/admin/directory/v1/groups?customer=my_customer&limit=10", 400, "invalid"},
		{"unknown parameter on get", tok, "/admin/directory/v1/groups/g1?includeDerivedMembership=true", 400, "invalid"},
		{"maxResults over 200", tok, "/admin/directory/v1/groups?customer=my_customer&maxResults=201", 400, "invalid"},
		{"maxResults zero", tok, "/admin/directory/v1/groups?customer=my_customer&maxResults=0", 400, "invalid"},
		{"maxResults not a number", tok, "/admin/directory/v1/groups?customer=my_customer&maxResults=all", 400, "invalid"},
		{"neither customer nor domain", tok, "/admin/directory/v1/groups", 400, "badRequest"},
		{"another customer", tok, "/admin/directory/v1/groups?customer=C999", 403, "forbidden"},
		{"query with an unknown field", tok, "/admin/directory/v1/groups?customer=my_customer&query=" + url.QueryEscape("owner=x"), 400, "invalid"},
		{"prefix without a star", tok, "/admin/directory/v1/groups?customer=my_customer&query=" + url.QueryEscape("email:wandb"), 400, "invalid"},
		{"unterminated quote", tok, "/admin/directory/v1/groups?customer=my_customer&query=" + url.QueryEscape("name='a"), 400, "invalid"},
		{"garbage page token", tok, "/admin/directory/v1/groups?customer=my_customer&pageToken=xyz", 400, "invalid"},
		{"page token of another listing", tok, "/admin/directory/v1/groups?customer=my_customer&pageToken=" + otherListing, 400, "invalid"},
		{"members maxResults over 200", tok, "/admin/directory/v1/groups/g1/members?maxResults=500", 400, "invalid"},
		{"includeDerivedMembership not a boolean", tok, "/admin/directory/v1/groups/g1/members?includeDerivedMembership=yes", 400, "invalid"},
		{"unknown role", tok, "/admin/directory/v1/groups/g1/members?roles=ADMIN", 400, "invalid"},
		{"members of an unknown group", tok, "/admin/directory/v1/groups/nope/members", 404, "notFound"},
		{"unknown group", tok, "/admin/directory/v1/groups/nope", 404, "notFound"},
		{"members with the member scope only", "members-only", "/admin/directory/v1/groups/g1/members", 200, ""},
		{"get group without a group scope", "members-only", "/admin/directory/v1/groups/g1", 403, "insufficientPermissions"},
		{"members with the group read-only scope", tok, "/admin/directory/v1/groups/g1/members", 200, ""},
		{"get group with the group read-only scope", tok, "/admin/directory/v1/groups/g1", 200, ""},
		{"groups with the read-write group scope", "group-rw", "/admin/directory/v1/groups?customer=my_customer", 200, ""},
		{"members with the read-write group scope", "group-rw", "/admin/directory/v1/groups/g1/members", 200, ""},
		{"groups by domain", tok, "/admin/directory/v1/groups?domain=example.com&maxResults=1", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := get(t, s, tt.token, tt.uri)
			reason := ""
			if len(a.Error.Errors) > 0 {
				reason = a.Error.Errors[0].Reason
			}
			if status != tt.wantStatus || reason != tt.wantReason {
				t.Errorf("GET %s = %d %q, want %d %q", tt.uri, status, reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestFaultCarriesRetryAfter(t *testing.T) {
	s, tok := newTestServer(t)
	s.FailWhen(func(*http.Request) bool { return true }, Fault{Status: 429, Reason: "rateLimitExceeded", RetryAfter: 3 * time.Second}, 1)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/admin/directory/v1/groups?customer=my_customer", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("got %d Retry-After %q, want 429 and 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if status, _ := get(t, s, tok, "/admin/directory/v1/groups?customer=my_customer"); status != 200 {
		t.Errorf("after the fault: %d, want 200", status)
	}
}

// sign makes an assertion with the fake's own key, so that only the claims are wrong.
func sign(t *testing.T, s *Server, header map[string]string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := s.key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestTokenRefusals(t *testing.T) {
	s, _ := newTestServer(t)
	now := time.Now().Unix()
	good := func() map[string]any {
		return map[string]any{"iss": s.ClientEmail, "sub": s.Admin, "scope": ScopeGroupReadonly, "aud": s.TokenURI, "iat": now, "exp": now + 3600}
	}
	with := func(k string, v any) map[string]any { c := good(); c[k] = v; return c }
	hdr := map[string]string{"alg": "RS256", "typ": "JWT", "kid": s.KeyID}
	tests := []struct {
		name      string
		grant     string
		assertion string
		wantCode  string
	}{
		{"valid", "", sign(t, s, hdr, good()), ""},
		{"wrong grant type", "client_credentials", sign(t, s, hdr, good()), "unsupported_grant_type"},
		{"not a JWT", "", "abc", "invalid_grant"},
		{"alg none", "", sign(t, s, map[string]string{"alg": "none"}, good()), "invalid_grant"},
		{"unknown kid", "", sign(t, s, map[string]string{"alg": "RS256", "kid": "old"}, good()), "invalid_grant"},
		{"tampered claims", "", func() string {
			p := strings.Split(sign(t, s, hdr, good()), ".")
			c, _ := json.Marshal(with("sub", "other@example.com"))
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + p[2]
		}(), "invalid_grant"},
		{"wrong audience", "", sign(t, s, hdr, with("aud", "https://oauth2.googleapis.com/token")), "invalid_grant"},
		{"lives longer than an hour", "", sign(t, s, hdr, with("exp", now+3601)), "invalid_grant"},
		{"expired", "", sign(t, s, hdr, with("exp", now-1)), "invalid_grant"},
		{"issued in the future", "", sign(t, s, hdr, with("iat", now+3000)), "invalid_grant"},
		{"not the admin", "", sign(t, s, hdr, with("sub", "user@example.com")), "invalid_grant"},
		{"no scope", "", sign(t, s, hdr, with("scope", "")), "invalid_scope"},
		{"scope not delegated", "", sign(t, s, hdr, with("scope", "https://www.googleapis.com/auth/admin.directory.user")), "unauthorized_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grant := tt.grant
			if grant == "" {
				grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
			}
			resp, err := http.PostForm(s.TokenURI, url.Values{"grant_type": {grant}, "assertion": {tt.assertion}})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			code, _ := body["error"].(string)
			if code != tt.wantCode {
				t.Errorf("token answer %d %v, want error %q", resp.StatusCode, body, tt.wantCode)
			}
			if tt.wantCode == "" && (body["access_token"] == "" || body["token_type"] != "Bearer") {
				t.Errorf("token answer %v has no bearer token", body)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	groups := []Group{
		{Email: "wandb-ml@example.com", Name: "W&B ML"},
		{Email: "wandb-rs@example.com", Name: "Valentine's Day"},
		{Email: "eng@example.com", Name: "wandb-eng"},
	}
	tests := []struct {
		query   string
		want    []int // indexes into groups
		wantErr bool
	}{
		{query: "", want: []int{0, 1, 2}},
		{query: "email:wandb-*", want: []int{0, 1}},
		{query: "email:WANDB-*", want: []int{0, 1}},
		{query: "name:wandb*", want: []int{2}},
		{query: "name='W&B ML'", want: []int{0}},
		{query: `name='Valentine\'s Day'`, want: []int{1}},
		{query: "email=eng@example.com", want: []int{2}},
		{query: "email:wandb-* name:w*", want: []int{0}},
		{query: "EMAIL:wandb-*", wantErr: true},
		{query: "memberKey=a@example.com", wantErr: true},
		{query: "name:*", wantErr: true},
	}
	for _, tt := range tests {
		match, err := parseQuery(tt.query)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseQuery(%q) error = %v, want error %v", tt.query, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		var got []int
		for i, g := range groups {
			if match(g) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("parseQuery(%q) matches %v, want %v", tt.query, got, tt.want)
		}
	}
}
