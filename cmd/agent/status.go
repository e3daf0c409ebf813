package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/byob-agent/byob-agent/internal/leader"
	"github.com/byob-agent/byob-agent/source/desired"
)

// status is the daemon's readiness with its reasons: /readyz, unauthenticated, says only Reason and
// Degraded's kinds; /admin/status (behind the admin token) and the logs have the details, which may
// name URLs and internals.
type status struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason"` // what /readyz says
	// LastReconcileOK is when a reconcile last reached W&B; LastReconcileError is why the last one
	// failed (empty when it did not).
	LastReconcileOK    *time.Time `json:"lastReconcileOK,omitempty"`
	LastReconcileError string     `json:"lastReconcileError,omitempty"`
	Degraded           []degraded `json:"degraded,omitempty"`
	// SCIMGroupsYielded are pushed groups whose team name another source gives.
	SCIMGroupsYielded []desired.Yielded `json:"scimGroupsYielded,omitempty"`
	// Leader is this replica's leadership: with the bbolt state it always leads.
	Leader leader.Status `json:"leader"`
}

// degraded is a problem that leaves the daemon ready: Kind is public, Detail is not.
type degraded struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Generic reasons, the only ones /readyz gives.
const (
	reasonStarting = "not ready: starting, the first reconcile has not finished"
	reasonFailing  = "not ready: reconcile failing"
	reasonNoState  = "not ready: state database unreachable"
	reasonReady    = "ok"
	kindIdPSubs    = "idp subscription" // change notifications may not arrive; the schedule still reads every group
	kindCatchUp    = "idp catch-up"     // missed webhooks are caught up only by the schedule
)

func (d *daemon) status() status {
	s := status{Ready: true, Reason: reasonReady}
	if last := d.lastOK.Load(); last != 0 {
		t := time.Unix(0, last).UTC()
		s.LastReconcileOK = &t
	}
	s.Leader = d.leader.Status()
	msg := d.lastErr.Load()
	if msg != nil {
		s.LastReconcileError = *msg
	}
	switch {
	case d.repl != nil && d.repl.ping != nil && d.pingState() != nil:
		s.Ready, s.Reason = false, reasonNoState
	case d.repl != nil && !s.Leader.Leading:
		// A follower serves SCIM, webhooks and the admin API; the leader's reconciles are its own
		// readiness, on its /readyz.
	case msg != nil:
		s.Ready, s.Reason = false, reasonFailing
	case s.LastReconcileOK == nil:
		s.Ready, s.Reason = false, reasonStarting
	}
	// A subscription that cannot be kept is reported but does not make the agent unready: Graph's
	// validation handshake must reach this agent's /webhooks/graph to create the subscription again,
	// which an unready pod behind a Service would never get.
	if w := d.world.Load(); w != nil {
		if w.subs != nil {
			if err := w.subs.Err(); err != nil {
				s.Degraded = append(s.Degraded, degraded{Kind: kindIdPSubs, Detail: err.Error()})
			}
		}
		s.SCIMGroupsYielded = w.sources.Yielded()
	}
	d.mu.Lock()
	for _, src := range slices.Sorted(maps.Keys(d.catchUpErrs)) {
		s.Degraded = append(s.Degraded, degraded{Kind: kindCatchUp, Detail: src + ": " + d.catchUpErrs[src]})
	}
	d.mu.Unlock()
	return s
}

// stateTimeout bounds the check that the shared state answers, made for each readiness answer.
const stateTimeout = 2 * time.Second

// pingState checks that the shared state (PostgreSQL) answers; a failure is logged, with the detail
// the unauthenticated /readyz does not give.
func (d *daemon) pingState() error {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	err := d.repl.ping(ctx)
	if err != nil && d.log != nil {
		d.log.Warn("not ready: the state database does not answer", "error", err)
	}
	return err
}

// readyz answers the probes with the generic reason only: details are in the logs and on
// /admin/status.
func (d *daemon) readyz(w http.ResponseWriter, r *http.Request) {
	s := d.status()
	w.Header().Set("Cache-Control", "no-store")
	if !s.Ready {
		http.Error(w, s.Reason, http.StatusServiceUnavailable)
	} else {
		fmt.Fprintln(w, s.Reason)
	}
	for _, p := range s.Degraded {
		fmt.Fprintln(w, "degraded: "+p.Kind)
	}
}
