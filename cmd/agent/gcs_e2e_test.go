package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/byob-agent/byob-agent/internal/testsupport/gcsfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
)

// serviceAccountKey writes a service account key whose token endpoint is a local token server, so the
// agent authenticates to the GCS fake the way it would to Google, with a real signed JWT grant.
func serviceAccountKey(t *testing.T, dir string, tokens *atomic.Int32) (path, privateKeyPEM string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	privateKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokenSrv.Close)
	sa := map[string]string{
		"type": "service_account", "project_id": "acme-ml", "private_key_id": "k1",
		"private_key": privateKeyPEM, "client_email": "byob-agent@acme-ml.iam.gserviceaccount.com",
		"client_id": "1", "token_uri": tokenSrv.URL + "/token",
	}
	raw, _ := json.Marshal(sa)
	path = filepath.Join(dir, "sa.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, privateKeyPEM
}

// gcsChecker does W&B's checks of a GCS bucket against the GCS fake: soft delete, CORS, and the grant
// of dedicated W&B's service account.
func gcsChecker(gcs *gcsfake.Server) wandbemu.GCSChecker {
	return wandbemu.GCSChecker{Endpoint: gcs.URL(), ServiceAccount: "deploy@wandb-production.iam.gserviceaccount.com"}
}

func TestGCSEndToEnd(t *testing.T) {
	e := newE2E(t)
	gcs := gcsfake.Start(t)
	var tokens atomic.Int32
	keyFile, privateKey := serviceAccountKey(t, e.dir, &tokens)
	e.emu = wandbemu.New(wandbemu.Options{APIKey: apiKey, Checker: wandbemu.ByProvider{"GCP": gcsChecker(gcs)}})
	srv := httptest.NewServer(e.emu)
	t.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`wandb:
  scimURL: %s/scim
  deployment: dedicated
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
state:
  path: state.db
profiles:
  gcs:
    provider: gcs
    project: acme-ml
    region: us-central1
    endpoint: %s
    credentials: {serviceAccountKeyFile: %s}
    bucket: "%s-{{ .Team }}"
    softDeleteDays: 14
teams:
  - name: %s
`, srv.URL, gcs.Endpoint(), keyFile, e.prefix, e.team("vision"))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("sync")
	if !strings.Contains(out.stdout, "1 created") {
		t.Fatalf("sync:\n%s", out.stdout)
	}
	bucket := e.prefix + "-" + e.team("vision")
	var attrs struct {
		Labels           map[string]string `json:"labels"`
		SoftDeletePolicy struct {
			RetentionDurationSeconds string `json:"retentionDurationSeconds"`
		} `json:"softDeletePolicy"`
	}
	if err := json.Unmarshal(gcs.Bucket(bucket), &attrs); err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	if attrs.Labels["managed-by"] != "byob-agent" || attrs.Labels["byob-agent-team"] != e.team("vision") || attrs.SoftDeletePolicy.RetentionDurationSeconds != "1209600" {
		t.Errorf("bucket attrs = %+v", attrs)
	}
	if policy := string(gcs.Policy(bucket)); !strings.Contains(policy, "serviceAccount:deploy@wandb-production.iam.gserviceaccount.com") {
		t.Errorf("IAM policy lacks W&B's dedicated service account: %s", policy)
	}
	if g := e.emu.Groups(); len(g) != 1 || g[0].StorageBucket.Provider != "GCP" || g[0].StorageBucket.Name != bucket {
		t.Errorf("W&B teams: %+v", g)
	}
	if tokens.Load() == 0 {
		t.Error("the agent never fetched a token: requests went unauthenticated")
	}

	gcs.ResetCounts()
	e.mustRun("sync")
	if n := gcs.Mutations(); n != 0 {
		t.Errorf("second sync made %d GCS mutations", n)
	}
	doc := e.mustRun("doctor")
	if !strings.Contains(doc.stdout, "soft-delete=pass") || !strings.Contains(doc.stdout, "iam=pass") {
		t.Errorf("doctor:\n%s", doc.stdout)
	}
	stores := filepath.Join(e.dir, "stores")
	e.mustRun("file-stores", "--output", stores)
	raw, _ := os.ReadFile(stores)
	if !strings.HasPrefix(string(raw), "gs://byob-agent@acme-ml.iam.gserviceaccount.com:") || strings.Contains(string(raw), privateKey) {
		t.Errorf("file-stores = %.60q... (want the key URL-encoded)", raw)
	}
	for _, r := range []runResult{out, doc} {
		if strings.Contains(r.stdout+r.stderr, "PRIVATE KEY") {
			t.Error("the private key was printed")
		}
	}
}
