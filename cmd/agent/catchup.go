package main

import (
	"context"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// startCatchUps stops the catch-up pollers of the previous configuration and starts cs, each polling
// at once (a first poll stores where the next one starts) and then on its interval, until ctx ends.
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
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	enqueue := func(k queuekey.Key) { d.enqueue(c.source+"-catchup", k) }
	var last string // the last error's text, so that a lasting problem is logged once
	for {
		events, err := c.poll(ctx, enqueue)
		if ctx.Err() != nil {
			return
		}
		d.metrics.CatchUpEvents.WithLabelValues(c.source).Add(float64(events))
		msg, outcome := "", "ok"
		if err != nil {
			msg, outcome = err.Error(), "error"
		}
		d.metrics.CatchUpPolls.WithLabelValues(c.source, outcome).Inc()
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
			d.log.Warn("catch-up poll failed; webhooks and the schedule still work", "source", c.source, "error", err)
		default:
			d.log.Info("catch-up poll works again", "source", c.source)
		}
		last = msg
		d.log.Debug("catch-up polled", "source", c.source, "events", events)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
