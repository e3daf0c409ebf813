package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"log/slog"
	"net/http"
	"sync"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/transport"
	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/source/desired"
	"github.com/byob-agent/byob-agent/source/scimpush"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/admin"
	"github.com/byob-agent/byob-agent/state/pgstate"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/team"
)

func loadConfig(path string) (*config.Config, error) {
	return loadConfigReading(path, os.ReadFile)
}

// loadConfigReading is loadConfig reading files with readFile.
func loadConfigReading(path string, readFile func(string) ([]byte, error)) (*config.Config, error) {
	cfg, err := config.Load(path, config.LoadOptions{LookupEnv: os.LookupEnv, ReadFile: readFile})
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	for _, w := range cfg.Warnings { // allowed but unverified: said at every load, before any log setup
		fmt.Fprintf(os.Stderr, "byob-agent: warning: %s: %s\n", path, w)
	}
	return cfg, nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	g, _, err := parse("config validate", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(g.config)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: valid: %d profiles, %d teams\n", cfg.File, len(cfg.ProfileNames()), len(cfg.DesiredTeams()))
	return nil
}

// agent is a loaded configuration with its state, and the storage factories built on demand.
type agent struct {
	cfg *config.Config
	db  stateStore
	rec *apply.Reconciler
	log *slog.Logger
	// metrics, in the daemon, measures the storage requests of the factories built after it is set.
	metrics *metrics.Metrics

	mu        sync.Mutex
	factories map[string]bucketfactory.Factory
}

// openAgentState loads the configuration and opens the state.
func openAgentState(ctx context.Context, g *globals, stderr io.Writer, so state.Options) (*agent, error) {
	log, err := g.logger(stderr)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(g.config)
	if err != nil {
		return nil, err
	}
	so.Logger = log // a schema migration reports what it found
	db, err := openState(ctx, cfg, so)
	if err != nil {
		return nil, err
	}
	return newAgent(cfg, db), nil
}

func newAgent(cfg *config.Config, db stateStore) *agent {
	return &agent{cfg: cfg, db: db, factories: map[string]bucketfactory.Factory{}}
}

// factory returns the storage factory of a profile, building it once.
func (a *agent) factory(ctx context.Context, profile string) (bucketfactory.Factory, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.factories[profile]; ok {
		return f, nil
	}
	p, ok := a.cfg.Profile(profile)
	if !ok {
		return nil, fmt.Errorf("storage profile %q is not in the configuration any more", profile)
	}
	f, err := newFactory(ctx, p, a.metrics)
	if err != nil {
		return nil, fmt.Errorf("storage profile %q: %w", profile, err)
	}
	a.factories[profile] = f
	return f, nil
}

// openAgent opens the state and builds the reconciler with every profile's factory.
func openAgent(ctx context.Context, g *globals, stderr io.Writer) (*agent, error) {
	log, err := g.logger(stderr)
	if err != nil {
		return nil, err
	}
	a, err := openAgentState(ctx, g, stderr, state.Options{})
	if err != nil {
		return nil, err
	}
	a.log = log
	if a.rec, err = a.reconciler(ctx, log, nil); err != nil {
		a.db.Close()
		return nil, err
	}
	return a, nil
}

// wandbClient builds the W&B SCIM client. With m, its requests are measured.
func (a *agent) wandbClient(m *metrics.Metrics) (*wandb.Client, error) {
	cfg := a.cfg
	o := wandb.Options{
		BaseURL:    cfg.Wandb.SCIMURL,
		Auth:       wandb.AuthMode(cfg.Wandb.Auth.Mode),
		Username:   cfg.Wandb.Auth.Username,
		APIKey:     cfg.Wandb.Auth.APIKey.Reveal(),
		Timeout:    cfg.Wandb.Timeout,
		UserAgent:  "byob-agent/" + version,
		Deployment: cfg.Wandb.Deployment,
	}
	base, err := transport.New(transport.Options{CAFile: cfg.Wandb.CAFile})
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("wandb.caFile: %w", err)}
	}
	var rt http.RoundTripper = transport.Explain(base, transport.Trusted(cfg.Wandb.CAFile, "wandb.caFile", os.Getenv))
	if m != nil {
		rt = m.Transport("wandb", rt)
	}
	o.HTTPClient = &http.Client{Transport: rt}
	client, err := wandb.NewClient(o)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("W&B client: %w", err)}
	}
	return client, nil
}

// reconciler builds the W&B client and every profile's factory. With m, W&B requests are measured.
func (a *agent) reconciler(ctx context.Context, log *slog.Logger, m *metrics.Metrics) (*apply.Reconciler, error) {
	cfg := a.cfg
	a.metrics = m
	client, err := a.wandbClient(m)
	if err != nil {
		return nil, err
	}
	profiles := make(map[string]apply.Profile)
	for _, name := range cfg.ProfileNames() {
		f, err := a.factory(ctx, name)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		p, _ := cfg.Profile(name)
		profiles[name] = apply.Profile{Factory: f, AdoptExisting: p.AdoptExisting, RequireRegistered: p.RequireRegistered}
	}
	return &apply.Reconciler{
		Members: apply.MembersPolicy{Sync: cfg.Members.Sync, Authoritative: cfg.Members.Mode == config.MembersAuthoritative,
			CreateUsers: cfg.Members.CreateUsers, MaxRemove: cfg.Members.MaxRemoveShare, RemoveOnOrphan: !cfg.Members.KeepOnOrphan},
		Store:         a.db,
		WandB:         client,
		Profiles:      profiles,
		Concurrency:   cfg.Sync.Concurrency,
		DriftInterval: cfg.Sync.DriftCheckInterval,
		Logger:        log,
	}, nil
}

// withAgent parses a command's flags, opens the agent, runs fn and closes the state.
func withAgent(ctx context.Context, name string, args []string, stderr io.Writer, fn func(*agent, *globals) error) error {
	g, _, err := parse(name, args, stderr)
	if err != nil {
		return err
	}
	a, err := openAgent(ctx, g, stderr)
	if err != nil {
		return err
	}
	defer a.db.Close()
	return fn(a, g)
}

// oneShotDesired reads every source once, for plan and sync run by hand; an IdP that cannot be read
// is warned about and its teams are left alone (read lists the sources whose teams may be planned).
func (a *agent) oneShotDesired(ctx context.Context, stderr io.Writer) (teams []team.Team, read map[string]bool, err error) {
	idps, _, err := newSources(a.cfg)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	return desired.New(a.cfg, idps, scimpush.New(a.db), a.log).ReadOnce(ctx, func(source string, err error) {
		fmt.Fprintf(stderr, "warning: %v; the teams of %s are left alone in this run\n", err, source)
	})
}

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return withAgent(ctx, "plan", args, stderr, func(a *agent, g *globals) error { return runPlan(ctx, a, g, stdout, stderr) })
}

func runPlan(ctx context.Context, a *agent, g *globals, stdout, stderr io.Writer) error {
	desired, read, err := a.oneShotDesired(ctx, stderr)
	if err != nil {
		return err
	}
	plans, err := a.rec.Plan(ctx, desired, apply.PlanOptions{InspectDrift: true, Sources: read})
	if err != nil {
		return err
	}
	if g.json {
		return writeJSON(stdout, plans)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tSTATUS\tPROFILE\tBUCKET\tPLAN")
	changes := 0
	for _, p := range plans {
		if p.Changes() {
			changes++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Team, p.Status, p.Profile, bucketPath(p.Storage.Bucket, p.Storage.Path), oneLine(p.Summary()))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d teams, %d with changes\n", len(plans), changes)
	return nil
}

func bucketPath(bucket, path string) string {
	if path == "" {
		return bucket
	}
	return bucket + "/" + path
}

func cmdSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return withAgent(ctx, "sync", args, stderr, func(a *agent, g *globals) error { return syncOnce(ctx, a, g, stdout, stderr) })
}

func syncOnce(ctx context.Context, a *agent, g *globals, stdout, stderr io.Writer) error {
	desired, read, err := a.oneShotDesired(ctx, stderr)
	if err != nil {
		return err
	}
	results, err := a.rec.Sync(ctx, desired, apply.PlanOptions{Sources: read})
	if err != nil {
		return err
	}
	bad := 0
	counts := map[apply.Outcome]int{}
	for _, r := range results {
		counts[r.Outcome]++
		if r.Outcome == apply.OutcomeFailed || r.Outcome == apply.OutcomeConflict {
			bad++
		}
	}
	if g.json {
		if err := writeJSON(stdout, jsonResults(results)); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TEAM\tOUTCOME\tDETAIL")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Team, r.Outcome, oneLine(r.Detail))
			for _, c := range r.Changes {
				fmt.Fprintf(tw, "\t\t  changed %s\n", oneLine(c))
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(tw, "\t\t  warning: %s\n", oneLine(w))
			}
		}
		tw.Flush()
		fmt.Fprintf(stdout, "\n%d teams: %s\n", len(results), summarize(counts))
	}
	if bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d teams failed or are in conflict (see above; `byob-agent state show TEAM` has details)", bad, len(results))}
	}
	if err := ctx.Err(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("interrupted: teams not started were left as they were; run sync again")}
	}
	return nil
}

type jsonResult struct {
	apply.Result
	Error string `json:"error,omitempty"`
}

func jsonResults(rs []apply.Result) []jsonResult {
	out := make([]jsonResult, len(rs))
	for i, r := range rs {
		out[i] = jsonResult{Result: r}
		if r.Err != nil {
			out[i].Error = r.Err.Error()
		}
	}
	return out
}

func summarize(counts map[apply.Outcome]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", counts[apply.Outcome(k)], k)
	}
	return s
}

func cmdState(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	if sub == "migrate" {
		return cmdStateMigrate(ctx, args, stdout, stderr)
	}
	g := &globals{}
	fs := newFlagSet("state "+sub, stderr, g)
	daemonURL := fs.String("daemon", "", "ask the daemon at this URL (default: the state file, or the daemon at server.listen while it holds the file)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	arg, ok := map[string]string{"ls": "", "export": "", "show": "TEAM", "backup": "FILE", "mark-registered": "TEAM"}[sub]
	switch {
	case !ok:
		return usageErr("state: unknown subcommand %q (want ls, show, export, backup, mark-registered or migrate)", sub)
	case arg != "" && len(pos) != 1:
		return usageErr("state %s: want exactly one %s", sub, arg)
	case arg == "" && len(pos) != 0:
		return usageErr("state %s: takes no arguments", sub)
	}
	cfg, err := loadConfig(g.config)
	if err != nil {
		return err
	}
	if sub == "mark-registered" {
		if *daemonURL != "" {
			return usageErr("state mark-registered writes the state file: stop the daemon rather than name it with --daemon")
		}
		db, err := openState(ctx, cfg, state.Options{})
		if err != nil {
			return err
		}
		defer db.Close()
		return markRegistered(ctx, db, pos[0], stdout)
	}
	if sub == "backup" && cfg.State.Postgres != nil {
		return usageErr("state backup: %v", pgstate.ErrNoBackup)
	}
	if sub == "backup" && sameFile(pos[0], cfg.State.Path) {
		return usageErr("state backup: %s is the state file itself; name another file", pos[0])
	}
	src, closeSrc, err := admin.OpenReader(cfg, *daemonURL)
	if urlErr := (*admin.URLError)(nil); errors.As(err, &urlErr) {
		return &exitError{code: 2, err: err}
	}
	if err != nil {
		return err
	}
	defer closeSrc()
	switch sub {
	case "ls":
		recs, err := src.List(ctx)
		if err != nil {
			return err
		}
		if g.json {
			return writeJSON(stdout, recs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TEAM\tSTATUS\tPHASE\tPROFILE\tBUCKET\tW&B ID\tLAST ERROR")
		for _, r := range recs {
			msg := r.LastError
			if r.Conflict != "" {
				msg = r.Conflict
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Status(), r.Phase, r.Profile,
				bucketPath(r.Storage.Bucket, r.Storage.Path), r.GroupID, oneLine(msg))
		}
		return tw.Flush()
	case "show":
		r, err := src.Get(ctx, pos[0])
		if errors.Is(err, state.ErrNotFound) {
			return &exitError{code: 1, err: err}
		}
		if err != nil {
			return err
		}
		return writeJSON(stdout, r)
	case "export":
		return src.Export(ctx, stdout)
	}
	// backup
	teams, err := state.WriteCopy(ctx, pos[0], func(w io.Writer) error { _, err := src.Backup(ctx, w); return err })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: a copy of the state (%d teams), checked whole; to restore it, put it in place of %s while no byob-agent runs\n",
		pos[0], teams, cfg.State.Path)
	return nil
}

// sameFile reports whether a and b name one file (existing or not).
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
