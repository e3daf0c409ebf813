package main

import (
	"cmp"
	"crypto/rand"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/statuspage"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// recentReconciles is how many reconciles the status page's chart shows; maxStepsBuffered bounds the
// steps kept for one team between its steps and the end of its reconcile.
const (
	recentReconciles = 60
	maxStepsBuffered = 32
	historyWriters   = 64
)

// pageRecorder keeps what the status page shows beyond the state: the steps of each team's reconcile
// in flight (written to the team's history when the reconcile ends) and the latest reconciles.
type pageRecorder struct {
	keyOnce sync.Once
	key     []byte // signs the page's session cookies; one per process, so logins survive reloads

	mu     sync.Mutex
	steps  map[string][]state.StepResult
	recent []statuspage.Reconcile
}

func (p *pageRecorder) sessionKey() []byte {
	p.keyOnce.Do(func() { p.key = make([]byte, 32); rand.Read(p.key) })
	return p.key
}

// step notes one step of a team's reconcile (apply.Reconciler.OnStep).
func (p *pageRecorder) step(team string, s plan.Step, err error) {
	r := state.StepResult{Step: string(s), Time: time.Now().UTC(), Error: errString(err)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.steps == nil {
		p.steps = map[string][]state.StepResult{}
	}
	if len(p.steps[team]) < maxStepsBuffered {
		p.steps[team] = append(p.steps[team], r)
	}
}

// events turns the results of a reconcile into history events, with the steps noted for their teams,
// and records the reconcile for the chart. Results that did nothing (unchanged, waiting out a backoff)
// make no event.
func (p *pageRecorder) events(key queuekey.Key, results []apply.Result, failed bool, took time.Duration) map[string]state.Event {
	now := time.Now().UTC()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recent = append(p.recent, statuspage.Reconcile{At: now, Key: string(key), Took: took, Error: failed})
	if over := len(p.recent) - recentReconciles; over > 0 {
		p.recent = p.recent[over:]
	}
	out := map[string]state.Event{}
	for _, res := range results {
		steps := p.steps[res.Team]
		delete(p.steps, res.Team)
		if len(steps) == 0 && (res.Outcome == apply.OutcomeUnchanged || res.Outcome == apply.OutcomeWaiting) {
			continue
		}
		e := state.Event{Time: now, Outcome: string(res.Outcome), Steps: steps, Changes: res.Changes, Warnings: res.Warnings, Detail: res.Detail}
		if res.Err != nil || res.Outcome == apply.OutcomeFailed || res.Outcome == apply.OutcomeConflict {
			// The detail of a failure is its message, as the record's LastError or Conflict has it.
			e.Error, e.Detail = cmp.Or(res.Detail, errString(res.Err)), ""
		}
		out[res.Team] = e
	}
	return out
}

func (p *pageRecorder) reconciles() []statuspage.Reconcile {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]statuspage.Reconcile(nil), p.recent...)
}

// errNoRecord stops an Update that would create a record: history is kept only for known teams.
var errNoRecord = errors.New("no record")

// recordHistory ends a reconcile for the status page: each team that did something gets an event in
// its history. The updates run historyWriters at a time so that bbolt's Batch puts many in one
// transaction: one after the other, each would wait out the batch delay alone.
func (d *daemon) recordHistory(key queuekey.Key, results []apply.Result, err error, took time.Duration) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, historyWriters)
	ctx := d.termContext() // leader work: fenced by the term with the PostgreSQL state
	for name, e := range d.page.events(key, results, err != nil, took) {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			_, uerr := d.work.Update(ctx, name, func(r *state.Record) error {
				if r.CreatedAt.IsZero() {
					return errNoRecord
				}
				r.AddEvent(e)
				return nil
			})
			if uerr != nil && !errors.Is(uerr, errNoRecord) {
				d.log.Warn("status page: recording the team's history", "team", name, "error", uerr)
			}
		})
	}
	wg.Wait()
}

// mountStatusPage serves the status page at /status/ (and sends / there) when a token opens it: a
// viewer token or the admin token.
func (d *daemon) mountStatusPage(mux *http.ServeMux, cfg *config.Config) error {
	tokens := reveal(cfg.ViewerTokens)
	if t := cfg.Server.AdminToken.Reveal(); t != "" {
		tokens = append(tokens, t)
	}
	if len(tokens) == 0 {
		return nil
	}
	h, err := statuspage.New(statuspage.Options{
		Store:  d.db,
		Tokens: tokens,
		Key:    d.page.sessionKey(),
		Secure: cfg.Server.TLSCertFile != "",
		Status: d.pageStatus,
		Logger: d.log,
	})
	if err != nil {
		return err
	}
	mux.Handle(statuspage.Path, h)
	mux.Handle("GET /{$}", http.RedirectHandler(statuspage.Path, http.StatusSeeOther))
	return nil
}

func (d *daemon) pageStatus() statuspage.Status {
	s := statuspage.Status{Backends: d.metrics.Health(), Reconciles: d.page.reconciles()}
	last := d.lastReload()
	s.LastReload = statuspage.Reload{At: last.At, Trigger: last.Trigger, Error: errString(last.Err)}
	// Behind a token, the page may say what /readyz does not: the reasons.
	switch st := d.status(); {
	case st.LastReconcileError != "":
		s.Ready = "the last reconcile failed: " + st.LastReconcileError
	case !st.Ready:
		s.Ready = st.Reason
	}
	return s
}
