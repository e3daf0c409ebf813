package s3bucket

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/team"
)

const (
	cwPrincipal = "arn:aws:iam::wandb:static/wandb-integration-public"
	testOrgID   = "org-8f3a"
	testCWOrg   = "cw4b2d"
	// cwPrefix starts every CoreWeave test bucket: the test proxy keeps their policies (InterceptPolicies).
	cwPrefix = "coreweave-"
)

// testCoreWeaveFactory is a coreweave Factory for pure tests: no client.
func testCoreWeaveFactory() *Factory {
	return &Factory{provider: team.ProviderCoreWeave, principal: cwPrincipal, partition: "aws", orgID: testOrgID, orgWide: testCWOrg}
}

// cwBucket is a fresh coreweave bucket spec whose policy requests the test proxy intercepts.
func cwBucket() bucketfactory.Bucket {
	name := cwPrefix + strings.ToLower(rand.Text()[:10])
	return bucketfactory.Bucket{Team: name, Storage: team.Storage{Provider: team.ProviderCoreWeave, Bucket: name, Path: "wandb"}}
}

// flattenJSON maps every leaf of a decoded JSON value to its JSON text by path
// ("Statement[0].Principal.CW"), so that two documents can be compared field by field.
func flattenJSON(prefix string, v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			flattenJSON(strings.TrimPrefix(prefix+"."+k, "."), x, out)
		}
	case []any:
		for i, x := range v {
			flattenJSON(fmt.Sprintf("%s[%d]", prefix, i), x, out)
		}
	default:
		out[prefix] = mustMarshal(v)
	}
}

func TestCoreWeavePolicyGolden(t *testing.T) {
	const wandb = `{"Sid":"WandbAccess","Effect":"Allow","Principal":{"CW":"arn:aws:iam::wandb:static/wandb-integration-public"},
		"Action":["s3:GetObject*","s3:GetEncryptionConfiguration","s3:ListBucket","s3:ListBucketMultipartUploads",
			"s3:ListBucketVersions","s3:AbortMultipartUpload","s3:DeleteObject","s3:PutObject",
			"s3:GetBucketCORS","s3:GetBucketLocation","s3:GetBucketVersioning"],
		"Resource":["arn:aws:s3:::wandb-ml","arn:aws:s3:::wandb-ml/*"],
		"Condition":{"StringLike":{"wandb:OrgID":["org-8f3a"]}}}`
	const orgWide = `{"Sid":"OrgWideAccess","Effect":"Allow","Principal":{"CW":"arn:aws:iam::cw4b2d:*"},"Action":"s3:*",
		"Resource":["arn:aws:s3:::wandb-ml","arn:aws:s3:::wandb-ml/*"]}`
	tests := []struct {
		name, orgWide, want string
	}{
		{"W&B statement only", "", `{"Version":"2012-10-17","Statement":[` + wandb + `]}`},
		{"with org-wide access", testCWOrg, `{"Version":"2012-10-17","Statement":[` + wandb + `,` + orgWide + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testCoreWeaveFactory()
			f.orgWide = tt.orgWide
			var stmts []statement
			for _, g := range f.bucketGrants("wandb-ml") {
				stmts = append(stmts, g.stmt)
			}
			got, want := map[string]string{}, map[string]string{}
			flattenJSON("", decodeJSON(t, newPolicy(stmts)), got)
			flattenJSON("", decodeJSON(t, tt.want), want)
			paths := maps.Clone(got)
			maps.Copy(paths, want)
			for _, path := range slices.Sorted(maps.Keys(paths)) {
				if got[path] != want[path] {
					t.Errorf("%s = %s, want %s", path, orNone(got[path]), orNone(want[path]))
				}
			}
		})
	}
}

func TestCoreWeaveClientDefaults(t *testing.T) {
	f, err := New(t.Context(), Options{
		Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", PrincipalARN: cwPrincipal, OrgID: testOrgID,
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	o := f.s3.Options()
	if got := aws.ToString(o.BaseEndpoint); got != "https://cwobject.com" {
		t.Errorf("endpoint = %q, want https://cwobject.com", got)
	}
	if o.UsePathStyle {
		t.Error("path-style addressing on; CoreWeave needs virtual-hosted style")
	}
	hc, ok := o.HTTPClient.(*http.Client)
	if !ok {
		t.Fatalf("HTTP client is a %T, want the agent's *http.Client", o.HTTPClient)
	}
	tr := innermost(t, hc.Transport)
	if tc := tr.TLSClientConfig; tc == nil || tc.MinVersion != tls.VersionTLS13 {
		t.Errorf("TLS config %+v, want MinVersion TLS 1.3", tc)
	}
}

// innermost unwraps the agent's transport wrappers down to the *http.Transport.
func innermost(t *testing.T, rt http.RoundTripper) *http.Transport {
	t.Helper()
	for {
		switch v := rt.(type) {
		case *http.Transport:
			return v
		case interface{ Unwrap() http.RoundTripper }:
			rt = v.Unwrap()
		default:
			t.Fatalf("transport %T is neither an *http.Transport nor a wrapper of one", rt)
		}
	}
}

// TestCoreWeaveRequiresTLS13 talks to real TLS servers on 127.0.0.1: one that offers at most TLS 1.2
// must be refused, one that offers 1.3 accepted.
func TestCoreWeaveRequiresTLS13(t *testing.T) {
	// The caller's AWS_CA_BUNDLE, if set, is added to the test server's roots: the agent's client must
	// still load and trust the server.
	tests := []struct {
		name      string
		serverMax uint16
		wantErr   string
	}{
		{"TLS 1.2 server refused", tls.VersionTLS12, "protocol version"},
		{"TLS 1.3 server accepted", tls.VersionTLS13, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.NotFoundHandler()) // every bucket is missing
			srv.TLS = &tls.Config{MaxVersion: tt.serverMax}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			defer srv.Close()
			f, err := New(t.Context(), Options{
				Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", Endpoint: srv.URL, PathStyle: true,
				PrincipalARN: cwPrincipal, OrgID: testOrgID, TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig,
				Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
			})
			if err != nil {
				t.Fatal(err)
			}
			results, err := f.Check(t.Context(), cwBucket(), bucketfactory.CheckOptions{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Check against a %s server = %v, %v; want an error containing %q", tt.name, results, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(resultList(results), []string{"exists FAIL"}) {
				t.Errorf("Check = %v, %v; want the bucket reported missing", resultList(results), err)
			}
		})
	}
}

func TestCoreWeaveRejectsBadSpec(t *testing.T) {
	f, err := New(t.Context(), Options{
		Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		PrincipalARN: cwPrincipal, OrgID: testOrgID, Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*bucketfactory.Bucket)
		want   string
	}{
		{"KMS key", func(b *bucketfactory.Bucket) { b.KMSKeyARN = "arn:aws:kms:x:1:key/y" }, "takes no KMS key"},
		{"LOTA endpoint", func(b *bucketfactory.Bucket) { b.Storage.Endpoint = "http://us-east-04a.cwlota.com" }, "LOTA endpoint"},
		{"reserved name", func(b *bucketfactory.Bucket) { b.Storage.Bucket = "cw-ml" }, "cw- or vip-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := cwBucket()
			tt.change(&b)
			if _, err := f.Ensure(t.Context(), b, bucketfactory.EnsureOptions{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ensure error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// proxyClient is an admin S3 client that goes through the counting proxy, so that its policy requests
// reach the proxy's policy store.
func proxyClient(env *testenv.S3Env) *s3.Client {
	return s3.New(s3.Options{
		Region: env.Region, BaseEndpoint: aws.String(env.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(env.AccessKey, env.SecretKey, ""),
	})
}

func TestCoreWeaveBucket(t *testing.T) {
	env := s3Env(t)
	ctx := t.Context()
	f := newTestFactory(t, env, team.ProviderCoreWeave)
	b := cwBucket()
	grants := f.bucketGrants(b.Storage.Bucket)
	allOK := []string{"exists ok", "ownership ok", "cors ok", "policy ok", "org-wide-access ok", "probe ok"}

	env.ResetCounts()
	changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
	if got, want := settings(changes), []string{"create", "tags", "cors", "policy"}; !slices.Equal(got, want) {
		t.Errorf("first Ensure changed %v, want %v", got, want)
	}
	counts := env.S3Counts()
	if counts["PUT ?policy"] != 1 {
		t.Errorf("first Ensure: %v, want one PUT ?policy", counts)
	}
	for op := range counts {
		// CoreWeave encrypts at rest and documents neither setting: the profile must not even read them.
		if strings.Contains(op, "encryption") || strings.Contains(op, "ownershipControls") || strings.Contains(op, "publicAccessBlock") {
			t.Errorf("coreweave Ensure called %q", op)
		}
	}
	doc, ok := env.InterceptedPolicy(b.Storage.Bucket)
	if !ok || !equalPolicyJSON(decodeJSON(t, doc), decodeJSON(t, newPolicy([]statement{grants[0].stmt, grants[1].stmt}))) {
		t.Errorf("stored policy = %s (stored %v), want W&B's and the org-wide statement", doc, ok)
	}

	results, err := f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := resultList(results); !slices.Equal(got, allOK) {
		t.Errorf("Check after Ensure = %v, want %v", got, allOK)
	}
	checkResultShape(t, results)

	env.ResetCounts()
	if changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{}); len(changes) != 0 || env.S3Mutations() != 0 {
		t.Errorf("second Ensure changed %v with %d mutating calls, want none: %v", changes, env.S3Mutations(), env.S3Counts())
	}

	t.Run("W&B statement without the org condition is repaired", func(t *testing.T) {
		unconditioned := statement{}
		for k, v := range grants[0].stmt {
			if k != "Condition" {
				unconditioned[k] = v
			}
		}
		if _, err := proxyClient(env).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{
			Bucket: aws.String(b.Storage.Bucket), Policy: aws.String(newPolicy([]statement{unconditioned, grants[1].stmt})),
		}); err != nil {
			t.Fatal(err)
		}
		results, err := f.Check(ctx, b, bucketfactory.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(results, func(r bucketfactory.CheckResult) bool { return r.Check == "policy" })
		if i < 0 || results[i].OK || !strings.HasSuffix(results[i].Expected, "if wandb:OrgID is "+testOrgID) || !strings.HasPrefix(results[i].Found, "not granted: s3:GetObject*") {
			t.Errorf("Check of a policy without the org condition = %v, want policy failed", results)
		}
		env.ResetCounts()
		if got := settings(mustEnsure(t, f, b, bucketfactory.EnsureOptions{})); !slices.Equal(got, []string{"policy"}) {
			t.Errorf("Ensure changed %v, want [policy]", got)
		}
		if n, c := env.S3Mutations(), env.S3Counts()["PUT ?policy"]; n != 1 || c != 1 {
			t.Errorf("Ensure made %d mutating calls, want one PUT ?policy: %v", n, env.S3Counts())
		}
		doc, _ := env.InterceptedPolicy(b.Storage.Bucket)
		if _, stmts, err := parsePolicy(doc); err != nil || len(stmts) != 2 || !equalPolicyJSON(stmts[0], grants[0].stmt) {
			t.Errorf("policy after repair = %s, want W&B's statement replaced in place", doc)
		}
		if err := bucketfactory.Verify(ctx, f, b); err != nil {
			t.Errorf("Verify after repair: %v", err)
		}
	})
}
