package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/metrics"
)

// promqlResult is what bin/promql-check says of one expression.
type promqlResult struct {
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
	Error   string   `json:"error"`
}

// parsePromQL parses exprs with Prometheus's own parser (bin/promql-check, built by `make tools` from
// tools/promql-check) and returns, for each, the metric names it selects or its parse error.
func parsePromQL(t *testing.T, exprs []string) []promqlResult {
	t.Helper()
	bin, err := testenv.Binary("promql-check")
	if err != nil {
		t.Fatalf("promql-check parses the chart's PromQL: %v", err)
	}
	in, err := json.Marshal(exprs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) { // 1: some expression failed
		t.Fatalf("promql-check: %v: %s", err, stderr.String())
	}
	var results []promqlResult
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(exprs) {
		t.Fatalf("promql-check answered %d results (%v) for %d expressions: %s", len(results), err, len(exprs), out)
	}
	return results
}

// agentMetricNames are the series names the agent's /metrics serves, from its own registry. A family
// with labels is served once a label set is used: the daemon creates the webhook series at start for
// each configured source; the API latency and webhook latency histograms appear with the first request
// and the first reconcile a webhook caused. The test does the same, once each.
func agentMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	m.Webhooks.WithLabelValues("okta", "unauthorized")
	m.APILatency.WithLabelValues("wandb").Observe(0.1)
	m.WebhookToSynced.WithLabelValues("okta").Observe(1)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	names := map[string]bool{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names[line[:strings.IndexAny(line, "{ ")]] = true
	}
	if !names["byob_teams"] || !names["go_goroutines"] {
		t.Fatalf("the agent's /metrics lacks byob_teams or go_goroutines: %v", slices.Sorted(maps.Keys(names)))
	}
	return names
}

// prometheusSynthetic are series Prometheus itself adds to every target, never in /metrics.
var prometheusSynthetic = map[string]bool{"up": true}

// checkPromQL asserts that every expression parses and uses only metrics the agent serves.
func checkPromQL(t *testing.T, what string, exprs []string) {
	t.Helper()
	served := agentMetricNames(t)
	for _, r := range parsePromQL(t, exprs) {
		if r.Error != "" {
			t.Errorf("%s: %q does not parse: %s", what, r.Expr, r.Error)
			continue
		}
		if len(r.Metrics) == 0 {
			t.Errorf("%s: %q selects no metric by name", what, r.Expr)
		}
		for _, name := range r.Metrics {
			if !served[name] && !prometheusSynthetic[name] {
				t.Errorf("%s: %q uses %s, which the agent's /metrics does not serve", what, r.Expr, name)
			}
		}
	}
}

func TestHelmPromQLCheckerRejects(t *testing.T) {
	// The checker is the real parser, not a pass-through: it refuses what Prometheus refuses.
	for _, expr := range []string{"sum(byob_teams", `byob_teams{status="failed"} >`, "rate(byob_teams)", "byob_teams[5x]"} {
		if r := parsePromQL(t, []string{expr})[0]; r.Error == "" {
			t.Errorf("%q parsed", expr)
		}
	}
	r := parsePromQL(t, []string{`sum(rate(a_total{x="1"}[5m])) / on() b unless {__name__="c"}`})[0]
	if want := []string{"a_total", "b", "c"}; r.Error != "" || !slices.Equal(r.Metrics, want) {
		t.Errorf("metrics %v (error %q), want %v", r.Metrics, r.Error, want)
	}
}

type prometheusRule struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	} `yaml:"spec"`
}

func TestHelmPrometheusRule(t *testing.T) {
	tests := []struct {
		name     string
		values   string // or the file ci/all-values.yaml when empty
		ns       string
		selector string
		fors     map[string]string
		labels   map[string]string // on every alert but ByobAgentDown's severity
	}{
		{
			name:     "defaults",
			values:   "prometheusRule: {enabled: true}\n",
			ns:       releaseSpace,
			selector: `job="rel-byob-agent",namespace="byob"`,
			fors: map[string]string{"ByobTeamsFailed": "30m", "ByobTeamsConflict": "15m", "ByobWandbUnreachable": "15m",
				"ByobNotReady": "15m", "ByobNoLeader": "5m", "ByobAgentDown": "5m", "ByobConfigReloadFailed": "10m", "ByobWebhookAuthFailures": ""},
			labels: map[string]string{"severity": "warning"},
		},
		{
			name: "own thresholds labels and selector",
			values: `prometheusRule:
  enabled: true
  namespace: monitoring
  labels: {release: kube-prometheus-stack}
  selector: 'service="byob"'
  severity: page
  extraLabels: {team: platform}
  teamsFailedFor: 2h
  conflictsFor: 1h
  wandbUnreachableFor: 30m
  notReadyFor: 20m
  downFor: 10m
  reloadFailedFor: 1m
  webhookAuthFailures: 3
  webhookAuthWindow: 5m
`,
			ns:       "monitoring",
			selector: `service="byob"`,
			fors: map[string]string{"ByobTeamsFailed": "2h", "ByobTeamsConflict": "1h", "ByobWandbUnreachable": "30m",
				"ByobNotReady": "20m", "ByobNoLeader": "5m", "ByobAgentDown": "10m", "ByobConfigReloadFailed": "1m", "ByobWebhookAuthFailures": ""},
			labels: map[string]string{"severity": "page", "team": "platform"},
		},
		{
			name:     "every option",
			ns:       "monitoring",
			selector: `job="byob",namespace="byob"`,
			fors: map[string]string{"ByobTeamsFailed": "1h", "ByobTeamsConflict": "30m", "ByobWandbUnreachable": "10m",
				"ByobNotReady": "10m", "ByobNoLeader": "10m", "ByobAgentDown": "5m", "ByobConfigReloadFailed": "5m", "ByobWebhookAuthFailures": ""},
			labels: map[string]string{"severity": "warning", "team": "platform"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := allValues
			if tt.values != "" {
				values = writeValues(t, tt.values)
			}
			docs := render(t, chartDir, "-f", values)
			rule := the[prometheusRule](t, docs, "PrometheusRule")
			if rule.Metadata.Namespace != tt.ns {
				t.Errorf("namespace %q, want %q", rule.Metadata.Namespace, tt.ns)
			}
			if len(rule.Spec.Groups) != 1 {
				t.Fatalf("%d rule groups, want 1", len(rule.Spec.Groups))
			}
			var exprs []string
			fors := map[string]string{}
			for _, r := range rule.Spec.Groups[0].Rules {
				exprs = append(exprs, r.Expr)
				fors[r.Alert] = r.For
				if !strings.Contains(r.Expr, tt.selector) {
					t.Errorf("%s: %q does not select this release's series (%s)", r.Alert, r.Expr, tt.selector)
				}
				for k, v := range tt.labels {
					if k == "severity" && r.Alert == "ByobAgentDown" {
						v = "critical"
					}
					if r.Labels[k] != v {
						t.Errorf("%s: label %s=%q, want %q", r.Alert, k, r.Labels[k], v)
					}
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: annotations %v, want a summary and a description", r.Alert, r.Annotations)
				}
			}
			if !maps.Equal(fors, tt.fors) {
				t.Errorf("alerts and their `for` %v, want %v", fors, tt.fors)
			}
			checkPromQL(t, "PrometheusRule", exprs)
		})
	}
}

// grafanaVar matches the dashboard variables Grafana replaces before a query reaches Prometheus.
var grafanaVar = regexp.MustCompile(`\$(__rate_interval|__interval|__range|namespace|job)\b|\$\{(namespace|job)\}`)

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string                   `json:"title"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestHelmGrafanaDashboard(t *testing.T) {
	values := "grafanaDashboard:\n  enabled: true\n  namespace: grafana\n  annotations: {grafana_folder: Platform}\n"
	docs := render(t, chartDir, "-f", writeValues(t, values))
	var cm configMap
	for _, d := range docs {
		if d.Kind == "ConfigMap" && d.Metadata.Name == "rel-byob-agent-dashboard" {
			if err := yaml.Unmarshal(d.raw, &cm); err != nil {
				t.Fatal(err)
			}
		}
	}
	if cm.Metadata.Labels["grafana_dashboard"] != "1" || cm.Metadata.Namespace != "grafana" || cm.Metadata.Annotations["grafana_folder"] != "Platform" {
		t.Fatalf("dashboard ConfigMap metadata %+v: want label grafana_dashboard=1, namespace grafana, the folder annotation", cm.Metadata)
	}
	var dash dashboard
	if err := json.Unmarshal([]byte(cm.Data["byob-agent.json"]), &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard uid %q title %q with %d panels", dash.UID, dash.Title, len(dash.Panels))
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q gridPos %+v does not fit Grafana's 24 columns", p.Title, p.GridPos)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `namespace=~"$namespace"`) || !strings.Contains(q.Expr, `job=~"$job"`) {
				t.Errorf("panel %q: %q ignores the namespace and job variables", p.Title, q.Expr)
			}
			exprs = append(exprs, grafanaVar.ReplaceAllString(q.Expr, "5m"))
		}
	}
	// Query variables: label_values(<selector>, <label>) lists a label of the series <selector> picks.
	labelValues := regexp.MustCompile(`^label_values\((.+), *\w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		m := labelValues.FindStringSubmatch(q["query"].(string))
		if m == nil {
			t.Errorf("variable %s: query %v is not label_values(selector, label)", v.Name, v.Query)
			continue
		}
		exprs = append(exprs, grafanaVar.ReplaceAllString(m[1], "x"))
	}
	checkPromQL(t, "Grafana dashboard", exprs)
}
