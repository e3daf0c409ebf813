package main

// Chaos tests: the agent SIGKILLed at random moments, over and over, while it provisions many teams on
// several providers (TestChaosKills) and while an IdP pushes SCIM writes into the daemon
// (TestChaosDaemonSCIM). Afterwards everything must have converged exactly once, and nothing that was
// acknowledged may be lost. `make chaos` runs them bigger (see chaosSettings) and prints their reports.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/state"
)

// chaosFaultRate is the share of backend and W&B requests failed with a transient error between kills.
const chaosFaultRate = 0.02

// chaosTeam is one desired team and the bucket its profile gives it.
type chaosTeam struct{ name, profile, bucket string }

// chaosTeams spreads n teams over three profiles: aws with a KMS key created per team and
// s3-compatible (both on SeaweedFS), and azure (Azurite).
func (e *e2e) chaosTeams(n int) []chaosTeam {
	teams := make([]chaosTeam, n)
	for i := range teams {
		name := fmt.Sprintf("c%03d-%s", i, e.sfx)
		switch i % 3 {
		case 0:
			teams[i] = chaosTeam{name, "kms", e.prefix + "-" + name}
		case 1:
			teams[i] = chaosTeam{name, "onprem", e.prefix + "-op-" + name}
		default:
			teams[i] = chaosTeam{name, "azure", e.prefix + "-az-" + name}
		}
	}
	return teams
}

func (e *e2e) writeChaosConfig(scimURL string, az *testenv.AzureEnv, teams []chaosTeam) {
	var b strings.Builder
	fmt.Fprintf(&b, `wandb:
  scimURL: %[1]s
  deployment: dedicated
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
  timeout: 5s
state:
  path: state.db
sync:
  concurrency: 8
profiles:
  kms:
    provider: aws
    region: %[2]s
    endpoint: %[3]s
    pathStyle: true
    credentials: {accessKeyId: %[4]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[5]s-{{ .Team }}"
    kms: {create: true, endpoint: %[6]s, accountId: "%[7]s"}
  onprem:
    provider: s3-compatible
    region: %[2]s
    endpoint: %[3]s
    credentials: {accessKeyId: %[4]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[5]s-op-{{ .Team }}"
  azure:
    provider: azure
    account: %[8]s
    endpoint: %[9]s
    credentials: {accountKey: "${TEST_AZURE_KEY}"}
    tenantId: 11111111-2222-3333-4444-555555555555
    clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
    bucket: "%[5]s-az-{{ .Team }}"
    softDeleteDays: 10
teams:
`, scimURL, backends.Region, backends.Endpoint, backends.AccessKey, e.prefix, backends.KMSEndpoint, backends.AccountID, az.Account, az.Endpoint)
	for _, t := range teams {
		fmt.Fprintf(&b, "  - {name: %s, profile: %s}\n", t.name, t.profile)
	}
	if err := os.WriteFile(e.config, []byte(b.String()), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// records reads the state file as a separate process would: read-only, after the agent has gone.
func (e *e2e) records() []state.Record {
	e.t.Helper()
	db, err := state.Open(filepath.Join(e.dir, "state.db"), state.Options{ReadOnly: true})
	if err != nil {
		e.t.Fatalf("the state does not open cleanly: %v", err)
	}
	defer db.Close()
	recs, err := db.List(e.t.Context())
	if err != nil {
		e.t.Fatalf("list the state: %v", err)
	}
	return recs
}

// converged reports whether the agent has nothing left to do for a record.
func converged(r state.Record) bool {
	return r.Phase == state.PhaseInSync && r.Intent == nil && r.LastError == "" && r.Conflict == "" && !r.Orphaned
}

// containers lists the Azurite containers whose names start with the test's prefix.
func (e *e2e) containers(az *testenv.AzureEnv) []string {
	e.t.Helper()
	var names []string
	prefix := e.prefix + "-"
	for pages := az.AdminClient().NewListContainersPager(&azblob.ListContainersOptions{Prefix: &prefix}); pages.More(); {
		page, err := pages.NextPage(e.t.Context())
		if err != nil {
			e.t.Fatalf("list containers: %v", err)
		}
		for _, c := range page.ContainerItems {
			names = append(names, *c.Name)
		}
	}
	return names
}

// mutations is how many mutating requests S3, KMS, Azurite and the emulator have seen so far.
func (e *e2e) mutations(az *testenv.AzureEnv) int {
	return backends.S3Mutations() + backends.KMSMutations() + az.Mutations() + e.emu.MutatingCount()
}

// TestChaosKills provisions teams over aws (a KMS key per team), s3-compatible and azure while
// `byob-agent sync` is SIGKILLed again and again, at random delays and from inside the backends' fault
// hooks, with a few transient errors besides; then lets it finish and checks that every team has
// exactly one bucket, one key (aws), one W&B team and a clean in_sync record, that nothing exists the
// state does not know, that doctor passes, and that one more sync changes nothing.
//
// Teams arrive in batches, one with every run, as if the file grew between restarts: every kill then
// finds work to cut. The first batch runs uninterrupted and measures the agent's start-up, how long a
// team takes and how many mutations it makes; every run that escapes its kill measures again. Each
// kill is drawn at a random mutation, after a random delay or at a random team creation, within the
// work left (chaosPace.draw).
func TestChaosKills(t *testing.T) {
	cfg := chaosSettingsFromEnv(t)
	rng := cfg.rng(1)
	rep := newChaosReport(t, cfg)
	e := newE2E(t)
	az, err := testenv.StartAzurite(t.Context(), testenv.AzuriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { az.Close() })
	checker := wandbemu.NewS3Checker(backends.Endpoint, backends.Region, backends.AccessKey, backends.SecretKey).ForS3Providers()
	if checker["AZURE"], err = wandbemu.NewAzureChecker(az.Endpoint, az.Account, az.Key); err != nil {
		t.Fatal(err)
	}
	scimURL := e.startEmulator(checker)
	faults := newChaosFaults(cfg.rng(2), procKiller(e))
	faults.install(e, az)
	t.Cleanup(func() { rep.Faults = faults.injected() }) // before the report is written

	teams := e.chaosTeams(cfg.teams)
	rep.Teams = len(teams)
	listed := 0 // teams[:listed] are in the configuration
	grow := func(parts int) []chaosTeam {
		listed += (len(teams) - listed + parts - 1) / parts
		e.writeChaosConfig(scimURL, az, teams[:listed])
		return teams[:listed]
	}
	agent := func(args ...string) runResult {
		res := e.run(args...)
		rep.Secrets += secretsIn(res.stdout + res.stderr)
		return res
	}
	var pace chaosPace
	// run runs one sync, killed as armed, and measures the pace if it finished on its own.
	run := func(todo int, k chaosKill) (runResult, string) {
		disarm := faults.arm(k)
		start := time.Now()
		res := agent("sync")
		took := time.Since(start)
		by := disarm()
		if !res.killed && res.code == 0 {
			pace.measure(todo, took, faults)
		}
		return res, by
	}

	first := grow(cfg.kills + 1)
	if res, _ := run(len(first), chaosKill{}); res.code != 0 {
		t.Fatalf("uninterrupted sync of %d teams: exit %d\n%s\n%s", len(first), res.code, res.stdout, res.stderr)
	}
	t.Logf("uninterrupted: %d teams; %v", len(first), pace)

	faults.setRate(chaosFaultRate)
	lastKill := time.Now()
	for i := 1; rep.Kills < cfg.kills; i++ {
		if i > 4*cfg.kills+10 {
			t.Fatalf("only %d of %d kills after %d runs", rep.Kills, cfg.kills, i-1)
		}
		desired := grow(cfg.kills - rep.Kills)
		todo, creations := len(desired), len(desired)
		for _, r := range e.records() {
			if converged(r) {
				todo--
			}
			if r.Phase.Created() {
				creations--
			}
		}
		k := pace.draw(rng, todo, creations)
		before := e.mutations(az)
		res, by := run(todo, k)
		midWork := e.mutations(az) > before
		t.Logf("run %d: %d teams, %d to do, kill %v: killed %v by %q, mid-work %v, exit %d", i, len(desired), todo, k, res.killed, by, midWork, res.code)
		if res.killed {
			rep.Kills++
			rep.KillsBy[by]++
			if midWork {
				rep.KillsMidWork++
			}
			lastKill = time.Now()
		}
	}

	// No more kills or faults: sync until it succeeds.
	faults.setRate(0)
	e.writeChaosConfig(scimURL, az, teams)
	for attempt := 1; ; attempt++ {
		res := agent("sync")
		if res.code == 0 {
			break
		}
		if attempt == 3 {
			t.Fatalf("sync after the kills still fails after %d attempts: exit %d\n%s\n%s", attempt, res.code, res.stdout, res.stderr)
		}
		t.Logf("sync after the kills, attempt %d: exit %d\n%s", attempt, res.code, res.stdout)
	}
	rep.ConvergeSec = seconds(time.Since(lastKill))

	e.checkChaosInventory(rep, az, teams)

	doc := agent("doctor", "--json")
	var reports []doctorReport
	if err := json.Unmarshal([]byte(doc.stdout), &reports); err != nil || doc.code != 0 || len(reports) != len(teams) {
		t.Errorf("doctor: exit %d, %d reports for %d teams (%v)\n%s", doc.code, len(reports), len(teams), err, doc.stderr)
	}
	for _, r := range reports {
		if !r.OK {
			t.Errorf("doctor: %s (%s) fails: %+v %s", r.Team, r.Bucket, r.Checks, r.Error)
		}
	}

	backends.ResetCounts()
	az.ResetCounts()
	e.emu.ResetCounts()
	if res := agent("sync"); res.code != 0 {
		t.Errorf("sync after convergence: exit %d\n%s", res.code, res.stdout)
	}
	if s, k, a, w := backends.S3Mutations(), backends.KMSMutations(), az.Mutations(), e.emu.MutatingCount(); s+k+a+w != 0 {
		t.Errorf("sync after convergence made mutating calls: S3 %d (%v), KMS %d, Azure %d (%v), W&B %d", s, backends.S3Counts(), k, a, az.Counts(), w)
	}

	raw, err := os.ReadFile(filepath.Join(e.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	rep.Secrets += secretsIn(string(raw))
	if rep.Secrets != 0 {
		t.Errorf("found %d secrets in the agent's output and state", rep.Secrets)
	}
	if rep.KillsMidWork*2 < rep.Kills {
		t.Errorf("only %d of %d kills cut a run with mutations in flight: the delays miss the work", rep.KillsMidWork, rep.Kills)
	}
}

// chaosPace is how long the agent takes to start and how long a team takes and how many mutations,
// as measured by the last run that finished without a kill.
type chaosPace struct {
	startup   time.Duration // from the start to the first mutation
	perTeam   time.Duration
	mutations float64 // mutating requests per team
}

func (p *chaosPace) measure(todo int, took time.Duration, f *chaosFaults) {
	if todo <= 0 {
		return
	}
	mutations, first := f.seen()
	p.startup = first
	p.perTeam = max((took-first)/time.Duration(todo), time.Millisecond)
	p.mutations = max(float64(mutations)/float64(todo), 1)
}

func (p chaosPace) String() string {
	return fmt.Sprintf("start-up %v, %v and %.0f mutations a team", p.startup.Round(time.Millisecond), p.perTeam.Round(time.Millisecond), p.mutations)
}

// draw picks the next kill within the first 80% of the work of todo teams: 40% of the time at a random
// mutation, 40% after a random delay, 20% at a random one of the run's W&B team creations. A run the
// estimate overrates would end before its kill, so the last creation is armed as well: every run with
// a team to create is killed mid-work.
func (p chaosPace) draw(rng *rand.Rand, todo, creations int) chaosKill {
	within := func(n float64) int64 { return max(int64(0.8*n), 1) }
	todo = max(todo, 1)
	k := chaosKill{post: max(creations, 0)}
	switch r := rng.IntN(5); {
	case r < 2:
		k.mutation = 1 + int(rng.Int64N(within(p.mutations*float64(todo))))
	case r < 4:
		k.after = p.startup + 1 + time.Duration(rng.Int64N(within(float64(p.perTeam)*float64(todo))))
	case creations > 0:
		k.post = 1 + rng.IntN(creations)
	}
	return k
}

// checkChaosInventory compares what exists in SeaweedFS, Azurite, KMS and W&B with the desired teams
// and the state, counting converged teams, duplicates and strays into rep.
func (e *e2e) checkChaosInventory(rep *chaosReport, az *testenv.AzureEnv, teams []chaosTeam) {
	t := e.t
	t.Helper()
	recs := map[string]state.Record{}
	known := map[string]bool{} // buckets the state knows
	for _, r := range e.records() {
		recs[r.Name] = r
		known[r.Storage.Bucket] = true
	}
	if len(recs) != len(teams) {
		t.Errorf("the state has %d records for %d teams", len(recs), len(teams))
	}
	buckets := map[string]int{}
	for _, b := range append(e.buckets(), e.containers(az)...) {
		buckets[b]++
		if !known[b] {
			rep.Strays++
			t.Errorf("bucket %s exists but the state does not know it", b)
		}
	}
	groups := map[string][]wandbemu.EmuGroup{}
	for _, g := range e.emu.Groups() {
		groups[g.DisplayName] = append(groups[g.DisplayName], g)
		if r, ok := recs[g.DisplayName]; !ok || r.GroupID != g.ID {
			rep.Strays++
			t.Errorf("W&B team %s (%s) is not the one the state knows", g.DisplayName, g.ID)
		}
	}
	keys := teamKeys(t)
	for _, tm := range teams {
		r, ok := recs[tm.name]
		ok = ok && converged(r) && r.Storage.Bucket == tm.bucket
		if !ok {
			t.Errorf("team %s: record %+v, want in_sync on bucket %s", tm.name, r, tm.bucket)
		}
		if n := buckets[tm.bucket]; n != 1 {
			ok = false
			t.Errorf("team %s: %d buckets named %s", tm.name, n, tm.bucket)
		}
		gs := groups[tm.name]
		rep.Duplicates += max(len(gs)-1, 0)
		if len(gs) != 1 || gs[0].StorageBucket == nil || gs[0].StorageBucket.Name != tm.bucket {
			ok = false
			t.Errorf("team %s: W&B teams %+v, want one on bucket %s", tm.name, gs, tm.bucket)
		}
		switch k := keys[tm.name]; {
		case tm.profile == "kms":
			rep.Duplicates += max(len(k)-1, 0)
			if len(k) != 1 || k[0] != r.KMSKeyARN {
				ok = false
				t.Errorf("team %s: KMS keys %v, want exactly the recorded %q", tm.name, k, r.KMSKeyARN)
			}
		case len(k) > 0:
			rep.Strays += len(k)
			t.Errorf("team %s of profile %s has KMS keys %v", tm.name, tm.profile, k)
		}
		if ok {
			rep.Converged++
		}
	}
}

// TestChaosDaemonSCIM SIGKILLs the daemon at random moments while an IdP pushes SCIM users, groups
// and memberships from several goroutines and Okta event hooks arrive, restarting it each time. Every
// write the daemon acknowledged must be there after the last restart (acknowledged means durable),
// nothing may be duplicated, and every pushed group must converge to one bucket and one W&B team.
func TestChaosDaemonSCIM(t *testing.T) {
	cfg := chaosSettingsFromEnv(t)
	rng := cfg.rng(3)
	rep := newChaosReport(t, cfg)
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	d := e.startDaemon(port)

	push := newSCIMPusher(d.base, e.sfx, max(cfg.teams/4, 3))
	ctx, stop := context.WithCancel(t.Context())
	var wg gosync.WaitGroup
	for w := range 4 {
		wg.Go(func() { push.run(ctx, w, cfg.rng(10+uint64(w))) })
	}
	wg.Go(func() { push.oktaHooks(ctx, cfg.rng(9)) })
	t.Cleanup(func() { stop(); wg.Wait() })

	var lastKill time.Time
	for rep.Kills < cfg.kills {
		time.Sleep(200*time.Millisecond + time.Duration(rng.Int64N(int64(1300*time.Millisecond))))
		midWrite := push.inFlight.Load() > 0
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatalf("kill the daemon: %v", err)
		}
		d.cmd.Wait()
		lastKill = time.Now()
		rep.Kills++
		rep.KillsBy["timer"]++
		if midWrite {
			rep.KillsMidWork++
		}
		rep.Secrets += secretsIn(d.logs())
		d = e.startDaemon(port)
	}
	stop()
	wg.Wait()
	t.Logf("SCIM pushes: %s", push.summary())
	rep.Faults["scim write unanswered"], rep.Faults["webhook unanswered"] = push.unanswered, push.hooks["unanswered"]

	live := push.verify(t, d, rep)
	acked := push.ackedGroups()
	rep.Teams = len(acked)
	for _, g := range live { // unacknowledged groups that made it become teams too
		waitFor(t, "the team of group "+g, func() bool { return e.hasTeam(teamOf(g)) })
	}
	rep.ConvergeSec = seconds(time.Since(lastKill))

	// A clean stop, then the state as another process sees it.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	rep.Secrets += secretsIn(d.logs())
	want := map[string]bool{e.team("yaml"): true}
	for _, g := range live {
		want[teamOf(g)] = true
	}
	recs := map[string]state.Record{}
	known := map[string]bool{}
	for _, r := range e.records() {
		recs[r.Name] = r
		known[r.Storage.Bucket] = true
		if !want[r.Name] || !converged(r) {
			t.Errorf("record %s: %+v; want in_sync and a live group's team", r.Name, r)
		}
	}
	buckets := map[string]bool{}
	for _, b := range e.buckets() {
		buckets[b] = true
		if !known[b] {
			rep.Strays++
			t.Errorf("bucket %s exists but the state does not know it", b)
		}
	}
	groups := map[string]int{}
	for _, g := range e.emu.Groups() {
		groups[g.DisplayName]++
		if r, ok := recs[g.DisplayName]; !ok || r.GroupID != g.ID {
			rep.Strays++
			t.Errorf("W&B team %s (%s) is not the one the state knows", g.DisplayName, g.ID)
		}
	}
	for name := range want {
		rep.Duplicates += max(groups[name]-1, 0)
		if groups[name] != 1 || !buckets[recs[name].Storage.Bucket] {
			t.Errorf("team %s: %d W&B teams, bucket %q listed %v", name, groups[name], recs[name].Storage.Bucket, buckets[recs[name].Storage.Bucket])
		}
	}
	for _, g := range acked {
		if r := recs[teamOf(g)]; groups[teamOf(g)] == 1 && converged(r) && buckets[r.Storage.Bucket] {
			rep.Converged++
		}
	}
	if rep.Secrets != 0 {
		t.Errorf("found %d secrets in the daemon's logs", rep.Secrets)
	}
	if rep.KillsMidWork == 0 {
		t.Errorf("no kill of %d cut a SCIM write in flight", rep.Kills)
	}
	if len(acked) == 0 || push.acked["member added"] == 0 || push.hooks["acknowledged"] == 0 {
		t.Errorf("the chaos was too thin to prove anything: %s", push.summary())
	}
}
