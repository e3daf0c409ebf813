// Package directoryfake is a strict in-process fake of Google's OAuth token endpoint (service account
// JWT grant) and of the Admin SDK Directory API calls the agent makes: groups.list, groups.get and
// members.list. It behaves as Google documents: RS256 assertions checked for signature, issuer,
// audience, lifetime (≤ 1 h), subject and delegated scopes; maxResults in [1, 200]; opaque pageToken
// paging bound to the listing that issued it; derived (nested) membership; the groups search syntax;
// unknown query parameters refused; and the quota answers of the Directory API's limits page (403
// quotaExceeded, 403 userRateLimitExceeded, 429 rateLimitExceeded) that tests inject in the middle of a
// listing.
package directoryfake

import (
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Scopes the fake knows, and which methods accept them, as each method's "Authorization scopes" section
// says (https://developers.google.com/workspace/admin/directory/reference/rest/v1/groups/list, .../groups/get,
// .../members/list; the discovery document admin:directory_v1 lists the same):
//
//	groups.list, groups.get: ScopeGroup or ScopeGroupReadonly
//	members.list:            ScopeGroup, ScopeMember, ScopeMemberReadonly or ScopeGroupReadonly
//
// So ScopeGroupReadonly alone covers every call the agent makes. (members.list also accepts the legacy
// https://apps-apis.google.com/a/feeds/groups/ scope; the fake does not know it.)
const (
	ScopeGroup          = "https://www.googleapis.com/auth/admin.directory.group"
	ScopeGroupReadonly  = "https://www.googleapis.com/auth/admin.directory.group.readonly"
	ScopeMember         = "https://www.googleapis.com/auth/admin.directory.group.member"
	ScopeMemberReadonly = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"
)

var (
	groupScopes  = []string{ScopeGroup, ScopeGroupReadonly}
	memberScopes = []string{ScopeGroup, ScopeMember, ScopeMemberReadonly, ScopeGroupReadonly}
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

// The quota answers of the Directory API's limits page
// (https://developers.google.com/workspace/admin/directory/v1/limits), each sent in Google's error
// envelope {"error":{"code":403,"message":...,"errors":[{"reason":"quotaExceeded",...}],"status":...}}.
// The page recommends "exponential backoff" for the first three; a client must never read them as a
// permission problem although most come with 403.
var (
	// 403 quotaExceeded: "the limit of concurrent requests for a certain operation has been reached.
	// Retry using exponential back-off."
	QuotaExceeded = Fault{Status: http.StatusForbidden, Reason: "quotaExceeded", Message: "Quota exceeded"}
	// 403 userRateLimitExceeded: the per-user rate (2,400 queries a minute by default) was exceeded.
	UserRateLimitExceeded = Fault{Status: http.StatusForbidden, Reason: "userRateLimitExceeded", Message: "User Rate Limit Exceeded"}
	// 429 rateLimitExceeded: the per-account limit, which cannot be raised.
	RateLimitExceeded = Fault{Status: http.StatusTooManyRequests, Reason: "rateLimitExceeded", Message: "Rate Limit Exceeded"}
	// 403 rateLimitExceeded: inferred, not on the limits page: Google's older APIs answer rateLimitExceeded
	// with 403, and a client that keys on the reason treats both alike.
	RateLimitExceeded403 = Fault{Status: http.StatusForbidden, Reason: "rateLimitExceeded", Message: "Rate Limit Exceeded"}
	// 403 dailyLimitExceeded: on earlier versions of the limits page only ("Do not retry without fixing
	// the problem"); kept so a test can check it is neither retried nor called a permission problem.
	DailyLimitExceeded = Fault{Status: http.StatusForbidden, Reason: "dailyLimitExceeded", Message: "Daily Limit Exceeded"}
	// A server error, retried like throttling.
	BackendError = Fault{Status: http.StatusServiceUnavailable, Reason: "backendError", Message: "Backend Error"}
)

// Options configure a Server; every field has a default.
type Options struct {
	ClientEmail string // the service account; default agent@fake-project.iam.gserviceaccount.com
	Admin       string // the only subject that may be impersonated; default admin@example.com
	CustomerID  string // the customer's ID, also reachable as my_customer; default C00fake
	// DelegatedScopes are the scopes domain-wide delegation grants; ScopeGroupReadonly alone by default,
	// the one scope the README tells admins to delegate. A token request for any other scope is refused.
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
		scopes = []string{ScopeGroupReadonly}
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

var statusNames = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
}

// apiErr writes Google's JSON error envelope.
func apiErr(w http.ResponseWriter, status int, reason, message string) {
	domain := "global"
	switch reason {
	case "rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded":
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
