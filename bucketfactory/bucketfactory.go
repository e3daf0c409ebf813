// Package bucketfactory defines what every storage provider offers the reconciler: make a team's bucket
// exactly as W&B requires, prove it, and say what W&B must be told about it. One sub-package per provider.
package bucketfactory

import (
	"context"
	"fmt"
	"strings"

	"github.com/byob-agent/byob-agent/team"
)

// Ownership tags the agent puts on every bucket (and KMS key) it creates or adopts.
const (
	TagManagedBy      = "managed-by"
	TagManagedByValue = "byob-agent"
	TagTeam           = "byob-agent-team"
)

// Bucket names one team's bucket and everything needed to build it.
type Bucket struct {
	Team    string
	Storage team.Storage
	// KMSKeyARN is the resolved key: Storage.KMSKeyARN, or the key EnsureKey created for the team.
	KMSKeyARN string
}

// EnsureOptions says how far Ensure may go in taking a bucket that already exists.
type EnsureOptions struct {
	// AdoptUntagged allows taking over an existing bucket in our account that carries no ownership
	// tag: set when the profile adopts existing buckets, or when the state holds an unfinished
	// create intent for this very bucket (the agent created it and crashed before tagging it).
	AdoptUntagged bool
}

// Change is one setting Ensure changed.
type Change struct {
	Setting string // e.g. "cors", "policy", "encryption", "create"
	Detail  string // human summary, no secrets
}

func (c Change) String() string { return c.Setting + ": " + c.Detail }

// Finding is one check that failed during Verify.
type Finding struct {
	Check    string // e.g. "cors", "policy", "encryption", "public-access-block", "probe"
	Expected string
	Found    string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: expected %s, found %s", f.Check, f.Expected, f.Found)
}

// VerifyError is returned by Verify when any check failed; it lists them all.
type VerifyError struct {
	Bucket   string
	Findings []Finding
}

func (e *VerifyError) Error() string {
	parts := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		parts[i] = f.String()
	}
	return fmt.Sprintf("bucket %q does not meet W&B's requirements: %s", e.Bucket, strings.Join(parts, "; "))
}

// OwnershipError is returned when the bucket exists but is not the agent's to use (another account owns
// it, it is tagged for another team, or it is untagged and adoption is off). Retrying does not help.
type OwnershipError struct {
	Bucket string
	Reason string
}

func (e *OwnershipError) Error() string {
	return fmt.Sprintf("bucket %q is not ours to use: %s", e.Bucket, e.Reason)
}

// Factory provisions and checks buckets of one storage profile. Implementations are safe for
// concurrent use by many teams at once.
type Factory interface {
	// EnsureKey returns the ARN of the team's KMS key, creating the key (with W&B's key policy, the
	// ownership tags and an alias) when it does not exist. recovering says a previous attempt may have
	// created the key and crashed before naming it: then keys tagged for the team are searched too.
	EnsureKey(ctx context.Context, teamName string, recovering bool) (arn string, created bool, err error)
	// Ensure creates the bucket if absent and applies every setting of W&B's recipe, writing only what
	// differs from what it reads. It returns the changes made; none when everything was already right.
	Ensure(ctx context.Context, b Bucket, opts EnsureOptions) ([]Change, error)
	// Verify reads every setting back and writes, reads and deletes a probe object. It returns a
	// *VerifyError listing every failed check, or another error when the checks could not run.
	Verify(ctx context.Context, b Bucket) error
}
