package testenv

import (
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// FaultKind is one way a backend misbehaves.
type FaultKind string

// The kinds of fault. All but FaultLost answer in the backend's place: the request never reaches it, so a
// client that retries cannot do the work twice.
const (
	FaultInternal    FaultKind = "500"  // 500 Internal Server Error
	FaultUnavailable FaultKind = "503"  // 503 Service Unavailable
	FaultThrottled   FaultKind = "429"  // 429 Too Many Requests with a Retry-After header
	FaultSlow        FaultKind = "slow" // nothing for SlowDelay (meant to be past the client's timeout), then 503
	FaultDrop        FaultKind = "drop" // the connection is closed without an answer
	// FaultLost serves the request, then closes the connection without the answer: the backend did the
	// work but the client cannot know. Select it only for requests whose retry the client must survive
	// (e.g. W&B's POST /Groups, answered 409 when retried).
	FaultLost FaultKind = "lost"
)

// DefaultFaultKinds are the kinds that never reach the backend: safe for any request.
var DefaultFaultKinds = []FaultKind{FaultInternal, FaultUnavailable, FaultThrottled, FaultSlow, FaultDrop}

// FaultOptions configure NewFaults.
type FaultOptions struct {
	Rate  float64     // share of the selected requests that fail, 0 to 1
	Kinds []FaultKind // drawn with equal chance for each failing request; nil: DefaultFaultKinds
	// Seed seeds the draws: the n-th selected request gets the same decision in every run with the same
	// seed (which request is n-th depends on how concurrent requests interleave).
	Seed       uint64
	RetryAfter time.Duration // sent with FaultThrottled, rounded up to whole seconds; default 1s
	SlowDelay  time.Duration // how long FaultSlow holds a request; default 2s
	// Select tells which requests may fail (e.g. not a token endpoint, only one bucket's); nil: all.
	// It must not read the body.
	Select func(*http.Request) bool
}

// Faults injects random faults as an HTTP middleware (Wrap), into the proxies in front of the backends
// (S3Env.SetS3Injector, AzureEnv.SetInjector) or around any handler. It is safe for concurrent use.
type Faults struct {
	o FaultOptions

	mu     sync.Mutex
	rate   float64
	rng    *rand.Rand
	counts map[FaultKind]int
}

// NewFaults returns an injector with the options' defaults filled in.
func NewFaults(o FaultOptions) *Faults {
	if o.Kinds == nil {
		o.Kinds = DefaultFaultKinds
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.SlowDelay <= 0 {
		o.SlowDelay = 2 * time.Second
	}
	return &Faults{o: o, rate: o.Rate, rng: rand.New(rand.NewPCG(o.Seed, o.Seed)), counts: map[FaultKind]int{}}
}

// SetRate changes the share of selected requests that fail; 0 turns the injector off.
func (f *Faults) SetRate(rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = rate
}

// Counts returns how many faults of each kind were injected.
func (f *Faults) Counts() map[FaultKind]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.counts)
}

// decide draws whether r fails, and how.
func (f *Faults) decide(r *http.Request) (FaultKind, bool) {
	if f.o.Select != nil && !f.o.Select(r) {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() >= f.rate {
		return "", false
	}
	k := f.o.Kinds[f.rng.IntN(len(f.o.Kinds))]
	f.counts[k]++
	return k, true
}

// Wrap returns next with faults injected in front of it. Only FaultLost calls next for a failing request.
func (f *Faults) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, ok := f.decide(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		switch kind {
		case FaultInternal:
			w.WriteHeader(http.StatusInternalServerError)
		case FaultUnavailable:
			w.WriteHeader(http.StatusServiceUnavailable)
		case FaultThrottled:
			secs := (f.o.RetryAfter + time.Second - 1) / time.Second
			w.Header().Set("Retry-After", strconv.Itoa(int(secs)))
			w.WriteHeader(http.StatusTooManyRequests)
		case FaultSlow:
			t := time.NewTimer(f.o.SlowDelay)
			defer t.Stop()
			select {
			case <-t.C:
				w.WriteHeader(http.StatusServiceUnavailable)
			case <-r.Context().Done(): // the client gave up, as it should
			}
		case FaultDrop:
			abort()
		case FaultLost:
			next.ServeHTTP(httptest.NewRecorder(), r)
			abort()
		}
	})
}

// abort makes the server close the connection without writing the response. ErrAbortHandler is net/http's
// way to do so; it logs nothing.
func abort() { panic(http.ErrAbortHandler) }
