package s3bucket

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/team"
)

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
