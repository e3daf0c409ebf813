package main

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/metrics"
)

// TestDaemonReloadsWatchedFiles edits the teams file the way editors do (a new file renamed over it)
// and never sends SIGHUP: new teams are provisioned, an invalid file is reported and the running
// configuration kept, and a configuration that names another teams file moves the watch there.
func TestDaemonReloadsWatchedFiles(t *testing.T) {
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	base, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	teams := filepath.Join(e.dir, "teams.yaml")
	replaceFile(t, teams, "teams: []\n")
	replaceFile(t, e.config, string(base)+"teamsFile: teams.yaml\n")
	d := e.startDaemon(port)

	metric := func(series string) string {
		_, body := d.do(t, http.MethodGet, "/metrics", "", "")
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				return v
			}
		}
		return ""
	}
	if got := metric("byob_config_last_reload_success"); got != "1" {
		t.Errorf("byob_config_last_reload_success at start = %q, want 1", got)
	}

	// A team added to the teams file is provisioned.
	replaceFile(t, teams, "teams:\n  - name: "+e.team("watched")+"\n")
	waitFor(t, "the team added to the teams file", func() bool { return e.hasTeam(e.team("watched")) })
	if got := metric(`byob_config_reloads_total{result="ok",trigger="file"}`); got != "1" {
		t.Errorf("file reloads ok = %q, want 1", got)
	}

	// An invalid teams file: logged, counted, the running configuration kept.
	replaceFile(t, teams, "teams: [\n")
	waitFor(t, "the failed reload to be counted", func() bool {
		return metric(`byob_config_reloads_total{result="error",trigger="file"}`) == "1"
	})
	if !strings.Contains(d.logs(), "configuration reload failed; keeping the running configuration") {
		t.Error("the failed reload was not logged")
	}
	if got := metric("byob_config_last_reload_success"); got != "0" {
		t.Errorf("byob_config_last_reload_success after an invalid file = %q, want 0", got)
	}
	if code, _ := d.do(t, http.MethodGet, "/readyz", "", ""); code != http.StatusOK {
		t.Errorf("readyz after a failed reload: %d", code)
	}

	// The configuration now names a teams file in another directory: edits there are seen, edits to
	// the old one no longer matter.
	other := filepath.Join(e.dir, "teams.d", "teams.yaml")
	if err := os.Mkdir(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, other, "teams:\n  - name: "+e.team("watched")+"\n")
	replaceFile(t, e.config, string(base)+"teamsFile: teams.d/teams.yaml\n")
	waitFor(t, "the reload of the new configuration", func() bool {
		return metric(`byob_config_reloads_total{result="ok",trigger="file"}`) == "2"
	})
	if got := metric("byob_config_last_reload_success"); got != "1" {
		t.Errorf("byob_config_last_reload_success after the fix = %q, want 1", got)
	}
	replaceFile(t, other, "teams:\n  - name: "+e.team("watched")+"\n  - name: "+e.team("moved")+"\n")
	waitFor(t, "the team added to the new teams file", func() bool { return e.hasTeam(e.team("moved")) })
	if got := metric(`byob_config_reloads_total{result="ok",trigger="sighup"}`); got != "0" {
		t.Errorf("SIGHUP reloads = %q, want 0", got)
	}
}

// replaceFile writes a new file and renames it over path, as editors and config management tools do.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestLastReload(t *testing.T) {
	d := &daemon{metrics: metrics.New()}
	if got := d.lastReload(); !got.At.IsZero() {
		t.Errorf("before any load: %+v", got)
	}
	failed := errors.New("teams.yaml:1: bad")
	before := time.Now()
	d.loaded("file", failed)
	if got := d.lastReload(); got.Trigger != "file" || !errors.Is(got.Err, failed) || got.At.Before(before) {
		t.Errorf("after a failed reload: %+v", got)
	}
	d.loaded("sighup", nil)
	if got := d.lastReload(); got.Trigger != "sighup" || got.Err != nil {
		t.Errorf("after a reload: %+v", got)
	}
}
