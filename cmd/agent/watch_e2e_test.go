package main

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/kubevolume"
	"github.com/byob-agent/byob-agent/metrics"
)

// metric returns the value of one series on the daemon's /metrics, "" when it is not there.
func (d *daemonProc) metric(t *testing.T, series string) string {
	t.Helper()
	_, body := d.do(t, http.MethodGet, "/metrics", "", "")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// atLeast says whether a counter's value is at least n.
func atLeast(value string, n float64) bool {
	v, err := strconv.ParseFloat(value, 64)
	return err == nil && v >= n
}

// TestDaemonReloadsWatchedFiles changes the teams file in each way files get changed, and never sends
// SIGHUP: a new team is provisioned; an invalid file is logged, counted, and the running configuration
// kept.
func TestDaemonReloadsWatchedFiles(t *testing.T) {
	tests := []struct {
		name      string
		teamsFile string // as the config names it, relative to the config's directory
		write     func(t *testing.T, path, content string)
	}{
		{
			name:      "edited in place",
			teamsFile: "teams.yaml",
			write: func(t *testing.T, path, content string) {
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
		{name: "new file renamed over", teamsFile: "teams.yaml", write: replaceFile},
		{
			name:      "ConfigMap volume swapped",
			teamsFile: "teams/teams.yaml",
			write: func(t *testing.T, path, content string) {
				kubevolume.Write(t, filepath.Dir(path), map[string]string{filepath.Base(path): content})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2E(t)
			port := freePort(t)
			e.writeDaemonConfig(port)
			base, err := os.ReadFile(e.config)
			if err != nil {
				t.Fatal(err)
			}
			teams := filepath.Join(e.dir, tt.teamsFile)
			if err := os.MkdirAll(filepath.Dir(teams), 0o755); err != nil {
				t.Fatal(err)
			}
			tt.write(t, teams, "teams: []\n")
			replaceFile(t, e.config, string(base)+"teamsFile: "+tt.teamsFile+"\n")
			d := e.startDaemon(port)
			if got := d.metric(t, "byob_config_last_reload_success"); got != "1" {
				t.Errorf("byob_config_last_reload_success at start = %q, want 1", got)
			}

			tt.write(t, teams, "teams:\n  - name: "+e.team("watched")+"\n")
			waitFor(t, "the team added to the teams file", func() bool { return e.hasTeam(e.team("watched")) })
			if got := d.metric(t, `byob_config_reloads_total{result="ok",trigger="file"}`); !atLeast(got, 1) {
				t.Errorf("file reloads ok = %q, want at least 1", got)
			}

			tt.write(t, teams, "teams: [\n")
			waitFor(t, "the failed reload to be counted", func() bool {
				return atLeast(d.metric(t, `byob_config_reloads_total{result="error",trigger="file"}`), 1)
			})
			if !strings.Contains(d.logs(), "configuration reload failed; keeping the running configuration") {
				t.Error("the failed reload was not logged")
			}
			if got := d.metric(t, "byob_config_last_reload_success"); got != "0" {
				t.Errorf("byob_config_last_reload_success after an invalid file = %q, want 0", got)
			}
			if code, _ := d.do(t, http.MethodGet, "/readyz", "", ""); code != http.StatusOK {
				t.Errorf("readyz after a failed reload: %d", code)
			}
			if got := d.metric(t, `byob_config_reloads_total{result="ok",trigger="sighup"}`); got != "0" {
				t.Errorf("SIGHUP reloads = %q, want 0", got)
			}
		})
	}
}

// TestDaemonReloadMovesTheWatch: once the configuration names a teams file in another directory, edits
// there are seen.
func TestDaemonReloadMovesTheWatch(t *testing.T) {
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	base, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, filepath.Join(e.dir, "teams.yaml"), "teams: []\n")
	replaceFile(t, e.config, string(base)+"teamsFile: teams.yaml\n")
	d := e.startDaemon(port)

	other := filepath.Join(e.dir, "teams.d", "teams.yaml")
	if err := os.Mkdir(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, other, "teams: []\n")
	replaceFile(t, e.config, string(base)+"teamsFile: teams.d/teams.yaml\n")
	waitFor(t, "the reload of the new configuration", func() bool {
		return d.metric(t, `byob_config_reloads_total{result="ok",trigger="file"}`) == "1"
	})
	replaceFile(t, other, "teams:\n  - name: "+e.team("moved")+"\n")
	waitFor(t, "the team added to the new teams file", func() bool { return e.hasTeam(e.team("moved")) })
	if got := d.metric(t, `byob_config_reloads_total{result="ok",trigger="file"}`); got != "2" {
		t.Errorf("file reloads ok = %q, want 2", got)
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
