package testenv

import (
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault decides whether the proxy answers a request itself instead of forwarding it: when ok is true the
// client gets status with an empty body. It lets tests inject errors a real backend would rarely produce.
type Fault func(r *http.Request) (status int, ok bool)

// Injector misbehaves in a backend's place: it wraps the handler that forwards a request and may answer
// itself, hold the request or break the connection instead. *Faults is one.
type Injector interface {
	Wrap(next http.Handler) http.Handler
}

// countingProxy forwards every request to one backend and counts them by operation name.
type countingProxy struct {
	name func(*http.Request) string
	srv  *http.Server
	url  string

	mu        sync.Mutex
	counts    map[string]int
	fault     Fault
	injector  Injector                                      // wraps intercept and forwarding
	intercept func(http.ResponseWriter, *http.Request) bool // answers in the backend's place when it returns true
}

// startProxy serves a reverse proxy to target on a free loopback port.
func startProxy(target string, name func(*http.Request) string, errLog io.Writer) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse proxy target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for proxy to %s: %w", target, err)
	}
	p := &countingProxy{name: name, url: "http://" + ln.Addr().String(), counts: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// SigV4 signs the Host header: the backend must see the host the client signed for.
			pr.Out.Host = pr.In.Host
		},
		ErrorLog: log.New(errLog, "testenv proxy: ", 0),
	}
	p.srv = &http.Server{Handler: p.handler(rp), ReadHeaderTimeout: 10 * time.Second}
	// Serve only ever returns ErrServerClosed here, after close.
	go p.srv.Serve(ln)
	return p, nil
}

func (p *countingProxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := p.name(r)
		p.mu.Lock()
		p.counts[op]++
		fault, injector, intercept := p.fault, p.injector, p.intercept
		p.mu.Unlock()
		if fault != nil {
			if status, ok := fault(r); ok {
				w.WriteHeader(status)
				return
			}
		}
		var backend http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if intercept != nil && intercept(w, r) {
				return
			}
			next.ServeHTTP(w, r)
		})
		if injector != nil {
			backend = injector.Wrap(backend)
		}
		backend.ServeHTTP(w, r)
	})
}

func (p *countingProxy) setFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

func (p *countingProxy) setInjector(i Injector) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.injector = i
}

func (p *countingProxy) setIntercept(f func(http.ResponseWriter, *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intercept = f
}

func (p *countingProxy) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.counts)
}

func (p *countingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.counts)
}

func (p *countingProxy) close() error {
	if err := p.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("close proxy %s: %w", p.url, err)
	}
	return nil
}

// s3Operation names a path-style S3 request: "METHOD level" for plain requests (level: service, bucket,
// object) and "METHOD ?sub" for a bucket sub-resource (e.g. "PUT ?cors"), "METHOD object?sub" for an object's.
// Sub-resources are the query parameters without a value; the SDK's "x-id=PutObject" and listing parameters
// have values and so are ignored.
func s3Operation(r *http.Request) string {
	path := strings.Trim(r.URL.Path, "/")
	level := "object"
	switch {
	case path == "":
		level = "service"
	case !strings.Contains(path, "/"):
		level = "bucket"
	}
	var subs []string
	for k, v := range r.URL.Query() {
		if len(v) == 1 && v[0] == "" {
			subs = append(subs, k)
		}
	}
	if len(subs) == 0 {
		return r.Method + " " + level
	}
	slices.Sort(subs)
	sub := "?" + strings.Join(subs, "&")
	if level == "object" {
		return r.Method + " object" + sub
	}
	return r.Method + " " + sub
}

// kmsOperation names a KMS request by its JSON protocol target, e.g. "TrentService.CreateKey".
func kmsOperation(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		return t
	}
	return r.Method + " " + r.URL.Path
}

// isS3Mutation tells whether an operation name from s3Operation changes state.
func isS3Mutation(op string) bool {
	method, _, _ := strings.Cut(op, " ")
	return method == http.MethodPut || method == http.MethodPost || method == http.MethodDelete
}

// kmsMutationPrefixes are the verbs of KMS operations that change keys, aliases, policies or tags.
// Encrypt, Decrypt and GenerateDataKey* are not among them: they change nothing stored.
var kmsMutationPrefixes = []string{
	"Cancel", "Connect", "Create", "Delete", "Disable", "Disconnect", "Enable", "Import", "Put",
	"Replicate", "Retire", "Revoke", "Rotate", "Schedule", "Tag", "Untag", "Update",
}

// isKMSMutation tells whether an operation name from kmsOperation changes state.
func isKMSMutation(op string) bool {
	_, action, _ := strings.Cut(op, ".")
	for _, p := range kmsMutationPrefixes {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}
