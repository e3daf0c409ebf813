package main

// Chaos tests: the agent SIGKILLed at random requests, over and over, while it provisions many teams on
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
	"slices"
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

const (
	chaosSCIMWritesPerKill = 100             // a daemon run is killed at one of its first this many SCIM writes
	chaosSCIMKillDeadline  = 2 * time.Minute // for one kill: generous, the pushers send hundreds of writes a second
)

// chaosTeam is one desired team and the bucket its profile gives it.
type chaosTeam struct{ name, profile, bucket string }

// chaosTeam is the i-th team: profiles take turns, so any three teams in a row cover all of them. They
// are aws with a KMS key created per team and s3-compatible (both on SeaweedFS), and azure (Azurite).
func (e *e2e) chaosTeam(i int) chaosTeam {
	name := fmt.Sprintf("c%03d-%s", i, e.sfx)
	switch i % 3 {
	case 0:
		return chaosTeam{name, "kms", e.prefix + "-" + name}
	case 1:
		return chaosTeam{name, "onprem", e.prefix + "-op-" + name}
	default:
		return chaosTeam{name, "azure", e.prefix + "-az-" + name}
	}
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
// `byob-agent sync` is SIGKILLed again and again from inside the backends' fault hooks, with a few
// transient errors besides; then lets it finish and checks that every team has exactly one bucket,
// one key (aws), one W&B team and a clean in_sync record, that nothing exists the state does not
// know, that doctor passes, and that one more sync changes nothing.
//
// Teams arrive in batches, one with every run, as if the file grew between restarts. The first batch
// runs uninterrupted and counts the mutating requests a new team makes to each backend. Every later
// run is killed at a request drawn among those its new teams are sure to make (chaosCost.draw), so
// however slow the machine, the kill comes before the work is done. A run the kill somehow misses
// (the agent gave up on a new team early) is followed by another with a new batch.
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

	var teams []chaosTeam // the configured teams, in batches
	// grow adds a batch of new teams to the configuration and returns it: a parts-th of the teams not
	// yet configured, and at least one of each profile (more than cfg.teams if runs missed kills).
	grow := func(parts int) []chaosTeam {
		n := max((cfg.teams-len(teams)+parts-1)/parts, 3)
		for range n {
			teams = append(teams, e.chaosTeam(len(teams)))
		}
		e.writeChaosConfig(scimURL, az, teams)
		return teams[len(teams)-n:]
	}
	agent := func(args ...string) runResult {
		res := e.run(args...)
		rep.Secrets += secretsIn(res.stdout + res.stderr)
		return res
	}

	first := grow(cfg.kills + 1)
	disarm := faults.arm(chaosKill{})
	res := agent("sync")
	disarm()
	if res.code != 0 {
		t.Fatalf("uninterrupted sync of %d teams: exit %d\n%s\n%s", len(first), res.code, res.stdout, res.stderr)
	}
	cost := measureChaosCost(t, first, faults)
	t.Logf("uninterrupted: %d teams; a new team makes at least %v", len(first), cost)

	faults.setRate(chaosFaultRate)
	var lastKill time.Time
	for run := 1; rep.Kills < cfg.kills; run++ {
		if missed := run - 1 - rep.Kills; missed > cfg.kills {
			t.Fatalf("%d runs missed their kills (%d of %d kills done): the agent made fewer mutations for new teams than the uninterrupted run", missed, rep.Kills, cfg.kills)
		}
		fresh := grow(cfg.kills - rep.Kills)
		k := cost.draw(rng, fresh)
		before := e.mutations(az)
		disarm := faults.arm(k)
		res := agent("sync")
		by := disarm()
		midWork := e.mutations(az) > before
		t.Logf("run %d: %d teams, %d new, kill at %v: killed %v by %q, mid-work %v, exit %d", run, len(teams), len(fresh), k, res.killed, by, midWork, res.code)
		if res.killed {
			rep.Kills++
			rep.KillsBy[by]++
			if midWork {
				rep.KillsMidWork++
			}
			lastKill = time.Now()
		}
	}
	rep.Teams = len(teams) // the last kill's batch held the rest of cfg.teams

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
	var out struct {
		Wandb wandbReport
		Teams []doctorReport
	}
	if err := json.Unmarshal([]byte(doc.stdout), &out); err != nil || doc.code != 0 || !out.Wandb.OK || len(out.Teams) != len(teams) {
		t.Errorf("doctor: exit %d, W&B ok %v, %d reports for %d teams (%v)\n%s", doc.code, out.Wandb.OK, len(out.Teams), len(teams), err, doc.stderr)
	}
	for _, r := range out.Teams {
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
}

// chaosBackends are where a kill can be placed: mid bucket configuration on SeaweedFS, around KMS key
// creation, mid container configuration on Azurite, around a W&B team creation.
var chaosBackends = []string{"s3", "kms", "azure", "wandb"}

// chaosCost is, by profile and backend, how many mutating requests (W&B: POSTs) a new team makes at
// least, as counted in the uninterrupted first run.
type chaosCost map[string]map[string]int

// measureChaosCost reads the counts of the first run, whose new teams are first: per bucket for
// SeaweedFS and Azurite (the fewest any team of the profile made), per team for KMS and W&B.
func measureChaosCost(t *testing.T, first []chaosTeam, f *chaosFaults) chaosCost {
	t.Helper()
	counts, byBucket := f.seen()
	of := map[string]int{} // first-run teams by profile
	for _, tm := range first {
		of[tm.profile]++
	}
	c := chaosCost{}
	for _, tm := range first {
		store := "s3"
		if tm.profile == "azure" {
			store = "azure"
		}
		if c[tm.profile] == nil {
			c[tm.profile] = map[string]int{store: byBucket[tm.bucket], "wandb": counts["wandb"] / len(first)}
		}
		c[tm.profile][store] = min(c[tm.profile][store], byBucket[tm.bucket])
	}
	c["kms"]["kms"] = counts["kms"] / of["kms"]
	for p, bs := range c {
		for b, n := range bs {
			if n == 0 {
				t.Fatalf("the uninterrupted run made no %s mutation for some team of profile %s: %v, by bucket %v", b, p, counts, byBucket)
			}
		}
	}
	return c
}

// draw picks a run's kill among the requests its new teams fresh are sure to make: a backend they
// use, each as likely, then one of the requests to it, failed or passed on. Work left over by an
// earlier kill only adds requests, so the kill may also land in that.
func (c chaosCost) draw(rng *rand.Rand, fresh []chaosTeam) chaosKill {
	sure := map[string]int{}
	for _, tm := range fresh {
		for b, n := range c[tm.profile] {
			sure[b] += n
		}
	}
	on := slices.DeleteFunc(slices.Clone(chaosBackends), func(b string) bool { return sure[b] == 0 })
	b := on[rng.IntN(len(on))]
	return chaosKill{on: b, at: 1 + rng.IntN(sure[b]), pass: rng.IntN(2) == 0}
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

// TestChaosDaemonSCIM SIGKILLs the daemon again and again while an IdP pushes SCIM users, groups and
// memberships from several goroutines and Okta event hooks arrive, restarting it each time. Each kill
// fires as the n-th SCIM write since the restart has been sent, n drawn from the seed. Every write the
// daemon acknowledged must be in the state it leaves (acknowledged means durable), nothing may be
// duplicated, and every pushed group must converge to one bucket and one W&B team after a restart.
func TestChaosDaemonSCIM(t *testing.T) {
	cfg := chaosSettingsFromEnv(t)
	rng := cfg.rng(3)
	rep := newChaosReport(t, cfg)
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)

	push := newSCIMPusher(e.sfx, max(cfg.teams/4, 3))
	ctx, stop := context.WithCancel(t.Context())
	var wg gosync.WaitGroup
	for w := range 4 {
		wg.Go(func() { push.run(ctx, w, cfg.rng(10+uint64(w))) })
	}
	wg.Go(func() { push.oktaHooks(ctx, cfg.rng(9)) })
	t.Cleanup(func() { stop(); wg.Wait() })

	// The last kill waits for enough acknowledged writes (scimPusher.thick); then the pushers stop
	// before the daemon restarts, so nothing writes while the state is checked.
	var lastKill time.Time
	for rep.Kills < cfg.kills {
		d := e.startDaemon(port)
		at := 1 + rng.IntN(chaosSCIMWritesPerKill)
		target := push.attach(d.base, at, rep.Kills == cfg.kills-1, func() { d.cmd.Process.Kill() })
		select {
		case <-target.killed:
		case <-time.After(chaosSCIMKillDeadline):
			push.mu.Lock()
			sent := target.sent
			push.mu.Unlock()
			t.Fatalf("kill %d did not fire within %v: %d of the %d SCIM writes it waits for were sent (%s)", rep.Kills+1, chaosSCIMKillDeadline, sent, at, push.summary())
		}
		err := d.cmd.Wait()
		if ws, ok := d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the daemon ended by itself (%v) instead of by the kill\n%s", err, d.logs())
		}
		target.client.CloseIdleConnections()
		lastKill = time.Now()
		rep.Kills++
		rep.KillsBy["scim write sent"]++
		rep.KillsMidWork++ // the write that fired the kill was in flight
		rep.Secrets += secretsIn(d.logs())
	}
	stop()
	wg.Wait()
	t.Logf("SCIM pushes: %s", push.summary())
	rep.Faults["scim write unanswered"], rep.Faults["webhook unanswered"] = push.unanswered, push.hooks["unanswered"]

	live := push.verify(t, filepath.Join(e.dir, "state.db"), rep)
	d := e.startDaemon(port)
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
}
