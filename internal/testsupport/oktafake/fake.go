// Package oktafake is a strict stand-in for the parts of Okta's management API that source/okta uses:
// the Groups API (list with search or filter, get one, list members), the System Log API's polling
// requests (logs.go) with events recorded as groups and memberships change, paging by Link headers, the
// per-minute rate limit answered with 429 and X-Rate-Limit-* headers, SSWS API tokens, and the org
// authorization server's client-credentials token endpoint with private_key_jwt client authentication.
//
// It rejects what Okta rejects (bad expressions, page sizes over the maximum, bad or expired credentials,
// malformed or replayed client assertions) and, so that tests cannot pass by accident, also the documented
// parameters it does not implement (q, expand, sortBy, sortOrder) and any parameter Okta does not document.
// Service apps: RequireDPoP and SetAdminRole reproduce Okta's two service-app settings that break a client
// without DPoP or an app without an admin role; with DPoP required, the token endpoint and the APIs verify
// DPoP proofs (dpop.go).
// Simplifications: one rate-limit bucket for all API endpoints; profile comparisons are case-insensitive.
package oktafake

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Page-size maxima the fake enforces, each also the page size when limit is absent. Okta documents 10000
// as the group listing's default and "strongly encourages" a limit of at most 200 without refusing more
// (https://developer.okta.com/docs/api/resources/groups); it documents 1000 as the member listing's
// default. Inference: the defaults are the largest pages Okta serves, so larger limits are refused.
const (
	MaxGroupsLimit  = 10000
	MaxMembersLimit = 1000
)

// Group is a group as the fake stores it.
type Group struct {
	ID, Name, Description                       string
	Type                                        string            // OKTA_GROUP when empty
	SourceID                                    string            // APP_GROUP: the id of the app it is imported from (search: source.id)
	Profile                                     map[string]string // custom profile attributes (search: profile.<name>)
	Created, LastUpdated, LastMembershipUpdated time.Time
}

func (g *Group) typ() string {
	if g.Type == "" {
		return "OKTA_GROUP"
	}
	return g.Type
}

// User is a user as the fake stores it.
type User struct {
	ID, Login string
	Email     string // empty: profile.email is null, as for some imported users
	Status    string // ACTIVE when empty
}

type oauthClient struct {
	key    *rsa.PublicKey
	keyID  string
	scopes []string
	// dpop: the app has "Require Demonstrating Proof of Possession (DPoP) header in token requests" on
	// (settings.oauthClient.dpop_bound_access_tokens); Okta turns it on by default for new API service
	// apps. https://developer.okta.com/docs/guides/dpop/oktaresourceserver/main/
	dpop bool
	// noRole: the app has no admin role. Okta assigns none to a service app by default; without one the
	// app gets tokens but every management call is refused. https://developer.okta.com/docs/reference/api/roles
	noRole bool
}

type accessToken struct {
	scopes []string
	expiry time.Time
	noRole bool   // issued to a service app without an admin role
	jkt    string // DPoP-bound: the thumbprint of the proof key; "" for a Bearer token
}

// Server is a running fake Okta org on 127.0.0.1 with TLS (Okta serves only HTTPS).
type Server struct {
	URL string // https://127.0.0.1:port, the org URL

	srv *httptest.Server

	mu            sync.Mutex
	now           func() time.Time
	groups        map[string]*Group
	users         map[string]*User
	members       map[string]map[string]bool // group id -> user ids
	apiTokens     map[string]bool
	clients       map[string]*oauthClient
	access        map[string]accessToken
	usedJTI       map[string]bool
	pageSize      int // server-side cap on items per page; Okta may return fewer than asked
	rateLimit     int // API requests per minute
	window        time.Time
	used          int
	failures      []int
	linkBase      string
	requests      []string
	tokenRequests int
	events        []logEvent // the System Log, in the order stored
	dpopNonce     string     // the DPoP-Nonce the token endpoint wants in proofs
	usedDPoPJTI   map[string]bool
}

// New starts a fake org. Close it when done.
func New() *Server {
	s := &Server{
		now:         time.Now,
		groups:      map[string]*Group{},
		users:       map[string]*User{},
		members:     map[string]map[string]bool{},
		apiTokens:   map[string]bool{},
		clients:     map[string]*oauthClient{},
		access:      map[string]accessToken{},
		usedJTI:     map[string]bool{},
		usedDPoPJTI: map[string]bool{},
		dpopNonce:   randomHex(16),
		rateLimit:   600,
	}
	s.srv = httptest.NewUnstartedServer(s)
	// A client that dials a spare connection and never uses it makes the server log a handshake error
	// at Close; that is noise, everything else still gets logged.
	s.srv.Config.ErrorLog = log.New(handshakeFilter{os.Stderr}, "", log.LstdFlags)
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

type handshakeFilter struct{ w io.Writer }

func (f handshakeFilter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("http: TLS handshake error")) {
		return len(p), nil
	}
	return f.w.Write(p)
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Client returns an HTTP client that trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Certificate is the server's TLS certificate, for clients in other processes to trust.
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// SetNow sets the fake's clock (rate-limit windows, token expiry, Date headers).
func (s *Server) SetNow(now func() time.Time) { s.with(func() { s.now = now }) }

// AddAPIToken accepts token as `Authorization: SSWS <token>`.
func (s *Server) AddAPIToken(token string) { s.with(func() { s.apiTokens[token] = true }) }

// RevokeAPIToken makes Okta refuse an API token from now on, as when an admin revokes it.
func (s *Server) RevokeAPIToken(token string) { s.with(func() { delete(s.apiTokens, token) }) }

// AddGroup adds or replaces a group.
func (s *Server) AddGroup(g Group) {
	g.Profile = maps.Clone(g.Profile)
	s.with(func() {
		event := "group.lifecycle.create"
		if s.groups[g.ID] != nil {
			event = "group.profile.update"
		}
		s.groups[g.ID] = &g
		s.logEvent(event, groupTarget(g.ID))
	})
}

// RemoveGroup deletes a group and its memberships.
func (s *Server) RemoveGroup(id string) {
	s.with(func() {
		if s.groups[id] != nil {
			s.logEvent("group.lifecycle.delete", groupTarget(id))
		}
		delete(s.groups, id)
		delete(s.members, id)
	})
}

// AddUser adds or replaces a user. Replacing one that changes its status to DEPROVISIONED or back to
// ACTIVE logs user.lifecycle.deactivate or user.lifecycle.activate.
func (s *Server) AddUser(u User) {
	s.with(func() {
		if old := s.users[u.ID]; old != nil && status(old) != status(&u) {
			switch status(&u) {
			case "DEPROVISIONED":
				s.logEvent("user.lifecycle.deactivate", userTarget(u.ID))
			case "ACTIVE":
				s.logEvent("user.lifecycle.activate", userTarget(u.ID))
			}
		}
		s.users[u.ID] = &u
	})
}

func status(u *User) string {
	if u.Status == "" {
		return "ACTIVE"
	}
	return u.Status
}

// AddMember puts a user into a group; both must exist.
func (s *Server) AddMember(groupID, userID string) {
	s.with(func() {
		if s.groups[groupID] == nil || s.users[userID] == nil {
			panic(fmt.Sprintf("oktafake: AddMember(%q, %q): unknown group or user", groupID, userID))
		}
		if s.members[groupID] == nil {
			s.members[groupID] = map[string]bool{}
		}
		if !s.members[groupID][userID] {
			s.logEvent("group.user_membership.add", userTarget(userID), groupTarget(groupID))
		}
		s.members[groupID][userID] = true
	})
}

// RemoveMember takes a user out of a group.
func (s *Server) RemoveMember(groupID, userID string) {
	s.with(func() {
		if s.members[groupID][userID] {
			s.logEvent("group.user_membership.remove", userTarget(userID), groupTarget(groupID))
		}
		delete(s.members[groupID], userID)
	})
}

// SetPageSize caps the items per page below the requested limit (0: no cap), to get many pages cheaply.
func (s *Server) SetPageSize(n int) { s.with(func() { s.pageSize = n }) }

// SetRateLimit sets how many API requests each clock minute allows before answering 429.
func (s *Server) SetRateLimit(perMinute int) { s.with(func() { s.rateLimit = perMinute }) }

// FailNext answers the next API requests (after authentication) with these statuses, one each.
func (s *Server) FailNext(statuses ...int) {
	s.with(func() { s.failures = append(s.failures, statuses...) })
}

// SetLinkBase makes next links point at base (scheme://host) instead of the fake itself.
func (s *Server) SetLinkBase(base string) { s.with(func() { s.linkBase = base }) }

// Requests returns the API requests seen so far as "path?query" (token requests excluded).
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// TokenRequests returns how many requests the token endpoint has seen.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

func (s *Server) with(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// ServeHTTP routes one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// Okta's Date header is what clients should measure X-Rate-Limit-Reset against.
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	switch {
	case r.URL.Path == "/oauth2/v1/token":
		s.tokenRequests++
		s.token(w, r, now)
	case r.URL.Path == "/api/v1/groups" || strings.HasPrefix(r.URL.Path, "/api/v1/groups/") || r.URL.Path == "/api/v1/logs":
		s.requests = append(s.requests, r.URL.Path+"?"+r.URL.RawQuery)
		s.api(w, r, now)
	default:
		apiError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+r.URL.Path)
	}
}

func (s *Server) api(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
		return
	}
	scopes, noRole, ok := s.authenticate(r, now)
	if !ok {
		if strings.HasPrefix(r.Header.Get("Authorization"), "DPoP ") {
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof", error_description="The DPoP proof or token is not valid."`)
		}
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="IdpError", error="invalid_token", error_description="The token is not valid."`)
		}
		apiError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return
	}
	// Each endpoint's scope, as its reference page names it: okta.groups.read for the Groups API
	// (https://developer.okta.com/docs/api/resources/groups), okta.logs.read for the System Log
	// (https://developer.okta.com/docs/api/resources/system_log).
	scope := "okta.groups.read"
	if r.URL.Path == "/api/v1/logs" {
		scope = "okta.logs.read"
	}
	if scopes != nil && !slices.Contains(scopes, scope) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="IdpError", error="insufficient_scope", error_description="The access token provided does not contain the required scopes."`)
		apiError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
		return
	}
	if noRole {
		apiError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
		return
	}
	if !s.admit(w, now) {
		apiError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
		return
	}
	if len(s.failures) > 0 {
		status := s.failures[0]
		s.failures = s.failures[1:]
		apiError(w, status, "E0000009", "Internal Server Error")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/groups")
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case r.URL.Path == "/api/v1/logs":
		s.listLogs(w, r, now)
	case rest == "":
		s.listGroups(w, r)
	case len(parts) == 1 && parts[0] != "":
		s.getGroup(w, r, parts[0])
	case len(parts) == 2 && parts[0] != "" && parts[1] == "users":
		s.listMembers(w, r, parts[0])
	default:
		apiError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+r.URL.Path)
	}
}

// admit counts the request against the current minute's budget and sets Okta's rate-limit headers.
func (s *Server) admit(w http.ResponseWriter, now time.Time) bool {
	window := now.Truncate(time.Minute)
	if !window.Equal(s.window) {
		s.window, s.used = window, 0
	}
	h := w.Header()
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(s.rateLimit))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(window.Add(time.Minute).Unix(), 10))
	if s.used >= s.rateLimit {
		h.Set("X-Rate-Limit-Remaining", "0")
		return false
	}
	s.used++
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(s.rateLimit-s.used))
	return true
}

// query checks the query against the parameters an endpoint takes; each may appear once.
func query(w http.ResponseWriter, r *http.Request, allowed ...string) (url.Values, bool) {
	q := r.URL.Query()
	for k, v := range q {
		switch {
		case slices.Contains([]string{"q", "expand", "sortBy", "sortOrder"}, k) && slices.Contains(allowed, "search"):
			apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: "+k+" (not implemented by oktafake)")
			return nil, false
		case !slices.Contains(allowed, k):
			apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: unknown query parameter "+k)
			return nil, false
		case len(v) != 1:
			apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: "+k+" given more than once")
			return nil, false
		}
	}
	return q, true
}

func limit(w http.ResponseWriter, q url.Values, max int) (int, bool) {
	v := q.Get("limit")
	if v == "" {
		return max, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		apiError(w, http.StatusBadRequest, "E0000001", fmt.Sprintf("Api validation failed: limit must be between 1 and %d", max))
		return 0, false
	}
	return n, true
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	q, ok := query(w, r, "search", "filter", "after", "limit")
	if !ok {
		return
	}
	n, ok := limit(w, q, MaxGroupsLimit)
	if !ok {
		return
	}
	match := func(*Group) bool { return true }
	search, filter := q.Get("search"), q.Get("filter")
	switch {
	case search != "" && filter != "":
		apiError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria: search and filter together")
		return
	case search != "" || filter != "":
		expr, mode := search, modeSearch
		if filter != "" {
			expr, mode = filter, modeFilter
		}
		var custom []string
		for _, g := range s.groups {
			custom = append(custom, slices.Collect(maps.Keys(g.Profile))...)
		}
		pred, err := parseExpr(expr, mode, custom...)
		if err != nil {
			apiError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria: "+err.Error())
			return
		}
		match = pred
	}
	var ids []string
	for id, g := range s.groups {
		if match(g) {
			ids = append(ids, id)
		}
	}
	page, more := s.page(ids, q.Get("after"), n)
	out := make([]groupJSON, 0, len(page))
	for _, id := range page {
		out = append(out, s.groupJSON(r, s.groups[id]))
	}
	s.writePage(w, r, q, out, page, more)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, id string) {
	if _, ok := query(w, r); !ok {
		return
	}
	g := s.groups[id]
	if g == nil {
		apiError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+id+" (UserGroup)")
		return
	}
	writeJSON(w, http.StatusOK, s.groupJSON(r, g))
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, groupID string) {
	q, ok := query(w, r, "after", "limit")
	if !ok {
		return
	}
	n, ok := limit(w, q, MaxMembersLimit)
	if !ok {
		return
	}
	if s.groups[groupID] == nil {
		apiError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+groupID+" (UserGroup)")
		return
	}
	page, more := s.page(slices.Collect(maps.Keys(s.members[groupID])), q.Get("after"), n)
	out := make([]userJSON, 0, len(page))
	for _, id := range page {
		out = append(out, s.userJSON(r, s.users[id]))
	}
	s.writePage(w, r, q, out, page, more)
}

// page orders ids and returns those after the cursor, at most n (and the fake's page size).
func (s *Server) page(ids []string, after string, n int) (page []string, more bool) {
	slices.Sort(ids)
	if after != "" {
		i, _ := slices.BinarySearch(ids, after)
		for i < len(ids) && ids[i] <= after {
			i++
		}
		ids = ids[i:]
	}
	if s.pageSize > 0 && s.pageSize < n {
		n = s.pageSize
	}
	if len(ids) > n {
		return ids[:n], true
	}
	return ids, false
}

// writePage answers a listing the way Okta does: a JSON array, a self link and, when more remain, a next
// link carrying the same query with the `after` cursor. Each link is its own Link header.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, q url.Values, body any, page []string, more bool) {
	var next url.Values
	if more {
		next = maps.Clone(q)
		next.Set("after", page[len(page)-1])
	}
	s.writeLinked(w, r, q, next, body)
}

type link struct {
	Href string `json:"href"`
}

type groupJSON struct {
	ID                    string   `json:"id"`
	Created               string   `json:"created"`
	LastUpdated           string   `json:"lastUpdated"`
	LastMembershipUpdated string   `json:"lastMembershipUpdated"`
	ObjectClass           []string `json:"objectClass"`
	Type                  string   `json:"type"`
	Profile               struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"profile"`
	Links map[string]link `json:"_links"`
}

func (s *Server) groupJSON(r *http.Request, g *Group) groupJSON {
	out := groupJSON{
		ID: g.ID, Created: stamp(g.Created), LastUpdated: stamp(g.LastUpdated),
		LastMembershipUpdated: stamp(g.LastMembershipUpdated), ObjectClass: []string{"okta:user_group"}, Type: g.typ(),
		Links: map[string]link{"users": {Href: "https://" + r.Host + "/api/v1/groups/" + g.ID + "/users"}},
	}
	out.Profile.Name, out.Profile.Description = g.Name, g.Description
	return out
}

type userJSON struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Profile struct {
		FirstName   string  `json:"firstName"`
		LastName    string  `json:"lastName"`
		Login       string  `json:"login"`
		Email       *string `json:"email"`
		SecondEmail *string `json:"secondEmail"`
	} `json:"profile"`
	Links map[string]link `json:"_links"`
}

func (s *Server) userJSON(r *http.Request, u *User) userJSON {
	out := userJSON{ID: u.ID, Status: u.Status, Links: map[string]link{"self": {Href: "https://" + r.Host + "/api/v1/users/" + u.ID}}}
	if out.Status == "" {
		out.Status = "ACTIVE"
	}
	out.Profile.FirstName, out.Profile.LastName, out.Profile.Login = "Test", "User", u.Login
	if u.Email != "" {
		out.Profile.Email = &u.Email
	}
	return out
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client going away is not the fake's problem
}

// apiError writes Okta's error object.
func apiError(w http.ResponseWriter, status int, code, summary string) {
	writeJSON(w, status, map[string]any{
		"errorCode": code, "errorSummary": summary, "errorLink": code, "errorId": "oae" + randomHex(8), "errorCauses": []any{},
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
