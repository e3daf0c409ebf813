package apply_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/applytest"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/team"
)

func TestSyncCreatesThenIsIdempotent(t *testing.T) {
	e := applytest.NewEnv(t)
	desired := applytest.Teams("a", "b")
	keyed := applytest.DesiredTeam("c", team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-c", Region: "us-east-1", CreateKMSKey: true})
	desired = append(desired, keyed)

	res := e.Sync(t, desired)
	for _, n := range []string{"a", "b", "c"} {
		if res[n].Outcome != apply.OutcomeCreated {
			t.Fatalf("team %s: %+v", n, res[n])
		}
		r := e.Record(t, n)
		if r.Phase != state.PhaseInSync || r.GroupID == "" || r.Intent != nil || r.LastVerified.IsZero() {
			t.Errorf("record %s = %+v", n, r)
		}
	}
	byName := map[string]wandbemu.EmuGroup{}
	for _, g := range e.Emu.Groups() {
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
	e.Emu.ResetCounts()
	calls := e.Factory.CallCount()
	res = e.Sync(t, desired)
	for n, r := range res {
		if r.Outcome != apply.OutcomeUnchanged {
			t.Errorf("second sync, team %s: %+v", n, r)
		}
	}
	if got := e.Emu.MutatingCount(); got != 0 {
		t.Errorf("second sync made %d mutating W&B calls", got)
	}
	if got := e.Emu.Counts()["GET /scim/Groups"]; got != 1 {
		t.Errorf("second sync listed W&B teams %d times, want 1", got)
	}
	if got := e.Factory.CallCount(); got != calls {
		t.Errorf("second sync made %d storage calls", got-calls)
	}
}

func TestOneFailingTeamDoesNotStopOthers(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Factory.FailOn["ensure:b"] = errors.New("access denied")
	e.Factory.FailOn["verify:c"] = &bucketfactory.VerifyError{Bucket: "wandb-c", Failures: []bucketfactory.CheckResult{{Check: "cors", Expected: "GET,HEAD,PUT", Found: "none"}}}
	res := e.Sync(t, applytest.Teams("a", "b", "c"))
	if res["a"].Outcome != apply.OutcomeCreated || res["b"].Outcome != apply.OutcomeFailed || res["c"].Outcome != apply.OutcomeFailed {
		t.Fatalf("results: %+v", res)
	}
	b := e.Record(t, "b")
	if b.Attempts != 1 || !strings.Contains(b.LastError, "access denied") || b.Intent == nil || b.Intent.Op != state.OpEnsureBucket || !b.NextRetry.After(applytest.Now) {
		t.Errorf("failed record b = %+v", b)
	}
	c := e.Record(t, "c")
	if !strings.Contains(c.LastError, "cors: expected GET,HEAD,PUT, found none") || c.Phase != state.PhaseDesired {
		t.Errorf("failed record c = %+v", c)
	}
	if len(e.Emu.Groups()) != 1 {
		t.Fatalf("W&B teams: %+v; a bucket that failed verification must not get a team", e.Emu.Groups())
	}

	// Fixed: the retry resumes, and an unfinished ensure may adopt its own untagged bucket.
	delete(e.Factory.FailOn, "ensure:b")
	delete(e.Factory.FailOn, "verify:c")
	res = e.Sync(t, applytest.Teams("a", "b", "c"))
	if res["b"].Outcome != apply.OutcomeCreated || res["c"].Outcome != apply.OutcomeCreated {
		t.Fatalf("retry results: %+v", res)
	}
	if got := e.Record(t, "b"); got.Attempts != 0 || got.LastError != "" {
		t.Errorf("record b after success = %+v", got)
	}
	if !strings.Contains(strings.Join(e.Factory.Adoptions, ","), "b") {
		t.Errorf("ensure after an interrupted ensure was not allowed to adopt: %v", e.Factory.Adoptions)
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
			e := applytest.NewEnv(t)
			var once atomic.Bool
			fault := func(r *http.Request) wandbemu.Fault {
				if r.Method == http.MethodPost && once.CompareAndSwap(false, true) {
					return tt.fault
				}
				return wandbemu.Fault{}
			}
			e.Fault.Store(&fault)
			res := e.Sync(t, applytest.Teams("a"))
			if res["a"].Outcome != apply.OutcomeCreated {
				t.Fatalf("result: %+v", res["a"])
			}
			groups := e.Emu.Groups()
			if len(groups) != 1 || e.Record(t, "a").GroupID != groups[0].ID {
				t.Fatalf("W&B teams %+v, record %+v", groups, e.Record(t, "a"))
			}
		})
	}
}

func TestCrashAfterCreateIsAdopted(t *testing.T) {
	e := applytest.NewEnv(t)
	ctx := t.Context()
	st := applytest.Storage("wandb-a")
	// The state says we were creating the team; W&B has it (the crash came before the answer was recorded).
	if _, err := e.Store.Update(ctx, "a", func(r *state.Record) error {
		r.Profile, r.Phase, r.Storage, r.StorageDigest, r.KMSKeyARN = "main", state.PhaseBucketReady, st, st.Digest(), st.KMSKeyARN
		r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: "a"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	client, _ := e.Rec.WandB.(*wandb.Client)
	g, err := client.CreateGroup(ctx, wandb.NewGroup{DisplayName: "a", StorageBucket: wandb.BucketFor(st, st.KMSKeyARN)})
	if err != nil {
		t.Fatal(err)
	}
	e.Emu.ResetCounts()
	res := e.Sync(t, applytest.Teams("a"))
	if res["a"].Outcome != apply.OutcomeCreated || e.Record(t, "a").GroupID != g.ID || e.Emu.MutatingCount() != 0 {
		t.Fatalf("result %+v record %+v mutations %d", res["a"], e.Record(t, "a"), e.Emu.MutatingCount())
	}
}

func TestConflictsTouchNothing(t *testing.T) {
	e := applytest.NewEnv(t)
	ctx := t.Context()
	client, _ := e.Rec.WandB.(*wandb.Client)
	if _, err := client.CreateGroup(ctx, wandb.NewGroup{DisplayName: "foreign"}); err != nil {
		t.Fatal(err)
	}
	e.Sync(t, applytest.Teams("mine"))
	e.Emu.ResetCounts()
	calls := e.Factory.CallCount()

	moved := applytest.DesiredTeam("mine", applytest.Storage("wandb-elsewhere"))
	res := e.Sync(t, []team.Team{moved, applytest.Teams("foreign")[0]})
	if res["mine"].Outcome != apply.OutcomeConflict || !strings.Contains(res["mine"].Detail, "cannot change a team's storage") {
		t.Errorf("storage change: %+v", res["mine"])
	}
	if res["foreign"].Outcome != apply.OutcomeConflict || !strings.Contains(res["foreign"].Detail, "did not create") {
		t.Errorf("foreign team: %+v", res["foreign"])
	}
	if e.Emu.MutatingCount() != 0 || e.Factory.CallCount() != calls {
		t.Errorf("a conflict made calls: %d W&B mutations, %d storage calls", e.Emu.MutatingCount(), e.Factory.CallCount()-calls)
	}
	if r := e.Record(t, "mine"); r.Conflict == "" || r.Storage.Bucket != "wandb-mine" || r.Phase != state.PhaseInSync {
		t.Errorf("record mine = %+v: the conflict must be recorded and the storage kept", r)
	}
	// Back to the original storage: the conflict clears.
	res = e.Sync(t, applytest.Teams("mine"))
	if res["mine"].Outcome != apply.OutcomeUpdated || e.Record(t, "mine").Conflict != "" {
		t.Errorf("after restoring: %+v, %+v", res["mine"], e.Record(t, "mine"))
	}
}

func TestDriftCheckAndOrphan(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Sync(t, applytest.Teams("a", "b"))
	e.Clock = applytest.Now.Add(25 * time.Hour)
	e.Factory.Changes = []bucketfactory.Change{{Setting: "cors", Detail: "restored W&B's CORS rule"}}
	e.Emu.ResetCounts()
	res := e.Sync(t, applytest.Teams("a"))
	if res["a"].Outcome != apply.OutcomeRepaired || len(res["a"].Changes) != 1 {
		t.Errorf("drift: %+v", res["a"])
	}
	if e.Record(t, "a").LastVerified != e.Clock {
		t.Errorf("LastVerified not advanced: %+v", e.Record(t, "a"))
	}
	if res["b"].Outcome != apply.OutcomeUpdated || !e.Record(t, "b").Orphaned {
		t.Errorf("orphan: %+v %+v", res["b"], e.Record(t, "b"))
	}
	if e.Emu.MutatingCount() != 0 {
		t.Errorf("drift repair and orphaning must not touch W&B: %d mutations", e.Emu.MutatingCount())
	}
}

func TestCreateKeyRecoversAfterInterruptedCreate(t *testing.T) {
	e := applytest.NewEnv(t)
	keyed := applytest.DesiredTeam("k", team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-k", Region: "us-east-1", CreateKMSKey: true})
	e.Factory.FailOn["ensure:k"] = errors.New("network down")
	e.Sync(t, []team.Team{keyed})
	// The key was made and recorded; the bucket failed. Now simulate a crash during key creation on another team.
	if _, err := e.Store.Update(t.Context(), "j", func(r *state.Record) error {
		r.Profile, r.Phase = "main", state.PhaseDesired
		r.Intent = &state.Intent{Op: state.OpCreateKey, Target: "j"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	delete(e.Factory.FailOn, "ensure:k")
	j := applytest.DesiredTeam("j", team.Storage{Provider: team.ProviderAWS, Bucket: "wandb-j", Region: "us-east-1", CreateKMSKey: true})
	res := e.Sync(t, []team.Team{keyed, j})
	if res["k"].Outcome != apply.OutcomeCreated || res["j"].Outcome != apply.OutcomeCreated {
		t.Fatalf("results %+v", res)
	}
	if strings.Join(e.Factory.Recovered, ",") != "j" {
		t.Errorf("recovering EnsureKey calls: %v, want [j]", e.Factory.Recovered)
	}
	if n := strings.Count(strings.Join(e.Factory.Calls, ","), "key:k"); n != 1 {
		t.Errorf("team k's key was ensured %d times, want 1 (it was recorded)", n)
	}
}

// BenchmarkSyncConverged5000 measures a whole reconcile of 5,000 converged teams: one state read,
// W&B's team list over HTTP (the emulator), the plan, and no call to any cloud.
func BenchmarkSyncConverged5000(b *testing.B) {
	const n = 5000
	e := applytest.NewEnv(b)
	ctx := b.Context()
	client := e.Rec.WandB.(*wandb.Client)
	desired := make([]team.Team, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		name := fmt.Sprintf("team-%05d", i)
		desired[i] = applytest.DesiredTeam(name, applytest.Storage("wandb-"+name))
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
			if _, err := e.Store.Update(ctx, name, func(r *state.Record) error {
				r.Profile, r.Phase, r.Storage, r.StorageDigest, r.GroupID, r.LastVerified = "main", state.PhaseInSync, st, st.Digest(), g.ID, applytest.Now
				return nil
			}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	e.Emu.ResetCounts()
	b.ResetTimer()
	for b.Loop() {
		results, err := e.Rec.Sync(ctx, desired, apply.PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range results {
			if r.Outcome != apply.OutcomeUnchanged {
				b.Fatalf("team %s: %+v", r.Team, r)
			}
		}
	}
	b.StopTimer()
	if e.Factory.CallCount() != 0 || e.Emu.MutatingCount() != 0 {
		b.Fatalf("converged reconcile made calls: storage %d, W&B mutations %d", e.Factory.CallCount(), e.Emu.MutatingCount())
	}
	b.ReportMetric(float64(e.Emu.Counts()["GET /scim/Groups"])/float64(b.N), "W&B-requests/op")
}

func TestRequireRegisteredHoldsTeamUntilMarked(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Rec.Profiles["main"] = apply.Profile{Factory: e.Factory, RequireRegistered: true}
	res := e.Sync(t, applytest.Teams("a"))
	if res["a"].Outcome != apply.OutcomeWaiting || !strings.Contains(res["a"].Detail, "mark-registered a") {
		t.Fatalf("first sync: %+v", res["a"])
	}
	if r := e.Record(t, "a"); r.Phase != state.PhaseBucketReady || len(e.Emu.Groups()) != 0 {
		t.Fatalf("the bucket must be ready and no team created: %+v, %d teams", r, len(e.Emu.Groups()))
	}
	if res := e.Sync(t, applytest.Teams("a")); res["a"].Outcome != apply.OutcomeWaiting || len(e.Emu.Groups()) != 0 {
		t.Fatalf("second sync: %+v", res["a"])
	}
	if _, err := e.Store.Update(t.Context(), "a", func(r *state.Record) error { r.Registered = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if res := e.Sync(t, applytest.Teams("a")); res["a"].Outcome != apply.OutcomeCreated {
		t.Fatalf("after marking: %+v", res["a"])
	}
}

func TestPlanInspectsDriftReadOnly(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Sync(t, applytest.Teams("a", "b"))
	e.Clock = applytest.Now.Add(48 * time.Hour)
	e.Factory.FailOn["inspect:a"] = &bucketfactory.VerifyError{Failures: []bucketfactory.CheckResult{{Check: "cors", Expected: "W&B's rule", Found: "none"}}}
	plans, err := e.Rec.Plan(t.Context(), applytest.Teams("a", "b"), apply.PlanOptions{InspectDrift: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plans[0].Drift) != 1 || !strings.Contains(plans[0].Summary(), "repair drift: cors") || len(plans[1].Drift) != 0 {
		t.Errorf("plans: %+v / %+v", plans[0], plans[1])
	}
	for _, c := range e.Factory.Calls {
		if strings.HasPrefix(c, "ensure:") && c != "ensure:a" && c != "ensure:b" {
			t.Errorf("unexpected call %s", c)
		}
	}
	if got := strings.Count(strings.Join(e.Factory.Calls, ","), "inspect:"); got != 2 {
		t.Errorf("%d read-only checks, want 2: %v", got, e.Factory.Calls)
	}
}

// sharedTeams are n desired teams on one shared bucket.
func sharedTeams(n int) []team.Team {
	var desired []team.Team
	for i := range n {
		st := applytest.Storage("shared-bucket")
		st.Shared, st.Path = true, fmt.Sprintf("teams/t%d", i)
		desired = append(desired, applytest.DesiredTeam(fmt.Sprintf("t%d", i), st))
	}
	return desired
}

func TestSharedBucketIsEnsuredOncePerApplyAndNeverDuringACheck(t *testing.T) {
	e := applytest.NewEnv(t)
	f := &applytest.OverlapFactory{FakeFactory: applytest.FakeFactory{FailOn: map[string]error{}}}
	e.Rec.Profiles["main"] = apply.Profile{Factory: f}
	e.Rec.Concurrency = 8
	res := e.Sync(t, sharedTeams(8))
	for n, r := range res {
		if r.Outcome != apply.OutcomeCreated {
			t.Errorf("%s: %+v", n, r)
		}
	}
	if f.Overlap.Load() {
		t.Error("an Ensure of the shared bucket overlapped another Ensure or a Check of it")
	}
	calls := strings.Join(f.Calls, ",")
	if n := strings.Count(calls, "ensure:"); n != 1 {
		t.Errorf("%d Ensure calls of the shared bucket in one Apply, want 1: %v", n, f.Calls)
	}
	// One verification a team: whole for the first (or the first few, side by side), then of the
	// team's path only.
	whole, path := strings.Count(calls, "verify:"), strings.Count(calls, "probe:")
	if whole < 1 || whole+path != 8 {
		t.Errorf("%d whole and %d path-only verifications, want at least 1 whole and 8 in all: %v", whole, path, f.Calls)
	}
	for _, g := range e.Emu.Groups() {
		if g.StorageBucket.Name != "shared-bucket" || !strings.HasPrefix(g.StorageBucket.Path, "teams/t") {
			t.Errorf("team %s storage %+v", g.DisplayName, g.StorageBucket)
		}
	}
}

func TestFailedSharedEnsureIsNotRemembered(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Rec.Concurrency = 1 // t0 first
	e.Factory.FailOn["ensure:t0"] = errors.New("access denied")
	res := e.Sync(t, sharedTeams(3))
	if res["t0"].Outcome != apply.OutcomeFailed {
		t.Errorf("t0: %+v", res["t0"])
	}
	for _, n := range []string{"t1", "t2"} {
		if res[n].Outcome != apply.OutcomeCreated {
			t.Errorf("%s: %+v", n, res[n])
		}
	}
	// t1 ensured the bucket itself after t0 failed; t2 relied on t1's.
	if got := strings.Join(e.Factory.Calls, ","); strings.Count(got, "ensure:") != 2 || !strings.Contains(got, "ensure:t1") {
		t.Errorf("calls %s: want Ensure by t0 (failed) and t1 only", got)
	}
}

func TestCancelledApplyLeavesUnstartedTeamsAlone(t *testing.T) {
	e := applytest.NewEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	plans, err := e.Rec.Plan(t.Context(), applytest.Teams("a", "b"), apply.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Rec.Apply(ctx, plans) {
		if r.Outcome != apply.OutcomeWaiting {
			t.Errorf("%s: %+v", r.Team, r)
		}
	}
	if recs, _ := e.Store.List(t.Context()); len(recs) != 0 {
		t.Errorf("a cancelled apply wrote %d records", len(recs))
	}
}

func memberTeam(name string, members ...string) team.Team {
	t := applytest.DesiredTeam(name, applytest.Storage("wandb-"+name))
	t.ManageMembers, t.Members = true, members
	return t
}

func TestMembersSync(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Rec.Members = apply.MembersPolicy{Sync: true, MaxRemove: 0.5}
	ada, bob, carol := e.Emu.AddUser("ada", "ada@example.com"), e.Emu.AddUser("bob", "bob@example.com"), e.Emu.AddUser("carol", "carol@example.com")
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

	res := e.Sync(t, []team.Team{memberTeam("ml", "ada@example.com", "bob@example.com", "carol@example.com", "zed@example.com")})
	if res["ml"].Outcome != apply.OutcomeCreated || !slices.Equal(e.Members(t, "ml"), sorted(ada, bob, carol, e.ServiceAccount)) {
		t.Fatalf("after create: %+v, members %v", res["ml"], e.Members(t, "ml"))
	}
	if !strings.Contains(strings.Join(res["ml"].Changes, ";"), "zed@example.com") {
		t.Errorf("an unknown member must be reported: %v", res["ml"].Changes)
	}

	// Converged (apart from the unknown member, looked up again): no membership change.
	e.Emu.ResetCounts()
	e.Sync(t, []team.Team{memberTeam("ml", "ada@example.com", "bob@example.com", "carol@example.com")})
	e.Emu.ResetCounts()
	e.Sync(t, []team.Team{memberTeam("ml", "ada@example.com", "bob@example.com", "carol@example.com")})
	if n := e.Emu.MutatingCount() + e.Emu.Counts()["GET /scim/Users"]; n != 0 {
		t.Errorf("a converged team made %d member calls", n)
	}

	// Someone adds dave by hand; the source drops bob. Owned mode removes bob only.
	client := e.Rec.WandB.(*wandb.Client)
	dave := e.Emu.AddUser("dave", "dave@example.com")
	groupID := e.Record(t, "ml").GroupID
	if err := client.AddMembers(t.Context(), groupID, []string{dave}); err != nil {
		t.Fatal(err)
	}
	e.Sync(t, []team.Team{memberTeam("ml", "ada@example.com", "carol@example.com")})
	if got := e.Members(t, "ml"); !slices.Equal(got, sorted(ada, carol, dave, e.ServiceAccount)) {
		t.Errorf("owned mode: members %v, want ada, carol, dave and the service account", got)
	}

	// An IdP outage returns the group empty: refused, nothing removed.
	res = e.Sync(t, []team.Team{memberTeam("ml")})
	if res["ml"].Outcome != apply.OutcomeFailed || !strings.Contains(res["ml"].Detail, "refusing to remove 2 of the team's 3 members") {
		t.Errorf("outage: %+v", res["ml"])
	}
	if got := e.Members(t, "ml"); len(got) != 4 {
		t.Errorf("members after a refused sync: %v", got)
	}

	// Authoritative mode makes the team equal to the group (dave goes), and can create users.
	e.Rec.Members = apply.MembersPolicy{Sync: true, Authoritative: true, CreateUsers: true, MaxRemove: 0.5}
	res = e.Sync(t, []team.Team{memberTeam("ml", "ada@example.com", "carol@example.com", "erin@example.com")})
	got := e.Members(t, "ml")
	if len(got) != 4 || slices.Contains(got, dave) || !slices.Contains(got, e.ServiceAccount) || !strings.Contains(strings.Join(res["ml"].Changes, ";"), "created W&B user erin@example.com") {
		t.Errorf("authoritative: members %v, result %+v", got, res["ml"])
	}
}

func TestOneShotSyncLeavesOtherSourcesAlone(t *testing.T) {
	e := applytest.NewEnv(t)
	pushed := applytest.DesiredTeam("pushed", applytest.Storage("wandb-pushed"))
	pushed.Source = "scim"
	e.Sync(t, append(applytest.Teams("a"), pushed))
	results, err := e.Rec.Sync(t.Context(), applytest.Teams("a"), apply.PlanOptions{Sources: map[string]bool{"yaml": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Team != "a" || e.Record(t, "pushed").Orphaned {
		t.Errorf("a yaml-only sync touched the pushed team: %+v", results)
	}
}

func TestMemberRoles(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Rec.Members = apply.MembersPolicy{Sync: true, MaxRemove: 0.5}
	ada, bob := e.Emu.AddUser("ada", "ada@example.com"), e.Emu.AddUser("bob", "bob@example.com")
	withRoles := func(roles map[string]string) []team.Team {
		tm := memberTeam("ml", "ada@example.com", "bob@example.com")
		tm.Roles = roles
		return []team.Team{tm}
	}
	e.Sync(t, withRoles(map[string]string{"ada@example.com": team.RoleAdmin, "bob@example.com": team.RoleViewer}))
	if a, b := e.Emu.TeamRole(ada, "ml"), e.Emu.TeamRole(bob, "ml"); a != "admin" || b != "viewer" {
		t.Fatalf("roles after create: ada %q bob %q", a, b)
	}
	// Converged: no call at all.
	e.Emu.ResetCounts()
	e.Sync(t, withRoles(map[string]string{"ada@example.com": team.RoleAdmin, "bob@example.com": team.RoleViewer}))
	if n := e.Emu.MutatingCount() + e.Emu.Counts()["GET /scim/Users"]; n != 0 {
		t.Errorf("converged roles made %d calls: %v", n, e.Emu.Counts())
	}
	// Bob's rule goes away: he is set back to member; ada is left as she is.
	e.Emu.ResetCounts()
	res := e.Sync(t, withRoles(map[string]string{"ada@example.com": team.RoleAdmin}))
	if b := e.Emu.TeamRole(bob, "ml"); b != "member" || e.Emu.TeamRole(ada, "ml") != "admin" {
		t.Errorf("after the rule went away: bob %q, changes %v", b, res["ml"].Changes)
	}
	if n := e.Emu.Counts()["PATCH /scim/Users/{id}"]; n != 1 {
		t.Errorf("%d role PATCHes, want 1: %v", n, e.Emu.Counts())
	}
	if r := e.Record(t, "ml"); !maps.Equal(r.MemberRoles, map[string]string{"ada@example.com": "admin"}) {
		t.Errorf("recorded roles %v", r.MemberRoles)
	}
}

func TestOrphanMembersPolicy(t *testing.T) {
	for _, remove := range []bool{false, true} {
		e := applytest.NewEnv(t)
		e.Rec.Members = apply.MembersPolicy{Sync: true, MaxRemove: 1, RemoveOnOrphan: remove}
		e.Emu.AddUser("ada", "ada@example.com")
		e.Sync(t, []team.Team{memberTeam("ml", "ada@example.com")})
		e.Sync(t, nil) // the group is gone
		got := len(e.Members(t, "ml"))
		// The service account W&B put in the team stays either way.
		if want := map[bool]int{false: 2, true: 1}[remove]; got != want || !slices.Contains(e.Members(t, "ml"), e.ServiceAccount) || !e.Record(t, "ml").Orphaned {
			t.Errorf("RemoveOnOrphan=%v: %d members left, want %d; record %+v", remove, got, want, e.Record(t, "ml"))
		}
	}
}

// countingWandB counts the W&B listings and lookups a plan makes.
type countingWandB struct {
	apply.WandB
	lists, finds atomic.Int32
}

func (c *countingWandB) ListGroups(ctx context.Context) ([]wandb.Group, error) {
	c.lists.Add(1)
	return c.WandB.ListGroups(ctx)
}

func (c *countingWandB) FindGroup(ctx context.Context, name string) (*wandb.Group, error) {
	c.finds.Add(1)
	return c.WandB.FindGroup(ctx, name)
}

// TestFewTeamsAreLookedUpNotListed: a reconcile of a few named teams (a webhook's) reads their
// records and looks each up in W&B rather than read every record and list every team, and plans
// them exactly as a full reconcile would.
func TestFewTeamsAreLookedUpNotListed(t *testing.T) {
	e := applytest.NewEnv(t)
	client, _ := e.Rec.WandB.(*wandb.Client)
	if _, err := client.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: "foreign"}); err != nil {
		t.Fatal(err)
	}
	e.Sync(t, applytest.Teams("a", "b"))
	cw := &countingWandB{WandB: e.Rec.WandB}
	e.Rec.WandB = cw
	var many []string
	for i := range 9 {
		many = append(many, fmt.Sprintf("t%d", i))
	}
	tests := []struct {
		name         string
		only         []string
		want         map[string]apply.Outcome
		lists, finds int32
	}{
		{"one converged team", []string{"a"}, map[string]apply.Outcome{"a": apply.OutcomeUnchanged}, 0, 1},
		{"a foreign W&B team", []string{"foreign"}, map[string]apply.Outcome{"foreign": apply.OutcomeConflict}, 0, 1},
		{"a new team", []string{"c"}, map[string]apply.Outcome{"c": apply.OutcomeCreated}, 0, 1},
		{"more than a few", many, map[string]apply.Outcome{"t0": apply.OutcomeCreated}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cw.lists.Store(0)
			cw.finds.Store(0)
			only := map[string]bool{}
			for _, n := range tt.only {
				only[n] = true
			}
			results, err := e.Rec.Sync(t.Context(), applytest.Teams(append([]string{"a", "b", "foreign", "c"}, many...)...), apply.PlanOptions{Only: only})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]apply.Outcome{}
			for _, r := range results {
				got[r.Team] = r.Outcome
			}
			for n, want := range tt.want {
				if got[n] != want {
					t.Errorf("%s: %s, want %s", n, got[n], want)
				}
			}
			if len(got) != len(tt.only) {
				t.Errorf("planned %v, want only %v", got, tt.only)
			}
			if cw.lists.Load() != tt.lists || cw.finds.Load() != tt.finds {
				t.Errorf("%d listings and %d lookups, want %d and %d", cw.lists.Load(), cw.finds.Load(), tt.lists, tt.finds)
			}
		})
	}
}
