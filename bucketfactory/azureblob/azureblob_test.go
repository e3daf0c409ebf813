package azureblob

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/team"
)

// One Azurite per test binary, started by the first test that needs it (the pure tests do not) and
// stopped in TestMain. A missing azurite-blob fails those tests with a hint to run make tools.
// The Blob service properties are account-wide, so these tests do not run in parallel.
var azurite = testenv.NewShared("Azurite", time.Minute, func(ctx context.Context) (*testenv.AzureEnv, error) {
	return testenv.StartAzurite(ctx, testenv.AzuriteOptions{})
})

func TestMain(m *testing.M) {
	code := m.Run()
	azurite.Close()
	os.Exit(code)
}

func azureEnv(t *testing.T) *testenv.AzureEnv {
	t.Helper()
	env := azurite.Get(t)
	env.SetFault(nil)
	return env
}

func newTestFactory(t *testing.T, env *testenv.AzureEnv) *Factory {
	t.Helper()
	f, err := New(t.Context(), Options{Account: env.Account, Endpoint: env.Endpoint, AccountKey: env.Key})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// uniqueName makes a container and team name from the test's name, unique within one Azurite.
func uniqueName(t *testing.T) string {
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[len(base)-40:], "-")
	}
	return base + "-" + strings.ToLower(rand.Text()[:6])
}

func teamBucket(t *testing.T, env *testenv.AzureEnv) bucketfactory.Bucket {
	name := uniqueName(t)
	return bucketfactory.Bucket{
		Team: name, Profile: "azure-main",
		Storage: team.Storage{Provider: team.ProviderAzure, Bucket: name, Account: env.Account, Path: "wandb"},
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

func mustCheck(t *testing.T, f *Factory, b bucketfactory.Bucket, probe bool) []bucketfactory.CheckResult {
	t.Helper()
	results, err := f.Check(t.Context(), b, bucketfactory.CheckOptions{Probe: probe})
	if err != nil {
		t.Fatalf("Check(%s): %v", b.Storage.Bucket, err)
	}
	return results
}

func failures(results []bucketfactory.CheckResult) []bucketfactory.CheckResult {
	return slices.DeleteFunc(slices.Clone(results), func(r bucketfactory.CheckResult) bool { return r.OK })
}

// setService puts the account's Blob service into a known state behind the agent's back.
func setService(t *testing.T, env *testenv.AzureEnv, rules []*service.CORSRule, retention *service.RetentionPolicy) {
	t.Helper()
	if rules == nil {
		rules = []*service.CORSRule{}
	}
	if retention == nil {
		retention = &service.RetentionPolicy{Enabled: to.Ptr(false)}
	}
	if _, err := env.AdminClient().ServiceClient().SetProperties(t.Context(), &service.SetPropertiesOptions{CORS: rules, DeleteRetentionPolicy: retention}); err != nil {
		t.Fatalf("set Blob service properties: %v", err)
	}
}

func getService(t *testing.T, env *testenv.AzureEnv) service.GetPropertiesResponse {
	t.Helper()
	props, err := env.AdminClient().ServiceClient().GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatalf("get Blob service properties: %v", err)
	}
	return props
}

func days(n int32) *service.RetentionPolicy {
	return &service.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr(n)}
}

func containerClient(env *testenv.AzureEnv, name string) *container.Client {
	return env.AdminClient().ServiceClient().NewContainerClient(name)
}

func TestEnsureNewContainer(t *testing.T) {
	env := azureEnv(t)
	ctx := t.Context()
	f := newTestFactory(t, env)
	b := teamBucket(t, env)
	setService(t, env, nil, nil)

	env.ResetCounts()
	changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
	if got, want := settings(changes), []string{"create", "cors", "soft-delete"}; !slices.Equal(got, want) {
		t.Errorf("first Ensure changed %v, want %v", got, want)
	}
	// Created with its marks in one call; both service settings in one write.
	if got := env.Counts(); got["PUT ?restype=container"] != 1 || got["PUT ?comp=properties&restype=service"] != 1 || env.Mutations() != 2 {
		t.Errorf("first Ensure made %d mutating calls, want one create and one service write: %v", env.Mutations(), got)
	}
	props, err := containerClient(env, b.Storage.Bucket).GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if md := fromMetadata(props.Metadata); metaValue(md, "managed_by") != "byob-agent" || metaValue(md, "byob_agent_team") != b.Team {
		t.Errorf("container metadata = %v, want managed_by=byob-agent, byob_agent_team=%s", md, b.Team)
	}
	if props.BlobPublicAccess != nil {
		t.Errorf("new container has public access %q", *props.BlobPublicAccess)
	}

	results := mustCheck(t, f, b, true)
	var checks []string
	for _, r := range results {
		checks = append(checks, r.Check)
	}
	if want := []string{"exists", "ownership", "public-access", "cors", "soft-delete", "probe"}; !slices.Equal(checks, want) {
		t.Errorf("Check reported %v, want %v", checks, want)
	}
	if failed := failures(results); len(failed) > 0 {
		t.Errorf("Check after Ensure failed: %v", failed)
	}
	pager := env.AdminClient().NewListBlobsFlatPager(b.Storage.Bucket, nil)
	page, err := pager.NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.Segment.BlobItems); n != 0 {
		t.Errorf("the probe left %d blob(s) behind, e.g. %s", n, *page.Segment.BlobItems[0].Name)
	}

	env.ResetCounts()
	if changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{}); len(changes) != 0 {
		t.Errorf("second Ensure changed %v, want nothing", changes)
	}
	mustCheck(t, f, b, false)
	if n := env.Mutations(); n != 0 {
		t.Errorf("second Ensure and a Check without probe made %d mutating calls, want 0: %v", n, env.Counts())
	}
}

func TestCORSMergeAcrossContainers(t *testing.T) {
	env := azureEnv(t)
	f := newTestFactory(t, env)
	foreign := rule("https://portal.example", "GET,POST", "x-ms-*", "x-ms-meta-*", 200)
	setService(t, env, []*service.CORSRule{foreign}, days(14))

	a, b := teamBucket(t, env), teamBucket(t, env)
	if got, want := settings(mustEnsure(t, f, a, bucketfactory.EnsureOptions{})), []string{"create", "cors"}; !slices.Equal(got, want) {
		t.Errorf("Ensure of the first container changed %v, want %v (a 14-day retention satisfies 7)", got, want)
	}
	env.ResetCounts()
	if got, want := settings(mustEnsure(t, f, b, bucketfactory.EnsureOptions{})), []string{"create"}; !slices.Equal(got, want) {
		t.Errorf("Ensure of the second container changed %v, want %v", got, want)
	}
	if n := env.Counts()["PUT ?comp=properties&restype=service"]; n != 0 {
		t.Errorf("second container's Ensure wrote the Blob service properties %d time(s)", n)
	}
	props := getService(t, env)
	if got, want := describeCORSRules(props.CORS), describeCORSRules([]*service.CORSRule{wandbCORSRule(), foreign}); got != want {
		t.Errorf("CORS rules = %s\nwant %s", got, want)
	}
	if describeRetention(props.DeleteRetentionPolicy) != "on, 14 days" {
		t.Errorf("retention = %s, want the longer 14 days kept", describeRetention(props.DeleteRetentionPolicy))
	}
}

func TestEnsureConcurrentContainers(t *testing.T) {
	env := azureEnv(t)
	f := newTestFactory(t, env)
	foreign := rule("https://portal.example", "DELETE", "*", "", 0)
	setService(t, env, []*service.CORSRule{foreign}, nil)
	env.ResetCounts()

	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		b := teamBucket(t, env)
		wg.Go(func() { _, errs[i] = f.Ensure(t.Context(), b, bucketfactory.EnsureOptions{}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	props := getService(t, env)
	if got, want := describeCORSRules(props.CORS), describeCORSRules([]*service.CORSRule{wandbCORSRule(), foreign}); got != want {
		t.Errorf("CORS rules after %d concurrent Ensure calls = %s\nwant %s", n, got, want)
	}
	if !retentionOK(props.DeleteRetentionPolicy, DefaultSoftDeleteDays) {
		t.Errorf("retention = %s, want on", describeRetention(props.DeleteRetentionPolicy))
	}
	if got := env.Counts()["PUT ?comp=properties&restype=service"]; got != 1 {
		t.Errorf("%d concurrent Ensure calls wrote the service properties %d times, want once", n, got)
	}
}

func TestEnsureRepairsDrift(t *testing.T) {
	env := azureEnv(t)
	f := newTestFactory(t, env)
	admin := env.AdminClient().ServiceClient()
	stored := []*container.SignedIdentifier{{ID: to.Ptr("readers"), AccessPolicy: &container.AccessPolicy{Permission: to.Ptr("r")}}}

	tests := []struct {
		name    string
		drift   func(ctx context.Context, b bucketfactory.Bucket) error
		setting string // the one change Ensure must report; "" for none
		failed  string // the one check failing before the repair; default setting
		call    string // the one mutating call it must make
		check   func(t *testing.T, b bucketfactory.Bucket)
	}{
		{
			name: "soft delete turned off",
			drift: func(ctx context.Context, _ bucketfactory.Bucket) error {
				_, err := admin.SetProperties(ctx, &service.SetPropertiesOptions{DeleteRetentionPolicy: &service.RetentionPolicy{Enabled: to.Ptr(false)}})
				return err
			},
			setting: "soft-delete", call: "PUT ?comp=properties&restype=service",
			check: func(t *testing.T, _ bucketfactory.Bucket) {
				if got := describeRetention(getService(t, env).DeleteRetentionPolicy); got != "on, 7 days" {
					t.Errorf("retention after repair = %s, want on, 7 days", got)
				}
			},
		},
		{
			name: "retention shortened",
			drift: func(ctx context.Context, _ bucketfactory.Bucket) error {
				_, err := admin.SetProperties(ctx, &service.SetPropertiesOptions{DeleteRetentionPolicy: days(2)})
				return err
			},
			setting: "soft-delete", call: "PUT ?comp=properties&restype=service",
		},
		{
			name: "retention lengthened by another administrator",
			drift: func(ctx context.Context, _ bucketfactory.Bucket) error {
				_, err := admin.SetProperties(ctx, &service.SetPropertiesOptions{DeleteRetentionPolicy: days(90)})
				return err
			},
			check: func(t *testing.T, _ bucketfactory.Bucket) {
				if got := describeRetention(getService(t, env).DeleteRetentionPolicy); got != "on, 90 days" {
					t.Errorf("retention = %s, want the longer 90 days kept", got)
				}
			},
		},
		{
			name: "CORS rules cleared",
			drift: func(ctx context.Context, _ bucketfactory.Bucket) error {
				_, err := admin.SetProperties(ctx, &service.SetPropertiesOptions{CORS: []*service.CORSRule{}})
				return err
			},
			setting: "cors", call: "PUT ?comp=properties&restype=service",
		},
		{
			name: "public access turned on",
			drift: func(ctx context.Context, b bucketfactory.Bucket) error {
				_, err := containerClient(env, b.Storage.Bucket).SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{
					Access: to.Ptr(container.PublicAccessTypeBlob), ContainerACL: stored,
				})
				return err
			},
			setting: "public-access", call: "PUT ?comp=acl&restype=container",
			check: func(t *testing.T, b bucketfactory.Bucket) {
				acl, err := containerClient(env, b.Storage.Bucket).GetAccessPolicy(t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if acl.BlobPublicAccess != nil || len(acl.SignedIdentifiers) != 1 || *acl.SignedIdentifiers[0].ID != "readers" {
					t.Errorf("after repair: public access %v, %d stored access policies; want private, keeping %q", acl.BlobPublicAccess, len(acl.SignedIdentifiers), "readers")
				}
			},
		},
		{
			name: "managed_by removed",
			drift: func(ctx context.Context, b bucketfactory.Bucket) error {
				_, err := containerClient(env, b.Storage.Bucket).SetMetadata(ctx, &container.SetMetadataOptions{
					Metadata: map[string]*string{"CostCenter": to.Ptr("42"), "byob_agent_team": to.Ptr(b.Team)},
				})
				return err
			},
			setting: "metadata", failed: "ownership", call: "PUT ?comp=metadata&restype=container",
			check: func(t *testing.T, b bucketfactory.Bucket) {
				props, err := containerClient(env, b.Storage.Bucket).GetProperties(t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				md := fromMetadata(props.Metadata)
				if metaValue(md, "costcenter") != "42" || metaValue(md, "managed_by") != "byob-agent" || len(md) != 3 {
					t.Errorf("metadata after repair = %v, want CostCenter kept and managed_by restored", md)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			b := teamBucket(t, env)
			mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
			if err := tt.drift(ctx, b); err != nil {
				t.Fatalf("drift: %v", err)
			}
			if want := cmp.Or(tt.failed, tt.setting); want != "" {
				if failed := failures(mustCheck(t, f, b, false)); len(failed) != 1 || failed[0].Check != want || failed[0].Fix == "" {
					t.Errorf("Check after drift failed %v, want exactly %q with a fix", failed, want)
				}
			}
			env.ResetCounts()
			changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
			var want []string
			wantCounts := 0
			if tt.setting != "" {
				want, wantCounts = []string{tt.setting}, 1
			}
			if got := settings(changes); !slices.Equal(got, want) {
				t.Errorf("Ensure after drift changed %v, want %v", changes, want)
			}
			if env.Mutations() != wantCounts || (tt.call != "" && env.Counts()[tt.call] != 1) {
				t.Errorf("Ensure after drift made %d mutating calls, want %d (%s): %v", env.Mutations(), wantCounts, tt.call, env.Counts())
			}
			if tt.check != nil {
				tt.check(t, b)
			}
			if failed := failures(mustCheck(t, f, b, false)); len(failed) > 0 {
				t.Errorf("Check after repair failed: %v", failed)
			}
			if changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{}); len(changes) != 0 {
				t.Errorf("Ensure after repair changed %v, want nothing", changes)
			}
		})
	}
}

func TestOwnership(t *testing.T) {
	env := azureEnv(t)
	f := newTestFactory(t, env)
	setService(t, env, []*service.CORSRule{wandbCORSRule()}, days(DefaultSoftDeleteDays)) // only the container is at stake
	tests := []struct {
		name     string
		metadata map[string]string
		shared   bool
		adopt    bool
		wantErr  string   // OwnershipError reason fragment
		want     []string // changes when it succeeds
	}{
		{name: "another team's", metadata: map[string]string{"managed_by": "byob-agent", "byob_agent_team": "other-team"}, adopt: true, wantErr: `marked for team "other-team"`},
		{name: "another profile's shared", metadata: map[string]string{"byob_agent_shared": "other"}, adopt: true, wantErr: `shared container of profile "other"`},
		{name: "per-team container taken as shared", metadata: map[string]string{"byob_agent_team": "someone"}, shared: true, adopt: true, wantErr: `marked for team "someone"`},
		{name: "unmarked, adoption off", metadata: map[string]string{"CostCenter": "42"}, wantErr: "adopting unmarked containers is off"},
		{name: "unmarked, adopted", metadata: map[string]string{"CostCenter": "42"}, adopt: true, want: []string{"metadata", "public-access"}},
		{name: "ours, marked in another case", metadata: map[string]string{"MANAGED_BY": "byob-agent", "BYOB_AGENT_TEAM": "<team>"}, want: []string{"public-access"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			b := teamBucket(t, env)
			b.Shared = tt.shared
			md := map[string]*string{}
			for k, v := range tt.metadata {
				md[k] = to.Ptr(strings.ReplaceAll(v, "<team>", b.Team))
			}
			// Public, so that an adoption shows it turns public access off too.
			if _, err := containerClient(env, b.Storage.Bucket).Create(ctx, &container.CreateOptions{Metadata: md, Access: to.Ptr(container.PublicAccessTypeBlob)}); err != nil {
				t.Fatal(err)
			}
			env.ResetCounts()
			changes, err := f.Ensure(ctx, b, bucketfactory.EnsureOptions{AdoptUntagged: tt.adopt})
			if tt.wantErr != "" {
				var oe *bucketfactory.OwnershipError
				if !errors.As(err, &oe) || !strings.Contains(oe.Reason, tt.wantErr) {
					t.Fatalf("Ensure = %v, want an OwnershipError with %q", err, tt.wantErr)
				}
				if n := env.Mutations(); n != 0 {
					t.Errorf("Ensure of a container not ours made %d mutating calls: %v", n, env.Counts())
				}
				foreign := tt.adopt // marked for someone else; unmarked is not foreign
				if failed := failures(mustCheck(t, f, b, false)); len(failed) == 0 || failed[0].Check != "ownership" || failed[0].Fix == "" || failed[0].Foreign != foreign {
					t.Errorf("Check of a container not ours: failures %v, want ownership first, with a fix, foreign %v", failed, foreign)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := settings(changes); !slices.Equal(got, tt.want) {
				t.Errorf("Ensure changed %v, want %v", changes, tt.want)
			}
			props, err := containerClient(env, b.Storage.Bucket).GetProperties(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := fromMetadata(props.Metadata)
			for k, v := range tt.metadata {
				if metaValue(got, k) != strings.ReplaceAll(v, "<team>", b.Team) {
					t.Errorf("metadata %s lost: %v", k, got)
				}
			}
			if failed := failures(mustCheck(t, f, b, false)); len(failed) > 0 {
				t.Errorf("Check after Ensure failed: %v", failed)
			}
		})
	}
}

func TestSharedContainer(t *testing.T) {
	env := azureEnv(t)
	f := newTestFactory(t, env)
	name := uniqueName(t)
	shared := func(teamName string) bucketfactory.Bucket {
		return bucketfactory.Bucket{Team: teamName, Profile: "azure-shared", Shared: true,
			Storage: team.Storage{Provider: team.ProviderAzure, Bucket: name, Account: env.Account, Path: "teams/" + teamName, Shared: true}}
	}
	a, b := shared("alpha"), shared("beta")
	mustEnsure(t, f, a, bucketfactory.EnsureOptions{})
	env.ResetCounts()
	if changes := mustEnsure(t, f, b, bucketfactory.EnsureOptions{}); len(changes) != 0 {
		t.Errorf("the second team's Ensure changed %v, want nothing", changes)
	}
	if n := env.Mutations(); n != 0 {
		t.Errorf("the second team's Ensure made %d mutating calls", n)
	}
	for _, bk := range []bucketfactory.Bucket{a, b} {
		if failed := failures(mustCheck(t, f, bk, true)); len(failed) > 0 {
			t.Errorf("Check for team %s failed: %v", bk.Team, failed)
		}
	}
	props, err := containerClient(env, name).GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if md := fromMetadata(props.Metadata); metaValue(md, "byob_agent_shared") != "azure-shared" || metaValue(md, "byob_agent_team") != "" {
		t.Errorf("shared container metadata = %v, want byob_agent_shared=azure-shared and no team mark", md)
	}
	perTeam := shared("gamma")
	perTeam.Shared = false
	var oe *bucketfactory.OwnershipError
	if _, err := f.Ensure(t.Context(), perTeam, bucketfactory.EnsureOptions{AdoptUntagged: true}); !errors.As(err, &oe) {
		t.Errorf("Ensure of the shared container as one team's = %v, want an OwnershipError", err)
	}
}

func TestCheckReportsFailures(t *testing.T) {
	env := azureEnv(t)
	f := newTestFactory(t, env)

	t.Run("missing container", func(t *testing.T) {
		setService(t, env, nil, nil)
		b := teamBucket(t, env)
		results := mustCheck(t, f, b, true)
		want := []bucketfactory.CheckResult{
			{Check: "exists", Expected: "container " + b.Storage.Bucket + " to exist in storage account devstoreaccount1", Found: "no such container", Fix: "byob-agent sync creates it"},
			{Check: "cors", Expected: "a rule on the account's Blob service with " + describeCORSRule(wandbCORSRule()), Found: "no CORS rules",
				Fix: "add a CORS rule with " + describeCORSRule(wandbCORSRule()) + " to the Blob service of storage account devstoreaccount1; byob-agent sync adds it first and keeps the other rules"},
			{Check: "soft-delete", Expected: "blob soft delete on, at least 7 days", Found: "off",
				Fix: "turn on blob soft delete for storage account devstoreaccount1 with a retention of at least 7 days; byob-agent sync repairs it (and keeps a longer retention)"},
		}
		if !slices.Equal(results, want) {
			t.Errorf("Check =\n%#v\nwant\n%#v", results, want)
		}
	})

	t.Run("everything wrong", func(t *testing.T) {
		foreign := rule("https://x.example", "GET", "*", "", 1)
		setService(t, env, []*service.CORSRule{foreign, foreign, foreign, foreign, foreign}, days(1))
		b := teamBucket(t, env)
		if _, err := containerClient(env, b.Storage.Bucket).Create(t.Context(), &container.CreateOptions{Access: to.Ptr(container.PublicAccessTypeContainer)}); err != nil {
			t.Fatal(err)
		}
		env.ResetCounts()
		results := mustCheck(t, f, b, true)
		if n := env.Mutations(); n != 0 {
			t.Errorf("Check of an unmarked container made %d mutating calls (the probe must not run): %v", n, env.Counts())
		}
		found := map[string]string{}
		for _, r := range failures(results) {
			found[r.Check] = r.Found
			if r.Expected == "" || r.Fix == "" {
				t.Errorf("%s: failure without expectation or fix: %+v", r.Check, r)
			}
		}
		want := map[string]string{
			"ownership":     "no ownership metadata",
			"public-access": "anonymous public access level container",
			"cors":          describeCORSRules([]*service.CORSRule{foreign, foreign, foreign, foreign, foreign}),
			"soft-delete":   "on, 1 days",
			"probe":         `not run: the container is not marked for team "` + b.Team + `"`,
		}
		if len(found) != len(want) {
			t.Errorf("failed checks %v, want %v", found, want)
		}
		for check, w := range want {
			if found[check] != w {
				t.Errorf("%s: found %q, want %q", check, found[check], w)
			}
		}
		for _, r := range results {
			if r.Check == "cors" && !strings.Contains(r.Fix, "5 CORS rules, Azure's maximum") {
				t.Errorf("cors fix %q does not explain the rule limit", r.Fix)
			}
		}
		if _, err := f.Ensure(t.Context(), b, bucketfactory.EnsureOptions{AdoptUntagged: true}); err == nil || !strings.Contains(err.Error(), "Azure's maximum") {
			t.Errorf("Ensure with five foreign CORS rules = %v, want an error about Azure's maximum", err)
		}
	})

	t.Run("probe refused", func(t *testing.T) {
		setService(t, env, nil, nil)
		b := teamBucket(t, env)
		mustEnsure(t, f, b, bucketfactory.EnsureOptions{})
		env.SetFault(func(r *http.Request) (int, bool) {
			return http.StatusForbidden, r.Method == http.MethodPut && r.URL.Query().Get("restype") == ""
		})
		defer env.SetFault(nil)
		failed := failures(mustCheck(t, f, b, true))
		if len(failed) != 1 || failed[0].Check != "probe" || failed[0].Found != "HTTP 403 " ||
			!strings.Contains(failed[0].Fix, "Storage Blob Data Contributor on container "+b.Storage.Bucket) {
			t.Errorf("Check with blob uploads refused: failures %v, want one probe failure with a fix", failed)
		}
	})

	t.Run("unreadable", func(t *testing.T) {
		b := teamBucket(t, env)
		env.SetFault(func(*http.Request) (int, bool) { return http.StatusForbidden, true })
		defer env.SetFault(nil)
		if results, err := f.Check(t.Context(), b, bucketfactory.CheckOptions{}); err == nil {
			t.Errorf("Check with every request refused = %v, want an error", results)
		}
	})
	setService(t, env, nil, nil)
}

func TestAddress(t *testing.T) {
	env := azureEnv(t)
	b := teamBucket(t, env)
	byKey := newTestFactory(t, env)
	byConnString, err := New(t.Context(), Options{ConnectionString: env.ConnectionString()})
	if err != nil {
		t.Fatal(err)
	}
	want := "az://:" + url.QueryEscape(env.Key) + "@devstoreaccount1/" + b.Storage.Bucket
	for name, f := range map[string]*Factory{"key": byKey, "connection string": byConnString} {
		got, err := f.Address(t.Context(), b)
		if err != nil || got != want {
			t.Errorf("%s: Address = %q, %v; want %q", name, got, err, want)
			continue
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		if pw, _ := u.User.Password(); u.Scheme != "az" || u.Host != "devstoreaccount1" || u.Path != "/"+b.Storage.Bucket || pw != env.Key {
			t.Errorf("%s: address parses to scheme %q host %q path %q and a key that differs (%v)", name, u.Scheme, u.Host, u.Path, pw != env.Key)
		}
	}
	// The connection string factory really talks to Azurite through the proxy.
	if _, err := byConnString.Ensure(t.Context(), b, bucketfactory.EnsureOptions{}); err != nil {
		t.Errorf("Ensure through a connection string factory: %v", err)
	}

	byIdentity, err := New(t.Context(), Options{Account: env.Account, Endpoint: env.Endpoint, UseIdentity: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := byIdentity.Address(t.Context(), b); err == nil || !strings.Contains(err.Error(), "account key") {
		t.Errorf("Address with an identity = %v, want an error saying the account key is needed", err)
	}
	other := b
	other.Storage.Account = "otheraccount"
	if _, err := byKey.Address(t.Context(), other); err == nil || !strings.Contains(err.Error(), `storage account "otheraccount"`) {
		t.Errorf("Address of a container in another account = %v, want an error", err)
	}
}

// TestSecretsStayOut drives every path that reports something (changes, results, errors from the SDK,
// probe failures) and looks for the key, plain or URL-encoded, in what comes back.
func TestSecretsStayOut(t *testing.T) {
	env := azureEnv(t)
	ctx := t.Context()
	setService(t, env, nil, nil)
	var reported []string
	seen := func(changes []bucketfactory.Change, results []bucketfactory.CheckResult, err error) {
		for _, c := range changes {
			reported = append(reported, c.String())
		}
		for _, r := range results {
			reported = append(reported, fmt.Sprintf("%+v", r))
		}
		if err != nil {
			reported = append(reported, err.Error())
		}
	}
	for _, f := range []*Factory{newTestFactory(t, env), must(New(ctx, Options{ConnectionString: env.ConnectionString()}))} {
		b := teamBucket(t, env)
		changes, err := f.Ensure(ctx, b, bucketfactory.EnsureOptions{})
		seen(changes, nil, err)
		results, err := f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
		seen(nil, results, err)
		for _, fault := range []testenv.Fault{
			func(r *http.Request) (int, bool) { return http.StatusForbidden, r.URL.Query().Get("restype") == "" }, // blobs: the probe fails
			func(*http.Request) (int, bool) { return http.StatusForbidden, true },                                 // everything: errors
		} {
			env.SetFault(fault)
			results, err = f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
			seen(nil, results, err)
			changes, err = f.Ensure(ctx, teamBucket(t, env), bucketfactory.EnsureOptions{})
			seen(changes, nil, err)
			env.SetFault(nil)
		}
	}
	for _, o := range []Options{
		{Account: "acct", AccountKey: env.Key + "!"},
		{ConnectionString: "AccountName=acct;AccountKey=" + env.Key + ";BlobEndpoint=ftp://x"},
		{ConnectionString: "AccountName=Bad_Account;AccountKey=" + env.Key},
		{ConnectionString: "SharedAccessSignature=" + env.Key},
	} {
		_, err := New(ctx, o)
		if err == nil {
			t.Errorf("New(%d-byte options) succeeded, want an error", len(o.ConnectionString)+len(o.AccountKey))
			continue
		}
		seen(nil, nil, err)
	}
	if len(reported) < 10 {
		t.Fatalf("only %d reports collected: the test does not exercise enough", len(reported))
	}
	for _, s := range reported {
		if strings.Contains(s, env.Key) || strings.Contains(s, url.QueryEscape(env.Key)) || strings.Contains(s, env.Key[:20]) {
			t.Errorf("the account key appears in %q", s)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestNew(t *testing.T) {
	const key = "a2V5a2V5a2V5a2V5a2V5a2V5"
	tests := []struct {
		name    string
		o       Options
		wantErr string
		want    string // endpoint
	}{
		{name: "key, default endpoint", o: Options{Account: "acct", AccountKey: key}, want: "https://acct.blob.core.windows.net/"},
		{name: "key, endpoint without slash", o: Options{Account: "acct", AccountKey: key, Endpoint: "http://127.0.0.1:1/acct"}, want: "http://127.0.0.1:1/acct/"},
		{name: "identity", o: Options{Account: "acct", UseIdentity: true}, want: "https://acct.blob.core.windows.net/"},
		{name: "connection string", o: Options{ConnectionString: "AccountName=acct;AccountKey=" + key + ";EndpointSuffix=core.usgovcloudapi.net"}, want: "https://acct.blob.core.usgovcloudapi.net/"},
		{name: "no auth", o: Options{Account: "acct"}, wantErr: "exactly one"},
		{name: "two auths", o: Options{Account: "acct", AccountKey: key, UseIdentity: true}, wantErr: "exactly one"},
		{name: "no account", o: Options{AccountKey: key}, wantErr: "3 to 24 lowercase"},
		{name: "bad account", o: Options{Account: "My-Account", AccountKey: key}, wantErr: "3 to 24 lowercase"},
		{name: "account differs from connection string", o: Options{Account: "other", ConnectionString: "AccountName=acct;AccountKey=" + key}, wantErr: `for storage account "acct"`},
		{name: "endpoint differs from connection string", o: Options{Endpoint: "https://x.example/", ConnectionString: "AccountName=acct;AccountKey=" + key + ";BlobEndpoint=https://y.example/"}, wantErr: "differs"},
		{name: "endpoint with SAS", o: Options{Account: "acct", AccountKey: key, Endpoint: "https://acct.blob.core.windows.net/?sig=x"}, wantErr: "must not carry"},
		{name: "endpoint not http", o: Options{Account: "acct", AccountKey: key, Endpoint: "acct.blob.core.windows.net"}, wantErr: "not an http"},
		{name: "key not base64", o: Options{Account: "acct", AccountKey: "not base64!"}, wantErr: "not valid base64"},
		{name: "retention too long", o: Options{Account: "acct", AccountKey: key, SoftDeleteDays: 366}, wantErr: "1 to 365"},
		{name: "retention negative", o: Options{Account: "acct", AccountKey: key, SoftDeleteDays: -1}, wantErr: "1 to 365"},
	}
	for _, tt := range tests {
		f, err := New(t.Context(), tt.o)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: New = %v, want an error with %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: New: %v", tt.name, err)
			continue
		}
		if f.endpoint != tt.want {
			t.Errorf("%s: endpoint %q, want %q", tt.name, f.endpoint, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	f, err := New(t.Context(), Options{Account: "acct", AccountKey: "a2V5"})
	if err != nil {
		t.Fatal(err)
	}
	good := bucketfactory.Bucket{Team: "ml", Profile: "p", Storage: team.Storage{Provider: team.ProviderAzure, Bucket: "wandb-ml", Account: "acct"}}
	tests := []struct {
		name    string
		change  func(*bucketfactory.Bucket)
		wantErr string
	}{
		{"good", func(*bucketfactory.Bucket) {}, ""},
		{"same endpoint spelled differently", func(b *bucketfactory.Bucket) { b.Storage.Endpoint = "https://acct.blob.core.windows.net" }, ""},
		{"other provider", func(b *bucketfactory.Bucket) { b.Storage.Provider = team.ProviderGCS }, `provider "gcs"`},
		{"no account", func(b *bucketfactory.Bucket) { b.Storage.Account = "" }, `storage account ""`},
		{"other endpoint", func(b *bucketfactory.Bucket) { b.Storage.Endpoint = "https://other.example/" }, "names endpoint"},
		{"bad container", func(b *bucketfactory.Bucket) { b.Storage.Bucket = "wandb_ml" }, "container name"},
		{"bad path", func(b *bucketfactory.Bucket) { b.Storage.Path = "/x" }, "path"},
		{"bad team", func(b *bucketfactory.Bucket) { b.Team = "ML" }, "team name"},
		{"shared without path", func(b *bucketfactory.Bucket) { b.Shared = true }, "a path per team"},
	}
	for _, tt := range tests {
		b := good
		tt.change(&b)
		err := f.validate(b)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: validate = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}
