// Package directoryfake is a strict in-process fake of Google's OAuth token endpoint (service account
// JWT grant) and of the Admin SDK Directory API calls the agent makes: groups.list, groups.get and
// members.list. It behaves as Google documents: RS256 assertions checked for signature, issuer,
// audience, lifetime (≤ 1 h), subject and delegated scopes; maxResults in [1, 200]; opaque pageToken
// paging bound to the listing that issued it; derived (nested) membership; the groups search syntax;
// unknown query parameters refused; and throttling answers (429, 403 userRateLimitExceeded) that tests
// inject in the middle of a listing.
package directoryfake

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Scopes the fake knows. Listing groups needs ScopeGroupReadonly; listing members either scope.
const (
	ScopeGroupReadonly  = "https://www.googleapis.com/auth/admin.directory.group.readonly"
	ScopeMemberReadonly = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"
)

// Member types and statuses as the Directory API spells them.
const (
	TypeUser     = "USER"
	TypeGroup    = "GROUP"
	TypeCustomer = "CUSTOMER"

	StatusActive    = "ACTIVE"
	StatusSuspended = "SUSPENDED"
)

const (
	maxResultsLimit = 200
	tokenLifetime   = 3599 * time.Second
	// Google tolerates a little clock skew on iat.
	allowedSkew = 5 * time.Minute
)

// Group is a group in the fake directory.
type Group struct {
	ID    string
	Email string
	Name  string
}

// Member is a direct member of a group. For Type GROUP, Email (or ID) names another group of the fake,
// whose members then count as derived members.
type Member struct {
	ID     string // generated when empty
	Email  string
	Type   string // TypeUser when empty
	Status string // StatusActive for users when empty
	Role   string // MEMBER when empty
}

// Fault is an error answer the fake gives instead of serving a request.
type Fault struct {
	Status     int
	Reason     string
	Message    string
	RetryAfter time.Duration // sent as Retry-After when non-zero
}

// The throttling answers Google documents for the Directory API, and a server error.
var (
	RateLimitExceeded     = Fault{Status: http.StatusTooManyRequests, Reason: "rateLimitExceeded", Message: "Rate Limit Exceeded"}
	UserRateLimitExceeded = Fault{Status: http.StatusForbidden, Reason: "userRateLimitExceeded", Message: "User Rate Limit Exceeded"}
	BackendError          = Fault{Status: http.StatusServiceUnavailable, Reason: "backendError", Message: "Backend Error"}
)

// Options configure a Server; every field has a default.
type Options struct {
	ClientEmail string // the service account; default agent@fake-project.iam.gserviceaccount.com
	Admin       string // the only subject that may be impersonated; default admin@example.com
	CustomerID  string // the customer's ID, also reachable as my_customer; default C00fake
	// DelegatedScopes are the scopes domain-wide delegation grants; both read-only scopes by default.
	DelegatedScopes []string
	// PageSize caps a page below maxResults, as the real API may; 0 means maxResults alone decides.
	PageSize int
	Now      func() time.Time
}

// Server is a running fake. Its URL is the Directory API base URL; TokenURI is its token endpoint.
type Server struct {
	URL         string
	TokenURI    string
	ClientEmail string
	Admin       string
	KeyID       string

	customerID string
	delegated  map[string]bool
	pageSize   int
	now        func() time.Time
	key        *rsa.PrivateKey
	srv        *httptest.Server

	mu       sync.Mutex
	groups   []Group
	members  map[string][]Member // by group ID
	tokens   map[string]issued
	issued   []string
	faults   []*fault
	requests []string
	nextID   int
}

type issued struct {
	scopes map[string]bool
	expiry time.Time
}

type fault struct {
	match func(*http.Request) bool
	f     Fault
	left  int
}

// New starts a fake on 127.0.0.1. Close it when done.
func New(o Options) *Server {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("directoryfake: generate key: %v", err))
	}
	s := &Server{
		ClientEmail: cmp.Or(o.ClientEmail, "agent@fake-project.iam.gserviceaccount.com"),
		Admin:       cmp.Or(o.Admin, "admin@example.com"),
		KeyID:       randomHex(20),
		customerID:  cmp.Or(o.CustomerID, "C00fake"),
		delegated:   map[string]bool{},
		pageSize:    o.PageSize,
		now:         o.Now,
		key:         key,
		members:     map[string][]Member{},
		tokens:      map[string]issued{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	scopes := o.DelegatedScopes
	if scopes == nil {
		scopes = []string{ScopeGroupReadonly, ScopeMemberReadonly}
	}
	for _, sc := range scopes {
		s.delegated[sc] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("GET /admin/directory/v1/groups", s.listGroups)
	mux.HandleFunc("GET /admin/directory/v1/groups/{groupKey}", s.getGroup)
	mux.HandleFunc("GET /admin/directory/v1/groups/{groupKey}/members", s.listMembers)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiErr(w, http.StatusNotFound, "notFound", "Not Found")
	})
	s.srv = httptest.NewServer(s.intercept(mux))
	s.URL = s.srv.URL
	s.TokenURI = s.srv.URL + "/token"
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// CredentialsJSON returns a service account key file for the fake's service account, as the Cloud
// console downloads it.
func (s *Server) CredentialsJSON() []byte {
	return KeyFile(s.ClientEmail, s.KeyID, s.TokenURI, s.key)
}

// KeyFile renders a service account key file; tests use it to forge keys the fake must refuse.
func KeyFile(clientEmail, keyID, tokenURI string, key *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(fmt.Sprintf("directoryfake: marshal key: %v", err))
	}
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  "fake-project",
		"private_key_id":              keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                clientEmail,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("directoryfake: marshal key file: %v", err))
	}
	return b
}

// AddGroup adds or replaces (by ID) a group.
func (s *Server) AddGroup(g Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = slices.DeleteFunc(s.groups, func(o Group) bool { return o.ID == g.ID })
	s.groups = append(s.groups, g)
}

// RemoveGroup deletes a group and its memberships.
func (s *Server) RemoveGroup(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = slices.DeleteFunc(s.groups, func(o Group) bool { return o.ID == id })
	delete(s.members, id)
}

// AddMembers adds direct members to the group with that ID.
func (s *Server) AddMembers(groupID string, ms ...Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		if m.Type == "" {
			m.Type = TypeUser
		}
		if m.Status == "" && m.Type == TypeUser {
			m.Status = StatusActive
		}
		if m.Role == "" {
			m.Role = "MEMBER"
		}
		if m.ID == "" {
			if g, ok := s.findGroup(m.Email); ok && m.Type == TypeGroup {
				m.ID = g.ID
			} else {
				s.nextID++
				m.ID = fmt.Sprintf("1%020d", s.nextID)
			}
		}
		s.members[groupID] = append(s.members[groupID], m)
	}
}

// FailWhen answers the next `times` requests that match with f instead of serving them.
func (s *Server) FailWhen(match func(*http.Request) bool, f Fault, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{match: match, f: f, left: times})
}

// RevokeTokens makes every access token issued so far invalid, as revoking the key would.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// IssuedTokens returns every access token handed out, oldest first.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// Requests returns "METHOD path?query" of every request served, oldest first.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// intercept records the request and answers it with an injected fault when one matches.
func (s *Server) intercept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
		var hit *Fault
		for _, f := range s.faults {
			if f.left > 0 && f.match(r) {
				f.left--
				hit = &f.f
				break
			}
		}
		s.mu.Unlock()
		if hit == nil {
			next.ServeHTTP(w, r)
			return
		}
		if hit.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(hit.RetryAfter/time.Second)))
		}
		apiErr(w, hit.Status, hit.Reason, hit.Message)
	})
}

// token implements the JWT bearer grant of https://oauth2.googleapis.com/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthErr(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(w, http.StatusBadRequest, "invalid_request", "Malformed form body")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthErr(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
		return
	}
	claims, problem := s.verifyAssertion(r.PostForm.Get("assertion"))
	if problem != "" {
		oauthErr(w, http.StatusBadRequest, "invalid_grant", problem)
		return
	}
	if !strings.EqualFold(claims.Sub, s.Admin) {
		oauthErr(w, http.StatusBadRequest, "invalid_grant", "Invalid email or User ID")
		return
	}
	scopes := map[string]bool{}
	for _, sc := range strings.Fields(claims.Scope) {
		scopes[sc] = true
	}
	if len(scopes) == 0 {
		oauthErr(w, http.StatusBadRequest, "invalid_scope", "Empty or missing scope not allowed.")
		return
	}
	for sc := range scopes {
		if !s.delegated[sc] {
			oauthErr(w, http.StatusUnauthorized, "unauthorized_client",
				"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")
			return
		}
	}
	tok := "ya29.fake-" + randomHex(24)
	s.mu.Lock()
	s.tokens[tok] = issued{scopes: scopes, expiry: s.now().Add(tokenLifetime)}
	s.issued = append(s.issued, tok)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_in":   int(tokenLifetime / time.Second),
		"token_type":   "Bearer",
	})
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// verifyAssertion checks the JWT as Google does and returns what is wrong in Google's words.
func (s *Server) verifyAssertion(a string) (jwtClaims, string) {
	const badSig = "Invalid JWT Signature."
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return jwtClaims{}, "Invalid JWT: not a compact JWS"
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return jwtClaims{}, "Invalid JWT: not base64url"
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if json.Unmarshal(hb, &h) != nil || h.Alg != "RS256" {
		return jwtClaims{}, "Invalid JWT: alg must be RS256"
	}
	if h.Kid != "" && h.Kid != s.KeyID {
		return jwtClaims{}, badSig
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return jwtClaims{}, badSig
	}
	var c jwtClaims
	if json.Unmarshal(cb, &c) != nil {
		return jwtClaims{}, "Invalid JWT: claims are not a JSON object"
	}
	now := s.now()
	iat, exp := time.Unix(c.Iat, 0), time.Unix(c.Exp, 0)
	switch {
	case c.Iss != s.ClientEmail:
		return jwtClaims{}, badSig
	case c.Aud != s.TokenURI:
		return jwtClaims{}, "Invalid JWT: aud must be " + s.TokenURI
	case c.Iat == 0 || c.Exp == 0 || iat.After(now.Add(allowedSkew)) || !exp.After(now) ||
		!exp.After(iat) || exp.Sub(iat) > time.Hour:
		return jwtClaims{}, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	return c, ""
}

// authorize checks the bearer token and that it carries one of the scopes; it writes the error answer.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, anyOf ...string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		apiErr(w, http.StatusUnauthorized, "required", "Login Required.")
		return false
	}
	s.mu.Lock()
	t, ok := s.tokens[tok]
	s.mu.Unlock()
	if !ok || !s.now().Before(t.expiry) {
		apiErr(w, http.StatusUnauthorized, "authError", "Invalid Credentials")
		return false
	}
	for _, sc := range anyOf {
		if t.scopes[sc] {
			return true
		}
	}
	apiErr(w, http.StatusForbidden, "insufficientPermissions", "Request had insufficient authentication scopes.")
	return false
}

// The system parameters every Google API accepts (those that make sense for JSON over GET).
var systemParams = []string{"fields", "prettyPrint", "quotaUser", "alt"}

// checkParams refuses parameters the method does not define, as Google's front end does.
func checkParams(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for name := range r.URL.Query() {
		if !slices.Contains(allowed, name) && !slices.Contains(systemParams, name) {
			apiErr(w, http.StatusBadRequest, "invalid", fmt.Sprintf(
				"Invalid JSON payload received. Unknown name %q: Cannot bind query parameter. Field %q could not be found in request message.", name, name))
			return false
		}
	}
	if alt := r.URL.Query().Get("alt"); alt != "" && alt != "json" {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for alt: "+alt)
		return false
	}
	return true
}

// maxResults reads maxResults: [1, 200], 200 when absent.
func maxResults(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("maxResults")
	if v == "" {
		return maxResultsLimit, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxResultsLimit {
		apiErr(w, http.StatusBadRequest, "invalid",
			fmt.Sprintf("Invalid value '%s'. Values must be within the range: [1, %d]", v, maxResultsLimit))
		return 0, false
	}
	return n, true
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, ScopeGroupReadonly) ||
		!checkParams(w, r, "customer", "domain", "maxResults", "orderBy", "pageToken", "query", "sortOrder", "userKey") {
		return
	}
	q := r.URL.Query()
	limit, ok := maxResults(w, r)
	if !ok {
		return
	}
	if q.Get("userKey") != "" {
		apiErr(w, http.StatusNotImplemented, "notImplemented", "directoryfake: userKey is not implemented")
		return
	}
	customer, domain := q.Get("customer"), q.Get("domain")
	switch {
	case customer == "" && domain == "":
		apiErr(w, http.StatusBadRequest, "badRequest", "Bad Request")
		return
	case customer != "" && customer != "my_customer" && customer != s.customerID:
		apiErr(w, http.StatusForbidden, "forbidden", "Not Authorized to access this resource/api")
		return
	}
	if ob := q.Get("orderBy"); ob != "" && !strings.EqualFold(ob, "email") {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for orderBy: "+ob)
		return
	}
	so := q.Get("sortOrder")
	if so != "" && so != "ASCENDING" && so != "DESCENDING" {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for sortOrder: "+so)
		return
	}
	match, err := parseQuery(q.Get("query"))
	if err != nil {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid Input: "+err.Error())
		return
	}
	s.mu.Lock()
	var hits []Group
	for _, g := range s.groups {
		if (domain == "" || strings.HasSuffix(strings.ToLower(g.Email), "@"+strings.ToLower(domain))) && match(g) {
			hits = append(hits, g)
		}
	}
	s.mu.Unlock()
	// Google lists groups in email order.
	slices.SortFunc(hits, func(a, b Group) int { return strings.Compare(strings.ToLower(a.Email), strings.ToLower(b.Email)) })
	if so == "DESCENDING" {
		slices.Reverse(hits)
	}
	listing := strings.Join([]string{"groups", customer, domain, q.Get("query"), q.Get("orderBy"), so}, "\x00")
	page, next, ok := s.page(w, q.Get("pageToken"), listing, len(hits), limit)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, page[1]-page[0])
	for _, g := range hits[page[0]:page[1]] {
		out = append(out, s.groupResource(g))
	}
	body := map[string]any{"kind": "admin#directory#groups", "etag": `"fake"`, "groups": out}
	if next != "" {
		body["nextPageToken"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, ScopeGroupReadonly) || !checkParams(w, r) {
		return
	}
	s.mu.Lock()
	g, ok := s.findGroup(r.PathValue("groupKey"))
	s.mu.Unlock()
	if !ok {
		apiErr(w, http.StatusNotFound, "notFound", "Resource Not Found: groupKey")
		return
	}
	writeJSON(w, http.StatusOK, s.groupResource(g))
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, ScopeGroupReadonly, ScopeMemberReadonly) ||
		!checkParams(w, r, "includeDerivedMembership", "maxResults", "pageToken", "roles") {
		return
	}
	q := r.URL.Query()
	limit, ok := maxResults(w, r)
	if !ok {
		return
	}
	derived := false
	if v := q.Get("includeDerivedMembership"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for includeDerivedMembership: "+v)
			return
		}
		derived = b
	}
	roles := map[string]bool{}
	if v := q.Get("roles"); v != "" {
		for _, role := range strings.Split(v, ",") {
			if role != "OWNER" && role != "MANAGER" && role != "MEMBER" {
				apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for roles: "+role)
				return
			}
			roles[role] = true
		}
	}
	s.mu.Lock()
	g, found := s.findGroup(r.PathValue("groupKey"))
	var list []Member
	if found {
		list = s.collect(g.ID, derived, map[string]bool{g.ID: true}, map[string]bool{})
	}
	s.mu.Unlock()
	if !found {
		apiErr(w, http.StatusNotFound, "notFound", "Resource Not Found: groupKey")
		return
	}
	if len(roles) > 0 {
		list = slices.DeleteFunc(list, func(m Member) bool { return !roles[m.Role] })
	}
	listing := strings.Join([]string{"members", g.ID, strconv.FormatBool(derived), q.Get("roles")}, "\x00")
	page, next, ok := s.page(w, q.Get("pageToken"), listing, len(list), limit)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, page[1]-page[0])
	for _, m := range list[page[0]:page[1]] {
		res := map[string]any{"kind": "admin#directory#member", "etag": `"fake"`, "id": m.ID, "role": m.Role, "type": m.Type}
		if m.Type != TypeCustomer { // a CUSTOMER member has no email; its id is the customer ID
			res["email"] = m.Email
		}
		if m.Status != "" {
			res["status"] = m.Status
		}
		out = append(out, res)
	}
	body := map[string]any{"kind": "admin#directory#members", "etag": `"fake"`, "members": out}
	if next != "" {
		body["nextPageToken"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

// collect returns a group's direct members and, when derived, those of nested groups after them, each
// member once. Caller holds s.mu.
func (s *Server) collect(groupID string, derived bool, visiting, seen map[string]bool) []Member {
	var out []Member
	for _, m := range s.members[groupID] {
		if !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}
	if !derived {
		return out
	}
	for _, m := range s.members[groupID] {
		if m.Type != TypeGroup {
			continue
		}
		if ng, ok := s.findGroup(cmp.Or(m.Email, m.ID)); ok && !visiting[ng.ID] {
			visiting[ng.ID] = true
			out = append(out, s.collect(ng.ID, true, visiting, seen)...)
		}
	}
	return out
}

// findGroup resolves a groupKey: the group's ID or its email. Caller holds s.mu.
func (s *Server) findGroup(key string) (Group, bool) {
	for _, g := range s.groups {
		if g.ID == key || strings.EqualFold(g.Email, key) {
			return g, true
		}
	}
	return Group{}, false
}

func (s *Server) groupResource(g Group) map[string]any {
	s.mu.Lock()
	n := len(s.members[g.ID])
	s.mu.Unlock()
	return map[string]any{
		"kind": "admin#directory#group", "etag": `"fake"`, "id": g.ID, "email": g.Email, "name": g.Name,
		"description": "", "adminCreated": true, "directMembersCount": strconv.Itoa(n),
	}
}

type pageToken struct {
	Listing string `json:"l"`
	Offset  int    `json:"o"`
}

// page picks the slice [from, to) of a listing of n items for the request's pageToken and returns the
// token of the next page. A token only works for the listing (same parameters) that issued it.
func (s *Server) page(w http.ResponseWriter, token, listing string, n, limit int) ([2]int, string, bool) {
	from := 0
	if token != "" {
		var pt pageToken
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || json.Unmarshal(b, &pt) != nil || pt.Listing != listing || pt.Offset < 0 {
			apiErr(w, http.StatusBadRequest, "invalid", "Invalid Input: pageToken")
			return [2]int{}, "", false
		}
		from = min(pt.Offset, n)
	}
	if s.pageSize > 0 {
		limit = min(limit, s.pageSize)
	}
	to := min(from+limit, n)
	next := ""
	if to < n {
		b, _ := json.Marshal(pageToken{Listing: listing, Offset: to})
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	return [2]int{from, to}, next, true
}

var statusNames = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
}

// apiErr writes Google's JSON error envelope.
func apiErr(w http.ResponseWriter, status int, reason, message string) {
	domain := "global"
	if reason == "rateLimitExceeded" || reason == "userRateLimitExceeded" {
		domain = "usageLimits"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    status,
		"message": message,
		"errors":  []map[string]string{{"message": message, "domain": domain, "reason": reason}},
		"status":  statusNames[status],
	}})
}

func oauthErr(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client hung up; nothing to do
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
