package s3bucket

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/retry"
)

// Ensure creates the bucket if absent and applies W&B's recipe, writing only what differs. For a shared
// bucket every team's Ensure finds the same settings: only the first one writes.
func (f *Factory) Ensure(ctx context.Context, b bucketfactory.Bucket, opts bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	c, err := f.bucketClient(b)
	if err != nil {
		return nil, err
	}
	e := &ensurer{f: f, c: c, b: b, name: b.Storage.Bucket}
	if err := e.ensureExistsAndOwned(ctx, opts); err != nil {
		return e.changes, err
	}
	for _, step := range recipe {
		if !step.appliesTo(f, b) {
			continue
		}
		if err := retryNoSuchBucket(ctx, func() error { return step.ensure(e, ctx) }); err != nil {
			return e.changes, err
		}
	}
	return e.changes, nil
}

// newBucketGrace bounds how long a bucket that was just seen may still be reported missing. S3 documents
// bucket creation as eventually consistent, and SeaweedFS shows it too: right after CreateBucket some
// bucket APIs answer NoSuchBucket for a moment.
const newBucketGrace = 10 * time.Second

// retryNoSuchBucket runs fn until it stops failing with NoSuchBucket or the grace runs out. Every
// recipe step reads before it writes, so running one again is safe.
func retryNoSuchBucket(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(newBucketGrace)
	policy := retry.Policy{Base: 50 * time.Millisecond, Max: time.Second} // no jitter: one caller, one bucket
	for attempt := 1; ; attempt++ {
		err := fn()
		wait := policy.Backoff(attempt)
		if apiCode(err) != "NoSuchBucket" || time.Now().Add(wait).After(deadline) {
			return err
		}
		if retry.Wait(ctx, wait) != nil {
			return err
		}
	}
}

// ensurer carries one Ensure call.
type ensurer struct {
	f       *Factory
	c       *s3.Client
	b       bucketfactory.Bucket
	name    string
	changes []bucketfactory.Change
}

func (e *ensurer) changed(setting, format string, args ...any) {
	e.changes = append(e.changes, bucketfactory.Change{Setting: setting, Detail: fmt.Sprintf(format, args...)})
}

func (e *ensurer) ownershipError(format string, args ...any) error {
	return &bucketfactory.OwnershipError{Bucket: e.name, Reason: fmt.Sprintf(format, args...)}
}

// ensureExistsAndOwned creates the bucket, or checks that the existing one is the team's (or, shared,
// the profile's), and makes its ownership tags right.
func (e *ensurer) ensureExistsAndOwned(ctx context.Context, opts bucketfactory.EnsureOptions) error {
	exists, err := bucketExists(ctx, e.c, e.name)
	if err != nil {
		return err
	}
	owner := describeOwner(e.b)
	if !exists {
		created, err := e.create(ctx)
		if err != nil {
			return err
		}
		if created { // tag first, so that a crash right after leaves a bucket recognisably ours
			return e.putTags(ctx, ownershipTags(e.b.Owner()), "tagged new bucket for %s", owner)
		}
	}
	tags, err := getTags(ctx, e.c, e.name)
	if err != nil {
		return err
	}
	key, value := e.b.Owner()
	adopting := false
	switch foreign := foreignMark(tags, e.b); {
	case foreign != "":
		return e.ownershipError("it is %s", foreign)
	case tags[key] == value:
	case !opts.AdoptUntagged:
		return e.ownershipError("it exists without the %s tag and adopting untagged buckets is off", key)
	default:
		adopting = true
	}
	want := maps.Clone(tags)
	maps.Copy(want, ownershipTags(key, value))
	if maps.Equal(tags, want) {
		return nil
	}
	if adopting {
		return e.putTags(ctx, want, "adopted untagged bucket for %s", owner)
	}
	return e.putTags(ctx, want, "restored ownership tags for %s", owner)
}

// foreignMark says how the tags mark the bucket for someone other than b's owner ("tagged for team
// \"x\"", "tagged as the shared bucket of profile \"p\""), or "" when they mark it for b's owner or no one.
func foreignMark(tags map[string]string, b bucketfactory.Bucket) string {
	key, value := b.Owner()
	for _, k := range []string{bucketfactory.TagTeam, bucketfactory.TagShared} {
		v := tags[k]
		if v == "" || (k == key && v == value) {
			continue
		}
		if k == bucketfactory.TagTeam {
			return fmt.Sprintf("tagged for team %q", v)
		}
		return fmt.Sprintf("tagged as the shared bucket of profile %q", v)
	}
	return ""
}

// describeOwner names the bucket's rightful owner for messages.
func describeOwner(b bucketfactory.Bucket) string {
	if b.Shared {
		return fmt.Sprintf("the teams of profile %q (shared)", b.Profile)
	}
	return fmt.Sprintf("team %q", b.Team)
}

// bucketExists tells whether the bucket exists and may be ours. A 403 means another account owns it
// (or these credentials may not even look at it): either way it is not ours to use.
func bucketExists(ctx context.Context, c *s3.Client, name string) (bool, error) {
	_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)})
	switch httpStatus(err) {
	case 0:
		if err != nil {
			return false, fmt.Errorf("check whether bucket %q exists: %w", name, err)
		}
		return true, nil
	case http.StatusNotFound:
		return false, nil
	case http.StatusForbidden:
		return false, &bucketfactory.OwnershipError{Bucket: name, Reason: "access to it is denied: another account owns it, or these credentials may not list it"}
	default:
		return false, fmt.Errorf("check whether bucket %q exists: %w", name, err)
	}
}

// create creates the bucket. created is false when it turned out to exist already and be ours (an
// earlier attempt, or a concurrent one, created it).
func (e *ensurer) create(ctx context.Context) (created bool, err error) {
	region := e.c.Options().Region
	in := &s3.CreateBucketInput{Bucket: aws.String(e.name)}
	if region != "us-east-1" { // us-east-1 is S3's default and refuses to be named
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err = e.c.CreateBucket(ctx, in)
	switch apiCode(err) {
	case "":
		if err != nil {
			return false, fmt.Errorf("create bucket %q: %w", e.name, err)
		}
		e.changed("create", "created bucket %q in %s", e.name, region)
		return true, nil
	case "BucketAlreadyOwnedByYou":
		return false, nil
	case "BucketAlreadyExists":
		return false, e.ownershipError("the name is taken by another account")
	default:
		return false, fmt.Errorf("create bucket %q: %w", e.name, err)
	}
}

// ownershipTags are the tags the agent puts on what it owns: managed-by and the owner mark (key, value).
func ownershipTags(key, value string) map[string]string {
	return map[string]string{bucketfactory.TagManagedBy: bucketfactory.TagManagedByValue, key: value}
}

// getTags returns the bucket's tags; a bucket without any has none.
func getTags(ctx context.Context, c *s3.Client, name string) (map[string]string, error) {
	out, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(name)})
	if apiCode(err) == "NoSuchTagSet" {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get tags of bucket %q: %w", name, err)
	}
	tags := make(map[string]string, len(out.TagSet))
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}

func (e *ensurer) putTags(ctx context.Context, tags map[string]string, format string, args ...any) error {
	set := make([]types.Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		set = append(set, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	if _, err := e.c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(e.name), Tagging: &types.Tagging{TagSet: set}}); err != nil {
		return fmt.Errorf("put tags on bucket %q: %w", e.name, err)
	}
	e.changed("tags", format, args...)
	return nil
}

func (e *ensurer) ensureOwnershipControls(ctx context.Context) error {
	got, err := getOwnershipControls(ctx, e.c, e.name)
	if err != nil || got == types.ObjectOwnershipBucketOwnerPreferred {
		return err
	}
	if _, err := e.c.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{
		Bucket: aws.String(e.name),
		OwnershipControls: &types.OwnershipControls{Rules: []types.OwnershipControlsRule{
			{ObjectOwnership: types.ObjectOwnershipBucketOwnerPreferred},
		}},
	}); err != nil {
		return fmt.Errorf("put ownership controls on bucket %q: %w", e.name, err)
	}
	e.changed("ownership-controls", "object ownership %s (was %s)", types.ObjectOwnershipBucketOwnerPreferred, orNone(string(got)))
	return nil
}

// getOwnershipControls returns the bucket's object ownership setting, "" when it has none (or several).
// S3 (for buckets made since April 2023) and SeaweedFS report BucketOwnerEnforced for a bucket that never
// had the setting, rather than OwnershipControlsNotFoundError; both cases end in a write.
func getOwnershipControls(ctx context.Context, c *s3.Client, name string) (types.ObjectOwnership, error) {
	out, err := c.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: aws.String(name)})
	if apiCode(err) == "OwnershipControlsNotFoundError" {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get ownership controls of bucket %q: %w", name, err)
	}
	if out.OwnershipControls == nil || len(out.OwnershipControls.Rules) != 1 {
		return "", nil
	}
	return out.OwnershipControls.Rules[0].ObjectOwnership, nil
}

func (e *ensurer) ensurePublicAccessBlock(ctx context.Context) error {
	got, err := getPublicAccessBlock(ctx, e.c, e.name)
	if err != nil || allBlocked(got) {
		return err
	}
	if _, err := e.c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{
		Bucket: aws.String(e.name),
		PublicAccessBlockConfiguration: &types.PublicAccessBlockConfiguration{
			BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true),
			BlockPublicPolicy: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true),
		},
	}); err != nil {
		return fmt.Errorf("put public access block on bucket %q: %w", e.name, err)
	}
	e.changed("public-access-block", "all four flags on (was %s)", describePublicAccessBlock(got))
	return nil
}

// getPublicAccessBlock returns the bucket's public access block, nil when it has none.
func getPublicAccessBlock(ctx context.Context, c *s3.Client, name string) (*types.PublicAccessBlockConfiguration, error) {
	out, err := c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(name)})
	if apiCode(err) == "NoSuchPublicAccessBlockConfiguration" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get public access block of bucket %q: %w", name, err)
	}
	return out.PublicAccessBlockConfiguration, nil
}

func allBlocked(p *types.PublicAccessBlockConfiguration) bool {
	return p != nil && aws.ToBool(p.BlockPublicAcls) && aws.ToBool(p.IgnorePublicAcls) &&
		aws.ToBool(p.BlockPublicPolicy) && aws.ToBool(p.RestrictPublicBuckets)
}

func describePublicAccessBlock(p *types.PublicAccessBlockConfiguration) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("BlockPublicAcls=%t IgnorePublicAcls=%t BlockPublicPolicy=%t RestrictPublicBuckets=%t",
		aws.ToBool(p.BlockPublicAcls), aws.ToBool(p.IgnorePublicAcls), aws.ToBool(p.BlockPublicPolicy), aws.ToBool(p.RestrictPublicBuckets))
}

// ensureEncryption sets SSE-KMS default encryption with the team's key; without a key (s3-compatible
// only) the bucket's encryption is left alone.
func (e *ensurer) ensureEncryption(ctx context.Context) error {
	if e.b.KMSKeyARN == "" {
		return nil
	}
	got, err := getEncryption(ctx, e.c, e.name)
	if err != nil || got.matches(e.b.KMSKeyARN) {
		return err
	}
	if _, err := e.c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{
		Bucket: aws.String(e.name),
		ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{
				SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(e.b.KMSKeyARN),
			},
			// Bucket keys cut KMS requests (and their cost and throttling) for W&B's many small objects.
			BucketKeyEnabled: aws.Bool(true),
		}}},
	}); err != nil {
		return fmt.Errorf("put default encryption on bucket %q: %w", e.name, err)
	}
	e.changed("encryption", "SSE-KMS with key %s (was %s)", e.b.KMSKeyARN, got)
	return nil
}

// encryption is a bucket's default encryption as far as W&B cares.
type encryption struct {
	algorithm types.ServerSideEncryption // "" when none is configured
	keyID     string
	bucketKey bool
}

func (x encryption) matches(keyARN string) bool {
	return x.algorithm == types.ServerSideEncryptionAwsKms && x.keyID == keyARN && x.bucketKey
}

func (x encryption) String() string {
	if x.algorithm == "" {
		return "none"
	}
	s := string(x.algorithm)
	if x.keyID != "" {
		s += " with key " + x.keyID
	}
	return fmt.Sprintf("%s, bucket key %t", s, x.bucketKey)
}

func getEncryption(ctx context.Context, c *s3.Client, name string) (encryption, error) {
	out, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(name)})
	if apiCode(err) == "ServerSideEncryptionConfigurationNotFoundError" {
		return encryption{}, nil
	}
	if err != nil {
		return encryption{}, fmt.Errorf("get default encryption of bucket %q: %w", name, err)
	}
	if out.ServerSideEncryptionConfiguration == nil || len(out.ServerSideEncryptionConfiguration.Rules) == 0 {
		return encryption{}, nil
	}
	r := out.ServerSideEncryptionConfiguration.Rules[0]
	x := encryption{bucketKey: aws.ToBool(r.BucketKeyEnabled)}
	if d := r.ApplyServerSideEncryptionByDefault; d != nil {
		x.algorithm, x.keyID = d.SSEAlgorithm, aws.ToString(d.KMSMasterKeyID)
	}
	return x, nil
}

func (e *ensurer) ensureCORS(ctx context.Context) error {
	rules, err := getCORSRules(ctx, e.c, e.name)
	if err != nil {
		return err
	}
	merged, changed := mergeCORSRules(rules)
	if !changed {
		return nil
	}
	if _, err := e.c.PutBucketCors(ctx, &s3.PutBucketCorsInput{
		Bucket: aws.String(e.name), CORSConfiguration: &types.CORSConfiguration{CORSRules: merged},
	}); err != nil {
		return fmt.Errorf("put CORS on bucket %q: %w", e.name, err)
	}
	e.changed("cors", "added W&B's rule (%s), kept %d other rule(s)", describeCORSRule(wandbCORSRule()), len(merged)-1)
	return nil
}

func getCORSRules(ctx context.Context, c *s3.Client, name string) ([]types.CORSRule, error) {
	out, err := c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String(name)})
	if apiCode(err) == "NoSuchCORSConfiguration" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get CORS of bucket %q: %w", name, err)
	}
	return out.CORSRules, nil
}

func (e *ensurer) ensurePolicy(ctx context.Context) error {
	doc, err := getPolicy(ctx, e.c, e.name)
	if err != nil {
		return err
	}
	grants := e.f.bucketGrants(e.name)
	want := make([]statement, len(grants))
	granted := make([]string, len(grants))
	for i, g := range grants {
		want[i] = g.stmt
		granted[i] = fmt.Sprintf("statement %s grants %s", g.stmt["Sid"], g.what)
	}
	merged, changed, err := mergeStatements(doc, want)
	if err != nil {
		return fmt.Errorf("merge W&B's statements into the policy of bucket %q: %w", e.name, err)
	}
	if !changed {
		return nil
	}
	if _, err := e.c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(e.name), Policy: aws.String(merged)}); err != nil {
		return fmt.Errorf("put policy on bucket %q: %w", e.name, err)
	}
	e.changed("policy", "%s", strings.Join(granted, "; "))
	return nil
}

// getPolicy returns the bucket's policy document, "" when it has none. S3 re-serialises a stored policy and
// SeaweedFS returns it verbatim plus a trailing newline, so it is only ever compared structurally.
func getPolicy(ctx context.Context, c *s3.Client, name string) (string, error) {
	out, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(name)})
	if apiCode(err) == "NoSuchBucketPolicy" {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get policy of bucket %q: %w", name, err)
	}
	return aws.ToString(out.Policy), nil
}
