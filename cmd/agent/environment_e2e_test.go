package main

// The agent where customers run it: endpoints behind a private CA, reached through a corporate forward
// proxy, with the variables corporate machines set. Every case runs the binary with the caller's
// environment plus the case's own variables (agentEnv), as a user's shell would.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
)

// Names only the test proxy resolves: a client that dials them itself fails, so a tunnel counted for
// them proves the proxy was used.
const (
	proxiedS3    = "s3.byob.test"
	proxiedWandb = "wandb.byob.test"
)

// corpWorld is S3 (SeaweedFS) and the W&B emulator, each behind TLS with a certificate of the test's own
// CA, and a forward proxy that can reach both.
type corpWorld struct {
	*e2e
	caFile, wrongCAFile string
	s3Port, wandbPort   int
	proxy               *testenv.ConnectProxy
	alias, aliasIP      string // a hosts-file name of a loopback address ("" if the machine has none)
}

func newCorpWorld(t *testing.T) *corpWorld {
	e := newE2E(t)
	w := &corpWorld{e2e: e, caFile: filepath.Join(e.dir, "corp-ca.pem"), wrongCAFile: filepath.Join(e.dir, "other-ca.pem")}
	ca, err := testenv.NewCA("byob test corporate CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewCA("some other CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFile(w.caFile); err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFile(w.wrongCAFile); err != nil {
		t.Fatal(err)
	}
	w.alias, w.aliasIP, _ = testenv.LoopbackAlias()
	hosts := []string{"127.0.0.1", proxiedS3, proxiedWandb}
	if w.alias != "" {
		hosts = append(hosts, w.alias, w.aliasIP)
	}
	cert, err := ca.Leaf(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	// Both fronts listen on the alias's address when there is one (it is a loopback address too), so
	// that 127.0.0.1, the alias and the proxy's names all reach them.
	ip := "127.0.0.1"
	if w.aliasIP != "" {
		ip = w.aliasIP
	}
	front, err := testenv.TLSFront(backends.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var stop func()
	if w.s3Port, stop, err = testenv.ServeTLS(ip, cert, front); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if w.wandbPort, stop, err = testenv.ServeTLS(ip, cert, e.emu); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	names := map[string]string{proxiedS3: ip, proxiedWandb: ip, "127.0.0.1": ip}
	if w.alias != "" {
		names[w.alias] = ip
	}
	if w.proxy, err = testenv.StartConnectProxy(names); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.proxy.Close)
	return w
}

// writeConfig points the agent at both fronts under host: an s3-compatible profile and an aws one (its
// configured KMS key over plain HTTP), one team each. extra is added to the wandb section, profileExtra
// to both profiles (a caFile, say).
func (w *corpWorld) writeConfig(host, wandbExtra, profileExtra string) {
	s3URL := fmt.Sprintf("https://%s:%d", host, w.s3Port)
	cfg := fmt.Sprintf(`wandb:
  scimURL: https://%[1]s:%[2]d/scim
  deployment: dedicated
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
  timeout: 5s
%[3]s
state:
  path: state.db
profiles:
  onprem:
    provider: s3-compatible
    region: %[4]s
    endpoint: %[5]s
    credentials: {accessKeyId: %[6]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[7]s-op-{{ .Team }}"
    timeout: 10s
%[8]s
  fixed:
    provider: aws
    region: %[4]s
    endpoint: %[5]s
    pathStyle: true
    credentials: {accessKeyId: %[6]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[7]s-fx-{{ .Team }}"
    kms: {keyArn: "%[9]s", endpoint: %[10]s}
    timeout: 10s
%[8]s
teams:
  - name: %[11]s
    profile: onprem
  - name: %[12]s
    profile: fixed
`, host, w.wandbPort, indent(wandbExtra, "  "), backends.Region, s3URL, backends.AccessKey, w.prefix, indent(profileExtra, "    "),
		w.keyARN, backends.KMSEndpoint, w.team("op"), w.team("fx"))
	if err := os.WriteFile(w.config, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func indent(s, by string) string {
	if s == "" {
		return ""
	}
	return by + strings.ReplaceAll(s, "\n", "\n"+by)
}

// syncTwice runs sync (both teams created) and again (nothing to do), with env added to the caller's.
func (w *corpWorld) syncTwice(env ...string) {
	w.t.Helper()
	w.env = env
	out := w.mustRun("sync")
	for _, name := range []string{w.team("op"), w.team("fx")} {
		if !strings.Contains(out.stdout, name) || !strings.Contains(out.stdout, "created") {
			w.t.Errorf("first sync did not create %s:\n%s", name, out.stdout)
		}
	}
	if n := len(w.emu.Groups()); n != 2 {
		w.t.Errorf("W&B has %d teams, want 2", n)
	}
	w.assertRecordsInSync(nil)
	w.emu.ResetCounts()
	w.mustRun("sync")
	if n := w.emu.MutatingCount(); n != 0 {
		w.t.Errorf("second sync made %d W&B mutations", n)
	}
}

// TestPrivateCA: the CA of S3 and W&B given in each of the ways a user can give it.
func TestPrivateCA(t *testing.T) {
	t.Run("AWS_CA_BUNDLE and wandb.caFile", func(t *testing.T) {
		w := newCorpWorld(t)
		w.writeConfig("127.0.0.1", "caFile: "+w.caFile, "")
		w.syncTwice("AWS_CA_BUNDLE=" + w.caFile)
	})
	t.Run("profile caFile and SSL_CERT_FILE", func(t *testing.T) {
		w := newCorpWorld(t)
		w.writeConfig("127.0.0.1", "", "caFile: "+w.caFile)
		// SSL_CERT_FILE replaces the system roots of every Go client (W&B here); AWS_CA_BUNDLE, when the
		// caller has one, is added to the profile's roots and must not hide them.
		w.syncTwice("SSL_CERT_FILE=" + w.caFile)
	})
	t.Run("wrong CA is one clear error", func(t *testing.T) {
		w := newCorpWorld(t)
		w.writeConfig("127.0.0.1", "caFile: "+w.caFile, "")
		w.env = []string{"AWS_CA_BUNDLE=" + w.wrongCAFile}
		res := w.run("sync")
		s3Host := fmt.Sprintf("127.0.0.1:%d", w.s3Port)
		if res.code != 1 {
			t.Fatalf("sync with the wrong CA: exit %d, want 1\n%s\n%s", res.code, res.stdout, res.stderr)
		}
		for _, want := range []string{"TLS certificate of " + s3Host + " not accepted", "certificate signed by unknown authority", "AWS_CA_BUNDLE"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("sync output lacks %q:\n%s", want, res.stdout)
			}
		}
		t.Logf("sync with the wrong CA:\n%s", res.stdout)
		if strings.Contains(res.stdout, "operation error") || strings.Contains(res.stdout, "RequestID") {
			t.Errorf("the SDK's layers are in the message:\n%s", res.stdout)
		}
		if n := len(w.emu.Groups()); n != 0 {
			t.Errorf("W&B has %d teams after the storage failed", n)
		}

		// W&B's CA wrong: the run stops before planning, naming the host and the field.
		w.writeConfig("127.0.0.1", "caFile: "+w.wrongCAFile, "caFile: "+w.caFile)
		w.env = nil
		res = w.run("plan")
		wandbHost := fmt.Sprintf("127.0.0.1:%d", w.wandbPort)
		if res.code == 0 || !strings.Contains(res.stderr, "TLS certificate of "+wandbHost+" not accepted") ||
			!strings.Contains(res.stderr, w.wrongCAFile+" (wandb.caFile)") {
			t.Errorf("plan with the wrong W&B CA: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
		}
		t.Logf("plan with the wrong W&B CA:\n%s", res.stderr)
	})
}

// TestProxy: HTTPS_PROXY carries every request to S3 and W&B through the proxy's tunnels, and NO_PROXY
// takes a host out of it.
func TestProxy(t *testing.T) {
	t.Run("through HTTPS_PROXY", func(t *testing.T) {
		w := newCorpWorld(t)
		// Two names: the proxy knows both, this machine neither, so only a tunnel can reach them.
		w.writeConfig(proxiedS3, "caFile: "+w.caFile, "caFile: "+w.caFile)
		cfg, _ := os.ReadFile(w.config)
		cfg = []byte(strings.Replace(string(cfg), "scimURL: https://"+proxiedS3, "scimURL: https://"+proxiedWandb, 1))
		if err := os.WriteFile(w.config, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		w.syncTwice("HTTPS_PROXY="+w.proxy.URL, "https_proxy="+w.proxy.URL, "NO_PROXY=", "no_proxy=")
		if w.proxy.Tunnels(proxiedS3) == 0 || w.proxy.Tunnels(proxiedWandb) == 0 {
			t.Errorf("tunnels: S3 %d, W&B %d; want both used", w.proxy.Tunnels(proxiedS3), w.proxy.Tunnels(proxiedWandb))
		}
		if r := w.proxy.Refused(); len(r) > 0 {
			t.Errorf("the proxy refused %v", r)
		}
	})
	t.Run("NO_PROXY bypasses it", func(t *testing.T) {
		w := newCorpWorld(t)
		if w.alias == "" {
			// Go never proxies localhost or a loopback address, so only a hosts-file name can show that
			// NO_PROXY is what kept a request off the proxy; this machine's /etc/hosts has none.
			t.Skip("no name other than localhost maps to a loopback address in /etc/hosts")
		}
		w.writeConfig(w.alias, "caFile: "+w.caFile, "caFile: "+w.caFile)
		// Without NO_PROXY the alias goes through the proxy: checked first, so that the bypass below
		// is NO_PROXY's doing.
		w.env = []string{"HTTPS_PROXY=" + w.proxy.URL, "https_proxy=", "NO_PROXY=", "no_proxy="}
		w.mustRun("plan")
		if w.proxy.Tunnels(w.alias) == 0 {
			t.Fatalf("without NO_PROXY no tunnel to %s was opened: the test cannot tell a bypass", w.alias)
		}
		before := w.proxy.Tunnels(w.alias)
		w.syncTwice("HTTPS_PROXY="+w.proxy.URL, "https_proxy=", "NO_PROXY=127.0.0.1,"+w.alias, "no_proxy=")
		if n := w.proxy.Tunnels(w.alias) - before; n != 0 {
			t.Errorf("%d tunnels to %s with it in NO_PROXY", n, w.alias)
		}
	})
}
