package s3bucket

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// sharedBucket is one team's view of the shared bucket of profile "prod".
func sharedBucket(bucket, teamName, key string) bucketfactory.Bucket {
	return bucketfactory.Bucket{
		Team: teamName, Profile: "prod", Shared: true, KMSKeyARN: key,
		Storage: team.Storage{Provider: team.ProviderAWS, Bucket: bucket, Path: "teams/" + teamName, Shared: true, KMSKeyARN: key},
	}
}

func TestSharedBucket(t *testing.T) {
	env := s3Env(t)
	ctx := t.Context()
	key := mustCreateKey(t, env)
	f := newTestFactory(t, env, team.ProviderAWS)
	name := uniqueName(t)
	a, b := sharedBucket(name, "team-a", key), sharedBucket(name, "team-b", key)

	env.ResetCounts()
	changes := mustEnsure(t, f, a, bucketfactory.EnsureOptions{})
	want := []string{"create", "tags", "ownership-controls", "public-access-block", "encryption", "cors", "policy"}
	if got := settings(changes); !slices.Equal(got, want) {
		t.Errorf("first team's Ensure changed %v, want %v", got, want)
	}
	tags, err := getTags(ctx, env.S3Client(ctx), name)
	if err != nil {
		t.Fatal(err)
	}
	if tags[bucketfactory.TagShared] != "prod" || tags[bucketfactory.TagManagedBy] != bucketfactory.TagManagedByValue || tags[bucketfactory.TagTeam] != "" {
		t.Errorf("shared bucket tags = %v, want %s=prod and managed-by, no team tag", tags, bucketfactory.TagShared)
	}

	env.ResetCounts()
	if changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{}); len(changes) != 0 || env.S3Mutations() != 0 {
		t.Errorf("second team's Ensure changed %v with %d mutating calls, want none: %v", changes, env.S3Mutations(), env.S3Counts())
	}

	// Each team's probe writes under its own path.
	var mu sync.Mutex
	var written []string
	env.SetS3Fault(func(r *http.Request) (int, bool) {
		if r.Method == http.MethodPut && strings.Count(strings.Trim(r.URL.Path, "/"), "/") > 0 {
			mu.Lock()
			written = append(written, strings.Trim(r.URL.Path, "/"))
			mu.Unlock()
		}
		return 0, false
	})
	defer env.SetS3Fault(nil)
	for _, tb := range []bucketfactory.Bucket{a, b} {
		mu.Lock()
		written = nil
		mu.Unlock()
		results, err := f.Check(ctx, tb, bucketfactory.CheckOptions{Probe: true})
		if err != nil {
			t.Fatal(err)
		}
		checkResultShape(t, results)
		for _, r := range results {
			if !r.OK {
				t.Errorf("Check for %s: %s", tb.Team, r)
			}
			if r.Check == "ownership" && r.Expected != "tags byob-agent-shared=prod, managed-by=byob-agent" {
				t.Errorf("ownership expects %q", r.Expected)
			}
		}
		mu.Lock()
		prefix := name + "/teams/" + tb.Team + "/" + bucketfactory.ProbeDir + "/"
		if len(written) != 1 || !strings.HasPrefix(written[0], prefix) {
			t.Errorf("probe for %s wrote %v, want one object under %s", tb.Team, written, prefix)
		}
		mu.Unlock()
	}
}

func TestSharedBucketOwnership(t *testing.T) {
	env := s3Env(t)
	key := mustCreateKey(t, env)
	f := newTestFactory(t, env, team.ProviderAWS)
	admin := env.S3Client(t.Context())
	tests := []struct {
		name       string
		tag        types.Tag
		wantReason string
	}{
		{"another profile's shared bucket", types.Tag{Key: aws.String(bucketfactory.TagShared), Value: aws.String("staging")}, `tagged as the shared bucket of profile "staging"`},
		{"a team's own bucket", types.Tag{Key: aws.String(bucketfactory.TagTeam), Value: aws.String("team-a")}, `tagged for team "team-a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			name := uniqueName(t)
			if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(name), Tagging: &types.Tagging{TagSet: []types.Tag{
				{Key: aws.String(bucketfactory.TagManagedBy), Value: aws.String(bucketfactory.TagManagedByValue)}, tt.tag,
			}}}); err != nil {
				t.Fatal(err)
			}
			b := sharedBucket(name, "team-a", key)
			env.ResetCounts()
			changes, err := f.Ensure(ctx, b, bucketfactory.EnsureOptions{AdoptUntagged: true})
			var oe *bucketfactory.OwnershipError
			if !errors.As(err, &oe) || !strings.Contains(oe.Reason, tt.wantReason) {
				t.Fatalf("Ensure = %v, want an OwnershipError saying %q", err, tt.wantReason)
			}
			if len(changes) != 0 || env.S3Mutations() != 0 {
				t.Errorf("refused Ensure changed %v with %d mutating calls", changes, env.S3Mutations())
			}
			results, err := f.Check(ctx, b, bucketfactory.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(results, func(r bucketfactory.CheckResult) bool { return r.Check == "ownership" })
			if i < 0 || results[i].OK || !strings.Contains(results[i].Fix, tt.wantReason) {
				t.Errorf("Check ownership = %+v, want a failure naming the other owner", results)
			}
		})
	}
}

// TestSettingsVerifiedChecksOnlyTheTeamsPath: once the shared bucket's settings passed, a team's
// check reads none of them again: it checks that the bucket exists and probes its own path. A bucket
// of one team ignores the hint.
func TestSettingsVerifiedChecksOnlyTheTeamsPath(t *testing.T) {
	env := s3Env(t)
	ctx := t.Context()
	f := newTestFactory(t, env, team.ProviderS3Compatible)
	name := uniqueName(t)
	shared := func(teamName string) bucketfactory.Bucket {
		return bucketfactory.Bucket{Team: teamName, Profile: "prod", Shared: true,
			Storage: team.Storage{Provider: team.ProviderS3Compatible, Bucket: name, Path: "teams/" + teamName, Shared: true}}
	}
	mustEnsure(t, f, shared("team-a"), bucketfactory.EnsureOptions{})
	own := bucketfactory.Bucket{Team: "team-c", Storage: team.Storage{Provider: team.ProviderS3Compatible, Bucket: uniqueName(t)}}
	mustEnsure(t, f, own, bucketfactory.EnsureOptions{})
	tests := []struct {
		name string
		b    bucketfactory.Bucket
		want map[string]int // S3 operations, as the proxy names them
	}{
		{"shared bucket", shared("team-b"), map[string]int{"HEAD bucket": 1, "PUT object": 1, "GET object": 1, "DELETE object": 1}},
		{"bucket of one team", own, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.ResetCounts()
			if err := bucketfactory.VerifyTeamPath(ctx, f, tt.b); err != nil {
				t.Fatal(err)
			}
			got := env.S3Counts()
			if tt.want != nil && !maps.Equal(got, tt.want) {
				t.Errorf("requests %v, want %v", got, tt.want)
			}
			if tt.want == nil && got["HEAD bucket"] != 1 {
				t.Errorf("requests %v: a bucket of one team must be checked whole", got)
			}
		})
	}
	// A missing shared bucket is still found missing: the hint never hides it.
	gone := shared("team-d")
	gone.Storage.Bucket = uniqueName(t)
	var ve *bucketfactory.VerifyError
	if err := bucketfactory.VerifyTeamPath(ctx, f, gone); !errors.As(err, &ve) {
		t.Errorf("probe of a missing bucket: %v, want a VerifyError", err)
	}
}
