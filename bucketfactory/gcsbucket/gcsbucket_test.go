package gcsbucket

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/type/expr"
	"google.golang.org/protobuf/proto"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/gcsfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/team"
)

const (
	project   = "customer-proj"
	principal = PrincipalMultiTenant
	member    = "serviceAccount:" + principal
	saEmail   = "byob-agent@customer-proj.iam.gserviceaccount.com"
	// foreignMember is someone else's grant, which Ensure must keep.
	foreignMember = "group:data-eng@example.com"
)

// testKey is a service account key file with a real PEM private key (generated once per test binary).
var testKey = sync.OnceValues(func() (string, []byte) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	file, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "0123abcd",
		"private_key": pemKey, "client_email": saEmail, "client_id": "1234567890",
	})
	if err != nil {
		panic(err)
	}
	return pemKey, file
})

// env is one fake, a factory on it, and an independent client playing the customer's other tools.
type env struct {
	fake  *gcsfake.Server
	f     *Factory
	other *storage.Client
}

func newEnv(t *testing.T, mods ...func(*Options)) *env {
	t.Helper()
	fake := gcsfake.Start(t)
	_, keyFile := testKey()
	o := Options{
		Project: project, Location: "us-east1", Endpoint: fake.Endpoint(), WithoutAuthentication: true,
		CredentialsJSON: keyFile, Principal: principal, SoftDeleteDays: 30,
	}
	for _, m := range mods {
		m(&o)
	}
	f, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	other, err := storage.NewClient(context.Background(), option.WithEndpoint(fake.Endpoint()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return &env{fake: fake, f: f, other: other}
}

func teamBucket(teamName, name string) bucketfactory.Bucket {
	return bucketfactory.Bucket{
		Team: teamName, Profile: "gcs-main",
		Storage: team.Storage{Provider: team.ProviderGCS, Bucket: name, Path: "teams/" + teamName},
	}
}

// rawBucket is the part of the stored bucket resource the tests look at.
type rawBucket struct {
	Location         string            `json:"location"`
	Labels           map[string]string `json:"labels"`
	IamConfiguration struct {
		UniformBucketLevelAccess struct {
			Enabled bool `json:"enabled"`
		} `json:"uniformBucketLevelAccess"`
		PublicAccessPrevention string `json:"publicAccessPrevention"`
	} `json:"iamConfiguration"`
	SoftDeletePolicy struct {
		RetentionDurationSeconds string `json:"retentionDurationSeconds"`
	} `json:"softDeletePolicy"`
	Encryption *struct {
		DefaultKmsKeyName string `json:"defaultKmsKeyName"`
	} `json:"encryption"`
	Cors []rawCORS `json:"cors"`
}

type rawCORS struct {
	Origin         []string `json:"origin"`
	Method         []string `json:"method"`
	ResponseHeader []string `json:"responseHeader"`
	MaxAgeSeconds  int      `json:"maxAgeSeconds"`
}

func (e *env) raw(t *testing.T, name string) rawBucket {
	t.Helper()
	var rb rawBucket
	if err := json.Unmarshal(e.fake.Bucket(name), &rb); err != nil {
		t.Fatalf("decode bucket %s: %v", name, err)
	}
	return rb
}

type rawPolicy struct {
	Bindings []struct {
		Role      string          `json:"role"`
		Members   []string        `json:"members"`
		Condition json.RawMessage `json:"condition"`
	} `json:"bindings"`
}

// members returns who an unconditional binding of role names in the stored policy.
func (e *env) members(t *testing.T, name, role string) []string {
	t.Helper()
	var p rawPolicy
	if err := json.Unmarshal(e.fake.Policy(name), &p); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range p.Bindings {
		if b.Role == role && b.Condition == nil {
			out = append(out, b.Members...)
		}
	}
	return out
}

func settings(changes []bucketfactory.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.Setting
	}
	return out
}

// failed returns the failed results by check name.
func failed(results []bucketfactory.CheckResult) map[string]bucketfactory.CheckResult {
	out := map[string]bucketfactory.CheckResult{}
	for _, r := range results {
		if !r.OK {
			out[r.Check] = r
		}
	}
	return out
}

func checkNames(results []bucketfactory.CheckResult) []string {
	out := make([]string, len(results))
	for i, r := range results {
		out[i] = r.Check
	}
	return out
}

// assertSettled asserts that the bucket passes every check and a further Ensure makes no request that
// changes anything.
func (e *env) assertSettled(t *testing.T, b bucketfactory.Bucket) {
	t.Helper()
	ctx := context.Background()
	results, err := e.f.Check(ctx, b, bucketfactory.CheckOptions{})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if f := failed(results); len(f) > 0 {
		t.Errorf("failed checks: %v", f)
	}
	e.fake.ResetCounts()
	changes, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
	if err != nil || len(changes) > 0 {
		t.Errorf("settled Ensure = %v, %v; want no change", changes, err)
	}
	if m := e.fake.Mutations(); m != 0 {
		t.Errorf("settled Ensure made %d mutating requests: %v", m, e.fake.Counts())
	}
}

var allChecks = []string{"exists", "ownership", "location", "uniform-access", "public-access-prevention", "encryption", "soft-delete", "cors", "iam"}

func TestEnsureFresh(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := teamBucket("ml", "wandb-ml")
	changes, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	if got := settings(changes); !slices.Equal(got, []string{"create", "iam"}) {
		t.Errorf("changes = %v, want create and iam", changes)
	}
	rb := e.raw(t, "wandb-ml")
	if rb.Location != "US-EAST1" || !reflect.DeepEqual(rb.Labels, map[string]string{"managed-by": "byob-agent", "byob-agent-team": "ml"}) ||
		!rb.IamConfiguration.UniformBucketLevelAccess.Enabled || rb.IamConfiguration.PublicAccessPrevention != "enforced" ||
		rb.SoftDeletePolicy.RetentionDurationSeconds != "2592000" || rb.Encryption != nil || len(rb.Cors) != 1 {
		t.Errorf("stored bucket = %s", e.fake.Bucket("wandb-ml"))
	}
	if c := rb.Cors[0]; !slices.Equal(c.Origin, []string{"*"}) || !slices.Equal(c.Method, []string{"GET", "HEAD", "PUT"}) ||
		!slices.Equal(c.ResponseHeader, []string{"ETag"}) || c.MaxAgeSeconds != 3000 {
		t.Errorf("stored CORS = %+v", c)
	}
	for _, role := range wandbRoles {
		if got := e.members(t, "wandb-ml", role); !slices.Equal(got, []string{member}) {
			t.Errorf("%s members = %v", role, got)
		}
	}
	if got := e.members(t, "wandb-ml", "roles/storage.legacyBucketOwner"); len(got) != 2 {
		t.Errorf("the project's own bindings were lost: %s", e.fake.Policy("wandb-ml"))
	}

	results, err := e.f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if got, want := checkNames(results), append(slices.Clone(allChecks), "probe"); !slices.Equal(got, want) {
		t.Errorf("checks = %v, want %v", got, want)
	}
	for _, r := range results {
		if !r.OK || r.Expected == "" || r.Fix != "" {
			t.Errorf("result %+v", r)
		}
	}
	counts := e.fake.Counts()
	if counts["POST /upload/storage/v1/b/{bucket}/o"] != 1 || counts["GET /{bucket}/{object}"] != 1 || counts["DELETE /storage/v1/b/{bucket}/o/{object}"] != 1 {
		t.Errorf("the probe did not write, read and delete one object: %v", counts)
	}
	if err := bucketfactory.Verify(ctx, e.f, b); err != nil {
		t.Errorf("verify: %v", err)
	}

	e.fake.ResetCounts()
	changes, err = e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
	if err != nil || len(changes) > 0 {
		t.Errorf("second Ensure = %v, %v", changes, err)
	}
	want := map[string]int{"GET /storage/v1/b/{bucket}": 1, "GET /storage/v1/b/{bucket}/iam": 1}
	if got := e.fake.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("second Ensure requests = %v, want %v", got, want)
	}
}

func TestEnsureRepairsDrift(t *testing.T) {
	foreignCORS := storage.CORS{Origins: []string{"https://app.example.com"}, Methods: []string{"GET"}, MaxAge: time.Minute}
	kmsKeyName := "projects/p/locations/us/keyRings/r/cryptoKeys/k"
	update := func(u storage.BucketAttrsToUpdate) func(context.Context, *storage.BucketHandle) error {
		return func(ctx context.Context, bkt *storage.BucketHandle) error {
			_, err := bkt.Update(ctx, u)
			return err
		}
	}
	removeLabel := storage.BucketAttrsToUpdate{}
	removeLabel.DeleteLabel("managed-by")
	tests := []struct {
		name  string
		drift func(context.Context, *storage.BucketHandle) error
		want  []string
	}{
		{"cors removed", update(storage.BucketAttrsToUpdate{CORS: []storage.CORS{foreignCORS}}), []string{"cors"}},
		{"cors narrowed", update(storage.BucketAttrsToUpdate{CORS: []storage.CORS{foreignCORS, {Origins: []string{"*"}, Methods: []string{"GET", "PUT"}, ResponseHeaders: []string{"ETag"}}}}), []string{"cors"}},
		{"soft delete off", update(storage.BucketAttrsToUpdate{SoftDeletePolicy: &storage.SoftDeletePolicy{}}), []string{"soft-delete"}},
		{"soft delete 7 days", update(storage.BucketAttrsToUpdate{SoftDeletePolicy: &storage.SoftDeletePolicy{RetentionDuration: 7 * 24 * time.Hour}}), []string{"soft-delete"}},
		{"uniform access off", update(storage.BucketAttrsToUpdate{UniformBucketLevelAccess: &storage.UniformBucketLevelAccess{}}), []string{"uniform-access"}},
		{"public access prevention inherited", update(storage.BucketAttrsToUpdate{PublicAccessPrevention: storage.PublicAccessPreventionInherited}), []string{"public-access-prevention"}},
		{"customer-managed key", update(storage.BucketAttrsToUpdate{Encryption: &storage.BucketEncryption{DefaultKMSKeyName: kmsKeyName}}), []string{"encryption"}},
		{"managed-by label removed", update(removeLabel), []string{"labels"}},
		{"iam binding dropped", func(ctx context.Context, bkt *storage.BucketHandle) error {
			h := bkt.IAM().V3()
			p, err := h.Policy(ctx)
			if err != nil {
				return err
			}
			p.Bindings = slices.DeleteFunc(p.Bindings, func(b *iampb.Binding) bool { return b.Role == "roles/storage.admin" })
			return h.SetPolicy(ctx, p)
		}, []string{"iam"}},
		{"everything at once", func(ctx context.Context, bkt *storage.BucketHandle) error {
			u := storage.BucketAttrsToUpdate{CORS: []storage.CORS{foreignCORS}, SoftDeletePolicy: &storage.SoftDeletePolicy{}, PublicAccessPrevention: storage.PublicAccessPreventionInherited}
			if _, err := bkt.Update(ctx, u); err != nil {
				return err
			}
			h := bkt.IAM().V3()
			p, err := h.Policy(ctx)
			if err != nil {
				return err
			}
			p.Bindings = slices.DeleteFunc(p.Bindings, func(b *iampb.Binding) bool { return slices.Contains(b.Members, member) })
			return h.SetPolicy(ctx, p)
		}, []string{"public-access-prevention", "soft-delete", "cors", "iam"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			b := teamBucket("ml", "wandb-ml")
			if _, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{}); err != nil {
				t.Fatal(err)
			}
			bkt := e.other.Bucket("wandb-ml")
			// Others' settings the agent must keep: a CORS entry, an IAM binding, a label.
			u := storage.BucketAttrsToUpdate{CORS: []storage.CORS{wandbCORS(), foreignCORS}}
			u.SetLabel("cost-center", "42")
			if _, err := bkt.Update(ctx, u); err != nil {
				t.Fatal(err)
			}
			h := bkt.IAM().V3()
			p, err := h.Policy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p.Bindings = append(p.Bindings, &iampb.Binding{Role: "roles/storage.objectViewer", Members: []string{foreignMember}})
			if err := h.SetPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
			if err := tt.drift(ctx, bkt); err != nil {
				t.Fatalf("drift: %v", err)
			}
			results, err := e.f.Check(ctx, b, bucketfactory.CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var wantFailed []string
			for _, setting := range tt.want {
				if setting == "labels" { // the ownership check covers the labels
					setting = "ownership"
				}
				wantFailed = append(wantFailed, setting)
			}
			f := failed(results)
			if got := slices.Sorted(maps.Keys(f)); !slices.Equal(got, slices.Sorted(slices.Values(wantFailed))) {
				t.Errorf("failed checks = %v, want %v", f, wantFailed)
			}
			for _, r := range f {
				if r.Fix == "" || r.Found == r.Expected {
					t.Errorf("imprecise failure %+v", r)
				}
			}

			e.fake.ResetCounts()
			changes, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
			if err != nil {
				t.Fatalf("ensure: %v", err)
			}
			if got := settings(changes); !slices.Equal(got, tt.want) {
				t.Errorf("changes = %v, want %v", changes, tt.want)
			}
			wantPatches := 0
			if !slices.Equal(tt.want, []string{"iam"}) {
				wantPatches = 1 // every bucket setting in one request
			}
			if got := e.fake.Counts()["PATCH /storage/v1/b/{bucket}"]; got != wantPatches {
				t.Errorf("%d patches, want %d", got, wantPatches)
			}
			rb := e.raw(t, "wandb-ml")
			if !slices.ContainsFunc(rb.Cors, func(c rawCORS) bool { return slices.Equal(c.Origin, foreignCORS.Origins) }) {
				t.Errorf("foreign CORS entry lost: %+v", rb.Cors)
			}
			if rb.Labels["cost-center"] != "42" {
				t.Errorf("foreign label lost: %v", rb.Labels)
			}
			if got := e.members(t, "wandb-ml", "roles/storage.objectViewer"); !slices.Equal(got, []string{foreignMember}) {
				t.Errorf("foreign binding lost: %s", e.fake.Policy("wandb-ml"))
			}
			e.assertSettled(t, b)
		})
	}
}

func TestOwnership(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		bucket bucketfactory.Bucket
		adopt  bool
		refuse string // OwnershipError fragment; "" means Ensure succeeds
	}{
		{"other team's", map[string]string{"byob-agent-team": "other"}, teamBucket("ml", "b-x"), true, "labelled byob-agent-team=other"},
		{"a shared bucket, for a per-team one", map[string]string{"byob-agent-shared": "gcs-main"}, teamBucket("ml", "b-x"), true, "labelled byob-agent-shared=gcs-main"},
		{"unlabelled, adoption off", nil, teamBucket("ml", "b-x"), false, "without the byob-agent-team label"},
		{"unlabelled, adoption on", map[string]string{"cost-center": "42"}, teamBucket("ml", "b-x"), true, ""},
		{"ours without managed-by", map[string]string{"byob-agent-team": "ml"}, teamBucket("ml", "b-x"), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			if err := e.other.Bucket("b-x").Create(ctx, project, &storage.BucketAttrs{Location: "us-east1", Labels: tt.labels}); err != nil {
				t.Fatal(err)
			}
			e.fake.ResetCounts()
			changes, err := e.f.Ensure(ctx, tt.bucket, bucketfactory.EnsureOptions{AdoptUntagged: tt.adopt})
			if tt.refuse != "" {
				var oe *bucketfactory.OwnershipError
				if !errors.As(err, &oe) || !strings.Contains(err.Error(), tt.refuse) {
					t.Fatalf("Ensure = %v, want an OwnershipError with %q", err, tt.refuse)
				}
				if m := e.fake.Mutations(); m != 0 || len(changes) > 0 {
					t.Errorf("a refused Ensure changed something: %v, %d mutations", changes, m)
				}
				results, err := e.f.Check(ctx, tt.bucket, bucketfactory.CheckOptions{})
				if err != nil {
					t.Fatal(err)
				}
				// A label for someone else marks the bucket foreign (adoption of a team made by hand
				// refuses it); a bucket without labels is not.
				if r, ok := failed(results)["ownership"]; !ok || r.Fix == "" || r.Foreign != tt.adopt {
					t.Errorf("check did not report ownership (foreign: %v): %v", tt.adopt, results)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if changes[0].Setting != "labels" {
				t.Errorf("first change = %v, want the labels", changes[0])
			}
			if rb := e.raw(t, "b-x"); rb.Labels["byob-agent-team"] != "ml" || rb.Labels["managed-by"] != "byob-agent" {
				t.Errorf("labels = %v", rb.Labels)
			}
			e.assertSettled(t, tt.bucket)
		})
	}
}

func TestNameOwnedByAnotherProject(t *testing.T) {
	tests := []struct {
		name  string
		fault func(gets *atomic.Int32) testenv.Fault
	}{
		{"read denied", func(*atomic.Int32) testenv.Fault {
			return func(r *http.Request) (int, bool) {
				return http.StatusForbidden, gcsfake.Route(r) == "GET /storage/v1/b/{bucket}"
			}
		}},
		{"not found, then insert conflicts and read is denied", func(gets *atomic.Int32) testenv.Fault {
			return func(r *http.Request) (int, bool) {
				switch gcsfake.Route(r) {
				case "GET /storage/v1/b/{bucket}":
					if gets.Add(1) == 1 {
						return http.StatusNotFound, true
					}
					return http.StatusForbidden, true
				case "POST /storage/v1/b":
					return http.StatusConflict, true
				}
				return 0, false
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var gets atomic.Int32
			e.fake.SetFault(tt.fault(&gets))
			b := teamBucket("ml", "taken")
			_, err := e.f.Ensure(context.Background(), b, bucketfactory.EnsureOptions{AdoptUntagged: true})
			var oe *bucketfactory.OwnershipError
			if !errors.As(err, &oe) || !strings.Contains(err.Error(), "another project") {
				t.Errorf("Ensure = %v, want an OwnershipError naming another project", err)
			}
			if _, err := e.f.Check(context.Background(), b, bucketfactory.CheckOptions{}); !errors.As(err, &oe) {
				t.Errorf("Check = %v, want an OwnershipError", err)
			}
		})
	}
}

// TestRetriesAreBounded: a bucket that keeps failing fails Ensure after maxAttempts tries, rather than
// being retried (with backoff) until the context ends, which for a one-shot sync is never.
func TestRetriesAreBounded(t *testing.T) {
	e := newEnv(t)
	e.fake.SetFault(func(*http.Request) (int, bool) { return http.StatusServiceUnavailable, true })
	_, err := e.f.Ensure(context.Background(), teamBucket("ml", "wandb-ml"), bucketfactory.EnsureOptions{})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Ensure = %v, want the 503", err)
	}
	if got := e.fake.Counts()["GET /storage/v1/b/{bucket}"]; got != maxAttempts {
		t.Errorf("%d reads of the bucket, want %d", got, maxAttempts)
	}
}

func TestSharedBucket(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	shared := func(teamName string) bucketfactory.Bucket {
		b := teamBucket(teamName, "wandb-shared")
		b.Shared, b.Storage.Shared = true, true
		return b
	}
	a, b := shared("team-a"), shared("team-b")
	if changes, err := e.f.Ensure(ctx, a, bucketfactory.EnsureOptions{}); err != nil || !slices.Equal(settings(changes), []string{"create", "iam"}) {
		t.Fatalf("first team = %v, %v", changes, err)
	}
	if changes, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{}); err != nil || len(changes) > 0 {
		t.Fatalf("second team = %v, %v; want no change", changes, err)
	}
	if rb := e.raw(t, "wandb-shared"); !reflect.DeepEqual(rb.Labels, map[string]string{"managed-by": "byob-agent", "byob-agent-shared": "gcs-main"}) {
		t.Errorf("labels = %v", rb.Labels)
	}
	for _, tb := range []bucketfactory.Bucket{a, b} {
		if err := bucketfactory.Verify(ctx, e.f, tb); err != nil {
			t.Errorf("verify %s: %v", tb.Team, err)
		}
	}
	var oe *bucketfactory.OwnershipError
	if _, err := e.f.Ensure(ctx, teamBucket("team-a", "wandb-shared"), bucketfactory.EnsureOptions{AdoptUntagged: true}); !errors.As(err, &oe) {
		t.Errorf("per-team Ensure on the shared bucket = %v, want an OwnershipError", err)
	}
}

func TestCheckReportsEachFailure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	bkt := e.other.Bucket("wandb-bad")
	if err := bkt.Create(ctx, project, &storage.BucketAttrs{Location: "europe-west4", Labels: map[string]string{"byob-agent-team": "ml"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bkt.Update(ctx, storage.BucketAttrsToUpdate{
		SoftDeletePolicy: &storage.SoftDeletePolicy{},
		Encryption:       &storage.BucketEncryption{DefaultKMSKeyName: "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k"},
		CORS:             []storage.CORS{{Origins: []string{"*"}, Methods: []string{"GET", "HEAD", "PUT"}, MaxAge: 3000 * time.Second}},
	}); err != nil {
		t.Fatal(err)
	}
	b := teamBucket("ml", "wandb-bad")
	results, err := e.f.Check(ctx, b, bucketfactory.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ found, fix string }{
		"ownership":                {"missing labels managed-by=byob-agent", "label the bucket managed-by=byob-agent"},
		"location":                 {"location EUROPE-WEST4", "the bucket is in EUROPE-WEST4; W&B team storage cannot move: set the profile's location (or the team's region) to EUROPE-WEST4"},
		"uniform-access":           {"uniform bucket-level access off", "turn on uniform bucket-level access; byob-agent sync repairs it"},
		"public-access-prevention": {"public access prevention inherited", "set public access prevention to enforced; byob-agent sync repairs it"},
		"encryption":               {"default KMS key projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k", "remove the bucket's default KMS key"},
		"soft-delete":              {"soft delete retention off", "set soft delete retention to 30 days"},
		"cors":                     {"origins *, methods GET,HEAD,PUT, response headers none, max age 3000 s", "response header ETag"},
		"iam":                      {"not granted: roles/storage.admin, roles/storage.objectAdmin", "grant roles/storage.admin and roles/storage.objectAdmin on bucket wandb-bad to " + member},
	}
	f := failed(results)
	if len(f) != len(want) {
		t.Errorf("failed = %v, want exactly %d failures", f, len(want))
	}
	for check, w := range want {
		r, ok := f[check]
		if !ok {
			t.Errorf("%s passed, want a failure", check)
			continue
		}
		if r.Found != w.found || !strings.Contains(r.Fix, w.fix) || r.Expected == "" {
			t.Errorf("%s = %+v, want found %q and a fix with %q", check, r, w.found, w.fix)
		}
	}

	// The location cannot be repaired: Ensure refuses before writing anything.
	e.fake.ResetCounts()
	if _, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{}); err == nil || !strings.Contains(err.Error(), "is in EUROPE-WEST4, not us-east1") {
		t.Errorf("Ensure in the wrong location = %v", err)
	}
	if m := e.fake.Mutations(); m != 0 {
		t.Errorf("Ensure in the wrong location made %d mutations", m)
	}

	results, err = e.f.Check(ctx, teamBucket("ml", "wandb-none"), bucketfactory.CheckOptions{Probe: true})
	if err != nil || len(results) != 1 || results[0].Check != "exists" || results[0].OK || results[0].Fix == "" {
		t.Errorf("check of a missing bucket = %v, %v", results, err)
	}
}

func TestProbeFailure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := teamBucket("ml", "wandb-ml")
	if _, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{}); err != nil {
		t.Fatal(err)
	}
	e.fake.SetFault(func(r *http.Request) (int, bool) {
		return http.StatusForbidden, gcsfake.Route(r) == "POST /upload/storage/v1/b/{bucket}/o"
	})
	err := bucketfactory.Verify(ctx, e.f, b)
	var ve *bucketfactory.VerifyError
	if !errors.As(err, &ve) || len(ve.Failures) != 1 || ve.Failures[0].Check != "probe" || !strings.Contains(ve.Failures[0].Found, "write failed") {
		t.Errorf("Verify with writes denied = %v", err)
	}
}

// TestRaces makes another writer change the bucket between the agent's read and its write: the write
// gets 412, and the agent reads again and writes once more without losing the other writer's change.
func TestRaces(t *testing.T) {
	tests := []struct {
		route string
		other func(context.Context, *storage.BucketHandle) error
		drift storage.BucketAttrsToUpdate
		check func(*testing.T, *env)
	}{
		{
			route: "PATCH /storage/v1/b/{bucket}",
			drift: storage.BucketAttrsToUpdate{CORS: []storage.CORS{}},
			other: func(ctx context.Context, bkt *storage.BucketHandle) error {
				u := storage.BucketAttrsToUpdate{}
				u.SetLabel("cost-center", "42")
				_, err := bkt.Update(ctx, u)
				return err
			},
			check: func(t *testing.T, e *env) {
				if rb := e.raw(t, "wandb-ml"); rb.Labels["cost-center"] != "42" || len(rb.Cors) != 1 {
					t.Errorf("after the race: %s", e.fake.Bucket("wandb-ml"))
				}
			},
		},
		{
			route: "PUT /storage/v1/b/{bucket}/iam",
			other: func(ctx context.Context, bkt *storage.BucketHandle) error {
				h := bkt.IAM().V3()
				p, err := h.Policy(ctx)
				if err != nil {
					return err
				}
				p.Bindings = append(p.Bindings, &iampb.Binding{Role: "roles/storage.objectViewer", Members: []string{foreignMember}})
				return h.SetPolicy(ctx, p)
			},
			check: func(t *testing.T, e *env) {
				if got := e.members(t, "wandb-ml", "roles/storage.objectViewer"); !slices.Equal(got, []string{foreignMember}) {
					t.Errorf("the other writer's binding was lost: %s", e.fake.Policy("wandb-ml"))
				}
				if got := e.members(t, "wandb-ml", "roles/storage.admin"); !slices.Equal(got, []string{member}) {
					t.Errorf("W&B's binding is missing: %s", e.fake.Policy("wandb-ml"))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			b := teamBucket("ml", "wandb-ml")
			if _, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{}); err != nil {
				t.Fatal(err)
			}
			bkt := e.other.Bucket("wandb-ml")
			// Drift that makes the agent write: the CORS entry, or W&B's IAM binding.
			if _, err := bkt.Update(ctx, tt.drift); err != nil {
				t.Fatal(err)
			}
			if tt.route == "PUT /storage/v1/b/{bucket}/iam" {
				h := bkt.IAM().V3()
				p, err := h.Policy(ctx)
				if err != nil {
					t.Fatal(err)
				}
				p.Bindings = slices.DeleteFunc(p.Bindings, func(b *iampb.Binding) bool { return slices.Contains(b.Members, member) })
				if err := h.SetPolicy(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			var raced atomic.Bool
			otherErr := make(chan error, 1)
			e.fake.SetFault(func(r *http.Request) (int, bool) {
				if gcsfake.Route(r) == tt.route && raced.CompareAndSwap(false, true) {
					otherErr <- tt.other(ctx, bkt) // the fault hook runs outside the fake's lock
				}
				return 0, false
			})
			e.fake.ResetCounts()
			changes, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
			if err != nil {
				t.Fatalf("Ensure = %v", err)
			}
			select {
			case err := <-otherErr:
				if err != nil {
					t.Fatalf("other writer: %v", err)
				}
			default:
				t.Fatal("the other writer never ran")
			}
			if len(changes) != 1 {
				t.Errorf("changes = %v, want one", changes)
			}
			// The agent's write, the other writer's, and the agent's second write.
			if got := e.fake.Counts()[tt.route]; got != 3 {
				t.Errorf("%s requests = %d, want 3", tt.route, got)
			}
			tt.check(t, e)
			e.fake.SetFault(nil)
			e.assertSettled(t, b)
		})
	}
}

func TestNew(t *testing.T) {
	_, keyFile := testKey()
	tests := []struct {
		name string
		mod  func(*Options)
		bad  string
	}{
		{"valid", func(*Options) {}, ""},
		{"soft delete off", func(o *Options) { o.SoftDeleteDays = 0 }, "W&B refuses buckets without soft delete"},
		{"soft delete too short", func(o *Options) { o.SoftDeleteDays = 6 }, "7 to 90"},
		{"soft delete too long", func(o *Options) { o.SoftDeleteDays = 91 }, "7 to 90"},
		{"no principal", func(o *Options) { o.Principal = "" }, "service account email"},
		{"credentials not JSON", func(o *Options) { o.CredentialsJSON = keyFile[:len(keyFile)/2] }, "not valid JSON"},
		{"user credentials", func(o *Options) { o.CredentialsJSON = []byte(`{"type":"authorized_user","refresh_token":"x"}`) }, "needs a service account key"},
		{"key without email", func(o *Options) {
			o.CredentialsJSON = []byte(`{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----"}`)
		}, "no client_email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Location: "us", WithoutAuthentication: true, Principal: principal, SoftDeleteDays: 7, CredentialsJSON: keyFile}
			tt.mod(&o)
			f, err := New(context.Background(), o)
			if (tt.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
				t.Fatalf("New = %v, want %q", err, tt.bad)
			}
			if err != nil {
				assertNoSecret(t, err.Error())
				return
			}
			f.Close()
		})
	}
}

func TestBucketRefusedBeforeAnyRequest(t *testing.T) {
	e := newEnv(t)
	shared := teamBucket("ml", "wandb-x")
	shared.Shared, shared.Profile = true, "GCS Main"
	tests := []struct {
		name string
		mod  func(*bucketfactory.Bucket)
		bad  string
	}{
		{"wrong provider", func(b *bucketfactory.Bucket) { b.Storage.Provider = team.ProviderAWS }, "this factory serves \"gcs\""},
		{"bad name", func(b *bucketfactory.Bucket) { b.Storage.Bucket = "google-x" }, "google"},
		{"bad path", func(b *bucketfactory.Bucket) { b.Storage.Path = "/x" }, "begin or end"},
		{"profile not a label value", func(b *bucketfactory.Bucket) { *b = shared }, "cannot be the value of GCS label byob-agent-shared"},
		{"other endpoint", func(b *bucketfactory.Bucket) { b.Storage.Endpoint = "https://storage.example.com/" }, "wants endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := teamBucket("ml", "wandb-x")
			tt.mod(&b)
			if _, err := e.f.Ensure(context.Background(), b, bucketfactory.EnsureOptions{}); err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("Ensure = %v, want %q", err, tt.bad)
			}
			if _, err := e.f.Check(context.Background(), b, bucketfactory.CheckOptions{}); err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("Check = %v, want %q", err, tt.bad)
			}
		})
	}
	if n := len(e.fake.Counts()); n != 0 {
		t.Errorf("requests were made: %v", e.fake.Counts())
	}

	noProject := newEnv(t, func(o *Options) { o.Project = "" })
	if _, err := noProject.f.Ensure(context.Background(), teamBucket("ml", "wandb-x"), bucketfactory.EnsureOptions{}); err == nil || !strings.Contains(err.Error(), "no project") {
		t.Errorf("Ensure without a project = %v", err)
	}
	noLocation := newEnv(t, func(o *Options) { o.Location = "" })
	if _, err := noLocation.f.Ensure(context.Background(), teamBucket("ml", "wandb-x"), bucketfactory.EnsureOptions{}); err == nil || !strings.Contains(err.Error(), "no location") {
		t.Errorf("Ensure without a location = %v", err)
	}
	regional := teamBucket("ml", "wandb-eu")
	regional.Storage.Region = "europe-west4"
	if _, err := noLocation.f.Ensure(context.Background(), regional, bucketfactory.EnsureOptions{}); err != nil {
		t.Errorf("Ensure with the team's region = %v", err)
	}
	if got := noLocation.raw(t, "wandb-eu").Location; got != "EUROPE-WEST4" {
		t.Errorf("location = %s, want the team's region", got)
	}
}

func TestAddress(t *testing.T) {
	pemKey, _ := testKey()
	e := newEnv(t)
	b := teamBucket("ml", "wandb-ml")
	addr, err := e.f.Address(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "gs://"+saEmail+":-----BEGIN%20PRIVATE%20KEY-----%0A") || !strings.HasSuffix(addr, "%0A@wandb-ml") {
		t.Errorf("address does not have the form gs://<email>:<encoded key>@<bucket>")
	}
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatalf("address does not parse as a URL: %v", err)
	}
	pw, _ := u.User.Password()
	if u.Scheme != "gs" || u.Host != "wandb-ml" || u.User.Username() != saEmail || pw != pemKey {
		t.Errorf("url.Parse gives scheme %q host %q user %q and a password equal to the key: %t", u.Scheme, u.Host, u.User.Username(), pw == pemKey)
	}
	encoded := strings.TrimSuffix(strings.TrimPrefix(addr, "gs://"+saEmail+":"), "@wandb-ml")
	for name, unescape := range map[string]func(string) (string, error){"QueryUnescape": url.QueryUnescape, "PathUnescape": url.PathUnescape} {
		if got, err := unescape(encoded); err != nil || got != pemKey {
			t.Errorf("%s does not give the key back (err %v)", name, err)
		}
	}
	// Every byte of the base64 body survives, "+" and "/" included.
	for key, want := range map[string]string{"a+b/c=\n d": "a%2Bb%2Fc%3D%0A%20d"} {
		if got := escapeKey(key); got != want {
			t.Errorf("escapeKey(%q) = %q, want %q", key, got, want)
		}
	}

	adc := newEnv(t, func(o *Options) { o.CredentialsJSON = nil })
	if _, err := adc.f.Address(context.Background(), b); err == nil || !strings.Contains(err.Error(), "needs a service account key") {
		t.Errorf("Address without a key = %v", err)
	}
}

// assertNoSecret fails when s holds the test key's private key or any line of it.
func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	pemKey, _ := testKey()
	for _, line := range strings.Split(pemKey, "\n") {
		if len(line) > 20 && !strings.Contains(line, "PRIVATE KEY") && (strings.Contains(s, line) || strings.Contains(s, url.QueryEscape(line))) {
			t.Fatalf("a line of the private key appears in %q", s)
		}
	}
}

func TestSecretsNeverAppear(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var texts []string
	collect := func(changes []bucketfactory.Change, results []bucketfactory.CheckResult, err error) {
		for _, c := range changes {
			texts = append(texts, c.String())
		}
		for _, r := range results {
			texts = append(texts, fmt.Sprintf("%+v", r))
		}
		if err != nil {
			texts = append(texts, err.Error())
		}
	}
	b := teamBucket("ml", "wandb-ml")
	changes, err := e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
	collect(changes, nil, err)
	results, err := e.f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
	collect(nil, results, err)
	// Failures too: a foreign bucket, a failing probe, a failing update.
	if err := e.other.Bucket("foreign").Create(ctx, project, &storage.BucketAttrs{Location: "us-east1", Labels: map[string]string{"byob-agent-team": "x"}}); err != nil {
		t.Fatal(err)
	}
	changes, err = e.f.Ensure(ctx, teamBucket("ml", "foreign"), bucketfactory.EnsureOptions{})
	collect(changes, nil, err)
	e.fake.SetFault(func(r *http.Request) (int, bool) { return http.StatusInternalServerError, r.Method != http.MethodGet })
	results, err = e.f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
	collect(nil, results, err)
	e.fake.SetFault(func(*http.Request) (int, bool) { return http.StatusBadRequest, true })
	changes, err = e.f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
	collect(changes, nil, err)
	texts = append(texts, fmt.Sprintf("%v %+v", e.f, e.f))
	if len(texts) < 10 {
		t.Fatalf("too little was collected: %q", texts)
	}
	for _, s := range texts {
		assertNoSecret(t, s)
	}
}

func TestMergeCORS(t *testing.T) {
	ours := wandbCORS()
	foreign := storage.CORS{Origins: []string{"https://a.example"}, Methods: []string{"GET"}}
	broader := storage.CORS{Origins: []string{"https://a.example", "*"}, Methods: []string{"get", "head", "put", "post"}, ResponseHeaders: []string{"Content-Type", "etag"}, MaxAge: time.Hour}
	tests := []struct {
		name    string
		in      []storage.CORS
		want    []storage.CORS
		changed bool
	}{
		{"none", nil, []storage.CORS{ours}, true},
		{"ours already", []storage.CORS{foreign, ours}, []storage.CORS{foreign, ours}, false},
		{"broader entry serves", []storage.CORS{broader}, []storage.CORS{broader}, false},
		{"foreign only: ours goes first", []storage.CORS{foreign}, []storage.CORS{ours, foreign}, true},
		{"no ETag exposed", []storage.CORS{{Origins: []string{"*"}, Methods: []string{"GET", "HEAD", "PUT"}}}, []storage.CORS{ours, {Origins: []string{"*"}, Methods: []string{"GET", "HEAD", "PUT"}}}, true},
		{"PUT missing", []storage.CORS{{Origins: []string{"*"}, Methods: []string{"GET", "HEAD"}, ResponseHeaders: []string{"ETag"}}}, []storage.CORS{ours, {Origins: []string{"*"}, Methods: []string{"GET", "HEAD"}, ResponseHeaders: []string{"ETag"}}}, true},
		{"specific origin only", []storage.CORS{{Origins: []string{"https://wandb.ai"}, Methods: []string{"GET", "HEAD", "PUT"}, ResponseHeaders: []string{"ETag"}}}, []storage.CORS{ours, {Origins: []string{"https://wandb.ai"}, Methods: []string{"GET", "HEAD", "PUT"}, ResponseHeaders: []string{"ETag"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got, changed := mergeCORS(tt.in)
			if changed != tt.changed || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mergeCORS = %v, %t; want %v, %t", got, changed, tt.want, tt.changed)
			}
			if !reflect.DeepEqual(in, tt.in) {
				t.Errorf("input modified")
			}
		})
	}
}

func TestGrantRoles(t *testing.T) {
	admin, objAdmin := "roles/storage.admin", "roles/storage.objectAdmin"
	cond := &iampb.Binding{Role: admin, Members: []string{member}, Condition: &expr.Expr{Title: "weekdays", Expression: "request.time.getDayOfWeek() < 5"}}
	tests := []struct {
		name  string
		in    []*iampb.Binding
		want  []*iampb.Binding
		added []string
	}{
		{"empty policy", nil,
			[]*iampb.Binding{{Role: admin, Members: []string{member}}, {Role: objAdmin, Members: []string{member}}}, []string{admin, objAdmin}},
		{"joins existing bindings",
			[]*iampb.Binding{{Role: admin, Members: []string{foreignMember}}, {Role: "roles/storage.objectViewer", Members: []string{"allUsers"}}},
			[]*iampb.Binding{{Role: admin, Members: []string{foreignMember, member}}, {Role: "roles/storage.objectViewer", Members: []string{"allUsers"}}, {Role: objAdmin, Members: []string{member}}},
			[]string{admin, objAdmin}},
		{"already granted, email in other case",
			[]*iampb.Binding{{Role: admin, Members: []string{strings.ToUpper(member[:20]) + member[20:]}}, {Role: objAdmin, Members: []string{member}}},
			[]*iampb.Binding{{Role: admin, Members: []string{strings.ToUpper(member[:20]) + member[20:]}}, {Role: objAdmin, Members: []string{member}}},
			nil},
		{"a conditional grant does not count", []*iampb.Binding{cond, {Role: objAdmin, Members: []string{member}}},
			[]*iampb.Binding{cond, {Role: objAdmin, Members: []string{member}}, {Role: admin, Members: []string{member}}}, []string{admin}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneBindings(tt.in)
			got, added := grantRoles(tt.in, member, wandbRoles)
			if !slices.Equal(added, tt.added) || !equalBindings(got, tt.want) {
				t.Errorf("grantRoles = %v, %v; want %v, %v", got, added, tt.want, tt.added)
			}
			if !equalBindings(tt.in, before) {
				t.Errorf("input modified: %v", tt.in)
			}
			if missing := missingRoles(got, member, wandbRoles); len(missing) > 0 {
				t.Errorf("still missing after grant: %v", missing)
			}
		})
	}
}

func cloneBindings(bs []*iampb.Binding) []*iampb.Binding {
	out := make([]*iampb.Binding, len(bs))
	for i, b := range bs {
		out[i] = proto.Clone(b).(*iampb.Binding)
	}
	return out
}

func equalBindings(a, b []*iampb.Binding) bool {
	return slices.EqualFunc(a, b, func(x, y *iampb.Binding) bool { return proto.Equal(x, y) })
}
