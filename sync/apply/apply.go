// Package apply provides the Reconciler: it reads the state and W&B, has the planner decide, and
// carries each team's steps out, recording intent before every external mutation and its result with
// the team's next write (before its next external mutation, or at its end).
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/internal/keylock"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/team"
)

// Store is the part of the state the reconciler needs.
type Store interface {
	Get(ctx context.Context, name string) (state.Record, error)
	List(ctx context.Context) ([]state.Record, error)
	Update(ctx context.Context, name string, fn func(*state.Record) error) (state.Record, error)
}

// WandB is the part of W&B's SCIM API the reconciler needs.
type WandB interface {
	ListGroups(ctx context.Context) ([]wandb.Group, error)
	FindGroup(ctx context.Context, displayName string) (*wandb.Group, error)
	CreateGroup(ctx context.Context, g wandb.NewGroup) (wandb.Group, error)
	FindUser(ctx context.Context, email string) (*wandb.User, error)
	CreateUserInTeams(ctx context.Context, email string, teams []string) (wandb.User, error)
	AddMembers(ctx context.Context, groupID string, userIDs []string) error
	RemoveMember(ctx context.Context, groupID, userID string) error
	AssignTeamRole(ctx context.Context, userID, teamName, role string) (map[string]string, error)
	UserTeamRoles(ctx context.Context, userID string) (map[string]string, error)
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
	// OnStep, if set, is told the outcome of every step carried out, and for which team (metrics, the
	// team's history). It must not block.
	OnStep  func(team string, s plan.Step, err error)
	Members MembersPolicy

	// bucketLocks keep an Ensure of a bucket apart from every other Ensure or Check of it (a shared
	// bucket serves many teams); checks, which only read (and probe under their own team's path),
	// run side by side.
	bucketLocks keylock.RWMap
}

// PlanOptions tune a plan.
type PlanOptions struct {
	RespectBackoff bool
	// InspectDrift reads the bucket settings (no writes, no probe) of every team whose drift check is
	// due, so the plan can say what drifted, and of every team to adopt, so it can say whether the
	// adoption will be refused. Off, a plan reads nothing from the clouds.
	InspectDrift bool
	// Only, when set, limits the plan to these teams (desired or recorded); others are left alone.
	Only map[string]bool
	// Sources, when set, limits the recorded teams planned to those these sources produced: a one-shot
	// sync reads only the configuration, and must not orphan the teams of SCIM pushes or IdPs.
	Sources map[string]bool
}

// Plan reads the state and W&B's team list (one listing for all teams; a few teams named in o.Only
// are looked up one by one instead) and plans every team.
func (r *Reconciler) Plan(ctx context.Context, desired []team.Team, o PlanOptions) ([]plan.TeamPlan, error) {
	records, groups, err := r.read(ctx, o.Only)
	if err != nil {
		return nil, err
	}
	if o.Sources != nil {
		records = slices.DeleteFunc(records, func(r state.Record) bool { return !o.Sources[r.Source] && r.Source != "" })
	}
	if o.Only != nil {
		var only []team.Team // not a clone of every desired team: a webhook's reconcile names a few
		for _, t := range desired {
			if o.Only[t.Name] {
				only = append(only, t)
			}
		}
		desired = only
		records = slices.DeleteFunc(records, func(r state.Record) bool { return !o.Only[r.Name] })
	}
	plans := plan.Plan(plan.Input{
		Desired: desired, Records: records, Groups: groups, Registration: r.registration(), SyncMembers: r.Members.Sync, Authoritative: r.Members.Authoritative,
		Now: r.now(), DriftInterval: r.DriftInterval, RespectBackoff: o.RespectBackoff,
	})
	if o.InspectDrift {
		r.inspect(ctx, plans)
	}
	return plans, nil
}

// maxLookups is how many teams a plan looks up one by one (a record read and a W&B displayName
// filter each) rather than read the whole state and list every W&B team. A webhook or SCIM write
// names one team or a few, and with 10,000 teams the whole state and listing cost far more (issue 15).
const maxLookups = 8

// read returns the records and W&B teams the plan needs: those of only, or all when only is nil or large.
func (r *Reconciler) read(ctx context.Context, only map[string]bool) ([]state.Record, []wandb.Group, error) {
	if only == nil || len(only) > maxLookups {
		records, err := r.Store.List(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("read state: %w", err)
		}
		groups, err := r.WandB.ListGroups(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list W&B teams: %w", err)
		}
		return records, groups, nil
	}
	var records []state.Record
	var groups []wandb.Group
	for _, name := range slices.Sorted(maps.Keys(only)) {
		rec, err := r.Store.Get(ctx, name)
		switch {
		case errors.Is(err, state.ErrNotFound):
		case err != nil:
			return nil, nil, fmt.Errorf("read state: %w", err)
		default:
			records = append(records, rec)
		}
		g, err := r.WandB.FindGroup(ctx, name)
		if err != nil {
			return nil, nil, fmt.Errorf("look up W&B team: %w", err)
		}
		if g != nil {
			groups = append(groups, *g)
		}
	}
	return records, groups, nil
}

func (r *Reconciler) registration() map[string]bool {
	out := make(map[string]bool, len(r.Profiles))
	for name, p := range r.Profiles {
		out[name] = p.RequireRegistered
	}
	return out
}

// inspect reads, concurrently and read-only, the buckets the plans will look at: the settings of every
// team whose drift check is due (Drift), and the stated bucket of every team to adopt (a refusal the
// sync would make is shown now; the probe object is left to the sync).
func (r *Reconciler) inspect(ctx context.Context, plans []plan.TeamPlan) {
	r.each(len(plans), func(i int) {
		p := &plans[i]
		if len(p.Steps) == 0 || (p.Steps[0] != plan.StepCheckDrift || len(p.Steps) != 1) && p.Steps[0] != plan.StepCheckAdoption {
			return
		}
		prof, ok := r.Profiles[p.Profile]
		if !ok {
			return
		}
		if p.Steps[0] == plan.StepCheckAdoption {
			refusal, err := r.adoptionRefusal(ctx, prof.Factory, *p, false)
			switch {
			case err != nil:
				p.Note = "adoption check failed: " + err.Error()
			case refusal != "":
				p.Refused, p.Steps = refusal, nil
			}
			return
		}
		b := BucketOf(*p.Record)
		b.Profile = p.Profile // the profile the team is desired under, which the repair will use
		unlock := r.bucketLocks.RLock(b.Storage.BucketID())
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
	OutcomeCreated   Outcome = "created"  // W&B team created (or found made by our interrupted create) this run
	OutcomeAdopted   Outcome = "adopted"  // a W&B team made by hand was taken over (adopt in the teams list)
	OutcomeRefused   Outcome = "refused"  // an adoption was refused; nothing was changed
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
	// Warnings are problems that did not fail the team: a member skipped, another team's role changed.
	Warnings []string `json:"warnings,omitempty"`
	Err      error    `json:"-"`
	// RetryAt is when a failed team should be tried again.
	RetryAt time.Time `json:"retryAt,omitzero"`
}

// Apply carries out the plans with bounded concurrency. A failing team never stops the others.
func (r *Reconciler) Apply(ctx context.Context, plans []plan.TeamPlan) []Result {
	results := make([]Result, len(plans))
	ensured := &ensuredBuckets{}
	r.each(len(plans), func(i int) { results[i] = r.applyTeam(ctx, plans[i], ensured) })
	return results
}

// ensuredBuckets are the shared buckets one Apply has ensured, and those it has verified whole.
// Every team of a shared bucket asks for the same bucket-wide settings, so once one Ensure succeeded
// in this Apply the others skip it, and once one team's verification passed the others verify only
// their own path (their probe). Keys are ensureKey's (verified keys with opts zero).
type ensuredBuckets struct {
	mu             sync.Mutex
	done, verified map[string]bool
}

func (e *ensuredBuckets) has(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.done[key]
}

func (e *ensuredBuckets) add(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done == nil {
		e.done = map[string]bool{}
	}
	e.done[key] = true
}

func (e *ensuredBuckets) hasVerified(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.verified[key]
}

// setVerified records whether the bucket's settings stand verified: an Ensure that changed them
// takes that back.
func (e *ensuredBuckets) setVerified(key string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.verified == nil {
		e.verified = map[string]bool{}
	}
	e.verified[key] = ok
}

// sharedKey says what a shared bucket's settings depend on: the bucket, the profile (its ownership
// mark) and the key. "" for a bucket of one team.
func sharedKey(b bucketfactory.Bucket) string {
	if !b.Shared {
		return ""
	}
	return b.Storage.BucketID() + "\x00" + b.Profile + "\x00" + b.KMSKeyARN
}

// ensureKey is sharedKey with whether an untagged bucket may be adopted: what an Ensure depends on.
func ensureKey(b bucketfactory.Bucket, o bucketfactory.EnsureOptions) string {
	if !b.Shared {
		return ""
	}
	return fmt.Sprintf("%s\x00%t", sharedKey(b), o.AdoptUntagged)
}

// each calls fn(0..n-1) on at most Concurrency goroutines; a plan holds each team once, so one team is
// never worked on by two workers.
func (r *Reconciler) each(n int, fn func(i int)) {
	work := make(chan int)
	var wg sync.WaitGroup
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

// BucketOf is the bucket a team's state record describes: the storage it recorded and the KMS key it
// resolved. It is the one place a record becomes a bucketfactory.Bucket (the applier, doctor, file-stores).
func BucketOf(r state.Record) bucketfactory.Bucket {
	return bucketfactory.Bucket{Team: r.Name, Profile: r.Profile, Storage: r.Storage, KMSKeyARN: r.KMSKeyARN, Shared: r.Storage.Shared}
}

// DefaultBackoff doubles from 30 s up to 1 h, with up to 20% jitter so failed teams do not retry in lockstep.
func DefaultBackoff(n int) time.Duration {
	return retry.Policy{Base: 30 * time.Second, Max: time.Hour, Jitter: retry.Fraction(0.2)}.Backoff(n)
}
