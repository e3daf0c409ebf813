package main

// What the chaos tests (chaos_test.go) share: their size and seed from the environment, the faults and
// SIGKILLs they inject through the backends' proxies, and the one-line JSON report `make chaos` prints.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
)

// testSecrets are the secrets the tests hand the agent; none may appear in anything it prints.
func testSecrets() []string {
	return []string{apiKey, backends.SecretKey, testenv.AzuriteKey, url.QueryEscape(testenv.AzuriteKey), scimToken, oktaSecret}
}

// secretsIn counts the occurrences of the tests' secrets in out.
func secretsIn(out string) int {
	n := 0
	for _, s := range testSecrets() {
		n += strings.Count(out, s)
	}
	return n
}

// chaosSettings is the size and randomness of a chaos test. The defaults keep `make test` short; `make
// chaos` asks for more through the environment, and BYOB_CHAOS_SEED replays a failed run's draws (the
// kinds of kill and where in the work they fall; the agent's own timing still varies).
type chaosSettings struct {
	seed  uint64
	kills int
	teams int
}

func chaosSettingsFromEnv(t *testing.T) chaosSettings {
	t.Helper()
	c := chaosSettings{
		seed:  envUint(t, "BYOB_CHAOS_SEED", uint64(time.Now().UnixNano()), 0),
		kills: int(envUint(t, "BYOB_CHAOS_KILLS", 3, 1)),
		teams: int(envUint(t, "BYOB_CHAOS_TEAMS", 50, 3)),
	}
	t.Logf("chaos: seed %d, %d kills, %d teams (BYOB_CHAOS_SEED=%d replays this plan)", c.seed, c.kills, c.teams, c.seed)
	return c
}

// envUint reads a whole number of at least lowest from the environment, or returns def when unset.
func envUint(t *testing.T, name string, def, lowest uint64) uint64 {
	t.Helper()
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lowest || n > math.MaxInt32 {
		t.Fatalf("%s=%q: want a whole number from %d to %d", name, v, lowest, math.MaxInt32)
	}
	return n
}

// rng returns a generator seeded from the settings; stream tells independent users apart.
func (c chaosSettings) rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(c.seed, stream)) }

// chaosReport is one chaos test's summary: a JSON line appended to $BYOB_CHAOS_REPORT and logged.
type chaosReport struct {
	Test         string         `json:"test"`
	Seed         uint64         `json:"seed"`
	Passed       bool           `json:"passed"`
	Kills        int            `json:"kills"`
	KillsMidWork int            `json:"killsMidWork"` // kills that cut a run with mutations (or SCIM writes) in flight
	KillsBy      map[string]int `json:"killsBy"`      // what fired each kill
	Faults       map[string]int `json:"faults"`       // transient errors injected, by backend and kind
	Teams        int            `json:"teams"`        // desired teams (daemon: acknowledged groups)
	Converged    int            `json:"converged"`    // of those: one bucket, one W&B team, state in_sync
	Duplicates   int            `json:"duplicates"`   // extra buckets, W&B teams, KMS keys or SCIM resources
	Strays       int            `json:"strays"`       // buckets or W&B teams the state does not know
	Lost         int            `json:"lost"`         // acknowledged SCIM writes missing after the restart
	Acknowledged int            `json:"acknowledged,omitempty"`
	Secrets      int            `json:"secretsFound"`
	ConvergeSec  float64        `json:"convergeSeconds"` // from the last restart to everything converged
	TotalSec     float64        `json:"totalSeconds"`
}

// newChaosReport starts a test's report; it is written when the test ends, failed or not.
func newChaosReport(t *testing.T, c chaosSettings) *chaosReport {
	r := &chaosReport{Test: t.Name(), Seed: c.seed, KillsBy: map[string]int{}, Faults: map[string]int{}}
	start := time.Now()
	t.Cleanup(func() {
		r.Passed = !t.Failed()
		r.TotalSec = seconds(time.Since(start))
		line, err := json.Marshal(r)
		if err != nil {
			t.Errorf("chaos report: %v", err)
			return
		}
		t.Logf("chaos summary: %s", line)
		path := os.Getenv("BYOB_CHAOS_REPORT")
		if path == "" {
			return
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, werr := f.Write(append(line, '\n'))
			err = errors.Join(werr, f.Close())
		}
		if err != nil {
			t.Errorf("write chaos report %s: %v", path, err)
		}
	})
	return r
}

// seconds rounds d to tenths of a second.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*10) / 10 }

// chaosFaults is asked by the S3, KMS and Azure proxies and by the W&B emulator about every request.
// It fails a share of them with a transient error and, when armed, SIGKILLs the agent as a chosen
// chaosKill says. A request that triggers the kill is either failed (the mutation never happens) or
// passed on (it happens, and the agent never records it).
type chaosFaults struct {
	kill func() bool // SIGKILLs the running agent; false if none runs

	mu       gosync.Mutex
	rng      *rand.Rand
	rate     float64        // share of requests failed with 503
	faults   map[string]int // injected, by kind
	armed    time.Time      // when the current run was armed
	next     chaosKill      // the current run's kill; zero: none
	changes  int            // mutating requests seen since armed
	posts    int            // W&B POSTs seen since armed
	first    time.Duration  // from armed to the first mutation; 0 before it
	gen      int            // bumped by arm and disarm, so a late timer cannot kill the next run
	killedBy string         // what fired the kill of the current run
}

// chaosKill is when to SIGKILL one run: at its mutation-th mutating request to any backend, at its
// post-th POST to W&B (creating a team), or after a delay. Zero fields are off; the first to come fires.
type chaosKill struct {
	mutation, post int
	after          time.Duration
}

func (k chaosKill) String() string {
	var parts []string
	if k.mutation > 0 {
		parts = append(parts, fmt.Sprintf("at mutation %d", k.mutation))
	}
	if k.after > 0 {
		parts = append(parts, fmt.Sprintf("after %v", k.after.Round(time.Millisecond)))
	}
	if k.post > 0 {
		parts = append(parts, fmt.Sprintf("at W&B POST %d", k.post))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " or ")
}

// verdict is one request's fate.
type verdict int

const (
	proceed  verdict = iota
	fail             // a transient error
	killFail         // the agent is killed and the request fails
	killPass         // the agent is killed and the request goes through
)

func newChaosFaults(rng *rand.Rand, kill func() bool) *chaosFaults {
	return &chaosFaults{kill: kill, rng: rng, faults: map[string]int{}}
}

// install hooks f into the S3 and KMS proxies, Azurite's proxy and the emulator of e; removing the
// hooks is left to the cleanups of newE2E and of Azurite.
func (f *chaosFaults) install(e *e2e, az *testenv.AzureEnv) {
	backends.SetS3Fault(f.proxyFault("s3", testenv.IsS3Mutation))
	backends.SetKMSFault(f.proxyFault("kms", testenv.IsKMSMutation))
	az.SetFault(f.proxyFault("azure", testenv.IsS3Mutation))
	w := f.wandbFault
	e.fault.Store(&w)
}

// setRate sets the share of requests failed with a transient error.
func (f *chaosFaults) setRate(rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = rate
}

// arm prepares the next run's kill. The returned disarm, called once the run is over, tells what
// fired the kill ("" if nothing did).
func (f *chaosFaults) arm(k chaosKill) (disarm func() string) {
	f.mu.Lock()
	f.gen++
	gen := f.gen
	f.next, f.changes, f.posts, f.first, f.killedBy, f.armed = k, 0, 0, 0, "", time.Now()
	f.mu.Unlock()
	var timer *time.Timer
	if k.after > 0 {
		timer = time.AfterFunc(k.after, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.gen == gen && f.killedBy == "" && f.kill() {
				f.killedBy = "timer"
			}
		})
	}
	return func() string {
		if timer != nil {
			timer.Stop()
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gen++
		f.next = chaosKill{}
		return f.killedBy
	}
}

// seen returns how many mutating requests arrived since the run was armed, and how long after it the
// first one did: the agent's start-up and planning before it changes anything.
func (f *chaosFaults) seen() (mutations int, first time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes, f.first
}

// decide is a request's verdict. It holds f.mu while killing, so a kill cannot outlive the run it
// was armed for.
func (f *chaosFaults) decide(backend string, mutation, post bool) verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mutation {
		f.changes++
		if f.first == 0 {
			f.first = time.Since(f.armed)
		}
	}
	if post {
		f.posts++
	}
	k := f.next
	if f.killedBy == "" && (k.mutation > 0 && mutation && f.changes >= k.mutation || k.post > 0 && post && f.posts >= k.post) && f.kill() {
		if f.rng.IntN(2) == 0 {
			f.killedBy = backend + " request passed on"
			return killPass
		}
		f.killedBy = backend + " request failed"
		return killFail
	}
	if f.rate > 0 && f.rng.Float64() < f.rate {
		return fail
	}
	return proceed
}

func (f *chaosFaults) count(kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[kind]++
}

func (f *chaosFaults) proxyFault(backend string, mutation func(*http.Request) bool) testenv.Fault {
	return func(r *http.Request) (int, bool) {
		switch f.decide(backend, mutation(r), false) {
		case fail:
			f.count(backend + " 503")
			return http.StatusServiceUnavailable, true
		case killFail:
			return http.StatusServiceUnavailable, true
		}
		return 0, false
	}
}

// wandbFault also loses responses: the emulator applies a POST and answers 503 (W&B did the work,
// the agent never heard).
func (f *chaosFaults) wandbFault(r *http.Request) wandbemu.Fault {
	post := r.Method == http.MethodPost
	switch f.decide("wandb", r.Method != http.MethodGet, post) {
	case killPass:
		return wandbemu.Fault{Status: http.StatusServiceUnavailable, AfterApply: true}
	case killFail:
		return wandbemu.Fault{Status: http.StatusServiceUnavailable}
	case fail:
		if post {
			f.count("wandb lost response")
			return wandbemu.Fault{Status: http.StatusServiceUnavailable, AfterApply: true}
		}
		f.count("wandb 503")
		return wandbemu.Fault{Status: http.StatusServiceUnavailable}
	}
	return wandbemu.Fault{}
}

// injected returns a copy of the counts of injected faults.
func (f *chaosFaults) injected() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.faults)
}

// procKiller SIGKILLs the agent e is running, reporting whether there was one.
func procKiller(e *e2e) func() bool {
	return func() bool {
		p := e.proc.Load()
		return p != nil && p.Kill() == nil
	}
}
