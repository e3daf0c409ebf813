package main

// TestChaosHA: three daemon replicas as real processes on one PostgreSQL, the leader killed, paused and
// cut off from the database while SCIM pushes and webhooks go to random replicas.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/pgstate"
)

const (
	haReplicas      = 3
	haLeaseName     = "byob-agent"    // pgstate's default lease, which the daemon campaigns for
	haEventDeadline = 2 * time.Minute // for one chaos event to fire: a bound, not a measure
	haConvergeLimit = 5 * time.Minute // for everything to converge after the last event
	haGenericKey    = "ha-generic-key-0123456789"
)

// haCluster is the replicas of TestChaosHA and the database they share.
type haCluster struct {
	t    *testing.T
	e    *e2e
	db   *pgxpool.Pool // the test's own connections, for reading the lease and the tables
	env  []string
	reps []*haReplica

	mu gosync.Mutex // guards reps[i].d while a replica restarts
}

// haReplica is one replica: its own port and config file, and its running process.
type haReplica struct {
	i      int
	port   int
	config string
	d      *daemonProc
}

// haConfig is the daemon config of one replica: the state in PostgreSQL with short lease timings (so
// failovers take seconds), pushed SCIM groups becoming teams with a bucket and a KMS key each (aws
// profile), and signed generic webhooks.
func (c *haCluster) writeConfig(r *haReplica) {
	e := c.e
	e.writeDaemonConfig(r.port)
	raw, err := os.ReadFile(e.config)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := string(raw)
	for _, rep := range []struct{ old, new string }{
		{"state:\n  path: state.db\n", "state:\n  postgres:\n    dsn: ${TEST_PG_DSN}\n    leaseDuration: 4s\n    renewDeadline: 3s\n    retryPeriod: 500ms\n"},
		{"workers: 2\n", "workers: 4\n"},
		{"deployment: self-managed\n", "deployment: dedicated\n"}, // W&B's own role reaches the bucket and key
		{"profiles:\n", fmt.Sprintf("defaultProfile: onprem\nprofiles:\n  kms:\n    provider: aws\n    region: %s\n    endpoint: %s\n    pathStyle: true\n    credentials: {accessKeyId: %s, secretAccessKey: \"${TEST_S3_SECRET}\"}\n    bucket: \"%s-{{ .Team }}\"\n    kms: {create: true, endpoint: %s, accountId: \"%s\"}\n",
			backends.Region, backends.Endpoint, backends.AccessKey, e.prefix, backends.KMSEndpoint, backends.AccountID)},
		{"groups: {prefix: \"wandb-\", profile: onprem}", "groups: {prefix: \"wandb-\", profile: kms}"},
		{"webhooks:\n", fmt.Sprintf("webhooks:\n  generic: {secrets: [\"whsec_%s\"]}\n", base64.StdEncoding.EncodeToString([]byte(haGenericKey)))},
	} {
		if !strings.Contains(cfg, rep.old) {
			c.t.Fatalf("the daemon config has no %q to replace", rep.old)
		}
		cfg = strings.Replace(cfg, rep.old, rep.new, 1)
	}
	if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// start (re)starts replica r.
func (c *haCluster) start(r *haReplica) {
	c.e.config = r.config // startDaemonEnv runs the agent with e.config
	d := c.e.startDaemonEnv(r.port, c.env...)
	c.mu.Lock()
	r.d = d
	c.mu.Unlock()
}

// lease reads the lease: its holder's replica (nil: none of the running ones, or expired) and epoch.
func (c *haCluster) lease() (*haReplica, int64) {
	var holder string
	var epoch int64
	var live bool
	err := c.db.QueryRow(c.t.Context(), `SELECT holder, epoch, expires_at > now() FROM leader_lease WHERE name = $1`, haLeaseName).Scan(&holder, &epoch, &live)
	if err != nil || !live {
		return nil, epoch
	}
	// The holder is "<host>-<pid>-<suffix>" (newReplication).
	parts := strings.Split(holder, "-")
	if len(parts) < 3 {
		return nil, epoch
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reps {
		if r.d != nil && r.d.cmd.Process.Pid == pid {
			return r, epoch
		}
	}
	return nil, epoch
}

// proc is r's running process.
func (c *haCluster) proc(r *haReplica) *daemonProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return r.d
}

// leaderAfter waits for a live leader with an epoch above epoch and returns it with its epoch.
func (c *haCluster) leaderAfter(epoch int64) (*haReplica, int64) {
	c.t.Helper()
	deadline := time.Now().Add(haEventDeadline)
	for time.Now().Before(deadline) {
		if r, e := c.lease(); r != nil && e > epoch {
			return r, e
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no replica took the lease after epoch %d within %v", epoch, haEventDeadline)
	return nil, 0
}

// termStart is when term epoch began, by the database's clock (the machine's clock too).
func (c *haCluster) termStart(epoch int64) time.Time {
	var at time.Time
	if err := c.db.QueryRow(c.t.Context(), `SELECT acquired_at FROM leader_terms WHERE name = $1 AND epoch = $2`, haLeaseName, epoch).Scan(&at); err != nil {
		c.t.Fatal(err)
	}
	return at
}

// random returns a running replica's process, picked at random (it may die under the caller).
func (c *haCluster) random(rng *rand.Rand) *daemonProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reps[rng.IntN(len(c.reps))].d
}

// haPusher is the IdP: SCIM group creations and signed webhooks to random replicas, remembering what
// was acknowledged.
type haPusher struct {
	c      *haCluster
	client *http.Client

	mu       gosync.Mutex
	rng      *rand.Rand
	groups   map[string]string // display name -> id, once acknowledged
	retries  int               // writes sent again after no answer or a 5xx (a replica died under them)
	hooks    map[string]int    // accepted generic webhooks by team
	hookErrs int               // webhook deliveries not accepted (a replica died under them)
}

// push creates the groups named, each until a replica acknowledges it.
func (p *haPusher) push(ctx context.Context, names []string) {
	for _, name := range names {
		for ctx.Err() == nil {
			p.mu.Lock()
			d := p.c.random(p.rng)
			p.mu.Unlock()
			code, body := p.send(ctx, d, http.MethodPost, "/scim/v2/Groups", "Bearer "+scimToken, "application/scim+json",
				fmt.Sprintf(`{"schemas":[%q],"displayName":%q,"members":[]}`, scimGroupURN, name))
			if code == http.StatusConflict { // an earlier try was committed, its answer lost
				code, body = p.send(ctx, d, http.MethodGet, "/scim/v2/Groups?filter="+urlQuery(`displayName eq "`+name+`"`), "Bearer "+scimToken, "", "")
				var list struct {
					Resources []struct {
						ID string `json:"id"`
					} `json:"Resources"`
				}
				if code == http.StatusOK && json.Unmarshal(body, &list) == nil && len(list.Resources) == 1 {
					body, code = []byte(`{"id":"`+list.Resources[0].ID+`"}`), http.StatusCreated
				}
			}
			if id := jsonID(body); code == http.StatusCreated && id != "" {
				p.mu.Lock()
				p.groups[name] = id
				p.mu.Unlock()
				break
			}
			p.mu.Lock()
			p.retries++
			p.mu.Unlock()
		}
	}
}

// hooksFor sends generic webhooks naming a random acknowledged team to random replicas until ctx ends.
func (p *haPusher) hooksFor(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		p.mu.Lock()
		var team string
		for name := range p.groups { // map order: random enough
			team = teamOf(name)
			break
		}
		d := p.c.random(p.rng)
		p.mu.Unlock()
		if team == "" {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		body := fmt.Sprintf(`{"teams":[%q]}`, team)
		id, ts := fmt.Sprintf("msg_ha_%d", i), strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(haGenericKey))
		mac.Write([]byte(id + "." + ts + "." + body))
		code, _ := p.send(ctx, d, http.MethodPost, "/webhooks/generic", "", "application/json", body,
			"webhook-id", id, "webhook-timestamp", ts, "webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		p.mu.Lock()
		if code == http.StatusNoContent {
			p.hooks[team]++
		} else if ctx.Err() == nil {
			p.hookErrs++
		}
		p.mu.Unlock()
		time.Sleep(30 * time.Millisecond)
	}
}

// send makes one request to d; 0 when it got no answer.
func (p *haPusher) send(ctx context.Context, d *daemonProc, method, path, auth, contentType, body string, header ...string) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return 0, nil
	}
	return resp.StatusCode, b.Bytes()
}

// TestChaosHA runs three replicas on one PostgreSQL while an IdP pushes SCIM groups (each a team with
// a bucket and a KMS key) and signed webhooks to random replicas. Teams come in batches, one before
// each chaos event, so every event finds work in flight: the leader SIGKILLed at its n-th S3 or KMS
// mutation (right after the intent of that step was written) or its n-th W&B POST (during the team's
// creation), n drawn from the seed and bounded by what the batch is sure to cause; the leader
// SIGSTOPped the same way at an S3 or KMS mutation that goes through, until another replica took the
// lease, then continued (it gets the answer and records it at once: the fence must refuse that
// write); the leader's lease connection
// terminated by the server (pg_terminate_backend) while it runs. Then every acknowledged group must
// be stored, every team converged exactly once (one bucket, one key, one W&B team), the outbox empty
// (every accepted webhook processed), and no record written by an epoch after the next term began.
func TestChaosHA(t *testing.T) {
	cfg := chaosSettingsFromEnv(t)
	rng := cfg.rng(20)
	rep := newChaosReport(t, cfg)
	e := newE2E(t)
	dsn := testenv.PostgresDatabase(t)
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c := &haCluster{t: t, e: e, db: pool, env: []string{"TEST_PG_DSN=" + dsn}}
	for i := range haReplicas {
		r := &haReplica{i: i, port: freePort(t), config: filepath.Join(e.dir, fmt.Sprintf("replica%d.yaml", i))}
		c.writeConfig(r)
		c.reps = append(c.reps, r)
	}
	// The kill of an event: the leader, SIGKILLed (or SIGSTOPped, with pause set) from inside a
	// backend's fault hook.
	killed := make(chan *haReplica, 1)
	var killedAt gosync.Map // "at" -> time.Time
	var pause atomic.Bool
	faults := newChaosFaults(cfg.rng(21), func() bool {
		r, _ := c.lease()
		if r == nil {
			return false
		}
		killedAt.Store("at", time.Now())
		sig := syscall.SIGKILL
		if pause.Load() {
			sig = syscall.SIGSTOP
		}
		if err := c.proc(r).cmd.Process.Signal(sig); err != nil {
			return false
		}
		killed <- r
		return true
	})
	faults.install(e, nil)
	for _, r := range c.reps {
		c.start(r)
	}
	_, epoch := c.leaderAfter(0)

	push := &haPusher{c: c, client: &http.Client{Timeout: 5 * time.Second}, rng: cfg.rng(22), groups: map[string]string{}, hooks: map[string]int{}}
	ctx, stop := context.WithCancel(t.Context())
	var hooks gosync.WaitGroup
	hooks.Go(func() { push.hooksFor(ctx) })
	t.Cleanup(func() { stop(); hooks.Wait() })

	// The events: cfg.kills SIGKILLs (on S3, KMS and W&B in turn), a pause, a cut connection.
	type event struct{ kind string }
	var events []event
	for i := range cfg.kills {
		events = append(events, event{[]string{"s3", "wandb", "kms"}[i%3]})
	}
	events = append(events, event{"sigstop"}, event{"terminate"})
	batch := max((cfg.teams+len(events))/(len(events)+1), 1)
	var names []string
	newBatch := func() []string {
		n := min(batch, cfg.teams-len(names))
		var b []string
		for range max(n, 1) {
			b = append(b, fmt.Sprintf("wandb-h%03d-%s", len(names), e.sfx))
			names = append(names, b[len(b)-1])
		}
		return b
	}
	push.push(ctx, newBatch()) // the first batch without chaos
	var maxGap time.Duration
	var pushes gosync.WaitGroup
	for _, ev := range events {
		c.leaderAfter(epoch - 1)
		b := newBatch()
		var at time.Time
		switch ev.kind {
		case "s3", "wandb", "kms", "sigstop":
			// A pause lets the request through: the paused leader gets its answer when continued, and
			// records it at once, after another replica took over (the write fencing must refuse).
			k := chaosKill{on: ev.kind, at: 1 + rng.IntN(len(b)), pass: rng.IntN(2) == 0}
			if ev.kind == "sigstop" {
				k = chaosKill{on: []string{"s3", "kms"}[rng.IntN(2)], at: 1 + rng.IntN(len(b)), pass: true}
			}
			pause.Store(ev.kind == "sigstop")
			disarm := faults.arm(k)
			pushed := make(chan struct{})
			go func() { push.push(ctx, b); close(pushed) }()
			var victim *haReplica
			select {
			case victim = <-killed:
			case <-time.After(haEventDeadline):
				t.Fatalf("%s at %v did not fire within %v", ev.kind, k, haEventDeadline)
			}
			by := disarm()
			v, _ := killedAt.Load("at")
			at = v.(time.Time)
			if ev.kind == "sigstop" {
				if next, _ := c.leaderAfter(epoch); next == victim {
					t.Fatalf("the paused replica still leads")
				}
				if err := c.proc(victim).cmd.Process.Signal(syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
				rep.KillsBy["leader paused past its lease at "+by]++
				<-pushed
				break
			}
			rep.KillsBy[by]++
			rep.Kills++
			rep.KillsMidWork++
			victim.d.cmd.Wait()
			rep.Secrets += secretsIn(victim.d.logs())
			c.start(victim)
			<-pushed
		case "terminate":
			pushes.Go(func() { push.push(ctx, b) })
			var holder string
			if err := pool.QueryRow(t.Context(), `SELECT holder FROM leader_lease WHERE name = $1`, haLeaseName).Scan(&holder); err != nil {
				t.Fatal(err)
			}
			at = time.Now()
			var n int
			if err := pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
				"byob-agent lease "+holder).Scan(&n); err != nil || n != 1 {
				t.Fatalf("terminate the leader's lease connection: %d connections, %v", n, err)
			}
			rep.KillsBy["leader's connection terminated"]++
		}
		_, next := c.leaderAfter(epoch)
		maxGap = max(maxGap, c.termStart(next).Sub(at))
		epoch = next
	}
	pushes.Wait()
	rep.Teams = len(names)
	lastEvent := time.Now()

	// Convergence: every pushed group's team in sync, and the outbox empty.
	store, err := pgstate.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(haConvergeLimit)
	for {
		recs, err := store.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, r := range recs {
			if converged(r) {
				done++
			}
		}
		var outbox int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM trigger_outbox`).Scan(&outbox); err != nil {
			t.Fatal(err)
		}
		if done == len(names)+1 && outbox == 0 { // +1: the config's own team
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d teams converged, %d triggers in the outbox", haConvergeLimit, done, len(names)+1, outbox)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rep.ConvergeSec = seconds(time.Since(lastEvent))
	// The metrics: one replica leads, and only its byob_teams count the teams (alerts sum them).
	waitFor(t, "one leader whose metrics count every team", func() bool {
		leaders, inSync := 0, 0.0
		for _, r := range c.reps {
			d := c.proc(r)
			if d.metric(t, "byob_leader") == "1" {
				leaders++
			}
			v, _ := strconv.ParseFloat(d.metric(t, `byob_teams{status="in_sync"}`), 64)
			inSync += v
		}
		return leaders == 1 && inSync == float64(len(names)+1)
	})
	stop()
	hooks.Wait()

	c.check(store, push, names, rep)
	var failovers int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) - 1 FROM leader_terms WHERE name = $1`, haLeaseName).Scan(&failovers); err != nil {
		t.Fatal(err)
	}
	rep.Failovers, rep.MaxLeaderlessSec = failovers, seconds(maxGap)
	rep.Faults["scim write retried"], rep.Faults["webhook not accepted"] = push.retries, push.hookErrs
	for _, r := range c.reps {
		rep.Secrets += secretsIn(r.d.logs())
	}
	t.Logf("HA chaos: %d failovers, longest without a leader %v, %d SCIM retries, webhooks accepted for %d teams", failovers, maxGap, push.retries, len(push.hooks))
}

// check verifies the end state: acknowledged groups stored, each team once everywhere, every
// webhook's team in sync, no stale-epoch write.
func (c *haCluster) check(store *pgstate.Store, push *haPusher, names []string, rep *chaosReport) {
	t, e := c.t, c.e
	groups, err := store.SCIMGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]state.SCIMGroup{}
	for _, g := range groups {
		if !g.Deleted {
			byName[g.DisplayName] = append(byName[g.DisplayName], g)
		}
	}
	push.mu.Lock()
	defer push.mu.Unlock()
	for name, id := range push.groups {
		rep.Acknowledged++
		got := byName[name]
		rep.Duplicates += max(len(got)-1, 0)
		if len(got) != 1 || got[0].ID != id {
			rep.Lost++
			t.Errorf("acknowledged group %s (%s): stored %+v", name, id, got)
		}
	}
	if len(push.groups) != len(names) {
		t.Errorf("%d of %d groups acknowledged", len(push.groups), len(names))
	}
	recs := map[string]state.Record{}
	all, err := store.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		recs[r.Name] = r
	}
	buckets := map[string]int{}
	for _, b := range e.buckets() {
		buckets[b]++
	}
	wandb := map[string]int{}
	for _, g := range e.emu.Groups() {
		wandb[g.DisplayName]++
	}
	keys := teamKeys(t)
	for _, name := range names {
		team := teamOf(name)
		r := recs[team]
		bucket := e.prefix + "-" + team
		ok := converged(r) && r.Storage.Bucket == bucket && buckets[bucket] == 1 && wandb[team] == 1 && len(keys[team]) == 1 && keys[team][0] == r.KMSKeyARN
		rep.Duplicates += max(buckets[bucket]-1, 0) + max(wandb[team]-1, 0) + max(len(keys[team])-1, 0)
		if !ok {
			t.Errorf("team %s: record %+v, %d buckets, %d W&B teams, KMS keys %v; want one each, in sync", team, r, buckets[bucket], wandb[team], keys[team])
			continue
		}
		rep.Converged++
	}
	for team := range push.hooks {
		if !converged(recs[team]) {
			t.Errorf("team %s of accepted webhooks is not in sync: %+v", team, recs[team])
		}
	}
	// Fencing, in the database: a write made after the next term began was made by a stale leader.
	var stale, unfenced int
	if err := c.db.QueryRow(t.Context(), `SELECT count(*) FROM team_records r JOIN leader_terms n
		ON n.name = $1 AND n.epoch > r.epoch WHERE r.updated_at >= n.acquired_at`, haLeaseName).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if err := c.db.QueryRow(t.Context(), `SELECT count(*) FROM team_records WHERE epoch IS NULL`).Scan(&unfenced); err != nil {
		t.Fatal(err)
	}
	if stale != 0 || unfenced != 0 {
		t.Errorf("%d team records written with a stale epoch, %d by no term", stale, unfenced)
	}
	rep.StaleWrites = stale
}
