// Package metrics provides byob-agent's Prometheus metrics, on a registry of its own so that tests and
// several agents in one process never share counters, with the handler that serves them and an
// http.RoundTripper that counts and times outbound API calls.
package metrics

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	teams            *teamsCollector // byob_teams, by status, counted at each scrape: see CountTeams
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

	health health // what the transport saw of each target, for Health
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
			Name: "byob_api_requests_total", Help: "Requests to external APIs, by target (wandb, s3, kms, gcs, azure, okta, entra, google) and status class (2xx, 4xx, 5xx, error).",
		}, []string{"target", "code"}),
		APILatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "byob_api_request_duration_seconds", Help: "Latency of requests to external APIs, by target.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"target"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "byob_queue_depth", Help: "Keys waiting in the work queue.",
		}),
		teams: &teamsCollector{desc: prometheus.NewDesc("byob_teams",
			"Teams in the state, by status ("+strings.Join(TeamStatuses, ", ")+").", []string{"status"}, nil)},
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
	m.reg.MustRegister(m.Reconciles, m.Steps, m.APICalls, m.APILatency, m.QueueDepth, m.teams,
		m.Webhooks, m.WebhookToSynced, m.LastWandbContact, m.Subscriptions, m.SubscriptionErrors, m.ConnectionWaits,
		m.CatchUps, m.CatchUpChanges, m.Ready, m.ConfigReloads, m.ConfigLastReloadOK, m.ConfigLastReloadTime,
		m.Leader, m.LeaderEpoch, m.LeaderChanges,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series alerts and dashboards select exist from the start at 0: a counter that first appears
	// already at 1 hides that first increase from increase() and rate(), and absent is not 0.
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

// CountTeams sets how byob_teams is counted: count is called at every scrape (counting the whole
// state after every reconcile cost a read of every record per webhook; issue 15).
func (m *Metrics) CountTeams(count func() (map[string]int, error)) {
	m.teams.mu.Lock()
	defer m.teams.mu.Unlock()
	m.teams.count = count
}

// teamsCollector reports byob_teams from a count taken when scraped.
type teamsCollector struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	count func() (map[string]int, error)
}

func (c *teamsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *teamsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	count := c.count
	c.mu.Unlock()
	var counts map[string]int
	if count != nil {
		var err error
		if counts, err = count(); err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("count teams: %w", err))
			return
		}
	}
	// Every status is reported, 0 when no team has it: alerts select series that must exist.
	for _, status := range TeamStatuses {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[status]), status)
	}
	for status, n := range counts {
		if !slices.Contains(TeamStatuses, status) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), status)
		}
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
	t.m.health.observe(target, err != nil || resp.StatusCode >= 500, time.Now())
	if err == nil {
		code = strconv.Itoa(resp.StatusCode/100) + "xx"
		if target == "wandb" && resp.StatusCode < 500 {
			t.m.LastWandbContact.SetToCurrentTime()
		}
	}
	t.m.APICalls.WithLabelValues(target, code).Inc()
	return resp, err
}
