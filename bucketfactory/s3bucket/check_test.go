package s3bucket

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// resultList summarises check results as "name ok" / "name FAIL", in order.
func resultList(results []bucketfactory.CheckResult) []string {
	out := make([]string, len(results))
	for i, r := range results {
		out[i] = r.Check + map[bool]string{true: " ok", false: " FAIL"}[r.OK]
	}
	return out
}

// checkResultShape asserts what every result must have: Expected and Found in words, and a Fix exactly
// for a failure.
func checkResultShape(t *testing.T, results []bucketfactory.CheckResult) {
	t.Helper()
	for _, r := range results {
		if r.Check == "" || r.Expected == "" || r.Found == "" || r.OK != (r.Fix == "") {
			t.Errorf("malformed result %#v: want a name, Expected, Found, and a Fix exactly when failed", r)
		}
	}
}

func TestCheckResults(t *testing.T) {
	env := s3Env(t)
	key := mustCreateKey(t, env)
	f := newTestFactory(t, env, team.ProviderAWS)
	missingKey := fmt.Sprintf("arn:aws:kms:%s:%s:key/00000000-0000-0000-0000-000000000000", env.Region, env.AccountID)
	awsChecks := []string{"exists", "ownership", "ownership-controls", "public-access-block", "encryption", "cors", "policy", "probe"}
	// allBut lists awsChecks, the named ones failing.
	allBut := func(failing ...string) []string {
		out := make([]string, len(awsChecks))
		for i, c := range awsChecks {
			out[i] = c + map[bool]string{true: " FAIL", false: " ok"}[slices.Contains(failing, c)]
		}
		return out
	}
	setTags := func(tags ...types.Tag) func(context.Context, *s3.Client, bucketfactory.Bucket) error {
		return func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
			_, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(b.Storage.Bucket), Tagging: &types.Tagging{TagSet: tags}})
			return err
		}
	}

	tests := []struct {
		name      string
		fresh     bool // a bucket that was never ensured (nor created)
		breakIt   func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error
		want      []string
		wantFirst func(b bucketfactory.Bucket) bucketfactory.CheckResult // the first failure exactly; nil: none
	}{
		{
			name: "everything right",
			want: allBut(),
		},
		{
			name:  "no bucket",
			fresh: true,
			want:  []string{"exists FAIL"},
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{Check: "exists", Expected: "bucket " + b.Storage.Bucket + " to exist", Found: "no such bucket", Fix: "byob-agent sync creates it"}
			},
		},
		{
			name: "CORS deleted",
			breakIt: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String(b.Storage.Bucket)})
				return err
			},
			want: allBut("cors"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				rule := describeCORSRule(wandbCORSRule())
				return bucketfactory.CheckResult{Check: "cors", Expected: "a rule with " + rule, Found: "no CORS rules",
					Fix: "add a CORS rule with " + rule + " to bucket " + b.Storage.Bucket + "; byob-agent sync adds it first and keeps the other rules"}
			},
		},
		{
			name: "policy lacks PutObject",
			breakIt: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				stmt := wandbBucketStatement("aws", b.Storage.Bucket, testPrincipal)
				stmt["Action"] = toAnySlice(slices.DeleteFunc(slices.Clone(wandbBucketActions), func(a string) bool { return a == "s3:PutObject" }))
				_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(b.Storage.Bucket), Policy: aws.String(newPolicy([]statement{stmt}))})
				return err
			},
			want: allBut("policy"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{
					Check:    "policy",
					Expected: "policy granting " + testPrincipal + " W&B's 11 actions on the bucket and its objects",
					Found:    fmt.Sprintf("not granted: s3:PutObject on arn:aws:s3:::%[1]s, s3:PutObject on arn:aws:s3:::%[1]s/*", b.Storage.Bucket),
					Fix: "add this statement to the policy of bucket " + b.Storage.Bucket + ": " + mustMarshal(wandbBucketStatement("aws", b.Storage.Bucket, testPrincipal)) +
						"; byob-agent sync adds it and keeps the other statements",
				}
			},
		},
		{
			name: "public access block deleted",
			breakIt: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: aws.String(b.Storage.Bucket)})
				return err
			},
			want: allBut("public-access-block"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{Check: "public-access-block", Expected: "all four flags true", Found: "none",
					Fix: "turn on BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets for bucket " + b.Storage.Bucket + "; byob-agent sync repairs it"}
			},
		},
		{
			// SeaweedFS, like S3 for buckets made since 2023, reports BucketOwnerEnforced when none is set.
			name: "ownership controls deleted",
			breakIt: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.DeleteBucketOwnershipControls(ctx, &s3.DeleteBucketOwnershipControlsInput{Bucket: aws.String(b.Storage.Bucket)})
				return err
			},
			want: allBut("ownership-controls"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{Check: "ownership-controls", Expected: "object ownership BucketOwnerPreferred", Found: "BucketOwnerEnforced",
					Fix: "set object ownership of bucket " + b.Storage.Bucket + " to BucketOwnerPreferred; byob-agent sync repairs it"}
			},
		},
		{
			name: "tagged for another team",
			breakIt: setTags(
				types.Tag{Key: aws.String(bucketfactory.TagManagedBy), Value: aws.String(bucketfactory.TagManagedByValue)},
				types.Tag{Key: aws.String(bucketfactory.TagTeam), Value: aws.String("other-team")}),
			want: allBut("ownership"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{Check: "ownership", Expected: "tags byob-agent-team=" + b.Team + ", managed-by=byob-agent",
					Found:   "byob-agent-team=other-team, managed-by=byob-agent",
					Fix:     fmt.Sprintf(`bucket %s is tagged for team "other-team": give team %q another bucket, or correct the tags if they are wrong`, b.Storage.Bucket, b.Team),
					Foreign: true}
			},
		},
		{
			name: "managed-by tag removed",
			breakIt: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				return setTags(types.Tag{Key: aws.String(bucketfactory.TagTeam), Value: aws.String(b.Team)})(ctx, c, b)
			},
			want: allBut("ownership"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{Check: "ownership", Expected: "tags byob-agent-team=" + b.Team + ", managed-by=byob-agent",
					Found: "byob-agent-team=" + b.Team, Fix: "byob-agent sync restores the tag managed-by=byob-agent"}
			},
		},
		{
			name:    "untagged",
			breakIt: setTags(types.Tag{Key: aws.String("cost-center"), Value: aws.String("42")}),
			want:    allBut("ownership"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{Check: "ownership", Expected: "tags byob-agent-team=" + b.Team + ", managed-by=byob-agent",
					Found: "no ownership tags", Fix: fmt.Sprintf("if bucket %s is meant for team %q, tag it byob-agent-team=%s or let the profile adopt existing buckets; byob-agent sync then adds the other tag", b.Storage.Bucket, b.Team, b.Team)}
			},
		},
		{
			// Neither S3 nor SeaweedFS checks the key when encryption is set: only the probe write fails.
			name: "encryption with a key that does not exist",
			breakIt: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(b.Storage.Bucket),
					ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
						BucketKeyEnabled:                   aws.Bool(true),
						ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(missingKey)},
					}}}})
				return err
			},
			want: allBut("encryption", "probe"),
			wantFirst: func(b bucketfactory.Bucket) bucketfactory.CheckResult {
				return bucketfactory.CheckResult{Check: "encryption", Expected: "aws:kms with key " + key + ", bucket key true", Found: "aws:kms with key " + missingKey + ", bucket key true",
					Fix: "set the default encryption of bucket " + b.Storage.Bucket + " to SSE-KMS with key " + key + " and bucket key on; byob-agent sync repairs it"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			b := awsBucket(t, key)
			if !tt.fresh {
				mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
				if tt.breakIt != nil {
					if err := tt.breakIt(ctx, env.S3Client(ctx), b); err != nil {
						t.Fatalf("break the bucket: %v", err)
					}
				}
			}
			env.ResetCounts()
			results, err := f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := resultList(results); !slices.Equal(got, tt.want) {
				t.Errorf("Check = %v\nwant %v", got, tt.want)
			}
			checkResultShape(t, results)
			// A passed probe wrote exactly one object; a failed write may have been retried.
			if n := env.S3Counts()["PUT object"]; slices.Contains(tt.want, "probe ok") && n != 1 || tt.fresh && n != 0 {
				t.Errorf("Check wrote %d probe object(s)", n)
			}
			i := slices.IndexFunc(results, func(r bucketfactory.CheckResult) bool { return !r.OK })
			switch {
			case tt.wantFirst == nil && i >= 0:
				t.Errorf("unexpected failure %#v", results[i])
			case tt.wantFirst != nil && i < 0:
				t.Errorf("no failure, want %#v", tt.wantFirst(b))
			case tt.wantFirst != nil:
				if want := tt.wantFirst(b); results[i] != want {
					t.Errorf("first failure = %#v\nwant %#v", results[i], want)
				}
				var ve *bucketfactory.VerifyError
				if err := bucketfactory.Verify(ctx, f, b); !errors.As(err, &ve) || ve.Failures[0] != tt.wantFirst(b) {
					t.Errorf("Verify = %v, want a VerifyError starting with the same failure", err)
				}
			}
		})
	}

	t.Run("without probe only reads", func(t *testing.T) {
		b := awsBucket(t, key)
		mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
		env.ResetCounts()
		results, err := f.Check(t.Context(), b, bucketfactory.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := resultList(results), allBut()[:len(awsChecks)-1]; !slices.Equal(got, want) {
			t.Errorf("Check without probe = %v, want %v", got, want)
		}
		if n := env.S3Mutations(); n != 0 {
			t.Errorf("Check without probe made %d mutating calls: %v", n, env.S3Counts())
		}
	})
}
