package apply_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/applytest"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/apply"
)

// hookFactory runs onEnsure before every Ensure: something happening in W&B while a bucket is set up.
type hookFactory struct {
	*applytest.FakeFactory
	onEnsure func(b bucketfactory.Bucket)
}

func (f hookFactory) Ensure(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	f.onEnsure(b)
	return f.FakeFactory.Ensure(ctx, b, o)
}

// TestCreateConflictProvenance: a 409 on POST /Groups is adopted only when the team is provably ours
// (this POST was retried after an attempt that may have reached W&B, or an intent of an earlier run
// was found); otherwise a team someone made by hand is a conflict, recorded, and never adopted later.
func TestCreateConflictProvenance(t *testing.T) {
	const name = "a"
	for _, tt := range []struct {
		name string
		// arm prepares the env; handMade makes a team named name the way someone would by hand.
		arm       func(t *testing.T, e *applytest.Env, handMade func())
		wantAdopt bool
	}{
		{name: "first attempt, a team made by hand during the bucket setup", arm: func(t *testing.T, e *applytest.Env, handMade func()) {
			var once atomic.Bool
			e.Rec.Profiles["main"] = apply.Profile{Factory: hookFactory{e.Factory, func(bucketfactory.Bucket) {
				if once.CompareAndSwap(false, true) {
					handMade()
				}
			}}}
		}},
		{name: "first attempt, a team made by hand just before the POST", arm: func(t *testing.T, e *applytest.Env, handMade func()) {
			e.Fault.Store(onFirstAgentPost(handMade, wandbemu.Fault{}))
		}},
		{name: "first attempt refused with 400, then a team made by hand", arm: func(t *testing.T, e *applytest.Env, handMade func()) {
			e.Fault.Store(onFirstAgentPost(func() {}, wandbemu.Fault{Status: http.StatusBadRequest}))
			res := e.Sync(t, applytest.Teams(name))
			if res[name].Outcome != apply.OutcomeFailed {
				t.Fatalf("refused create: %+v", res[name])
			}
			if r := e.Record(t, name); r.Intent != nil {
				t.Fatalf("a refused create left its intent %+v: a later team of this name would look like ours", r.Intent)
			}
			e.Fault.Store(nil)
			handMade()
		}},
		{name: "first attempt throttled, a team made by hand meanwhile: the retry's 409 is not ours", arm: func(t *testing.T, e *applytest.Env, handMade func()) {
			e.Fault.Store(onFirstAgentPost(handMade, wandbemu.Fault{Status: http.StatusTooManyRequests}))
		}},
		{name: "retried attempt: W&B created the team, the answer was lost", wantAdopt: true, arm: func(t *testing.T, e *applytest.Env, handMade func()) {
			e.Fault.Store(onFirstAgentPost(func() {}, wandbemu.Fault{Status: http.StatusBadGateway, AfterApply: true}))
		}},
		{name: "intent of an earlier run, the team appears before this run's POST", wantAdopt: true, arm: func(t *testing.T, e *applytest.Env, handMade func()) {
			st := applytest.Storage("wandb-" + name)
			if _, err := e.Store.Update(t.Context(), name, func(r *state.Record) error {
				r.Profile, r.Phase, r.Storage, r.StorageDigest, r.KMSKeyARN = "main", state.PhaseBucketReady, st, st.Digest(), st.KMSKeyARN
				r.BucketReady, r.LastVerified = applytest.Now, applytest.Now
				r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: name}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// W&B lists no team at plan time; the earlier run's POST lands before this run's.
			e.Fault.Store(onFirstAgentPost(handMade, wandbemu.Fault{}))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := applytest.NewEnv(t)
			client := e.Rec.WandB.(*wandb.Client)
			var handID atomic.Value
			handMade := func() {
				g, err := client.CreateGroup(context.Background(), wandb.NewGroup{DisplayName: name})
				if err != nil {
					t.Errorf("make the team by hand: %v", err)
					return
				}
				handID.Store(g.ID)
			}
			tt.arm(t, e, handMade)
			res := e.Sync(t, applytest.Teams(name))
			e.Fault.Store(nil)
			groups := e.Emu.Groups()
			if len(groups) != 1 {
				t.Fatalf("W&B has %d teams, want 1: %+v", len(groups), groups)
			}
			r := e.Record(t, name)
			if tt.wantAdopt {
				if res[name].Outcome != apply.OutcomeCreated || r.GroupID != groups[0].ID || r.Phase != state.PhaseInSync || r.Conflict != "" || r.Intent != nil {
					t.Fatalf("want the team adopted: result %+v, record %+v", res[name], r)
				}
				return
			}
			if id, _ := handID.Load().(string); id == "" || groups[0].ID != id {
				t.Fatalf("the hand-made team is not W&B's team %s", groups[0].ID)
			}
			wantWords := []string{`team named "a"`, groups[0].ID, "did not create", "check who created it", "rename the team"}
			for _, w := range wantWords {
				if res[name].Outcome != apply.OutcomeConflict || !strings.Contains(res[name].Detail, w) {
					t.Fatalf("want a conflict naming the team and saying %q: %+v", w, res[name])
				}
			}
			if r.GroupID != "" || r.Phase.Created() || r.Conflict != res[name].Detail || r.Intent != nil {
				t.Fatalf("record after the conflict = %+v: no team adopted, the conflict recorded, no intent left", r)
			}
			// The next run reports the same conflict, writes nothing and adopts nothing.
			e.Emu.ResetCounts()
			again := e.Sync(t, applytest.Teams(name))
			if again[name].Outcome != apply.OutcomeConflict || e.Emu.MutatingCount() != 0 {
				t.Fatalf("second run: %+v, %d W&B mutations", again[name], e.Emu.MutatingCount())
			}
			if r2 := e.Record(t, name); r2.GroupID != "" || r2.Phase.Created() || r2.Conflict != r.Conflict || !r2.UpdatedAt.Equal(r.UpdatedAt) {
				t.Fatalf("record after the second run = %+v", r2)
			}
		})
	}
}

// onFirstAgentPost calls before, then answers f, on the first POST /Groups; before runs inside the
// emulator's fault hook, so a team it makes by hand exists before the POST is served.
func onFirstAgentPost(before func(), f wandbemu.Fault) *func(*http.Request) wandbemu.Fault {
	var once atomic.Bool
	fn := func(r *http.Request) wandbemu.Fault {
		if r.Method == http.MethodPost && r.URL.Path == "/scim/Groups" && once.CompareAndSwap(false, true) {
			before()
			return f
		}
		return wandbemu.Fault{}
	}
	return &fn
}
