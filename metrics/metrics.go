// Package metrics provides byob-agent's Prometheus metrics, on a registry of its own so that tests and
// several agents in one process never share counters, with the handler that serves them and an
// http.RoundTripper that counts and times outbound API calls.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the agent's collectors.
type Metrics struct {
	reg *prometheus.Registry

	Reconciles       *prometheus.CounterVec   // by key kind and result
	Steps            *prometheus.CounterVec   // by step and outcome
	APICalls         *prometheus.CounterVec   // by target and status class
	APILatency       *prometheus.HistogramVec // by target
	QueueDepth       prometheus.Gauge
	TeamsByPhase     *prometheus.GaugeVec // by status
	Webhooks         *prometheus.CounterVec
	WebhookToSynced  *prometheus.HistogramVec // by source
	LastWandbContact prometheus.Gauge         // unix seconds of the last successful W&B request
	// Subscriptions is 1 while an IdP's change-notification subscription is kept, 0 while keeping it
	// fails; SubscriptionErrors counts the failures by source and reason (forbidden, error).
	Subscriptions      *prometheus.GaugeVec
	SubscriptionErrors *prometheus.CounterVec
	// CatchUps counts the runs of an IdP's catch-up on missed webhooks (Okta's System Log, Graph's
	// delta query) by source and outcome (ok, error); CatchUpChanges counts what they found (log events,
	// changed groups).
	CatchUps       *prometheus.CounterVec
	CatchUpChanges *prometheus.CounterVec
	// Ready is 1 while the daemon is ready (/readyz answers 200: the last reconcile succeeded). Of
	// replicas sharing a PostgreSQL state only the leader reconciles and reports it, and TeamsByPhase:
	// a follower keeps both at 0, so alerts may take their max and sum over the replicas.
	Ready prometheus.Gauge
	// ConfigReloads counts reloads of the configuration by trigger (sighup, file) and result (ok,
	// error); the two gauges tell the outcome and time of the last load, the one at start included.
	ConfigReloads        *prometheus.CounterVec
	ConfigLastReloadOK   prometheus.Gauge
	ConfigLastReloadTime prometheus.Gauge
	// ConnectionWaits counts the connections that found a listener at server.maxConnections.
	ConnectionWaits *prometheus.CounterVec
	// Leader is 1 while this replica leads (runs reconciles), LeaderEpoch the epoch of its current or
	// last term (0 with the bbolt state), LeaderChanges the terms it has begun: summed over replicas,
	// the leadership changes (failovers).
	Leader        prometheus.Gauge
	LeaderEpoch   prometheus.Gauge
	LeaderChanges prometheus.Counter
}

// TeamStatuses are the values of byob_teams's status label (state.Record.Status).
var TeamStatuses = []string{"desired", "bucket_ready", "team_created", "in_sync", "failed", "conflict", "orphaned"}

// New registers every collector, with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_reconciles_total", Help: "Reconciles run by the daemon, by key kind (all, team, group) and result (ok, error).",
		}, []string{"kind", "result"}),
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_steps_total", Help: "Reconcile steps carried out, by step and outcome (ok, error).",
		}, []string{"step", "outcome"}),
		APICalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_api_requests_total", Help: "Requests to external APIs, by target (wandb, s3, kms, gcs, azure) and status class (2xx, 4xx, 5xx, error).",
		}, []string{"target", "code"}),
		APILatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "byob_api_request_duration_seconds", Help: "Latency of requests to external APIs, by target.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"target"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_queue_depth", Help: "Keys waiting in the work queue.",
		}),
		TeamsByPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "byob_teams", Help: "Teams in the state, by status (" + strings.Join(TeamStatuses, ", ") + ").",
		}, []string{"status"}),
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_webhook_requests_total", Help: "Webhook and SCIM requests, by source and outcome.",
		}, []string{"source", "outcome"}),
		WebhookToSynced: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "byob_webhook_to_reconciled_seconds", Help: "Time from an accepted webhook or SCIM write to the end of the reconcile it caused.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}, []string{"source"}),
		LastWandbContact: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_wandb_last_success_timestamp_seconds", Help: "When a W&B request last succeeded (unix seconds).",
		}),
		Subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "byob_idp_subscription_up", Help: "1 while an IdP's change-notification subscription is kept, 0 while keeping it fails (notifications may not arrive), by source.",
		}, []string{"source"}),
		SubscriptionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_idp_subscription_errors_total", Help: "Failures to create, renew or reauthorize an IdP's change-notification subscription, by source and reason (forbidden: a permission is missing; error).",
		}, []string{"source", "reason"}),
		CatchUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_idp_catchups_total", Help: "Runs of an IdP's catch-up on missed webhooks (Okta's System Log, Graph's delta query), by source and outcome (ok, error).",
		}, []string{"source", "outcome"}),
		CatchUpChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_idp_catchup_changes_total", Help: "What the catch-ups found, by source: Okta System Log events, Entra groups that changed.",
		}, []string{"source"}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_ready", Help: "1 while the agent is ready (/readyz answers 200: the last reconcile succeeded), else 0.",
		}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_config_reloads_total", Help: "Configuration reloads, by trigger (sighup, file: the config or teams file changed) and result (ok; error: the running configuration was kept).",
		}, []string{"trigger", "result"}),
		ConfigLastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_config_last_reload_success", Help: "1 if the last load of the configuration (at start or a reload) succeeded, 0 if it failed and the previous one is still running.",
		}),
		ConfigLastReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_config_last_reload_timestamp_seconds", Help: "When the configuration was last loaded or a reload was tried (unix seconds).",
		}),
		ConnectionWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "byob_http_connection_waits_total", Help: "Times a listener (main, metrics) was at server.maxConnections and a new connection had to wait.",
		}, []string{"listener"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_leader", Help: "1 while this replica leads (runs the reconciles), 0 while another one does.",
		}),
		LeaderEpoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_leader_epoch", Help: "Epoch of this replica's current or last leader term (0 with the bbolt state).",
		}),
		LeaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "byob_leader_changes_total", Help: "Leader terms this replica has begun; summed over replicas, the leadership changes.",
		}),
	}
	m.reg.MustRegister(m.Reconciles, m.Steps, m.APICalls, m.APILatency, m.QueueDepth, m.TeamsByPhase,
		m.Webhooks, m.WebhookToSynced, m.LastWandbContact, m.Subscriptions, m.SubscriptionErrors, m.ConnectionWaits,
		m.CatchUps, m.CatchUpChanges, m.Ready, m.ConfigReloads, m.ConfigLastReloadOK, m.ConfigLastReloadTime,
		m.Leader, m.LeaderEpoch, m.LeaderChanges,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series alerts and dashboards select exist from the start at 0: a counter that first appears
	// already at 1 hides that first increase from increase() and rate(), and absent is not 0.
	m.SetTeams(nil)
	for _, kind := range []string{"all", "team", "group"} {
		for _, result := range []string{"ok", "error"} {
			m.Reconciles.WithLabelValues(kind, result)
		}
	}
	for _, trigger := range []string{"sighup", "file"} {
		for _, result := range []string{"ok", "error"} {
			m.ConfigReloads.WithLabelValues(trigger, result)
		}
	}
	m.APICalls.WithLabelValues("wandb", "error")
	return m
}

// SetTeams sets byob_teams to the count of teams of each status; statuses with none are 0.
func (m *Metrics) SetTeams(byStatus map[string]int) {
	m.TeamsByPhase.Reset()
	for _, s := range TeamStatuses {
		m.TeamsByPhase.WithLabelValues(s).Set(0)
	}
	for s, n := range byStatus {
		m.TeamsByPhase.WithLabelValues(s).Set(float64(n))
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Transport counts and times the requests base makes to target. Nothing about a request but its
// status and duration is recorded: URLs may carry secrets.
func (m *Metrics) Transport(target string, base http.RoundTripper) http.RoundTripper {
	return m.TransportBy(func(*http.Request) string { return target }, base)
}

// TransportBy is Transport for a client that talks to several targets (one AWS client for S3 and KMS):
// targetOf names each request's.
func (m *Metrics) TransportBy(targetOf func(*http.Request) string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper{m: m, targetOf: targetOf, base: base}
}

type roundTripper struct {
	m        *Metrics
	targetOf func(*http.Request) string
	base     http.RoundTripper
}

func (t roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	target := t.targetOf(r)
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	t.m.APILatency.WithLabelValues(target).Observe(time.Since(start).Seconds())
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode/100) + "xx"
		if target == "wandb" && resp.StatusCode < 500 {
			t.m.LastWandbContact.SetToCurrentTime()
		}
	}
	t.m.APICalls.WithLabelValues(target, code).Inc()
	return resp, err
}
