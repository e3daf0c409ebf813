package main

// Reliability end to end: the built agent against S3 (SeaweedFS + local-kms), Azurite, the GCS fake and
// the W&B emulator, all failing a share of their requests in every way testenv.Faults knows.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byob-agent/byob-agent/internal/testsupport/gcsfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
)

// Short timeouts keep the test fast: a slow fault holds a request just past the clients' timeout.
const (
	attemptTimeout = time.Second
	slowDelay      = 1500 * time.Millisecond
)

// The profiles of faultsWorld.writeConfig.
const (
	profS3    = "s3"
	profAzure = "azure"
	profGCS   = "gcs"
)

type teamSpec struct{ name, profile string }

// faultsWorld is a test's backends beyond the shared S3: the GCS fake, Azurite (optional) and a service
// account key whose token server is never faulted.
type faultsWorld struct {
	*e2e
	gcs     *gcsfake.Server
	az      *testenv.AzureEnv // nil: no azure profile
	keyFile string
}

func newFaultsWorld(t *testing.T, withAzure bool) *faultsWorld {
	t.Helper()
	w := &faultsWorld{e2e: newE2E(t), gcs: gcsfake.Start(t)}
	var tokens atomic.Int32
	w.keyFile, _ = serviceAccountKey(t, w.dir, &tokens)
	if withAzure {
		az, err := testenv.StartAzurite(t.Context(), testenv.AzuriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { az.Close() })
		w.az = az
	}
	t.Cleanup(func() { backends.SetS3Injector(nil); backends.SetKMSInjector(nil) })
	return w
}

// serveEmulator replaces the test's W&B emulator with one whose bucket checks bypass the faulting
// proxies (W&B's own view of a bucket is not under test), served behind the injectors, outermost first.
func (w *faultsWorld) serveEmulator(injectors ...testenv.Injector) string {
	checker := wandbemu.ByProvider{
		"AWS": wandbemu.CheckerFunc(func(ctx context.Context, sb wandb.StorageBucket) error {
			_, err := backends.S3Client(ctx).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(sb.Name)})
			return err
		}),
		"GCP": wandbemu.CheckerFunc(func(_ context.Context, sb wandb.StorageBucket) error {
			if w.gcs.Bucket(sb.Name) == nil {
				return fmt.Errorf("bucket %q does not exist", sb.Name)
			}
			return nil
		}),
	}
	if w.az != nil {
		checker["AZURE"] = wandbemu.CheckerFunc(func(ctx context.Context, sb wandb.StorageBucket) error {
			_, err := w.az.AdminClient().ServiceClient().NewContainerClient(sb.Name).GetProperties(ctx, nil)
			return err
		})
	}
	w.emu = wandbemu.New(wandbemu.Options{APIKey: apiKey, Checker: checker})
	var h http.Handler = w.emu
	for _, inj := range slices.Backward(injectors) {
		h = inj.Wrap(h)
	}
	srv := httptest.NewServer(h)
	w.t.Cleanup(srv.Close)
	w.t.Cleanup(w.emu.Close)
	return srv.URL + "/scim"
}

// writeConfig writes a config with profiles s3 (aws, a KMS key per team), gcs and, with Azurite, azure,
// each bucket named prefix-TEAM, and short timeouts everywhere.
func (w *faultsWorld) writeConfig(scimURL string, teams []teamSpec) {
	var b strings.Builder
	fmt.Fprintf(&b, `wandb:
  scimURL: %[1]s
  deployment: dedicated
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
  timeout: %[2]s
state:
  path: state.db
sync:
  concurrency: %[3]d
profiles:
  %[4]s:
    provider: aws
    region: %[5]s
    endpoint: %[6]s
    pathStyle: true
    credentials: {accessKeyId: %[7]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[8]s-{{ .Team }}"
    kms: {create: true, endpoint: %[9]s, accountId: "%[10]s"}
    timeout: %[2]s
  %[11]s:
    provider: gcs
    project: acme-ml
    region: us-central1
    endpoint: %[12]s
    credentials: {serviceAccountKeyFile: %[13]s}
    bucket: "%[8]s-{{ .Team }}"
    timeout: %[2]s
`, scimURL, attemptTimeout, len(teams), profS3, backends.Region, backends.Endpoint, backends.AccessKey, w.prefix,
		backends.KMSEndpoint, backends.AccountID, profGCS, w.gcs.Endpoint(), w.keyFile)
	if w.az != nil {
		fmt.Fprintf(&b, `  %s:
    provider: azure
    account: %s
    endpoint: %s
    credentials: {accountKey: "${TEST_AZURE_KEY}"}
    tenantId: 11111111-2222-3333-4444-555555555555
    clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
    bucket: "%s-{{ .Team }}"
    timeout: %s
`, profAzure, w.az.Account, w.az.Endpoint, w.prefix, attemptTimeout)
	}
	b.WriteString("teams:\n")
	for _, t := range teams {
		fmt.Fprintf(&b, "  - {name: %s, profile: %s}\n", t.name, t.profile)
	}
	if err := os.WriteFile(w.config, []byte(b.String()), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *faultsWorld) bucket(teamName string) string { return w.prefix + "-" + teamName }

// containers lists the test's Azure containers.
func (w *faultsWorld) containers() []string {
	w.t.Helper()
	prefix := w.prefix + "-"
	var names []string
	for pages := w.az.AdminClient().NewListContainersPager(&azblob.ListContainersOptions{Prefix: &prefix}); pages.More(); {
		page, err := pages.NextPage(w.t.Context())
		if err != nil {
			w.t.Fatal(err)
		}
		for _, c := range page.ContainerItems {
			names = append(names, *c.Name)
		}
	}
	slices.Sort(names)
	return names
}

// syncUntilConverged runs sync until it exits 0, at most maxRuns times; every failed run must exit 1.
func (w *faultsWorld) syncUntilConverged(maxRuns int) int {
	w.t.Helper()
	for n := 1; n <= maxRuns; n++ {
		res := w.run("sync")
		switch res.code {
		case 0:
			return n
		case 1:
			w.t.Logf("sync run %d exit 1:\n%s", n, res.stdout)
		default:
			w.t.Fatalf("sync run %d: exit %d\n%s\n%s", n, res.code, res.stdout, res.stderr)
		}
	}
	w.t.Fatalf("sync did not converge in %d runs", maxRuns)
	return 0
}

func isPostOrPatch(r *http.Request) bool {
	return r.Method == http.MethodPost || r.Method == http.MethodPatch
}

// TestSyncConvergesUnderFaults: with 20% of the requests to every backend failing (5xx, 429 with
// Retry-After, answers slower than the clients' timeout, dropped connections) and W&B losing some answers
// to work it did, repeated syncs converge to exactly one bucket, key and W&B team per team, and then
// change nothing.
func TestSyncConvergesUnderFaults(t *testing.T) {
	w := newFaultsWorld(t, true)
	faults := map[string]*testenv.Faults{}
	// Seeds whose first few dozen draws fail about the rate: some seeds start with a long quiet stretch,
	// and a backend sees only some tens of requests.
	for backend, seed := range map[string]uint64{"s3": 6, "kms": 11, "azure": 14, "gcs": 16, "wandb": 17} {
		faults[backend] = testenv.NewFaults(testenv.FaultOptions{Rate: 0.2, Seed: seed, SlowDelay: slowDelay,
			// SeaweedFS's own data-key calls are not the agent's: a fault there is a slow S3 answer.
			Select: func(r *http.Request) bool { return !testenv.IsSeaweedKMSCall(r) }})
	}
	// Seeded so that some of the dozen or so team creations that get past the other faults are lost.
	lost := testenv.NewFaults(testenv.FaultOptions{Rate: 0.2, Seed: 7, Kinds: []testenv.FaultKind{testenv.FaultLost}, Select: isPostOrPatch})
	backends.SetS3Injector(faults["s3"])
	backends.SetKMSInjector(faults["kms"])
	w.az.SetInjector(faults["azure"])
	w.gcs.SetInjector(faults["gcs"])

	var teams []teamSpec
	want := map[string][]string{} // profile -> buckets
	for i := range 4 {
		for _, prof := range []string{profS3, profAzure, profGCS} {
			name := w.team(fmt.Sprintf("%s%d", prof[:1], i))
			teams = append(teams, teamSpec{name, prof})
			want[prof] = append(want[prof], w.bucket(name))
		}
	}
	for _, b := range want {
		slices.Sort(b)
	}
	w.writeConfig(w.serveEmulator(faults["wandb"], lost), teams)

	runs := w.syncUntilConverged(8)
	t.Logf("converged after %d runs", runs)

	// Faults of every kind were injected, into every backend.
	byKind := map[testenv.FaultKind]int{}
	for backend, f := range faults {
		total := 0
		for k, n := range f.Counts() {
			byKind[k] += n
			total += n
		}
		t.Logf("%s: faults %v", backend, f.Counts())
		if total == 0 {
			t.Errorf("no fault was injected into %s", backend)
		}
	}
	for _, k := range testenv.DefaultFaultKinds {
		if byKind[k] == 0 {
			t.Errorf("no %s fault was injected: %v", k, byKind)
		}
	}
	if n := lost.Counts()[testenv.FaultLost]; n == 0 {
		t.Error("no W&B answer was lost")
	} else {
		t.Logf("wandb: %d answers lost", n)
	}

	// Exactly one bucket, container, key and W&B team per team, each as recorded.
	if got := w.buckets(); !slices.Equal(got, want[profS3]) {
		t.Errorf("S3 buckets = %v, want %v", got, want[profS3])
	}
	if got := w.containers(); !slices.Equal(got, want[profAzure]) {
		t.Errorf("Azure containers = %v, want %v", got, want[profAzure])
	}
	for _, b := range want[profGCS] {
		if w.gcs.Bucket(b) == nil {
			t.Errorf("GCS bucket %s is missing", b)
		}
	}
	keys := teamKeys(t)
	groups := map[string]int{}
	for _, g := range w.emu.Groups() {
		groups[g.DisplayName]++
	}
	for _, tm := range teams {
		if groups[tm.name] != 1 {
			t.Errorf("team %s: %d W&B teams, want 1", tm.name, groups[tm.name])
		}
		if tm.profile == profS3 && len(keys[tm.name]) != 1 {
			t.Errorf("team %s: %d KMS keys, want 1", tm.name, len(keys[tm.name]))
		}
	}
	if len(groups) != len(teams) {
		t.Errorf("W&B has %d teams, want %d: %v", len(groups), len(teams), groups)
	}
	w.assertRecordsInSync(nil)

	// With the faults gone, nothing is left to do.
	for _, f := range faults {
		f.SetRate(0)
	}
	lost.SetRate(0)
	backends.ResetCounts()
	w.az.ResetCounts()
	w.gcs.ResetCounts()
	w.emu.ResetCounts()
	out := w.mustRun("sync")
	if !strings.Contains(out.stdout, fmt.Sprintf("%d unchanged", len(teams))) {
		t.Errorf("sync without faults:\n%s", out.stdout)
	}
	if s, k, a, g, wb := backends.S3Mutations(), backends.KMSMutations(), w.az.Mutations(), w.gcs.Mutations(), w.emu.MutatingCount(); s+k+a+g+wb != 0 {
		t.Errorf("sync without faults made mutating calls: S3 %d, KMS %d, Azure %d, GCS %d, W&B %d", s, k, a, g, wb)
	}
}

// TestFailingTeamDoesNotBlockOthers: a team whose storage server accepts every request and never answers,
// on S3, GCS and Azure alike, fails with its last error once the clients' attempt timeouts and retries
// are spent, while every other team converges, run after run.
func TestFailingTeamDoesNotBlockOthers(t *testing.T) {
	w := newFaultsWorld(t, true)
	bad := map[string]string{profS3: w.team("bad-s3"), profGCS: w.team("bad-gcs"), profAzure: w.team("bad-az")}
	hang := func(path string) *testenv.Faults {
		return testenv.NewFaults(testenv.FaultOptions{Rate: 1, Kinds: []testenv.FaultKind{testenv.FaultSlow}, SlowDelay: time.Hour,
			Select: func(r *http.Request) bool { return r.URL.Path == path || strings.HasPrefix(r.URL.Path, path+"/") }})
	}
	backends.SetS3Injector(hang("/" + w.bucket(bad[profS3])))
	w.gcs.SetInjector(hang("/storage/v1/b/" + w.bucket(bad[profGCS])))
	w.az.SetInjector(hang("/" + w.az.Account + "/" + w.bucket(bad[profAzure])))
	var teams []teamSpec
	var good []string
	for _, prof := range []string{profS3, profGCS, profAzure} {
		name := w.team("ok-" + prof[:1])
		teams = append(teams, teamSpec{name, prof}, teamSpec{bad[prof], prof})
		good = append(good, name)
	}
	w.writeConfig(w.serveEmulator(), teams)
	// Without attempt timeouts the agent would wait for the hour: stop it long before.
	watchdog := time.AfterFunc(2*time.Minute, w.kill)
	defer watchdog.Stop()

	for run := 1; run <= 2; run++ {
		res := w.run("sync")
		if res.code != 1 || res.killed {
			t.Fatalf("run %d: exit %d (killed: %v), want 1\n%s\n%s", run, res.code, res.killed, res.stdout, res.stderr)
		}
		wantOK := "3 created" // the first run; then nothing is left to do for them
		if run == 2 {
			wantOK = "3 unchanged"
		}
		if !strings.Contains(res.stdout, wantOK) || !strings.Contains(res.stdout, "3 failed") {
			t.Errorf("run %d: want %s and 3 failed:\n%s", run, wantOK, res.stdout)
		}
		for _, team := range bad {
			line := lineWith(res.stdout, team)
			if !strings.Contains(line, "failed") || !strings.Contains(line, "ensure_bucket") || !timedOut(line) {
				t.Errorf("run %d: the line of %s does not give its last error: %q", run, team, line)
			}
		}
	}
	w.assertRecordsInSync(good)
	if n := len(w.emu.Groups()); n != len(good) {
		t.Errorf("W&B has %d teams, want the %d that work", n, len(good))
	}
	for _, team := range bad {
		var rec struct {
			Phase     string `json:"phase"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"lastError"`
			NextRetry string `json:"nextRetry"`
		}
		show := w.mustRun("state", "show", team)
		if err := json.Unmarshal([]byte(show.stdout), &rec); err != nil {
			t.Fatalf("state show %s: %v\n%s", team, err, show.stdout)
		}
		if rec.Attempts != 2 || !timedOut(rec.LastError) || rec.NextRetry == "" || rec.Phase == "in_sync" {
			t.Errorf("state of %s = %+v, want 2 attempts, the timeout as last error and a next retry", team, rec)
		}
	}
}

// timedOut tells whether an error message is of an attempt timeout. net/http words it differently by
// where the request was when the time ran out.
func timedOut(msg string) bool {
	return strings.Contains(msg, "Client.Timeout exceeded") || strings.Contains(msg, "context deadline exceeded")
}

// lineWith returns the first line of s that contains sub.
func lineWith(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

// TestWandbRetryAfterHonoured: the agent's W&B client waits as long as a 429's Retry-After says
// before it asks again.
func TestWandbRetryAfterHonoured(t *testing.T) {
	w := newFaultsWorld(t, false)
	var (
		mu    sync.Mutex
		posts []time.Time
	)
	throttle := testenv.NewFaults(testenv.FaultOptions{Rate: 1, Kinds: []testenv.FaultKind{testenv.FaultThrottled}, RetryAfter: time.Second,
		Select: func(r *http.Request) bool {
			if r.Method != http.MethodPost {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			posts = append(posts, time.Now())
			return len(posts) == 1
		}})
	w.writeConfig(w.serveEmulator(throttle), []teamSpec{{w.team("ra"), profGCS}})
	w.mustRun("sync")
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 2 || throttle.Counts()[testenv.FaultThrottled] != 1 {
		t.Fatalf("%d POSTs (%v throttled), want one throttled and its retry", len(posts), throttle.Counts())
	}
	if gap := posts[1].Sub(posts[0]); gap < time.Second {
		t.Errorf("the retry came %v after a 429 with Retry-After: 1", gap)
	}
}
