package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/source/okta/oktafake"
)

// TestDaemonOktaSource reads a group from an Okta fake (TLS, trusted through SSL_CERT_FILE), makes it a
// team with its members, follows a membership change announced by an event hook, and refuses to
// empty the team when the group comes back empty (an IdP outage).
func TestDaemonOktaSource(t *testing.T) {
	e := newE2E(t)
	fake := oktafake.New()
	t.Cleanup(fake.Close)
	fake.AddAPIToken("okta-api-token-0123456789")
	groupID := "00g" + e.sfx
	fake.AddGroup(oktafake.Group{ID: groupID, Name: "wandb-search-" + e.sfx})
	for _, u := range []string{"ada", "bob", "carol"} {
		fake.AddUser(oktafake.User{ID: "00u" + u, Login: u + "@example.com", Email: u + "@example.com"})
	}
	fake.AddMember(groupID, "00uada")
	fake.AddMember(groupID, "00ubob")
	caFile := filepath.Join(e.dir, "okta-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fake.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	e.writeDaemonConfig(port)
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
`, fake.URL)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := e.startDaemonEnv(port, "SSL_CERT_FILE="+caFile)
	teamName := "search-" + e.sfx
	waitFor(t, "the Okta group's team with its members", func() bool { return len(e.memberEmails(teamName)) == 2 })
	if got := e.memberEmails(teamName); !slices.Equal(got, []string{"ada@example.com", "bob@example.com"}) {
		t.Errorf("members = %v", got)
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

// memberEmails are the emails of a W&B team's members in the emulator, sorted.
func (e *e2e) memberEmails(teamName string) []string {
	var out []string
	for _, g := range e.emu.Groups() {
		if g.DisplayName != teamName {
			continue
		}
		for _, m := range g.Members {
			out = append(out, e.emu.UserEmail(m.Value))
		}
	}
	slices.Sort(out)
	return out
}
