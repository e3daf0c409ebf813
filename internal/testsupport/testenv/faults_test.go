package testenv

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend answers 200 "ok" and counts what reached it.
type backend struct{ hits atomic.Int32 }

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	io.WriteString(w, "ok")
}

func TestFaultKinds(t *testing.T) {
	tests := []struct {
		name       string
		kind       FaultKind
		timeout    time.Duration // of the client; 0: none
		wantStatus int           // 0: the client gets an error
		wantHits   int32         // requests that reached the backend
		retryAfter string
	}{
		{name: "500", kind: FaultInternal, wantStatus: 500},
		{name: "503", kind: FaultUnavailable, wantStatus: 503},
		{name: "429 with Retry-After rounded up", kind: FaultThrottled, wantStatus: 429, retryAfter: "2"},
		{name: "slow, the client gives up", kind: FaultSlow, timeout: 100 * time.Millisecond},
		{name: "slow, a patient client gets 503", kind: FaultSlow, wantStatus: 503},
		{name: "drop", kind: FaultDrop},
		{name: "lost: served, answer dropped", kind: FaultLost, wantHits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b backend
			f := NewFaults(FaultOptions{Rate: 1, Kinds: []FaultKind{tt.kind}, RetryAfter: 1500 * time.Millisecond, SlowDelay: 300 * time.Millisecond})
			srv := httptest.NewServer(f.Wrap(&b))
			defer srv.Close()
			client := &http.Client{Timeout: tt.timeout}
			start := time.Now()
			resp, err := client.Post(srv.URL+"/x", "text/plain", nil)
			elapsed := time.Since(start)
			switch {
			case tt.wantStatus == 0 && err == nil:
				resp.Body.Close()
				t.Fatalf("got HTTP %d, want no answer", resp.StatusCode)
			case tt.wantStatus != 0 && err != nil:
				t.Fatalf("got %v, want HTTP %d", err, tt.wantStatus)
			case tt.wantStatus != 0:
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus || resp.Header.Get("Retry-After") != tt.retryAfter {
					t.Errorf("got HTTP %d Retry-After %q, want %d %q", resp.StatusCode, resp.Header.Get("Retry-After"), tt.wantStatus, tt.retryAfter)
				}
			}
			var ne net.Error
			if tt.timeout > 0 && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf("err = %v, want the client's timeout", err)
			}
			if tt.kind == FaultSlow && tt.timeout == 0 && elapsed < 300*time.Millisecond {
				t.Errorf("answered after %v, before SlowDelay", elapsed)
			}
			if got := b.hits.Load(); got != tt.wantHits {
				t.Errorf("%d requests reached the backend, want %d", got, tt.wantHits)
			}
			if got := f.Counts(); got[tt.kind] != 1 || len(got) != 1 {
				t.Errorf("Counts() = %v, want one %s", got, tt.kind)
			}
		})
	}
}

func TestFaultsSelectAndRate(t *testing.T) {
	var b backend
	f := NewFaults(FaultOptions{Rate: 1, Kinds: []FaultKind{FaultUnavailable}, Select: func(r *http.Request) bool { return r.URL.Path == "/fail" }})
	srv := httptest.NewServer(f.Wrap(&b))
	defer srv.Close()
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/ok"); got != 200 {
		t.Errorf("unselected request: HTTP %d, want 200", got)
	}
	if got := status("/fail"); got != 503 {
		t.Errorf("selected request at rate 1: HTTP %d, want 503", got)
	}
	f.SetRate(0)
	if got := status("/fail"); got != 200 {
		t.Errorf("selected request at rate 0: HTTP %d, want 200", got)
	}
	if got := f.Counts(); got[FaultUnavailable] != 1 {
		t.Errorf("Counts() = %v, want one 503", got)
	}
}

// decisions draws n decisions as the injector makes them for successive requests.
func decisions(f *Faults, n int) []FaultKind {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	out := make([]FaultKind, n)
	for i := range out {
		out[i], _ = f.decide(r)
	}
	return out
}

func TestFaultsSeeded(t *testing.T) {
	const n = 1000
	a := decisions(NewFaults(FaultOptions{Rate: 0.2, Seed: 7}), n)
	if b := decisions(NewFaults(FaultOptions{Rate: 0.2, Seed: 7}), n); !slices.Equal(a, b) {
		t.Error("the same seed gave different decisions")
	}
	if c := decisions(NewFaults(FaultOptions{Rate: 0.2, Seed: 8}), n); slices.Equal(a, c) {
		t.Error("another seed gave the same decisions")
	}
	kinds := map[FaultKind]int{}
	for _, k := range a {
		if k != "" {
			kinds[k]++
		}
	}
	total := 0
	for _, k := range DefaultFaultKinds {
		if kinds[k] == 0 {
			t.Errorf("no %s among %d decisions: %v", k, n, kinds)
		}
		total += kinds[k]
	}
	// Seeded, so the counts never change; the bounds document that Rate is the share that fails.
	if total < n/10 || total > 3*n/10 || kinds[FaultLost] != 0 {
		t.Errorf("faults by kind %v: want about %d, none lost", kinds, n/5)
	}
}

func TestFaultsConcurrent(t *testing.T) {
	var b backend
	f := NewFaults(FaultOptions{Rate: 0.5, Kinds: []FaultKind{FaultInternal, FaultDrop}, Seed: 1})
	srv := httptest.NewServer(f.Wrap(&b))
	defer srv.Close()
	const n = 200
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range n {
		wg.Go(func() {
			resp, err := http.Post(srv.URL, "text/plain", nil) // POST: net/http does not retry it by itself
			if err == nil {
				if resp.StatusCode == 200 {
					ok.Add(1)
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	c := f.Counts()
	if int(ok.Load())+c[FaultInternal]+c[FaultDrop] != n || b.hits.Load() != ok.Load() {
		t.Errorf("%d ok, %d reached the backend, faults %v: want them to add up to %d", ok.Load(), b.hits.Load(), c, n)
	}
}

func TestProxyInjector(t *testing.T) {
	var b backend
	target := httptest.NewServer(&b)
	defer target.Close()
	p, err := startProxy(target.URL, func(r *http.Request) string { return r.Method + " " + r.URL.Path }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	get := func() int {
		t.Helper()
		resp, err := http.Get(p.url + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	p.setInjector(NewFaults(FaultOptions{Rate: 1, Kinds: []FaultKind{FaultThrottled}}))
	if got := get(); got != 429 || b.hits.Load() != 0 {
		t.Errorf("with an injector: HTTP %d, %d forwarded; want 429, none", got, b.hits.Load())
	}
	p.setFault(func(*http.Request) (int, bool) { return http.StatusForbidden, true })
	if got := get(); got != 403 {
		t.Errorf("with a Fault hook too: HTTP %d, want the hook's 403", got)
	}
	p.setFault(nil)
	p.setInjector(nil)
	if got := get(); got != 200 || b.hits.Load() != 1 {
		t.Errorf("without: HTTP %d, %d forwarded; want 200, one", got, b.hits.Load())
	}
	if got := p.snapshot()["GET /x"]; got != 3 {
		t.Errorf("proxy counted %d requests, want all 3, failed or not", got)
	}
}
