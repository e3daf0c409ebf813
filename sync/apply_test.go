package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

// fakeFactory stands in for a storage provider (the real ones are tested against real S3 in their
// own package and end to end in cmd/agent). It records calls and fails on demand.
type fakeFactory struct {
	mu        gosync.Mutex
	calls     []string
	failOn    map[string]error // "ensure:<team>", "verify:<team>", "key:<team>"
	changes   []bucketfactory.Change
	recovered []string // teams EnsureKey was told to recover
	adoptions []string // teams Ensure was allowed to adopt untagged
}

func (f *fakeFactory) record(op, team string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+":"+team)
	return f.failOn[op+":"+team]
}

func (f *fakeFactory) EnsureKey(ctx context.Context, teamName string, recovering bool) (string, bool, error) {
	if recovering {
		f.mu.Lock()
		f.recovered = append(f.recovered, teamName)
		f.mu.Unlock()
	}
	if err := f.record("key", teamName); err != nil {
		return "", false, err
	}
	return "arn:aws:kms:us-east-1:111122223333:key/" + teamName, true, nil
}

func (f *fakeFactory) Ensure(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	if o.AdoptUntagged {
		f.mu.Lock()
		f.adoptions = append(f.adoptions, b.Team)
		f.mu.Unlock()
	}
	if b.Storage.Provider == team.ProviderAWS && b.KMSKeyARN == "" {
		return nil, fmt.Errorf("no KMS key for an aws bucket")
	}
	if err := f.record("ensure", b.Team); err != nil {
		return nil, err
	}
	return f.changes, nil
}

func (f *fakeFactory) Check(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.CheckOptions) ([]bucketfactory.CheckResult, error) {
	op := "inspect"
	if o.Probe {
		op = "verify"
	}
	err := f.record(op, b.Team)
	var ve *bucketfactory.VerifyError
	if errors.As(err, &ve) {
		return append([]bucketfactory.CheckResult{{Check: "exists", OK: true}}, ve.Failures...), nil
	}
	return []bucketfactory.CheckResult{{Check: "exists", OK: true}}, err
}

func (f *fakeFactory) Address(ctx context.Context, b bucketfactory.Bucket) (string, error) {
	return "s3://key:secret@s3.example/" + b.Storage.Bucket, nil
}

func (f *fakeFactory) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type env struct {
	emu     *wandbemu.Server
	store   *state.DB
	factory *fakeFactory
	rec     *Reconciler
	clock   time.Time
	fault   atomic.Pointer[func(*http.Request) wandbemu.Fault]
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{factory: &fakeFactory{failOn: map[string]error{}}, clock: now}
	e.emu = wandbemu.New(wandbemu.Options{APIKey: "k", Fault: func(r *http.Request) wandbemu.Fault {
		if f := e.fault.Load(); f != nil {
			return (*f)(r)
		}
		return wandbemu.Fault{}
	}})
	srv := httptest.NewServer(e.emu)
	t.Cleanup(srv.Close)
	t.Cleanup(e.emu.Close)
	client, err := wandb.NewClient(wandb.Options{BaseURL: srv.URL + "/scim", Auth: wandb.AuthBearer, APIKey: "k",
		Timeout: 2 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.store, err = state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.rec = &Reconciler{
		Store: e.store, WandB: client, Profiles: map[string]Profile{"main": {Factory: e.factory}},
		Concurrency: 4, DriftInterval: 24 * time.Hour, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return e.clock },
	}
	return e
}

func (e *env) sync(t *testing.T, desired []team.Team) map[string]Result {
	t.Helper()
	results, err := e.rec.Sync(t.Context(), desired, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Result{}
	for _, r := range results {
		out[r.Team] = r
	}
	return out
}

func (e *env) record(t *testing.T, name string) state.Record {
	t.Helper()
	r, err := e.store.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func teams(names ...string) []team.Team {
	out := make([]team.Team, len(names))
	for i, n := range names {
		out[i] = desiredTeam(n, storage("wandb-"+n))
	}
	return out
}

func TestSyncCreatesThenIsIdempotent(t *testing.T) {
	e := newEnv(t)
	desired := teams("a", "b")
	keyed := desiredTeam("c", team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-c", Region: "us-east-1", CreateKMSKey: true})
	desired = append(desired, keyed)

	res := e.sync(t, desired)
	for _, n := range []string{"a", "b", "c"} {
		if res[n].Outcome != OutcomeCreated {
			t.Fatalf("team %s: %+v", n, res[n])
		}
		r := e.record(t, n)
		if r.Phase != state.PhaseInSync || r.GroupID == "" || r.Intent != nil || r.LastVerified.IsZero() {
			t.Errorf("record %s = %+v", n, r)
		}
	}
	byName := map[string]wandbemu.EmuGroup{}
	for _, g := range e.emu.Groups() {
		byName[g.DisplayName] = g
	}
	if len(byName) != 3 {
		t.Fatalf("W&B has %d teams, want 3", len(byName))
	}
	if sb := byName["c"].StorageBucket; sb == nil || sb.Name != "wandb-c" || sb.Provider != "AWS" || sb.KMSKeyID != "arn:aws:kms:us-east-1:111122223333:key/c" {
		t.Errorf("team c storageBucket = %+v", sb)
	}
	if sb := byName["a"].StorageBucket; sb == nil || sb.KMSKeyID != "arn:aws:kms:us-east-1:1:key/k" {
		t.Errorf("team a storageBucket = %+v", sb)
	}

	// Nothing changed: no mutation anywhere, one W&B listing, no cloud call.
	e.emu.ResetCounts()
	calls := e.factory.callCount()
	res = e.sync(t, desired)
	for n, r := range res {
		if r.Outcome != OutcomeUnchanged {
			t.Errorf("second sync, team %s: %+v", n, r)
		}
	}
	if got := e.emu.MutatingCount(); got != 0 {
		t.Errorf("second sync made %d mutating W&B calls", got)
	}
	if got := e.emu.Counts()["GET /scim/Groups"]; got != 1 {
		t.Errorf("second sync listed W&B teams %d times, want 1", got)
	}
	if got := e.factory.callCount(); got != calls {
		t.Errorf("second sync made %d storage calls", got-calls)
	}
}

func TestOneFailingTeamDoesNotStopOthers(t *testing.T) {
	e := newEnv(t)
	e.factory.failOn["ensure:b"] = errors.New("access denied")
	e.factory.failOn["verify:c"] = &bucketfactory.VerifyError{Bucket: "wandb-c", Failures: []bucketfactory.CheckResult{{Check: "cors", Expected: "GET,HEAD,PUT", Found: "none"}}}
	res := e.sync(t, teams("a", "b", "c"))
	if res["a"].Outcome != OutcomeCreated || res["b"].Outcome != OutcomeFailed || res["c"].Outcome != OutcomeFailed {
		t.Fatalf("results: %+v", res)
	}
	b := e.record(t, "b")
	if b.Attempts != 1 || !strings.Contains(b.LastError, "access denied") || b.Intent == nil || b.Intent.Op != state.OpEnsureBucket || !b.NextRetry.After(now) {
		t.Errorf("failed record b = %+v", b)
	}
	c := e.record(t, "c")
	if !strings.Contains(c.LastError, "cors: expected GET,HEAD,PUT, found none") || c.Phase != state.PhaseDesired {
		t.Errorf("failed record c = %+v", c)
	}
	if len(e.emu.Groups()) != 1 {
		t.Fatalf("W&B teams: %+v; a bucket that failed verification must not get a team", e.emu.Groups())
	}

	// Fixed: the retry resumes, and an unfinished ensure may adopt its own untagged bucket.
	delete(e.factory.failOn, "ensure:b")
	delete(e.factory.failOn, "verify:c")
	res = e.sync(t, teams("a", "b", "c"))
	if res["b"].Outcome != OutcomeCreated || res["c"].Outcome != OutcomeCreated {
		t.Fatalf("retry results: %+v", res)
	}
	if got := e.record(t, "b"); got.Attempts != 0 || got.LastError != "" {
		t.Errorf("record b after success = %+v", got)
	}
	if !strings.Contains(strings.Join(e.factory.adoptions, ","), "b") {
		t.Errorf("ensure after an interrupted ensure was not allowed to adopt: %v", e.factory.adoptions)
	}
}

// TestLostCreateResponseIsAdopted: W&B created the team but its answer was lost (a 502 from a proxy, or
// no answer until the client's timeout). The retry finds the team by name and adopts it: one team.
func TestLostCreateResponseIsAdopted(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault wandbemu.Fault
	}{
		{"502 after create", wandbemu.Fault{Status: http.StatusBadGateway, AfterApply: true}},
		{"timeout after create", wandbemu.Fault{Hang: true, AfterApply: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var once atomic.Bool
			fault := func(r *http.Request) wandbemu.Fault {
				if r.Method == http.MethodPost && once.CompareAndSwap(false, true) {
					return tt.fault
				}
				return wandbemu.Fault{}
			}
			e.fault.Store(&fault)
			res := e.sync(t, teams("a"))
			if res["a"].Outcome != OutcomeCreated {
				t.Fatalf("result: %+v", res["a"])
			}
			groups := e.emu.Groups()
			if len(groups) != 1 || e.record(t, "a").GroupID != groups[0].ID {
				t.Fatalf("W&B teams %+v, record %+v", groups, e.record(t, "a"))
			}
		})
	}
}

func TestCrashAfterCreateIsAdopted(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	st := storage("wandb-a")
	// The state says we were creating the team; W&B has it (the crash came before the answer was recorded).
	if _, err := e.store.Update(ctx, "a", func(r *state.Record) error {
		r.Profile, r.Phase, r.Storage, r.StorageDigest, r.KMSKeyARN = "main", state.PhaseBucketReady, st, st.Digest(), st.KMSKeyARN
		r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: "a"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	client, _ := e.rec.WandB.(*wandb.Client)
	g, err := client.CreateGroup(ctx, wandb.NewGroup{DisplayName: "a", StorageBucket: wandb.BucketFor(st, st.KMSKeyARN)})
	if err != nil {
		t.Fatal(err)
	}
	e.emu.ResetCounts()
	res := e.sync(t, teams("a"))
	if res["a"].Outcome != OutcomeCreated || e.record(t, "a").GroupID != g.ID || e.emu.MutatingCount() != 0 {
		t.Fatalf("result %+v record %+v mutations %d", res["a"], e.record(t, "a"), e.emu.MutatingCount())
	}
}

func TestConflictsTouchNothing(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	client, _ := e.rec.WandB.(*wandb.Client)
	if _, err := client.CreateGroup(ctx, wandb.NewGroup{DisplayName: "foreign"}); err != nil {
		t.Fatal(err)
	}
	e.sync(t, teams("mine"))
	e.emu.ResetCounts()
	calls := e.factory.callCount()

	moved := desiredTeam("mine", storage("wandb-elsewhere"))
	res := e.sync(t, []team.Team{moved, teams("foreign")[0]})
	if res["mine"].Outcome != OutcomeConflict || !strings.Contains(res["mine"].Detail, "cannot change a team's storage") {
		t.Errorf("storage change: %+v", res["mine"])
	}
	if res["foreign"].Outcome != OutcomeConflict || !strings.Contains(res["foreign"].Detail, "did not create") {
		t.Errorf("foreign team: %+v", res["foreign"])
	}
	if e.emu.MutatingCount() != 0 || e.factory.callCount() != calls {
		t.Errorf("a conflict made calls: %d W&B mutations, %d storage calls", e.emu.MutatingCount(), e.factory.callCount()-calls)
	}
	if r := e.record(t, "mine"); r.Conflict == "" || r.Storage.Bucket != "wandb-mine" || r.Phase != state.PhaseInSync {
		t.Errorf("record mine = %+v: the conflict must be recorded and the storage kept", r)
	}
	// Back to the original storage: the conflict clears.
	res = e.sync(t, teams("mine"))
	if res["mine"].Outcome != OutcomeUpdated || e.record(t, "mine").Conflict != "" {
		t.Errorf("after restoring: %+v, %+v", res["mine"], e.record(t, "mine"))
	}
}

func TestDriftCheckAndOrphan(t *testing.T) {
	e := newEnv(t)
	e.sync(t, teams("a", "b"))
	e.clock = now.Add(25 * time.Hour)
	e.factory.changes = []bucketfactory.Change{{Setting: "cors", Detail: "restored W&B's CORS rule"}}
	e.emu.ResetCounts()
	res := e.sync(t, teams("a"))
	if res["a"].Outcome != OutcomeRepaired || len(res["a"].Changes) != 1 {
		t.Errorf("drift: %+v", res["a"])
	}
	if e.record(t, "a").LastVerified != e.clock {
		t.Errorf("LastVerified not advanced: %+v", e.record(t, "a"))
	}
	if res["b"].Outcome != OutcomeUpdated || !e.record(t, "b").Orphaned {
		t.Errorf("orphan: %+v %+v", res["b"], e.record(t, "b"))
	}
	if e.emu.MutatingCount() != 0 {
		t.Errorf("drift repair and orphaning must not touch W&B: %d mutations", e.emu.MutatingCount())
	}
}

func TestCreateKeyRecoversAfterInterruptedCreate(t *testing.T) {
	e := newEnv(t)
	keyed := desiredTeam("k", team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-k", Region: "us-east-1", CreateKMSKey: true})
	e.factory.failOn["ensure:k"] = errors.New("network down")
	e.sync(t, []team.Team{keyed})
	// The key was made and recorded; the bucket failed. Now simulate a crash during key creation on another team.
	if _, err := e.store.Update(t.Context(), "j", func(r *state.Record) error {
		r.Profile, r.Phase = "main", state.PhaseDesired
		r.Intent = &state.Intent{Op: state.OpCreateKey, Target: "j"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	delete(e.factory.failOn, "ensure:k")
	j := desiredTeam("j", team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-j", Region: "us-east-1", CreateKMSKey: true})
	res := e.sync(t, []team.Team{keyed, j})
	if res["k"].Outcome != OutcomeCreated || res["j"].Outcome != OutcomeCreated {
		t.Fatalf("results %+v", res)
	}
	if strings.Join(e.factory.recovered, ",") != "j" {
		t.Errorf("recovering EnsureKey calls: %v, want [j]", e.factory.recovered)
	}
	if n := strings.Count(strings.Join(e.factory.calls, ","), "key:k"); n != 1 {
		t.Errorf("team k's key was ensured %d times, want 1 (it was recorded)", n)
	}
}

// BenchmarkSyncConverged5000 measures a whole reconcile of 5,000 converged teams: one state read,
// W&B's team list over HTTP (the emulator), the plan, and no call to any cloud.
func BenchmarkSyncConverged5000(b *testing.B) {
	const n = 5000
	e := newEnv(b)
	ctx := b.Context()
	client := e.rec.WandB.(*wandb.Client)
	desired := make([]team.Team, n)
	var wg gosync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		name := fmt.Sprintf("team-%05d", i)
		desired[i] = desiredTeam(name, storage("wandb-"+name))
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			g, err := client.CreateGroup(ctx, wandb.NewGroup{DisplayName: name, StorageBucket: wandb.BucketFor(desired[i].Storage, "")})
			if err != nil {
				b.Error(err)
				return
			}
			st := desired[i].Storage
			if _, err := e.store.Update(ctx, name, func(r *state.Record) error {
				r.Profile, r.Phase, r.Storage, r.StorageDigest, r.GroupID, r.LastVerified = "main", state.PhaseInSync, st, st.Digest(), g.ID, now
				return nil
			}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	e.emu.ResetCounts()
	b.ResetTimer()
	for b.Loop() {
		results, err := e.rec.Sync(ctx, desired, PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range results {
			if r.Outcome != OutcomeUnchanged {
				b.Fatalf("team %s: %+v", r.Team, r)
			}
		}
	}
	b.StopTimer()
	if e.factory.callCount() != 0 || e.emu.MutatingCount() != 0 {
		b.Fatalf("converged reconcile made calls: storage %d, W&B mutations %d", e.factory.callCount(), e.emu.MutatingCount())
	}
	b.ReportMetric(float64(e.emu.Counts()["GET /scim/Groups"])/float64(b.N), "W&B-requests/op")
}

func TestRequireRegisteredHoldsTeamUntilMarked(t *testing.T) {
	e := newEnv(t)
	e.rec.Profiles["main"] = Profile{Factory: e.factory, RequireRegistered: true}
	res := e.sync(t, teams("a"))
	if res["a"].Outcome != OutcomeWaiting || !strings.Contains(res["a"].Detail, "mark-registered a") {
		t.Fatalf("first sync: %+v", res["a"])
	}
	if r := e.record(t, "a"); r.Phase != state.PhaseBucketReady || len(e.emu.Groups()) != 0 {
		t.Fatalf("the bucket must be ready and no team created: %+v, %d teams", r, len(e.emu.Groups()))
	}
	if res := e.sync(t, teams("a")); res["a"].Outcome != OutcomeWaiting || len(e.emu.Groups()) != 0 {
		t.Fatalf("second sync: %+v", res["a"])
	}
	if _, err := e.store.Update(t.Context(), "a", func(r *state.Record) error { r.Registered = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if res := e.sync(t, teams("a")); res["a"].Outcome != OutcomeCreated {
		t.Fatalf("after marking: %+v", res["a"])
	}
}

func TestPlanInspectsDriftReadOnly(t *testing.T) {
	e := newEnv(t)
	e.sync(t, teams("a", "b"))
	e.clock = now.Add(48 * time.Hour)
	e.factory.failOn["inspect:a"] = &bucketfactory.VerifyError{Failures: []bucketfactory.CheckResult{{Check: "cors", Expected: "W&B's rule", Found: "none"}}}
	plans, err := e.rec.Plan(t.Context(), teams("a", "b"), PlanOptions{InspectDrift: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plans[0].Drift) != 1 || !strings.Contains(plans[0].Summary(), "repair drift: cors") || len(plans[1].Drift) != 0 {
		t.Errorf("plans: %+v / %+v", plans[0], plans[1])
	}
	for _, c := range e.factory.calls {
		if strings.HasPrefix(c, "ensure:") && c != "ensure:a" && c != "ensure:b" {
			t.Errorf("unexpected call %s", c)
		}
	}
	if got := strings.Count(strings.Join(e.factory.calls, ","), "inspect:"); got != 2 {
		t.Errorf("%d read-only checks, want 2: %v", got, e.factory.calls)
	}
}

// overlapFactory fails if two calls on one bucket overlap.
type overlapFactory struct {
	fakeFactory
	busy    gosync.Map
	overlap atomic.Bool
}

func (f *overlapFactory) Ensure(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	if _, loaded := f.busy.LoadOrStore(b.Storage.Bucket, true); loaded {
		f.overlap.Store(true)
	}
	time.Sleep(5 * time.Millisecond)
	f.busy.Delete(b.Storage.Bucket)
	return f.fakeFactory.Ensure(ctx, b, o)
}

func TestSharedBucketIsNeverEnsuredTwiceAtOnce(t *testing.T) {
	e := newEnv(t)
	f := &overlapFactory{fakeFactory: fakeFactory{failOn: map[string]error{}}}
	e.rec.Profiles["main"] = Profile{Factory: f}
	e.rec.Concurrency = 8
	var desired []team.Team
	for i := range 8 {
		st := storage("shared-bucket")
		st.Shared, st.Path = true, fmt.Sprintf("teams/t%d", i)
		desired = append(desired, desiredTeam(fmt.Sprintf("t%d", i), st))
	}
	res := e.sync(t, desired)
	for n, r := range res {
		if r.Outcome != OutcomeCreated {
			t.Errorf("%s: %+v", n, r)
		}
	}
	if f.overlap.Load() {
		t.Error("two Ensure calls on one shared bucket overlapped")
	}
	for _, g := range e.emu.Groups() {
		if g.StorageBucket.Name != "shared-bucket" || !strings.HasPrefix(g.StorageBucket.Path, "teams/t") {
			t.Errorf("team %s storage %+v", g.DisplayName, g.StorageBucket)
		}
	}
}

func TestCancelledApplyLeavesUnstartedTeamsAlone(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	plans, err := e.rec.Plan(t.Context(), teams("a", "b"), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.rec.Apply(ctx, plans) {
		if r.Outcome != OutcomeWaiting {
			t.Errorf("%s: %+v", r.Team, r)
		}
	}
	if recs, _ := e.store.List(t.Context()); len(recs) != 0 {
		t.Errorf("a cancelled apply wrote %d records", len(recs))
	}
}

func memberTeam(name string, members ...string) team.Team {
	t := desiredTeam(name, storage("wandb-"+name))
	t.ManageMembers, t.Members = true, members
	return t
}

func (e *env) members(t *testing.T, name string) []string {
	t.Helper()
	for _, g := range e.emu.Groups() {
		if g.DisplayName == name {
			ids := memberIDs(g.Members)
			slices.Sort(ids)
			return ids
		}
	}
	t.Fatalf("no W&B team %s", name)
	return nil
}

func TestMembersSync(t *testing.T) {
	e := newEnv(t)
	e.rec.Members = MembersPolicy{Sync: true, MaxRemove: 0.5}
	ada, bob, carol := e.emu.AddUser("ada", "ada@example.com"), e.emu.AddUser("bob", "bob@example.com"), e.emu.AddUser("carol", "carol@example.com")
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

	res := e.sync(t, []team.Team{memberTeam("ml", "ada@example.com", "bob@example.com", "carol@example.com", "zed@example.com")})
	if res["ml"].Outcome != OutcomeCreated || !slices.Equal(e.members(t, "ml"), sorted(ada, bob, carol)) {
		t.Fatalf("after create: %+v, members %v", res["ml"], e.members(t, "ml"))
	}
	if !strings.Contains(strings.Join(res["ml"].Changes, ";"), "zed@example.com") {
		t.Errorf("an unknown member must be reported: %v", res["ml"].Changes)
	}

	// Converged (apart from the unknown member, looked up again): no membership change.
	e.emu.ResetCounts()
	e.sync(t, []team.Team{memberTeam("ml", "ada@example.com", "bob@example.com", "carol@example.com")})
	e.emu.ResetCounts()
	e.sync(t, []team.Team{memberTeam("ml", "ada@example.com", "bob@example.com", "carol@example.com")})
	if n := e.emu.MutatingCount() + e.emu.Counts()["GET /scim/Users"]; n != 0 {
		t.Errorf("a converged team made %d member calls", n)
	}

	// Someone adds dave by hand; the source drops bob. Owned mode removes bob only.
	client := e.rec.WandB.(*wandb.Client)
	dave := e.emu.AddUser("dave", "dave@example.com")
	groupID := e.record(t, "ml").GroupID
	if err := client.AddMembers(t.Context(), groupID, []string{dave}); err != nil {
		t.Fatal(err)
	}
	e.sync(t, []team.Team{memberTeam("ml", "ada@example.com", "carol@example.com")})
	if got := e.members(t, "ml"); !slices.Equal(got, sorted(ada, carol, dave)) {
		t.Errorf("owned mode: members %v, want ada, carol, dave", got)
	}

	// An IdP outage returns the group empty: refused, nothing removed.
	res = e.sync(t, []team.Team{memberTeam("ml")})
	if res["ml"].Outcome != OutcomeFailed || !strings.Contains(res["ml"].Detail, "refusing to remove 2 of the team's 3 members") {
		t.Errorf("outage: %+v", res["ml"])
	}
	if got := e.members(t, "ml"); len(got) != 3 {
		t.Errorf("members after a refused sync: %v", got)
	}

	// Authoritative mode makes the team equal to the group (dave goes), and can create users.
	e.rec.Members = MembersPolicy{Sync: true, Authoritative: true, CreateUsers: true, MaxRemove: 0.5}
	res = e.sync(t, []team.Team{memberTeam("ml", "ada@example.com", "carol@example.com", "erin@example.com")})
	got := e.members(t, "ml")
	if len(got) != 3 || slices.Contains(got, dave) || !strings.Contains(strings.Join(res["ml"].Changes, ";"), "created W&B user erin@example.com") {
		t.Errorf("authoritative: members %v, result %+v", got, res["ml"])
	}
}

func TestOneShotSyncLeavesOtherSourcesAlone(t *testing.T) {
	e := newEnv(t)
	pushed := desiredTeam("pushed", storage("wandb-pushed"))
	pushed.Source = "scim"
	e.sync(t, append(teams("a"), pushed))
	results, err := e.rec.Sync(t.Context(), teams("a"), PlanOptions{Sources: map[string]bool{"yaml": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Team != "a" || e.record(t, "pushed").Orphaned {
		t.Errorf("a yaml-only sync touched the pushed team: %+v", results)
	}
}

func TestMemberRoles(t *testing.T) {
	e := newEnv(t)
	e.rec.Members = MembersPolicy{Sync: true, MaxRemove: 0.5}
	ada, bob := e.emu.AddUser("ada", "ada@example.com"), e.emu.AddUser("bob", "bob@example.com")
	withRoles := func(roles map[string]string) []team.Team {
		tm := memberTeam("ml", "ada@example.com", "bob@example.com")
		tm.Roles = roles
		return []team.Team{tm}
	}
	e.sync(t, withRoles(map[string]string{"ada@example.com": team.RoleAdmin, "bob@example.com": team.RoleViewer}))
	if a, b := e.emu.TeamRole(ada, "ml"), e.emu.TeamRole(bob, "ml"); a != "admin" || b != "viewer" {
		t.Fatalf("roles after create: ada %q bob %q", a, b)
	}
	// Converged: no call at all.
	e.emu.ResetCounts()
	e.sync(t, withRoles(map[string]string{"ada@example.com": team.RoleAdmin, "bob@example.com": team.RoleViewer}))
	if n := e.emu.MutatingCount() + e.emu.Counts()["GET /scim/Users"]; n != 0 {
		t.Errorf("converged roles made %d calls: %v", n, e.emu.Counts())
	}
	// Bob's rule goes away: he is set back to member; ada is left as she is.
	e.emu.ResetCounts()
	res := e.sync(t, withRoles(map[string]string{"ada@example.com": team.RoleAdmin}))
	if b := e.emu.TeamRole(bob, "ml"); b != "member" || e.emu.TeamRole(ada, "ml") != "admin" {
		t.Errorf("after the rule went away: bob %q, changes %v", b, res["ml"].Changes)
	}
	if n := e.emu.Counts()["PATCH /scim/Users/{id}"]; n != 1 {
		t.Errorf("%d role PATCHes, want 1: %v", n, e.emu.Counts())
	}
	if r := e.record(t, "ml"); !maps.Equal(r.MemberRoles, map[string]string{"ada@example.com": "admin"}) {
		t.Errorf("recorded roles %v", r.MemberRoles)
	}
}

func TestOrphanMembersPolicy(t *testing.T) {
	for _, remove := range []bool{false, true} {
		e := newEnv(t)
		e.rec.Members = MembersPolicy{Sync: true, MaxRemove: 1, RemoveOnOrphan: remove}
		e.emu.AddUser("ada", "ada@example.com")
		e.sync(t, []team.Team{memberTeam("ml", "ada@example.com")})
		e.sync(t, nil) // the group is gone
		got := len(e.members(t, "ml"))
		if want := map[bool]int{false: 1, true: 0}[remove]; got != want || !e.record(t, "ml").Orphaned {
			t.Errorf("RemoveOnOrphan=%v: %d members left, want %d; record %+v", remove, got, want, e.record(t, "ml"))
		}
	}
}
