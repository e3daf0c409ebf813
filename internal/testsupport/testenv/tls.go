package testenv

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// CA is a certificate authority of a test's own, for servers that clients must be told to trust (as a
// company's private CA or a TLS-inspecting proxy's would be).
type CA struct {
	PEM  []byte // the CA certificate
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA valid for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert: cert, key: key}, nil
}

// WriteFile writes the CA certificate to path, for a client to trust.
func (ca *CA) WriteFile(path string) error { return os.WriteFile(path, ca.PEM, 0o600) }

// Leaf issues a server certificate for hosts (DNS names or IP addresses).
func (ca *CA) Leaf(hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ServeTLS serves h over TLS with cert on ip (a loopback address) and a free port, until the returned
// function is called. It returns the port.
func ServeTLS(ip string, cert tls.Certificate, h http.Handler) (port int, stop func(), err error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "") // returns ErrServerClosed after stop
	return ln.Addr().(*net.TCPAddr).Port, func() { srv.Close() }, nil
}

// TLSFront is a reverse proxy to target (an http:// URL) to be served with ServeTLS: a TLS endpoint in
// front of a backend that speaks plain HTTP. The Host header goes through unchanged, since SigV4 signs it.
func TLSFront(target string) (http.Handler, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}, nil
}

// ConnectProxy is a forward proxy that opens HTTPS tunnels (HTTP CONNECT), as a corporate proxy does, and
// counts them by the host asked for. It resolves host names itself from Hosts (the client never does),
// so a test can use names that no DNS knows; every name and address must lead to a loopback address.
type ConnectProxy struct {
	URL   string            // http://127.0.0.1:port, for HTTPS_PROXY
	Hosts map[string]string // name -> loopback IP

	ln      net.Listener
	mu      sync.Mutex
	tunnels map[string]int
	refused []string
	wg      sync.WaitGroup
}

// StartConnectProxy listens on a free loopback port.
func StartConnectProxy(hosts map[string]string) (*ConnectProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &ConnectProxy{URL: "http://" + ln.Addr().String(), Hosts: hosts, ln: ln, tunnels: map[string]int{}}
	go p.accept()
	return p, nil
}

// Tunnels returns how many tunnels were opened to host (a name or IP, without port).
func (p *ConnectProxy) Tunnels(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tunnels[host]
}

// Refused lists the requests the proxy did not serve (not CONNECT, or a target outside loopback).
func (p *ConnectProxy) Refused() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.refused...)
}

// Close stops accepting and waits for the open tunnels' goroutines.
func (p *ConnectProxy) Close() {
	p.ln.Close()
	p.wg.Wait()
}

func (p *ConnectProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *ConnectProxy) serve(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	refuse := func(why string) {
		p.mu.Lock()
		p.refused = append(p.refused, fmt.Sprintf("%s %s: %s", req.Method, req.Host, why))
		p.mu.Unlock()
		fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}
	if req.Method != http.MethodConnect {
		refuse("only CONNECT is served")
		return
	}
	host, port, err := net.SplitHostPort(req.Host)
	if err != nil {
		refuse("no port")
		return
	}
	ip := host
	if mapped, ok := p.Hosts[strings.ToLower(host)]; ok {
		ip = mapped
	}
	if a := net.ParseIP(ip); a == nil || !a.IsLoopback() {
		refuse("not a loopback target")
		return
	}
	up, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), 5*time.Second)
	if err != nil {
		refuse(err.Error())
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.tunnels[host]++
	p.mu.Unlock()
	c.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	<-done
}

// LoopbackAlias returns a host name other than "localhost" that /etc/hosts maps to a loopback address,
// and that address. Go's proxy selection never proxies "localhost" or a loopback IP, so a test of
// NO_PROXY needs a name that the client resolves itself (from the hosts file, asking no DNS server) and
// that would otherwise go through the proxy.
func LoopbackAlias() (name, ip string, ok bool) {
	data, err := os.ReadFile("/etc/hosts")
	if err != nil {
		return "", "", false
	}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		a := net.ParseIP(f[0])
		if a == nil || a.To4() == nil || !a.IsLoopback() {
			continue
		}
		for _, n := range f[1:] {
			if n != "localhost" && !strings.HasSuffix(n, ".localhost") && !strings.Contains(n, "localhost.") {
				return n, f[0], true
			}
		}
	}
	return "", "", false
}
