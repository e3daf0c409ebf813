package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/plan"
)

// refusalError stops an adoption before anything was changed.
type refusalError struct{ msg string }

func (e *refusalError) Error() string { return e.msg }

// adoptionRefusal runs on the bucket a team to adopt was stated to have the checks `doctor` runs (the
// provider's Check), and says why the adoption is refused, or "" when it may go ahead. With probe
// (sync) the probe object is written, read and deleted as doctor does; without it (plan) only
// settings are read. The ownership mark is not W&B's requirement: taking the bucket adds it, unless
// the bucket is marked for another team or profile.
func (r *Reconciler) adoptionRefusal(ctx context.Context, f bucketfactory.Factory, p plan.TeamPlan, probe bool) (string, error) {
	b := bucketfactory.Bucket{Team: p.Team, Profile: p.Profile, Storage: p.Storage, KMSKeyARN: p.Storage.KMSKeyARN, Shared: p.Storage.Shared}
	unlock := r.bucketLocks.Lock(b.Storage.BucketID())
	results, err := f.Check(ctx, b, bucketfactory.CheckOptions{Probe: probe})
	unlock()
	if err != nil {
		return "", fmt.Errorf("check bucket %s: %w", b.Storage.Bucket, err)
	}
	var failed []string
	for _, c := range results {
		switch {
		case c.Foreign:
			return plan.Refusal(p.Team, fmt.Sprintf("bucket %s is marked for someone else (%s): %s", b.Storage.Bucket, c.Found, c.Fix),
				"state in adopt.bucket the bucket this team was created with"), nil
		case c.OK || c.Check == "ownership":
		case c.Check == "exists":
			return plan.Refusal(p.Team, fmt.Sprintf("bucket %s does not exist (profile %q)", b.Storage.Bucket, p.Profile),
				"state in adopt.bucket the bucket the W&B team was created with, and the profile that reaches it; byob-agent never creates a bucket for a team it adopts"), nil
		default:
			failed = append(failed, fmt.Sprintf("%s: expected %s, found %s (fix: %s)", c.Check, c.Expected, c.Found, c.Fix))
		}
	}
	if len(failed) == 0 || p.Adopt.Repair {
		return "", nil
	}
	return plan.Refusal(p.Team, fmt.Sprintf("bucket %s fails W&B's checks: %s", b.Storage.Bucket, strings.Join(failed, "; ")),
		"correct those settings, or set adopt.repair: true to let byob-agent apply W&B's settings to the bucket"), nil
}

// checkAdoption makes sure, changing nothing, that the team can be taken over: W&B has it (looked up
// again by name), and its stated bucket passes the checks. ok is false when the team stops here.
func (t *teamRun) checkAdoption(ctx context.Context) (res Result, ok bool) {
	err := t.adoptable(ctx)
	if t.r.OnStep != nil {
		t.r.OnStep(t.p.Team, plan.StepCheckAdoption, err)
	}
	var re *refusalError
	switch {
	case errors.As(err, &re):
		t.log.Warn("adoption refused; nothing was changed", "reason", re.msg)
		return Result{Team: t.p.Team, Outcome: OutcomeRefused, Detail: re.msg}, false
	case err != nil:
		msg := fmt.Sprintf("%s: %v (nothing was changed; the next sync tries again)", plan.StepCheckAdoption, err)
		t.log.Error("team failed", "step", plan.StepCheckAdoption, "error", err)
		return Result{Team: t.p.Team, Outcome: OutcomeFailed, Detail: msg, Err: err}, false
	}
	return Result{}, true
}

func (t *teamRun) adoptable(ctx context.Context) error {
	g, err := t.r.WandB.FindGroup(ctx, t.p.Team)
	switch {
	case err != nil:
		return fmt.Errorf("look the team up in W&B: %w", err)
	case g == nil:
		return &refusalError{plan.UnknownTeam(t.p.Team)}
	case g.ID != t.p.Adopt.GroupID:
		return &refusalError{plan.Refusal(t.p.Team, fmt.Sprintf("W&B's team now has id %s, not %s as listed when the plan was made", g.ID, t.p.Adopt.GroupID),
			"check who changed the team in W&B, then run sync again")}
	}
	t.group = g
	msg, err := t.r.adoptionRefusal(ctx, t.factory, t.p, true)
	if err != nil {
		return err
	}
	if msg != "" {
		return &refusalError{msg}
	}
	return nil
}

// recordAdoption records the W&B team as managed, made by hand and adopted. The members it has now
// were put there by W&B (its organisation service accounts) or by people: the agent added none of
// them, so membership sync never removes or re-roles them (plan.Protected).
func (t *teamRun) recordAdoption(ctx context.Context) error {
	now := t.r.now().UTC()
	t.adopted = true
	t.log.Info("adopted W&B team made by hand", "group_id", t.group.ID, "bucket", t.rec.Storage.Bucket)
	return t.update(ctx, func(rec *state.Record) {
		rec.Phase, rec.GroupID, rec.Intent = state.PhaseTeamCreated, t.group.ID, nil
		rec.Provenance, rec.AdoptedAt = state.ProvenanceAdopted, now
		rec.InitialMemberIDs = memberIDs(t.group.Members)
	})
}
