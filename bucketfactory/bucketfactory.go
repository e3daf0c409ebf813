// Package bucketfactory provides the interface every storage provider implements for the reconciler
// (Factory: make a team's bucket exactly as W&B requires, check it, and give the storage address W&B
// takes; KeyFactory: create a team's KMS key) and what the providers share: the ownership tags, the
// check results, the probe object and Verify. The implementations are its sub-packages: s3bucket (aws,
// coreweave, s3-compatible), gcsbucket (gcs) and azureblob (azure).
package bucketfactory

import (
	"context"
	"crypto/rand"
	"fmt"
	"path"
	"strings"

	"github.com/byob-agent/byob-agent/team"
)

// Ownership marks the agent puts on every bucket (as tags, labels or metadata) and KMS key it creates
// or adopts. A per-team bucket carries TagTeam; a shared bucket carries TagShared with the profile name.
const (
	TagManagedBy      = "managed-by"
	TagManagedByValue = "byob-agent"
	TagTeam           = "byob-agent-team"
	TagShared         = "byob-agent-shared"
)

// Bucket names one team's storage and everything needed to build it.
type Bucket struct {
	Team    string
	Profile string
	Storage team.Storage
	// KMSKeyARN is the resolved key (aws, coreweave): Storage.KMSKeyARN, or the key EnsureKey created.
	KMSKeyARN string
	// Shared says the bucket holds several teams' data, each under its own Storage.Path. Its ownership
	// mark is TagShared=Profile instead of TagTeam=Team, and bucket-wide settings serve all its teams.
	Shared bool
}

// Owner is the ownership mark the bucket must carry: key and value.
func (b Bucket) Owner() (key, value string) {
	if b.Shared {
		return TagShared, b.Profile
	}
	return TagTeam, b.Team
}

// EnsureOptions says how far Ensure may go in taking a bucket that already exists.
type EnsureOptions struct {
	// AdoptUntagged allows taking over an existing bucket in our account that carries no ownership
	// mark: set when the profile adopts existing buckets, or when the state holds an unfinished
	// create intent for this very bucket (the agent created it and crashed before marking it).
	AdoptUntagged bool
}

// Change is one setting Ensure changed.
type Change struct {
	Setting string // e.g. "cors", "policy", "encryption", "create"
	Detail  string // human summary, no secrets
}

func (c Change) String() string { return c.Setting + ": " + c.Detail }

// CheckResult is the outcome of one of W&B's requirements on one bucket.
type CheckResult struct {
	Check    string `json:"check"` // stable name: "exists", "ownership", "cors", "encryption", "policy", "soft-delete", "iam", "probe", ...
	OK       bool   `json:"ok"`
	Expected string `json:"expected,omitempty"`
	Found    string `json:"found,omitempty"`
	Fix      string `json:"fix,omitempty"` // for a failure: what to do, precisely (no secrets)
	// Foreign marks a failed ownership check of a bucket marked for another team or profile: not the
	// agent's to take for this team, whatever it is allowed to adopt.
	Foreign bool `json:"foreign,omitempty"`
}

func (r CheckResult) String() string {
	if r.OK {
		return r.Check + ": ok"
	}
	return fmt.Sprintf("%s: expected %s, found %s", r.Check, r.Expected, r.Found)
}

// Results collects the outcome of one Check call; each provider's checker embeds it.
type Results struct {
	List []CheckResult
}

// Report records one result; fix is kept only for a failure.
func (r *Results) Report(check string, ok bool, expected, found, fix string) {
	if ok {
		fix = ""
	}
	r.List = append(r.List, CheckResult{Check: check, OK: ok, Expected: expected, Found: found, Fix: fix})
}

// Pass records a check that found what it expected.
func (r *Results) Pass(check, expected string) { r.Report(check, true, expected, expected, "") }

// Fail records a failed check with what to do about it.
func (r *Results) Fail(check, expected, found, fix string) {
	r.Report(check, false, expected, found, fix)
}

// FailForeign records a failed ownership check of a bucket marked for someone else (CheckResult.Foreign).
func (r *Results) FailForeign(check, expected, found, fix string) {
	r.List = append(r.List, CheckResult{Check: check, Expected: expected, Found: found, Fix: fix, Foreign: true})
}

// Compare records a check that passes when found equals expected.
func (r *Results) Compare(check, expected, found, fix string) {
	r.Report(check, found == expected, expected, found, fix)
}

// CheckOptions tune Check.
type CheckOptions struct {
	// Probe writes, reads and deletes a small object under the team's path: the only proof that W&B
	// can really use the bucket (a default-encryption key that cannot be used fails only on a write).
	// Off, Check only reads, which is what a plan may do.
	Probe bool
	// SettingsVerified says a full check of this shared bucket passed moments ago, in the same run and
	// with no Ensure of it since: only that it still exists and what is the team's own (its probe, under
	// its path) need checking.
	// A provider that cannot tell the two apart checks everything; a bucket of one team always is.
	SettingsVerified bool
}

// VerifyError is returned by Verify when any check failed; it lists the failures.
type VerifyError struct {
	Bucket   string
	Failures []CheckResult
}

func (e *VerifyError) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.String()
	}
	return fmt.Sprintf("bucket %q does not meet W&B's requirements: %s", e.Bucket, strings.Join(parts, "; "))
}

// OwnershipError is returned when the bucket exists but is not the agent's to use (another account owns
// it, it is marked for another team or profile, or it is unmarked and adoption is off). Retrying does not help.
type OwnershipError struct {
	Bucket string
	Reason string
}

func (e *OwnershipError) Error() string {
	return fmt.Sprintf("bucket %q is not ours to use: %s", e.Bucket, e.Reason)
}

// Factory provisions and checks buckets of one storage profile. Implementations are safe for
// concurrent use by many teams at once (the reconciler never ensures one bucket twice at once).
type Factory interface {
	// Ensure creates the bucket if absent and applies every setting of W&B's recipe, writing only what
	// differs from what it reads. It returns the changes made; none when everything was already right.
	Ensure(ctx context.Context, b Bucket, opts EnsureOptions) ([]Change, error)
	// Check reads every setting W&B requires and reports each requirement, passed or failed. An error
	// means the checks could not run (network, permissions), not that the bucket is wrong.
	Check(ctx context.Context, b Bucket, o CheckOptions) ([]CheckResult, error)
	// Address is the bucket's storage address as W&B takes it (GORILLA_SUPPORTED_FILE_STORES, the team
	// settings page). It holds credentials: print it only where the operator asked for it.
	Address(ctx context.Context, b Bucket) (string, error)
}

// KeyFactory is implemented by providers that can create a customer KMS key per team (aws).
type KeyFactory interface {
	// EnsureKey returns the ARN of the team's KMS key, creating the key (with W&B's key policy, the
	// ownership tags and an alias) when it does not exist. recovering says a previous attempt may have
	// created the key and crashed before naming it: then keys tagged for the team are searched too.
	EnsureKey(ctx context.Context, teamName string, recovering bool) (arn string, created bool, err error)
}

// Verify runs every check including the probe and returns a *VerifyError listing the failures.
func Verify(ctx context.Context, f Factory, b Bucket) error {
	return verify(ctx, f, b, CheckOptions{Probe: true})
}

// VerifyTeamPath is Verify of a shared bucket whose settings passed Verify moments ago, in the same
// run (see CheckOptions.SettingsVerified): it proves the team's own path with the probe.
func VerifyTeamPath(ctx context.Context, f Factory, b Bucket) error {
	return verify(ctx, f, b, CheckOptions{Probe: true, SettingsVerified: true})
}

func verify(ctx context.Context, f Factory, b Bucket, o CheckOptions) error {
	results, err := f.Check(ctx, b, o)
	if err != nil {
		return err
	}
	var failed []CheckResult
	for _, r := range results {
		if !r.OK {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return &VerifyError{Bucket: b.Storage.Bucket, Failures: failed}
	}
	return nil
}

// ProbeDir is where checks write their probe objects, under the team's path.
const ProbeDir = ".byob-agent-probe"

// NewProbe returns a fresh probe object name under the team's path, the directory it is in, and the
// bytes to write.
func NewProbe(b Bucket) (name, dir string, body []byte) {
	dir = path.Join(b.Storage.Path, ProbeDir)
	name = path.Join(dir, rand.Text())
	return name, dir, []byte("byob-agent probe " + name)
}

// Validate checks, before any request, what every provider needs of b: the provider it is for, valid
// bucket, path and team names, and for a shared bucket the profile (its ownership mark) and a path.
func (b Bucket) Validate(provider string) error {
	st := b.Storage
	if st.Provider != provider {
		return fmt.Errorf("bucket %q is for provider %q, this factory serves %q", st.Bucket, st.Provider, provider)
	}
	if err := team.ValidateBucketName(st.Provider, st.Bucket); err != nil {
		return err
	}
	if err := team.ValidatePath(st.Path); err != nil {
		return err
	}
	if err := team.ValidateName(b.Team); err != nil {
		return err
	}
	if b.Shared && (b.Profile == "" || st.Path == "") {
		return fmt.Errorf("shared bucket %q needs the profile name (its ownership mark) and a path per team (team %q has path %q, profile %q)", st.Bucket, b.Team, st.Path, b.Profile)
	}
	return nil
}
