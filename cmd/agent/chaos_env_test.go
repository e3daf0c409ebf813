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
// kinds of kill and the request each falls on, counted from the start of a run; the agent's own timing,
// and so which requests the transient faults hit, still varies).
type chaosSettings struct {
	seed  uint64
	kills int
	teams int
}

func chaosSettingsFromEnv(t *testing.T) chaosSettings {
	t.Helper()
	c := chaosSettings{
		seed:  envUint(t, "BYOB_CHAOS_SEED", uint64(time.Now().UnixNano()), 0, math.MaxUint64),
		kills: int(envUint(t, "BYOB_CHAOS_KILLS", 3, 1, math.MaxInt32)),
		teams: int(envUint(t, "BYOB_CHAOS_TEAMS", 50, 3, math.MaxInt32)),
	}
	t.Logf("chaos: seed %d, %d kills, %d teams (BYOB_CHAOS_SEED=%d replays this plan)", c.seed, c.kills, c.teams, c.seed)
	return c
}

// envUint reads a whole number from lowest to highest from the environment, or returns def when unset.
func envUint(t *testing.T, name string, def, lowest, highest uint64) uint64 {
	t.Helper()
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lowest || n > highest {
		t.Fatalf("%s=%q: want a whole number from %d to %d", name, v, lowest, highest)
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
	// Replicas on PostgreSQL (TestChaosHA): leader terms after the first, the longest time from a
	// leader's loss to the next term, and team records written with a stale epoch.
	Failovers        int     `json:"failovers,omitempty"`
	MaxLeaderlessSec float64 `json:"maxLeaderlessSeconds,omitempty"`
	StaleWrites      int     `json:"staleWrites,omitempty"`
	ConvergeSec      float64 `json:"convergeSeconds"` // from the last restart to everything converged
	TotalSec         float64 `json:"totalSeconds"`
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
	next     chaosKill      // the current run's kill; zero: none
	counts   map[string]int // mutating requests since armed, by backend ("wandb": POSTs, i.e. team creations)
	byBucket map[string]int // S3 and Azure mutating requests since armed, by bucket or container
	killedBy string         // what fired the kill of the current run
}

// chaosKill is where to SIGKILL one run: at its at-th mutating request to backend on ("s3", "kms",
// "azure"; "wandb" counts POSTs only). pass tells whether that request then goes through or fails.
// Counting requests rather than time makes the kill land however slow the machine is.
type chaosKill struct {
	on   string
	at   int
	pass bool
}

// parts are what the kill counts and the fate of the request that fires it.
func (k chaosKill) parts() (what, fate string) {
	what, fate = k.on+" mutation", "failed"
	if k.on == "wandb" {
		what = "W&B POST"
	}
	if k.pass {
		fate = "passed on"
	}
	return what, fate
}

// kind is the kill without its count, for the report's tally.
func (k chaosKill) kind() string {
	what, fate := k.parts()
	return what + " (" + fate + ")"
}

func (k chaosKill) String() string {
	if k.at == 0 {
		return "none"
	}
	what, fate := k.parts()
	return fmt.Sprintf("%s %d (%s)", what, k.at, fate)
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
	return &chaosFaults{kill: kill, rng: rng, faults: map[string]int{}, counts: map[string]int{}, byBucket: map[string]int{}}
}

// install hooks f into the S3 and KMS proxies, Azurite's proxy (unless az is nil) and the emulator of e; removing the
// hooks is left to the cleanups of newE2E and of Azurite. Both S3 and Azurite are addressed by path:
// /bucket/... and /account/container/... .
func (f *chaosFaults) install(e *e2e, az *testenv.AzureEnv) {
	backends.SetS3Fault(f.proxyFault("s3", testenv.IsS3Mutation, 0))
	backends.SetKMSFault(f.proxyFault("kms", testenv.IsKMSMutation, -1))
	if az != nil {
		az.SetFault(f.proxyFault("azure", testenv.IsS3Mutation, 1))
	}
	w := f.wandbFault
	e.fault.Store(&w)
}

// setRate sets the share of requests failed with a transient error.
func (f *chaosFaults) setRate(rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = rate
}

// arm prepares the next run's kill and starts counting its mutations afresh. The returned disarm,
// called once the run is over, tells what fired the kill ("" if nothing did).
func (f *chaosFaults) arm(k chaosKill) (disarm func() string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next, f.killedBy = k, ""
	clear(f.counts)
	clear(f.byBucket)
	return func() string {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.next = chaosKill{}
		return f.killedBy
	}
}

// seen returns copies of the mutation counts since the run was armed: by backend, and by bucket.
func (f *chaosFaults) seen() (byBackend, byBucket map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.counts), maps.Clone(f.byBucket)
}

// decide is a request's verdict. It holds f.mu while killing, so a kill cannot outlive the run it
// was armed for. The kill fires at the armed count or, should there be no agent to kill yet (its
// process not yet registered), at the next mutation after it.
func (f *chaosFaults) decide(backend, bucket string, mutation bool) verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mutation {
		f.counts[backend]++
		if bucket != "" {
			f.byBucket[bucket]++
		}
		if k := f.next; f.killedBy == "" && k.on == backend && f.counts[backend] >= k.at && f.kill() {
			f.killedBy = k.kind()
			if k.pass {
				return killPass
			}
			return killFail
		}
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

// proxyFault is the hook of one backend's proxy; segment is the bucket's place in the request path
// (-1: the backend has no buckets).
func (f *chaosFaults) proxyFault(backend string, mutation func(*http.Request) bool, segment int) testenv.Fault {
	return func(r *http.Request) (int, bool) {
		bucket := ""
		if parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/"); segment >= 0 && segment < len(parts) {
			bucket = parts[segment]
		}
		switch f.decide(backend, bucket, mutation(r)) {
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
	switch f.decide("wandb", "", post) {
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
