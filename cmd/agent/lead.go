package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/leader"
	"github.com/byob-agent/byob-agent/state/pgstate"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/sync/controller"
	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/sync/triggers"
	"github.com/byob-agent/byob-agent/team"
)

// triggerPoll is how often a leader reads the outbox without a notification.
const triggerPoll = 5 * time.Second

// replication is what a daemon sharing its state with other replicas (PostgreSQL) needs: the
// campaign for the leader lease (its terms' contexts carry the term that fences their writes), and the
// outbox, where triggers any replica accepts wait for the leader. nil with the bbolt state: the replica
// is alone, leads from start to stop, and queues triggers itself.
type replication struct {
	campaign leader.Campaign
	// ping checks that the shared state answers: a replica cut off from it can take no SCIM write or
	// webhook, so it is not ready (nil in tests: always answers).
	ping   func(ctx context.Context) error
	outbox interface {
		AddTriggers(ctx context.Context, source string, keys []string) error
		triggers.Outbox // fenced by the term in the context (pgstate.Store.FencedByContext)
	}
}

// newReplication prepares a replica on the PostgreSQL state: its campaign for the lease (named by host
// name, process id and a random suffix, unique among the replicas), and the store for its leader work,
// whose writes are fenced by the term of their context.
func newReplication(pg *pgstate.Store, p *config.PostgresState, log *slog.Logger) (*replication, stateStore, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	holder := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), rand.Text()[:6])
	e, err := pg.Elector(pgstate.LeaseConfig{Holder: holder, Duration: p.LeaseDuration, RenewDeadline: p.RenewDeadline,
		RetryPeriod: p.RetryPeriod, Log: log})
	if err != nil {
		return nil, nil, err
	}
	fenced := pg.FencedByContext()
	return &replication{campaign: leader.Lease(e), outbox: fenced, ping: pg.Ping}, fenced, nil
}

// leading reports whether this replica runs the reconciles now: always with the bbolt state.
func (d *daemon) leading() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.repl == nil || d.term != nil
}

// termContext is the context of the current leader term (it carries the term that fences writes), or
// a background one when not leading, whose fenced writes fail.
func (d *daemon) termContext() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.term == nil {
		return context.Background()
	}
	return d.term
}

// errStepDown cuts a term short after a write of it was fenced: another replica leads.
var errStepDown = errors.New("a write was fenced: stepping down")

// campaign runs the leadership until ctx ends: lead for each term this replica gets.
func (d *daemon) campaign(ctx context.Context) {
	c := leader.Campaign(leader.Single)
	if d.repl != nil {
		c = d.repl.campaign
	}
	d.leader.OnChange = func(s leader.Status) {
		d.metrics.Leader.Set(map[bool]float64{false: 0, true: 1}[s.Leading])
		d.metrics.LeaderEpoch.Set(float64(s.Epoch))
	}
	if err := d.leader.Run(ctx, c, func(term context.Context, epoch int64) { d.lead(ctx, term, epoch) }); err != nil && ctx.Err() == nil {
		d.log.Error("leader campaign ended", "error", err)
	}
}

// lead runs the reconcile machinery for one term, until it ends: the schedule, the IdP catch-ups,
// the outbox's relay and the queue's workers. A term lost while the daemon runs (lease lost, a write
// fenced) cuts the reconciles in flight at once, as another replica leads now; at shutdown they get
// server.shutdownTimeout to finish (each step is checkpointed either way).
func (d *daemon) lead(shutdown, term context.Context, epoch int64) {
	d.metrics.LeaderChanges.Inc()
	d.log.Info("leading: running reconciles", "epoch", epoch)
	term, stepDown := context.WithCancelCause(term)
	defer stepDown(nil)
	w := d.world.Load()
	var relay *triggers.Relay
	if d.repl != nil {
		relay = &triggers.Relay{Outbox: d.repl.outbox, Enqueue: d.enqueue, Poll: triggerPoll, Log: d.log}
	}
	d.mu.Lock()
	d.term, d.stepDown, d.relay = term, stepDown, relay
	d.cron.Start()
	d.mu.Unlock()
	d.startCatchUps(term, w.catchUps)
	d.queue.Add(queuekey.All) // a new leader reconciles everything first

	ctl := &controller.Controller{
		Queue:      d.queue,
		Reconciler: func() *apply.Reconciler { return d.world.Load().rec },
		Desired: func(ctx context.Context, key queuekey.Key) ([]team.Team, error) {
			return d.world.Load().sources.Teams(ctx, key)
		},
		Resolve: func(ctx context.Context, key queuekey.Key) ([]string, bool) {
			return d.world.Load().sources.Resolve(ctx, key)
		},
		Workers:     w.cfg.Workers,
		Logger:      d.log,
		OnReconcile: d.reconciled,
	}
	work, cutWork := context.WithCancel(context.WithoutCancel(term))
	defer cutWork()
	workersDone := make(chan struct{})
	go func() { ctl.Run(term, work); close(workersDone) }()
	relayDone := make(chan struct{})
	go func() {
		if relay != nil {
			relay.Run(term)
		}
		close(relayDone)
	}()

	<-term.Done()
	d.mu.Lock()
	d.cron.Stop()
	d.stopCatchUps()
	d.term, d.stepDown, d.relay = nil, nil, nil
	d.mu.Unlock()
	<-relayDone
	if shutdown.Err() == nil {
		d.log.Warn("no longer leading: cutting reconciles in flight short", "epoch", epoch, "reason", context.Cause(term))
		cutWork()
	} else {
		timeout := d.world.Load().cfg.Server.ShutdownTimeout
		d.log.Info("shutting down: finishing reconciles in flight", "timeout", timeout.String())
		select {
		case <-workersDone:
		case <-time.After(timeout):
			d.log.Warn("reconciles still running at the shutdown timeout: cutting them short (each step is checkpointed)")
			cutWork()
		}
	}
	<-workersDone
	if d.repl != nil { // reconciles are over: the next leader reports these now (alerts sum and max over replicas)
		d.metrics.Ready.Set(0) // byob_teams follows leading()
	}
}

// leaderDone tells the term's relay that a reconcile of key succeeded, and steps down when a write
// was fenced.
func (d *daemon) leaderDone(key queuekey.Key, err error, began time.Time) {
	d.mu.Lock()
	term, relay, stepDown := d.term, d.relay, d.stepDown
	d.mu.Unlock()
	switch {
	case errors.Is(err, pgstate.ErrFenced) && stepDown != nil:
		stepDown(errStepDown)
	case err == nil && relay != nil:
		relay.Reconciled(term, key, began) // under the term: a stale leader deletes nothing
	}
}

// trigger takes the keys of a webhook or SCIM change: into the outbox when replicas share the work
// (the leader, whichever it is, reads them from there), else straight into the queue.
func (d *daemon) trigger(ctx context.Context, source string, keys []queuekey.Key) error {
	if d.repl == nil {
		for _, k := range keys {
			d.enqueue(source, k)
		}
		return nil
	}
	texts := make([]string, len(keys))
	for i, k := range keys {
		texts[i] = string(k)
	}
	return d.repl.outbox.AddTriggers(ctx, source, texts)
}
