package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/transport"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

// Store is the part of the state the reconciler needs.
type Store interface {
	List(ctx context.Context) ([]state.Record, error)
	Update(ctx context.Context, name string, fn func(*state.Record) error) (state.Record, error)
}

// WandB is the part of W&B's SCIM API the reconciler needs.
type WandB interface {
	ListGroups(ctx context.Context) ([]wandb.Group, error)
	FindGroup(ctx context.Context, displayName string) (*wandb.Group, error)
	CreateGroup(ctx context.Context, g wandb.NewGroup) (wandb.Group, error)
	FindUser(ctx context.Context, email string) (*wandb.User, error)
	CreateUser(ctx context.Context, email string) (wandb.User, error)
	AddMembers(ctx context.Context, groupID string, userIDs []string) error
	RemoveMember(ctx context.Context, groupID, userID string) error
	SetTeamRole(ctx context.Context, userID, teamName, role string) error
}

// MembersPolicy says how team members are synced.
type MembersPolicy struct {
	Sync bool // off: members are never touched
	// Authoritative makes the W&B team exactly the source's members; otherwise only members the agent
	// added are ever removed. Members W&B put in the team at creation are never removed.
	Authoritative bool
	CreateUsers   bool    // create W&B users for member emails W&B does not know
	MaxRemove     float64 // refuse a sync that would remove more than this share of a team's members
	// RemoveOnOrphan removes the members the agent added when a team's group disappears (default: keep).
	RemoveOnOrphan bool
}

// Profile is what the reconciler knows of one storage profile.
type Profile struct {
	Factory bucketfactory.Factory
	// AdoptExisting lets the agent take over an existing untagged bucket of ours.
	AdoptExisting bool
	// RequireRegistered holds a team with a ready bucket until the operator has registered the bucket
	// with W&B (dedicated and self-managed instances refuse unregistered buckets).
	RequireRegistered bool
}

// Reconciler plans and applies. Its zero value is not usable: set Store, WandB and Profiles.
type Reconciler struct {
	Store    Store
	WandB    WandB
	Profiles map[string]Profile
	// Concurrency bounds how many teams are worked on at once; one team is only ever worked on by one worker.
	Concurrency   int
	DriftInterval time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
	// Backoff gives the wait before the next attempt after a team's n-th consecutive failure.
	Backoff func(n int) time.Duration
	// OnStep, if set, is told the outcome of every step carried out (metrics). It must not block.
	OnStep  func(s Step, err error)
	Members MembersPolicy

	bucketLocks keyedMutex // one Ensure or Check per bucket at a time (shared buckets serve many teams)
}

// PlanOptions tune a plan.
type PlanOptions struct {
	RespectBackoff bool
	// InspectDrift reads the bucket settings (no writes, no probe) of every team whose drift check is
	// due, so the plan can say what drifted. Off, a plan reads nothing from the clouds.
	InspectDrift bool
	// Only, when set, limits the plan to these teams (desired or recorded); others are left alone.
	Only map[string]bool
	// Sources, when set, limits the recorded teams planned to those these sources produced: a one-shot
	// sync reads only the configuration, and must not orphan the teams of SCIM pushes or IdPs.
	Sources map[string]bool
}

// Plan reads the state and W&B's team list (one listing for all teams) and plans every team.
func (r *Reconciler) Plan(ctx context.Context, desired []team.Team, o PlanOptions) ([]TeamPlan, error) {
	records, err := r.Store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	groups, err := r.WandB.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list W&B teams: %w", err)
	}
	if o.Sources != nil {
		records = slices.DeleteFunc(records, func(r state.Record) bool { return !o.Sources[r.Source] && r.Source != "" })
	}
	if o.Only != nil {
		desired = slices.DeleteFunc(slices.Clone(desired), func(t team.Team) bool { return !o.Only[t.Name] })
		records = slices.DeleteFunc(records, func(r state.Record) bool { return !o.Only[r.Name] })
	}
	plans := Plan(PlanInput{
		Desired: desired, Records: records, Groups: groups, Registration: r.registration(), SyncMembers: r.Members.Sync, Authoritative: r.Members.Authoritative,
		Now: r.now(), DriftInterval: r.DriftInterval, RespectBackoff: o.RespectBackoff,
	})
	if o.InspectDrift {
		r.inspectDrift(ctx, plans)
	}
	return plans, nil
}

func (r *Reconciler) registration() map[string]bool {
	out := make(map[string]bool, len(r.Profiles))
	for name, p := range r.Profiles {
		out[name] = p.RequireRegistered
	}
	return out
}

// inspectDrift fills Drift of the plans with a drift check, concurrently and read-only.
func (r *Reconciler) inspectDrift(ctx context.Context, plans []TeamPlan) {
	r.each(len(plans), func(i int) {
		p := &plans[i]
		if len(p.Steps) != 1 || p.Steps[0] != StepCheckDrift {
			return
		}
		prof, ok := r.Profiles[p.Profile]
		if !ok {
			return
		}
		b := bucketOf(p.Team, p.Profile, *p.record)
		unlock := r.bucketLocks.lock(b.Storage.BucketID())
		results, err := prof.Factory.Check(ctx, b, bucketfactory.CheckOptions{})
		unlock()
		if err != nil {
			p.Note = "drift check failed: " + err.Error()
			return
		}
		for _, res := range results {
			if !res.OK {
				p.Drift = append(p.Drift, res)
			}
		}
	})
}

// Outcome is how one team ended in an apply.
type Outcome string

const (
	OutcomeUnchanged Outcome = "unchanged"
	OutcomeCreated   Outcome = "created"  // W&B team created (or adopted) this run
	OutcomeRepaired  Outcome = "repaired" // drift found and repaired
	OutcomeVerified  Outcome = "verified" // drift check found nothing
	OutcomeUpdated   Outcome = "updated"  // state-only change (in sync, orphaned, conflict cleared)
	OutcomeWaiting   Outcome = "waiting"  // backing off after a failure
	OutcomeConflict  Outcome = "conflict"
	OutcomeFailed    Outcome = "failed"
)

// Result is what happened to one team.
type Result struct {
	Team    string   `json:"team"`
	Outcome Outcome  `json:"outcome"`
	Detail  string   `json:"detail,omitempty"`
	Changes []string `json:"changes,omitempty"` // bucket settings written
	Err     error    `json:"-"`
	// RetryAt is when a failed team should be tried again.
	RetryAt time.Time `json:"retryAt,omitzero"`
}

// Apply carries out the plans with bounded concurrency. A failing team never stops the others.
func (r *Reconciler) Apply(ctx context.Context, plans []TeamPlan) []Result {
	results := make([]Result, len(plans))
	r.each(len(plans), func(i int) { results[i] = r.applyTeam(ctx, plans[i]) })
	return results
}

// each calls fn(0..n-1) on at most Concurrency goroutines; a plan holds each team once, so one team is
// never worked on by two workers.
func (r *Reconciler) each(n int, fn func(i int)) {
	work := make(chan int)
	var wg gosync.WaitGroup
	for range max(r.Concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				fn(i)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// Sync plans and applies once.
func (r *Reconciler) Sync(ctx context.Context, desired []team.Team, o PlanOptions) ([]Result, error) {
	plans, err := r.Plan(ctx, desired, o)
	if err != nil {
		return nil, err
	}
	return r.Apply(ctx, plans), nil
}

// teamRun carries one team through its steps; rec mirrors what the state holds.
type teamRun struct {
	r       *Reconciler
	p       TeamPlan
	rec     state.Record
	log     *slog.Logger
	factory bucketfactory.Factory
	adopt   bool
	changes []string
	created bool
	group   *wandb.Group // the team's W&B group: from the plan's listing, or as just created
}

func (r *Reconciler) applyTeam(ctx context.Context, p TeamPlan) Result {
	log := r.logger().With("team", p.Team)
	res := Result{Team: p.Team, Outcome: OutcomeUnchanged, Detail: p.Summary()}
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
	t := &teamRun{r: r, p: p, log: log, group: p.group}
	if p.record != nil {
		t.rec = *p.record
	}
	if p.Conflict != "" {
		log.Warn("conflict: the agent will not touch this team", "reason", p.Conflict)
		if err := t.update(ctx, func(rec *state.Record) { rec.Conflict = p.Conflict }); err != nil {
			return Result{Team: p.Team, Outcome: OutcomeFailed, Detail: err.Error(), Err: err}
		}
		return Result{Team: p.Team, Outcome: OutcomeConflict, Detail: p.Conflict}
	}
	if len(p.Steps) > 0 && p.Steps[0] != StepOrphan {
		prof, ok := r.Profiles[p.Profile]
		if !ok {
			err := fmt.Errorf("storage profile %q is not configured", p.Profile)
			return t.fail(ctx, "", err)
		}
		t.factory, t.adopt = prof.Factory, prof.AdoptExisting
	}
	if err := t.update(ctx, func(rec *state.Record) { rec.Conflict = "" }); err != nil {
		return Result{Team: p.Team, Outcome: OutcomeFailed, Detail: err.Error(), Err: err}
	}
	for _, s := range p.Steps {
		if err := ctx.Err(); err != nil {
			return t.fail(ctx, s, err)
		}
		log.Debug("step", "step", s)
		err := t.step(ctx, s)
		if r.OnStep != nil {
			r.OnStep(s, err)
		}
		if err != nil {
			return t.fail(ctx, s, err)
		}
	}
	return t.result()
}

func (t *teamRun) result() Result {
	res := Result{Team: t.p.Team, Changes: t.changes, Detail: t.p.Summary()}
	switch {
	case t.created:
		res.Outcome = OutcomeCreated
	case t.p.Waiting:
		res.Outcome = OutcomeWaiting
	case len(t.changes) > 0:
		res.Outcome = OutcomeRepaired
	case len(t.p.Steps) == 1 && t.p.Steps[0] == StepCheckDrift:
		res.Outcome, res.Detail = OutcomeVerified, "bucket verified, no drift"
	default:
		res.Outcome = OutcomeUpdated
	}
	return res
}

// update changes the team's record in one transaction and keeps the local mirror in step.
func (t *teamRun) update(ctx context.Context, fn func(*state.Record)) error {
	rec, err := t.r.Store.Update(ctx, t.p.Team, func(rec *state.Record) error {
		fn(rec)
		if rec.Phase == "" {
			rec.Phase = state.PhaseDesired
		}
		if t.p.desired != nil && t.p.Conflict == "" { // in conflict, who owns the team is the question
			rec.Profile, rec.Source = t.p.desired.Profile, t.p.desired.Source
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.rec = rec
	return nil
}

func (t *teamRun) bucket() bucketfactory.Bucket { return bucketOf(t.p.Team, t.p.Profile, t.rec) }

func bucketOf(teamName, profile string, rec state.Record) bucketfactory.Bucket {
	return bucketfactory.Bucket{Team: teamName, Profile: profile, Storage: rec.Storage, KMSKeyARN: rec.KMSKeyARN, Shared: rec.Storage.Shared}
}

// keyedMutex serializes work per key.
type keyedMutex struct{ m gosync.Map } // key -> *gosync.Mutex

func (k *keyedMutex) lock(key string) (unlock func()) {
	v, _ := k.m.LoadOrStore(key, &gosync.Mutex{})
	mu := v.(*gosync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// ensure runs Ensure, then the full verification, holding the bucket's lock.
func (t *teamRun) ensure(ctx context.Context, opts bucketfactory.EnsureOptions) error {
	b := t.bucket()
	defer t.r.bucketLocks.lock(b.Storage.BucketID())()
	changes, err := t.factory.Ensure(ctx, b, opts)
	t.noteChanges(changes)
	return err
}

func (t *teamRun) verify(ctx context.Context) error {
	b := t.bucket()
	defer t.r.bucketLocks.lock(b.Storage.BucketID())()
	return bucketfactory.Verify(ctx, t.factory, b)
}

func (t *teamRun) step(ctx context.Context, s Step) error {
	now := t.r.now().UTC()
	switch s {
	case StepCreateKey:
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

	case StepEnsureBucket:
		bucket := t.p.Storage.Bucket
		recovering := t.rec.Intent != nil && t.rec.Intent.Op == state.OpEnsureBucket && t.rec.Intent.Target == bucket
		if err := t.begin(ctx, state.OpEnsureBucket, bucket, true); err != nil {
			return err
		}
		return t.ensure(ctx, bucketfactory.EnsureOptions{AdoptUntagged: t.adopt || recovering})

	case StepVerifyBucket:
		if err := t.verify(ctx); err != nil {
			return err
		}
		t.log.Info("bucket verified", "bucket", t.rec.Storage.Bucket)
		return t.update(ctx, func(rec *state.Record) {
			rec.Phase, rec.Intent, rec.BucketReady, rec.LastVerified = state.PhaseBucketReady, nil, now, now
		})

	case StepCreateTeam:
		if err := t.begin(ctx, state.OpCreateTeam, t.p.Team, false); err != nil {
			return err
		}
		g, err := t.r.WandB.CreateGroup(ctx, wandb.NewGroup{DisplayName: t.p.Team, StorageBucket: wandb.BucketFor(t.rec.Storage, t.rec.KMSKeyARN)})
		if errors.Is(err, wandb.ErrConflict) {
			// W&B says the name is taken, but it was free when we planned: most likely our own POST,
			// retried after a lost response. Only a team W&B shows us by name can be ours.
			found, ferr := t.r.WandB.FindGroup(ctx, t.p.Team)
			if ferr != nil {
				return fmt.Errorf("create W&B team: %w; then look it up: %w", err, ferr)
			}
			if found == nil {
				return fmt.Errorf("create W&B team: W&B says the name %q is taken but shows no such team in this organisation "+
					"(team names are global: another organisation may have it); rename the team: %w", t.p.Team, err)
			}
			g, err = *found, nil
		}
		if err != nil {
			return fmt.Errorf("create W&B team: %w", err)
		}
		t.created, t.group = true, &g
		t.log.Info("created W&B team", "group_id", g.ID, "bucket", t.rec.Storage.Bucket)
		return t.update(ctx, func(rec *state.Record) {
			rec.Phase, rec.GroupID, rec.Intent, rec.TeamCreated = state.PhaseTeamCreated, g.ID, nil, now
			rec.InitialMemberIDs = memberIDs(g.Members)
		})

	case StepAdoptTeam:
		t.created = true
		t.log.Info("adopted W&B team created by an interrupted attempt", "group_id", t.p.group.ID)
		return t.update(ctx, func(rec *state.Record) {
			rec.Phase, rec.GroupID, rec.Intent, rec.TeamCreated = state.PhaseTeamCreated, t.p.group.ID, nil, now
		})

	case StepMarkInSync:
		return t.update(ctx, func(rec *state.Record) {
			rec.Phase, rec.Orphaned = state.PhaseInSync, false
			rec.Attempts, rec.LastError, rec.NextRetry = 0, "", time.Time{}
		})

	case StepCheckDrift:
		if err := t.ensure(ctx, bucketfactory.EnsureOptions{}); err != nil {
			return err
		}
		if err := t.verify(ctx); err != nil {
			return err
		}
		return t.update(ctx, func(rec *state.Record) {
			rec.LastVerified, rec.Attempts, rec.LastError, rec.NextRetry = now, 0, "", time.Time{}
		})

	case StepOrphan:
		t.log.Info("team no longer desired: marked orphaned; its bucket and W&B team are kept")
		if pol := t.r.Members; pol.Sync && pol.RemoveOnOrphan && t.rec.GroupID != "" {
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

	case StepSyncMembers:
		return t.syncMembers(ctx)
	}
	return fmt.Errorf("unknown step %q", s)
}

// begin records the intent of an external mutation before it is made. withStorage also (re)records
// the storage spec the mutation works from; it is only allowed before the team exists.
func (t *teamRun) begin(ctx context.Context, op state.Op, target string, withStorage bool) error {
	now := t.r.now().UTC()
	return t.update(ctx, func(rec *state.Record) {
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
	})
}

func (t *teamRun) noteChanges(changes []bucketfactory.Change) {
	for _, c := range changes {
		t.changes = append(t.changes, c.String())
		t.log.Info("bucket setting changed", "bucket", t.rec.Storage.Bucket, "setting", c.Setting, "detail", c.Detail)
	}
}

// fail records the failure (keeping any intent, so the next attempt knows what may have happened).
func (t *teamRun) fail(ctx context.Context, s Step, err error) Result {
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
	return Result{Team: t.p.Team, Outcome: OutcomeFailed, Detail: msg, Changes: t.changes, Err: err, RetryAt: next}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Reconciler) backoff(n int) time.Duration {
	if r.Backoff != nil {
		return r.Backoff(n)
	}
	return DefaultBackoff(n)
}

// DefaultBackoff doubles from 30 s up to 1 h, with up to 20% jitter so failed teams do not retry in lockstep.
func DefaultBackoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// syncMembers makes the W&B team's members follow the source: resolve the wanted emails to W&B users
// (creating missing ones when allowed), add who is missing, and remove who is no longer wanted among
// the members the policy lets the agent remove. A run that would remove more than the allowed share
// is refused: an IdP outage that returns empty groups must not empty W&B teams.
func (t *teamRun) syncMembers(ctx context.Context) error {
	if t.group == nil {
		return fmt.Errorf("sync members: W&B team %q not known yet", t.p.Team)
	}
	pol := t.r.Members
	current := memberIDs(t.group.Members)
	wanted := map[string]bool{}
	users := map[string]string{} // email -> W&B user id, of the wanted members W&B knows
	var unknown []string
	for _, email := range t.p.desired.Members {
		u, err := t.r.WandB.FindUser(ctx, email)
		if err != nil {
			return err
		}
		if u == nil && pol.CreateUsers {
			created, err := t.r.WandB.CreateUser(ctx, email)
			if err != nil {
				return err
			}
			t.changes = append(t.changes, "members: created W&B user "+email)
			u = &created
		}
		if u == nil {
			unknown = append(unknown, email)
			continue
		}
		wanted[u.ID] = true
		users[email] = u.ID
	}
	var add, remove []string
	for id := range wanted {
		if !slices.Contains(current, id) {
			add = append(add, id)
		}
	}
	for _, id := range current {
		if !wanted[id] && Removable(&t.rec, id, pol.Authoritative) {
			remove = append(remove, id)
		}
	}
	slices.Sort(add)
	slices.Sort(remove)
	if len(current) > 0 && float64(len(remove)) > pol.MaxRemove*float64(len(current)) {
		return fmt.Errorf("sync members: refusing to remove %d of the team's %d members (more than %.0f%%): "+
			"if the source really lost them, raise members.maxRemoveShare for one run", len(remove), len(current), 100*pol.MaxRemove)
	}
	// Record the additions first: a crash after the PATCH must not leave members we added unowned.
	if err := t.update(ctx, func(rec *state.Record) { rec.MembersAdded = union(rec.MembersAdded, add) }); err != nil {
		return err
	}
	if len(add) > 0 {
		if err := t.r.WandB.AddMembers(ctx, t.group.ID, add); err != nil {
			return err
		}
		t.changes = append(t.changes, fmt.Sprintf("members: added %d", len(add)))
	}
	for _, id := range remove {
		if err := t.r.WandB.RemoveMember(ctx, t.group.ID, id); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		t.changes = append(t.changes, fmt.Sprintf("members: removed %d", len(remove)))
	}
	if len(unknown) > 0 {
		t.changes = append(t.changes, fmt.Sprintf("members: %d not in W&B and not created (members.createUsers is off): %s", len(unknown), strings.Join(unknown, ", ")))
	}
	after := slices.DeleteFunc(union(current, add), func(id string) bool { return slices.Contains(remove, id) })
	if err := t.update(ctx, func(rec *state.Record) {
		// Unknown emails stay out of the record, so later runs look for them again (a user may appear
		// in W&B after their first login).
		rec.MemberEmails = slices.DeleteFunc(slices.Clone(t.p.desired.Members), func(e string) bool { return slices.Contains(unknown, e) })
		rec.MemberIDs = after
		rec.MemberUsers = users
		rec.MembersAdded = slices.DeleteFunc(rec.MembersAdded, func(id string) bool { return slices.Contains(remove, id) })
	}); err != nil {
		return err
	}
	return t.syncRoles(ctx, users)
}

// syncRoles sets the team role of every member a role rule names, and sets members whose rule went
// away back to member. Roles set by hand in W&B are left alone. Each change is recorded right after it
// is made, so a crash repeats at most one PATCH, which is idempotent.
func (t *teamRun) syncRoles(ctx context.Context, users map[string]string) error {
	set := func(email, role string) error {
		if err := t.r.WandB.SetTeamRole(ctx, users[email], t.p.Team, role); err != nil {
			return err
		}
		t.changes = append(t.changes, fmt.Sprintf("members: %s is now %s", email, role))
		return t.update(ctx, func(rec *state.Record) {
			if role == team.RoleMember {
				delete(rec.MemberRoles, email)
				return
			}
			if rec.MemberRoles == nil {
				rec.MemberRoles = map[string]string{}
			}
			rec.MemberRoles[email] = role
		})
	}
	want := wantedRoles(t.p.desired, &t.rec)
	for _, email := range slices.Sorted(maps.Keys(want)) {
		if t.rec.MemberRoles[email] != want[email] {
			if err := set(email, want[email]); err != nil {
				return err
			}
		}
	}
	for _, email := range slices.Sorted(maps.Keys(t.rec.MemberRoles)) {
		if _, still := want[email]; still {
			continue
		}
		if _, member := users[email]; !member {
			// No longer wanted in the team (or unknown): nothing to reset; forget the role.
			if err := t.update(ctx, func(rec *state.Record) { delete(rec.MemberRoles, email) }); err != nil {
				return err
			}
			continue
		}
		if err := set(email, team.RoleMember); err != nil {
			return err
		}
	}
	return nil
}

func memberIDs(ms []wandb.Member) []string {
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.Value)
	}
	return ids
}

// union returns the sorted union of a and b without duplicates.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
