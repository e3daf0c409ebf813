package graphfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	tenant = "contoso.onmicrosoft.com"
	client = "client-id"
	secret = "client-secret"
	g1     = "aaaaaaaa-0000-0000-0000-000000000001"
	g2     = "aaaaaaaa-0000-0000-0000-000000000002"
	u1     = "bbbbbbbb-0000-0000-0000-000000000001"
	u2     = "bbbbbbbb-0000-0000-0000-000000000002"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	f     *Fake
	srv   *httptest.Server
	clock *testClock
	tok   string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c := &testClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := New(Config{TenantID: tenant, ClientID: client, ClientSecret: secret, PageSize: 1, Now: c.now})
	f.AddUser(u1, "one@example.com", "one@example.com")
	f.AddUser(u2, "", "two@example.com")
	f.AddGroup(g1, "wandb-a", "a@example.com", u1, g2)
	f.AddGroup(g2, "nested", "", u2)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	h := &harness{f: f, srv: srv, clock: c}
	h.tok = h.newToken(t)
	return h
}

// newToken gets an access token from the fake's token endpoint.
func (h *harness) newToken(t *testing.T) string {
	t.Helper()
	tok := h.tok
	h.tok = ""
	defer func() { h.tok = tok }()
	status, body := h.do(t, http.MethodPost, "/"+tenant+"/oauth2/v2.0/token", "", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {secret}, "scope": {h.srv.URL + "/.default"},
	}.Encode())
	if status != http.StatusOK {
		t.Fatalf("token: %d %s", status, body)
	}
	return body["access_token"].(string)
}

// do sends a request; body is form-encoded for the token endpoint and JSON elsewhere. hdr is a
// ConsistencyLevel value.
func (h *harness) do(t *testing.T, method, path, consistency, body string) (int, map[string]any) {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = h.srv.URL + path
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(path, "/oauth2/") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.tok != "" {
		req.Header.Set("Authorization", "Bearer "+h.tok)
	}
	if consistency != "" {
		req.Header.Set("ConsistencyLevel", consistency)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func errCode(m map[string]any) string {
	if e, ok := m["error"].(map[string]any); ok {
		c, _ := e["code"].(string)
		return c
	}
	c, _ := m["error"].(string)
	return c
}

func TestRejections(t *testing.T) {
	future := func(d time.Duration) string {
		return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(d).Format(time.RFC3339)
	}
	sub := func(exp, extra string) string {
		return `{"changeType":"updated,deleted","notificationUrl":"https://h.example/x","resource":"/groups","clientState":"s","expirationDateTime":"` + exp + `"` + extra + `}`
	}
	tests := []struct {
		name, method, path, consistency, body string
		noToken                               bool
		wantStatus                            int
		wantCode                              string
	}{
		{"$top over 999", "GET", "/v1.0/groups?$top=1000", "", "", false, 400, "Request_BadRequest"},
		{"$top zero", "GET", "/v1.0/groups/" + g1 + "/transitiveMembers?$top=0", "", "", false, 400, "Request_BadRequest"},
		{"unknown query option", "GET", "/v1.0/groups?$orderby=displayName", "", "", false, 400, "BadRequest"},
		{"unknown plain parameter", "GET", "/v1.0/groups?limit=5", "", "", false, 400, "BadRequest"},
		{"repeated option", "GET", "/v1.0/groups?$top=5&$top=6", "", "", false, 400, "BadRequest"},
		{"unknown $select property", "GET", "/v1.0/groups?$select=id,secret", "", "", false, 400, "BadRequest"},
		{"bad filter", "GET", "/v1.0/groups?$filter=" + url.QueryEscape("startswith(displayName,'x'"), "", "", false, 400, "BadRequest"},
		{"filter on an unsupported property", "GET", "/v1.0/groups?$filter=" + url.QueryEscape("mail eq 'x'"), "", "", false, 400, "BadRequest"},
		{"endswith without advanced parameters", "GET", "/v1.0/groups?$filter=" + url.QueryEscape("endswith(displayName,'a')"), "", "", false, 400, "Request_UnsupportedQuery"},
		{"endswith with only the header", "GET", "/v1.0/groups?$filter=" + url.QueryEscape("endswith(displayName,'a')"), "eventual", "", false, 400, "Request_UnsupportedQuery"},
		{"endswith with advanced parameters", "GET", "/v1.0/groups?$count=true&$filter=" + url.QueryEscape("endswith(displayName,'a')"), "eventual", "", false, 200, ""},
		{"not needs advanced parameters", "GET", "/v1.0/groups?$filter=" + url.QueryEscape("not(displayName eq 'a')"), "", "", false, 400, "Request_UnsupportedQuery"},
		{"cast without advanced parameters", "GET", "/v1.0/groups/" + g1 + "/transitiveMembers/microsoft.graph.user", "", "", false, 400, "Request_UnsupportedQuery"},
		{"cast with advanced parameters", "GET", "/v1.0/groups/" + g1 + "/transitiveMembers/microsoft.graph.user?$count=true", "eventual", "", false, 200, ""},
		{"forged skip token", "GET", "/v1.0/groups?$skiptoken=abc", "", "", false, 400, "Directory_ExpiredPageToken"},
		{"malformed group id", "GET", "/v1.0/groups/wandb-a", "", "", false, 400, "Request_BadRequest"},
		{"missing group", "GET", "/v1.0/groups/aaaaaaaa-0000-0000-0000-0000000000ff/transitiveMembers", "", "", false, 404, "Request_ResourceNotFound"},
		{"unknown segment", "GET", "/v1.0/groups/" + g1 + "/owners", "", "", false, 400, "BadRequest"},
		{"writing groups", "POST", "/v1.0/groups", "", "{}", false, 405, "Request_BadRequest"},
		{"no token", "GET", "/v1.0/groups", "", "", true, 401, "InvalidAuthenticationToken"},
		{"subscription beyond 41760 minutes", "POST", "/v1.0/subscriptions", "", sub(future(41761*time.Minute), ""), false, 400, "InvalidRequest"},
		{"subscription in the past", "POST", "/v1.0/subscriptions", "", sub(future(-time.Minute), ""), false, 400, "InvalidRequest"},
		{"subscription with an unknown property", "POST", "/v1.0/subscriptions", "", sub(future(time.Hour), `,"foo":1`), false, 400, "BadRequest"},
		{"subscription to created", "POST", "/v1.0/subscriptions", "", strings.Replace(sub(future(time.Hour), ""), "updated,deleted", "created,updated", 1), false, 400, "InvalidRequest"},
		{"subscription to http", "POST", "/v1.0/subscriptions", "", strings.Replace(sub(future(time.Hour), ""), "https://", "http://", 1), false, 400, "InvalidRequest"},
		{"subscription list with options", "GET", "/v1.0/subscriptions?$top=1", "", "", false, 400, "BadRequest"},
		{"missing subscription", "GET", "/v1.0/subscriptions/cccccccc-0000-0000-0000-000000000001", "", "", false, 404, "ResourceNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.noToken {
				h.tok = ""
			}
			status, body := h.do(t, tt.method, tt.path, tt.consistency, tt.body)
			if status != tt.wantStatus || errCode(body) != tt.wantCode {
				t.Errorf("%s %s = %d %q (%v), want %d %q", tt.method, tt.path, status, errCode(body), body, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestTokenEndpoint(t *testing.T) {
	h := newHarness(t)
	form := func(edit func(url.Values)) string {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {secret}, "scope": {h.srv.URL + "/.default"}}
		edit(v)
		return v.Encode()
	}
	tests := []struct {
		name, tenant, body string
		wantStatus         int
		wantCode           string
	}{
		{"wrong secret", tenant, form(func(v url.Values) { v.Set("client_secret", "x") }), 401, "invalid_client"},
		{"unknown client", tenant, form(func(v url.Values) { v.Set("client_id", "x") }), 400, "unauthorized_client"},
		{"unknown tenant", "fabrikam.com", form(func(url.Values) {}), 400, "invalid_request"},
		{"other grant", tenant, form(func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type"},
		{"scope without /.default", tenant, form(func(v url.Values) { v.Set("scope", h.srv.URL) }), 400, "invalid_scope"},
		{"ok", tenant, form(func(url.Values) {}), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.do(t, http.MethodPost, "/"+tt.tenant+"/oauth2/v2.0/token", "", tt.body)
			if status != tt.wantStatus || errCode(body) != tt.wantCode {
				t.Errorf("token = %d %v, want %d %q", status, body, tt.wantStatus, tt.wantCode)
			}
			if desc, _ := body["error_description"].(string); strings.Contains(desc, secret) {
				t.Errorf("the fake echoes the secret: %q", desc)
			}
		})
	}
}

func TestTokenExpires(t *testing.T) {
	h := newHarness(t)
	h.clock.advance(3599 * time.Second)
	if status, body := h.do(t, http.MethodGet, "/v1.0/groups", "", ""); status != 401 || errCode(body) != "InvalidAuthenticationToken" {
		t.Errorf("expired token: %d %v", status, body)
	}
}

// TestPaging walks next links and checks that they keep the query and that advanced queries count.
func TestPaging(t *testing.T) {
	h := newHarness(t)
	var ids []string
	link := "/v1.0/groups/" + g1 + "/transitiveMembers?$select=mail&$top=999&$count=true"
	for pages := 0; link != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		status, body := h.do(t, http.MethodGet, link, "eventual", "")
		if status != 200 {
			t.Fatalf("GET %s: %d %v", link, status, body)
		}
		if body["@odata.count"] != float64(3) {
			t.Errorf("@odata.count = %v, want 3", body["@odata.count"])
		}
		for _, v := range body["value"].([]any) {
			item := v.(map[string]any)
			if _, ok := item["id"]; ok {
				t.Errorf("$select=mail returned id: %v", item)
			}
			ids = append(ids, item["@odata.type"].(string))
		}
		link, _ = body["@odata.nextLink"].(string)
		if link != "" && (!strings.Contains(link, "%24select=mail") || !strings.Contains(link, "%24skiptoken=")) {
			t.Errorf("next link %q does not repeat the query", link)
		}
	}
	want := []string{"#microsoft.graph.user", "#microsoft.graph.group", "#microsoft.graph.user"} // breadth first
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("transitive members %v, want %v", ids, want)
	}
}

func TestThrottle(t *testing.T) {
	h := newHarness(t)
	h.f.Throttle(Throttle{Path: "/v1.0/groups", Times: 2, RetryAfter: "7"})
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1.0/groups", nil)
		req.Header.Set("Authorization", "Bearer "+h.tok)
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantStatus, wantRA := 429, "7"
		if i == 2 {
			wantStatus, wantRA = 200, ""
		}
		if resp.StatusCode != wantStatus || resp.Header.Get("Retry-After") != wantRA {
			t.Errorf("request %d: %d Retry-After %q, want %d %q", i, resp.StatusCode, resp.Header.Get("Retry-After"), wantStatus, wantRA)
		}
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	h := newHarness(t)
	exp := h.clock.now().Add(time.Hour).Format(time.RFC3339)
	status, body := h.do(t, http.MethodPost, "/v1.0/subscriptions", "", `{"changeType":"updated,deleted","notificationUrl":"https://h.example/x","resource":"/groups","clientState":"s3cret","expirationDateTime":"`+exp+`"}`)
	if status != 201 || body["clientState"] != "s3cret" {
		t.Fatalf("create: %d %v", status, body)
	}
	id := body["id"].(string)
	if status, body = h.do(t, http.MethodGet, "/v1.0/subscriptions/"+id, "", ""); status != 200 || body["clientState"] != nil {
		t.Errorf("get: %d %v; clientState must not be returned", status, body)
	}
	tooFar := h.clock.now().Add(MaxLifetime + time.Second).Format(time.RFC3339)
	if status, _ = h.do(t, http.MethodPatch, "/v1.0/subscriptions/"+id, "", `{"expirationDateTime":"`+tooFar+`"}`); status != 400 {
		t.Errorf("renewal beyond the limit: %d, want 400", status)
	}
	if status, _ = h.do(t, http.MethodPatch, "/v1.0/subscriptions/"+id, "", `{"clientState":"x"}`); status != 400 {
		t.Errorf("patching clientState: %d, want 400", status)
	}
	h.f.ExpireSubscription(id)
	if status, _ = h.do(t, http.MethodPost, "/v1.0/subscriptions/"+id+"/reauthorize", "", ""); status != 404 {
		t.Errorf("reauthorizing an expired subscription: %d, want 404", status)
	}
}
