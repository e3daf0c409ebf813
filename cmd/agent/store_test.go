package main

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
)

// TestStatePostgresDaemon: with state.postgres the daemon keeps its team records and the SCIM push
// store in PostgreSQL (no state file appears), serves SCIM from it across a restart, and the state
// commands read it; `state backup` refuses and names pg_dump; the DSN's password never shows.
func TestStatePostgresDaemon(t *testing.T) {
	e := newE2E(t)
	dsn := testenv.PostgresDatabase(t)
	// Trust authentication ignores the password: a DSN with one still works, and it must never show.
	dsn = strings.Replace(dsn, "postgres@", "postgres:pg-dsn-secret-7@", 1)
	e.env = append(e.env, "TEST_PG_DSN="+dsn)
	port := freePort(t)
	e.writeDaemonConfig(port)
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	pgCfg := strings.Replace(string(cfg), "state:\n  path: state.db\n", "state:\n  postgres:\n    dsn: ${TEST_PG_DSN}\n    leaseDuration: 20s\n", 1)
	if pgCfg == string(cfg) {
		t.Fatal("the daemon config has no state.path to replace")
	}
	if err := os.WriteFile(e.config, []byte(pgCfg), 0o600); err != nil {
		t.Fatal(err)
	}

	start := func() *daemonProc { return e.startDaemonEnv(port, e.env...) }
	d := start()
	// Ready means serving: the replica may not lead yet, so its first reconcile may still be running.
	waitFor(t, "the first reconcile to create the configured team", func() bool { return e.hasTeam(e.team("yaml")) })
	bearer := "Bearer " + scimToken
	code, body := d.do(t, http.MethodPost, "/scim/v2/Users", bearer, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Ada@Example.com","active":true,"externalId":"pg-e1"}`)
	if code != http.StatusCreated {
		t.Fatalf("create user: %d %s", code, body)
	}
	userID := jsonField(body, `"id":"`)
	if code, body := d.do(t, http.MethodPost, "/scim/v2/Users", bearer, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.COM"}`); code != http.StatusConflict {
		t.Fatalf("a userName differing in case: %d %s, want 409", code, body)
	}
	group := "wandb-" + e.team("pg")
	code, body = d.do(t, http.MethodPost, "/scim/v2/Groups", bearer, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"`+group+`","members":[{"value":"`+userID+`"}]}`)
	if code != http.StatusCreated {
		t.Fatalf("create group: %d %s", code, body)
	}
	waitFor(t, "the pushed group's team in W&B", func() bool { return e.hasTeam(e.team("pg")) })
	if _, err := os.Stat(e.dir + "/state.db"); !os.IsNotExist(err) {
		t.Errorf("a state file appeared with state.postgres: %v", err)
	}

	// A second daemon process on the same database sees what the first stored.
	d.cmd.Process.Kill()
	d.cmd.Wait()
	d = start()
	code, body = d.do(t, http.MethodGet, "/scim/v2/Users?filter="+urlQuery(`userName eq "ADA@example.com"`), bearer, "")
	if code != http.StatusOK || !strings.Contains(body, `"totalResults":1`) || !strings.Contains(body, userID) {
		t.Fatalf("filter after a restart: %d %s", code, body)
	}
	code, body = d.do(t, http.MethodGet, "/scim/v2/Groups?filter="+urlQuery(`displayName eq "`+strings.ToUpper(group)+`"`), bearer, "")
	if code != http.StatusOK || !strings.Contains(body, `"totalResults":1`) || !strings.Contains(body, userID) {
		t.Fatalf("group filter after a restart: %d %s", code, body)
	}

	ls := e.mustRun("state", "ls")
	for _, team := range []string{e.team("yaml"), e.team("pg")} {
		if !strings.Contains(ls.stdout, team) {
			t.Errorf("state ls lacks %s:\n%s", team, ls.stdout)
		}
	}
	if exp := e.mustRun("state", "export"); !strings.Contains(exp.stdout, e.team("pg")) {
		t.Errorf("state export lacks the pushed team:\n%s", exp.stdout)
	}
	if r := e.run("state", "backup", e.dir+"/copy.db"); r.code != 2 || !strings.Contains(r.stderr, "pg_dump") {
		t.Errorf("state backup on PostgreSQL: exit %d, want 2 naming pg_dump:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if logs := d.logs(); strings.Contains(logs, "pg-dsn-secret-7") {
		t.Error("the daemon logged the DSN's password")
	}
}
