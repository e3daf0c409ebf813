// Package admin provides the daemon's /admin/ endpoints, which serve its state to the state commands
// while it holds the state file, and the client those commands read the state through.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/byob-agent/byob-agent/config"
)

// The daemon holds the state file's lock for as long as it runs, so the state commands cannot open
// it then; they ask the daemon instead, over /admin/, with server.adminToken.
const (
	BackupPath = "/admin/state/backup"
	ExportPath = "/admin/state/export"
	StatusPath = "/admin/status"
)

// Store is the state the endpoints serve; *state.DB implements it.
type Store interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Export(ctx context.Context, w io.Writer) error
}

// admin serves the state to the state commands.
type admin struct {
	token  [sha256.Size]byte // digest of server.adminToken: comparing digests keeps its length out of the timing
	db     Store
	status func() any
	log    *slog.Logger
}

// Mount serves GET /admin/state/backup (a bbolt copy, from one read transaction),
// GET /admin/state/export (JSON) and, when status is set, GET /admin/status (status() as JSON: the
// daemon's readiness with its reasons, which /readyz does not show) to bearers of token. HEAD does no
// work. Without a token /admin/ is not served at all.
func Mount(mux *http.ServeMux, token config.Secret, db Store, status func() any, log *slog.Logger) {
	if token.Reveal() == "" {
		return
	}
	a := &admin{token: sha256.Sum256([]byte(token.Reveal())), db: db, status: status, log: log}
	mux.Handle("GET "+BackupPath, a.authorized(a.backup))
	mux.Handle("GET "+ExportPath, a.authorized(a.export))
	if status != nil {
		mux.Handle("GET "+StatusPath, a.authorized(a.serveStatus))
	}
}

func (a *admin) authorized(next func(http.ResponseWriter, *http.Request) (int64, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The state and the status are the daemon's secrets and its present: never kept by a cache.
		w.Header().Set("Cache-Control", "no-store")
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
			a.log.Warn("admin request refused: no valid bearer token", "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="byob-agent admin"`)
			http.Error(w, "a valid admin bearer token (server.adminToken) is required", http.StatusUnauthorized)
			return
		}
		n, err := next(w, r)
		if err == nil {
			a.log.Info("admin request served", "method", r.Method, "path", r.URL.Path, "bytes", n, "remote", r.RemoteAddr)
			return
		}
		a.log.Error("admin request failed", "path", r.URL.Path, "bytes", n, "remote", r.RemoteAddr, "error", err)
		if n == 0 {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// Part of the body is out: break the connection so the client sees a failure, not a short copy.
		panic(http.ErrAbortHandler)
	})
}

// backup streams the copy while writers go on. A stalled client is cut off by the server's write
// timeout, which also bounds how long the read transaction is held.
func (a *admin) backup(w http.ResponseWriter, r *http.Request) (int64, error) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		return 0, nil // the body would be thrown away: take no copy
	}
	return a.db.Backup(r.Context(), w)
}

func (a *admin) export(w http.ResponseWriter, r *http.Request) (int64, error) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodHead {
		return 0, nil
	}
	cw := &countingWriter{w: w}
	err := a.db.Export(r.Context(), cw)
	return cw.n, err
}

func (a *admin) serveStatus(w http.ResponseWriter, r *http.Request) (int64, error) {
	w.Header().Set("Content-Type", "application/json")
	b, err := json.Marshal(a.status())
	if err != nil || r.Method == http.MethodHead {
		return 0, err
	}
	n, err := w.Write(append(b, '\n'))
	return int64(n), err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
