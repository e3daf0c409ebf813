package main

import (
	"context"
	"time"

	"github.com/byob-agent/byob-agent/source/entra"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// catchUp asks an IdP what changed while its webhooks may have been lost (Okta's System Log, Graph's
// delta query) and enqueues what it finds; it keeps its position in the state's cursors.
type catchUp struct {
	source string        // okta, entra
	every  time.Duration // 0: only when triggered
	poll   func(ctx context.Context, enqueue func(queuekey.Key)) (changes int, err error)
	// now, when set, is where trigger asks for a run out of turn (Graph's lifecycle events); it holds
	// one request, so triggers during a run coalesce into one more run.
	now chan struct{}
}

// trigger asks for a run now; it never blocks.
func (c catchUp) trigger() {
	select {
	case c.now <- struct{}{}:
	default:
	}
}

// entraCatchUp runs Graph's delta query: only the changed groups are queued; everything when the
// changes cannot be told (no delta link yet, or Graph forgot it) or the query failed, since a
// trigger means notifications may have been lost.
func (d *daemon) entraCatchUp(src *entra.Source, every time.Duration) catchUp {
	delta := entra.NewDelta(src, d.work)
	return catchUp{source: "entra", every: every, now: make(chan struct{}, 1),
		poll: func(ctx context.Context, enqueue func(queuekey.Key)) (int, error) {
			ch, err := delta.Changed(ctx)
			switch {
			case err != nil:
				enqueue(queuekey.All)
				return 0, err
			case ch.Full:
				d.log.Info("entra catch-up cannot tell what changed: reading every group", "reason", ch.Reason)
				enqueue(queuekey.All)
			case len(ch.Groups) > 0:
				d.log.Info("entra catch-up found changed groups", "groups", len(ch.Groups))
			}
			for _, id := range ch.Groups {
				enqueue(queuekey.Group("graph", id))
			}
			return len(ch.Groups), nil
		}}
}

// catchUpTimeout bounds one catch-up: a few pages of changes unless much changed.
const catchUpTimeout = 5 * time.Minute

// startCatchUps stops the catch-ups of the previous configuration and starts cs, each running at
// once when it has an interval (a first run stores where the next one starts) and then on its
// interval or trigger, until ctx ends.
func (d *daemon) startCatchUps(ctx context.Context, cs []catchUp) {
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	if d.stopCatchUps != nil {
		d.stopCatchUps()
	}
	d.stopCatchUps = cancel
	clear(d.catchUpErrs)
	d.mu.Unlock()
	for _, c := range cs {
		go d.runCatchUp(ctx, c)
	}
}

func (d *daemon) runCatchUp(ctx context.Context, c catchUp) {
	var tick <-chan time.Time
	if c.every > 0 {
		t := time.NewTicker(c.every)
		defer t.Stop()
		tick = t.C
	} else {
		select { // triggered runs only
		case <-ctx.Done():
			return
		case <-c.now:
		}
	}
	enqueue := func(k queuekey.Key) { d.enqueue(c.source+"-catchup", k) }
	var last string // the last error's text, so that a lasting problem is logged once
	for {
		pctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
		changes, err := c.poll(pctx, enqueue)
		cancel()
		if ctx.Err() != nil {
			return
		}
		d.metrics.CatchUpChanges.WithLabelValues(c.source).Add(float64(changes))
		msg, outcome := "", "ok"
		if err != nil {
			msg, outcome = err.Error(), "error"
		}
		d.metrics.CatchUps.WithLabelValues(c.source, outcome).Inc()
		d.mu.Lock()
		if err != nil {
			d.catchUpErrs[c.source] = msg
		} else {
			delete(d.catchUpErrs, c.source)
		}
		d.mu.Unlock()
		switch {
		case msg == last:
		case err != nil:
			d.log.Warn("catch-up failed; webhooks and the schedule still work", "source", c.source, "error", err)
		default:
			d.log.Info("catch-up works again", "source", c.source)
		}
		last = msg
		d.log.Debug("caught up", "source", c.source, "changes", changes)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-c.now:
		}
	}
}
