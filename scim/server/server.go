// Package server provides the agent's own inbound SCIM 2.0 endpoint (New): Okta and Microsoft Entra ID
// push users and groups into it, it keeps them in a Store (the SCIM push store of package state) and
// reports every committed change to a group to Options.OnChange; the daemon makes each live group a
// desired W&B team.
//
// github.com/elimity-com/scim does the routing, schema validation, PATCH parsing and discovery.
// This package does what the library leaves open (see docs/scim-server.md): bearer
// authentication, body caps, path normalisation, filter evaluation (through the store's indexes
// where it can), PATCH application (parsed and merged before the store's write transaction, which
// stores the result only if the resource did not change meanwhile), pagination counts, attribute
// projection, ETags and If-Match, uniqueness, name normalisation, and SCIM error bodies for every
// error. What one request may cost is capped: attribute lists, filters, PATCH operations and values,
// bodies, and (in the store) users, groups, members and a user's size.
package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/byob-agent/byob-agent/state"
	"github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
)

// Options configure the endpoint.
type Options struct {
	BaseURL  string               // absolute, e.g. https://agent.example.com/scim/v2
	Tokens   []string             // accepted bearer tokens (several, for rotation)
	Store    Store                // *state.DB
	OnChange func(groupID string) // called after a committed write that affects a group; must not block
	MaxBody  int64                // request body cap; default 1 MiB
	Logger   *slog.Logger
	// AdmitGroup, when set, is asked before a write gives a group a displayName it did not have (a
	// create, a rename); a Refusal refuses the write with its status and detail. It runs inside the
	// write transaction of a rename: it must be quick and must not touch the store.
	AdmitGroup func(displayName string) *Refusal
}

// Refusal is AdmitGroup's answer to a displayName the daemon will not take: 409 (scimType
// uniqueness) for a name another source claims, 403 for a quota spent (RFC 7644 section 3.12 has no
// 429, and the library answers only its statuses).
type Refusal struct {
	Status int
	Detail string
}

// Store is the durable record of pushed users and groups; *state.DB and *pgstate.Store implement it.
// An update runs its function on the current resource and stores the result only if the resource is
// unchanged since (bbolt runs it outside the write transaction, PostgreSQL inside with the row
// locked): the function must be quick and must not touch the store. Every write returns only once it
// committed. Lists return one
// page, through an index when asked.
type Store interface {
	CreateSCIMUser(ctx context.Context, u state.SCIMUser) (state.SCIMUser, error)
	SCIMUser(ctx context.Context, id string) (state.SCIMUser, error)
	ListSCIMUsers(ctx context.Context, q state.SCIMList[state.SCIMUser]) ([]state.SCIMUser, int, error)
	UpdateSCIMUser(ctx context.Context, id string, fn func(*state.SCIMUser) error) (state.SCIMUser, []string, error)
	DeleteSCIMUser(ctx context.Context, id string, check func(state.SCIMUser) error) ([]string, error)
	CreateSCIMGroup(ctx context.Context, g state.SCIMGroup) (state.SCIMGroup, error)
	SCIMGroup(ctx context.Context, id string) (state.SCIMGroup, error)
	ListSCIMGroups(ctx context.Context, q state.SCIMList[state.SCIMGroup]) ([]state.SCIMGroup, int, error)
	SCIMMembers(ctx context.Context, ids []string) ([]state.SCIMMember, error)
	UpdateSCIMGroup(ctx context.Context, id string, fn func(*state.SCIMGroup) error) (state.SCIMGroup, error)
}

const (
	defaultMaxBody = 1 << 20
	maxResults     = 100 // page size cap, advertised in ServiceProviderConfig
)

// allowStrings turns on the library's acceptance of "True"/"False" strings for booleans, which
// Entra's PATCH sends for "active". The switch is process-wide in the library, hence once.
var allowStrings sync.Once

// New returns the endpoint. Mount it at the path of BaseURL (e.g. /scim/v2/); it strips that
// prefix itself.
func New(o Options) (http.Handler, error) {
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("SCIM base URL %q must be an absolute http(s) URL without query", o.BaseURL)
	}
	if len(o.Tokens) == 0 {
		return nil, errors.New("SCIM endpoint needs at least one bearer token")
	}
	h := &handler{
		prefix:   strings.TrimRight(base.Path, "/"),
		store:    o.Store,
		onChange: o.OnChange,
		maxBody:  o.MaxBody,
		log:      o.Logger,
		base:     base.String(),
	}
	for i, t := range o.Tokens {
		if t == "" {
			return nil, fmt.Errorf("SCIM bearer token %d is empty", i+1)
		}
		h.tokens = append(h.tokens, sha256.Sum256([]byte(t)))
	}
	if h.store == nil {
		return nil, errors.New("SCIM endpoint needs a store")
	}
	if o.AdmitGroup != nil {
		h.store = admittingStore{Store: h.store, admit: o.AdmitGroup}
	}
	if h.maxBody <= 0 {
		h.maxBody = defaultMaxBody
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.onChange == nil {
		h.onChange = func(string) {}
	}
	allowStrings.Do(func() { schema.SetAllowStringValues(true) })

	h.lib, err = scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{MaxResults: maxResults, SupportFiltering: true, SupportPatch: true},
		ResourceTypes: []scim.ResourceType{{
			ID:               optional.NewString("User"),
			Name:             "User",
			Description:      optional.NewString("User Account"),
			Endpoint:         "/Users",
			Schema:           userScope.core,
			SchemaExtensions: []scim.SchemaExtension{{Schema: enterpriseUser}},
			Handler:          users{h},
		}, {
			ID:          optional.NewString("Group"),
			Name:        "Group",
			Description: optional.NewString("Group: each one is a W&B team"),
			Endpoint:    "/Groups",
			Schema:      groupScope.core,
			Handler:     groups{h},
		}},
	}, scim.WithBaseURL(h.base), scim.WithLogger(libLogger{h.log}))
	if err != nil {
		return nil, fmt.Errorf("build SCIM server: %w", err)
	}
	return h, nil
}

type handler struct {
	prefix   string // BaseURL's path: requests arrive with it
	base     string // BaseURL without trailing slash
	tokens   [][sha256.Size]byte
	store    Store
	onChange func(string)
	maxBody  int64
	log      *slog.Logger
	lib      scim.Server
}

// endpoints maps lower-cased first path segments to the library's case-sensitive names.
var endpoints = map[string]string{
	"users": "Users", "groups": "Groups", "schemas": "Schemas", "resourcetypes": "ResourceTypes",
	"serviceproviderconfig": "ServiceProviderConfig", "me": "Me", "bulk": "Bulk",
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("SCIM request panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			writeError(w, scimerr.ScimErrorInternal)
		}
	}()
	w.Header().Set("Content-Type", "application/scim+json")

	rest, ok := strings.CutPrefix(r.URL.Path, h.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		writeError(w, notFound("Specified endpoint does not exist."))
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scim"`)
		writeError(w, scimerr.ScimError{Status: http.StatusUnauthorized, Detail: "A valid bearer token is required."})
		return
	}
	rest = normalizePath(rest)

	body, scimErr := h.readBody(w, r)
	if scimErr != nil {
		writeError(w, *scimErr)
		return
	}
	if rest == "/ServiceProviderConfig" && r.Method == http.MethodGet {
		h.serviceProviderConfig(w)
		return
	}

	q := r.URL.Query()
	ctx := r.Context()
	list := r.Method == http.MethodGet && (rest == "/Users" || rest == "/Groups")
	sc := userScope
	if rest == "/Groups" || strings.HasPrefix(rest, "/Groups/") {
		sc = groupScope
	}
	// Attribute lists are parsed once here, for every resource the answer renders.
	proj, perr := sc.parseProjection(q)
	if perr != nil {
		writeError(w, *perr)
		return
	}
	ctx = context.WithValue(ctx, projectionKey{}, proj)
	if f := strings.TrimSpace(q.Get("filter")); f != "" {
		// The library validates filters but cannot evaluate them safely (and cannot parse Entra's
		// emails[type eq "work"].value form): compile here, and hand the library no filter.
		if !list {
			writeError(w, scimerr.ScimErrorInvalidFilter)
			return
		}
		fq, err := sc.parseFilter(f)
		if err != nil {
			writeError(w, scimerr.ScimErrorInvalidFilter)
			return
		}
		ctx = context.WithValue(ctx, filterKey{}, fq)
	}
	q.Del("filter")

	r2 := r.Clone(ctx)
	r2.URL.Path, r2.URL.RawPath, r2.URL.RawQuery = "/v2"+rest, "", q.Encode()
	r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	if !list {
		h.lib.ServeHTTP(w, r2)
		return
	}
	pw := &pageWriter{ResponseWriter: w}
	h.lib.ServeHTTP(pw, r2.WithContext(context.WithValue(ctx, pageKey{}, &pw.items)))
	pw.flush()
}

// normalizePath makes the endpoint name case-insensitive and drops trailing slashes, which the
// library would route as an empty id.
func normalizePath(p string) string {
	p = "/" + strings.Trim(p, "/")
	seg, tail, _ := strings.Cut(p[1:], "/")
	if name, ok := endpoints[strings.ToLower(seg)]; ok {
		seg = name
	}
	if tail != "" {
		return "/" + seg + "/" + tail
	}
	return "/" + seg
}

func (h *handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Comparing digests keeps the token's length out of the timing; every token is compared.
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := 0
	for _, t := range h.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return match == 1
}

// readBody reads the whole capped body up front, so an oversized one is a 413 whatever the method
// (the library would turn it into a 500 for PUT and PATCH).
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *scimerr.ScimError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &scimerr.ScimError{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("The request body exceeds %d bytes.", h.maxBody)}
	case err != nil:
		return nil, &scimerr.ScimError{Status: http.StatusBadRequest, ScimType: scimerr.ScimTypeInvalidSyntax, Detail: "The request body could not be read."}
	}
	if ct := r.Header.Get("Content-Type"); len(body) > 0 && ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/scim+json" && mt != "application/json") {
			return nil, &scimerr.ScimError{Status: http.StatusUnsupportedMediaType, Detail: "Send application/scim+json or application/json."}
		}
	}
	return body, nil
}

// serviceProviderConfig replaces the library's, which says ETags are unsupported.
func (h *handler) serviceProviderConfig(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "",
		"patch":            map[string]bool{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": maxResults},
		"changePassword":   map[string]bool{"supported": false},
		"sort":             map[string]bool{"supported": false},
		"etag":             map[string]bool{"supported": true},
		"authenticationSchemes": []map[string]any{{
			"type": "oauthbearertoken", "name": "OAuth Bearer Token", "primary": true,
			"description": "Authentication with a bearer token configured in the agent.",
		}},
		"meta": map[string]string{"resourceType": "ServiceProviderConfig", "location": h.base + "/ServiceProviderConfig"},
	})
}

// pageWriter holds back a ListResponse to set itemsPerPage to the number of resources returned
// (the library echoes the requested count). It patches the number in place rather than decoding
// the page: the library encodes the response from a map, so its keys come sorted and the last
// "itemsPerPage" key is the top-level one (only "schemas", "startIndex" and "totalResults", fixed
// strings and numbers, follow it).
type pageWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
	items  int
}

// pageKey holds the number of resources a list handler rendered, for its pageWriter.
type pageKey struct{}

func (p *pageWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *pageWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.buf.Write(b)
}

func (p *pageWriter) flush() {
	p.WriteHeader(http.StatusOK) // in case nothing was written
	body := p.buf.Bytes()
	const key = `"itemsPerPage":`
	if i := bytes.LastIndex(body, []byte(key)); p.status == http.StatusOK && i >= 0 {
		i += len(key)
		end := i
		for end < len(body) && (body[end] == '-' || (body[end] >= '0' && body[end] <= '9')) {
			end++
		}
		body = slices.Concat(body[:i], strconv.AppendInt(nil, int64(p.items), 10), body[end:])
	}
	p.ResponseWriter.WriteHeader(p.status)
	p.ResponseWriter.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	b, _ := json.Marshal(v)
	w.WriteHeader(status)
	w.Write(b)
}

// writeError answers with a SCIM error body: status as a string, schema URN, scimType, detail.
func writeError(w http.ResponseWriter, e scimerr.ScimError) { writeJSON(w, e.Status, e) }

func notFound(detail string) scimerr.ScimError {
	return scimerr.ScimError{Status: http.StatusNotFound, Detail: detail}
}

// admittingStore asks AdmitGroup before a group takes a displayName it did not have.
type admittingStore struct {
	Store
	admit func(string) *Refusal
}

func (s admittingStore) CreateSCIMGroup(ctx context.Context, g state.SCIMGroup) (state.SCIMGroup, error) {
	if err := s.check(g.DisplayName); err != nil {
		return state.SCIMGroup{}, err
	}
	return s.Store.CreateSCIMGroup(ctx, g)
}

func (s admittingStore) UpdateSCIMGroup(ctx context.Context, id string, fn func(*state.SCIMGroup) error) (state.SCIMGroup, error) {
	return s.Store.UpdateSCIMGroup(ctx, id, func(g *state.SCIMGroup) error {
		old := g.DisplayName
		if err := fn(g); err != nil || g.Deleted || g.DisplayName == old {
			return err
		}
		return s.check(g.DisplayName)
	})
}

// check turns a refusal into the SCIM error the handler answers with.
func (s admittingStore) check(displayName string) error {
	r := s.admit(displayName)
	if r == nil {
		return nil
	}
	e := scimerr.ScimError{Status: r.Status, Detail: r.Detail}
	if r.Status == http.StatusConflict {
		e.ScimType = scimerr.ScimTypeUniqueness
	}
	return e
}

// libLogger adapts slog to the library's logger.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Error(args ...any) {
	l.log.Error("SCIM library error", "detail", fmt.Sprint(args...))
}
