package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/admin"
)

const adminToken = "admin-token-for-tests-0123456789"

// TestStateBackupWhileTheDaemonRuns: `state backup` asks the running daemon (the state file is
// locked), the copy has every record, a wrong admin token is refused clearly, and once the daemon
// is stopped the same command copies the file directly.
func TestStateBackupWhileTheDaemonRuns(t *testing.T) {
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	// The commands load the daemon's configuration: its secrets inline, as e.run sets only its own variables.
	cfg := strings.NewReplacer("${TEST_SCIM_TOKEN}", scimToken, "${TEST_OKTA_SECRET}", oktaSecret).Replace(string(raw))
	withToken := strings.Replace(cfg, "  shutdownTimeout: 3s\n", "  shutdownTimeout: 3s\n  adminTokenFile: admin.token\n", 1)
	tokenFile := filepath.Join(e.dir, "admin.token")
	writeFile := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(e.config, withToken)
	writeFile(tokenFile, adminToken+"\n")
	d := e.startDaemon(port)
	const wrongToken = "not-the-admin-token-0123456789"
	var outputs []string
	run := func(args ...string) runResult {
		r := e.run(args...)
		outputs = append(outputs, r.stdout+r.stderr)
		return r
	}

	r := run("state", "backup", "online.db")
	if r.code != 0 || !strings.Contains(r.stdout, "wrote online.db") {
		t.Fatalf("state backup while the daemon runs: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	_, export := d.do(t, http.MethodGet, admin.ExportPath, "Bearer "+adminToken, "")
	var want struct{ Teams []state.Record }
	if err := json.Unmarshal([]byte(export), &want); err != nil || len(want.Teams) != 1 || want.Teams[0].Name != e.team("yaml") {
		t.Fatalf("the daemon's export: %v %s", err, export)
	}
	assertCopy := func(name string) {
		t.Helper()
		c, err := state.Open(filepath.Join(e.dir, name), state.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("%s does not open: %v", name, err)
		}
		defer c.Close()
		got, err := c.List(t.Context())
		if err != nil || len(got) != len(want.Teams) {
			t.Fatalf("%s: %d records, %v; want %d", name, len(got), err, len(want.Teams))
		}
		for i := range got {
			g, w := got[i], want.Teams[i]
			if g.Name != w.Name || g.Phase != w.Phase || g.GroupID != w.GroupID || g.StorageDigest != w.StorageDigest || !g.UpdatedAt.Equal(w.UpdatedAt) {
				t.Errorf("%s: record %+v, the daemon has %+v", name, g, w)
			}
		}
	}
	assertCopy("online.db")
	if r := run("state", "ls"); r.code != 0 || !strings.Contains(r.stdout, e.team("yaml")) {
		t.Errorf("state ls while the daemon runs: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := run("state", "export", "--daemon", d.base); r.code != 0 || !strings.Contains(r.stdout, `"schemaVersion": `+strconv.Itoa(state.SchemaVersion)) {
		t.Errorf("state export --daemon: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := run("state", "mark-registered", e.team("yaml")); r.code == 0 || !strings.Contains(r.stderr, "state.db: state file is in use by another byob-agent process") {
		t.Errorf("a write while the daemon runs: exit %d\n%s", r.code, r.stderr)
	}

	// A wrong token: 401, said plainly, and nothing written.
	if code, _ := d.do(t, http.MethodGet, admin.BackupPath, "Bearer "+wrongToken, ""); code != http.StatusUnauthorized {
		t.Errorf("backup with a wrong token: %d, want 401", code)
	}
	writeFile(tokenFile, wrongToken)
	r = run("state", "backup", "wrong.db")
	if r.code == 0 || !strings.Contains(r.stderr, "refused the admin token (401)") {
		t.Errorf("state backup with a wrong token: exit %d\n%s", r.code, r.stderr)
	}
	for _, f := range []string{"wrong.db", "wrong.db.tmp"} {
		if _, err := os.Stat(filepath.Join(e.dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refused backup: %v", f, err)
		}
	}
	// No token at all: the way out is named.
	writeFile(e.config, cfg)
	r = run("state", "backup", "none.db")
	if r.code == 0 || !strings.Contains(r.stderr, "in use by another byob-agent process; to ask the running daemon, set server.adminToken") {
		t.Errorf("state backup without an admin token: exit %d\n%s", r.code, r.stderr)
	}

	// Stopped, the daemon no longer holds the file: the command copies it directly.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	if r := run("state", "backup", "offline.db"); r.code != 0 {
		t.Fatalf("state backup offline: exit %d\n%s", r.code, r.stderr)
	}
	assertCopy("offline.db")
	if r := run("state", "backup", "state.db"); r.code != 2 || !strings.Contains(r.stderr, "is the state file itself") {
		t.Errorf("backup onto the state file: exit %d\n%s", r.code, r.stderr)
	}

	for _, out := range append(outputs, d.logs()) {
		if strings.Contains(out, adminToken) || strings.Contains(out, wrongToken) {
			t.Fatalf("an admin token appears in output or logs:\n%s", out)
		}
	}
}
