package plan

import (
	"fmt"

	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

// Adoption is what the plan knows of a team it takes over.
type Adoption struct {
	GroupID string `json:"groupId"`          // the W&B team made by hand
	Repair  bool   `json:"repair,omitempty"` // the operator lets the agent repair the bucket's settings
}

// Refusal is the message of a refused adoption: the team, what is wrong and what to do.
func Refusal(name, why, fix string) string {
	return fmt.Sprintf("adopting team %q refused, nothing was changed: %s; fix: %s", name, why, fix)
}

// UnknownTeam is the refusal of adopting a team W&B does not have.
func UnknownTeam(name string) string {
	return Refusal(name, fmt.Sprintf("W&B has no team named %q; adoption takes over a team W&B already has and never creates one", name),
		"correct the name (`byob-agent import` lists the W&B teams byob-agent does not manage), or remove `adopt` to have byob-agent create the team with a new bucket")
}

// planAdoption plans a team marked for adoption. It returns false when the team is already managed
// since its adoption: from then on it is planned as any team the agent manages.
func planAdoption(in Input, t *team.Team, r *state.Record, g *wandb.Group, p *TeamPlan) bool {
	refuse := func(why, fix string) bool {
		p.Refused = Refusal(t.Name, why, fix)
		return true
	}
	switch {
	case r != nil && r.Phase.Created() && r.Provenance == state.ProvenanceAdopted:
		return false
	case r != nil && r.Phase.Created():
		p.Storage = r.Storage
		return refuse(fmt.Sprintf("byob-agent already manages it: it created W&B team id %s with %s", r.GroupID, describeStorage(r.Storage)),
			"remove `adopt` from the team's entry")
	case r != nil && r.Intent != nil && r.Intent.Op == state.OpCreateTeam:
		return refuse("byob-agent was creating this team itself when an earlier run stopped, so a W&B team of this name may be its own",
			"remove `adopt` from the team's entry; the next sync finishes the create")
	case g == nil:
		p.Refused = UnknownTeam(t.Name)
		return true
	}
	if other := bucketHolder(in.Records, t); other != nil {
		return refuse(fmt.Sprintf("bucket %s is already team %q's in the state", bucketPath(t.Storage), other.Name),
			"state the bucket and path this team was created with")
	}
	if backingOff(in, r, p) {
		return true
	}
	p.Adopt = &Adoption{GroupID: g.ID, Repair: t.Adopt.Repair}
	p.Steps = []Step{StepCheckAdoption, StepTakeBucket, StepVerifyBucket, StepRecordAdoption, StepMarkInSync}
	if in.SyncMembers && t.ManageMembers {
		// The members the team has now are recorded as there from the start (record_adoption):
		// protected, as the service accounts W&B put in a team it creates.
		initial := &state.Record{}
		for _, m := range g.Members {
			initial.InitialMemberIDs = append(initial.InitialMemberIDs, m.Value)
		}
		p.Steps = append(p.Steps, StepSyncMembers)
		p.Members = memberChanges(t, initial, g, in.Authoritative)
	}
	return true
}

// bucketHolder is another team whose recorded storage is the stated bucket (and, in a shared bucket,
// the same path): adopting onto it would give two W&B teams one place.
func bucketHolder(records []state.Record, t *team.Team) *state.Record {
	for i := range records {
		r := &records[i]
		if r.Name == t.Name || r.Storage.Bucket == "" || r.Storage.BucketID() != t.Storage.BucketID() {
			continue
		}
		if !r.Storage.Shared || !t.Storage.Shared || r.Storage.Path == t.Storage.Path {
			return r
		}
	}
	return nil
}

func bucketPath(s team.Storage) string {
	if s.Path == "" {
		return s.Bucket
	}
	return s.Bucket + "/" + s.Path
}
