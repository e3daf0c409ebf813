package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const scimToken = "scim-token-for-tests-0123456789"
const oktaSecret = "okta-hook-secret-0123456789"

// daemonProc is a running `byob-agent run`.
type daemonProc struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
	stderr *lockedWriter
}

// logs is what the daemon wrote to stderr so far.
func (d *daemonProc) logs() string {
	d.stderr.mu.Lock()
	defer d.stderr.mu.Unlock()
	return d.stderr.w.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeDaemonConfig writes a daemon config: one YAML team, SCIM groups "wandb-*" as teams, an Okta hook.
func (e *e2e) writeDaemonConfig(port int) {
	cfg := fmt.Sprintf(`wandb:
  scimURL: %[1]s
  deployment: self-managed
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
state:
  path: state.db
server:
  listen: 127.0.0.1:%[6]d
  baseURL: http://127.0.0.1:%[6]d
  shutdownTimeout: 3s
schedule: "@every 1h"
workers: 2
profiles:
  onprem:
    provider: s3-compatible
    region: %[2]s
    endpoint: %[3]s
    credentials: {accessKeyId: %[4]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[5]s-{{ .Team }}"
scim:
  tokens: ["${TEST_SCIM_TOKEN}"]
  groups: {prefix: "wandb-", profile: onprem}
webhooks:
  okta: {secrets: ["${TEST_OKTA_SECRET}"]}
teams:
  - name: %[7]s
`, e.emuURL(), backends.Region, backends.Endpoint, backends.AccessKey, e.prefix, port, e.team("yaml"))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) startDaemon(port int) *daemonProc {
	e.t.Helper()
	return e.startDaemonWith(fmt.Sprintf("http://127.0.0.1:%d", port), http.DefaultClient)
}

// startDaemonEnv starts the daemon with extra environment variables.
func (e *e2e) startDaemonEnv(port int, env ...string) *daemonProc {
	e.t.Helper()
	return e.startDaemonWith(fmt.Sprintf("http://127.0.0.1:%d", port), http.DefaultClient, env...)
}

func (e *e2e) startDaemonWith(base string, client *http.Client, env ...string) *daemonProc {
	e.t.Helper()
	cmd := exec.Command(agentBin, "run", "--config", e.config, "--log-level", "debug")
	cmd.Dir = e.dir
	cmd.Env = agentEnv(e.dir, env...)
	d := &daemonProc{cmd: cmd, base: base, client: client, stderr: &lockedWriter{w: &bytes.Buffer{}}}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.proc.Store(cmd.Process)
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if secretsIn(d.logs()) > 0 {
			e.t.Error("the daemon logged a secret")
		}
	})
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("daemon log:\n%s", d.logs())
		}
	})
	waitFor(e.t, "the daemon to be ready", func() bool {
		resp, err := d.client.Get(d.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d
}

// lockedWriter lets the test read the daemon's stderr while the process writes it.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemonProc) do(t *testing.T, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *e2e) hasTeam(name string) bool {
	for _, g := range e.emu.Groups() {
		if g.DisplayName == name && g.StorageBucket != nil {
			return true
		}
	}
	return false
}

func TestDaemon(t *testing.T) {
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	d := e.startDaemon(port)
	if !e.hasTeam(e.team("yaml")) {
		t.Fatalf("the first full reconcile did not create the configured team: %+v", e.emu.Groups())
	}

	// Entra-style provisioning: a user, an empty group, then members by PATCH.
	bearer := "Bearer " + scimToken
	code, body := d.do(t, http.MethodPost, "/scim/v2/Users", bearer, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com","active":true,"externalId":"e1"}`)
	if code != http.StatusCreated {
		t.Fatalf("create user: %d %s", code, body)
	}
	group := "wandb-" + e.team("vision")
	code, body = d.do(t, http.MethodPost, "/scim/v2/Groups", bearer, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"`+group+`","members":[]}`)
	if code != http.StatusCreated {
		t.Fatalf("create group: %d %s", code, body)
	}
	waitFor(t, "the pushed group's team in W&B", func() bool { return e.hasTeam(e.team("vision")) })
	if got := e.buckets(); !strings.Contains(strings.Join(got, ","), e.prefix+"-"+e.team("vision")) {
		t.Errorf("buckets = %v", got)
	}
	if code, _ := d.do(t, http.MethodGet, "/scim/v2/Groups", "Bearer wrong-token-0123456789", ""); code != http.StatusUnauthorized {
		t.Errorf("wrong SCIM token: %d", code)
	}

	// An Okta event hook: verified, accepted at once, and it causes a reconcile.
	verify, _ := http.NewRequest(http.MethodGet, d.base+"/webhooks/okta", nil)
	verify.Header.Set("Authorization", oktaSecret)
	verify.Header.Set("x-okta-verification-challenge", "challenge-42")
	if resp, err := http.DefaultClient.Do(verify); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("okta verification: %v %v", err, resp)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"verification":"challenge-42"`) {
			t.Errorf("okta verification answer %s", b)
		}
	}
	// No Okta source is configured: the group event names a group no source reads and is dropped
	// (counted), while the user event reconciles everything.
	event := `{"eventType":"com.okta.event_hook","eventId":"1","data":{"events":[{"uuid":"u1","published":"2026-11-27T10:00:00Z","eventType":"group.user_membership.add","target":[{"id":"00u1","type":"User"},{"id":"00g1","type":"UserGroup","displayName":"wandb-x"}]},` +
		`{"uuid":"u2","published":"2026-11-27T10:00:01Z","eventType":"user.lifecycle.deactivate","target":[{"id":"00u1","type":"User"}]}]}}`
	req, _ := http.NewRequest(http.MethodPost, d.base+"/webhooks/okta", strings.NewReader(event))
	req.Header.Set("Authorization", oktaSecret)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("okta event: %v %v", err, resp)
	}
	resp.Body.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("the hook answered after %v; Okta waits 3 s", took)
	}
	if code, _ := d.do(t, http.MethodPost, "/webhooks/okta", "wrong", event); code != http.StatusUnauthorized {
		t.Errorf("forged okta event: %d", code)
	}
	if code, _ := d.do(t, http.MethodPost, "/scim/v2/Groups", "Bearer wrong-token-0123456789abcdef", `{"displayName":"wandb-forged"}`); code != http.StatusUnauthorized {
		t.Errorf("SCIM write with a wrong token: %d", code)
	}
	waitFor(t, "the webhook's reconcile", func() bool {
		_, m := d.do(t, http.MethodGet, "/metrics", "", "")
		return strings.Contains(m, `byob_webhook_to_reconciled_seconds_count{source="okta"} 1`)
	})
	_, m := d.do(t, http.MethodGet, "/metrics", "", "")
	for _, want := range []string{
		`byob_webhook_requests_total{outcome="unauthorized",source="okta"} 1`,
		`byob_webhook_requests_total{outcome="unknown_source",source="okta"} 1`,
		`byob_webhook_requests_total{outcome="unauthorized",source="scim"} 2`, // the token check above, and the forged write
		`byob_teams{status="in_sync"} 2`,
		`byob_api_requests_total{code="2xx",target="wandb"}`,
		`byob_api_requests_total{code="2xx",target="s3"}`,
		`byob_api_request_duration_seconds_count{target="s3"}`,
		`byob_steps_total{outcome="ok",step="create_team"} 2`,
		`byob_queue_depth`,
		"byob_leader 1\n", "byob_leader_epoch 0\n", "byob_leader_changes_total 1\n", // bbolt: the one replica leads, one term
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}

	// Delete the group: the team is orphaned, its bucket and W&B team kept.
	_, body = d.do(t, http.MethodGet, "/scim/v2/Groups?filter="+urlQuery(`displayName eq "`+group+`"`), bearer, "")
	id := jsonField(body, `"id":"`)
	if code, body := d.do(t, http.MethodDelete, "/scim/v2/Groups/"+id, bearer, ""); code != http.StatusNoContent {
		t.Fatalf("delete group %q: %d %s", id, code, body)
	}
	waitFor(t, "the team to be orphaned", func() bool {
		_, m := d.do(t, http.MethodGet, "/metrics", "", "")
		return strings.Contains(m, `byob_teams{status="orphaned"} 1`)
	})
	if !e.hasTeam(e.team("vision")) {
		t.Error("the W&B team of a deleted group must be kept")
	}
	// Once its team is orphaned, the deleted group is forgotten.
	waitFor(t, "the deleted group to be purged", func() bool {
		return strings.Contains(d.logs(), "forgot deleted SCIM groups whose teams were orphaned")
	})

	// SIGTERM: a clean stop.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, d.logs())
	}
	if !strings.Contains(d.logs(), `"msg":"stopped"`) {
		t.Errorf("no clean stop logged:\n%s", d.logs())
	}
}

func urlQuery(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, " ", "%20"), `"`, "%22")
}

// jsonField returns the string value after the first occurrence of prefix.
func jsonField(body, prefix string) string {
	_, rest, ok := strings.Cut(body, prefix)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func TestDaemonReloadAndInterruptedShutdown(t *testing.T) {
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	d := e.startDaemon(port)

	// SIGHUP with an invalid file: logged, the running configuration kept.
	good, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.config, []byte("wandb: [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the failed reload to be logged", func() bool {
		return strings.Contains(d.logs(), "configuration reload failed; keeping the running configuration")
	})
	if code, _ := d.do(t, http.MethodGet, "/readyz", "", ""); code != http.StatusOK {
		t.Errorf("readyz after a failed reload: %d", code)
	}

	// SIGHUP with a new team: it is provisioned. Its bucket setup hangs, then SIGTERM arrives.
	hang := make(chan struct{})
	victim := e.prefix + "-" + e.team("late")
	backends.SetS3Fault(func(r *http.Request) (int, bool) {
		if strings.Contains(r.URL.Path, victim) && r.Method == http.MethodPut && r.URL.Query().Has("cors") {
			<-hang
			return http.StatusServiceUnavailable, true
		}
		return 0, false
	})
	defer func() {
		select {
		case <-hang:
		default:
			close(hang)
		}
	}()
	if err := os.WriteFile(e.config, append(good, []byte("  - name: "+e.team("late")+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the new team's bucket setup to start", func() bool { return slices.Contains(e.buckets(), victim) })
	// The setup is still hanging at the shutdown timeout: the daemon cuts it short and exits cleanly.
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	close(hang)
	if !strings.Contains(d.logs(), "cutting them short") {
		t.Errorf("the shutdown did not have to cut the reconcile short:\n%s", d.logs())
	}
	backends.SetS3Fault(nil)
	if e.hasTeam(e.team("late")) {
		t.Fatal("the team was created although its bucket setup was interrupted")
	}

	// Restart: it converges, exactly one bucket and one team.
	d2 := e.startDaemon(port)
	waitFor(t, "the interrupted team after restart", func() bool { return e.hasTeam(e.team("late")) })
	n := 0
	for _, b := range e.buckets() {
		if b == victim {
			n++
		}
	}
	if n != 1 || len(e.emu.Groups()) != 2 {
		t.Errorf("after restart: %d buckets named %s, %d W&B teams (want 1 and 2)", n, victim, len(e.emu.Groups()))
	}
	if code, _ := d2.do(t, http.MethodGet, "/readyz", "", ""); code != http.StatusOK {
		t.Errorf("readyz after restart: %d", code)
	}
}

func TestDaemonServesTLS(t *testing.T) {
	e := newE2E(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	certPEM, keyPEM := testenv.SelfSignedCert(t)
	certFile, keyFile := filepath.Join(e.dir, "tls.crt"), filepath.Join(e.dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(e.config)
	cfg := strings.Replace(string(raw), "  shutdownTimeout: 3s\n", "  shutdownTimeout: 3s\n  tlsCertFile: tls.crt\n  tlsKeyFile: tls.key\n", 1)
	cfg = strings.Replace(cfg, fmt.Sprintf("baseURL: http://127.0.0.1:%d", port), fmt.Sprintf("baseURL: https://127.0.0.1:%d", port), 1)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	d := e.startDaemonWith(fmt.Sprintf("https://127.0.0.1:%d", port), client)
	if code, body := d.do(t, http.MethodGet, "/scim/v2/ServiceProviderConfig", "Bearer "+scimToken, ""); code != http.StatusOK {
		t.Errorf("SCIM over TLS: %d %s", code, body)
	}
	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered on the TLS listener")
		}
	}
}
