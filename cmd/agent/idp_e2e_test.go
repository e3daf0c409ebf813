package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/directoryfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/graphfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/oktafake"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/source/entra"
	"github.com/byob-agent/byob-agent/source/okta"
	"github.com/byob-agent/byob-agent/state"
)

// TestDaemonOktaSource reads a group from an Okta fake (TLS, trusted through SSL_CERT_FILE), makes it a
// team with its members, follows a membership change announced by an event hook, and refuses to
// empty the team when the group comes back empty (an IdP outage).
func TestDaemonOktaSource(t *testing.T) {
	e := newE2E(t)
	fake, groupID, caFile := e.oktaSource(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	e.appendOktaConfig(fake.URL)
	d := e.startDaemonEnv(port, "SSL_CERT_FILE="+caFile)
	teamName := "search-" + e.sfx
	waitFor(t, "the Okta group's team with its members", func() bool { return len(e.memberEmails(teamName)) == 2 })
	if got := e.memberEmails(teamName); !slices.Equal(got, []string{"ada@example.com", "bob@example.com"}) {
		t.Errorf("members = %v", got)
	}
	if got := d.metric(t, `byob_api_requests_total{code="2xx",target="okta"}`); !atLeast(got, 1) {
		t.Errorf("Okta's requests are not counted: %q", got)
	}

	// Membership changes in Okta; the event hook re-reads only that group.
	fake.RemoveMember(groupID, "00ubob")
	fake.AddMember(groupID, "00ucarol")
	d.oktaEvent(t, "group.user_membership.add", groupID)
	waitFor(t, "the W&B team to follow the group", func() bool {
		return slices.Equal(e.memberEmails(teamName), []string{"ada@example.com", "carol@example.com"})
	})

	// An outage returns the group empty: the safety check refuses, nobody is removed.
	fake.RemoveMember(groupID, "00uada")
	fake.RemoveMember(groupID, "00ucarol")
	d.oktaEvent(t, "group.user_membership.remove", groupID)
	waitFor(t, "the refusal to be logged", func() bool { return strings.Contains(d.logs(), "refusing to remove 2 of the team") })
	if got := e.memberEmails(teamName); len(got) != 2 {
		t.Errorf("members after a refused sync: %v", got)
	}
}

// oktaSource starts an Okta fake (TLS) with group wandb-search-<sfx> holding ada and bob, and users
// ada, bob and carol. caFile is its certificate, for SSL_CERT_FILE.
func (e *e2e) oktaSource(t *testing.T) (fake *oktafake.Server, groupID, caFile string) {
	fake = oktafake.New()
	t.Cleanup(fake.Close)
	fake.AddAPIToken("okta-api-token-0123456789")
	groupID = "00g" + e.sfx
	fake.AddGroup(oktafake.Group{ID: groupID, Name: "wandb-search-" + e.sfx})
	for _, u := range []string{"ada", "bob", "carol"} {
		fake.AddUser(oktafake.User{ID: "00u" + u, Login: u + "@example.com", Email: u + "@example.com"})
	}
	fake.AddMember(groupID, "00uada")
	fake.AddMember(groupID, "00ubob")
	caFile = filepath.Join(e.dir, "okta-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fake.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return fake, groupID, caFile
}

// appendOktaConfig adds the Okta source and member sync to the configuration file.
func (e *e2e) appendOktaConfig(orgURL string) {
	raw, _ := os.ReadFile(e.config)
	cfg := string(raw) + fmt.Sprintf(`sources:
  okta:
    orgURL: %s
    apiToken: okta-api-token-0123456789
    search: 'profile.name sw "wandb-"'
    groups: {prefix: "wandb-", profile: onprem}
members:
  sync: true
  createUsers: true
`, orgURL)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// TestOneShotReadsIdP: plan and sync run by hand read the IdP too; plan names the members it would
// add; an IdP that cannot be read leaves its teams alone instead of orphaning them. In owned and
// authoritative mode alike, the organisation's service account W&B put in the team stays, and plan
// never shows it as a change.
func TestOneShotReadsIdP(t *testing.T) {
	for _, mode := range []string{"owned", "authoritative"} {
		t.Run(mode, func(t *testing.T) {
			e := newE2E(t)
			fake, groupID, caFile := e.oktaSource(t)
			e.writeDaemonConfig(freePort(t))
			e.appendOktaConfig(fake.URL)
			appendToConfig(t, e, "  mode: "+mode+"\n") // inside the members block appendOktaConfig ends with
			e.env = append(e.env, "SSL_CERT_FILE="+caFile)
			teamName := "search-" + e.sfx
			planLine := func(out string) string {
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, teamName+" ") {
						return l
					}
				}
				t.Fatalf("plan has no line for %s:\n%s", teamName, out)
				return ""
			}

			out := e.mustRun("plan")
			if !strings.Contains(planLine(out.stdout), "members: add ada@example.com, bob@example.com") {
				t.Errorf("plan does not show the IdP team's members:\n%s", out.stdout)
			}
			e.mustRun("sync")
			if got := e.memberEmails(teamName); !slices.Equal(got, []string{"ada@example.com", "bob@example.com"}) || !e.hasServiceAccount(teamName) {
				t.Errorf("members after sync = %v, service account kept: %v", got, e.hasServiceAccount(teamName))
			}
			if line := planLine(e.mustRun("plan").stdout); !strings.HasSuffix(strings.TrimSpace(line), "no change") {
				t.Errorf("plan of the synced team: %q; the service account is no change", line)
			}
			fake.AddMember(groupID, "00ucarol")
			if line := planLine(e.mustRun("plan").stdout); !strings.HasSuffix(strings.TrimSpace(line), "members: add carol@example.com") {
				t.Errorf("plan after carol joined: %q", line)
			}
			fake.RemoveMember(groupID, "00ubob")
			e.mustRun("sync")
			if got := e.memberEmails(teamName); !slices.Equal(got, []string{"ada@example.com", "carol@example.com"}) || !e.hasServiceAccount(teamName) {
				t.Errorf("members after bob left = %v, service account kept: %v", got, e.hasServiceAccount(teamName))
			}

			// Okta refuses the token: a warning, and the team is neither orphaned nor changed.
			fake.RevokeAPIToken("okta-api-token-0123456789")
			out = e.mustRun("sync")
			if !strings.Contains(out.stderr, "the teams of okta are left alone") || strings.Contains(out.stdout, teamName) {
				t.Errorf("sync with Okta down:\nstdout %s\nstderr %s", out.stdout, out.stderr)
			}
			if rec := e.mustRun("state", "show", teamName); strings.Contains(rec.stdout, `"orphaned": true`) {
				t.Errorf("the team was orphaned while Okta was down: %s", rec.stdout)
			}
		})
	}
}

func appendToConfig(t *testing.T, e *e2e, text string) {
	t.Helper()
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.config, append(raw, text...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (d *daemonProc) oktaEvent(t *testing.T, eventType, groupID string) {
	t.Helper()
	body := fmt.Sprintf(`{"eventType":"com.okta.event_hook","eventId":"e-%s","data":{"events":[{"uuid":"u-%s","published":"2026-11-27T10:00:00Z","eventType":%q,"target":[{"id":"00uada","type":"User"},{"id":%q,"type":"UserGroup"}]}]}}`,
		groupID, eventType, eventType, groupID)
	req, _ := http.NewRequest(http.MethodPost, d.base+"/webhooks/okta", strings.NewReader(body))
	req.Header.Set("Authorization", oktaSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("okta event: %v %v", err, resp)
	}
	resp.Body.Close()
}

// memberEmails are the emails of a W&B team's user members in the emulator, sorted; the
// organisation's service accounts are left out (hasServiceAccount says whether they are there).
func (e *e2e) memberEmails(teamName string) []string {
	var out []string
	for _, g := range e.emu.Groups() {
		if g.DisplayName != teamName {
			continue
		}
		for _, m := range g.Members {
			if !slices.Contains(e.emu.ServiceAccountIDs(), m.Value) {
				out = append(out, e.emu.UserEmail(m.Value))
			}
		}
	}
	slices.Sort(out)
	return out
}

// hasServiceAccount says whether W&B's team still has every organisation service account.
func (e *e2e) hasServiceAccount(teamName string) bool {
	for _, g := range e.emu.Groups() {
		if g.DisplayName == teamName {
			for _, sa := range e.emu.ServiceAccountIDs() {
				if !slices.ContainsFunc(g.Members, func(m wandb.Member) bool { return m.Value == sa }) {
					return false
				}
			}
			return len(e.emu.ServiceAccountIDs()) > 0
		}
	}
	return false
}

// TestDaemonEntraAndGoogleSources runs the daemon with Entra ID (Graph fake) and Google Workspace
// (Directory fake) at once: the daemon keeps a Graph subscription (Graph validates the daemon's https
// notification URL), makes teams of both IdPs' groups with their members, gives the members of an
// admins group the admin role, follows a change announced by a Graph notification and one announced
// by a signed generic webhook, and reports a team that a group of each IdP claims as a conflict.
func TestDaemonEntraAndGoogleSources(t *testing.T) {
	e := newE2E(t)
	const (
		tenant      = "11111111-2222-3333-4444-555555555555"
		clientID    = "66666666-7777-8888-9999-000000000000"
		entraSecret = "entra-client-secret-0123456789"
		clientState = "graph-client-state-0123456789"
		genericKey  = "generic-webhook-key-0123456789"
	)
	certPEM, keyPEM := testenv.SelfSignedCert(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	// The app registration starts without Group.Read.All: groups are read, the subscription is refused.
	graph := graphfake.New(graphfake.Config{TenantID: tenant, ClientID: clientID, ClientSecret: entraSecret, ValidationClient: tlsClient,
		Permissions: []graphfake.Permission{graphfake.GroupMemberReadAll, graphfake.UserReadAll}})
	graphSrv := httptest.NewServer(graph)
	t.Cleanup(graphSrv.Close)
	guid := func(n int) string { return fmt.Sprintf("aaaaaaaa-0000-4000-8000-%012d", n) } // Graph ids are GUIDs
	users := map[string]string{}
	for i, u := range []string{"ada", "bob", "carol", "dan", "eve"} {
		users[u] = guid(i + 1)
		graph.AddUser(users[u], u+"@example.com", u+"@example.com")
	}
	vision, admins, sharedE, contractors := guid(101), guid(102), guid(103), guid(104)
	graph.AddGroup(contractors, "contractors-"+e.sfx, "") // nested in vision, not selected itself
	graph.AddGroup(vision, "wandb-vision-"+e.sfx, "", users["ada"], users["bob"], contractors)
	graph.AddGroup(admins, "wandb-admins-vision-"+e.sfx, "", users["carol"])
	graph.AddGroup(sharedE, "wandb-shared-"+e.sfx, "", users["ada"])

	dir := directoryfake.New(directoryfake.Options{})
	t.Cleanup(dir.Close)
	speech := "speech" + e.sfx
	dir.AddGroup(directoryfake.Group{ID: speech, Email: speech + "@example.com", Name: "wandb-speech-" + e.sfx})
	dir.AddMembers(speech, directoryfake.Member{Email: "erin@example.com"})
	dir.AddGroup(directoryfake.Group{ID: "shared" + e.sfx, Email: "shared" + e.sfx + "@example.com", Name: "wandb-shared-" + e.sfx})
	keyFile := filepath.Join(e.dir, "google.json")
	if err := os.WriteFile(keyFile, dir.CredentialsJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, tlsKeyFile := filepath.Join(e.dir, "tls.crt"), filepath.Join(e.dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tlsKeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	e.writeDaemonConfig(port)
	raw, _ := os.ReadFile(e.config)
	cfg := strings.Replace(string(raw), "  shutdownTimeout: 3s\n", "  shutdownTimeout: 3s\n  tlsCertFile: tls.crt\n  tlsKeyFile: tls.key\n  adminToken: "+adminToken+"\n", 1)
	cfg = strings.Replace(cfg, fmt.Sprintf("baseURL: http://127.0.0.1:%d", port), "baseURL: "+base, 1)
	cfg = strings.Replace(cfg, "webhooks:\n", fmt.Sprintf("webhooks:\n  graph: {clientStates: [%q]}\n  generic: {secrets: [\"whsec_%s\"]}\n",
		clientState, base64.StdEncoding.EncodeToString([]byte(genericKey))), 1)
	roles := "roles: [{role: admin, prefix: \"wandb-admins-\"}]"
	cfg += fmt.Sprintf(`sources:
  entra:
    tenantId: %[1]s
    clientId: %[2]s
    clientSecret: %[3]s
    authorityURL: %[4]s
    graphURL: %[4]s
    filter: "startswith(displayName,'wandb-')"
    subscription: {notificationURL: %[5]s/webhooks/graph, clientState: %[6]q}
    groups: {prefix: "wandb-", profile: onprem, %[7]s}
  google:
    serviceAccountKeyFile: google.json
    subject: admin@example.com
    baseURL: %[8]s
    groups: {prefix: "wandb-", profile: onprem}
members:
  sync: true
  createUsers: true
`, tenant, clientID, entraSecret, graphSrv.URL, base, clientState, roles, dir.URL)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := e.startDaemonWith(base, tlsClient)

	visionTeam, speechTeam := "vision-"+e.sfx, "speech-"+e.sfx
	waitFor(t, "the Entra and Google teams with their members", func() bool {
		return len(e.memberEmails(visionTeam)) == 3 && len(e.memberEmails(speechTeam)) == 1
	})
	if got := e.memberEmails(visionTeam); !slices.Equal(got, []string{"ada@example.com", "bob@example.com", "carol@example.com"}) {
		t.Errorf("vision members = %v (the admins group's carol included)", got)
	}
	if role := e.emu.TeamRole(e.userID("carol@example.com"), visionTeam); role != "admin" {
		t.Errorf("carol's role in %s = %q, want admin", visionTeam, role)
	}
	if e.hasTeam("admins-vision-" + e.sfx) {
		t.Error("the admins group became a team of its own")
	}
	// Without Group.Read.All the subscription is refused: a metric and /readyz say so (ready still:
	// Graph's validation handshake must reach the agent once the permission is granted).
	if subs := graph.Subscriptions(); len(subs) != 0 {
		t.Errorf("Graph subscriptions = %+v without Group.Read.All, want none", subs)
	}
	// /readyz names the kind of problem only; /admin/status has the detail.
	if code, body := d.do(t, http.MethodGet, "/readyz", "", ""); code != http.StatusOK || !strings.Contains(body, "degraded: idp subscription") || strings.Contains(body, "Group.Read.All") {
		t.Errorf("readyz without Group.Read.All: %d %s", code, body)
	}
	if code, body := d.do(t, http.MethodGet, "/admin/status", "Bearer "+adminToken, ""); code != http.StatusOK || !strings.Contains(body, "Group.Read.All") {
		t.Errorf("admin status without Group.Read.All: %d %s", code, body)
	}
	if _, body := d.do(t, http.MethodGet, "/metrics", "", ""); !strings.Contains(body, `byob_idp_subscription_errors_total{reason="forbidden",source="entra"}`) ||
		!strings.Contains(body, `byob_idp_subscription_up{source="entra"} 0`) ||
		// Each IdP's requests are counted under its name (the status page's backend health).
		!strings.Contains(body, `byob_api_requests_total{code="2xx",target="entra"}`) || !strings.Contains(body, `byob_api_requests_total{code="2xx",target="google"}`) {
		t.Errorf("metrics do not report the refused subscription:\n%s", body)
	}
	// Granted, the next full read creates it.
	graph.SetPermissions(graphfake.DefaultPermissions...)
	d.genericWebhook(t, genericKey, `{}`)
	waitFor(t, "the subscription once Group.Read.All is granted", func() bool { return len(graph.Subscriptions()) == 1 })
	waitFor(t, "readyz and the metric to drop the subscription problem", func() bool {
		code, ready := d.do(t, http.MethodGet, "/readyz", "", "")
		_, metrics := d.do(t, http.MethodGet, "/metrics", "", "")
		return code == http.StatusOK && !strings.Contains(ready, "degraded") && strings.Contains(metrics, `byob_idp_subscription_up{source="entra"} 1`)
	})
	waitFor(t, "the conflict to be reported", func() bool { return strings.Contains(d.logs(), `entra group \"wandb-shared-`+e.sfx) })
	if e.hasTeam("shared-" + e.sfx) {
		t.Error("a team claimed by two IdPs was created")
	}

	// Entra: dan joins; Graph notifies the daemon, which re-reads that group.
	graph.AddGroup(vision, "wandb-vision-"+e.sfx, "", users["ada"], users["bob"], users["dan"], contractors)
	body := fmt.Sprintf(`{"value":[{"subscriptionId":"s","clientState":%q,"changeType":"updated","resource":"Groups/%s","resourceData":{"id":%q},"tenantId":%q}]}`,
		clientState, vision, vision, tenant)
	resp, err := d.client.Post(d.base+"/webhooks/graph", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("graph notification: %s", resp.Status)
	}
	waitFor(t, "the Entra team to follow the group", func() bool { return slices.Contains(e.memberEmails(visionTeam), "dan@example.com") })

	// eve joins the nested contractors group: the notification names only contractors, and the daemon
	// re-reads the selected group that contains it (the schedule is an hour away).
	graph.AddGroup(contractors, "contractors-"+e.sfx, "", users["eve"])
	body = fmt.Sprintf(`{"value":[{"subscriptionId":"s","clientState":%q,"changeType":"updated","resource":"Groups/%s","resourceData":{"id":%q},"tenantId":%q}]}`,
		clientState, contractors, contractors, tenant)
	if resp, err = d.client.Post(d.base+"/webhooks/graph", "application/json", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "the Entra team to follow its nested group", func() bool { return slices.Contains(e.memberEmails(visionTeam), "eve@example.com") })

	// Lifecycle notifications: reauthorizationRequired reauthorizes the subscription, subscriptionRemoved
	// creates it again.
	lifecycle := func(event, sub string) {
		t.Helper()
		body := fmt.Sprintf(`{"value":[{"subscriptionId":%q,"clientState":%q,"lifecycleEvent":%q,"resource":"groups","tenantId":%q}]}`, sub, clientState, event, tenant)
		resp, err := d.client.Post(d.base+"/webhooks/graph", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("graph %s: %s", event, resp.Status)
		}
	}
	subID := graph.Subscriptions()[0].ID
	lifecycle("reauthorizationRequired", subID)
	waitFor(t, "the subscription to be reauthorized", func() bool { return graph.Reauthorizations(subID) == 1 })
	graph.DeleteSubscription(subID)
	lifecycle("subscriptionRemoved", subID)
	waitFor(t, "the removed subscription to be created again", func() bool {
		subs := graph.Subscriptions()
		return len(subs) == 1 && subs[0].ID != subID
	})

	// A change Graph never notified: bob leaves vision; a missed lifecycle notification catches up
	// with the delta query and re-reads that group alone, not every group.
	fullReads := strings.Count(d.logs(), `"key":"all"`)
	graph.AddGroup(vision, "wandb-vision-"+e.sfx, "", users["ada"], users["dan"], contractors)
	lifecycle("missed", graph.Subscriptions()[0].ID)
	waitFor(t, "the Entra team to follow a change caught up on", func() bool {
		return !slices.Contains(e.memberEmails(visionTeam), "bob@example.com")
	})
	if n := strings.Count(d.logs(), `"key":"all"`); n != fullReads {
		t.Errorf("the catch-up read every group (%d full reconciles logged, %d before)", n, fullReads)
	}
	if _, m := d.do(t, http.MethodGet, "/metrics", "", ""); !strings.Contains(m, `byob_idp_catchups_total{outcome="ok",source="entra"}`) ||
		!strings.Contains(m, `byob_idp_catchup_changes_total{source="entra"}`) {
		t.Errorf("metrics do not count the catch-up")
	}

	// Google: fay joins; a signed generic webhook names the group.
	dir.AddMembers(speech, directoryfake.Member{Email: "fay@example.com"})
	d.genericWebhook(t, genericKey, fmt.Sprintf(`{"groups":["google:%s"]}`, speech))
	waitFor(t, "the Google team to follow the group", func() bool { return slices.Contains(e.memberEmails(speechTeam), "fay@example.com") })

	// Stopped, the state records the conflict.
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	out := e.mustRun("state", "show", "shared-"+e.sfx)
	if !strings.Contains(out.stdout, "claimed by entra group") || !strings.Contains(out.stdout, "google group") {
		t.Errorf("state show of the contested team: %s", out.stdout)
	}
	// ... and the delta link, which carries no secret.
	db, err := state.Open(filepath.Join(e.dir, "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	link, err := db.Cursor(context.Background(), entra.DeltaCursor+tenant)
	db.Close()
	if err != nil || !strings.HasPrefix(link, graphSrv.URL+"/v1.0/groups/delta?") || !strings.Contains(link, "deltatoken") {
		t.Errorf("stored delta link %q, %v", link, err)
	}
	raw, _ = os.ReadFile(filepath.Join(e.dir, "state.db"))
	if strings.Contains(string(raw), entraSecret) || strings.Contains(string(raw), "Bearer") {
		t.Error("the state file holds the client secret or a token")
	}

	// doctor reads the IdPs too: without User.Read.All Graph withholds the members' details, and doctor
	// says which permission is missing.
	graph.SetPermissions(graphfake.GroupMemberReadAll, graphfake.GroupReadAll)
	if doc := e.run("doctor"); doc.code == 0 || !strings.Contains(doc.stdout, "identity provider entra: FAIL") || !strings.Contains(doc.stdout, "User.Read.All") {
		t.Errorf("doctor without User.Read.All: exit %d\n%s", doc.code, doc.stdout)
	}
	graph.SetPermissions(graphfake.DefaultPermissions...)
	if doc := e.run("doctor"); !strings.Contains(doc.stdout, "identity provider entra: ok") || !strings.Contains(doc.stdout, "identity provider google: ok") {
		t.Errorf("doctor with every permission:\n%s", doc.stdout)
	}
}

// genericWebhook sends a Standard Webhooks call signed with key.
func (d *daemonProc) genericWebhook(t *testing.T, key, body string) {
	t.Helper()
	id, ts := fmt.Sprintf("msg_%d", time.Now().UnixNano()), strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(id + "." + ts + "." + body))
	req, _ := http.NewRequest(http.MethodPost, d.base+"/webhooks/generic", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("generic webhook: %s", resp.Status)
	}
}

// userID is the emulator's id of the user with this email ("" if none).
func (e *e2e) userID(email string) string {
	for _, g := range e.emu.Groups() {
		for _, m := range g.Members {
			if e.emu.UserEmail(m.Value) == email {
				return m.Value
			}
		}
	}
	return ""
}

// TestDaemonOktaLogCatchUp: with sources.okta.logPolling, a membership change whose event hook never
// arrives reaches the W&B team through the System Log poll, which re-reads that group only (no full
// read); the poll's position is in the state, and a restarted daemon continues from it.
func TestDaemonOktaLogCatchUp(t *testing.T) {
	e := newE2E(t)
	fake, groupID, caFile := e.oktaSource(t)
	port := freePort(t)
	e.writeDaemonConfig(port)
	e.appendOktaConfig(fake.URL)
	raw, _ := os.ReadFile(e.config)
	cfg := strings.Replace(string(raw), "    apiToken: okta-api-token-0123456789\n", "    apiToken: okta-api-token-0123456789\n    logPolling: {interval: 5s}\n", 1)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	requests := func(prefix string) []string {
		var out []string
		for _, r := range fake.Requests() {
			if strings.HasPrefix(r, prefix) {
				out = append(out, r)
			}
		}
		return out
	}
	fullReads := func() int { // listings with the selection alone, not narrowed to one group by id
		n := 0
		for _, r := range requests("/api/v1/groups?") {
			if !strings.Contains(r, "id+eq") {
				n++
			}
		}
		return n
	}
	d := e.startDaemonEnv(port, "SSL_CERT_FILE="+caFile)
	teamName := "search-" + e.sfx
	waitFor(t, "the Okta group's team with its members", func() bool { return len(e.memberEmails(teamName)) == 2 })
	waitFor(t, "the first System Log poll", func() bool { return len(requests("/api/v1/logs?")) > 0 })

	// Membership changes in Okta, and no event hook comes.
	reads, polls := fullReads(), len(requests("/api/v1/logs?"))
	fake.RemoveMember(groupID, "00ubob")
	fake.AddMember(groupID, "00ucarol")
	waitFor(t, "the W&B team to follow the group", func() bool {
		return slices.Equal(e.memberEmails(teamName), []string{"ada@example.com", "carol@example.com"})
	})
	if got := len(requests("/api/v1/logs?")); got <= polls {
		t.Errorf("%d System Log requests, want more than %d: the team converged without a poll", got, polls)
	}
	if got := fullReads(); got != reads {
		t.Errorf("%d full group reads, want %d: the catch-up re-reads the group only", got, reads)
	}
	if !strings.Contains(d.logs(), `"key":"group:okta:`+groupID+`"`) {
		t.Error("no reconcile of the group's key in the log")
	}

	// A clean stop: the position is in the state.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	db, err := state.Open(filepath.Join(e.dir, "state.db"), state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cursor, err := db.Cursor(t.Context(), okta.CursorName)
	db.Close()
	if err != nil || !strings.HasPrefix(cursor, fake.URL+"/api/v1/logs?") || !strings.Contains(cursor, "after=") {
		t.Fatalf("cursor in the state = %q, %v; want a next link past the events", cursor, err)
	}

	// A restart continues from the stored position instead of starting again from now.
	polls = len(requests("/api/v1/logs?"))
	e.startDaemonEnv(port, "SSL_CERT_FILE="+caFile)
	waitFor(t, "a System Log poll after the restart", func() bool { return len(requests("/api/v1/logs?")) > polls })
	if first := requests("/api/v1/logs?")[polls]; !strings.Contains(cursor, first) {
		t.Errorf("the restarted daemon asked %s, want the stored %s", first, cursor)
	}
}
