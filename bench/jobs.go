package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/bucketfactory/s3bucket"
	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

// The profile every team gets: one shared bucket on SeaweedFS, a prefix per team (the topology of
// the hand measurements in issue 15; a bucket per team would measure SeaweedFS creating volumes).
const (
	profileName  = "shared"
	sharedBucket = "bench-shared"
)

// daemonSettings, when set, make a configuration for `byob-agent run`.
type daemonSettings struct {
	port                     int
	scimToken, webhookSecret string
}

// writeConfig writes a configuration and its teams file under w.dir/name and returns its path. The
// state lives beside it.
func (w *world) writeConfig(ctx context.Context, name string, teams []string, concurrency int, d *daemonSettings) (string, error) {
	dir := filepath.Join(w.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	var tf strings.Builder
	tf.WriteString("teams:\n")
	for _, t := range teams {
		fmt.Fprintf(&tf, "  - name: %s\n", t)
	}
	if err := os.WriteFile(filepath.Join(dir, "teams.yaml"), []byte(tf.String()), 0o600); err != nil {
		return "", fmt.Errorf("write the teams file: %w", err)
	}
	pgState, err := w.postgresState(ctx, dir)
	if err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`wandb:
  scimURL: %s/scim
  deployment: dedicated
  auth: {mode: bearer, apiKey: "${BENCH_WANDB_KEY}"}
state:
  path: state.db%s
sync:
  concurrency: %d
defaultProfile: %s
profiles:
  %[4]s:
    provider: s3-compatible
    topology: shared
    region: %s
    endpoint: %s
    credentials: {accessKeyId: %s, secretAccessKey: "${BENCH_S3_SECRET}"}
    bucket: %s
    path: "teams/{{ .Team }}"
teamsFile: teams.yaml
`, w.emuProxy.url, pgState, concurrency, profileName, w.s3.Region, w.s3Proxy.url, w.s3.AccessKey, sharedBucket)
	if d != nil {
		cfg += fmt.Sprintf(`server:
  listen: 127.0.0.1:%[1]d
  baseURL: http://127.0.0.1:%[1]d
scim:
  tokens: ["${BENCH_SCIM_TOKEN}"]
  groups: {prefix: "wandb-"}
  teamsPerHour: 100000 # the bench pushes hundreds of groups at once; the default quota is 20
webhooks:
  generic: {secrets: ["${BENCH_WEBHOOK_SECRET}"]}
`, d.port)
	}
	path := filepath.Join(dir, "byob-agent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", fmt.Errorf("write the configuration: %w", err)
	}
	return path, nil
}

// postgresState is the configuration's state.postgres with -state postgres: a new database, its DSN in
// a file next to the configuration; "" with the bbolt state.
func (w *world) postgresState(ctx context.Context, dir string) (string, error) {
	if w.pg == nil {
		return "", nil
	}
	dsn, err := w.pg.NewDatabase(ctx)
	if err != nil {
		return "", fmt.Errorf("create a database for the agent's state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pg.dsn"), []byte(dsn+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the DSN file: %w", err)
	}
	return "\n  postgres: {dsnFile: pg.dsn}", nil
}

// migrateState copies the seeded state file of cfg into its PostgreSQL database with the agent's own
// `state migrate`, which compares every record after; nothing with the bbolt state.
func (w *world) migrateState(ctx context.Context, cfg string) error {
	if w.pg == nil {
		return nil
	}
	dir := filepath.Dir(cfg)
	cmd := exec.CommandContext(ctx, w.agentBin, "state", "migrate", "--to", "postgres", "--config", cfg,
		"--file", filepath.Join(dir, "state.db"), "--dsn-file", filepath.Join(dir, "pg.dsn"))
	cmd.Dir, cmd.Env = dir, w.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("byob-agent state migrate: %v\n%s", err, tail(string(out)))
	}
	return nil
}

// env is the agent's environment: the secrets the configuration names, and HOME in the work
// directory (no AWS configuration of the caller's).
func (w *world) env(extra ...string) []string {
	env := append(os.Environ(), "HOME="+w.dir, "BENCH_WANDB_KEY="+w.apiKey, "BENCH_S3_SECRET="+w.s3.SecretKey,
		"BENCH_SCIM_TOKEN="+scimToken, "BENCH_WEBHOOK_SECRET="+webhookSecret)
	return append(env, extra...)
}

// agentRun is one one-shot command of the agent.
type agentRun struct {
	wall   time.Duration
	cpu    time.Duration // user + system, the agent's own
	counts counts        // what the proxies saw
	// The CPU the rest used meanwhile: the backends (SeaweedFS, local-kms, the emulator) and the
	// bench process (the proxies).
	backends, bench time.Duration
}

// runSync runs `byob-agent sync --json` and checks that it reported teams teams, every one as want.
// profileDir, when set, receives NAME-cpu.pprof and NAME-heap.pprof of the run.
func (w *world) runSync(ctx context.Context, cfg, profileDir, profileName string, teams int, want string) (agentRun, error) {
	cmd := exec.CommandContext(ctx, w.agentBin, "sync", "--json", "--log-level", "warn", "--config", cfg)
	cmd.Dir = filepath.Dir(cfg)
	var extra []string
	if profileDir != "" {
		extra = append(extra, "BYOB_AGENT_CPUPROFILE="+filepath.Join(profileDir, profileName+"-cpu.pprof"),
			"BYOB_AGENT_MEMPROFILE="+filepath.Join(profileDir, profileName+"-heap.pprof"))
	}
	cmd.Env = w.env(extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	w.resetCounts()
	children, self := childrenCPU(), selfCPU()
	start := time.Now()
	err := cmd.Run()
	// Once waited for, the agent is no longer a child: childrenCPU is the backends' alone.
	run := agentRun{wall: time.Since(start), counts: w.counts(), backends: childrenCPU() - children, bench: selfCPU() - self}
	if err != nil {
		return run, fmt.Errorf("byob-agent sync: %v\n%s", err, tail(stderr.String()))
	}
	run.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var results []struct {
		Team    string `json:"team"`
		Outcome string `json:"outcome"`
		Detail  string `json:"detail"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		return run, fmt.Errorf("read the output of byob-agent sync --json: %w", err)
	}
	if len(results) != teams {
		return run, fmt.Errorf("byob-agent sync reported %d teams, want %d", len(results), teams)
	}
	for _, r := range results {
		if r.Outcome != want {
			return run, fmt.Errorf("byob-agent sync: team %s %s (%s), want %s", r.Team, r.Outcome, r.Detail, want)
		}
	}
	return run, nil
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// teamNames returns n names prefix0000, prefix0001, ...
func teamNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return out
}

// seedConverged makes the state of cfg and the emulator hold every team of cfg as a converged team,
// the way a sync that finished leaves them, without the agent doing the work: the emulator's
// teams are created directly (it checks the shared bucket, which an earlier sync configured) and
// the state records written with the state package, as the agent's steps write them.
func (w *world) seedConverged(ctx context.Context, cfgPath string) error {
	teams, err := w.desired(cfgPath)
	if err != nil {
		return err
	}
	client, err := wandb.NewClient(wandb.Options{BaseURL: w.emuURL + "/scim", Auth: wandb.AuthBearer, APIKey: w.apiKey})
	if err != nil {
		return err
	}
	db, err := state.Open(filepath.Join(filepath.Dir(cfgPath), "state.db"), state.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UTC()
	return forEach(ctx, teams, 16, func(ctx context.Context, t team.Team) error {
		g, err := client.CreateGroup(ctx, wandb.NewGroup{DisplayName: t.Name, StorageBucket: wandb.BucketFor(t.Storage, "")})
		if err != nil {
			return fmt.Errorf("seed W&B team %s: %w", t.Name, err)
		}
		_, err = db.Update(ctx, t.Name, func(r *state.Record) error {
			r.Profile, r.Source, r.Phase = t.Profile, t.Source, state.PhaseInSync
			r.Storage, r.StorageDigest, r.GroupID = t.Storage, t.Storage.Digest(), g.ID
			r.BucketReady, r.TeamCreated, r.LastVerified = now, now, now
			r.InitialMemberIDs = memberIDs(g.Members)
			return nil
		})
		return err
	})
}

// desired loads a configuration as the agent does and returns its teams, storage resolved.
func (w *world) desired(cfgPath string) ([]team.Team, error) {
	cfg, err := config.Load(cfgPath, config.LoadOptions{LookupEnv: w.lookupEnv, ReadFile: os.ReadFile})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", cfgPath, err)
	}
	return cfg.DesiredTeams(), nil
}

func memberIDs(ms []wandb.Member) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.Value)
	}
	return ids
}

func (w *world) lookupEnv(name string) (string, bool) {
	for _, kv := range w.env() {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// forEach calls fn for every item on n goroutines and returns the first error.
func forEach[T any](ctx context.Context, items []T, n int, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan T)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for it := range work {
				if err := fn(ctx, it); err != nil {
					cancel(err)
				}
			}
		})
	}
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

// naive is the baseline: the job done sequentially and statelessly, with the agent's own bucket and
// W&B code (so every request is the one the agent would make), but none of its state: every run
// looks each team up in W&B and reads its bucket's settings again; a team W&B lacks gets its bucket
// ensured and verified (probe object included) and is then created.
type naive struct {
	factory *s3bucket.Factory
	wandb   *wandb.Client
}

func (w *world) newNaive(ctx context.Context) (*naive, error) {
	f, err := s3bucket.New(ctx, s3bucket.Options{
		Provider: team.ProviderS3Compatible, Region: w.s3.Region, Endpoint: w.s3Proxy.url, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(w.s3.AccessKey, w.s3.SecretKey, ""),
	})
	if err != nil {
		return nil, err
	}
	c, err := wandb.NewClient(wandb.Options{BaseURL: w.emuProxy.url + "/scim", Auth: wandb.AuthBearer, APIKey: w.apiKey, Deployment: "dedicated"})
	if err != nil {
		return nil, err
	}
	return &naive{factory: f, wandb: c}, nil
}

// ensureShared makes the shared bucket, as the first team of a cold sync would.
func (n *naive) ensureShared(ctx context.Context) error {
	b := bucketfactory.Bucket{Team: "bench", Profile: profileName, Shared: true,
		Storage: team.Storage{Provider: team.ProviderS3Compatible, Bucket: sharedBucket, Path: "teams/bench", Shared: true}}
	if _, err := n.factory.Ensure(ctx, b, bucketfactory.EnsureOptions{}); err != nil {
		return fmt.Errorf("create the shared bucket: %w", err)
	}
	return nil
}

// run does the job for teams, one after the other.
func (n *naive) run(ctx context.Context, teams []team.Team) error {
	for _, t := range teams {
		name, st := t.Name, t.Storage
		b := bucketfactory.Bucket{Team: name, Profile: t.Profile, Storage: st, Shared: st.Shared}
		g, err := n.wandb.FindGroup(ctx, name)
		if err != nil {
			return fmt.Errorf("baseline: look up team %s: %w", name, err)
		}
		if g != nil {
			results, err := n.factory.Check(ctx, b, bucketfactory.CheckOptions{})
			if err != nil {
				return fmt.Errorf("baseline: check the bucket of %s: %w", name, err)
			}
			for _, r := range results {
				if !r.OK {
					return fmt.Errorf("baseline: bucket of %s: %s", name, r)
				}
			}
			continue
		}
		if _, err := n.factory.Ensure(ctx, b, bucketfactory.EnsureOptions{}); err != nil {
			return fmt.Errorf("baseline: ensure the bucket of %s: %w", name, err)
		}
		if err := bucketfactory.Verify(ctx, n.factory, b); err != nil {
			return fmt.Errorf("baseline: verify the bucket of %s: %w", name, err)
		}
		if _, err := n.wandb.CreateGroup(ctx, wandb.NewGroup{DisplayName: name, StorageBucket: wandb.BucketFor(st, "")}); err != nil {
			return fmt.Errorf("baseline: create team %s: %w", name, err)
		}
	}
	return nil
}
