// Package transport builds the HTTP transport of every outbound client (storage SDKs, W&B, the IdPs), so
// that each one behaves on a corporate machine as its users expect: HTTPS_PROXY, HTTP_PROXY and NO_PROXY
// apply, the system roots (which honour SSL_CERT_FILE and SSL_CERT_DIR) are trusted together with a CA
// file given in the configuration, and a certificate that fails verification gives one error that names
// the endpoint and the CAs that were trusted, instead of a message buried under an SDK's.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Options configures New.
type Options struct {
	// CAFile is a PEM bundle whose certificates are trusted in addition to the system roots: the private CA
	// of a self-managed W&B or of an S3-compatible store, or the CA of a TLS-inspecting proxy.
	CAFile string
	// MinVersion is the lowest TLS version accepted; 0 keeps Go's default.
	MinVersion uint16
}

// New returns a copy of http.DefaultTransport (so proxies from the environment, HTTP/2 and connection
// pooling stay as the standard library has them) that trusts the system roots and o.CAFile.
func New(o Options) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		pool, err := Pool(o.CAFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	if o.MinVersion != 0 {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.MinVersion = o.MinVersion
	}
	return tr, nil
}

// Pool returns the system roots plus every certificate of the PEM file at path. A file without one is an
// error: trusting nothing more than before would only move the failure to the first request.
func Pool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Explain wraps rt so that a server certificate that fails verification becomes a *CertError naming the
// request's host and trusted, a description of the CAs rt trusts (for example `caFile /etc/ca.pem
// (wandb.caFile) and the system roots`).
func Explain(rt http.RoundTripper, trusted string) http.RoundTripper {
	return explainer{base: rt, trusted: trusted}
}

type explainer struct {
	base    http.RoundTripper
	trusted string
}

func (e explainer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := e.base.RoundTrip(r)
	// crypto/tls reports every failed verification as a *tls.CertificateVerificationError around the
	// x509 error that says why.
	if verify := (*tls.CertificateVerificationError)(nil); err != nil && errors.As(err, &verify) {
		return nil, &CertError{Host: r.URL.Host, Trusted: e.trusted, Err: verify.Err}
	}
	return resp, err
}

// CertError is a TLS connection refused because the server's certificate could not be verified.
type CertError struct {
	Host    string // host[:port] of the endpoint
	Trusted string // which CAs were trusted
	Err     error  // why verification failed (an x509 error)
}

func (e *CertError) Error() string {
	return fmt.Sprintf("TLS certificate of %s not accepted (%v); trusted: %s", e.Host, e.Err, e.Trusted)
}

func (e *CertError) Unwrap() error { return e.Err }

// AsCertError returns the CertError in err's chain, or nil. Callers that wrap errors of an SDK (which
// adds its own layers around a transport error) use it to report the cause alone.
func AsCertError(err error) *CertError {
	var ce *CertError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

// Trusted describes the CAs a transport from New trusts, for Explain: the configured CA file (named with
// the configuration field that set it) and the system roots, naming SSL_CERT_FILE and SSL_CERT_DIR when
// they replace the system's default locations. env looks up environment variables (os.Getenv).
func Trusted(caFile, field string, env func(string) string) string {
	system := "the system roots"
	var set []string
	for _, v := range []string{"SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if p := env(v); p != "" {
			set = append(set, v+"="+p)
		}
	}
	if len(set) > 0 {
		system += " (" + strings.Join(set, ", ") + ")"
	}
	if caFile == "" {
		return system
	}
	return fmt.Sprintf("%s (%s) and %s", caFile, field, system)
}

// Unwrap returns the transport e wraps.
func (e explainer) Unwrap() http.RoundTripper { return e.base }
