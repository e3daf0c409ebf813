// Package gcsfake is a strict fake of the Google Cloud Storage JSON API's bucket endpoints, for tests.
//
// fake-gcs-server keeps only versioning of a bucket's settings and answers bucket IAM with 404, so a test
// against it alone passes with nothing stored. This fake stores exactly the bucket settings it is sent,
// merges PATCHes as the JSON API does (objects merge, arrays replace, null deletes, a label set to null is
// removed), and rejects with 400 every field it does not know, so a typo or an unsupported setting cannot
// pass silently. A PATCH with a stale ifMetagenerationMatch gets 412, and so does a bucket IAM policy PUT
// with a stale etag.
//
// Object requests (JSON API object routes, uploads, downloads and XML-style reads `GET /{bucket}/{object}`)
// go to an in-process fake-gcs-server, so probe objects are really written and read. Every request is
// counted by route (see Route), and a testenv.Fault hook (SetFault) or testenv.Injector (SetInjector)
// can answer any request instead of the fake.
//
// Like GCS it upper-cases a bucket's location and fills what GCS fills on insert: storage class STANDARD,
// soft delete 7 days, uniform bucket-level access off, public access prevention "inherited", and an IAM
// policy with the project convenience bindings.
package gcsfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
)

// Server is a running fake on 127.0.0.1. It is safe for concurrent use.
type Server struct {
	url     string
	srv     *http.Server
	objects *fakestorage.Server

	mu       sync.Mutex
	buckets  map[string]*bucket
	counts   map[string]int
	fault    testenv.Fault // answered with a GCS-style error body
	injector testenv.Injector
}

// New starts a fake on a free loopback port. Close stops it.
func New() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the GCS fake: %w", err)
	}
	s := &Server{url: "http://" + ln.Addr().String(), buckets: map[string]*bucket{}, counts: map[string]int{}}
	s.objects, err = fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener: true,
		Scheme:     "http",
		// fake-gcs-server serves XML-style reads (GET /{bucket}/{object}) only for its public host, and
		// answers resumable uploads with a Location on its external URL: both are this listener.
		PublicHost:  ln.Addr().String(),
		ExternalURL: s.url,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start fake-gcs-server: %w", err)
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	// Serve only ever returns ErrServerClosed here, after Close.
	go s.srv.Serve(ln)
	return s, nil
}

// Start starts a fake for one test and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := New()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Close stops the fake.
func (s *Server) Close() error {
	s.objects.Stop()
	if err := s.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("close the GCS fake at %s: %w", s.url, err)
	}
	return nil
}

// URL is the fake's base URL, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Endpoint is the JSON API endpoint for option.WithEndpoint (use it with option.WithoutAuthentication).
func (s *Server) Endpoint() string { return s.url + "/storage/v1/" }

// SetFault installs (nil: removes) a fault hook. It runs outside the fake's lock, so it may itself send
// requests to the fake (e.g. to change a policy between a client's read and its write).
func (s *Server) SetFault(f testenv.Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetInjector installs (nil: removes) an injector around the serving of every request, bucket and object
// routes alike. It runs after the Fault hook; requests it fails are counted like the others.
func (s *Server) SetInjector(i testenv.Injector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injector = i
}

// Counts returns how many requests each route got since the start or the last ResetCounts.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// Mutations counts the requests that may change state (POST, PUT, PATCH, DELETE), objects included.
func (s *Server) Mutations() int {
	n := 0
	for route, c := range s.Counts() {
		method, _, _ := strings.Cut(route, " ")
		switch method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			n += c
		}
	}
	return n
}

// ResetCounts forgets every count.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

// Bucket returns the bucket resource as GET returns it, nil when there is no such bucket.
func (s *Server) Bucket(name string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[name]
	if !ok {
		return nil
	}
	return mustJSON(b.render())
}

// Policy returns the bucket's IAM policy as GET .../iam returns it, nil when there is no such bucket.
func (s *Server) Policy(name string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[name]
	if !ok {
		return nil
	}
	return mustJSON(b.renderPolicy())
}

// Route names a request for counting, as "METHOD path" with placeholders: "POST /storage/v1/b",
// "GET|PATCH /storage/v1/b/{bucket}", "GET|PUT /storage/v1/b/{bucket}/iam",
// "GET|DELETE /storage/v1/b/{bucket}/o/{object}", "POST /upload/storage/v1/b/{bucket}/o",
// "GET /download/storage/v1/b/{bucket}/o/{object}", "GET /{bucket}/{object}".
func Route(r *http.Request) string {
	name, _, _ := route(r)
	return name
}

// op is what the fake does with a request.
type op int

const (
	opUnsupported op = iota
	opForward        // to fake-gcs-server
	opInsertBucket
	opGetBucket
	opPatchBucket
	opGetPolicy
	opPutPolicy
)

// route classifies a request: its name for counting, the bucket it is about, and what to do with it.
func route(r *http.Request) (name, bucketName string, o op) {
	p := r.URL.EscapedPath()
	m := r.Method
	if p == "/storage/v1/b" {
		if m == http.MethodPost {
			return m + " " + p, "", opInsertBucket
		}
		return m + " " + p, "", opUnsupported
	}
	if rest, ok := strings.CutPrefix(p, "/storage/v1/b/"); ok {
		escaped, sub, _ := strings.Cut(rest, "/")
		bucketName = unescape(escaped)
		switch {
		case sub == "" && m == http.MethodGet:
			return m + " /storage/v1/b/{bucket}", bucketName, opGetBucket
		case sub == "" && m == http.MethodPatch:
			return m + " /storage/v1/b/{bucket}", bucketName, opPatchBucket
		case sub == "":
			return m + " /storage/v1/b/{bucket}", bucketName, opUnsupported
		case sub == "iam" && m == http.MethodGet:
			return m + " /storage/v1/b/{bucket}/iam", bucketName, opGetPolicy
		case sub == "iam" && m == http.MethodPut:
			return m + " /storage/v1/b/{bucket}/iam", bucketName, opPutPolicy
		case sub == "o":
			return m + " /storage/v1/b/{bucket}/o", bucketName, opForward
		case strings.HasPrefix(sub, "o/"):
			return m + " /storage/v1/b/{bucket}/o/{object}", bucketName, opForward
		}
		return m + " /storage/v1/b/{bucket}/" + sub, bucketName, opUnsupported
	}
	for _, prefix := range []string{"/upload/storage/v1/b/", "/download/storage/v1/b/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			escaped, sub, _ := strings.Cut(rest, "/")
			tmpl := prefix + "{bucket}/o"
			if strings.HasPrefix(sub, "o/") {
				tmpl += "/{object}"
			}
			return m + " " + tmpl, unescape(escaped), opForward
		}
	}
	if strings.HasPrefix(p, "/upload/resumable/") {
		return m + " /upload/resumable/{upload}", "", opForward
	}
	// XML API reads, which the Go client uses by default: GET /{bucket}/{object}.
	if escaped, obj, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/"); ok && obj != "" && (m == http.MethodGet || m == http.MethodHead) {
		return m + " /{bucket}/{object}", unescape(escaped), opForward
	}
	return m + " " + p, "", opUnsupported
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	name, bucketName, o := route(r)
	s.mu.Lock()
	s.counts[name]++
	fault, injector := s.fault, s.injector
	s.mu.Unlock()
	if fault != nil {
		if status, ok := fault(r); ok {
			writeError(w, &apiError{status, "injected fault"})
			return
		}
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, name, bucketName, o) })
	if injector != nil {
		h = injector.Wrap(h)
	}
	h.ServeHTTP(w, r)
}

// serve answers a request classified by route.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, name, bucketName string, o op) {
	if o == opForward {
		s.objects.HTTPHandler().ServeHTTP(w, r)
		return
	}
	var (
		resp any
		err  error
	)
	switch o {
	case opInsertBucket:
		resp, err = s.insertBucket(r)
	case opGetBucket:
		resp, err = s.getBucket(r, bucketName)
	case opPatchBucket:
		resp, err = s.patchBucket(r, bucketName)
	case opGetPolicy:
		resp, err = s.getPolicy(r, bucketName)
	case opPutPolicy:
		resp, err = s.putPolicy(r, bucketName)
	default:
		err = &apiError{http.StatusNotImplemented, fmt.Sprintf("gcsfake does not implement %s", name)}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Write(mustJSON(resp))
}

// apiError is an error response of the JSON API.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.message) }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// writeError answers in the JSON API's error format, which the Go client turns into a *googleapi.Error.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, err.Error()}
	}
	reason := map[int]string{
		http.StatusBadRequest:         "invalid",
		http.StatusForbidden:          "forbidden",
		http.StatusNotFound:           "notFound",
		http.StatusConflict:           "conflict",
		http.StatusPreconditionFailed: "conditionNotMet",
	}[ae.status]
	body := map[string]any{"error": map[string]any{
		"code":    ae.status,
		"message": ae.message,
		"errors":  []any{map[string]any{"domain": "global", "reason": reason, "message": ae.message}},
	}}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(ae.status)
	w.Write(mustJSON(body))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // only maps, slices, strings, numbers and bools get here
		panic(fmt.Sprintf("gcsfake: marshal response: %v", err))
	}
	return b
}
