// Package plan provides the pure planner: from what is desired, what the state recorded and what W&B
// has, it decides per team which steps are needed; it makes no calls.
package plan

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

// Step is one unit of work for a team. Steps that mutate the outside world record their intent first.
type Step string

const (
	StepCreateKey    Step = "create_kms_key" // create the team's KMS key (profile asks for one)
	StepEnsureBucket Step = "ensure_bucket"  // create the bucket if absent and apply W&B's recipe
	StepVerifyBucket Step = "verify_bucket"  // read every setting back and probe with an object
	StepCreateTeam   Step = "create_team"    // POST the W&B team with storageBucket
	StepAdoptTeam    Step = "adopt_team"     // W&B has the team our unfinished create made: record it
	StepMarkInSync   Step = "mark_in_sync"   // state only
	StepCheckDrift   Step = "check_drift"    // re-apply the recipe where it drifted, then verify
	StepOrphan       Step = "orphan"         // no longer desired: mark it, keep bucket and team
	StepSyncMembers  Step = "sync_members"   // add and remove W&B team members to match the source
	// Taking over a team made by hand (adopt in the teams list), in this order.
	StepCheckAdoption  Step = "check_adoption"  // read only: W&B has the team, the stated bucket passes W&B's checks
	StepTakeBucket     Step = "take_bucket"     // mark the stated bucket ours; repair its settings if allowed
	StepRecordAdoption Step = "record_adoption" // state only: the team is managed, provenance adopted
)

// TeamPlan is what sync would do for one team.
type TeamPlan struct {
	Team    string       `json:"team"`
	Profile string       `json:"profile,omitempty"`
	Status  string       `json:"status"` // the team's status in the state now ("new" if unknown)
	Steps   []Step       `json:"steps"`
	Storage team.Storage `json:"storage"` // desired storage (recorded storage for orphans)
	// Conflict, when set, is why the agent will not touch this team until an operator acts.
	Conflict string `json:"conflict,omitempty"`
	// Note explains a step list that is not the obvious one (waiting for a retry, storage changed).
	Note string `json:"note,omitempty"`
	// Waiting says the team is held back: backing off after a failure, or waiting for its bucket to be
	// registered with W&B.
	Waiting bool `json:"waiting,omitempty"`
	// RetryAt is when a team backing off after a failure may be tried again.
	RetryAt time.Time `json:"retryAt,omitzero"`
	// Drift lists the bucket settings found wrong when the plan inspected drift.
	Drift []bucketfactory.CheckResult `json:"drift,omitempty"`
	// Members is what a members sync would change, when the plan has one.
	Members *MemberChanges `json:"members,omitempty"`
	// Adopt says the team, made by hand in W&B, is to be taken over.
	Adopt *Adoption `json:"adopt,omitempty"`
	// Refused, when set, is why the team's adoption is refused; nothing is changed for it (not even
	// its state record) until the operator acts.
	Refused string `json:"refused,omitempty"`

	// What the plan was made from, for the applier: the desired team (nil for an orphan), the team's
	// record (nil for a new team) and W&B's group of that name (nil if W&B has none).
	Desired *team.Team    `json:"-"`
	Record  *state.Record `json:"-"`
	Group   *wandb.Group  `json:"-"`
}

// Changes reports whether the plan does anything at all (including state-only updates).
func (p TeamPlan) Changes() bool {
	if p.Refused != "" {
		return false
	}
	recorded := ""
	if p.Record != nil {
		recorded = p.Record.Conflict
	}
	return len(p.Steps) > 0 || recorded != p.Conflict
}

// Summary is the plan in words, for the human table.
func (p TeamPlan) Summary() string {
	if p.Conflict != "" {
		return "conflict: " + p.Conflict
	}
	if p.Refused != "" {
		return "refused: " + p.Refused
	}
	if len(p.Steps) == 0 {
		if p.Note != "" {
			return p.Note
		}
		return "no change"
	}
	parts := make([]string, 0, len(p.Steps)+len(p.Drift))
	for _, s := range p.Steps {
		parts = append(parts, p.describe(s))
	}
	for _, d := range p.Drift {
		parts = append(parts, "repair drift: "+d.String())
	}
	out := strings.Join(parts, ", ")
	if p.Note != "" {
		out += " (" + p.Note + ")"
	}
	return out
}

func (p TeamPlan) describe(s Step) string {
	switch s {
	case StepCreateKey:
		return "create KMS key"
	case StepEnsureBucket:
		return fmt.Sprintf("create/configure bucket %s", p.Storage.Bucket)
	case StepVerifyBucket:
		return "verify bucket"
	case StepCreateTeam:
		return "create W&B team"
	case StepAdoptTeam:
		return "adopt W&B team " + p.Group.ID + " (created by an earlier interrupted attempt)"
	case StepMarkInSync:
		return "mark in sync"
	case StepCheckDrift:
		return fmt.Sprintf("check bucket %s for drift", p.Storage.Bucket)
	case StepOrphan:
		return "mark orphaned (bucket and W&B team are kept)"
	case StepCheckAdoption:
		return fmt.Sprintf("adopt W&B team %s (made by hand): check bucket %s against W&B's requirements", p.Adopt.GroupID, p.Storage.Bucket)
	case StepTakeBucket:
		if p.Adopt.Repair {
			return "mark the bucket byob-agent's and repair what fails (adopt.repair)"
		}
		return "mark the bucket byob-agent's (ownership tags; no other setting is changed)"
	case StepRecordAdoption:
		return "record the team as adopted"
	case StepSyncMembers:
		if p.Members == nil || p.Members.empty() {
			return fmt.Sprintf("check members (%d wanted)", len(p.Desired.Members))
		}
		return "members: " + p.Members.String()
	}
	return string(s)
}

// Input is everything the planner looks at. It makes no calls.
type Input struct {
	Desired []team.Team
	Records []state.Record
	Groups  []wandb.Group // the teams W&B has now
	Now     time.Time
	// DriftInterval is how old a bucket's last verification may get before it is checked again; 0: never.
	DriftInterval time.Duration
	// RespectBackoff holds back teams whose last failure asked for a later retry (the daemon);
	// a sync started by hand retries at once.
	RespectBackoff bool
	// Registration says, per profile, whether a bucket must be marked registered before its team is created.
	Registration map[string]bool
	// SyncMembers turns on membership sync for teams whose source knows their members.
	SyncMembers bool
	// Authoritative says members the agent did not add may be removed too (members.mode).
	Authoritative bool
}

// Plan decides the steps for every desired or recorded team, sorted by team name.
func Plan(in Input) []TeamPlan {
	records := make(map[string]*state.Record, len(in.Records))
	for i := range in.Records {
		records[in.Records[i].Name] = &in.Records[i]
	}
	groups := make(map[string]*wandb.Group, len(in.Groups))
	for i := range in.Groups {
		groups[in.Groups[i].DisplayName] = &in.Groups[i]
	}
	plans := make([]TeamPlan, 0, len(in.Desired)+len(in.Records))
	desired := make(map[string]bool, len(in.Desired))
	for i := range in.Desired {
		t := &in.Desired[i]
		desired[t.Name] = true
		plans = append(plans, planTeam(in, t, records[t.Name], groups[t.Name]))
	}
	for _, r := range records {
		if desired[r.Name] {
			continue
		}
		p := TeamPlan{Team: r.Name, Profile: r.Profile, Status: r.Status(), Storage: r.Storage, Record: r}
		if !r.Orphaned {
			p.Steps = []Step{StepOrphan}
		}
		plans = append(plans, p)
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].Team < plans[j].Team })
	return plans
}

func planTeam(in Input, t *team.Team, r *state.Record, g *wandb.Group) TeamPlan {
	p := TeamPlan{Team: t.Name, Profile: t.Profile, Status: "new", Storage: t.Storage, Desired: t, Record: r, Group: g}
	if r != nil {
		p.Status = r.Status()
	}
	digest := t.Storage.Digest()
	if len(t.Claims) > 1 {
		if r != nil && r.Phase.Created() {
			p.Storage = r.Storage
		}
		p.Conflict = fmt.Sprintf("team %q is claimed by %s: a team comes from one source; change the group rules "+
			"(or the teams list) so that only one of them gives this name", t.Name, strings.Join(t.Claims, " and "))
		return p
	}
	if t.Adopt != nil && planAdoption(in, t, r, g, &p) {
		return p
	}

	if r != nil && r.Phase.Created() {
		// The team exists: its storage is frozen, only bucket settings may be repaired.
		p.Storage = r.Storage
		switch {
		case r.StorageDigest != digest:
			p.Conflict = fmt.Sprintf("the W&B team was created with storage %s, but the configuration now gives %s; "+
				"W&B cannot change a team's storage: restore the old storage settings for this team, or use a new team name",
				describeStorage(r.Storage), describeStorage(t.Storage))
		case g == nil:
			p.Conflict = fmt.Sprintf("the state records W&B team %q (id %s), but W&B has no team of that name; "+
				"check the W&B organisation and URL in the configuration", t.Name, r.GroupID)
		case g.ID != r.GroupID:
			p.Conflict = fmt.Sprintf("W&B's team %q has id %s, but byob-agent created id %s; check who replaced it", t.Name, g.ID, r.GroupID)
		case r.Phase == state.PhaseTeamCreated:
			p.Steps = []Step{StepMarkInSync}
		case in.DriftInterval > 0 && in.Now.Sub(r.LastVerified) >= in.DriftInterval:
			p.Steps = []Step{StepCheckDrift}
		case r.Orphaned:
			p.Steps = []Step{StepMarkInSync} // desired again
		}
		if p.Conflict == "" && in.SyncMembers && t.ManageMembers && membersChanged(t, r, g) {
			p.Steps = append(p.Steps, StepSyncMembers)
			p.Members = memberChanges(t, r, g, in.Authoritative)
		}
		return p
	}

	if g != nil {
		if r != nil && r.Intent != nil && r.Intent.Op == state.OpCreateTeam {
			// Our POST reached W&B but its answer never reached us.
			p.Storage = r.Storage
			p.Steps = []Step{StepAdoptTeam, StepMarkInSync}
			return p
		}
		p.Conflict = ForeignTeam(t.Name, g.ID)
		return p
	}

	if backingOff(in, r, &p) {
		return p
	}

	phase := state.PhaseDesired
	keyKnown := false
	if r != nil {
		phase = r.Phase
		keyKnown = r.KMSKeyARN != ""
		if r.StorageDigest != "" && r.StorageDigest != digest {
			keyKnown = false
			// Not yet frozen: start over with the new storage. A bucket made for the old spec stays
			// (the agent never deletes buckets); say so.
			phase = state.PhaseDesired
			p.Note = fmt.Sprintf("storage changed before the team was created; the earlier bucket %s is left in place", r.Storage.Bucket)
		}
	}
	if t.Storage.CreateKMSKey && !keyKnown {
		p.Steps = append(p.Steps, StepCreateKey)
	}
	if phase == state.PhaseDesired {
		p.Steps = append(p.Steps, StepEnsureBucket, StepVerifyBucket)
	}
	if in.Registration[t.Profile] && (r == nil || !r.Registered) {
		// W&B refuses a bucket its instance does not list: stop at a ready bucket and say what to do.
		p.Waiting = true
		p.Note = fmt.Sprintf("then wait: register bucket %s with W&B (GORILLA_SUPPORTED_FILE_STORES, see `byob-agent file-stores`), then run `byob-agent state mark-registered %s`", t.Storage.Bucket, t.Name)
		return p
	}
	p.Steps = append(p.Steps, StepCreateTeam, StepMarkInSync)
	if in.SyncMembers && t.ManageMembers {
		p.Steps = append(p.Steps, StepSyncMembers)
		p.Members = memberChanges(t, nil, nil, in.Authoritative)
	}
	return p
}

// backingOff holds a team back whose last failure asked for a later retry (in the daemon).
func backingOff(in Input, r *state.Record, p *TeamPlan) bool {
	if !in.RespectBackoff || r == nil || !r.NextRetry.After(in.Now) {
		return false
	}
	p.Waiting, p.RetryAt = true, r.NextRetry
	p.Note = fmt.Sprintf("waiting until %s to retry after: %s", r.NextRetry.UTC().Format(time.RFC3339), r.LastError)
	return true
}

// ForeignTeam is the conflict of a desired team whose name W&B already gives to a team (id) that
// byob-agent cannot prove it created. GET never shows a team's storage
// (https://docs.wandb.ai/platform/hosting/iam/scim), so taking it over would leave the team on
// unknown storage that can never be changed.
func ForeignTeam(name, id string) string {
	return fmt.Sprintf("W&B already has a team named %q (id %s) that byob-agent did not create; "+
		"its storage is unknown and cannot be changed: check who created it in W&B, then rename the team in the configuration, "+
		"or remove it from the configuration", name, id)
}

// membersChanged reports whether the source's members or W&B's differ from what the last sync left.
// Only then is anything looked up: a converged team costs no call.
func membersChanged(t *team.Team, r *state.Record, g *wandb.Group) bool {
	current := make([]string, len(g.Members))
	for i, m := range g.Members {
		current[i] = m.Value
	}
	return !sameSet(t.Members, r.MemberEmails) || !sameSet(current, r.MemberIDs) || !maps.Equal(WantedRoles(t, r), r.MemberRoles)
}

// WantedRoles are the roles the agent should have set once members are synced: the role rules' roles of
// the members it could resolve (an email W&B does not know gets no role).
func WantedRoles(t *team.Team, r *state.Record) map[string]string {
	var out map[string]string
	for email, role := range t.Roles {
		// member is W&B's default role: the agent only records the other roles it set.
		if id, known := r.MemberUsers[email]; known && !Protected(r, id) && role != team.RoleMember && slices.Contains(t.Members, email) {
			if out == nil {
				out = map[string]string{}
			}
			out[email] = role
		}
	}
	return out
}

// MemberChanges is what a members sync is expected to do, by email where the state knows a user's email
// (else by W&B user id). The applier looks users up again; this is the plan's account of it.
type MemberChanges struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
	// Roles are role changes as "email: role".
	Roles []string `json:"roles,omitempty"`
}

func (m *MemberChanges) empty() bool { return len(m.Add)+len(m.Remove)+len(m.Roles) == 0 }

func (m *MemberChanges) String() string {
	var parts []string
	for _, l := range []struct {
		verb string
		list []string
	}{{"add", m.Add}, {"remove", m.Remove}, {"set role", m.Roles}} {
		if len(l.list) > 0 {
			parts = append(parts, l.verb+" "+abbreviate(l.list, 5))
		}
	}
	return strings.Join(parts, "; ")
}

// abbreviate lists at most n items, then how many more there are.
func abbreviate(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(list[:n], ", "), len(list)-n)
}

// Removable says whether the agent may remove user id from a team: a member it added, or in
// authoritative mode anyone but the members W&B put in at creation (its org service accounts).
func Removable(r *state.Record, id string, authoritative bool) bool {
	if Protected(r, id) {
		return false
	}
	return slices.Contains(r.MembersAdded, id) || authoritative
}

// Protected says whether user id is a member W&B put in the team when it was created: W&B adds every
// organisation service account to a new team and documents member operations for users only
// (https://docs.wandb.ai/platform/hosting/iam/scim), so membership sync never adds, removes or
// re-roles one, in any mode.
func Protected(r *state.Record, id string) bool {
	return slices.Contains(r.InitialMemberIDs, id)
}

// memberChanges works out a members sync from the state alone; r and g are nil for a team not created yet.
func memberChanges(t *team.Team, r *state.Record, g *wandb.Group, authoritative bool) *MemberChanges {
	if r == nil {
		r = &state.Record{}
	}
	current := map[string]bool{}
	if g != nil {
		for _, m := range g.Members {
			current[m.Value] = true
		}
	}
	emailOf := make(map[string]string, len(r.MemberUsers))
	for email, id := range r.MemberUsers {
		emailOf[id] = email
	}
	m := &MemberChanges{}
	for _, email := range t.Members {
		if id, ok := r.MemberUsers[email]; !ok || !current[id] && !Protected(r, id) {
			m.Add = append(m.Add, email)
		}
	}
	for id := range current {
		email, known := emailOf[id]
		if known && slices.Contains(t.Members, email) || !Removable(r, id, authoritative) {
			continue
		}
		if !known {
			email = "W&B user " + id
		}
		m.Remove = append(m.Remove, email)
	}
	for _, email := range t.Members {
		if id, ok := r.MemberUsers[email]; ok && Protected(r, id) {
			continue // a service account: never re-roled
		}
		want, had := t.Roles[email], r.MemberRoles[email]
		if want == team.RoleMember {
			want = ""
		}
		switch {
		case want != "" && want != had:
			m.Roles = append(m.Roles, email+": "+want)
		case want == "" && had != "":
			m.Roles = append(m.Roles, email+": "+team.RoleMember)
		}
	}
	slices.Sort(m.Add)
	slices.Sort(m.Remove)
	slices.Sort(m.Roles)
	return m
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	as, bs := slices.Clone(a), slices.Clone(b)
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
}

func describeStorage(s team.Storage) string {
	out := s.Provider + " bucket " + s.Bucket
	if s.Path != "" {
		out += " path " + s.Path
	}
	if s.Region != "" {
		out += " region " + s.Region
	}
	if s.Endpoint != "" {
		out += " endpoint " + s.Endpoint
	}
	switch {
	case s.KMSKeyARN != "":
		out += " key " + s.KMSKeyARN
	case s.CreateKMSKey:
		out += " key created per team"
	}
	if s.AWSExternalID != "" {
		out += " external id " + s.AWSExternalID
	}
	return out
}
