package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/pgstate"
)

// daemonState reads the state through the running daemon's /admin/. It serves the state commands as
// *state.DB does.
type daemonState struct {
	base   string // URL without a trailing slash
	token  string
	config string // the configuration file, named in errors
	client *http.Client
	held   error // why the daemon is asked: the state file is locked (nil with --daemon)
}

// readerLockTimeout is how long a read-only command waits for the state file's lock before asking the
// daemon: a daemon holds it for good, and the one-shot commands that hold it briefly are rare.
const readerLockTimeout = 200 * time.Millisecond

// Reader is what the read-only state commands use: the state file, or the daemon holding it.
type Reader interface {
	List(ctx context.Context) ([]state.Record, error)
	Get(ctx context.Context, name string) (state.Record, error)
	Export(ctx context.Context, w io.Writer) error
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// OpenReader opens the state file read-only or, while another process holds it, asks the daemon
// at server.listen; a PostgreSQL state (state.postgres) it reads directly. With daemonURL set it asks the daemon at that URL without trying the file (which
// may be on another machine).
func OpenReader(cfg *config.Config, daemonURL string) (Reader, func() error, error) {
	noop := func() error { return nil }
	if daemonURL != "" {
		d, err := newDaemonState(cfg, daemonURL)
		return d, noop, err
	}
	if p := cfg.State.Postgres; p != nil { // every replica may read it: no lock to wait for
		pg, err := pgstate.Open(context.Background(), p.DSN.Reveal())
		if err != nil {
			return nil, nil, err
		}
		return pg, pg.Close, nil
	}
	db, err := state.Open(cfg.State.Path, state.Options{ReadOnly: true, LockTimeout: readerLockTimeout})
	if errors.Is(err, state.ErrLocked) {
		d, derr := newDaemonState(cfg, "")
		if derr != nil {
			return nil, nil, fmt.Errorf("%w; %v", err, derr)
		}
		d.held = err
		return d, noop, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return db, db.Close, nil
}

// URLError is a daemon URL (--daemon) that cannot be used.
type URLError struct{ URL, Reason string }

func (e *URLError) Error() string { return fmt.Sprintf("--daemon %q: %s", e.URL, e.Reason) }

// newDaemonState finds the daemon at rawURL, or else at server.listen (https with server.tls*).
func newDaemonState(cfg *config.Config, rawURL string) (*daemonState, error) {
	s := cfg.Server
	if s.AdminToken.Reveal() == "" {
		return nil, fmt.Errorf("to ask the running daemon, set server.adminToken in %s (the daemon then serves the state on /admin/ to this token), or stop the daemon", cfg.File)
	}
	if rawURL == "" {
		var err error
		if rawURL, err = listenURL(s); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &URLError{URL: rawURL, Reason: "want the daemon's URL, such as http://127.0.0.1:8080"}
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, &URLError{URL: rawURL, Reason: "plain http only to a loopback address; the admin token must not cross a network in clear"}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.TLSCertFile != "" {
		if tr.TLSClientConfig, err = daemonTLS(s.TLSCertFile); err != nil {
			return nil, err
		}
	}
	return &daemonState{base: strings.TrimSuffix(u.String(), "/"), token: s.AdminToken.Reveal(), config: cfg.File, client: &http.Client{Transport: tr}}, nil
}

// listenURL is the address a command on the daemon's machine reaches it at.
func listenURL(s config.Server) (string, error) {
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil || port == "0" {
		return "", fmt.Errorf("server.listen %q does not say where the daemon listens: name it with --daemon URL", s.Listen)
	}
	if ip := net.ParseIP(host); host == "" || ip.IsUnspecified() { // listening everywhere: loopback too
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	scheme := "http"
	if s.TLSCertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// daemonTLS trusts the daemon that presents the certificate in server.tlsCertFile, whatever address
// it is reached at (the certificate names the daemon's public name, not 127.0.0.1); any other
// certificate must verify as usual (a --daemon URL behind a proxy).
func daemonTLS(certFile string) (*tls.Config, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read server.tlsCertFile: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("server.tlsCertFile %s holds no PEM certificate", certFile)
	}
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the daemon presented no certificate")
			}
			leaf := cs.PeerCertificates[0]
			if bytes.Equal(leaf.Raw, block.Bytes) {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter})
			return err
		},
	}, nil
}

// get copies the body of an /admin/ path to w.
func (d *daemonState) get(ctx context.Context, path string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := d.client.Do(req)
	if err != nil && d.held != nil {
		return 0, fmt.Errorf("%v; asking the daemon at %s instead failed (is it the daemon that holds the file? --daemon URL names it): %w", d.held, d.base, err)
	}
	if err != nil {
		return 0, fmt.Errorf("ask the daemon at %s: %w", d.base, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		n, err := io.Copy(w, resp.Body)
		if err != nil {
			return n, fmt.Errorf("read %s from the daemon at %s: %w", path, d.base, err)
		}
		return n, nil
	case http.StatusUnauthorized:
		return 0, fmt.Errorf("the daemon at %s refused the admin token (401): server.adminToken in %s is not the running daemon's", d.base, d.config)
	case http.StatusNotFound:
		return 0, fmt.Errorf("the daemon at %s does not serve %s (404): set server.adminToken in its configuration and reload (SIGHUP) or restart it, or stop the daemon", d.base, path)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return 0, fmt.Errorf("the daemon at %s answered %s for %s: %s", d.base, resp.Status, path, strings.Join(strings.Fields(string(msg)), " "))
}

func (d *daemonState) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return d.get(ctx, BackupPath, w)
}

func (d *daemonState) Export(ctx context.Context, w io.Writer) error {
	_, err := d.get(ctx, ExportPath, w)
	return err
}

func (d *daemonState) List(ctx context.Context) ([]state.Record, error) {
	var buf bytes.Buffer
	if _, err := d.get(ctx, ExportPath, &buf); err != nil {
		return nil, err
	}
	var export struct {
		Teams []state.Record `json:"teams"`
	}
	if err := json.Unmarshal(buf.Bytes(), &export); err != nil {
		return nil, fmt.Errorf("decode the state export of the daemon at %s: %w", d.base, err)
	}
	return export.Teams, nil
}

func (d *daemonState) Get(ctx context.Context, name string) (state.Record, error) {
	recs, err := d.List(ctx)
	if err != nil {
		return state.Record{}, err
	}
	for _, r := range recs {
		if r.Name == name {
			return r, nil
		}
	}
	return state.Record{}, fmt.Errorf("team %q: %w", name, state.ErrNotFound)
}
