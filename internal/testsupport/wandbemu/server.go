// Package wandbemu is an in-memory emulator of W&B's SCIM API (docs/wandb.md): teams as SCIM Groups
// with the storageBucket they were created with, users and their team roles, strict where W&B
// documents a rule, for tests and demos of byob-agent.
//
// Before creating a team it checks the bucket as W&B does, through a BucketChecker (S3Checker,
// AzureChecker, ByProvider); it counts requests by route and can misbehave on request (Options.Fault).
// It listens nowhere itself: mount *Server (cmd/wandb-emulator does).
package wandbemu

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/scim/wandb"
)

// BucketChecker checks that a team's bucket exists and is reachable, as W&B does before creating a team.
type BucketChecker interface {
	CheckBucket(ctx context.Context, sb wandb.StorageBucket) error
}

// CheckerFunc adapts a function to BucketChecker.
type CheckerFunc func(ctx context.Context, sb wandb.StorageBucket) error

// CheckBucket calls f.
func (f CheckerFunc) CheckBucket(ctx context.Context, sb wandb.StorageBucket) error {
	return f(ctx, sb)
}

// DefaultMaxPageSize is W&B's documented maximum number of results per list request.
const DefaultMaxPageSize = 9999

// Fault makes the emulator misbehave on one request. The zero Fault is no fault.
type Fault struct {
	Status     int    // answer with this status and a SCIM error body instead of the real answer
	RetryAfter string // Retry-After header sent with Status
	// AfterApply carries the request out first (e.g. creates the team) and only then fails:
	// W&B did the work but the response was lost.
	AfterApply bool
	// Hang sends no answer at all; the request is held until the client gives up or Close is called.
	Hang bool
}

// Options configures a Server.
type Options struct {
	// APIKey is accepted as "Bearer <key>", "Basic base64(<Username>:<key>)" and "Basic base64(:<key>)".
	// Everything else, and every request while APIKey is empty, gets 401.
	APIKey   string
	Username string
	Checker  BucketChecker // nil accepts any bucket
	BaseURL  string        // e.g. http://127.0.0.1:8080/scim, for meta.location; optional
	// MaxPageSize caps count on list requests (default DefaultMaxPageSize); lower it to test paging.
	MaxPageSize int
	// IgnoreStartIndex serves every list from its first item whatever startIndex asks: W&B documents
	// no paging on /Groups (only "maximum 9999 results per request",
	// https://docs.wandb.ai/platform/hosting/iam/scim), so a client must cope with a server that has none.
	IgnoreStartIndex bool
	// Deployment is "multi-tenant", "dedicated" or "self-managed" (the default): multi-tenant refuses
	// the team storage providers W&B does not offer there, and requires users to be created with W&B's
	// teams extension schema.
	Deployment string
	// ServiceAccounts are the organisation's service accounts (user names). W&B adds every one to each
	// new team: "Teams made through SCIM automatically get every org-level service account"
	// (https://docs.wandb.ai/platform/hosting/iam/scim, Group resource).
	ServiceAccounts []string
	// CustomRoles are the organisation's custom role names, which teamRoles accepts besides admin,
	// member and viewer.
	CustomRoles []string
	// Fault, if set, is asked about every request before it is served. It must not read the body.
	Fault func(r *http.Request) Fault
}

// EmuGroup is a team as the emulator stores it, including the storage W&B does not echo.
type EmuGroup struct {
	ID            string               `json:"id"`
	DisplayName   string               `json:"displayName"`
	Members       []wandb.Member       `json:"members"` // Value is the user id, Display the user name
	StorageBucket *wandb.StorageBucket `json:"storageBucket"`
}

// Server is the emulator; it implements http.Handler for paths under /scim.
type Server struct {
	opts      Options
	mux       *http.ServeMux
	done      chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	groups    []*group // in creation order
	users     []*user
	counts    map[string]int
	mutating  int
	nextGroup int
	nextUser  int
}

type group struct {
	EmuGroup
	created, modified time.Time
	version           int // the ETag's value; see etag
}

type user struct {
	id, userName, email string
	serviceAccount      bool
	created             time.Time
	teamRoles           map[string]string // team name -> role, as set by the teamRoles PATCH
}

// New returns an empty emulator.
func New(o Options) *Server {
	if o.MaxPageSize <= 0 {
		o.MaxPageSize = DefaultMaxPageSize
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	s := &Server{opts: o, mux: http.NewServeMux(), done: make(chan struct{}), counts: map[string]int{}}
	for _, name := range o.ServiceAccounts {
		s.addUserLocked(name, "").serviceAccount = true
	}
	s.mux.HandleFunc("/scim/Groups", s.groupsCollection)
	s.mux.HandleFunc("/scim/Groups/{id}", s.groupItem)
	s.mux.HandleFunc("/scim/Users", s.usersCollection)
	s.mux.HandleFunc("/scim/Users/{id}", s.userItem)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no SCIM endpoint at %s", r.URL.Path)
	})
	return s
}

// Close releases requests held by a Hang fault, so an http.Server can shut down.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.count(r)
	var f Fault
	if s.opts.Fault != nil {
		f = s.opts.Fault(r)
	}
	switch {
	case f.AfterApply:
		s.serve(discard{}, r)
		s.fail(w, r, f)
	case f.Status != 0 || f.Hang:
		s.fail(w, r, f)
	default:
		s.serve(w, r)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wandb-scim"`)
		writeError(w, http.StatusUnauthorized, "", "missing or invalid API key")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.Hang {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeError(w, f.Status, "", "injected fault")
}

// discard swallows the real answer of a request failed with Fault.AfterApply.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func (s *Server) authorized(r *http.Request) bool {
	key := s.opts.APIKey
	if key == "" {
		return false
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		return secureEqual(cred, key)
	case "basic":
		u, k, ok := r.BasicAuth()
		return ok && secureEqual(k, key) && (u == "" || (s.opts.Username != "" && u == s.opts.Username))
	}
	return false
}

func (s *Server) multiTenant() bool { return s.opts.Deployment == wandb.DeploymentMultiTenant }

func secureEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// count records the request under "METHOD <route pattern>", so ids collapse into {id}.
func (s *Server) count(r *http.Request) {
	_, pattern := s.mux.Handler(r)
	if pattern == "" || pattern == "/" {
		pattern = r.URL.Path
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[r.Method+" "+pattern]++
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		s.mutating++
	}
}

// Counts returns how many requests arrived per "METHOD /scim/Groups/{id}" style key.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// MutatingCount returns how many POST, PUT, PATCH and DELETE requests arrived, whatever their outcome.
func (s *Server) MutatingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mutating
}

// ResetCounts zeroes Counts and MutatingCount.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
	s.mutating = 0
}

// Groups returns a copy of every team in creation order, with the storage each was created with.
func (s *Server) Groups() []EmuGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EmuGroup, 0, len(s.groups))
	for _, g := range s.groups {
		c := g.EmuGroup
		c.Members = append([]wandb.Member(nil), g.Members...)
		if g.StorageBucket != nil {
			sb := *g.StorageBucket
			c.StorageBucket = &sb
		}
		out = append(out, c)
	}
	return out
}

// AddUser adds a user directly, as if created through POST /Users, and returns its id.
func (s *Server) AddUser(userName, email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUserLocked(userName, email).id
}

// UserEmail returns the email of the user with the given id ("" if none): tests read members by email.
func (s *Server) UserEmail(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.userByID(id); u != nil {
		return u.email
	}
	return ""
}

// ServiceAccountIDs returns the ids of the organisation's service accounts, in Options order.
func (s *Server) ServiceAccountIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, u := range s.users {
		if u.serviceAccount {
			ids = append(ids, u.id)
		}
	}
	return ids
}

// ChangeMembers changes a team's members as another SCIM client or an admin in W&B's UI would: the
// users with ids in add join, those in remove leave, and the team gets a new ETag if its list changed.
// Tests use it for a change between a client's read and its PATCH.
func (s *Server) ChangeMembers(groupID string, add, remove []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupByID(groupID)
	if g == nil {
		return fmt.Errorf("team %s not found", groupID)
	}
	members := slices.DeleteFunc(slices.Clone(g.Members), func(m wandb.Member) bool { return slices.Contains(remove, m.Value) })
	for _, id := range add {
		u := s.userByID(id)
		if u == nil {
			return fmt.Errorf("user %s not found", id)
		}
		if !slices.ContainsFunc(members, func(m wandb.Member) bool { return m.Value == id }) {
			members = append(members, wandb.Member{Value: u.id, Display: u.userName})
		}
	}
	s.setMembersLocked(g, members)
	return nil
}

// TeamRole returns the role the teamRoles PATCH, or joining the team when created on Multi-tenant
// Cloud, gave a user in a team ("" when never set).
func (s *Server) TeamRole(userID, teamName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.userByID(userID); u != nil {
		return u.teamRoles[teamName]
	}
	return ""
}

func (s *Server) addUserLocked(userName, email string) *user {
	s.nextUser++
	u := &user{id: opaqueID("User", s.nextUser), userName: userName, email: email, created: time.Now().UTC()}
	s.users = append(s.users, u)
	return u
}

// opaqueID makes ids the way W&B does: base64 of "<Kind>:<n>". Clients must not parse them.
func opaqueID(kind string, n int) string {
	return base64.StdEncoding.EncodeToString([]byte(kind + ":" + strconv.Itoa(n)))
}

// W&B's SCIM error body; status is a string.
type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	SCIMType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

func writeError(w http.ResponseWriter, status int, scimType, format string, args ...any) {
	writeJSON(w, status, errorBody{
		Schemas:  []string{wandb.SchemaError},
		Status:   strconv.Itoa(status),
		SCIMType: scimType,
		Detail:   fmt.Sprintf(format, args...),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

// listResponse is a SCIM ListResponse exactly as docs/wandb.md shows it.
type listResponse struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	ItemsPerPage int      `json:"itemsPerPage"`
	StartIndex   int      `json:"startIndex"`
	Resources    []any    `json:"Resources"`
}

type meta struct {
	ResourceType string `json:"resourceType"`
	Created      string `json:"created"`
	LastModified string `json:"lastModified"`
	Location     string `json:"location,omitempty"`
	Version      string `json:"version,omitempty"` // the resource's ETag (RFC 7644 3.14); teams only
}

func (s *Server) location(kind, id string) string {
	if s.opts.BaseURL == "" {
		return ""
	}
	return s.opts.BaseURL + "/" + kind + "/" + id
}
