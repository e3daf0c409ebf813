// Command bench measures byob-agent at its job against the real local backends (SeaweedFS with
// local-kms, the W&B emulator), with 20 ms of latency injected on every storage and W&B request the
// agent makes, next to a naive baseline; it prints a table against the targets of issue 15 and writes
// the figures to a JSON file (`make bench`: bench/results.json). README "Performance" says what each
// figure is and how requests are counted.
//
// -smoke runs every measurement with a handful of teams and users (the test of this program).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// sizes are how much work each measurement does.
type sizes struct {
	cold, noop, baseline int // teams: cold sync, no-op sync, the baseline's sample (extrapolated)
	concurrency          int
	users, lookups       int
	patches, hookSamples int
	delay                time.Duration
}

var full = sizes{cold: 1000, noop: 10000, baseline: 40, concurrency: 32, users: 10000, lookups: 300, patches: 3000, hookSamples: 10, delay: 20 * time.Millisecond}

var smoke = sizes{cold: 5, noop: 5, baseline: 2, concurrency: 32, users: 20, lookups: 5, patches: 20, hookSamples: 2, delay: 20 * time.Millisecond}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	smokeRun := fs.Bool("smoke", false, "a few teams and users only: checks that every measurement runs")
	out := fs.String("out", "bench/results.json", "where the results go (JSON)")
	profileDir := fs.String("profile", "", "directory for the agent's CPU and heap profiles (cold and no-op sync, daemon heap at exit)")
	logs := fs.String("logs", "", "file for the backends' output (default: discarded)")
	only := fs.String("only", "", "comma-separated parts to run (cold, baseline, noop, daemon; default all): to profile one; the results then lack the others' keys")
	delay := fs.Duration("delay", full.delay, "latency added to every storage and W&B request the agent makes")
	backend := fs.String("state", "bolt", "the agent's state: bolt (the file) or postgres (a PostgreSQL 15 server the bench starts)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := full
	if *smokeRun {
		s = smoke
	}
	s.delay = *delay
	var logw io.Writer = io.Discard
	if *logs != "" {
		f, err := os.Create(*logs)
		if err != nil {
			return err
		}
		defer f.Close()
		logw = f
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return err
		}
	}
	started := time.Now()
	parts := map[string]bool{"cold": true, "baseline": true, "noop": true, "daemon": true}
	if *only != "" {
		clear(parts)
		for p := range strings.SplitSeq(*only, ",") {
			parts[p] = true
		}
	}
	if *backend != "bolt" && *backend != "postgres" {
		return fmt.Errorf("-state must be bolt or postgres, got %q", *backend)
	}
	res, err := measure(ctx, s, parts, *backend == "postgres", *profileDir, logw, stdout)
	if err != nil {
		return err
	}
	printTable(stdout, res)
	fmt.Fprintf(stdout, "\nwhole run: %s\n", time.Since(started).Round(time.Second))
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return nil
}

// measure runs the measurements of parts in one world and returns the figures by key.
func measure(ctx context.Context, s sizes, parts map[string]bool, postgres bool, profileDir string, logs, progress io.Writer) (_ map[string]float64, err error) {
	say := func(format string, args ...any) {
		fmt.Fprintf(progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	say("building the agent and the W&B emulator, starting SeaweedFS and local-kms")
	w, err := startWorld(ctx, s.delay, logs)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := w.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if postgres {
		say("starting PostgreSQL 15 for the agent's state")
		if w.pg, err = testenv.StartPostgres(ctx, testenv.PostgresOptions{Logs: logs}); err != nil {
			return nil, err
		}
	}
	r := map[string]float64{}
	nv, err := w.newNaive(ctx)
	if err != nil {
		return nil, err
	}
	if parts["cold"] {
		if err := w.measureCold(ctx, s, profileDir, r, say); err != nil {
			return nil, err
		}
	} else if err := nv.ensureShared(ctx); err != nil { // seeding needs the bucket the cold sync makes
		return nil, err
	}
	if parts["baseline"] {
		if err := w.measureBaseline(ctx, s, nv, r, say); err != nil {
			return nil, err
		}
	}
	if parts["noop"] || parts["daemon"] {
		if err := w.measureConverged(ctx, s, parts, profileDir, r, say); err != nil {
			return nil, err
		}
	}
	if r["cold_1k_seconds"] > 0 && r["baseline_cold_1k_seconds"] > 0 {
		r["baseline_cold_1k_ratio"] = r["baseline_cold_1k_seconds"] / r["cold_1k_seconds"]
	}
	if r["noop_10k_seconds"] > 0 && r["baseline_noop_10k_seconds"] > 0 {
		r["baseline_noop_10k_ratio"] = r["baseline_noop_10k_seconds"] / r["noop_10k_seconds"]
	}
	for k, v := range r { // two decimals are plenty, and JSON has no NaN
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s is not a number (%v)", k, v)
		}
		r[k] = math.Round(v*100) / 100
	}
	return r, nil
}

type sayFunc func(format string, args ...any)

// measureCold: new teams on the shared bucket (created by the first of them), with latency.
func (w *world) measureCold(ctx context.Context, s sizes, profileDir string, r map[string]float64, say sayFunc) error {
	say("cold sync of %d teams, concurrency %d, %s per request", s.cold, s.concurrency, s.delay)
	cold, err := w.writeConfig(ctx, "cold", teamNames("c", s.cold), s.concurrency, nil)
	if err != nil {
		return err
	}
	c, err := w.runSync(ctx, cold, profileDir, "cold", s.cold, "created")
	if err != nil {
		return err
	}
	perTeam := float64(c.counts.requests()) / float64(s.cold)
	r["cold_1k_seconds"] = c.wall.Seconds()
	r["cold_1k_ideal_seconds"] = perTeam * s.delay.Seconds() * float64(s.cold) / float64(s.concurrency)
	r["cold_1k_ratio"] = r["cold_1k_seconds"] / r["cold_1k_ideal_seconds"]
	r["cold_cpu_ms_per_team"] = float64(c.cpu.Microseconds()) / 1000 / float64(s.cold)
	say("  %.1f s, %.1f requests a team (%d S3, %d W&B); CPU: agent %.1f s (%.2f ms a team), backends %.1f s, proxies %.1f s",
		c.wall.Seconds(), perTeam, c.counts.S3, c.counts.WandB, c.cpu.Seconds(), r["cold_cpu_ms_per_team"], c.backends.Seconds(), c.bench.Seconds())
	return nil
}

// measureBaseline: a sample of new teams, then the same teams again (converged), one by one;
// sequential work grows linearly with the teams, so the sample is scaled to 1,000 and 10,000.
func (w *world) measureBaseline(ctx context.Context, s sizes, nv *naive, r map[string]float64, say sayFunc) error {
	say("baseline: %d teams cold, then again, sequentially and statelessly", s.baseline)
	cfg, err := w.writeConfig(ctx, "baseline", teamNames("b", s.baseline), 1, nil)
	if err != nil {
		return err
	}
	teams, err := w.desired(cfg)
	if err != nil {
		return err
	}
	w.resetCounts()
	t := time.Now()
	if err := nv.run(ctx, teams); err != nil {
		return err
	}
	r["baseline_cold_1k_seconds"] = time.Since(t).Seconds() / float64(s.baseline) * float64(s.cold)
	w.resetCounts()
	t = time.Now()
	if err := nv.run(ctx, teams); err != nil {
		return err
	}
	r["baseline_noop_10k_seconds"] = time.Since(t).Seconds() / float64(s.baseline) * float64(s.noop)
	r["baseline_noop_10k_wandb_requests"] = float64(w.counts().WandB) / float64(s.baseline) * float64(s.noop)
	say("  cold %.2f s a team, no-op %.2f s a team", r["baseline_cold_1k_seconds"]/float64(s.cold), r["baseline_noop_10k_seconds"]/float64(s.noop))
	return nil
}

// measureConverged seeds a converged state of many teams (see seedConverged), syncs it (no-op), then
// runs the daemon on it.
func (w *world) measureConverged(ctx context.Context, s sizes, parts map[string]bool, profileDir string, r map[string]float64, say sayFunc) error {
	say("seeding %d converged teams", s.noop)
	port, err := freePort()
	if err != nil {
		return err
	}
	noop, err := w.writeConfig(ctx, "noop", teamNames("n", s.noop), s.concurrency, &daemonSettings{port: port})
	if err != nil {
		return err
	}
	if err := w.seedConverged(ctx, noop); err != nil {
		return err
	}
	if err := w.migrateState(ctx, noop); err != nil {
		return err
	}
	if parts["noop"] {
		say("no-op sync of %d converged teams", s.noop)
		n, err := w.runSync(ctx, noop, profileDir, "noop", s.noop, "unchanged")
		if err != nil {
			return err
		}
		r["noop_10k_seconds"] = n.wall.Seconds()
		r["noop_10k_wandb_requests"] = float64(n.counts.WandB)
		r["noop_10k_mutations"] = float64(n.counts.mutations())
		say("  %.2f s, CPU %.2f s, %d W&B and %d S3 requests", n.wall.Seconds(), n.cpu.Seconds(), n.counts.WandB, n.counts.S3)
	}
	if !parts["daemon"] {
		return nil
	}
	say("daemon on the %d teams: SCIM pushes, %d users, %d lookups, %d PATCHes, a full reconcile", s.noop, s.users, s.lookups, s.patches)
	dr, err := w.measureDaemon(ctx, noop, port, s, profileDir, say)
	if err != nil {
		return err
	}
	r["webhook_to_team_p50_ms"] = dr.hookP50
	r["scim_filter_p99_ms"] = dr.filterP99
	r["scim_patch_rps"] = dr.patchRPS
	r["scim_patch_p99_ms"] = dr.patchP99
	r["daemon_rss_mb_10k"] = dr.rssMB
	return nil
}

// target is a figure's goal (issue 15): at most or at least a value.
type target struct {
	atMost bool
	v      float64
}

var targets = map[string]target{
	"noop_10k_seconds":        {true, 1},
	"noop_10k_wandb_requests": {true, 2},
	"noop_10k_mutations":      {true, 0},
	"cold_1k_ratio":           {true, 1.25},
	"cold_cpu_ms_per_team":    {true, 2},
	"scim_patch_rps":          {false, 1000},
	"scim_patch_p99_ms":       {true, 50},
	"scim_filter_p99_ms":      {true, 5},
	"daemon_rss_mb_10k":       {true, 64},
}

// keys is the order of the table; every key of the results.
var keys = []string{
	"noop_10k_seconds", "noop_10k_wandb_requests", "noop_10k_mutations",
	"cold_1k_seconds", "cold_1k_ideal_seconds", "cold_1k_ratio", "cold_cpu_ms_per_team",
	"scim_patch_rps", "scim_patch_p99_ms", "scim_filter_p99_ms", "daemon_rss_mb_10k", "webhook_to_team_p50_ms",
	"baseline_noop_10k_seconds", "baseline_noop_10k_wandb_requests", "baseline_noop_10k_ratio",
	"baseline_cold_1k_seconds", "baseline_cold_1k_ratio",
}

func printTable(w io.Writer, r map[string]float64) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\tresult")
	for _, k := range keys {
		t, ok := targets[k]
		goal, verdict := "-", ""
		if ok {
			pass := r[k] <= t.v
			goal = fmt.Sprintf("<= %g", t.v)
			if !t.atMost {
				pass, goal = r[k] >= t.v, fmt.Sprintf(">= %g", t.v)
			}
			verdict = "FAIL"
			if pass {
				verdict = "pass"
			}
		}
		fmt.Fprintf(tw, "%s\t%g\t%s\t%s\n", k, r[k], goal, verdict)
	}
	tw.Flush()
}
