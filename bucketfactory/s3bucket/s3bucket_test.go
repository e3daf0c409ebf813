package s3bucket

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/team"
)

// One SeaweedFS + kmsd per test binary, started by the first test that needs it (unit tests of the
// pure pieces do not) and stopped in TestMain. A missing bin/weed fails those tests; it never skips them.
var backends = testenv.NewShared("S3 backends", 3*time.Minute, func(ctx context.Context) (*testenv.S3Env, error) {
	// Not us-east-1, so that CreateBucket sends a LocationConstraint.
	env, err := testenv.StartS3(ctx, testenv.S3Options{Region: "eu-central-1"})
	if err == nil {
		// SeaweedFS refuses CoreWeave's {"CW": ...} principal: the proxy keeps those policies.
		env.InterceptPolicies(cwPrefix)
	}
	return env, err
})

func TestMain(m *testing.M) {
	code := m.Run()
	backends.Close()
	os.Exit(code)
}

func s3Env(t *testing.T) *testenv.S3Env {
	t.Helper()
	return backends.Get(t)
}

func newTestFactory(t *testing.T, env *testenv.S3Env, provider string) *Factory {
	t.Helper()
	o := Options{
		Provider: provider, Region: env.Region, Endpoint: env.Endpoint, PathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(env.AccessKey, env.SecretKey, ""),
		PrincipalARN: testPrincipal, KMSEndpoint: env.KMSEndpoint, AccountID: env.AccountID,
	}
	if provider == team.ProviderCoreWeave {
		o.PrincipalARN, o.OrgID, o.OrgWideAccess, o.KMSEndpoint, o.AccountID = cwPrincipal, testOrgID, testCWOrg, "", ""
	}
	f, err := New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// uniqueName makes a bucket and team name from the test's name, unique across runs of one backend.
func uniqueName(t *testing.T) string {
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[len(base)-40:], "-")
	}
	return strings.Trim(base, "-") + "-" + strings.ToLower(rand.Text()[:6])
}

// awsBucket is a fresh bucket spec for the aws profile.
func awsBucket(t *testing.T, key string) bucketfactory.Bucket {
	name := uniqueName(t)
	return bucketfactory.Bucket{
		Team:      name,
		Storage:   team.Storage{Provider: team.ProviderAWS, Bucket: name, Path: "wandb/runs"},
		KMSKeyARN: key,
	}
}

func settings(changes []bucketfactory.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.Setting
	}
	return out
}

func mustEnsure(t *testing.T, f *Factory, b bucketfactory.Bucket, opts bucketfactory.EnsureOptions) []bucketfactory.Change {
	t.Helper()
	changes, err := f.Ensure(t.Context(), b, opts)
	if err != nil {
		t.Fatalf("Ensure(%s): %v (changes so far: %v)", b.Storage.Bucket, err, changes)
	}
	return changes
}

func mustCreateKey(t *testing.T, env *testenv.S3Env) string {
	t.Helper()
	key, err := env.CreateKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestEnsureNewBucket(t *testing.T) {
	env := s3Env(t)
	ctx := t.Context()
	f := newTestFactory(t, env, team.ProviderAWS)
	b := awsBucket(t, "")
	key, created, err := f.EnsureKey(ctx, b.Team, false)
	if err != nil || !created {
		t.Fatalf("EnsureKey = %q, created %v, %v; want a new key", key, created, err)
	}
	b.KMSKeyARN = key

	env.ResetCounts()
	changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
	// Tags are the first write after the create, so a crash cannot leave an anonymous bucket behind.
	want := []string{"create", "tags", "ownership-controls", "public-access-block", "encryption", "cors", "policy"}
	if got := settings(changes); !slices.Equal(got, want) {
		t.Errorf("first Ensure changed %v, want %v", got, want)
	}
	if err := bucketfactory.Verify(ctx, f, b); err != nil {
		t.Errorf("Verify after Ensure: %v", err)
	}
	objs, err := env.S3Client(ctx).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b.Storage.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Contents) != 0 {
		t.Errorf("Verify left %d object(s) behind, e.g. %s", len(objs.Contents), aws.ToString(objs.Contents[0].Key))
	}

	env.ResetCounts()
	if changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{}); len(changes) != 0 {
		t.Errorf("second Ensure changed %v, want nothing", changes)
	}
	if n := env.S3Mutations(); n != 0 {
		t.Errorf("second Ensure made %d mutating S3 calls, want 0: %v", n, env.S3Counts())
	}
}

func TestEnsureRepairsDrift(t *testing.T) {
	env := s3Env(t)
	key := mustCreateKey(t, env)
	f := newTestFactory(t, env, team.ProviderAWS)
	foreignRule := types.CORSRule{ID: aws.String("theirs"), AllowedMethods: []string{"POST"}, AllowedOrigins: []string{"https://x.example"}}

	tests := []struct {
		name    string
		drift   func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error
		setting string // the one change Ensure must report
		call    string // the one mutating call it must make
		check   func(t *testing.T, c *s3.Client, b bucketfactory.Bucket)
	}{
		{
			name: "CORS deleted",
			drift: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String(b.Storage.Bucket)})
				return err
			},
			setting: "cors", call: "PUT ?cors",
		},
		{
			name: "CORS replaced by someone else's rule",
			drift: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String(b.Storage.Bucket),
					CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{foreignRule}}})
				return err
			},
			setting: "cors", call: "PUT ?cors",
			check: func(t *testing.T, c *s3.Client, b bucketfactory.Bucket) {
				out, err := c.GetBucketCors(t.Context(), &s3.GetBucketCorsInput{Bucket: aws.String(b.Storage.Bucket)})
				if err != nil {
					t.Fatal(err)
				}
				if len(out.CORSRules) != 2 || aws.ToString(out.CORSRules[1].ID) != "theirs" {
					t.Errorf("CORS after repair: %s; want W&B's rule, then theirs", describeCORSRules(out.CORSRules))
				}
			},
		},
		{
			name: "policy replaced",
			drift: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(b.Storage.Bucket), Policy: aws.String(
					`{"Version":"2012-10-17","Statement":[{"Sid":"Theirs","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},` +
						`"Action":"s3:GetObject","Resource":"arn:aws:s3:::` + b.Storage.Bucket + `/*"}]}`)})
				return err
			},
			setting: "policy", call: "PUT ?policy",
			check: func(t *testing.T, c *s3.Client, b bucketfactory.Bucket) {
				doc, err := getPolicy(t.Context(), c, b.Storage.Bucket)
				if err != nil {
					t.Fatal(err)
				}
				stmts, err := policyStatements(decodeJSON(t, doc))
				if err != nil {
					t.Fatal(err)
				}
				if len(stmts) != 2 || stmts[0]["Sid"] != "Theirs" || stmts[1]["Sid"] != wandbSid {
					t.Errorf("policy after repair = %s; want their statement kept and W&B's added", doc)
				}
			},
		},
		{
			name: "encryption deleted",
			drift: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.DeleteBucketEncryption(ctx, &s3.DeleteBucketEncryptionInput{Bucket: aws.String(b.Storage.Bucket)})
				return err
			},
			setting: "encryption", call: "PUT ?encryption",
		},
		{
			name: "public access block loosened",
			drift: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(b.Storage.Bucket),
					PublicAccessBlockConfiguration: &types.PublicAccessBlockConfiguration{
						BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(true),
					}})
				return err
			},
			setting: "public-access-block", call: "PUT ?publicAccessBlock",
		},
		{
			name: "object ownership changed",
			drift: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: aws.String(b.Storage.Bucket),
					OwnershipControls: &types.OwnershipControls{Rules: []types.OwnershipControlsRule{{ObjectOwnership: types.ObjectOwnershipObjectWriter}}}})
				return err
			},
			setting: "ownership-controls", call: "PUT ?ownershipControls",
		},
		{
			name: "managed-by tag removed",
			drift: func(ctx context.Context, c *s3.Client, b bucketfactory.Bucket) error {
				_, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(b.Storage.Bucket), Tagging: &types.Tagging{TagSet: []types.Tag{
					{Key: aws.String(bucketfactory.TagTeam), Value: aws.String(b.Team)},
					{Key: aws.String("cost-center"), Value: aws.String("42")},
				}}})
				return err
			},
			setting: "tags", call: "PUT ?tagging",
			check: func(t *testing.T, c *s3.Client, b bucketfactory.Bucket) {
				tags, err := getTags(t.Context(), c, b.Storage.Bucket)
				if err != nil {
					t.Fatal(err)
				}
				if tags["cost-center"] != "42" || tags[bucketfactory.TagManagedBy] != bucketfactory.TagManagedByValue {
					t.Errorf("tags after repair = %v; want cost-center kept and managed-by restored", tags)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			admin := env.S3Client(ctx)
			b := awsBucket(t, key)
			mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
			if err := tt.drift(ctx, admin, b); err != nil {
				t.Fatalf("cause drift: %v", err)
			}

			env.ResetCounts()
			changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
			if got := settings(changes); !slices.Equal(got, []string{tt.setting}) {
				t.Errorf("Ensure changed %v, want [%s]", changes, tt.setting)
			}
			if n, c := env.S3Mutations(), env.S3Counts()[tt.call]; n != 1 || c != 1 {
				t.Errorf("Ensure made %d mutating calls (%d %q), want exactly one %q: %v", n, c, tt.call, tt.call, env.S3Counts())
			}
			if tt.check != nil {
				tt.check(t, admin, b)
			}
			if err := bucketfactory.Verify(ctx, f, b); err != nil {
				t.Errorf("Verify after repair: %v", err)
			}
		})
	}
}

func TestEnsureOwnership(t *testing.T) {
	env := s3Env(t)
	key := mustCreateKey(t, env)
	f := newTestFactory(t, env, team.ProviderAWS)

	createAs := func(c *s3.Client, tags map[string]string) func(context.Context, bucketfactory.Bucket) error {
		return func(ctx context.Context, b bucketfactory.Bucket) error {
			name := aws.String(b.Storage.Bucket)
			if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: name}); err != nil {
				return err
			}
			if len(tags) == 0 {
				return nil
			}
			var set []types.Tag
			for k, v := range tags {
				if v == "" { // stands for the bucket's own team
					v = b.Team
				}
				set = append(set, types.Tag{Key: aws.String(k), Value: aws.String(v)})
			}
			_, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: name, Tagging: &types.Tagging{TagSet: set}})
			return err
		}
	}
	// headStatus makes HEAD of the bucket answer status, as if it had looked different a moment earlier.
	// SeaweedFS lets an Admin identity see every bucket (no cross-account 403, and HEAD of another identity's
	// bucket succeeds), so the other-account and access-denied paths are reached through the proxy's fault
	// hook; CreateBucket then answers BucketAlreadyExists or BucketAlreadyOwnedByYou as S3 does.
	headStatus := func(status int) func(bucketfactory.Bucket) testenv.Fault {
		return func(b bucketfactory.Bucket) testenv.Fault {
			return func(r *http.Request) (int, bool) {
				return status, r.Method == http.MethodHead && strings.Trim(r.URL.Path, "/") == b.Storage.Bucket
			}
		}
	}
	admin, other := env.S3Client(t.Context()), env.OtherS3Client(t.Context())
	ours := map[string]string{bucketfactory.TagManagedBy: bucketfactory.TagManagedByValue, bucketfactory.TagTeam: ""}

	tests := []struct {
		name          string
		arrange       func(context.Context, bucketfactory.Bucket) error
		fault         func(bucketfactory.Bucket) testenv.Fault
		adopt         bool
		wantReason    string   // non-empty: an OwnershipError with this in its reason
		wantMutations int      // with wantReason: mutating calls made before refusing
		wantSettings  []string // without wantReason
	}{
		{
			name:       "tagged for another team",
			arrange:    createAs(admin, map[string]string{bucketfactory.TagManagedBy: bucketfactory.TagManagedByValue, bucketfactory.TagTeam: "other-team"}),
			wantReason: `tagged for team "other-team"`,
		},
		{
			name:       "tagged as a profile's shared bucket",
			arrange:    createAs(admin, map[string]string{bucketfactory.TagManagedBy: bucketfactory.TagManagedByValue, bucketfactory.TagShared: "prod"}),
			adopt:      true,
			wantReason: `tagged as the shared bucket of profile "prod"`,
		},
		{
			name:       "untagged, adoption off",
			arrange:    createAs(admin, map[string]string{"cost-center": "42"}),
			wantReason: "adopting untagged buckets is off",
		},
		{
			name:         "untagged, adoption on",
			arrange:      createAs(admin, map[string]string{"cost-center": "42"}),
			adopt:        true,
			wantSettings: []string{"tags", "ownership-controls", "public-access-block", "encryption", "cors", "policy"},
		},
		{
			name:          "another account's bucket",
			arrange:       createAs(other, nil),
			fault:         headStatus(http.StatusNotFound),
			wantReason:    "taken by another account",
			wantMutations: 1, // the CreateBucket that found out
		},
		{
			name:       "access denied",
			arrange:    createAs(other, nil),
			fault:      headStatus(http.StatusForbidden),
			wantReason: "access to it is denied",
		},
		{
			name:         "ours, created concurrently",
			arrange:      createAs(admin, ours),
			fault:        headStatus(http.StatusNotFound),
			wantSettings: []string{"ownership-controls", "public-access-block", "encryption", "cors", "policy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			b := awsBucket(t, key)
			if err := tt.arrange(ctx, b); err != nil {
				t.Fatalf("arrange: %v", err)
			}
			if tt.fault != nil {
				env.SetS3Fault(tt.fault(b))
				defer env.SetS3Fault(nil)
			}
			env.ResetCounts()
			changes, err := f.Ensure(ctx, b, bucketfactory.EnsureOptions{AdoptUntagged: tt.adopt})
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Ensure: %v", err)
				}
				if got := settings(changes); !slices.Equal(got, tt.wantSettings) {
					t.Errorf("Ensure changed %v, want %v", got, tt.wantSettings)
				}
				return
			}
			var oe *bucketfactory.OwnershipError
			if !errors.As(err, &oe) || !strings.Contains(oe.Reason, tt.wantReason) {
				t.Fatalf("Ensure error = %v, want an OwnershipError saying %q", err, tt.wantReason)
			}
			if len(changes) != 0 || env.S3Mutations() != tt.wantMutations {
				t.Errorf("refused Ensure changed %v with %d mutating calls, want none and %d: %v", changes, env.S3Mutations(), tt.wantMutations, env.S3Counts())
			}
		})
	}

	t.Run("adopted bucket keeps others' tags", func(t *testing.T) {
		b := awsBucket(t, key)
		if err := createAs(admin, map[string]string{"cost-center": "42"})(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		mustEnsure(t, f, b, bucketfactory.EnsureOptions{AdoptUntagged: true})
		tags, err := getTags(t.Context(), admin, b.Storage.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		if tags["cost-center"] != "42" || tags[bucketfactory.TagTeam] != b.Team || tags[bucketfactory.TagManagedBy] != bucketfactory.TagManagedByValue {
			t.Errorf("tags after adoption = %v", tags)
		}
	})
}

func TestEnsureKey(t *testing.T) {
	env := s3Env(t)
	ctx := t.Context()
	f := newTestFactory(t, env, team.ProviderAWS)
	admin := env.KMSClient(ctx)
	teamName := uniqueName(t)

	arn, created, err := f.EnsureKey(ctx, teamName, false)
	if err != nil || !created {
		t.Fatalf("EnsureKey = %q, created %v, %v; want a new key", arn, created, err)
	}
	checkKey(t, admin, teamName, arn)

	t.Run("second call changes nothing", func(t *testing.T) {
		env.ResetCounts()
		again, created, err := f.EnsureKey(ctx, teamName, false)
		if err != nil || created || again != arn {
			t.Fatalf("EnsureKey again = %q, created %v, %v; want %q, not created", again, created, err, arn)
		}
		if n := env.KMSMutations(); n != 0 {
			t.Errorf("second EnsureKey made %d mutating KMS calls, want 0: %v", n, env.KMSCounts())
		}
	})

	t.Run("drifted key policy is repaired", func(t *testing.T) {
		rootOnly := newPolicy(keyPolicyStatements("aws", env.AccountID, testPrincipal)[:1])
		if _, err := admin.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(arn), PolicyName: aws.String("default"), Policy: aws.String(rootOnly)}); err != nil {
			t.Fatal(err)
		}
		env.ResetCounts()
		if _, _, err := f.EnsureKey(ctx, teamName, false); err != nil {
			t.Fatal(err)
		}
		if got := env.KMSCounts()["TrentService.PutKeyPolicy"]; got != 1 || env.KMSMutations() != 1 {
			t.Errorf("EnsureKey made %v, want exactly one PutKeyPolicy", env.KMSCounts())
		}
		checkKey(t, admin, teamName, arn)
	})

	t.Run("recovering reuses a tagged key without alias", func(t *testing.T) {
		lost := uniqueName(t)
		out, err := admin.CreateKey(ctx, &kms.CreateKeyInput{Tags: []kmstypes.Tag{
			{TagKey: aws.String(bucketfactory.TagManagedBy), TagValue: aws.String(bucketfactory.TagManagedByValue)},
			{TagKey: aws.String(bucketfactory.TagTeam), TagValue: aws.String(lost)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		env.ResetCounts()
		got, created, err := f.EnsureKey(ctx, lost, true)
		if err != nil || created || got != aws.ToString(out.KeyMetadata.Arn) {
			t.Fatalf("EnsureKey(recovering) = %q, created %v, %v; want the tagged key %s", got, created, err, aws.ToString(out.KeyMetadata.Arn))
		}
		if n := env.KMSCounts()["TrentService.CreateKey"]; n != 0 {
			t.Errorf("recovering EnsureKey created %d key(s)", n)
		}
		checkKey(t, admin, lost, got)
	})

	for _, provider := range []string{team.ProviderS3Compatible, team.ProviderCoreWeave} {
		t.Run(provider+" has no keys", func(t *testing.T) {
			f := newTestFactory(t, env, provider)
			env.ResetCounts()
			if _, _, err := f.EnsureKey(ctx, teamName, false); err == nil {
				t.Errorf("EnsureKey on a %s profile succeeded", provider)
			}
			if n := len(env.KMSCounts()); n != 0 {
				t.Errorf("EnsureKey on a %s profile made KMS calls: %v", provider, env.KMSCounts())
			}
		})
	}
}

// checkKey asserts that the team's alias names arn and that the key has the ownership tags, W&B's key
// policy and rotation on.
func checkKey(t *testing.T, admin *kms.Client, teamName, arn string) {
	t.Helper()
	ctx := t.Context()
	d, err := admin.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyAlias(teamName))})
	if err != nil {
		t.Fatalf("describe %s: %v", keyAlias(teamName), err)
	}
	if got := aws.ToString(d.KeyMetadata.Arn); got != arn {
		t.Errorf("%s names %s, want %s", keyAlias(teamName), got, arn)
	}
	tags, err := admin.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if !taggedFor(tags.Tags, teamName) {
		t.Errorf("key %s is not tagged for team %s", arn, teamName)
	}
	pol, err := admin.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(arn), PolicyName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	if _, changed, err := mergeStatements(aws.ToString(pol.Policy), keyPolicyStatements("aws", arnAccount(arn), testPrincipal)); err != nil || changed {
		t.Errorf("key policy %s lacks W&B's statements (err %v)", aws.ToString(pol.Policy), err)
	}
	rot, err := admin.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if !rot.KeyRotationEnabled {
		t.Errorf("rotation of key %s is off", arn)
	}
}

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
					Found: "byob-agent-team=other-team, managed-by=byob-agent",
					Fix:   fmt.Sprintf(`bucket %s is tagged for team "other-team": give team %q another bucket, or correct the tags if they are wrong`, b.Storage.Bucket, b.Team)}
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

func TestS3CompatibleProfile(t *testing.T) {
	env := s3Env(t)
	f := newTestFactory(t, env, team.ProviderS3Compatible)
	tests := []struct {
		name         string
		withKey      bool
		wantSettings []string
	}{
		{"without key", false, []string{"create", "tags", "cors"}},
		{"with key", true, []string{"create", "tags", "encryption", "cors"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			name := uniqueName(t)
			b := bucketfactory.Bucket{Team: name, Storage: team.Storage{Provider: team.ProviderS3Compatible, Bucket: name}}
			if tt.withKey {
				b.KMSKeyARN = mustCreateKey(t, env)
			}
			env.ResetCounts()
			changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
			if got := settings(changes); !slices.Equal(got, tt.wantSettings) {
				t.Errorf("Ensure changed %v, want %v", got, tt.wantSettings)
			}
			for op := range env.S3Counts() {
				// MinIO-style servers lack these APIs: the profile must not even read them.
				if strings.Contains(op, "policy") || strings.Contains(op, "ownershipControls") || strings.Contains(op, "publicAccessBlock") {
					t.Errorf("s3-compatible Ensure called %q", op)
				}
			}
			if err := bucketfactory.Verify(ctx, f, b); err != nil {
				t.Errorf("Verify: %v", err)
			}
			env.ResetCounts()
			if changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{}); len(changes) != 0 || env.S3Mutations() != 0 {
				t.Errorf("second Ensure changed %v with %d mutating calls, want none", changes, env.S3Mutations())
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"unknown provider", Options{Provider: "gcs", Region: "eu-central-1"}, `unsupported provider "gcs"`},
		{"aws without principal", Options{Provider: team.ProviderAWS, Region: "eu-central-1"}, "needs the W&B principal ARN"},
		{"aws with an org id", Options{Provider: team.ProviderAWS, Region: "eu-central-1", PrincipalARN: testPrincipal, OrgID: "o"}, "CoreWeave policy settings"},
		{"coreweave without principal", Options{Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", OrgID: "o"}, "needs the W&B principal ARN"},
		{"coreweave without org id", Options{Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", PrincipalARN: cwPrincipal}, "needs the W&B organization id"},
		{"coreweave org id with wildcard", Options{Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", PrincipalARN: cwPrincipal, OrgID: "org*"}, "must not contain '*' or '?'"},
		{"coreweave bad org-wide id", Options{Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", PrincipalARN: cwPrincipal, OrgID: "o", OrgWideAccess: "a:*"}, "not a CoreWeave organization id"},
		{"coreweave LOTA endpoint", Options{Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", PrincipalARN: cwPrincipal, OrgID: "o", Endpoint: "http://cwlota.com"}, "LOTA endpoint"},
		{"endpoint with path", Options{Provider: team.ProviderS3Compatible, Region: "r", Endpoint: "https://minio.example/s3"}, "want http(s)://host[:port]"},
		{"endpoint with credentials", Options{Provider: team.ProviderS3Compatible, Region: "r", Endpoint: "https://ak:secret@minio.example"}, "carries credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(t.Context(), tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestEnsureRejectsBadSpec needs no server: a bad spec fails before any request (the endpoint is closed).
func TestEnsureRejectsBadSpec(t *testing.T) {
	f, err := New(t.Context(), Options{
		Provider: team.ProviderAWS, Region: "eu-central-1", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), PrincipalARN: testPrincipal,
	})
	if err != nil {
		t.Fatal(err)
	}
	good := bucketfactory.Bucket{Team: "team-a", Storage: team.Storage{Provider: team.ProviderAWS, Bucket: "bucket-a"}, KMSKeyARN: "arn:aws:kms:eu-central-1:1:key/x"}
	tests := []struct {
		name   string
		change func(*bucketfactory.Bucket)
		want   string
	}{
		{"other provider", func(b *bucketfactory.Bucket) { b.Storage.Provider = team.ProviderS3Compatible }, "this factory serves"},
		{"aws without key", func(b *bucketfactory.Bucket) { b.KMSKeyARN = "" }, "needs SSE-KMS"},
		{"bad bucket name", func(b *bucketfactory.Bucket) { b.Storage.Bucket = "Bad_Name" }, "may contain only"},
		{"bad path", func(b *bucketfactory.Bucket) { b.Storage.Path = "/abs" }, "must not begin or end"},
		{"bad team", func(b *bucketfactory.Bucket) { b.Team = "Team A" }, "not a valid W&B team name"},
		{"shared without profile", func(b *bucketfactory.Bucket) { b.Shared, b.Storage.Path = true, "teams/a" }, "needs the profile name"},
		{"shared without path", func(b *bucketfactory.Bucket) { b.Shared, b.Profile = true, "prod" }, "a path per team"},
		{"bad endpoint", func(b *bucketfactory.Bucket) { b.Storage.Endpoint = "s3.example" }, "want http(s)://host[:port]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := good
			tt.change(&b)
			if _, err := f.Ensure(t.Context(), b, bucketfactory.EnsureOptions{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ensure error = %v, want one containing %q", err, tt.want)
			}
			if _, err := f.Check(t.Context(), b, bucketfactory.CheckOptions{Probe: true}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
