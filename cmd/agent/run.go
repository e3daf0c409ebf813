package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/filewatch"
	"github.com/byob-agent/byob-agent/internal/leader"
	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/scim/server"
	"github.com/byob-agent/byob-agent/source/desired"
	"github.com/byob-agent/byob-agent/source/entra"
	"github.com/byob-agent/byob-agent/source/scimpush"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/admin"
	"github.com/byob-agent/byob-agent/state/pgstate"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/sync/triggers"
	"github.com/byob-agent/byob-agent/sync/workqueue"
	"github.com/byob-agent/byob-agent/webhook"
)

// daemon is `byob-agent run`: one HTTP listener, a work queue fed by the schedule, webhooks and SCIM
// writes, and workers that reconcile. Every replica serves HTTP; only the leader reconciles (lead.go).
type daemon struct {
	log     *slog.Logger
	path    string     // configuration file, read again on SIGHUP and when it or a file it names changes
	db      stateStore // SCIM, reads, the outbox: every replica
	work    stateStore // the leader's writes: db, or with PostgreSQL db fenced by the term in the context
	metrics *metrics.Metrics
	queue   *workqueue.Queue
	quota   *scimpush.Quota // new teams of SCIM pushes, kept across reloads
	repl    *replication    // nil: the state is this replica's alone (bbolt)
	leader  leader.Tracker

	world   atomic.Pointer[world] // swapped whole on reload
	handler atomic.Pointer[http.Handler]

	mu   sync.Mutex
	cron *cron.Cron // runs only while leading
	// term is the context of this replica's leader term, stepDown ends it and relay brings it the
	// outbox's triggers; all nil while not leading.
	term     context.Context
	stepDown context.CancelCauseFunc
	relay    *triggers.Relay
	enqueued map[queuekey.Key]enqueue // first enqueue of a key still waiting, for the latency metric
	// stopCatchUps stops the running configuration's catch-up pollers; catchUpErrs holds the last
	// error of each that failed, by source, for readiness.
	stopCatchUps context.CancelFunc
	catchUpErrs  map[string]string

	lastOK  atomic.Int64 // unix nanos of the last reconcile that reached W&B
	lastErr atomic.Pointer[string]

	watcher  *filewatch.Watcher // nil when files cannot be watched
	lastLoad atomic.Pointer[reloadStatus]

	page pageRecorder // the status page's history and chart (statuspage.go)
}

// world is everything built from one configuration.
type world struct {
	cfg      *config.Config
	rec      *apply.Reconciler
	sources  *desired.Sources
	subs     *entra.Subscriptions // the Entra subscription's keeper; nil without one
	catchUps []catchUp
}

type enqueue struct {
	source string
	at     time.Time
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{}
	fs := newFlagSet("run", stderr, g)
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: errors.New("")}
	}
	formatSet := false
	fs.Visit(func(f *flag.Flag) { formatSet = formatSet || f.Name == "log-format" })
	if !formatSet {
		g.logFormat = "json" // a daemon's logs go to a collector
	}
	log, err := g.logger(stderr)
	if err != nil {
		return err
	}
	cfg, files, err := loadWatched(g.config)
	if err != nil {
		return err
	}
	db, err := openState(ctx, cfg, state.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	d := &daemon{log: log, path: g.config, db: db, work: db, metrics: metrics.New(), quota: scimpush.NewQuota(nil), enqueued: map[queuekey.Key]enqueue{}, catchUpErrs: map[string]string{}}
	if pg, ok := db.(*pgstate.Store); ok {
		if d.repl, d.work, err = newReplication(pg, cfg.State.Postgres, log); err != nil {
			return err
		}
	}
	d.metrics.CountTeams(func() (map[string]int, error) {
		if !d.leading() {
			return nil, nil // a follower reports 0: alerts sum and max over replicas count the leader only
		}
		return db.CountByStatus(context.Background())
	})
	d.queue = workqueue.NewQueue(workqueue.QueueOptions{OnDepth: func(n int) { d.metrics.QueueDepth.Set(float64(n)) }})
	w, err := d.build(ctx, cfg)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	d.world.Store(w)
	d.loaded("start", nil)
	d.watch(files)
	defer d.stopWatching()
	return d.serve(ctx)
}

// build makes the reconciler and HTTP handlers of one configuration.
func (d *daemon) build(ctx context.Context, cfg *config.Config) (*world, error) {
	rec, err := newAgent(cfg, d.work).reconciler(ctx, d.log, d.metrics)
	if err != nil {
		return nil, err
	}
	rec.OnStep = func(team string, s plan.Step, err error) {
		d.page.step(team, s, err)
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		d.metrics.Steps.WithLabelValues(string(s), outcome).Inc()
	}
	idps, ent, err := newSources(cfg, d.metrics)
	if err != nil {
		return nil, err
	}
	var subs *entra.Subscriptions
	if ent != nil {
		subs = ent.subs
	}
	for i := range idps {
		if keep, name := idps[i].Keep, idps[i].Name; keep != nil {
			idps[i].Keep = func(ctx context.Context) error { return d.kept(name, keep(ctx)) }
		}
	}
	sources := desired.New(cfg, idps, scimpush.New(d.db), d.log)
	catchUps, err := newCatchUps(cfg, d.work, d.metrics)
	if err != nil {
		return nil, err
	}
	var graphCatchUp func() // runs the Entra catch-up now; nil without an Entra source
	if ent != nil {
		c := d.entraCatchUp(ent.src, cfg.Sources.Entra.CatchUpInterval)
		catchUps, graphCatchUp = append(catchUps, c), c.trigger
	}
	h, err := d.routes(cfg, subs, sources, graphCatchUp)
	if err != nil {
		return nil, err
	}
	d.handler.Store(&h)
	return &world{cfg: cfg, rec: rec, sources: sources, subs: subs, catchUps: catchUps}, nil
}

// kept records the outcome of keeping an IdP's change-notification subscription in the metrics.
func (d *daemon) kept(source string, err error) error {
	if err == nil {
		d.metrics.Subscriptions.WithLabelValues(source).Set(1)
		return nil
	}
	reason := "error"
	if errors.Is(err, entra.ErrSubscriptionPermission) {
		reason = "forbidden"
	}
	d.metrics.Subscriptions.WithLabelValues(source).Set(0)
	d.metrics.SubscriptionErrors.WithLabelValues(source, reason).Inc()
	return err
}

func (d *daemon) routes(cfg *config.Config, subs *entra.Subscriptions, sources *desired.Sources, graphCatchUp func()) (http.Handler, error) {
	mux := http.NewServeMux()
	if cfg.Server.MetricsListen == "" {
		d.opsRoutes(mux)
	}
	admin.Mount(mux, cfg.Server.AdminToken, d.db, func() any { return d.status() }, d.log)
	if err := d.mountStatusPage(mux, cfg); err != nil {
		return nil, err
	}
	observe := func(source string) webhook.Observer {
		for _, o := range []string{webhook.OutcomeAccepted, webhook.OutcomeUnauthorized} {
			d.metrics.Webhooks.WithLabelValues(source, o) // at 0 from the start, for rate() in alerts
		}
		return func(_, outcome string) { d.metrics.Webhooks.WithLabelValues(source, outcome).Inc() }
	}
	if s := cfg.SCIM; s != nil {
		d.db.SetSCIMLimits(state.SCIMLimits(s.Limits))
		h, err := server.New(server.Options{
			BaseURL:  strings.TrimSuffix(cfg.Server.BaseURL, "/") + "/scim/v2",
			Tokens:   reveal(s.Tokens),
			Store:    d.db,
			OnChange: d.scimChanged,
			Logger:   d.log,
			AdmitGroup: func(displayName string) *server.Refusal {
				return d.admitPush(sources, displayName)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("SCIM endpoint: %w", err)
		}
		mux.Handle("/scim/v2/", observeStatus(h, observe("scim")))
	}
	if o := cfg.Webhooks.Okta; o != nil {
		mux.Handle("/webhooks/okta", webhook.NewOkta(webhook.OktaOptions{Secrets: reveal(o.Secrets), Queue: d.enqueuer("okta"), Observe: observe("okta"), Known: sources.Known, Logger: d.log}))
	}
	if gr := cfg.Webhooks.Graph; gr != nil {
		o := webhook.GraphOptions{ClientStates: reveal(gr.ClientStates), Queue: d.enqueuer("graph"), Observe: observe("graph"), Known: sources.Known, Logger: d.log, CatchUp: graphCatchUp}
		if subs != nil {
			o.Lifecycle = func(ctx context.Context, event, id string) error {
				return d.kept("entra", subs.Lifecycle(ctx, event, id))
			}
		}
		mux.Handle("/webhooks/graph", webhook.NewGraph(o))
	}
	if gen := cfg.Webhooks.Generic; gen != nil {
		secrets := make([][]byte, len(gen.Secrets))
		for i, s := range gen.Secrets {
			secrets[i] = []byte(s.Reveal())
		}
		mux.Handle("/webhooks/generic", webhook.NewGeneric(webhook.GenericOptions{Secrets: secrets, Tolerance: gen.Tolerance, Queue: d.enqueuer("generic"), Observe: observe("generic"), Known: sources.Known, Logger: d.log}))
	}
	return mux, nil
}

// opsRoutes are the probes and the metrics, on the main listener or on server.metricsListen.
func (d *daemon) opsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("GET /metrics", d.metrics.Handler())
}

// admitPush refuses a pushed group a team name another source gives (409), or a new team past
// scim.teamsPerHour (403).
func (d *daemon) admitPush(sources *desired.Sources, displayName string) *server.Refusal {
	err := sources.AdmitPush(displayName, d.quota)
	if err == nil {
		return nil
	}
	d.log.Warn("SCIM group refused", "group", displayName, "error", err)
	var claimed *desired.ClaimedError
	if errors.As(err, &claimed) {
		return &server.Refusal{Status: http.StatusConflict, Detail: err.Error()}
	}
	return &server.Refusal{Status: http.StatusForbidden, Detail: err.Error()}
}

// observeStatus counts the requests of a handler that does not report its outcomes itself (the SCIM
// endpoint) by their answer: unauthorized (401), ok, rejected (other 4xx) or error (5xx).
func observeStatus(h http.Handler, observe webhook.Observer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		outcome := "ok"
		switch {
		case sw.status == http.StatusUnauthorized:
			outcome = "unauthorized"
		case sw.status >= 500:
			outcome = "error"
		case sw.status >= 400:
			outcome = "rejected"
		}
		observe(r.Method, outcome)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func reveal(secrets []config.Secret) []string {
	out := make([]string, len(secrets))
	for i, s := range secrets {
		out[i] = s.Reveal()
	}
	return out
}

// enqueuer takes one webhook source's keys (trigger).
type enqueuerFunc func(ctx context.Context, keys []queuekey.Key) error

func (f enqueuerFunc) Enqueue(ctx context.Context, keys []queuekey.Key) error { return f(ctx, keys) }

func (d *daemon) enqueuer(source string) webhook.Enqueuer {
	return enqueuerFunc(func(ctx context.Context, keys []queuekey.Key) error { return d.trigger(ctx, source, keys) })
}

// scimChangeTimeout bounds recording a committed SCIM change's trigger.
const scimChangeTimeout = 5 * time.Second

// scimChanged queues the group of a committed SCIM write. Should the outbox be unreachable, the write
// stays committed and the leader's next full reconcile (schedule, or a new term) applies it.
func (d *daemon) scimChanged(groupID string) {
	ctx, cancel := context.WithTimeout(context.Background(), scimChangeTimeout)
	defer cancel()
	if err := d.trigger(ctx, scimpush.Name, []queuekey.Key{queuekey.Group(scimpush.Name, groupID)}); err != nil {
		d.log.Warn("SCIM change not queued; the next full reconcile applies it", "error", err)
	}
}

// enqueue adds a key and remembers when the first still-waiting request for it came.
func (d *daemon) enqueue(source string, key queuekey.Key) {
	d.mu.Lock()
	if _, ok := d.enqueued[key]; !ok {
		d.enqueued[key] = enqueue{source: source, at: time.Now()}
	}
	d.mu.Unlock()
	d.queue.Add(key)
}

func (d *daemon) serve(ctx context.Context) error {
	cfg := d.world.Load().cfg
	onFull := func(listener string) func() {
		return func() { d.metrics.ConnectionWaits.WithLabelValues(listener).Inc() }
	}
	ln, err := listen(cfg.Server.Listen, cfg.Server.MaxConnections, onFull("main"))
	if err != nil {
		return err
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*d.handler.Load()).ServeHTTP(w, r) }), d.log)
	servers := []*http.Server{srv}
	served := make(chan error, 2)
	go func() {
		if cfg.Server.TLSCertFile != "" {
			served <- srv.ServeTLS(ln, cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	d.log.Info("listening", "addr", ln.Addr().String(), "tls", cfg.Server.TLSCertFile != "", "max_connections", cfg.Server.MaxConnections)
	if addr := cfg.Server.MetricsListen; addr != "" {
		mln, err := listen(addr, cfg.Server.MaxConnections, onFull("metrics"))
		if err != nil {
			srv.Close()
			return err
		}
		mux := http.NewServeMux()
		d.opsRoutes(mux)
		msrv := newHTTPServer(mux, d.log)
		servers = append(servers, msrv)
		go func() { served <- msrv.Serve(mln) }()
		d.log.Info("listening for metrics and probes", "addr", mln.Addr().String())
	}

	if err := d.schedule(cfg); err != nil {
		return err
	}
	campaign, stopCampaign := context.WithCancel(ctx)
	defer stopCampaign()
	campaignDone := make(chan struct{})
	go func() { d.campaign(campaign); close(campaignDone) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			d.reload(ctx, "sighup")
			continue
		case <-d.fileChanges():
			d.reload(ctx, "file")
			continue
		case err := <-served:
			stopCampaign()
			<-campaignDone
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
		}
		break
	}

	shutCtx, cancel := context.WithTimeout(context.Background(), d.world.Load().cfg.Server.ShutdownTimeout)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(shutCtx); err != nil {
			d.log.Warn("HTTP shutdown", "error", err)
		}
	}
	<-campaignDone // ctx ended: the term ends, its reconciles finish within the shutdown timeout
	d.log.Info("stopped")
	return nil
}

// schedule (re)places the cron that enqueues full reconciles, running it while leading.
func (d *daemon) schedule(cfg *config.Config) error {
	c := cron.New()
	if _, err := c.AddFunc(cfg.Schedule, func() { d.queue.Add(queuekey.All) }); err != nil {
		return fmt.Errorf("schedule %q: %w", cfg.Schedule, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cron != nil {
		d.cron.Stop()
	}
	d.cron = c
	if d.term != nil {
		c.Start()
	}
	return nil
}

// reload applies a valid new configuration; an invalid one is logged and the old one kept.
func (d *daemon) reload(ctx context.Context, trigger string) {
	old := d.world.Load().cfg
	cfg, files, err := loadWatched(d.path)
	if err == nil && cfg.State.Path != old.State.Path {
		err = fmt.Errorf("state.path changed from %s to %s: that needs a restart", old.State.Path, cfg.State.Path)
	}
	if err == nil && !reflect.DeepEqual(cfg.State.Postgres, old.State.Postgres) {
		err = fmt.Errorf("state.postgres changed: that needs a restart")
	}
	if err == nil && old.Server.NeedsRestart(cfg.Server) {
		err = fmt.Errorf("server settings changed: they need a restart")
	}
	var w *world
	if err == nil {
		w, err = d.build(ctx, cfg)
	}
	if err == nil {
		err = d.schedule(cfg)
	}
	if err != nil {
		d.log.Error("configuration reload failed; keeping the running configuration", "file", d.path, "trigger", trigger, "error", err)
		d.loaded(trigger, err)
		return
	}
	d.world.Store(w)
	d.mu.Lock()
	term := d.term
	d.mu.Unlock()
	if term != nil {
		d.startCatchUps(term, w.catchUps)
	}
	d.loaded(trigger, nil)
	if d.watcher != nil {
		d.watcher.Set(files) // the teams file may be another one now
	}
	d.log.Info("configuration reloaded", "file", d.path, "trigger", trigger, "teams", len(cfg.DesiredTeams()))
	d.queue.Add(queuekey.All)
}

// reconciled records the end of a reconcile: readiness, metrics, webhook latency.
func (d *daemon) reconciled(key queuekey.Key, results []apply.Result, err error, took time.Duration) {
	kind := key.Kind()
	result := "ok"
	if err != nil {
		result = "error"
		msg := err.Error()
		d.lastErr.Store(&msg)
		d.metrics.Ready.Set(0)
	} else {
		d.lastErr.Store(nil)
		d.lastOK.Store(time.Now().UnixNano())
		d.metrics.Ready.Set(1)
	}
	if key == queuekey.All {
		// A full reconcile holds every record, W&B team and desired team at once; what it leaves is
		// garbage until the next one, minutes away. Handing it back now keeps the resident memory of
		// the daemon, idle most of the time, near what it uses between reconciles (issue 15).
		debug.FreeOSMemory()
	}
	d.metrics.Reconciles.WithLabelValues(kind, result).Inc()
	d.mu.Lock()
	if e, ok := d.enqueued[key]; ok {
		delete(d.enqueued, key)
		d.metrics.WebhookToSynced.WithLabelValues(e.source).Observe(time.Since(e.at).Seconds())
	}
	d.mu.Unlock()
	d.recordHistory(key, results, err, took)
	d.log.Info("reconciled", "key", key, "teams", len(results), "took", took.String(), "error", errString(err))
	d.leaderDone(key, err, time.Now().Add(-took))
	if err == nil {
		d.purgeSCIM(key, time.Now().Add(-took))
	}
}

// purgeSCIM forgets the deleted SCIM groups a successful reconcile has applied the removal policy
// to: for a full reconcile every one deleted before it began, for a SCIM group key that group.
func (d *daemon) purgeSCIM(key queuekey.Key, began time.Time) {
	var ids []string
	if src, id, ok := key.Group(); ok && src == scimpush.Name {
		ids = []string{id}
	} else if key != queuekey.All {
		return
	}
	n, err := d.work.PurgeDeletedSCIMGroups(d.termContext(), began, ids...)
	switch {
	case err != nil:
		d.log.Warn("could not forget deleted SCIM groups; will try after the next reconcile", "error", err)
	case n > 0:
		d.log.Info("forgot deleted SCIM groups whose teams were orphaned", "groups", n)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
