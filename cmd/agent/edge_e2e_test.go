package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestDaemonMetricsListenerAndPushedNames: with server.metricsListen the probes and /metrics leave the
// main listener for their own; a pushed group asking for a team the configuration gives is refused
// (409, naming the other source) and the configured team goes on; pushes past scim.teamsPerHour are
// refused (403).
func TestDaemonMetricsListenerAndPushedNames(t *testing.T) {
	e := newE2E(t)
	port, metricsPort := freePort(t), freePort(t)
	e.writeDaemonConfig(port)
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(raw), "  shutdownTimeout: 3s\n", fmt.Sprintf("  shutdownTimeout: 3s\n  metricsListen: 127.0.0.1:%d\n", metricsPort), 1)
	cfg = strings.Replace(cfg, "  groups: {prefix: \"wandb-\", profile: onprem}\n", "  groups: {prefix: \"wandb-\", profile: onprem}\n  teamsPerHour: 1\n", 1)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ops := e.startDaemon(metricsPort) // ready once /readyz answers there
	main := *ops
	main.base = fmt.Sprintf("http://127.0.0.1:%d", port)

	for _, c := range []struct {
		d    *daemonProc
		path string
		code int
	}{
		{ops, "/readyz", 200}, {ops, "/healthz", 200}, {ops, "/metrics", 200}, {ops, "/scim/v2/Groups", 404},
		{&main, "/readyz", 404}, {&main, "/healthz", 404}, {&main, "/metrics", 404}, {&main, "/scim/v2/Groups", 401},
	} {
		if code, _ := c.d.do(t, http.MethodGet, c.path, "", ""); code != c.code {
			t.Errorf("GET %s%s: %d, want %d", c.d.base, c.path, code, c.code)
		}
	}

	bearer := "Bearer " + scimToken
	push := func(name string) (int, string) {
		return main.do(t, http.MethodPost, "/scim/v2/Groups", bearer, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"wandb-`+name+`"}`)
	}
	yamlTeam := e.team("yaml")
	if code, body := push(yamlTeam); code != http.StatusConflict || !strings.Contains(body, `"scimType":"uniqueness"`) || !strings.Contains(body, "the configuration's teams list gives it") {
		t.Errorf("a push taking the YAML team's name: %d %s", code, body)
	}
	if code, body := push(e.team("first")); code != http.StatusCreated {
		t.Fatalf("a new team within the quota: %d %s", code, body)
	}
	if code, body := push(e.team("second")); code != http.StatusForbidden || !strings.Contains(body, "scim.teamsPerHour") {
		t.Errorf("a new team past the quota: %d %s", code, body)
	}
	// The YAML team and the admitted push both end in sync; nothing is in conflict.
	waitFor(t, "the YAML team and the admitted push in sync", func() bool {
		_, m := ops.do(t, http.MethodGet, "/metrics", "", "")
		return strings.Contains(m, `byob_teams{status="in_sync"} 2`)
	})
	if _, m := ops.do(t, http.MethodGet, "/metrics", "", ""); !strings.Contains(m, `byob_teams{status="conflict"} 0`) {
		t.Errorf("a team is in conflict:\n%s", m)
	}
	if !e.hasTeam(e.team("first")) || e.hasTeam(e.team("second")) {
		t.Errorf("W&B teams %+v: want the admitted push's, not the one past the quota", e.emu.Groups())
	}
}
