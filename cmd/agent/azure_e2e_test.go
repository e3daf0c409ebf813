package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
)

func TestAzureEndToEnd(t *testing.T) {
	e := newE2E(t)
	az := azurite.Get(t)
	ctx := t.Context()
	// Another admin's CORS rule on the account must survive.
	foreign := &service.CORSRule{AllowedOrigins: toPtr("https://portal.example"), AllowedMethods: toPtr("GET"),
		AllowedHeaders: toPtr("x-ms-meta-*"), ExposedHeaders: toPtr("x-ms-meta-*"), MaxAgeInSeconds: int32Ptr(60)}
	if _, err := az.AdminClient().ServiceClient().SetProperties(ctx, &service.SetPropertiesOptions{CORS: []*service.CORSRule{foreign}}); err != nil {
		t.Fatal(err)
	}
	checker, err := wandbemu.NewAzureChecker(az.Endpoint, az.Account, az.Key)
	if err != nil {
		t.Fatal(err)
	}
	e.emu = wandbemu.New(wandbemu.Options{APIKey: apiKey, Checker: wandbemu.ByProvider{"AZURE": checker}})
	srv := httptest.NewServer(e.emu)
	t.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`wandb:
  scimURL: %s/scim
  deployment: self-managed
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
state:
  path: state.db
profiles:
  azure:
    provider: azure
    account: %s
    endpoint: %s
    credentials: {accountKey: "${TEST_AZURE_KEY}"}
    tenantId: 11111111-2222-3333-4444-555555555555
    clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
    bucket: "%s-{{ .Team }}"
    softDeleteDays: 10
teams:
  - name: %s
  - name: %s
`, srv.URL, az.Account, az.Endpoint, e.prefix, e.team("speech"), e.team("audio"))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("sync")
	if !strings.Contains(out.stdout, "2 created") {
		t.Fatalf("sync:\n%s", out.stdout)
	}
	for _, g := range e.emu.Groups() {
		sb := g.StorageBucket
		if sb.Provider != "AZURE" || sb.Name != e.prefix+"-"+g.DisplayName || sb.AzureTenantID != "11111111-2222-3333-4444-555555555555" || sb.AzureClientID != "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" {
			t.Errorf("team %s storageBucket %+v", g.DisplayName, sb)
		}
	}
	props, err := az.AdminClient().ServiceClient().GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(props.CORS) != 2 || *props.CORS[0].AllowedMethods != "GET,HEAD,PUT" && *props.CORS[1].AllowedMethods != "GET,HEAD,PUT" {
		t.Errorf("account CORS rules: want the foreign one and W&B's once; got %d", len(props.CORS))
	}
	if rp := props.DeleteRetentionPolicy; rp == nil || !*rp.Enabled || *rp.Days != 10 {
		t.Errorf("soft delete = %+v", rp)
	}

	az.ResetCounts()
	e.mustRun("sync")
	if n := az.Mutations(); n != 0 {
		t.Errorf("second sync made %d Azure mutations: %v", n, az.Counts())
	}
	if doc := e.mustRun("doctor"); strings.Count(doc.stdout, "soft-delete=pass") != 2 || strings.Count(doc.stdout, "probe=pass") != 2 {
		t.Errorf("doctor:\n%s", doc.stdout)
	}
	stores := filepath.Join(e.dir, "stores")
	fs := e.mustRun("file-stores", "--output", stores)
	raw, _ := os.ReadFile(stores)
	if strings.Count(string(raw), "az://:") != 2 || !strings.Contains(string(raw), "@"+az.Account+"/"+e.prefix+"-"+e.team("speech")) {
		t.Errorf("file-stores = %q", raw)
	}
	// W&B gets only the container's name: the entry is where it finds the account.
	if !strings.Contains(fs.stderr, "W&B receives only the container or bucket name of Azure and S3-compatible teams") {
		t.Errorf("file-stores does not say why Azure entries matter:\n%s", fs.stderr)
	}
}

func toPtr(s string) *string  { return &s }
func int32Ptr(i int32) *int32 { return &i }
