package s3bucket

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
)

// Check reads every setting of W&B's recipe back and reports each, passed or failed; with o.Probe it
// also writes, reads and deletes a probe object under the team's path. The probe matters: S3 and
// SeaweedFS accept a default-encryption key they cannot use, and only a write fails (on SeaweedFS with
// a bare 500 InternalError, on S3 with a KMS error).
func (f *Factory) Check(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.CheckOptions) ([]bucketfactory.CheckResult, error) {
	c, err := f.bucketClient(b)
	if err != nil {
		return nil, err
	}
	ch := &checker{f: f, c: c, b: b, name: b.Storage.Bucket}
	exists, err := bucketExists(ctx, c, ch.name)
	if err != nil {
		return nil, err
	}
	expected := "bucket " + ch.name + " to exist"
	if !exists {
		ch.Report("exists", false, expected, "no such bucket", "byob-agent sync creates it")
		return ch.List, nil
	}
	ch.Report("exists", true, expected, "it exists", "")
	var checks []func(*checker, context.Context) error
	// A shared bucket whose settings passed moments ago: its existence (some servers, SeaweedFS among
	// them, create a missing bucket on a write) and the team's probe only.
	if !(o.Probe && o.SettingsVerified && b.Shared) {
		checks = append(checks, (*checker).checkOwnership)
		for _, step := range recipe {
			if step.appliesTo(f, b) {
				checks = append(checks, step.check)
			}
		}
	}
	if o.Probe {
		checks = append(checks, (*checker).probe)
	}
	for _, check := range checks {
		if err := check(ch, ctx); err != nil {
			return nil, err
		}
	}
	return ch.List, nil
}

// checker carries one Check call. A check returns an error only when it could not run; what it found
// is a result.
type checker struct {
	f    *Factory
	c    *s3.Client
	b    bucketfactory.Bucket
	name string
	bucketfactory.Results
}

func (c *checker) checkOwnership(ctx context.Context) error {
	tags, err := getTags(ctx, c.c, c.name)
	if err != nil {
		return err
	}
	key, value := c.b.Owner()
	want := ownershipTags(key, value)
	expected := "tags " + describeTags(want)
	found := describeTags(ownershipTagsOf(tags))
	owner := describeOwner(c.b)
	switch foreign := foreignMark(tags, c.b); {
	case foreign != "":
		c.FailForeign("ownership", expected, found, fmt.Sprintf(
			"bucket %s is %s: give %s another bucket, or correct the tags if they are wrong", c.name, foreign, owner))
	case tags[key] != value:
		c.Report("ownership", false, expected, found, fmt.Sprintf(
			"if bucket %s is meant for %s, tag it %s=%s or let the profile adopt existing buckets; byob-agent sync then adds the other tag", c.name, owner, key, value))
	case tags[bucketfactory.TagManagedBy] != bucketfactory.TagManagedByValue:
		c.Report("ownership", false, expected, found, fmt.Sprintf(
			"byob-agent sync restores the tag %s=%s", bucketfactory.TagManagedBy, bucketfactory.TagManagedByValue))
	default:
		c.Report("ownership", true, expected, found, "")
	}
	return nil
}

// ownershipTagsOf picks the tags that say who owns a bucket.
func ownershipTagsOf(tags map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{bucketfactory.TagManagedBy, bucketfactory.TagTeam, bucketfactory.TagShared} {
		if v, ok := tags[k]; ok {
			out[k] = v
		}
	}
	return out
}

func describeTags(tags map[string]string) string {
	if len(tags) == 0 {
		return "no ownership tags"
	}
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ", ")
}

func (c *checker) checkOwnershipControls(ctx context.Context) error {
	got, err := getOwnershipControls(ctx, c.c, c.name)
	if err != nil {
		return err
	}
	want := types.ObjectOwnershipBucketOwnerPreferred
	c.Report("ownership-controls", got == want, "object ownership "+string(want), orNone(string(got)),
		fmt.Sprintf("set object ownership of bucket %s to %s; byob-agent sync repairs it", c.name, want))
	return nil
}

func (c *checker) checkPublicAccessBlock(ctx context.Context) error {
	got, err := getPublicAccessBlock(ctx, c.c, c.name)
	if err != nil {
		return err
	}
	c.Report("public-access-block", allBlocked(got), "all four flags true", describePublicAccessBlock(got),
		fmt.Sprintf("turn on BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets for bucket %s; byob-agent sync repairs it", c.name))
	return nil
}

func (c *checker) checkEncryption(ctx context.Context) error {
	got, err := getEncryption(ctx, c.c, c.name)
	if err != nil {
		return err
	}
	want := encryption{types.ServerSideEncryptionAwsKms, c.b.KMSKeyARN, true}
	c.Report("encryption", got.matches(c.b.KMSKeyARN), want.String(), got.String(),
		fmt.Sprintf("set the default encryption of bucket %s to SSE-KMS with key %s and bucket key on; byob-agent sync repairs it", c.name, c.b.KMSKeyARN))
	return nil
}

func (c *checker) checkCORS(ctx context.Context) error {
	rules, err := getCORSRules(ctx, c.c, c.name)
	if err != nil {
		return err
	}
	rule := describeCORSRule(wandbCORSRule())
	c.Report("cors", hasWandbCORSRule(rules), "a rule with "+rule, describeCORSRules(rules),
		fmt.Sprintf("add a CORS rule with %s to bucket %s; byob-agent sync adds it first and keeps the other rules", rule, c.name))
	return nil
}

func (c *checker) checkPolicy(ctx context.Context) error {
	doc, err := getPolicy(ctx, c.c, c.name)
	if err != nil {
		return err
	}
	var stmts []statement
	blocker, blockerFix := "", "" // what keeps the document from granting anything, and the fix for an unusable one
	if strings.TrimSpace(doc) == "" {
		blocker = "no bucket policy"
	} else if _, stmts, err = parsePolicy(doc); err != nil {
		blocker = err.Error()
		blockerFix = fmt.Sprintf("make the policy of bucket %s a JSON object with a Statement list (byob-agent sync cannot merge into it as it is), then run byob-agent sync", c.name)
	}
	for _, g := range c.f.bucketGrants(c.name) {
		found := blocker
		if found == "" {
			if missing := missingGrants(stmts, g.stmt); len(missing) > 0 {
				found = "not granted: " + strings.Join(missing, ", ")
			}
		}
		fix := blockerFix
		if fix == "" {
			fix = fmt.Sprintf("add this statement to the policy of bucket %s: %s; byob-agent sync adds it and keeps the other statements", c.name, mustMarshal(g.stmt))
		}
		c.Report(g.check, found == "", "policy granting "+g.what, cmp.Or(found, "all granted"), fix)
	}
	return nil
}

// probe writes, reads back, inspects and deletes a small object under the team's path as W&B would. Each
// step that fails is a failed "probe" result; when all succeed there is one passed result.
func (c *checker) probe(ctx context.Context) error {
	key, dir, body := bucketfactory.NewProbe(c.b)
	where := fmt.Sprintf("s3://%s/%s", c.name, key)
	prefix := fmt.Sprintf("s3://%s/%s/*", c.name, dir)
	expected := "write, read back and delete of a probe object under " + prefix
	if c.b.KMSKeyARN != "" {
		expected += ", encrypted with key " + c.b.KMSKeyARN
	}
	failed := len(c.List)
	fail := func(expected, found, fix string) { c.Report("probe", false, expected, found, fix) }
	defer func() {
		if len(c.List) == failed {
			c.Report("probe", true, expected, "all succeeded", "")
		}
	}()

	if _, err := c.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.name), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		fail("write of "+where+" to succeed", err.Error(), fmt.Sprintf(
			"give the agent's credentials s3:PutObject on %s; if the bucket's default encryption names a KMS key, that key must exist, be enabled and be usable by them", prefix))
		return nil
	}
	// Deleted even if a later step fails: the probe must not leave objects behind.
	defer func() {
		if _, err := c.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.name), Key: aws.String(key)}); err != nil {
			fail("delete of "+where+" to succeed", err.Error(), fmt.Sprintf(
				"give the agent's credentials s3:DeleteObject on %s, and delete the left-over %s", prefix, where))
		}
	}()
	got, err := c.readObject(ctx, key)
	switch {
	case err != nil:
		fail("read of "+where+" to succeed", err.Error(), fmt.Sprintf(
			"give the agent's credentials s3:GetObject on %s; if the bucket's default encryption names a KMS key, they must be allowed to decrypt with it", prefix))
	case !bytes.Equal(got, body):
		fail(fmt.Sprintf("read of %s to return the %d bytes written", where, len(body)), fmt.Sprintf("%d different bytes", len(got)),
			"find what rewrites objects between the agent and the storage server (a proxy, an object transformation): W&B needs them back unchanged")
	}
	if c.b.KMSKeyARN == "" {
		return nil
	}
	head, err := c.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.name), Key: aws.String(key)})
	if err != nil {
		fail("head of "+where+" to succeed", err.Error(), fmt.Sprintf("give the agent's credentials s3:GetObject on %s", prefix))
		return nil
	}
	// BucketKeyEnabled is not compared here: SeaweedFS does not report it on objects. The bucket's
	// encryption check covers it.
	if head.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != c.b.KMSKeyARN {
		fail("object encrypted with aws:kms and key "+c.b.KMSKeyARN,
			fmt.Sprintf("%s with key %s", orNone(string(head.ServerSideEncryption)), orNone(aws.ToString(head.SSEKMSKeyId))),
			fmt.Sprintf("find what overrides the default encryption of bucket %s (a bucket policy or proxy setting other SSE headers); byob-agent sync sets the default to SSE-KMS with key %s", c.name, c.b.KMSKeyARN))
	}
	return nil
}

func (c *checker) readObject(ctx context.Context, key string) ([]byte, error) {
	out, err := c.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.name), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}
