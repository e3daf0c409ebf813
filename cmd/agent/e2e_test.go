package main

// End-to-end tests: the built byob-agent binary against a real S3 server (SeaweedFS) with a KMS
// emulator (local-kms) and the project's W&B SCIM emulator, all on 127.0.0.1.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
)

var (
	agentBin string
	backends *testenv.S3Env
	// azurite is started by the first test that needs Azure.
	azurite = testenv.NewShared("Azurite", time.Minute, func(ctx context.Context) (*testenv.AzureEnv, error) {
		return testenv.StartAzurite(ctx, testenv.AzuriteOptions{})
	})
	// postgres is started by the first test that needs PostgreSQL.
)

const apiKey = "wandb-e2e-api-key-4f1c9a7e"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return m.Run() // the fuzz targets of this package need neither the binary nor the backends
	}
	dir, err := os.MkdirTemp("", "byob-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentBin = filepath.Join(dir, "byob-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build byob-agent: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	backends, err = testenv.StartS3(ctx, testenv.S3Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start S3 and KMS:", err)
		return 1
	}
	defer backends.Close()
	defer azurite.Close()
	defer testenv.SharedPostgres.Close()
	return m.Run()
}

// e2e is one test's world: its own W&B emulator, config, state and bucket name prefix.
type e2e struct {
	t      *testing.T
	emu    *wandbemu.Server
	dir    string
	config string
	prefix string
	sfx    string // team names carry it: KMS aliases are per team name, and every test shares one KMS
	keyARN string // the configured key of profile "fixed"
	fault  atomic.Pointer[func(*http.Request) wandbemu.Fault]
	proc   atomic.Pointer[os.Process] // the running agent, for kill-at-a-point tests
	env    []string                   // more environment for the agent's runs
	// emuOptions, when set, adjusts the options of the next emulator startEmulator starts.
	emuOptions func(*wandbemu.Options)
}

// serviceAccount is the organisation service account of every emulator startEmulator starts: W&B adds
// it to each new team, and membership sync must leave it alone (https://docs.wandb.ai/platform/hosting/iam/scim).
const serviceAccount = "e2e-bot"

var prefixSeq atomic.Int32

func newE2E(t *testing.T) *e2e {
	t.Helper()
	seq := prefixSeq.Add(1)
	e := &e2e{t: t, dir: t.TempDir(), prefix: fmt.Sprintf("e2e%d-%d", time.Now().UnixNano()%100000, seq), sfx: fmt.Sprintf("%d%d", time.Now().UnixNano()%1000, seq)}
	scimURL := e.startEmulator(wandbemu.NewS3Checker(backends.Endpoint, backends.Region, backends.AccessKey, backends.SecretKey).ForS3Providers())
	t.Cleanup(func() { backends.SetS3Fault(nil); backends.SetKMSFault(nil) })
	key, err := backends.CreateKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	e.keyARN = key
	e.config = filepath.Join(e.dir, "byob-agent.yaml")
	e.writeConfig(scimURL, "{{ .Team }}")
	return e
}

// startEmulator gives the test a new W&B emulator that checks buckets with checker and asks e.fault
// about every request; it returns the emulator's SCIM URL.
func (e *e2e) startEmulator(checker wandbemu.BucketChecker) string {
	o := wandbemu.Options{
		APIKey:          apiKey,
		Checker:         checker,
		ServiceAccounts: []string{serviceAccount},
		Fault: func(r *http.Request) wandbemu.Fault {
			if f := e.fault.Load(); f != nil {
				return (*f)(r)
			}
			return wandbemu.Fault{}
		},
	}
	if e.emuOptions != nil {
		e.emuOptions(&o)
	}
	e.emu = wandbemu.New(o)
	srv := httptest.NewServer(e.emu)
	e.t.Cleanup(srv.Close)
	e.t.Cleanup(e.emu.Close)
	return srv.URL + "/scim"
}

// writeConfig writes three profiles (aws creating a key per team, aws with one configured key,
// s3-compatible) and four teams. mainSuffix is the bucket template suffix of profile "main".
func (e *e2e) writeConfig(scimURL, mainSuffix string) {
	cfg := fmt.Sprintf(`wandb:
  scimURL: %[1]s
  deployment: dedicated
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
  timeout: 5s
state:
  path: state.db
sync:
  concurrency: 4
defaultProfile: main
profiles:
  main:
    provider: aws
    region: %[2]s
    endpoint: %[3]s
    pathStyle: true
    credentials: {accessKeyId: %[4]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[5]s-%[8]s"
    kms: {create: true, endpoint: %[6]s, accountId: "%[7]s"}
  fixed:
    provider: aws
    region: %[2]s
    endpoint: %[3]s
    pathStyle: true
    credentials: {accessKeyId: %[4]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[5]s-fx-{{ .Team }}"
    kms: {keyArn: "%[9]s", endpoint: %[6]s}
    awsExternalId: ext-123
  onprem:
    provider: s3-compatible
    region: %[2]s
    endpoint: %[3]s
    credentials: {accessKeyId: %[4]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[5]s-op-{{ .Team }}"
    path: wandb
teams:
  - name: %[10]s
  - name: %[11]s
  - name: %[12]s
    profile: fixed
  - name: %[13]s
    profile: onprem
`, scimURL, backends.Region, backends.Endpoint, backends.AccessKey, e.prefix, backends.KMSEndpoint, backends.AccountID, mainSuffix, e.keyARN,
		e.team("alpha"), e.team("beta"), e.team("gamma"), e.team("delta"))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

type runResult struct {
	stdout, stderr string
	code           int
	killed         bool
}

// agentEnv is the environment the agent runs with in tests: the caller's, so that what a user has set (a
// CA bundle, a proxy, ...) reaches the binary as it would outside tests, then the test's own HOME (no
// shared AWS config or credentials of the caller) and the secrets the configs reference, then extra.
// os/exec keeps the last value of a variable given twice.
func agentEnv(home string, extra ...string) []string {
	// A named AWS profile lives in the caller's ~/.aws, which the test's HOME hides: the SDK would fail
	// to find it.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "AWS_PROFILE=") || strings.HasPrefix(kv, "AWS_DEFAULT_PROFILE=")
	})
	env = append(env, "HOME="+home, "TEST_WANDB_KEY="+apiKey, "TEST_S3_SECRET="+backends.SecretKey,
		"TEST_AZURE_KEY="+testenv.AzuriteKey, "TEST_SCIM_TOKEN="+scimToken, "TEST_OKTA_SECRET="+oktaSecret)
	return append(env, extra...)
}

// run runs the agent with agentEnv and checks that nothing it prints holds a secret.
func (e *e2e) run(args ...string) runResult {
	e.t.Helper()
	res := e.exec(args...)
	e.t.Cleanup(func() { // secrets never appear in anything the agent prints
		if secretsIn(res.stdout+res.stderr) > 0 {
			e.t.Errorf("%v printed a secret", args)
		}
	})
	return res
}

// exec is run without the check of the output, for the one command meant to print credentials
// (file-stores without --output).
func (e *e2e) exec(args ...string) runResult {
	e.t.Helper()
	args = append(args, "--config", e.config, "--log-level", "debug")
	cmd := exec.CommandContext(e.t.Context(), agentBin, args...)
	cmd.Dir = e.dir
	cmd.Env = agentEnv(e.dir, e.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.proc.Store(cmd.Process)
	err := cmd.Wait()
	e.proc.Store(nil)
	res := runResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); ok && ws.Signaled() {
		res.killed = true
	} else if err != nil && res.code <= 0 {
		e.t.Fatalf("run %v: %v", args, err)
	}
	return res
}

func (e *e2e) mustRun(args ...string) runResult {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("byob-agent %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// kill SIGKILLs the running agent; called from inside a fault hook, i.e. at a precise point.
func (e *e2e) kill() {
	if p := e.proc.Load(); p != nil {
		p.Kill()
	}
}

func (e *e2e) buckets() []string {
	e.t.Helper()
	out, err := backends.S3Client(e.t.Context()).ListBuckets(e.t.Context(), &s3.ListBucketsInput{})
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		if strings.HasPrefix(aws.ToString(b.Name), e.prefix+"-") {
			names = append(names, aws.ToString(b.Name))
		}
	}
	slices.Sort(names)
	return names
}

// team is the test's name for one of its four teams.
func (e *e2e) team(name string) string { return name + "-" + e.sfx }

func (e *e2e) wantBuckets() []string {
	return []string{e.prefix + "-" + e.team("alpha"), e.prefix + "-" + e.team("beta"), e.prefix + "-fx-" + e.team("gamma"), e.prefix + "-op-" + e.team("delta")}
}

func (e *e2e) bucketTags(name string) map[string]string {
	e.t.Helper()
	out, err := backends.S3Client(e.t.Context()).GetBucketTagging(e.t.Context(), &s3.GetBucketTaggingInput{Bucket: aws.String(name)})
	if err != nil {
		e.t.Fatalf("tags of %s: %v", name, err)
	}
	tags := map[string]string{}
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags
}

// keysFor counts KMS keys tagged for a team (keys are shared by every test: they carry the team tag).
func keysFor(t *testing.T, teamName string) int {
	t.Helper()
	return len(teamKeys(t)[teamName])
}

// teamKeys maps each team to the ARNs of the KMS keys tagged for it, reading every page of the KMS
// that all tests share (ListKeys returns 100 keys a page).
func teamKeys(t *testing.T) map[string][]string {
	t.Helper()
	ctx := t.Context()
	c := backends.KMSClient(ctx)
	out := map[string][]string{}
	for pages := kms.NewListKeysPaginator(c, &kms.ListKeysInput{}); pages.HasMorePages(); {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Keys {
			tags, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: k.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range tags.Tags {
				if aws.ToString(tag.TagKey) == "byob-agent-team" {
					out[aws.ToString(tag.TagValue)] = append(out[aws.ToString(tag.TagValue)], aws.ToString(k.KeyArn))
				}
			}
		}
	}
	return out
}

// assertConverged checks exactly one bucket and one W&B team per desired team, each as recorded.
func (e *e2e) assertConverged() {
	e.t.Helper()
	if got, want := e.buckets(), e.wantBuckets(); !slices.Equal(got, want) {
		e.t.Errorf("buckets = %v, want %v", got, want)
	}
	for _, b := range e.wantBuckets() {
		if tags := e.bucketTags(b); tags["managed-by"] != "byob-agent" {
			e.t.Errorf("bucket %s tags = %v", b, tags)
		}
	}
	groups := e.emu.Groups()
	names := map[string]int{}
	for _, g := range groups {
		names[g.DisplayName]++
	}
	if len(groups) != 4 || names[e.team("alpha")] != 1 || names[e.team("beta")] != 1 || names[e.team("gamma")] != 1 || names[e.team("delta")] != 1 {
		e.t.Errorf("W&B teams = %v", names)
	}
	e.assertRecordsInSync(nil)
}

// assertRecordsInSync checks that the state records of the teams (nil: all) are in sync, with no intent
// left, each naming a W&B team of its name created with the recorded bucket.
func (e *e2e) assertRecordsInSync(teams []string) {
	e.t.Helper()
	groups := e.emu.Groups()
	db, err := state.Open(filepath.Join(e.dir, "state.db"), state.Options{ReadOnly: true})
	if err != nil {
		e.t.Fatalf("state does not open cleanly: %v", err)
	}
	defer db.Close()
	recs, err := db.List(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	byID := map[string]wandbemu.EmuGroup{}
	for _, g := range groups {
		byID[g.ID] = g
	}
	if teams != nil {
		recs = slices.DeleteFunc(recs, func(r state.Record) bool { return !slices.Contains(teams, r.Name) })
		if len(recs) != len(teams) {
			e.t.Errorf("state has %d of the teams %v", len(recs), teams)
		}
	}
	for _, r := range recs {
		g, ok := byID[r.GroupID]
		if r.Phase != state.PhaseInSync || r.Intent != nil || !ok || g.DisplayName != r.Name {
			e.t.Errorf("record %s: phase %s intent %+v group %q (W&B: %+v)", r.Name, r.Phase, r.Intent, r.GroupID, g)
			continue
		}
		if g.StorageBucket == nil || g.StorageBucket.Name != r.Storage.Bucket {
			e.t.Errorf("team %s was created with storage %+v, state records bucket %s", r.Name, g.StorageBucket, r.Storage.Bucket)
		}
		// The service accounts W&B put in the team are recorded as such, however the team came to be
		// recorded (created, or adopted after a crash or a lost answer): member sync leaves them alone.
		for _, sa := range e.emu.ServiceAccountIDs() {
			inTeam := slices.ContainsFunc(g.Members, func(m wandb.Member) bool { return m.Value == sa })
			if inTeam && !slices.Contains(r.InitialMemberIDs, sa) {
				e.t.Errorf("record %s does not record W&B's service account %s among the members W&B put in (%v)", r.Name, sa, r.InitialMemberIDs)
			}
		}
	}
}

func TestEndToEnd(t *testing.T) {
	e := newE2E(t)
	backends.ResetCounts()

	plan := e.mustRun("plan")
	for _, want := range []string{"alpha", "delta", "create W&B team", "4 teams, 4 with changes"} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, plan.stdout)
		}
	}
	var plans []struct {
		Team  string   `json:"team"`
		Steps []string `json:"steps"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("plan", "--json").stdout), &plans); err != nil || len(plans) != 4 {
		t.Fatalf("plan --json: %v %+v", err, plans)
	}
	if plans[0].Team != e.team("alpha") || !slices.Equal(plans[0].Steps, []string{"create_kms_key", "ensure_bucket", "verify_bucket", "create_team", "mark_in_sync"}) {
		t.Errorf("plan for alpha: %+v", plans[0])
	}
	if n := backends.S3Mutations() + backends.KMSMutations() + e.emu.MutatingCount(); n != 0 {
		t.Fatalf("plan made %d mutating calls", n)
	}

	out := e.mustRun("sync")
	if !strings.Contains(out.stdout, "4 created") {
		t.Errorf("sync output:\n%s", out.stdout)
	}
	e.assertConverged()
	for _, g := range e.emu.Groups() {
		sb := g.StorageBucket
		switch g.DisplayName {
		case e.team("alpha"):
			if sb.Provider != "AWS" || !strings.HasPrefix(sb.KMSKeyID, "arn:aws:kms:") || sb.KMSKeyID == e.keyARN {
				t.Errorf("alpha storageBucket %+v: want its own created key", sb)
			}
		case e.team("gamma"):
			if sb.Provider != "AWS" || sb.KMSKeyID != e.keyARN || sb.AWSExternalID != "ext-123" {
				t.Errorf("gamma storageBucket %+v", sb)
			}
		case e.team("delta"):
			if sb.Provider != "MINIO" || sb.Path != "wandb" || sb.KMSKeyID != "" {
				t.Errorf("delta storageBucket %+v", sb)
			}
		}
	}
	if a, b := keysFor(t, e.team("alpha")), keysFor(t, e.team("beta")); a != 1 || b != 1 {
		t.Errorf("keys: alpha %d, beta %d; want one each", a, b)
	}

	// Nothing changed: zero mutating calls to S3, KMS and W&B.
	backends.ResetCounts()
	e.emu.ResetCounts()
	again := e.mustRun("sync")
	if !strings.Contains(again.stdout, "4 unchanged") {
		t.Errorf("second sync output:\n%s", again.stdout)
	}
	if s, k, w := backends.S3Mutations(), backends.KMSMutations(), e.emu.MutatingCount(); s+k+w != 0 {
		t.Errorf("second sync made mutating calls: S3 %d (%v), KMS %d, W&B %d", s, backends.S3Counts(), k, w)
	}
	if got := backends.S3Counts(); len(got) != 0 {
		t.Errorf("second sync read S3 although no drift check was due: %v", got)
	}

	ls := e.mustRun("state", "ls")
	if strings.Count(ls.stdout, "in_sync") != 8 { // status and phase columns
		t.Errorf("state ls:\n%s", ls.stdout)
	}
	show := e.mustRun("state", "show", e.team("alpha"))
	if !strings.Contains(show.stdout, `"phase": "in_sync"`) {
		t.Errorf("state show:\n%s", show.stdout)
	}
	raw, err := os.ReadFile(filepath.Join(e.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{apiKey, backends.SecretKey} {
		if bytes.Contains(raw, []byte(s)) {
			t.Error("the state file holds a secret")
		}
	}
}

func TestCreatedTeamStorageIsFrozen(t *testing.T) {
	e := newE2E(t)
	e.mustRun("sync")
	e.writeConfig(e.emuURL(), "v2-{{ .Team }}")
	backends.ResetCounts()
	e.emu.ResetCounts()

	plan := e.mustRun("plan")
	if strings.Count(plan.stdout, "cannot change a team's storage") != 2 {
		t.Errorf("plan should report alpha and beta in conflict:\n%s", plan.stdout)
	}
	res := e.run("sync")
	if res.code != 1 || !strings.Contains(res.stdout, "conflict") {
		t.Fatalf("sync with changed storage: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if s, w := backends.S3Mutations(), e.emu.MutatingCount(); s+w != 0 {
		t.Errorf("a conflict made changes: S3 %d, W&B %d", s, w)
	}
	if got := e.buckets(); !slices.Equal(got, e.wantBuckets()) {
		t.Errorf("buckets = %v: no new bucket may be made for a created team", got)
	}
}

// emuURL recovers the emulator's SCIM URL from the config (the test server is per test).
func (e *e2e) emuURL() string {
	raw, _ := os.ReadFile(e.config)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "scimURL: "); ok {
			return v
		}
	}
	e.t.Fatal("no scimURL in config")
	return ""
}

func TestForeignTeamIsAConflict(t *testing.T) {
	e := newE2E(t)
	emuClientCreate(t, e, e.team("beta"))
	res := e.run("sync")
	if res.code != 1 || !strings.Contains(res.stdout, "did not create") {
		t.Fatalf("exit %d\n%s", res.code, res.stdout)
	}
	if n := len(e.emu.Groups()); n != 4 {
		t.Errorf("W&B has %d teams, want 4 (3 created + the foreign one)", n)
	}
}

// TestHandMadeTeamDuringBucketSetupIsAConflict: someone creates beta's team by hand in W&B while the
// agent sets beta's bucket up. The agent's first POST gets 409; nothing says that POST ever reached W&B
// before, so the team is not adopted (its storage is unknown and immutable): a conflict naming the team,
// recorded, and the same on the next run, which changes nothing.
func TestHandMadeTeamDuringBucketSetupIsAConflict(t *testing.T) {
	e := newE2E(t)
	beta := e.team("beta")
	var once atomic.Bool
	backends.SetS3Fault(func(r *http.Request) (int, bool) {
		if r.Method == http.MethodPut && r.URL.Query().Has("policy") && strings.Contains(r.URL.Path, e.prefix+"-"+beta) && once.CompareAndSwap(false, true) {
			emuClientCreate(t, e, beta)
		}
		return 0, false
	})
	res := e.run("sync")
	backends.SetS3Fault(nil)
	if !once.Load() {
		t.Fatal("beta's bucket policy was never written")
	}
	if res.code != 1 || !strings.Contains(res.stdout, fmt.Sprintf("W&B already has a team named %q", beta)) || !strings.Contains(res.stdout, "did not create") {
		t.Fatalf("sync: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	show := e.mustRun("state", "show", beta).stdout
	if !strings.Contains(show, `"conflict": "W\u0026B already has a team named`) || strings.Contains(show, `"groupId"`) || strings.Contains(show, `"intent"`) {
		t.Errorf("beta's record: a conflict, no W&B team, no intent left:\n%s", show)
	}
	e.assertRecordsInSync([]string{e.team("alpha"), e.team("gamma"), e.team("delta")})
	e.emu.ResetCounts()
	if again := e.run("sync"); again.code != 1 || !strings.Contains(again.stdout, "did not create") || e.emu.MutatingCount() != 0 {
		t.Errorf("second sync: exit %d, %d W&B mutations\n%s", again.code, e.emu.MutatingCount(), again.stdout)
	}
	if n := len(e.emu.Groups()); n != 4 {
		t.Errorf("W&B has %d teams, want 4 (3 created + the hand-made one)", n)
	}
}

// TestPartialTeamListChangesNothing: W&B documents no paging on /Groups, only "maximum 9999 results per
// request" (https://docs.wandb.ai/platform/hosting/iam/scim). Against a W&B that caps pages and ignores
// startIndex, with more teams than a page holds, plan and sync refuse the partial list: a team missing
// from it would look absent. Nothing is created anywhere.
func TestPartialTeamListChangesNothing(t *testing.T) {
	e := newE2E(t)
	e.emuOptions = func(o *wandbemu.Options) { o.MaxPageSize, o.IgnoreStartIndex = 2, true }
	e.writeConfig(e.startEmulator(wandbemu.NewS3Checker(backends.Endpoint, backends.Region, backends.AccessKey, backends.SecretKey).ForS3Providers()), "{{ .Team }}")
	for _, n := range []string{"x1", "x2", "x3"} {
		emuClientCreate(t, e, e.team(n))
	}
	backends.ResetCounts()
	e.emu.ResetCounts()
	for _, cmd := range []string{"plan", "sync"} {
		res := e.run(cmd)
		if res.code == 0 || !strings.Contains(res.stderr, "W&B's list is partial") || !strings.Contains(res.stderr, "nothing is planned on a partial list") {
			t.Errorf("%s against a partial team list: exit %d\nstdout:\n%s\nstderr:\n%s", cmd, res.code, res.stdout, res.stderr)
		}
	}
	if got := e.emu.Counts()["GET /scim/Groups"]; got < 4 {
		t.Errorf("W&B's team list was read %d times, want at least 2 pages per command", got)
	}
	if s, k, w := backends.S3Mutations(), backends.KMSMutations(), e.emu.MutatingCount(); s+k+w != 0 || len(e.buckets()) != 0 || len(e.emu.Groups()) != 3 {
		t.Errorf("a partial list led to changes: S3 %d, KMS %d, W&B %d mutations; buckets %v; %d W&B teams", s, k, w, e.buckets(), len(e.emu.Groups()))
	}
}

func emuClientCreate(t *testing.T, e *e2e, name string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.emuURL()+"/Groups",
		strings.NewReader(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"`+name+`","members":[]}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create foreign team: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestCrashRecovery SIGKILLs `byob-agent sync` at precise points between an external mutation and
// its record, then runs it again: it must converge to exactly one bucket, one key and one W&B team
// per team, with no stray bucket, and then be idempotent.
func TestCrashRecovery(t *testing.T) {
	tests := []struct {
		name string
		arm  func(e *e2e)
	}{
		{"after a KMS key is created, before its alias", func(e *e2e) {
			var done atomic.Bool
			backends.SetKMSFault(func(r *http.Request) (int, bool) {
				if r.Header.Get("X-Amz-Target") == "TrentService.CreateAlias" && done.CompareAndSwap(false, true) {
					e.kill()
					return http.StatusServiceUnavailable, true
				}
				return 0, false
			})
		}},
		{"after a bucket is created, before it is tagged", func(e *e2e) {
			var done atomic.Bool
			backends.SetS3Fault(func(r *http.Request) (int, bool) {
				if r.Method == http.MethodPut && r.URL.Query().Has("tagging") && done.CompareAndSwap(false, true) {
					e.kill()
					return http.StatusServiceUnavailable, true
				}
				return 0, false
			})
		}},
		{"while a bucket is being configured", func(e *e2e) {
			var done atomic.Bool
			backends.SetS3Fault(func(r *http.Request) (int, bool) {
				if r.Method == http.MethodPut && r.URL.Query().Has("policy") && done.CompareAndSwap(false, true) {
					e.kill()
					return http.StatusServiceUnavailable, true
				}
				return 0, false
			})
		}},
		{"after buckets are ready, before the W&B team is created", func(e *e2e) {
			var done atomic.Bool
			f := func(r *http.Request) wandbemu.Fault {
				if r.Method == http.MethodPost && done.CompareAndSwap(false, true) {
					e.kill()
					return wandbemu.Fault{Status: http.StatusServiceUnavailable}
				}
				return wandbemu.Fault{}
			}
			e.fault.Store(&f)
		}},
		{"after W&B created the team, before the answer arrives", func(e *e2e) {
			var done atomic.Bool
			f := func(r *http.Request) wandbemu.Fault {
				if r.Method == http.MethodPost && done.CompareAndSwap(false, true) {
					e.kill()
					return wandbemu.Fault{Status: http.StatusServiceUnavailable, AfterApply: true}
				}
				return wandbemu.Fault{}
			}
			e.fault.Store(&f)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2E(t)
			tt.arm(e)
			if res := e.run("sync"); !res.killed {
				t.Fatalf("the agent was not killed at the point (exit %d)\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			backends.SetS3Fault(nil)
			backends.SetKMSFault(nil)
			e.fault.Store(nil)

			e.mustRun("sync")
			e.assertConverged()
			for _, team := range []string{e.team("alpha"), e.team("beta")} {
				if n := keysFor(t, team); n != 1 {
					t.Errorf("team %s has %d KMS keys, want 1", team, n)
				}
			}
			backends.ResetCounts()
			e.emu.ResetCounts()
			e.mustRun("sync")
			if s, k, w := backends.S3Mutations(), backends.KMSMutations(), e.emu.MutatingCount(); s+k+w != 0 {
				t.Errorf("sync after recovery is not idempotent: S3 %d, KMS %d, W&B %d", s, k, w)
			}
		})
	}
}

func TestBadConfigChangesNothing(t *testing.T) {
	e := newE2E(t)
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), "  concurrency: 4\n", "  concurrency: many\n  colour: blue\n", 1)
	if err := os.WriteFile(e.config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	backends.ResetCounts()
	for _, cmd := range [][]string{{"config", "validate"}, {"sync"}, {"plan"}} {
		res := e.run(cmd...)
		if res.code != 2 {
			t.Errorf("%v: exit %d, want 2", cmd, res.code)
		}
		for _, want := range []string{"byob-agent.yaml:9:16: sync.concurrency: expected an integer", "byob-agent.yaml:10:3: sync.colour: unknown key"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", cmd, want, res.stderr)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state.db")); !os.IsNotExist(err) {
		t.Errorf("a bad config created the state file: %v", err)
	}
	if n := backends.S3Mutations() + len(backends.S3Counts()) + e.emu.MutatingCount(); n != 0 {
		t.Errorf("a bad config made %d calls", n)
	}
}

func TestDriftIsRepaired(t *testing.T) {
	e := newE2E(t)
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	// Every sync is a drift check.
	if err := os.WriteFile(e.config, []byte(strings.Replace(string(raw), "  concurrency: 4\n", "  concurrency: 4\n  driftCheckInterval: 1ms\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("sync")
	ctx := t.Context()
	victim := e.prefix + "-" + e.team("beta")
	if _, err := backends.S3Client(ctx).DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String(victim)}); err != nil {
		t.Fatal(err)
	}
	backends.ResetCounts()
	e.emu.ResetCounts()
	if plan := e.mustRun("plan"); !strings.Contains(plan.stdout, "repair drift: cors") || backends.S3Mutations() != 0 {
		t.Errorf("plan should show the drift and change nothing (%d S3 mutations):\n%s", backends.S3Mutations(), plan.stdout)
	}
	out := e.mustRun("sync")
	if !strings.Contains(out.stdout, "1 repaired") || !strings.Contains(out.stdout, "3 verified") || !strings.Contains(out.stdout, "changed cors") {
		t.Errorf("sync after drift:\n%s", out.stdout)
	}
	if got := backends.S3Counts()["PUT ?cors"]; got != 1 {
		t.Errorf("CORS written %d times, want exactly 1 (for %s): %v", got, victim, backends.S3Counts())
	}
	if _, err := backends.S3Client(ctx).GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String(victim)}); err != nil {
		t.Errorf("CORS not restored: %v", err)
	}
	if n := e.emu.MutatingCount(); n != 0 {
		t.Errorf("drift repair touched W&B: %d mutations", n)
	}
}
