package plan_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/applytest"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/team"
)

func rec(name string, phase state.Phase, st team.Storage, mod ...func(*state.Record)) state.Record {
	r := state.Record{Name: name, Profile: "main", Phase: phase, Storage: st, StorageDigest: st.Digest(), KMSKeyARN: st.KMSKeyARN, LastVerified: applytest.Now.Add(-time.Hour)}
	if phase.Created() {
		r.GroupID = "G-" + name
	}
	for _, m := range mod {
		m(&r)
	}
	return r
}

func TestPlan(t *testing.T) {
	st := applytest.Storage("wandb-a")
	other := applytest.Storage("wandb-b")
	keyed := st
	keyed.KMSKeyARN, keyed.CreateKMSKey = "", true
	group := wandb.Group{ID: "G-a", DisplayName: "a"}
	full := []plan.Step{plan.StepEnsureBucket, plan.StepVerifyBucket, plan.StepCreateTeam, plan.StepMarkInSync}

	tests := []struct {
		name           string
		desired        []team.Team
		records        []state.Record
		groups         []wandb.Group
		drift          time.Duration
		respectBackoff bool
		registration   bool
		wantSteps      []plan.Step
		wantConflict   string // fragment
		wantNote       string // fragment
	}{
		{name: "new team with configured key", desired: []team.Team{applytest.DesiredTeam("a", st)}, wantSteps: full},
		{name: "new team claimed by two sources", desired: []team.Team{claimed(applytest.DesiredTeam("a", st), "yaml", `okta group "wandb-a"`)},
			wantConflict: `claimed by yaml and okta group "wandb-a"`},
		{name: "created team claimed by a second source", desired: []team.Team{claimed(applytest.DesiredTeam("a", st), "yaml", `scim group "a"`)},
			records: []state.Record{rec("a", state.PhaseInSync, st)}, groups: []wandb.Group{group}, wantConflict: "a team comes from one source"},
		{name: "new team creating its key", desired: []team.Team{applytest.DesiredTeam("a", keyed)},
			wantSteps: append([]plan.Step{plan.StepCreateKey}, full...)},
		{name: "key created, bucket not yet", desired: []team.Team{applytest.DesiredTeam("a", keyed)},
			records: []state.Record{rec("a", state.PhaseDesired, keyed, func(r *state.Record) { r.KMSKeyARN = "arn:k" })}, wantSteps: full},
		{name: "interrupted during bucket setup", desired: []team.Team{applytest.DesiredTeam("a", st)},
			records:   []state.Record{rec("a", state.PhaseDesired, st, func(r *state.Record) { r.Intent = &state.Intent{Op: state.OpEnsureBucket, Target: "wandb-a"} })},
			wantSteps: full},
		{name: "bucket ready", desired: []team.Team{applytest.DesiredTeam("a", st)},
			records: []state.Record{rec("a", state.PhaseBucketReady, st)}, wantSteps: []plan.Step{plan.StepCreateTeam, plan.StepMarkInSync}},
		{name: "create sent, W&B has it: adopt", desired: []team.Team{applytest.DesiredTeam("a", st)},
			records: []state.Record{rec("a", state.PhaseBucketReady, st, func(r *state.Record) { r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: "a"} })},
			groups:  []wandb.Group{group}, wantSteps: []plan.Step{plan.StepAdoptTeam, plan.StepMarkInSync}},
		{name: "create sent, W&B lacks it: create again", desired: []team.Team{applytest.DesiredTeam("a", st)},
			records:   []state.Record{rec("a", state.PhaseBucketReady, st, func(r *state.Record) { r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: "a"} })},
			wantSteps: []plan.Step{plan.StepCreateTeam, plan.StepMarkInSync}},
		{name: "foreign W&B team, no record", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{group},
			wantConflict: "did not create"},
		{name: "foreign W&B team, bucket ready", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{group},
			records: []state.Record{rec("a", state.PhaseBucketReady, st)}, wantConflict: "did not create"},
		{name: "converged", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{group},
			records: []state.Record{rec("a", state.PhaseInSync, st)}, drift: 24 * time.Hour},
		{name: "converged, drift check due", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{group},
			records: []state.Record{rec("a", state.PhaseInSync, st)}, drift: 30 * time.Minute, wantSteps: []plan.Step{plan.StepCheckDrift}},
		{name: "converged, drift checks off", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{group},
			records: []state.Record{rec("a", state.PhaseInSync, st, func(r *state.Record) { r.LastVerified = time.Time{} })}},
		{name: "created team's storage changed", desired: []team.Team{applytest.DesiredTeam("a", other)}, groups: []wandb.Group{group},
			records: []state.Record{rec("a", state.PhaseInSync, st)}, wantConflict: "cannot change a team's storage"},
		{name: "created team gone from W&B", desired: []team.Team{applytest.DesiredTeam("a", st)},
			records: []state.Record{rec("a", state.PhaseInSync, st)}, wantConflict: "W&B has no team of that name"},
		{name: "created team replaced in W&B", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{{ID: "other", DisplayName: "a"}},
			records: []state.Record{rec("a", state.PhaseInSync, st)}, wantConflict: "has id other"},
		{name: "team created, not marked", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{group},
			records: []state.Record{rec("a", state.PhaseTeamCreated, st)}, wantSteps: []plan.Step{plan.StepMarkInSync}},
		{name: "orphan desired again", desired: []team.Team{applytest.DesiredTeam("a", st)}, groups: []wandb.Group{group},
			records: []state.Record{rec("a", state.PhaseInSync, st, func(r *state.Record) { r.Orphaned = true })}, wantSteps: []plan.Step{plan.StepMarkInSync}},
		{name: "backing off", desired: []team.Team{applytest.DesiredTeam("a", st)}, respectBackoff: true,
			records:  []state.Record{rec("a", state.PhaseDesired, st, func(r *state.Record) { r.LastError, r.NextRetry = "boom", applytest.Now.Add(time.Minute) })},
			wantNote: "waiting until"},
		{name: "backoff ignored by hand", desired: []team.Team{applytest.DesiredTeam("a", st)},
			records:   []state.Record{rec("a", state.PhaseDesired, st, func(r *state.Record) { r.LastError, r.NextRetry = "boom", applytest.Now.Add(time.Minute) })},
			wantSteps: full},
		{name: "backoff elapsed", desired: []team.Team{applytest.DesiredTeam("a", st)}, respectBackoff: true,
			records:   []state.Record{rec("a", state.PhaseDesired, st, func(r *state.Record) { r.LastError, r.NextRetry = "boom", applytest.Now.Add(-time.Minute) })},
			wantSteps: full},
		{name: "storage changed before creation", desired: []team.Team{applytest.DesiredTeam("a", other)},
			records: []state.Record{rec("a", state.PhaseBucketReady, st)}, wantSteps: full, wantNote: "wandb-a is left in place"},
		{name: "storage changed before creation, key per team", desired: []team.Team{applytest.DesiredTeam("a", keyed)},
			records: []state.Record{rec("a", state.PhaseBucketReady, st)}, wantSteps: append([]plan.Step{plan.StepCreateKey}, full...), wantNote: "left in place"},
		{name: "registration required, new team", desired: []team.Team{applytest.DesiredTeam("a", st)}, registration: true,
			wantSteps: []plan.Step{plan.StepEnsureBucket, plan.StepVerifyBucket}, wantNote: "state mark-registered a"},
		{name: "registration required, bucket ready", desired: []team.Team{applytest.DesiredTeam("a", st)}, registration: true,
			records: []state.Record{rec("a", state.PhaseBucketReady, st)}, wantNote: "register bucket wandb-a"},
		{name: "registration done", desired: []team.Team{applytest.DesiredTeam("a", st)}, registration: true,
			records: []state.Record{rec("a", state.PhaseBucketReady, st, func(r *state.Record) { r.Registered = true })}, wantSteps: []plan.Step{plan.StepCreateTeam, plan.StepMarkInSync}},
		{name: "no longer desired", records: []state.Record{rec("a", state.PhaseInSync, st)}, groups: []wandb.Group{group},
			wantSteps: []plan.Step{plan.StepOrphan}},
		{name: "no longer desired, already orphaned", records: []state.Record{rec("a", state.PhaseInSync, st, func(r *state.Record) { r.Orphaned = true })}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plans := plan.Plan(plan.Input{Desired: tt.desired, Records: tt.records, Groups: tt.groups, Now: applytest.Now, DriftInterval: tt.drift,
				RespectBackoff: tt.respectBackoff, Registration: map[string]bool{"main": tt.registration}})
			if len(plans) != 1 {
				t.Fatalf("got %d plans, want 1", len(plans))
			}
			p := plans[0]
			if !reflect.DeepEqual(p.Steps, tt.wantSteps) {
				t.Errorf("steps = %v, want %v", p.Steps, tt.wantSteps)
			}
			if !contains(p.Conflict, tt.wantConflict) {
				t.Errorf("conflict = %q, want it to contain %q", p.Conflict, tt.wantConflict)
			}
			if !contains(p.Note, tt.wantNote) {
				t.Errorf("note = %q, want it to contain %q", p.Note, tt.wantNote)
			}
			if tt.wantConflict != "" && len(p.Steps) > 0 {
				t.Errorf("a conflict must plan no step, got %v", p.Steps)
			}
			if p.Summary() == "" {
				t.Error("empty summary")
			}
		})
	}
}

func claimed(t team.Team, claims ...string) team.Team {
	t.Claims = claims
	return t
}

func TestPlanMemberChanges(t *testing.T) {
	st := applytest.Storage("wandb-a")
	members := func(ids ...string) wandb.Group {
		g := wandb.Group{ID: "G-a", DisplayName: "a"}
		for _, id := range ids {
			g.Members = append(g.Members, wandb.Member{Value: id})
		}
		return g
	}
	synced := func(r *state.Record) {
		r.MemberEmails = []string{"ada@x.io", "bob@x.io"}
		r.MemberIDs = []string{"U1", "U2", "SA"}
		r.MemberUsers = map[string]string{"ada@x.io": "U1", "bob@x.io": "U2"}
		r.MembersAdded = []string{"U1", "U2"}
		r.InitialMemberIDs = []string{"SA"}
	}
	want := func(roles map[string]string, m ...string) team.Team {
		t := applytest.DesiredTeam("a", st)
		t.ManageMembers, t.Members, t.Roles = true, m, roles
		return t
	}
	tests := []struct {
		name          string
		desired       team.Team
		group         wandb.Group
		authoritative bool
		want          *plan.MemberChanges // nil: no members step
	}{
		{"converged", want(nil, "ada@x.io", "bob@x.io"), members("U1", "U2", "SA"), false, nil},
		{"a new member and one gone", want(nil, "ada@x.io", "cy@x.io"), members("U1", "U2", "SA"), false,
			&plan.MemberChanges{Add: []string{"cy@x.io"}, Remove: []string{"bob@x.io"}}},
		{"removed by hand in W&B: added again", want(nil, "ada@x.io", "bob@x.io"), members("U1", "SA"), false,
			&plan.MemberChanges{Add: []string{"bob@x.io"}}},
		{"added by hand: kept in owned mode", want(nil, "ada@x.io", "bob@x.io"), members("U1", "U2", "SA", "U9"), false,
			&plan.MemberChanges{}},
		{"added by hand: removed in authoritative mode, never the service account", want(nil, "ada@x.io", "bob@x.io"),
			members("U1", "U2", "SA", "U9"), true, &plan.MemberChanges{Remove: []string{"W&B user U9"}}},
		{"a role rule names a member", want(map[string]string{"bob@x.io": "admin"}, "ada@x.io", "bob@x.io"), members("U1", "U2", "SA"), false,
			&plan.MemberChanges{Roles: []string{"bob@x.io: admin"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plans := plan.Plan(plan.Input{Desired: []team.Team{tt.desired}, Records: []state.Record{rec("a", state.PhaseInSync, st, synced)},
				Groups: []wandb.Group{tt.group}, Now: applytest.Now, SyncMembers: true, Authoritative: tt.authoritative})
			p := plans[0]
			if tt.want == nil {
				if len(p.Steps) != 0 {
					t.Fatalf("steps %v, want none", p.Steps)
				}
				return
			}
			if !reflect.DeepEqual(p.Steps, []plan.Step{plan.StepSyncMembers}) || !reflect.DeepEqual(p.Members, tt.want) {
				t.Fatalf("steps %v members %+v, want %+v", p.Steps, p.Members, tt.want)
			}
			for _, e := range append(append(tt.want.Add, tt.want.Remove...), tt.want.Roles...) {
				if !strings.Contains(p.Summary(), e) {
					t.Errorf("summary %q does not name %q", p.Summary(), e)
				}
			}
		})
	}
}

func contains(s, frag string) bool {
	if frag == "" {
		return s == ""
	}
	return strings.Contains(s, frag)
}

func TestPlanSortsAndCoversDesiredAndRecorded(t *testing.T) {
	st := applytest.Storage("x")
	plans := plan.Plan(plan.Input{
		Desired: []team.Team{applytest.DesiredTeam("c", st), applytest.DesiredTeam("a", st)},
		Records: []state.Record{rec("b", state.PhaseInSync, st)},
		Now:     applytest.Now,
	})
	var names []string
	for _, p := range plans {
		names = append(names, p.Team)
	}
	if !reflect.DeepEqual(names, []string{"a", "b", "c"}) {
		t.Fatalf("plan order = %v", names)
	}
}

func TestResolvedConflictIsAChange(t *testing.T) {
	st := applytest.Storage("wandb-a")
	r := rec("a", state.PhaseInSync, st, func(r *state.Record) { r.Conflict = "old" })
	plans := plan.Plan(plan.Input{Desired: []team.Team{applytest.DesiredTeam("a", st)}, Records: []state.Record{r},
		Groups: []wandb.Group{{ID: "G-a", DisplayName: "a"}}, Now: applytest.Now})
	if len(plans[0].Steps) != 0 || !plans[0].Changes() {
		t.Fatalf("a cleared conflict must be a state-only change: %+v", plans[0])
	}
}

func BenchmarkPlanConverged5000(b *testing.B) {
	const n = 5000
	desired := make([]team.Team, n)
	records := make([]state.Record, n)
	groups := make([]wandb.Group, n)
	for i := range n {
		name := "team-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i)
		st := applytest.Storage("wandb-" + name)
		desired[i] = applytest.DesiredTeam(name, st)
		records[i] = rec(name, state.PhaseInSync, st)
		groups[i] = wandb.Group{ID: "G-" + name, DisplayName: name}
	}
	b.ReportAllocs()
	for b.Loop() {
		plans := plan.Plan(plan.Input{Desired: desired, Records: records, Groups: groups, Now: applytest.Now, DriftInterval: 24 * time.Hour})
		for _, p := range plans {
			if p.Changes() {
				b.Fatalf("converged team %s planned %v %s", p.Team, p.Steps, p.Conflict)
			}
		}
	}
}
