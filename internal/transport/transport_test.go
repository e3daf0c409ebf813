package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePEM(t *testing.T, name string, blocks ...*pem.Block) string {
	t.Helper()
	var data []byte
	for _, b := range blocks {
		data = append(data, pem.EncodeToMemory(b)...)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestExplain(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	good := writePEM(t, "good.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	// httptest's servers all share one certificate: the wrong CA is made here.
	wrong := writePEM(t, "wrong.pem", &pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t)})
	host := strings.TrimPrefix(srv.URL, "https://")

	tests := []struct {
		name, caFile, url string
		wantErr           []string // parts of the message; none: success
	}{
		{"trusted CA file", good, srv.URL, nil},
		{"system roots only", "", srv.URL, []string{"TLS certificate of " + host + " not accepted", "unknown authority", "trusted: the system roots"}},
		{"wrong CA file", wrong, srv.URL, []string{"TLS certificate of " + host, wrong + " (wandb.caFile) and the system roots"}},
		{"name not in the certificate", good, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), []string{"not accepted", "x509: certificate is valid for"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(Options{CAFile: tt.caFile})
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Transport: Explain(tr, Trusted(tt.caFile, "wandb.caFile", func(string) string { return "" }))}
			resp, err := c.Get(tt.url)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				resp.Body.Close()
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("Get succeeded, want a certificate error")
			}
			ce := AsCertError(err)
			if ce == nil {
				t.Fatalf("error %v holds no *CertError", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(ce.Error(), want) {
					t.Errorf("message %q lacks %q", ce.Error(), want)
				}
			}
		})
	}
}

func TestNotACertErrorPassesThrough(t *testing.T) {
	tr, _ := New(Options{})
	c := &http.Client{Transport: Explain(tr, "x")}
	_, err := c.Get("https://127.0.0.1:1/") // nothing listens on port 1
	if err == nil || AsCertError(err) != nil {
		t.Fatalf("refused connection: %v; want a plain error", err)
	}
}

func TestPool(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := Pool(writePEM(t, "ok.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})); err != nil {
		t.Errorf("Pool(certificate) = %v", err)
	}
	if _, err := Pool(writePEM(t, "empty.pem")); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("Pool(empty) = %v", err)
	}
	if _, err := Pool(filepath.Join(t.TempDir(), "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Pool(missing) = %v", err)
	}
}

func TestTrusted(t *testing.T) {
	env := map[string]string{"SSL_CERT_FILE": "/etc/corp.pem"}
	tests := []struct {
		caFile string
		env    map[string]string
		want   string
	}{
		{"", nil, "the system roots"},
		{"", env, "the system roots (SSL_CERT_FILE=/etc/corp.pem)"},
		{"/ca.pem", env, "/ca.pem (profiles.x.caFile) and the system roots (SSL_CERT_FILE=/etc/corp.pem)"},
	}
	for _, tt := range tests {
		if got := Trusted(tt.caFile, "profiles.x.caFile", func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("Trusted(%q) = %q, want %q", tt.caFile, got, tt.want)
		}
	}
}

func TestNewKeepsProxyFromEnvironment(t *testing.T) {
	tr, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The proxy function is the standard library's: it is what reads HTTPS_PROXY and NO_PROXY.
	if tr.Proxy == nil {
		t.Fatal("transport has no proxy function: HTTPS_PROXY would be ignored")
	}
	req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1/", nil)
	if u, err := tr.Proxy(req); err != nil || u != nil {
		t.Errorf("proxy for a loopback address = %v, %v; want none", u, err)
	}
}
