package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/transport"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/plan"
)

// teamRun carries one team through its steps; rec mirrors what the state holds.
type teamRun struct {
	r       *Reconciler
	ensured *ensuredBuckets // of this Apply
	p       plan.TeamPlan
	rec     state.Record
	log     *slog.Logger
	factory bucketfactory.Factory
	adopt   bool
	changes []string
	// warnings are what went wrong without failing the team (a member skipped, another team's role
	// changed): logged, and reported in the result.
	warnings []string
	created  bool
	adopted  bool         // a team made by hand was taken over
	group    *wandb.Group // the team's W&B group: from the plan's listing, or as just created
	// pending are changes already in rec but not yet written: state-only changes (the outcome of a
	// check, a create's result) that ride on the team's next write, which comes before its next
	// external mutation (an intent is written at once) or at its end. Every write is a transaction
	// of its own, fsynced: fewer of them is most of what a team costs the agent (issue 15).
	pending []func(*state.Record)
}

func (r *Reconciler) applyTeam(ctx context.Context, p plan.TeamPlan, ensured *ensuredBuckets) Result {
	log := r.logger().With("team", p.Team)
	res := Result{Team: p.Team, Outcome: OutcomeUnchanged, Detail: p.Summary()}
	if p.Refused != "" {
		log.Warn("adoption refused; nothing was changed", "reason", p.Refused)
		return Result{Team: p.Team, Outcome: OutcomeRefused, Detail: p.Refused}
	}
	if ctx.Err() != nil && p.Changes() {
		// Shutting down: a team not yet started is left as it is, not marked as failed.
		return Result{Team: p.Team, Outcome: OutcomeWaiting, Detail: "not started: " + ctx.Err().Error()}
	}
	if p.Conflict != "" && !p.Changes() {
		return Result{Team: p.Team, Outcome: OutcomeConflict, Detail: p.Conflict} // already recorded
	}
	if !p.Changes() {
		if p.Waiting {
			res.Outcome, res.RetryAt = OutcomeWaiting, p.RetryAt
		}
		return res
	}
	t := &teamRun{r: r, ensured: ensured, p: p, log: log, group: p.Group}
	t.rec = state.Record{Name: p.Team}
	if p.Record != nil {
		t.rec = *p.Record
	}
	if p.Conflict != "" {
		log.Warn("conflict: the agent will not touch this team", "reason", p.Conflict)
		if err := t.update(ctx, func(rec *state.Record) { rec.Conflict = p.Conflict }); err != nil {
			return Result{Team: p.Team, Outcome: OutcomeFailed, Detail: err.Error(), Err: err}
		}
		return Result{Team: p.Team, Outcome: OutcomeConflict, Detail: p.Conflict}
	}
	if len(p.Steps) > 0 && p.Steps[0] != plan.StepOrphan {
		prof, ok := r.Profiles[p.Profile]
		if !ok {
			err := fmt.Errorf("storage profile %q is not configured", p.Profile)
			return t.fail(ctx, "", err)
		}
		t.factory, t.adopt = prof.Factory, prof.AdoptExisting
	}
	steps := p.Steps
	if len(steps) > 0 && steps[0] == plan.StepCheckAdoption {
		// Before anything is written: a refused adoption leaves no trace, not even a state record.
		if res, ok := t.checkAdoption(ctx); !ok {
			return res
		}
		steps = steps[1:]
	}
	t.later(func(rec *state.Record) { rec.Conflict = "" })
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return t.fail(ctx, s, err)
		}
		log.Debug("step", "step", s)
		err := t.step(ctx, s)
		if r.OnStep != nil {
			r.OnStep(p.Team, s, err)
		}
		var ce *conflictError
		if errors.As(err, &ce) {
			return t.conflict(ctx, ce.msg)
		}
		if err != nil {
			return t.fail(ctx, s, err)
		}
	}
	if err := t.flush(ctx); err != nil {
		return t.fail(ctx, "", err)
	}
	return t.result()
}

func (t *teamRun) result() Result {
	res := Result{Team: t.p.Team, Changes: t.changes, Warnings: t.warnings, Detail: t.p.Summary()}
	switch {
	case t.adopted:
		res.Outcome = OutcomeAdopted
	case t.created:
		res.Outcome = OutcomeCreated
	case t.p.Waiting:
		res.Outcome = OutcomeWaiting
	case len(t.changes) > 0:
		res.Outcome = OutcomeRepaired
	case len(t.p.Steps) == 1 && t.p.Steps[0] == plan.StepCheckDrift:
		res.Outcome, res.Detail = OutcomeVerified, "bucket verified, no drift"
	default:
		res.Outcome = OutcomeUpdated
	}
	return res
}

// update changes the team's record, with the pending changes before fn, in one transaction and
// keeps the local mirror in step.
func (t *teamRun) update(ctx context.Context, fn func(*state.Record)) error {
	fns := append(t.pending, fn)
	t.pending = nil // written now, or (on error) the team fails and writes its failure
	rec, err := t.r.Store.Update(ctx, t.p.Team, func(rec *state.Record) error {
		t.apply(rec, fns)
		return nil
	})
	if err != nil {
		return err
	}
	t.rec = rec
	return nil
}

// later makes a state-only change to the local mirror now and to the record with the team's next
// write (see pending).
func (t *teamRun) later(fn func(*state.Record)) {
	t.apply(&t.rec, []func(*state.Record){fn})
	t.pending = append(t.pending, fn)
}

// flush writes the pending changes, if any.
func (t *teamRun) flush(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	return t.update(ctx, func(*state.Record) {})
}

func (t *teamRun) apply(rec *state.Record, fns []func(*state.Record)) {
	for _, fn := range fns {
		fn(rec)
	}
	if rec.Phase == "" {
		rec.Phase = state.PhaseDesired
	}
	if t.p.Desired != nil && t.p.Conflict == "" { // in conflict, who owns the team is the question
		rec.Profile, rec.Source = t.p.Desired.Profile, t.p.Desired.Source
	}
}

// bucket is the team's bucket as its record has it (update keeps the record's name and profile those
// of the plan).
func (t *teamRun) bucket() bucketfactory.Bucket { return BucketOf(t.rec) }

// ensure runs Ensure holding the bucket's exclusive lock, unless this Apply already ensured the
// shared bucket the same way. Pending changes (the intent of the step) are written first.
func (t *teamRun) ensure(ctx context.Context, opts bucketfactory.EnsureOptions) error {
	b := t.bucket()
	key := ensureKey(b, opts)
	if key != "" && t.ensured.has(key) {
		return nil
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	defer t.r.bucketLocks.Lock(b.Storage.BucketID())()
	if key != "" && t.ensured.has(key) { // ensured while this team waited for the lock
		return nil
	}
	changes, err := t.factory.Ensure(ctx, b, opts)
	t.noteChanges(changes)
	if key != "" && len(changes) > 0 {
		t.ensured.setVerified(sharedKey(b), false) // settings changed: the next verification is whole
	}
	if err == nil && key != "" {
		t.ensured.add(key)
	}
	return err
}

// verify runs the verification holding the bucket's shared lock: teams of a shared bucket verify
// side by side, each probing under its own path. Once a whole verification of a shared bucket passed
// in this Apply, the next ones check only their team's path, until an Ensure (which holds the
// exclusive lock, so no verification runs meanwhile) changes a setting.
func (t *teamRun) verify(ctx context.Context) error {
	b := t.bucket()
	defer t.r.bucketLocks.RLock(b.Storage.BucketID())()
	key := sharedKey(b)
	if key != "" && t.ensured.hasVerified(key) {
		return bucketfactory.VerifyTeamPath(ctx, t.factory, b)
	}
	if err := bucketfactory.Verify(ctx, t.factory, b); err != nil {
		return err
	}
	if key != "" {
		t.ensured.setVerified(key, true)
	}
	return nil
}

func (t *teamRun) step(ctx context.Context, s plan.Step) error {
	now := t.r.now().UTC()
	switch s {
	case plan.StepCreateKey:
		kf, ok := t.factory.(bucketfactory.KeyFactory)
		if !ok {
			return fmt.Errorf("profile %q cannot create KMS keys (provider %s)", t.p.Profile, t.p.Storage.Provider)
		}
		recovering := t.rec.Intent != nil && t.rec.Intent.Op == state.OpCreateKey
		if err := t.begin(ctx, state.OpCreateKey, t.p.Team, true); err != nil {
			return err
		}
		arn, created, err := kf.EnsureKey(ctx, t.p.Team, recovering)
		if err != nil {
			return fmt.Errorf("ensure KMS key: %w", err)
		}
		if created {
			t.changes = append(t.changes, "kms: created key "+arn)
			t.log.Info("created KMS key", "key", arn)
		}
		return t.update(ctx, func(rec *state.Record) { rec.KMSKeyARN, rec.Intent = arn, nil })

	case plan.StepEnsureBucket:
		bucket := t.p.Storage.Bucket
		recovering := t.rec.Intent != nil && t.rec.Intent.Op == state.OpEnsureBucket && t.rec.Intent.Target == bucket
		// The intent is written by ensure before the bucket is touched, with the record when ensure
		// skips a shared bucket this Apply has ensured already.
		t.later(t.intent(state.OpEnsureBucket, bucket, true))
		return t.ensure(ctx, bucketfactory.EnsureOptions{AdoptUntagged: t.adopt || recovering})

	case plan.StepVerifyBucket:
		if err := t.verify(ctx); err != nil {
			return err
		}
		t.log.Info("bucket verified", "bucket", t.rec.Storage.Bucket)
		t.later(func(rec *state.Record) {
			rec.Phase, rec.Intent, rec.BucketReady, rec.LastVerified = state.PhaseBucketReady, nil, now, now
		})
		return nil

	case plan.StepCreateTeam:
		// An intent to create this team found now was left by an earlier run (or an earlier attempt of
		// the daemon) whose POST may have reached W&B: a team of this name may be that POST's.
		earlierIntent := t.rec.Intent != nil && t.rec.Intent.Op == state.OpCreateTeam && t.rec.Intent.Target == t.p.Team
		if err := t.begin(ctx, state.OpCreateTeam, t.p.Team, false); err != nil {
			return err
		}
		g, err := t.r.WandB.CreateGroup(ctx, wandb.NewGroup{DisplayName: t.p.Team, StorageBucket: wandb.BucketFor(t.rec.Storage, t.rec.KMSKeyARN)})
		switch {
		case errors.Is(err, wandb.ErrConflict):
			if g, err = t.createConflict(ctx, err, earlierIntent); err != nil {
				return err
			}
		case err != nil && !earlierIntent && refusedAtOnce(err):
			// W&B answered the only request with a refusal: this POST created nothing, so the intent
			// must not later make a team of this name look like ours.
			if uerr := t.update(ctx, func(rec *state.Record) { rec.Intent = nil }); uerr != nil {
				return fmt.Errorf("create W&B team: %w; and clearing the intent failed: %w", err, uerr)
			}
			return fmt.Errorf("create W&B team: %w", err)
		case err != nil:
			return fmt.Errorf("create W&B team: %w", err)
		}
		t.created, t.group = true, &g
		t.log.Info("created W&B team", "group_id", g.ID, "bucket", t.rec.Storage.Bucket)
		// Written with the next step's write (or at the team's end), before any other external
		// mutation: a crash before that leaves the create intent, which the next run resolves as it
		// resolves a crash right after the POST.
		t.later(func(rec *state.Record) {
			rec.Phase, rec.GroupID, rec.Intent, rec.TeamCreated = state.PhaseTeamCreated, g.ID, nil, now
			rec.Provenance = state.ProvenanceCreated
			// The members W&B put in at creation: its organisation service accounts (the agent sends
			// none). Membership sync never touches them.
			rec.InitialMemberIDs = memberIDs(g.Members)
		})
		return nil

	case plan.StepAdoptTeam:
		t.created = true
		t.log.Info("adopted W&B team created by an interrupted attempt", "group_id", t.p.Group.ID)
		t.later(func(rec *state.Record) {
			rec.Phase, rec.GroupID, rec.Intent, rec.TeamCreated = state.PhaseTeamCreated, t.p.Group.ID, nil, now
			rec.Provenance = state.ProvenanceCreated
			// Our POST sent no members: whoever is in the team now, W&B put there (its service
			// accounts) or someone added by hand. Either way the agent did not add them.
			rec.InitialMemberIDs = memberIDs(t.p.Group.Members)
		})
		return nil

	case plan.StepTakeBucket:
		// The team's bucket from now on: recorded first, then marked ours. The checks passed (or
		// the operator allowed repairs), so Ensure writes the ownership tags and, only with
		// adopt.repair, the settings that failed; it never creates the bucket (it exists).
		if err := t.begin(ctx, state.OpEnsureBucket, t.p.Storage.Bucket, true); err != nil {
			return err
		}
		return t.ensure(ctx, bucketfactory.EnsureOptions{AdoptUntagged: true})

	case plan.StepRecordAdoption:
		return t.recordAdoption(ctx)

	case plan.StepMarkInSync:
		return t.update(ctx, func(rec *state.Record) {
			rec.Phase, rec.Orphaned = state.PhaseInSync, false
			rec.Attempts, rec.LastError, rec.NextRetry = 0, "", time.Time{}
		})

	case plan.StepCheckDrift:
		if err := t.ensure(ctx, bucketfactory.EnsureOptions{}); err != nil {
			return err
		}
		if err := t.verify(ctx); err != nil {
			return err
		}
		return t.update(ctx, func(rec *state.Record) {
			rec.LastVerified, rec.Attempts, rec.LastError, rec.NextRetry = now, 0, "", time.Time{}
		})

	case plan.StepOrphan:
		t.log.Info("team no longer desired: marked orphaned; its bucket and W&B team are kept")
		if pol := t.r.Members; pol.Sync && pol.RemoveOnOrphan && t.rec.GroupID != "" {
			if err := t.flush(ctx); err != nil {
				return err
			}
			for _, id := range t.rec.MembersAdded {
				if err := t.r.WandB.RemoveMember(ctx, t.rec.GroupID, id); err != nil {
					return err
				}
			}
			if n := len(t.rec.MembersAdded); n > 0 {
				t.changes = append(t.changes, fmt.Sprintf("members: removed the %d the agent had added", n))
			}
			return t.update(ctx, func(rec *state.Record) {
				rec.Orphaned, rec.MembersAdded, rec.MemberIDs, rec.MemberEmails = true, nil, nil, nil
			})
		}
		return t.update(ctx, func(rec *state.Record) { rec.Orphaned = true })

	case plan.StepSyncMembers:
		return t.syncMembers(ctx)
	}
	return fmt.Errorf("unknown step %q", s)
}

// createConflict decides what a 409 on POST /Groups means. W&B answers 409 when the name is taken
// ("already exists", https://docs.wandb.ai/platform/hosting/iam/scim, error codes). GET never shows a
// team's storage, so a team of that name is adopted only when it is provably ours: this POST, or one an
// earlier run recorded an intent for, may have reached W&B. That is the case when the intent was found
// at the start of the step (earlierIntent), or when an earlier attempt of this POST got no answer or a
// 5xx (W&B may have carried it out; *wandb.APIError.EarlierAttemptMayHaveApplied). Attempts refused
// with 429 did nothing. A 409 otherwise, with no earlier intent, is somebody else's team: a conflict.
func (t *teamRun) createConflict(ctx context.Context, err error, earlierIntent bool) (wandb.Group, error) {
	var ae *wandb.APIError
	retried := errors.As(err, &ae) && ae.EarlierAttemptMayHaveApplied
	found, ferr := t.r.WandB.FindGroup(ctx, t.p.Team)
	if ferr != nil {
		return wandb.Group{}, fmt.Errorf("create W&B team: %w; then look it up: %w", err, ferr)
	}
	if found == nil {
		return wandb.Group{}, fmt.Errorf("create W&B team: W&B says the name %q is taken but shows no such team in this organisation "+
			"(team names are global: another organisation may have it); rename the team: %w", t.p.Team, err)
	}
	if earlierIntent || retried {
		t.log.Info("W&B answered 409 to a create that may have reached it before: adopting the team by name",
			"group_id", found.ID, "earlier_run", earlierIntent, "retried", retried)
		return *found, nil
	}
	// The planner's words for a foreign team, so the next run finds this conflict already recorded.
	msg := plan.ForeignTeam(t.p.Team, found.ID)
	// This POST created nothing: the intent goes, so no later run takes the team for ours.
	if uerr := t.update(ctx, func(rec *state.Record) { rec.Intent = nil }); uerr != nil {
		return wandb.Group{}, fmt.Errorf("%s; and clearing the intent failed: %w", msg, uerr)
	}
	return wandb.Group{}, &conflictError{msg: msg}
}

// conflictError stops a team's steps as a conflict (the operator must act), not a failure to retry.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// refusedAtOnce reports whether W&B refused a request with a definite answer to its only attempt: a
// 4xx other than 409 (taken) and 429 (throttled). Such a request did nothing.
func refusedAtOnce(err error) bool {
	var ae *wandb.APIError
	return errors.As(err, &ae) && ae.Attempts == 1 && ae.StatusCode >= 400 && ae.StatusCode < 500 &&
		ae.StatusCode != http.StatusConflict && ae.StatusCode != http.StatusTooManyRequests
}

// begin records the intent of an external mutation before it is made. withStorage also (re)records
// the storage spec the mutation works from; it is only allowed before the team exists.
func (t *teamRun) begin(ctx context.Context, op state.Op, target string, withStorage bool) error {
	return t.update(ctx, t.intent(op, target, withStorage))
}

// intent is begin's change of the record.
func (t *teamRun) intent(op state.Op, target string, withStorage bool) func(*state.Record) {
	now := t.r.now().UTC()
	return func(rec *state.Record) {
		if withStorage && !rec.Phase.Created() {
			if rec.StorageDigest != t.p.Storage.Digest() {
				rec.Phase, rec.KMSKeyARN, rec.Registered = state.PhaseDesired, "", false
			}
			rec.Storage, rec.StorageDigest = t.p.Storage, t.p.Storage.Digest()
			if rec.Storage.KMSKeyARN != "" {
				rec.KMSKeyARN = rec.Storage.KMSKeyARN // a configured key is the resolved key
			}
		}
		if rec.Phase == "" {
			rec.Phase = state.PhaseDesired
		}
		if rec.Intent == nil || rec.Intent.Op != op || rec.Intent.Target != target {
			rec.Intent = &state.Intent{Op: op, Target: target, Started: now}
		}
	}
}

func (t *teamRun) noteChanges(changes []bucketfactory.Change) {
	for _, c := range changes {
		t.changes = append(t.changes, c.String())
		t.log.Info("bucket setting changed", "bucket", t.rec.Storage.Bucket, "setting", c.Setting, "detail", c.Detail)
	}
}

// warn logs a problem that does not fail the team and keeps it for the result.
func (t *teamRun) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.log.Warn(msg)
	t.warnings = append(t.warnings, msg)
}

// conflict records a conflict found while carrying the steps out; the team waits for an operator.
func (t *teamRun) conflict(ctx context.Context, msg string) Result {
	t.log.Warn("conflict: the agent will not touch this team", "reason", msg)
	if err := t.update(context.WithoutCancel(ctx), func(rec *state.Record) { rec.Conflict = msg }); err != nil {
		return Result{Team: t.p.Team, Outcome: OutcomeFailed, Detail: msg + "; and recording the conflict failed: " + err.Error(), Err: err, Changes: t.changes}
	}
	return Result{Team: t.p.Team, Outcome: OutcomeConflict, Detail: msg, Changes: t.changes}
}

// fail records the failure (keeping any intent, so the next attempt knows what may have happened).
func (t *teamRun) fail(ctx context.Context, s plan.Step, err error) Result {
	attempts := t.rec.Attempts + 1
	next := t.r.now().UTC().Add(t.r.backoff(attempts))
	if ce := transport.AsCertError(err); ce != nil {
		err = ce // the whole story: the storage SDKs' layers around it only hide it
	}
	msg := err.Error()
	if s != "" {
		msg = fmt.Sprintf("%s: %s", s, msg)
	}
	if ctx.Err() != nil {
		// Interrupted (shutdown), not failed: the next run retries at once, without backoff.
		attempts, next = t.rec.Attempts, t.r.now().UTC()
		msg = "interrupted: " + msg
	}
	t.log.Error("team failed", "step", s, "attempt", attempts, "next_retry", next, "error", msg)
	// The context may be what failed; the record must still land.
	if uerr := t.update(context.WithoutCancel(ctx), func(rec *state.Record) {
		rec.Attempts, rec.LastError, rec.NextRetry = attempts, msg, next
	}); uerr != nil {
		msg += "; and recording the failure failed: " + uerr.Error()
	}
	return Result{Team: t.p.Team, Outcome: OutcomeFailed, Detail: msg, Changes: t.changes, Warnings: t.warnings, Err: err, RetryAt: next}
}
