// Package applytest provides what the reconciler's tests share: team fixtures, a storage factory
// fake that records calls and fails on demand, and a Reconciler against the W&B emulator.
package applytest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/team"
)

// Now is the fixtures' clock.
var Now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// Storage is an aws storage spec with a configured key.
func Storage(bucket string) team.Storage {
	return team.Storage{Provider: team.ProviderAWS, Bucket: bucket, Region: "us-east-1", KMSKeyARN: "arn:aws:kms:us-east-1:1:key/k"}
}

// DesiredTeam is a team of the configuration on profile main.
func DesiredTeam(name string, st team.Storage) team.Team {
	return team.Team{Name: name, Profile: "main", Source: "yaml", Storage: st}
}

// FakeFactory stands in for a storage provider (the real ones are tested against real S3 in their
// own package and end to end in cmd/agent). It records calls and fails on demand.
type FakeFactory struct {
	mu        sync.Mutex
	Calls     []string
	FailOn    map[string]error // "ensure:<team>", "verify:<team>", "probe:<team>", "key:<team>"
	Changes   []bucketfactory.Change
	Recovered []string // teams EnsureKey was told to recover
	Adoptions []string // teams Ensure was allowed to adopt untagged
	// RepairOnEnsure makes Ensure clear the check failures set for its team ("inspect:" and "verify:"
	// in FailOn), as a real Ensure repairs the settings those checks read.
	RepairOnEnsure bool
}

func (f *FakeFactory) record(op, team string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, op+":"+team)
	return f.FailOn[op+":"+team]
}

func (f *FakeFactory) EnsureKey(ctx context.Context, teamName string, recovering bool) (string, bool, error) {
	if recovering {
		f.mu.Lock()
		f.Recovered = append(f.Recovered, teamName)
		f.mu.Unlock()
	}
	if err := f.record("key", teamName); err != nil {
		return "", false, err
	}
	return "arn:aws:kms:us-east-1:111122223333:key/" + teamName, true, nil
}

func (f *FakeFactory) Ensure(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	if o.AdoptUntagged {
		f.mu.Lock()
		f.Adoptions = append(f.Adoptions, b.Team)
		f.mu.Unlock()
	}
	if b.Storage.Provider == team.ProviderAWS && b.KMSKeyARN == "" {
		return nil, fmt.Errorf("no KMS key for an aws bucket")
	}
	if err := f.record("ensure", b.Team); err != nil {
		return nil, err
	}
	if f.RepairOnEnsure {
		f.mu.Lock()
		delete(f.FailOn, "inspect:"+b.Team)
		delete(f.FailOn, "verify:"+b.Team)
		f.mu.Unlock()
	}
	return f.Changes, nil
}

func (f *FakeFactory) Check(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.CheckOptions) ([]bucketfactory.CheckResult, error) {
	op := "inspect"
	switch {
	case o.Probe && o.SettingsVerified:
		op = "probe" // the team's path only
	case o.Probe:
		op = "verify"
	}
	err := f.record(op, b.Team)
	var ve *bucketfactory.VerifyError
	if errors.As(err, &ve) {
		return append([]bucketfactory.CheckResult{{Check: "exists", OK: true}}, ve.Failures...), nil
	}
	return []bucketfactory.CheckResult{{Check: "exists", OK: true}}, err
}

func (f *FakeFactory) Address(ctx context.Context, b bucketfactory.Bucket) (string, error) {
	return "s3://key:secret@s3.example/" + b.Storage.Bucket, nil
}

func (f *FakeFactory) CallCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.Calls)
}

// ServiceAccountName is the organisation service account every Env's W&B has: W&B adds it to each new
// team, and member operations must leave it alone (https://docs.wandb.ai/platform/hosting/iam/scim).
const ServiceAccountName = "ci-bot"

// Env is a Reconciler on a fresh state, with FakeFactory as profile main's storage and the W&B
// emulator behind a real W&B client; Fault, when set, injects faults into the emulator.
type Env struct {
	Emu     *wandbemu.Server
	Store   *state.DB
	Factory *FakeFactory
	Rec     *apply.Reconciler
	Clock   time.Time
	Fault   atomic.Pointer[func(*http.Request) wandbemu.Fault]
	// Answer, when set, may answer a request itself instead of the emulator (returning true): for
	// answers W&B may give that the emulator does not make, such as an error with a given detail.
	Answer atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	// ServiceAccount is the user id of the organisation's service account (ServiceAccountName).
	ServiceAccount string
}

// NewEnv starts the emulator and opens the state; both are closed when the test ends.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	e := &Env{Factory: &FakeFactory{FailOn: map[string]error{}}, Clock: Now}
	e.Emu = wandbemu.New(wandbemu.Options{APIKey: "k", ServiceAccounts: []string{ServiceAccountName}, Fault: func(r *http.Request) wandbemu.Fault {
		if f := e.Fault.Load(); f != nil {
			return (*f)(r)
		}
		return wandbemu.Fault{}
	}})
	e.ServiceAccount = e.Emu.ServiceAccountIDs()[0]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := e.Answer.Load(); a != nil && (*a)(w, r) {
			return
		}
		e.Emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(e.Emu.Close)
	client, err := wandb.NewClient(wandb.Options{BaseURL: srv.URL + "/scim", Auth: wandb.AuthBearer, APIKey: "k",
		Timeout: 2 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.Store, err = state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Store.Close() })
	e.Rec = &apply.Reconciler{
		Store: e.Store, WandB: client, Profiles: map[string]apply.Profile{"main": {Factory: e.Factory}},
		Concurrency: 4, DriftInterval: 24 * time.Hour, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return e.Clock },
	}
	return e
}

// Sync plans and applies desired once and returns the results by team.
func (e *Env) Sync(t *testing.T, desired []team.Team) map[string]apply.Result {
	t.Helper()
	results, err := e.Rec.Sync(t.Context(), desired, apply.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]apply.Result{}
	for _, r := range results {
		out[r.Team] = r
	}
	return out
}

// Record is the team's record in the state.
func (e *Env) Record(t *testing.T, name string) state.Record {
	t.Helper()
	r, err := e.Store.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Teams are teams of the configuration, each with a bucket of its own.
func Teams(names ...string) []team.Team {
	out := make([]team.Team, len(names))
	for i, n := range names {
		out[i] = DesiredTeam(n, Storage("wandb-"+n))
	}
	return out
}

// OverlapFactory records whether an Ensure of a bucket overlapped another Ensure or a Check of the
// same bucket (checks may overlap each other: they only read, and probe under their own team's path).
type OverlapFactory struct {
	FakeFactory
	mu       sync.Mutex
	ensuring map[string]bool // bucket -> an Ensure is running
	checking map[string]int  // bucket -> Checks running
	Overlap  atomic.Bool
}

// enter marks a call on bucket as running (exclusive for an Ensure) and returns its end.
func (f *OverlapFactory) enter(bucket string, exclusive bool) (leave func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ensuring == nil {
		f.ensuring, f.checking = map[string]bool{}, map[string]int{}
	}
	if f.ensuring[bucket] || exclusive && f.checking[bucket] > 0 {
		f.Overlap.Store(true)
	}
	if exclusive {
		f.ensuring[bucket] = true
	} else {
		f.checking[bucket]++
	}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if exclusive {
			delete(f.ensuring, bucket)
		} else {
			f.checking[bucket]--
		}
	}
}

func (f *OverlapFactory) Ensure(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	defer f.enter(b.Storage.Bucket, true)()
	time.Sleep(5 * time.Millisecond)
	return f.FakeFactory.Ensure(ctx, b, o)
}

func (f *OverlapFactory) Check(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.CheckOptions) ([]bucketfactory.CheckResult, error) {
	defer f.enter(b.Storage.Bucket, false)()
	time.Sleep(time.Millisecond)
	return f.FakeFactory.Check(ctx, b, o)
}

// Members are the sorted user ids of W&B's team name.
func (e *Env) Members(t *testing.T, name string) []string {
	t.Helper()
	for _, g := range e.Emu.Groups() {
		if g.DisplayName == name {
			ids := make([]string, 0, len(g.Members))
			for _, m := range g.Members {
				ids = append(ids, m.Value)
			}
			slices.Sort(ids)
			return ids
		}
	}
	t.Fatalf("no W&B team %s", name)
	return nil
}
