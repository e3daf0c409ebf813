package admin

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state"
)

const adminToken = "admin-token-for-tests-0123456789"

// adminServer serves /admin/ of a state with two teams, with token ("" as when adminToken is unset);
// logs collects what it logs.
func adminServer(t *testing.T, token string) (srv *httptest.Server, db *state.DB, logs *bytes.Buffer) {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, n := range []string{"alpha", "beta"} {
		if _, err := db.Update(t.Context(), n, func(r *state.Record) error { r.Phase = state.PhaseInSync; r.GroupID = "g-" + n; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	logs = &bytes.Buffer{}
	mux := http.NewServeMux()
	Mount(mux, config.NewSecret(token), db, func() any { return map[string]bool{"ready": true} }, slog.New(slog.NewTextHandler(logs, nil)))
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, db, logs
}

func TestAdminEndpoints(t *testing.T) {
	srv, db, logs := adminServer(t, adminToken)
	get := func(path, auth string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + adminToken, adminToken, "Bearer " + adminToken + "x"} {
		for _, path := range []string{BackupPath, ExportPath} {
			if code, _ := get(path, auth); code != http.StatusUnauthorized {
				t.Errorf("GET %s with %q: %d, want 401", path, auth, code)
			}
		}
	}
	code, body := get(BackupPath, "bearer "+adminToken)
	if code != http.StatusOK {
		t.Fatalf("backup: %d %s", code, body)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := state.Open(copyPath, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the served copy does not open: %v", err)
	}
	defer c.Close()
	var want, got bytes.Buffer
	db.Export(t.Context(), &want)
	c.Export(t.Context(), &got)
	if want.String() != got.String() {
		t.Errorf("the served copy differs from the state:\n%s\n%s", got.String(), want.String())
	}
	if code, body := get(ExportPath, "Bearer "+adminToken); code != http.StatusOK || string(body) != want.String() {
		t.Errorf("export: %d %s", code, body)
	}
	if strings.Contains(logs.String(), adminToken) {
		t.Error("the admin token was logged")
	}
	if !strings.Contains(logs.String(), "admin request refused") {
		t.Errorf("refused requests are not logged:\n%s", logs.String())
	}

	// Without a token /admin/ does not exist.
	off, _, _ := adminServer(t, "")
	resp, err := http.Get(off.URL + BackupPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("backup without server.adminToken: %d, want 404", resp.StatusCode)
	}
}

func TestDaemonStateClient(t *testing.T) {
	srv, db, _ := adminServer(t, adminToken)
	off, _, _ := adminServer(t, "")
	client := func(url, token string) *daemonState {
		cfg := &config.Config{File: "byob-agent.yaml", Server: config.Server{AdminToken: config.NewSecret(token)}}
		d, err := newDaemonState(cfg, url)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ctx := t.Context()
	d := client(srv.URL, adminToken)
	recs, err := d.List(ctx)
	if err != nil || len(recs) != 2 || recs[1].GroupID != "g-beta" {
		t.Fatalf("List = %+v, %v", recs, err)
	}
	if r, err := d.Get(ctx, "alpha"); err != nil || r.GroupID != "g-alpha" {
		t.Errorf("Get = %+v, %v", r, err)
	}
	if _, err := d.Get(ctx, "nobody"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get of a missing team: %v", err)
	}
	var local, remote bytes.Buffer
	db.Backup(ctx, &local)
	if n, err := d.Backup(ctx, &remote); err != nil || n != int64(local.Len()) {
		t.Errorf("Backup = %d, %v; want %d bytes", n, err, local.Len())
	}

	tests := []struct {
		name, url, token, msg string
	}{
		{"wrong token", srv.URL, "another-token-0123456789", "refused the admin token (401): server.adminToken in byob-agent.yaml is not the running daemon's"},
		{"daemon without adminToken", off.URL, adminToken, "does not serve /admin/state/export (404): set server.adminToken in its configuration"},
		{"nobody listening", "http://127.0.0.1:1", adminToken, "ask the daemon at http://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := client(tt.url, tt.token).Export(ctx, &out)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v, want %q", err, tt.msg)
			}
			if err != nil && (strings.Contains(err.Error(), tt.token) || out.Len() > 0) {
				t.Errorf("error %q shows the token, or output was written", err)
			}
		})
	}
}

func TestDaemonAddress(t *testing.T) {
	tests := []struct {
		listen string
		tls    bool
		want   string
	}{
		{"127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{":8080", false, "http://127.0.0.1:8080"},
		{"0.0.0.0:9000", true, "https://127.0.0.1:9000"},
		{"[::]:9000", false, "http://[::1]:9000"},
		{"byob.internal:443", true, "https://byob.internal:443"},
		{"127.0.0.1:0", false, "error"},
	}
	for _, tt := range tests {
		s := config.Server{Listen: tt.listen}
		if tt.tls {
			s.TLSCertFile = "tls.crt"
		}
		got, err := listenURL(s)
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("listenURL(%s, tls %v) = %s (%v), want %s", tt.listen, tt.tls, got, err, tt.want)
		}
	}

	cfg := &config.Config{File: "byob-agent.yaml", Server: config.Server{AdminToken: config.NewSecret(adminToken)}}
	for url, msg := range map[string]string{
		"http://byob.example.com:8080": "plain http only to a loopback address",
		"ftp://127.0.0.1":              "want the daemon's URL",
		"127.0.0.1:8080":               "want the daemon's URL",
	} {
		if _, err := newDaemonState(cfg, url); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("--daemon %s: got %v, want %q", url, err, msg)
		}
	}
	if _, err := newDaemonState(&config.Config{File: "byob-agent.yaml"}, "http://127.0.0.1:8080"); err == nil || !strings.Contains(err.Error(), "set server.adminToken in byob-agent.yaml") {
		t.Errorf("without adminToken: %v", err)
	}
}

// TestDaemonTLSPinsTheConfiguredCertificate: the daemon is trusted by the certificate in
// server.tlsCertFile, and only by it (a self-signed certificate verifies against nothing else).
func TestDaemonTLSPinsTheConfiguredCertificate(t *testing.T) {
	certPEM, keyPEM := testenv.SelfSignedCert(t)
	otherPEM, _ := testenv.SelfSignedCert(t)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "{}") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	for name, pemData := range map[string][]byte{"configured": certPEM, "other": otherPEM} {
		file := filepath.Join(dir, name+".crt")
		if err := os.WriteFile(file, pemData, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := &config.Config{File: "byob-agent.yaml", Server: config.Server{TLSCertFile: file, AdminToken: config.NewSecret(adminToken)}}
		d, err := newDaemonState(cfg, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.List(t.Context())
		if (err == nil) != (name == "configured") {
			t.Errorf("daemon presenting the configured certificate, client pinned to the %s one: %v", name, err)
		}
	}
}

// FuzzAdmin: whatever the method, path and Authorization header, /admin/ answers without panicking,
// and serves the state only to the right token.
func FuzzAdmin(f *testing.F) {
	f.Add("GET", "/admin/state/backup", "Bearer "+adminToken)
	f.Add("GET", "/admin/state/export", "Bearer wrong")
	f.Add("POST", "/admin/state/backup", "Bearer "+adminToken)
	f.Add("GET", "/admin/state/../state/export", "bearer "+adminToken)
	f.Add("GET", "/admin/", "Basic YTpi")
	f.Add("HEAD", "/admin/state/backup", "Bearer "+adminToken)
	f.Add("GET", "/admin/status", "Bearer "+adminToken)
	f.Add("GET", "/admin/status", "")
	srv, _, _ := adminServer(&testing.T{}, adminToken)
	f.Fuzz(func(t *testing.T, method, path, auth string) {
		req, err := http.NewRequest(method, srv.URL+"/"+strings.TrimPrefix(path, "/"), nil)
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // refused by the client or the server before the handler
		}
		resp.Body.Close()
		// The scheme is case-insensitive (RFC 9110); the token must be exactly the configured one. The
		// header value is what the client sent, after net/http trimmed its surrounding spaces.
		scheme, token, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		if resp.StatusCode == http.StatusOK && !(strings.EqualFold(scheme, "bearer") && strings.TrimSpace(token) == adminToken) {
			t.Errorf("%s %s answered 200 to Authorization %q", method, path, auth)
		}
	})
}
