package plan_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/applytest"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/team"
)

func adopting(t team.Team, repair bool) team.Team {
	t.Adopt = &team.Adoption{Repair: repair}
	return t
}

func TestPlanAdoption(t *testing.T) {
	st := applytest.Storage("made-by-hand")
	hand := wandb.Group{ID: "G-hand", DisplayName: "a", Members: []wandb.Member{{Value: "U-1"}}}
	adopt := []plan.Step{plan.StepCheckAdoption, plan.StepTakeBucket, plan.StepVerifyBucket, plan.StepRecordAdoption, plan.StepMarkInSync}
	adopted := func(r *state.Record) { r.Provenance, r.GroupID = state.ProvenanceAdopted, "G-hand" }

	tests := []struct {
		name        string
		desired     team.Team
		records     []state.Record
		groups      []wandb.Group
		wantSteps   []plan.Step
		wantRefused string // fragment
		wantAdopt   *plan.Adoption
		wantSummary string // fragment
	}{
		{name: "made by hand, no record: adopt", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{hand},
			wantSteps: adopt, wantAdopt: &plan.Adoption{GroupID: "G-hand"}, wantSummary: "adopt W&B team G-hand (made by hand): check bucket made-by-hand"},
		{name: "repair allowed", desired: adopting(applytest.DesiredTeam("a", st), true), groups: []wandb.Group{hand},
			wantSteps: adopt, wantAdopt: &plan.Adoption{GroupID: "G-hand", Repair: true}, wantSummary: "repair what fails (adopt.repair)"},
		{name: "was a conflict before adopt was added", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{hand},
			records:   []state.Record{rec("a", state.PhaseDesired, team.Storage{}, func(r *state.Record) { r.Conflict = plan.ForeignTeam("a", "G-hand") })},
			wantSteps: adopt, wantAdopt: &plan.Adoption{GroupID: "G-hand"}},
		{name: "unknown in W&B", desired: adopting(applytest.DesiredTeam("a", st), false),
			wantRefused: `W&B has no team named "a"; adoption takes over a team W&B already has and never creates one; fix: correct the name`},
		{name: "already managed: created by byob-agent", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{{ID: "G-a", DisplayName: "a"}},
			records:     []state.Record{rec("a", state.PhaseInSync, applytest.Storage("wandb-a"), func(r *state.Record) { r.Provenance = state.ProvenanceCreated })},
			wantRefused: "byob-agent already manages it: it created W&B team id G-a with aws bucket wandb-a"},
		{name: "already managed: record from before provenance was kept", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{{ID: "G-a", DisplayName: "a"}},
			records: []state.Record{rec("a", state.PhaseInSync, st)}, wantRefused: "already manages it"},
		{name: "our own create was interrupted", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{hand},
			records:     []state.Record{rec("a", state.PhaseBucketReady, st, func(r *state.Record) { r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: "a"} })},
			wantRefused: "byob-agent was creating this team itself"},
		{name: "bucket is another team's", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{hand},
			records: []state.Record{rec("b", state.PhaseInSync, st)}, wantRefused: `bucket made-by-hand is already team "b"'s in the state`},
		{name: "adopted before: managed as any team", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{hand},
			records: []state.Record{rec("a", state.PhaseInSync, st, adopted)}},
		{name: "adopted before, drift check due", desired: adopting(applytest.DesiredTeam("a", st), false), groups: []wandb.Group{hand},
			records:   []state.Record{rec("a", state.PhaseInSync, st, adopted, func(r *state.Record) { r.LastVerified = applytest.Now.AddDate(0, 0, -2) })},
			wantSteps: []plan.Step{plan.StepCheckDrift}},
		{name: "adopted before, stated storage changed: frozen", desired: adopting(applytest.DesiredTeam("a", applytest.Storage("other")), false), groups: []wandb.Group{hand},
			records: []state.Record{rec("a", state.PhaseInSync, st, adopted)}, wantSummary: "conflict: the W&B team was created with storage aws bucket made-by-hand"},
		{name: "not marked: a team of that name stays a conflict", desired: applytest.DesiredTeam("a", st), groups: []wandb.Group{hand},
			wantSummary: "conflict: " + plan.ForeignTeam("a", "G-hand")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plans := plan.Plan(plan.Input{Desired: []team.Team{tc.desired}, Records: tc.records, Groups: tc.groups, Now: applytest.Now, DriftInterval: 24 * time.Hour})
			var p plan.TeamPlan
			for _, q := range plans {
				if q.Team == "a" {
					p = q
				}
			}
			if !slices.Equal(p.Steps, tc.wantSteps) {
				t.Errorf("steps = %v, want %v", p.Steps, tc.wantSteps)
			}
			if tc.wantRefused == "" && p.Refused != "" || !strings.Contains(p.Refused, tc.wantRefused) {
				t.Errorf("refused = %q, want it to hold %q", p.Refused, tc.wantRefused)
			}
			if tc.wantRefused != "" {
				if p.Changes() || !strings.HasPrefix(p.Summary(), `refused: adopting team "a" refused, nothing was changed: `) {
					t.Errorf("a refusal: Changes() = %v, Summary() = %q", p.Changes(), p.Summary())
				}
			}
			if (p.Adopt == nil) != (tc.wantAdopt == nil) || p.Adopt != nil && *p.Adopt != *tc.wantAdopt {
				t.Errorf("adopt = %+v, want %+v", p.Adopt, tc.wantAdopt)
			}
			if !strings.Contains(p.Summary(), tc.wantSummary) {
				t.Errorf("summary = %q, want it to hold %q", p.Summary(), tc.wantSummary)
			}
		})
	}
}
