// Package statuspage provides the daemon's read-only status page: every team with its status and
// storage, a team's recent history, the health of each backend the agent calls, the last configuration
// reload and a chart of recent reconciles. It is server-rendered HTML (html/template) with an embedded
// stylesheet and no script; nothing is loaded from elsewhere.
//
// It needs a token: a login form checks it and sets an HttpOnly, SameSite=Strict cookie that holds an
// HMAC of the token, never the token. Every answer forbids framing and caching and sends a
// Content-Security-Policy that allows only the page's own stylesheet.
package statuspage

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/state"
)

// Path is where the page is served.
const Path = "/status/"

// csp allows the page's own stylesheet and nothing else: no script, no frame, forms only to itself.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Store is the part of the state the page reads.
type Store interface {
	List(ctx context.Context) ([]state.Record, error)
	Get(ctx context.Context, name string) (state.Record, error)
}

// Status is what the daemon knows about itself beyond the state.
type Status struct {
	Backends   []metrics.TargetHealth
	LastReload Reload
	Reconciles []Reconcile // oldest first
	Ready      string      // "" when ready, else why not
}

// Reload is the last load of the configuration.
type Reload struct {
	At      time.Time
	Trigger string // start, sighup, file
	Error   string // "" when it was applied
}

// Reconcile is one finished reconcile of the daemon.
type Reconcile struct {
	At    time.Time
	Key   string
	Took  time.Duration
	Error bool
}

// Options configures New.
type Options struct {
	Store Store
	// Tokens open the page: the viewer tokens and the admin token.
	Tokens []string
	// Key signs the session cookies; the daemon keeps one across reloads so that logins survive them.
	Key []byte
	// Secure marks the cookie Secure (the listener serves TLS); a request that came over TLS gets a
	// Secure cookie anyway.
	Secure bool
	Status func() Status
	Logger *slog.Logger
	Now    func() time.Time // time.Now if nil
}

type page struct {
	o      Options
	tokens []string
	key    []byte
	tmpl   map[string]*template.Template
}

//go:embed assets
var assets embed.FS

// New returns the page's handler, to be mounted at Path. It needs at least one token and a key of at
// least 32 bytes.
func New(o Options) (http.Handler, error) {
	switch {
	case len(o.Tokens) == 0:
		return nil, errors.New("status page: no token opens it: set server.viewerTokens or server.adminToken")
	case len(o.Key) < 32:
		return nil, errors.New("status page: the session key must have at least 32 bytes")
	case o.Store == nil || o.Status == nil:
		return nil, errors.New("status page: Store and Status are required")
	}
	p := &page{o: o, tokens: o.Tokens, key: o.Key}
	var err error
	if p.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path+"login", func(w http.ResponseWriter, r *http.Request) {
		p.render(w, http.StatusOK, "login", loginView{})
	})
	// Cross-origin POSTs (by Sec-Fetch-Site, else Origin against Host) are refused: with the
	// SameSite=Strict cookie this makes the forms CSRF-safe.
	cop := http.NewCrossOriginProtection()
	mux.Handle("POST "+Path+"login", cop.Handler(http.HandlerFunc(p.login)))
	mux.Handle("POST "+Path+"logout", cop.Handler(http.HandlerFunc(p.logout)))
	mux.HandleFunc("GET "+Path+"style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		http.ServeFileFS(w, r, assets, "assets/style.css")
	})
	mux.Handle("GET "+Path+"{$}", p.private(p.list))
	mux.Handle("GET "+Path+"teams/{name}", p.private(p.team))
	return headers(mux), nil
}

// headers sets what every answer of the page carries.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// private sends a request without a valid session to the login form.
func (p *page) private(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.authorized(r) {
			http.Redirect(w, r, Path+"login", http.StatusSeeOther)
			return
		}
		h(w, r)
	})
}

func (p *page) now() time.Time {
	if p.o.Now != nil {
		return p.o.Now()
	}
	return time.Now()
}

func (p *page) log() *slog.Logger {
	if p.o.Logger != nil {
		return p.o.Logger
	}
	return slog.New(slog.DiscardHandler)
}
