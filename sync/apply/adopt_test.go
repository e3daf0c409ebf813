package apply_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/applytest"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/team"
)

func TestAdopt(t *testing.T) {
	st := applytest.Storage("made-by-hand")
	corsWrong := &bucketfactory.VerifyError{Bucket: "made-by-hand", Failures: []bucketfactory.CheckResult{
		{Check: "cors", Expected: "GET,HEAD,PUT from *", Found: "none", Fix: "add W&B's CORS rule"}}}
	untagged := &bucketfactory.VerifyError{Bucket: "made-by-hand", Failures: []bucketfactory.CheckResult{
		{Check: "ownership", Expected: "tags managed-by=byob-agent", Found: "no ownership tags", Fix: "tag it"}}}
	foreign := &bucketfactory.VerifyError{Bucket: "made-by-hand", Failures: []bucketfactory.CheckResult{
		{Check: "ownership", Expected: "tags byob-agent-team=a", Found: "byob-agent-team=b", Fix: "give team a another bucket", Foreign: true}}}
	missing := &bucketfactory.VerifyError{Bucket: "made-by-hand", Failures: []bucketfactory.CheckResult{
		{Check: "exists", Expected: "bucket made-by-hand to exist", Found: "no such bucket"}}}

	tests := []struct {
		name      string
		repair    bool
		byHand    bool  // W&B has team "a", made by hand
		managed   bool  // byob-agent created team "a" before
		failCheck error // the checks of the stated bucket find this
		outcome   apply.Outcome
		detail    string   // fragment of the result's detail
		calls     []string // storage calls, in order
		ensured   bool     // Ensure was told it may take the untagged bucket
		tags      bool     // Ensure adds the missing ownership tags
	}{
		{name: "adopt ok", byHand: true, outcome: apply.OutcomeAdopted,
			calls: []string{"verify:a", "ensure:a", "verify:a"}, ensured: true},
		{name: "untagged bucket: ownership is the agent's mark, which taking the bucket adds", byHand: true, failCheck: untagged, tags: true,
			outcome: apply.OutcomeAdopted, calls: []string{"verify:a", "ensure:a", "verify:a"}, ensured: true},
		{name: "adopt with a failing check: refused", byHand: true, failCheck: corsWrong, outcome: apply.OutcomeRefused,
			detail: `adopting team "a" refused, nothing was changed: bucket made-by-hand fails W&B's checks: cors: expected GET,HEAD,PUT from *, found none (fix: add W&B's CORS rule); fix: correct those settings, or set adopt.repair: true`,
			calls:  []string{"verify:a"}},
		{name: "adopt with repair allowed", byHand: true, repair: true, failCheck: corsWrong, outcome: apply.OutcomeAdopted,
			calls: []string{"verify:a", "ensure:a", "verify:a"}, ensured: true},
		{name: "bucket missing: refused, even with repair", byHand: true, repair: true, failCheck: missing, outcome: apply.OutcomeRefused,
			detail: "bucket made-by-hand does not exist", calls: []string{"verify:a"}},
		{name: "bucket marked for another team: refused, even with repair", byHand: true, repair: true, failCheck: foreign, outcome: apply.OutcomeRefused,
			detail: "bucket made-by-hand is marked for someone else (byob-agent-team=b): give team a another bucket", calls: []string{"verify:a"}},
		{name: "team unknown in W&B", outcome: apply.OutcomeRefused, detail: `W&B has no team named "a"`},
		{name: "already managed", managed: true, outcome: apply.OutcomeRefused, detail: "byob-agent already manages it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := applytest.NewEnv(t)
			ctx := t.Context()
			var hand wandb.Group
			if tc.byHand {
				var err error
				if hand, err = e.Rec.WandB.CreateGroup(ctx, wandb.NewGroup{DisplayName: "a"}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.managed {
				if res := e.Sync(t, applytest.Teams("a")); res["a"].Outcome != apply.OutcomeCreated {
					t.Fatalf("create: %+v", res["a"])
				}
			}
			e.Factory.Calls = nil
			e.Factory.RepairOnEnsure = tc.repair || tc.tags
			if tc.failCheck != nil {
				e.Factory.FailOn["verify:a"] = tc.failCheck
			}
			before, _ := e.Store.List(ctx)
			groupsBefore := e.Emu.Groups()
			e.Emu.ResetCounts()

			desired := applytest.DesiredTeam("a", st)
			desired.Adopt = &team.Adoption{Repair: tc.repair}
			res := e.Sync(t, []team.Team{desired})["a"]
			if res.Outcome != tc.outcome || !strings.Contains(res.Detail, tc.detail) {
				t.Fatalf("result = %s %q, want %s with %q", res.Outcome, res.Detail, tc.outcome, tc.detail)
			}
			if !slices.Equal(e.Factory.Calls, tc.calls) {
				t.Errorf("storage calls = %v, want %v", e.Factory.Calls, tc.calls)
			}
			if got := slices.Contains(e.Factory.Adoptions, "a"); got != tc.ensured {
				t.Errorf("Ensure may adopt untagged: %v, want %v", got, tc.ensured)
			}
			// Never a second team, never a change to W&B's teams.
			if n := e.Emu.MutatingCount(); n != 0 {
				t.Errorf("%d mutating W&B requests: %v", n, e.Emu.Counts())
			}
			if !reflect.DeepEqual(e.Emu.Groups(), groupsBefore) {
				t.Errorf("W&B teams changed: %+v, was %+v", e.Emu.Groups(), groupsBefore)
			}
			after, _ := e.Store.List(ctx)
			switch tc.outcome {
			case apply.OutcomeRefused:
				if !reflect.DeepEqual(after, before) {
					t.Errorf("a refusal changed the state:\n%+v\nwas\n%+v", after, before)
				}
				return
			}
			r := e.Record(t, "a")
			if r.Provenance != state.ProvenanceAdopted || r.GroupID != hand.ID || r.Phase != state.PhaseInSync || r.Storage != st ||
				r.AdoptedAt != applytest.Now || r.LastVerified != applytest.Now || r.Intent != nil || !r.TeamCreated.IsZero() {
				t.Errorf("record = %+v", r)
			}
			// W&B's service account, in the team since it was made, is protected from membership sync.
			if !slices.Contains(r.InitialMemberIDs, e.ServiceAccount) {
				t.Errorf("initial members = %v, want the service account %s", r.InitialMemberIDs, e.ServiceAccount)
			}
			// From then on it is a team like any other: nothing to do, then a drift check when due.
			e.Factory.Calls = nil
			if res := e.Sync(t, []team.Team{desired})["a"]; res.Outcome != apply.OutcomeUnchanged || len(e.Factory.Calls) != 0 {
				t.Errorf("second sync: %+v, storage calls %v", res, e.Factory.Calls)
			}
			e.Clock = e.Clock.AddDate(0, 0, 2)
			if res := e.Sync(t, []team.Team{desired})["a"]; res.Outcome != apply.OutcomeVerified || !slices.Equal(e.Factory.Calls, []string{"ensure:a", "verify:a"}) {
				t.Errorf("drift check: %+v, storage calls %v", res, e.Factory.Calls)
			}
		})
	}
}

// A failure that stops the checks from running is not a refusal, and leaves no trace either.
func TestAdoptCheckCannotRun(t *testing.T) {
	e := applytest.NewEnv(t)
	if _, err := e.Rec.WandB.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: "a"}); err != nil {
		t.Fatal(err)
	}
	e.Factory.FailOn["verify:a"] = errors.New("connection refused")
	desired := applytest.DesiredTeam("a", applytest.Storage("made-by-hand"))
	desired.Adopt = &team.Adoption{}
	res := e.Sync(t, []team.Team{desired})["a"]
	if res.Outcome != apply.OutcomeFailed || !strings.Contains(res.Detail, "check_adoption: check bucket made-by-hand: connection refused (nothing was changed") {
		t.Errorf("result = %+v", res)
	}
	if _, err := e.Store.Get(t.Context(), "a"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("state record after a failed check: %v", err)
	}
}

// plan shows a refusal the sync would make from the bucket's settings, reading only.
func TestPlanShowsAdoptionRefusal(t *testing.T) {
	e := applytest.NewEnv(t)
	if _, err := e.Rec.WandB.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: "a"}); err != nil {
		t.Fatal(err)
	}
	e.Factory.FailOn["inspect:a"] = &bucketfactory.VerifyError{Failures: []bucketfactory.CheckResult{{Check: "encryption", Expected: "aws:kms", Found: "none", Fix: "set it"}}}
	desired := applytest.DesiredTeam("a", applytest.Storage("made-by-hand"))
	desired.Adopt = &team.Adoption{}
	plans, err := e.Rec.Plan(t.Context(), []team.Team{desired}, apply.PlanOptions{InspectDrift: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := plans[0]; len(p.Steps) != 0 || !strings.Contains(p.Refused, "encryption: expected aws:kms, found none (fix: set it)") || p.Changes() {
		t.Errorf("plan = %+v", p)
	}
	if !slices.Equal(e.Factory.Calls, []string{"inspect:a"}) {
		t.Errorf("storage calls = %v, want one read", e.Factory.Calls)
	}
	delete(e.Factory.FailOn, "inspect:a")
	plans, _ = e.Rec.Plan(t.Context(), []team.Team{desired}, apply.PlanOptions{InspectDrift: true})
	if p := plans[0]; p.Refused != "" || len(p.Steps) == 0 || p.Steps[0] != plan.StepCheckAdoption {
		t.Errorf("plan = %+v", p)
	}
}

// An adopted team whose source knows its members (a group) has them synced right after the adoption.
// Whoever was in the team before is kept, even in authoritative mode: W&B's API does not tell its
// service accounts from people, and the agent added none of them.
func TestAdoptThenSyncMembers(t *testing.T) {
	e := applytest.NewEnv(t)
	e.Rec.Members = apply.MembersPolicy{Sync: true, Authoritative: true, MaxRemove: 0.5}
	ada := e.Emu.AddUser("ada", "ada@x.io")
	byHand := e.Emu.AddUser("hand", "hand@x.io")
	g, err := e.Rec.WandB.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Emu.ChangeMembers(g.ID, []string{byHand}, nil); err != nil {
		t.Fatal(err)
	}
	desired := applytest.DesiredTeam("a", applytest.Storage("made-by-hand"))
	desired.Adopt, desired.Source, desired.ManageMembers, desired.Members = &team.Adoption{}, "okta", true, []string{"ada@x.io"}

	plans, err := e.Rec.Plan(t.Context(), []team.Team{desired}, apply.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := plans[0]; !slices.Contains(p.Steps, plan.StepSyncMembers) || p.Members == nil || !slices.Equal(p.Members.Add, []string{"ada@x.io"}) || len(p.Members.Remove) != 0 {
		t.Errorf("plan = %+v members %+v", p.Steps, p.Members)
	}
	if res := e.Sync(t, []team.Team{desired})["a"]; res.Outcome != apply.OutcomeAdopted {
		t.Fatalf("result = %+v", res)
	}
	want := []string{ada, byHand, e.ServiceAccount}
	slices.Sort(want)
	if got := e.Members(t, "a"); !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}
	if r := e.Record(t, "a"); !slices.Equal(r.MembersAdded, []string{ada}) || r.Provenance != state.ProvenanceAdopted {
		t.Errorf("record = %+v", r)
	}
	// Converged: nothing to do.
	if res := e.Sync(t, []team.Team{desired})["a"]; res.Outcome != apply.OutcomeUnchanged {
		t.Errorf("second sync = %+v", res)
	}
}
