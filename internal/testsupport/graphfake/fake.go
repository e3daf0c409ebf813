// Package graphfake is a strict in-memory Microsoft Graph (groups, transitive members, change
// notification subscriptions) with the Microsoft identity platform's client-credentials token endpoint,
// for tests. It follows Graph's documented behaviour: bearer tokens with an expiry, $top of at most
// 999, @odata.nextLink paging with opaque skip tokens, change tracking with /groups/delta (delta.go), the advanced query parameters (ConsistencyLevel:
// eventual and $count=true) that endsWith, ne, not and OData casts require, 429/503 with Retry-After,
// and Graph's error bodies. It rejects what Graph rejects: unknown query options, unknown $select
// properties, malformed ids, subscriptions beyond 41,760 minutes. The app's application permissions
// (Config.Permissions, SetPermissions) are checked per endpoint as each Graph page lists them, and
// members the app may not read come back with @odata.type and id only (permissions.go).
package graphfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config describes the tenant and app the fake accepts.
type Config struct {
	TenantID, ClientID, ClientSecret string
	// PageSize is the most items one page holds whatever $top asks (Graph may return fewer than
	// $top); 100, Graph's default page size, if zero.
	PageSize int
	// TokenLifetime of issued access tokens; 3599 s if zero.
	TokenLifetime time.Duration
	Now           func() time.Time // time.Now if nil
	// ValidationClient, when set, is used for Graph's validation handshake on subscription creation:
	// a POST of ?validationToken=... to each notification URL, which must echo the token.
	ValidationClient *http.Client
	// Permissions are the application permissions the app holds (admin consented);
	// DefaultPermissions if nil. Each endpoint checks the ones its Graph page requires (see
	// permissions.go): a missing one is a 403 there, or members with limited information.
	Permissions []Permission
}

// Throttle makes the fake answer some requests as throttled.
type Throttle struct {
	Path          string // requests whose path contains this; all if empty
	NextPagesOnly bool   // only requests that continue a listing (carry $skiptoken)
	Times         int    // how many requests; 1 if zero
	Status        int    // 429 if zero; Graph also answers 503 with Retry-After
	RetryAfter    string // the Retry-After header, in seconds as Graph sends it; none if empty
}

// Request is one request the fake received.
type Request struct {
	Method, Path     string
	Query            url.Values
	ConsistencyLevel string
}

// Fake is an http.Handler; serve it with httptest.NewServer and point the client's authority and
// Graph URLs at the server. It is safe for concurrent use.
type Fake struct {
	cfg Config

	mu          sync.Mutex
	tokens      map[string]time.Time // access token -> expiry
	tokenCalls  int
	perms       []Permission
	groups      map[string]*group
	objects     map[string]*object // users and other directory objects, by id
	skipTokens  map[string]cursor
	throttles   []Throttle
	subs        map[string]*Subscription
	reauthCalls map[string]int
	log         []Request
	deltaTokens map[string]*deltaState // $deltatoken -> the state it was issued for
	deltaPages  map[string]*deltaPages // $skiptoken of a delta round -> the rest of the round
}

type group struct {
	id, displayName, mail string
	members               []string
}

type object struct {
	id, typ, mail, upn string
	disabled           bool // accountEnabled false
}

// cursor is where a skip token continues: the request it belongs to and the offset.
type cursor struct {
	key    string
	offset int
}

// New returns an empty tenant.
func New(c Config) *Fake {
	if c.PageSize <= 0 {
		c.PageSize = 100
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = 3599 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Permissions == nil {
		c.Permissions = DefaultPermissions
	}
	return &Fake{
		cfg: c, perms: slices.Clone(c.Permissions), tokens: map[string]time.Time{}, groups: map[string]*group{}, objects: map[string]*object{},
		skipTokens: map[string]cursor{}, subs: map[string]*Subscription{}, reauthCalls: map[string]int{},
		deltaTokens: map[string]*deltaState{}, deltaPages: map[string]*deltaPages{},
	}
}

// AddUser adds or replaces a user; mail may be empty (Graph returns null).
func (f *Fake) AddUser(id, mail, userPrincipalName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[strings.ToLower(id)] = &object{id: id, typ: "#microsoft.graph.user", mail: mail, upn: userPrincipalName}
}

// SetAccountEnabled enables or disables a user's sign-in (accountEnabled), as an administrator
// blocking a leaver does. The user stays in its groups.
func (f *Fake) SetAccountEnabled(id string, enabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, ok := f.objects[strings.ToLower(id)]; ok {
		o.disabled = !enabled
	}
}

// AddObject adds a member that is not a user, e.g. "#microsoft.graph.orgContact" with a mail, or
// "#microsoft.graph.device".
func (f *Fake) AddObject(id, odataType, mail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[strings.ToLower(id)] = &object{id: id, typ: odataType, mail: mail}
}

// AddGroup adds or replaces a group. Members are ids of users, objects or groups (nesting).
func (f *Fake) AddGroup(id, displayName, mail string, members ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[strings.ToLower(id)] = &group{id: id, displayName: displayName, mail: mail, members: slices.Clone(members)}
}

// DeleteGroup removes a group.
func (f *Fake) DeleteGroup(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.groups, strings.ToLower(id))
}

// Throttle queues throttled answers; queued throttles apply in order.
func (f *Fake) Throttle(t Throttle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Times <= 0 {
		t.Times = 1
	}
	if t.Status == 0 {
		t.Status = http.StatusTooManyRequests
	}
	f.throttles = append(f.throttles, t)
}

// RevokeTokens invalidates every issued access token before its expiry.
func (f *Fake) RevokeTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

// TokenRequests counts the successful token requests.
func (f *Fake) TokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCalls
}

// Requests returns every request received so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("request-id", newID())
	f.mu.Lock()
	f.log = append(f.log, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), ConsistencyLevel: r.Header.Get("ConsistencyLevel")})
	if t, ok := f.throttled(r); ok {
		f.mu.Unlock()
		if t.RetryAfter != "" {
			w.Header().Set("Retry-After", t.RetryAfter)
		}
		code := "TooManyRequests"
		if t.Status == http.StatusServiceUnavailable {
			code = "serviceNotAvailable"
		}
		writeError(w, t.Status, code, "Please retry again later.")
		return
	}
	f.mu.Unlock()

	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) == 4 && strings.EqualFold(segs[1], "oauth2") && segs[2] == "v2.0" && segs[3] == "token" {
		f.token(w, r, segs[0])
		return
	}
	if len(segs) < 2 || segs[0] != "v1.0" {
		writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid version: %s", segs[0]))
		return
	}
	if !f.authorized(w, r) {
		return
	}
	switch {
	case strings.EqualFold(segs[1], "groups"):
		f.serveGroups(w, r, segs[2:])
	case strings.EqualFold(segs[1], "subscriptions"):
		f.serveSubscriptions(w, r, segs[2:])
	default:
		writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", segs[1]))
	}
}

// throttled consumes a matching queued throttle. Called with f.mu held.
func (f *Fake) throttled(r *http.Request) (Throttle, bool) {
	for i, t := range f.throttles {
		if !strings.Contains(r.URL.Path, t.Path) || (t.NextPagesOnly && !r.URL.Query().Has("$skiptoken")) {
			continue
		}
		if f.throttles[i].Times--; f.throttles[i].Times == 0 {
			f.throttles = slices.Delete(f.throttles, i, i+1)
		}
		return t, true
	}
	return Throttle{}, false
}

// token is the client-credentials grant of POST /{tenant}/oauth2/v2.0/token.
func (f *Fake) token(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body is not a valid form.")
		return
	}
	form := r.PostForm
	ownScope := "http://" + r.Host + "/.default"
	switch {
	case !strings.EqualFold(tenant, f.cfg.TenantID):
		tokenError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	case form.Get("grant_type") != "client_credentials":
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
	case form.Get("client_id") != f.cfg.ClientID:
		tokenError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", form.Get("client_id"), tenant))
	case form.Get("client_secret") != f.cfg.ClientSecret:
		tokenError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", f.cfg.ClientID))
	case form.Get("scope") != ownScope && form.Get("scope") != "https://graph.microsoft.com/.default":
		tokenError(w, http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", form.Get("scope")))
	default:
		tok := newID() + newID()
		f.mu.Lock()
		f.tokens[tok] = f.cfg.Now().Add(f.cfg.TokenLifetime)
		f.tokenCalls++
		f.mu.Unlock()
		secs := int(f.cfg.TokenLifetime / time.Second)
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok})
	}
}

func tokenError(w http.ResponseWriter, status int, code string, aadsts int, msg string) {
	now := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, msg, newID(), newID(), now),
		"error_codes":       []int{aadsts},
		"timestamp":         now,
		"trace_id":          newID(),
		"correlation_id":    newID(),
		"error_uri":         "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	})
}

// authorized checks the bearer token of a Graph request; each endpoint checks its permissions.
func (f *Fake) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	exp, known := f.tokens[tok]
	f.mu.Unlock()
	switch {
	case !ok || tok == "":
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	case !known:
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	case !f.cfg.Now().Before(exp):
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
	default:
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes Graph's error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": w.Header().Get("request-id"), "client-request-id": newID()},
	}})
}

// newID returns a random GUID-shaped id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
