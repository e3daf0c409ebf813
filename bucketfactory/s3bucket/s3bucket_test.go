package s3bucket

import (
	"context"
	"crypto/rand"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

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

// TestBucketClientIsBuiltOncePerAddress: buckets that name a region or endpoint share one client per
// region and endpoint, across teams and calls; the profile's own address uses the profile's client.
func TestBucketClientIsBuiltOncePerAddress(t *testing.T) {
	f, err := New(t.Context(), Options{Provider: team.ProviderS3Compatible, Region: "us-east-1", Endpoint: "http://127.0.0.1:1",
		PathStyle: true, Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	if err != nil {
		t.Fatal(err)
	}
	client := func(teamName, region, endpoint string) any {
		t.Helper()
		c, err := f.bucketClient(bucketfactory.Bucket{Team: teamName, Storage: team.Storage{
			Provider: team.ProviderS3Compatible, Bucket: "wandb-" + teamName, Region: region, Endpoint: endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := client("a", "us-east-1", "http://127.0.0.1:1")
	tests := []struct {
		name                   string
		team, region, endpoint string
		same                   bool
	}{
		{"another team, same address", "b", "us-east-1", "http://127.0.0.1:1", true},
		{"the same team again", "a", "us-east-1", "http://127.0.0.1:1", true},
		{"another endpoint", "c", "us-east-1", "http://127.0.0.1:2", false},
		{"another region", "d", "eu-west-1", "http://127.0.0.1:1", false},
	}
	for _, tt := range tests {
		if got := client(tt.team, tt.region, tt.endpoint) == a; got != tt.same {
			t.Errorf("%s: same client %v, want %v", tt.name, got, tt.same)
		}
	}
	if client("e", "", "") != any(f.s3) {
		t.Error("a bucket naming no address must use the profile's client")
	}
}
