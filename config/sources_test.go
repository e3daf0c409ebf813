package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKeys are private keys in the PEM forms the sources accept, and some they refuse.
type testKeys struct {
	pkcs8EC, sec1EC, pkcs1RSA, ed25519, cert string
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// privateKeys generates the test keys once: an RSA key takes a while.
func privateKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		p8, _ := x509.MarshalPKCS8PrivateKey(ec)
		sec1, _ := x509.MarshalECPrivateKey(ec)
		edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
		keys = testKeys{pkcs8EC: pemOf("PRIVATE KEY", p8), sec1EC: pemOf("EC PRIVATE KEY", sec1),
			pkcs1RSA: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), ed25519: pemOf("PRIVATE KEY", edDER)}
	})
	cert, _ := tlsPair(t)
	k := keys
	k.cert = cert
	return k
}

// googleKey returns a service account key with a usable private key; edit changes its fields (a nil
// value removes the field).
func googleKey(t testing.TB, edit map[string]any) string {
	t.Helper()
	k := map[string]any{"type": "service_account", "client_email": "dir@acme.iam.gserviceaccount.com",
		"private_key": privateKeys(t).pkcs1RSA, "token_uri": "https://oauth2.googleapis.com/token"}
	for f, v := range edit {
		if v == nil {
			delete(k, f)
		} else {
			k[f] = v
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	oktaOK = `sources:
  okta:
    orgURL: https://acme.okta.com/
    apiToken: ${OKTA_TOKEN}
    search: 'profile.name sw "wandb-"'
    groups: {prefix: wandb-}
`
	entraOK = `sources:
  entra:
    tenantId: 11111111-2222-3333-4444-555555555555
    clientId: 66666666-7777-8888-9999-000000000000
    clientSecret: ${ENTRA_SECRET}
    filter: "startswith(displayName,'wandb-')"
`
	googleOK = `sources:
  google:
    serviceAccountKeyFile: google.json
    subject: admin@acme.com
`
)

// source turns a sources fragment into one that continues another (it drops "sources:\n").
func source(s string) string { return strings.TrimPrefix(s, "sources:\n") }

func TestLoadSources(t *testing.T) {
	k := privateKeys(t)
	gkey := googleKey(t, nil)
	files := map[string]string{"google.json": gkey + "\n"}
	defaults := Members{Mode: MembersOwned, MaxRemoveShare: DefaultMaxRemoveShare, KeepOnOrphan: true}
	tests := []struct {
		name  string
		yaml  string
		files map[string]string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "none",
			yaml: wandbOK + profilesOK + "sources:\nmembers:\n",
			check: func(t *testing.T, c *Config) {
				if c.Sources != (Sources{}) || c.Members != defaults {
					t.Errorf("sources %+v, members %+v", c.Sources, c.Members)
				}
			},
		},
		{
			name: "every source, defaults",
			yaml: wandbOK + profilesOK + oktaOK + source(entraOK) + source(googleOK),
			check: func(t *testing.T, c *Config) {
				o := c.Sources.Okta
				if o == nil || o.OrgURL != "https://acme.okta.com" || o.APIToken.Reveal() != "okta-api-token-value" || o.ClientID != "" ||
					o.Search != `profile.name sw "wandb-"` || o.Filter != "" || o.LogPollInterval != 0 || !reflect.DeepEqual(o.Groups, &GroupRule{Prefix: "wandb-", Profile: "main"}) {
					t.Errorf("okta = %+v, groups %+v", o, o.Groups)
				}
				e := c.Sources.Entra
				if e == nil || e.TenantID != "11111111-2222-3333-4444-555555555555" || e.ClientSecret.Reveal() != "entra-secret-value" ||
					e.Filter != "startswith(displayName,'wandb-')" || e.GroupIDs != nil || e.AuthorityURL != DefaultEntraAuthorityURL ||
					e.GraphURL != DefaultGraphURL || e.Subscription != nil || !reflect.DeepEqual(e.Groups, &GroupRule{Profile: "main"}) ||
					e.CatchUpInterval != DefaultEntraCatchUpInterval {
					t.Errorf("entra = %+v", e)
				}
				g := c.Sources.Google
				if g == nil || g.ServiceAccountKey.Reveal() != gkey || g.Subject != "admin@acme.com" || g.Customer != DefaultGoogleCustomer ||
					g.Query != "" || g.BaseURL != DefaultGoogleBaseURL || g.Groups.Profile != "main" {
					t.Errorf("google = %+v", g)
				}
				if c.Members != defaults {
					t.Errorf("members = %+v", c.Members)
				}
				if name, ok, err := o.Groups.TeamName("wandb-ml"); name != "ml" || !ok || err != nil {
					t.Errorf("okta TeamName = %q, %v, %v", name, ok, err)
				}
			},
		},
		{
			name: "okta OAuth, everything set",
			yaml: wandbOK + profilesOK + edit(s3ProfilesOK, "profiles:\n  main:", "  s3:") + `sources:
  okta:
    orgURL: https://acme.oktapreview.com
    clientId: 0oa1b2c3d4e5f6g7h8i9
    privateKeyFile: keys/okta.pem
    keyId: kid-1
    filter: type eq "OKTA_GROUP"
    logPolling: {interval: 30s}
    groups:
      regex: '^(?P<team>[A-Za-z-]+)-wandb$'
      profile: s3
      lowercase: true
      roles:
        - role: admin
          regex: '^(?P<team>[A-Za-z-]+)-wandb-admins$'
          lowercase: true
        - {role: viewer, names: [Guests]}
        - {customRole: ML Reviewer, names: [Reviewers]}
`,
			files: map[string]string{"keys/okta.pem": k.pkcs8EC},
			check: func(t *testing.T, c *Config) {
				o := c.Sources.Okta
				if o.ClientID != "0oa1b2c3d4e5f6g7h8i9" || o.PrivateKey.Reveal() != strings.TrimSuffix(k.pkcs8EC, "\n") || o.KeyID != "kid-1" ||
					o.APIToken.Reveal() != "" || o.Filter != `type eq "OKTA_GROUP"` || o.Search != "" || o.LogPollInterval != 30*time.Second {
					t.Errorf("okta = %+v", o)
				}
				if name, ok, err := o.Groups.TeamName("NLP-wandb"); name != "nlp" || !ok || err != nil || o.Groups.Profile != "s3" {
					t.Errorf("TeamName = %q, %v, %v; rule %+v", name, ok, err, o.Groups)
				}
				for group, want := range map[string][2]string{"NLP-wandb": {"nlp", ""}, "NLP-wandb-admins": {"nlp", "admin"}, "Guests": {"Guests", "viewer"}, "Reviewers": {"Reviewers", "ML Reviewer"}} {
					name, role, ok, _ := o.Groups.Classify(group)
					if !ok || name != want[0] || role != want[1] {
						t.Errorf("Classify(%q) = %q, %q, %v; want %q, %q", group, name, role, ok, want[0], want[1])
					}
				}
			},
		},
		{
			name: "okta log polling with the default interval",
			yaml: wandbOK + profilesOK + oktaOK + "    logPolling: {}\n",
			check: func(t *testing.T, c *Config) {
				if got := c.Sources.Okta.LogPollInterval; got != DefaultOktaLogPollInterval {
					t.Errorf("LogPollInterval = %v, want %v", got, DefaultOktaLogPollInterval)
				}
			},
		},
		{
			name: "okta PKCS #1 and SEC 1 keys",
			yaml: wandbOK + profilesOK + "sources:\n  okta:\n    orgURL: https://acme.okta.com\n    clientId: c\n    privateKey: ${OKTA_KEY}\n",
			env:  map[string]string{"OKTA_KEY": k.pkcs1RSA},
			check: func(t *testing.T, c *Config) {
				if c.Sources.Okta.PrivateKey.Reveal() != k.pkcs1RSA {
					t.Error("private key not loaded")
				}
				if _, err := loadYAML(t, wandbOK+profilesOK+"sources:\n  okta:\n    orgURL: https://acme.okta.com\n    clientId: c\n    privateKey: ${OKTA_KEY}\n",
					nil, map[string]string{"OKTA_KEY": k.sec1EC}); err != nil {
					t.Errorf("SEC 1 key: %v", err)
				}
			},
		},
		{
			name: "entra group ids, test endpoints, subscription",
			yaml: wandbOK + profilesOK + edit(entraOK, "    filter: \"startswith(displayName,'wandb-')\"\n", `    groupIds: [aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, "${GROUP_ID}"]
    authorityURL: http://127.0.0.1:8401/
    graphURL: http://[::1]:8402/graph
    subscription:
      notificationURL: https://byob.example.com/webhooks/graph
      clientStateFile: graph.state
    catchUpInterval: 0
    groups: {names: [ML-Platform, Data-Eng], lowercase: true}
`) + "webhooks:\n  graph: {clientStates: [other-state-0123456], clientStateFiles: [graph.state]}\nteams:\n  - name: ml\n",
			files: map[string]string{"graph.state": "graph-state-from-file\n"},
			env:   map[string]string{"GROUP_ID": "AAAAAAAA-0000-0000-0000-000000000001"},
			check: func(t *testing.T, c *Config) {
				e := c.Sources.Entra
				if !reflect.DeepEqual(e.GroupIDs, []string{"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "AAAAAAAA-0000-0000-0000-000000000001"}) || e.Filter != "" ||
					e.AuthorityURL != "http://127.0.0.1:8401" || e.GraphURL != "http://[::1]:8402/graph" || e.CatchUpInterval != 0 {
					t.Errorf("entra = %+v", e)
				}
				if s := e.Subscription; s == nil || s.NotificationURL != "https://byob.example.com/webhooks/graph" || s.ClientState.Reveal() != "graph-state-from-file" {
					t.Errorf("subscription = %+v", s)
				}
				for group, want := range map[string]string{"ML-Platform": "ml-platform", "Data-Eng": "data-eng", "ml-platform": "", "Other": ""} {
					if name, ok, err := e.Groups.TeamName(group); name != want || ok != (want != "") || err != nil {
						t.Errorf("TeamName(%q) = %q, %v, %v", group, name, ok, err)
					}
				}
			},
		},
		{
			name: "google inline key, customer, query, test base URL, names",
			yaml: wandbOK + profilesOK + `sources:
  google:
    serviceAccountKey: ${GOOGLE_KEY}
    subject: it-admin@acme.example
    customer: C03az79cb
    query: "email:wandb-*"
    baseURL: http://127.0.0.1:8403
    groups:
      names: [ml-research-x]
`,
			env: map[string]string{"GOOGLE_KEY": googleKey(t, map[string]any{"token_uri": "http://127.0.0.1:8404/token", "type": nil, "private_key": k.sec1EC})},
			check: func(t *testing.T, c *Config) {
				g := c.Sources.Google
				if g.Customer != "C03az79cb" || g.Query != "email:wandb-*" || g.BaseURL != "http://127.0.0.1:8403" || g.Subject != "it-admin@acme.example" ||
					!reflect.DeepEqual(g.Groups.Names, []string{"ml-research-x"}) {
					t.Errorf("google = %+v", g)
				}
			},
		},
		{
			name: "scim names and source names apart from the YAML teams",
			yaml: wandbOK + profilesOK + "server: {baseURL: https://x.example.com}\nscim:\n  tokens: [\"${SCIM_TOKEN}\"]\n  groups: {names: [pushed]}\n" +
				edit(oktaOK, "{prefix: wandb-}", "{names: [from-okta]}") + teamsOK,
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c.SCIM.Names, []string{"pushed"}) || c.SCIM.Prefix != "" {
					t.Errorf("scim = %+v", c.SCIM.GroupRule)
				}
				if name, ok, err := c.SCIM.TeamName("pushed"); name != "pushed" || !ok || err != nil {
					t.Errorf("TeamName = %q, %v, %v", name, ok, err)
				}
			},
		},
		{
			name: "members, everything set",
			yaml: wandbOK + profilesOK + "members:\n  sync: true\n  mode: authoritative\n  createUsers: ${CREATE:-true}\n  maxRemoveShare: 1\n  keepOnOrphan: false\n",
			check: func(t *testing.T, c *Config) {
				if want := (Members{Sync: true, Mode: MembersAuthoritative, CreateUsers: true, MaxRemoveShare: 1}); c.Members != want {
					t.Errorf("members = %+v, want %+v", c.Members, want)
				}
			},
		},
		{
			name: "members share from a variable",
			yaml: wandbOK + profilesOK + "members:\n  sync: true\n  maxRemoveShare: ${SHARE}\n",
			env:  map[string]string{"SHARE": ".25"},
			check: func(t *testing.T, c *Config) {
				if c.Members.MaxRemoveShare != 0.25 || c.Members.Mode != MembersOwned || !c.Members.KeepOnOrphan {
					t.Errorf("members = %+v", c.Members)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all := map[string]string{}
			for k, v := range files {
				all[k] = v
			}
			for k, v := range tc.files {
				all[k] = v
			}
			tc.check(t, mustLoad(t, tc.yaml, all, tc.env))
		})
	}
}

func TestLoadBadSources(t *testing.T) {
	k := privateKeys(t)
	const base = wandbOK + profilesOK
	two := base + edit(s3ProfilesOK, "profiles:\n  main:", "  s3:")
	okta := func(lines string) string {
		return base + "sources:\n  okta:\n    orgURL: https://acme.okta.com\n" + lines
	}
	const entraHead = "sources:\n  entra:\n    tenantId: 11111111-2222-3333-4444-555555555555\n    clientId: 66666666-7777-8888-9999-000000000000\n    clientSecret: s\n"
	entra := func(lines string) string { return base + entraHead + lines }
	google := func(key string, lines string) badCase {
		return badCase{yaml: base + "sources:\n  google:\n    serviceAccountKeyFile: g.json #<\n" + lines, files: map[string]string{"g.json": key}}
	}
	gsub := "    subject: admin@acme.com\n"
	withGoogle := func(c badCase, name, field, msg string) badCase {
		c.name, c.field, c.msg = name, field, msg
		return c
	}
	const sub = "    subscription:\n      notificationURL: https://byob.example.com/webhooks/graph\n      clientState: ${GRAPH_STATE} #<\n"
	const yamlTeam = "teams:\n  - name: ml\n"
	cases := []badCase{
		// sources
		{name: "sources a list", yaml: base + "sources: [okta] #<\n", field: "sources", msg: "expected a mapping, got a list"},
		{name: "sources unknown provider", yaml: base + "sources:\n  azure: {} #<\n", field: "sources.azure", msg: "unknown key; expected one of: okta, entra, google"},

		// okta
		{name: "okta log polling too often", yaml: okta("    apiToken: t\n    logPolling: {interval: 1s} #<\n"), field: "sources.okta.logPolling.interval", msg: "must be at least 5s"},
		{name: "okta log polling unknown key", yaml: okta("    apiToken: t\n    logPolling: {every: 1m} #<\n"), field: "sources.okta.logPolling.every", msg: "unknown key; expected one of: interval"},
		{name: "okta with nothing", yaml: base + "sources:\n  okta: #<\n", count: 2, field: "sources.okta.orgURL", msg: "is required: your Okta org's URL, such as https://acme.okta.com"},
		{name: "okta without auth", yaml: base + "sources:\n  okta: #<\n    orgURL: https://acme.okta.com\n", field: "sources.okta.apiToken",
			msg: "is required: set apiToken (or apiTokenFile), or clientId and privateKey (or privateKeyFile) for OAuth 2.0"},
		{name: "okta orgURL http", yaml: base + "sources:\n  okta:\n    orgURL: http://127.0.0.1:8080 #<\n    apiToken: t\n", field: "sources.okta.orgURL", msg: `"http://127.0.0.1:8080" is not an https:// URL`},
		{name: "okta orgURL of the admin console", yaml: base + "sources:\n  okta:\n    orgURL: https://acme-admin.okta.com #<\n    apiToken: t\n", field: "sources.okta.orgURL", msg: "is the Admin Console's URL: write the org URL, without -admin"},
		{name: "okta orgURL with a path", yaml: base + "sources:\n  okta:\n    orgURL: https://acme.okta.com/api/v1 #<\n    apiToken: t\n", field: "sources.okta.orgURL", msg: "has a path: write the org URL alone"},
		{name: "okta token and OAuth", yaml: okta("    apiToken: t\n    clientId: c #<\n    privateKey: k\n"), field: "sources.okta.clientId", msg: "set either apiToken (SSWS) or clientId and privateKey (OAuth 2.0), not both"},
		{name: "okta clientId without key", yaml: base + "sources:\n  okta: #<\n    orgURL: https://acme.okta.com\n    clientId: c\n", field: "sources.okta.privateKey", msg: "is required with clientId: set privateKey or privateKeyFile"},
		{name: "okta key without clientId", yaml: base + "sources:\n  okta: #<\n    orgURL: https://acme.okta.com\n    privateKeyFile: k.pem\n", files: map[string]string{"k.pem": k.pkcs8EC},
			field: "sources.okta.clientId", msg: "is required with privateKey"},
		{name: "okta key not PEM", yaml: okta("    clientId: c\n    privateKey: '{\"kty\": \"RSA\"}' #<\n"), field: "sources.okta.privateKey", msg: "is not a PEM private key (-----BEGIN PRIVATE KEY----- ...); a JWK must be converted to PEM"},
		{name: "okta key a certificate", yaml: okta("    clientId: c\n    privateKeyFile: k.pem #<\n"), files: map[string]string{"k.pem": k.cert},
			field: "sources.okta.privateKeyFile", msg: `is a PEM "CERTIFICATE" block, not a private key`},
		{name: "okta key encrypted", yaml: okta("    clientId: c\n    privateKeyFile: k.pem #<\n"), files: map[string]string{"k.pem": pemOf("ENCRYPTED PRIVATE KEY", []byte{1, 2})},
			field: "sources.okta.privateKeyFile", msg: "is encrypted: give the agent the key without a passphrase"},
		{name: "okta key garbled", yaml: okta("    clientId: c\n    privateKeyFile: k.pem #<\n"), files: map[string]string{"k.pem": pemOf("RSA PRIVATE KEY", []byte("nope"))},
			field: "sources.okta.privateKeyFile", msg: `is a PEM "RSA PRIVATE KEY" block that does not parse as one`},
		{name: "okta ed25519 key", yaml: okta("    clientId: c\n    privateKeyFile: k.pem #<\n"), files: map[string]string{"k.pem": k.ed25519},
			field: "sources.okta.privateKeyFile", msg: "is a ed25519.PrivateKey key; the agent signs with RSA or EC keys"},
		{name: "okta token with scheme", yaml: okta("    apiToken: SSWS 00abc #<\n"), field: "sources.okta.apiToken", msg: "starts with SSWS: write the token alone"},
		{name: "okta token with a newline", yaml: okta("    apiTokenFile: t #<\n"), files: map[string]string{"t": "00abc\n\n"}, field: "sources.okta.apiTokenFile", msg: "must not contain spaces or control characters"},
		{name: "okta token file missing", yaml: okta("    apiTokenFile: /run/okta.token #<\n"), field: "sources.okta.apiTokenFile", msg: `cannot read "/run/okta.token"`},
		{name: "okta keyId with a token", yaml: okta("    apiToken: t\n    keyId: kid #<\n"), field: "sources.okta.keyId", msg: "is only used with clientId and privateKey"},
		{name: "okta search and filter", yaml: okta("    apiToken: t\n    search: a\n    filter: b #<\n"), field: "sources.okta.filter", msg: "set either search or filter, not both"},
		{name: "okta unknown key", yaml: okta("    apiToken: t\n    token: t #<\n"), field: "sources.okta.token", msg: "unknown key; expected one of: orgURL, apiToken, apiTokenFile, clientId"},

		// entra
		{name: "entra with nothing", yaml: base + "sources:\n  entra: #<\n", count: 3, field: "sources.entra.tenantId", msg: "is required: the directory (tenant) id"},
		{name: "entra tenant a domain", yaml: base + "sources:\n  entra:\n    tenantId: acme.onmicrosoft.com #<\n    clientId: 66666666-7777-8888-9999-000000000000\n    clientSecret: s\n",
			field: "sources.entra.tenantId", msg: `"acme.onmicrosoft.com" is not a GUID`},
		{name: "entra without secret", yaml: base + "sources:\n  entra: #<\n    tenantId: 11111111-2222-3333-4444-555555555555\n    clientId: 66666666-7777-8888-9999-000000000000\n",
			field: "sources.entra.clientSecret", msg: "is required: set clientSecret or clientSecretFile"},
		{name: "entra secret twice", yaml: entra("    clientSecretFile: s #<\n"), field: "sources.entra.clientSecretFile", msg: "set either clientSecret or clientSecretFile, not both"},
		{name: "entra filter and group ids", yaml: entra("    filter: x\n    groupIds: [11111111-2222-3333-4444-555555555555] #<\n"), field: "sources.entra.groupIds", msg: "set either filter or groupIds, not both"},
		{name: "entra catch-up too often", yaml: entra("    catchUpInterval: 10s #<\n"), field: "sources.entra.catchUpInterval", msg: "must be at least 1m (or 0 to disable the catch-up), got 10s"},
		{name: "entra group ids empty", yaml: entra("    groupIds: [] #<\n"), field: "sources.entra.groupIds", msg: "must list at least one group id"},
		{name: "entra group id a name", yaml: entra("    groupIds:\n      - wandb-ml #<\n"), field: "sources.entra.groupIds[0]", msg: `"wandb-ml" is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): the object id of a group`},
		{name: "entra group id twice", yaml: entra("    groupIds:\n      - aaaaaaaa-0000-0000-0000-000000000001\n      - AAAAAAAA-0000-0000-0000-000000000001 #<\n"),
			field: "sources.entra.groupIds[1]", msg: `group id "AAAAAAAA-0000-0000-0000-000000000001" is listed already at line 20`},
		{name: "entra group ids a string", yaml: entra("    groupIds: aaaaaaaa-0000-0000-0000-000000000001 #<\n"), field: "sources.entra.groupIds", msg: "expected a list, got a string"},
		{name: "entra graphURL plain http", yaml: entra("    graphURL: http://graph.example.com #<\n"), field: "sources.entra.graphURL",
			msg: `"http://graph.example.com" is not an https:// URL (plain http only to a loopback address such as 127.0.0.1, for tests)`},
		{name: "entra authorityURL with query", yaml: entra("    authorityURL: https://login.example.com/?x=1 #<\n"), field: "sources.entra.authorityURL", msg: "must not have a query or fragment"},
		{name: "entra subscription without receiver", yaml: entra("    subscription: #<\n      notificationURL: https://byob.example.com/webhooks/graph\n      clientState: state-0123456789ab\n"),
			field: "sources.entra.subscription", msg: "needs webhooks.graph, with this clientState among its clientStates"},
		{name: "entra subscription state unknown to the receiver", yaml: entra(sub) + "webhooks:\n  graph: {clientStates: [other-state-0123456]}\n",
			field: "sources.entra.subscription.clientState", msg: "is not among webhooks.graph.clientStates: the receiver would reject every notification"},
		{name: "entra subscription over http", yaml: entra("    subscription:\n      notificationURL: http://127.0.0.1/webhooks/graph #<\n      clientState: ${GRAPH_STATE}\n") + "webhooks:\n  graph: {clientStates: [\"${GRAPH_STATE}\"]}\n",
			field: "sources.entra.subscription.notificationURL", msg: "is not an https:// URL: Graph delivers notifications over https only"},
		{name: "entra subscription empty", yaml: entra("    subscription: #<\n"), count: 2, field: "sources.entra.subscription.notificationURL", msg: "is required: the agent's /webhooks/graph URL"},
		{name: "entra clientState too long", yaml: entra("    subscription:\n      notificationURL: https://x/webhooks/graph\n      clientState: ${LONG} #<\n") + "webhooks:\n  graph: {clientStates: [\"${LONG}\"]}\n",
			env: map[string]string{"LONG": strings.Repeat("s", 129)}, count: 2, field: "sources.entra.subscription.clientState", msg: "is longer than 128 characters"},

		// google
		withGoogle(google(googleKey(t, map[string]any{"token_uri": nil}), gsub), "google key without token_uri", "sources.google.serviceAccountKeyFile", "is not a service account key: it has no token_uri"),
		withGoogle(google(googleKey(t, map[string]any{"private_key": "pk"}), gsub), "google key not PEM", "sources.google.serviceAccountKeyFile", "has a private_key that is not a PEM private key"),
		withGoogle(google(googleKey(t, map[string]any{"token_uri": "http://oauth2.googleapis.com/token"}), gsub), "google token_uri plain http", "sources.google.serviceAccountKeyFile",
			`has a token_uri that is not usable: "http://oauth2.googleapis.com/token" is not an https:// URL`),
		withGoogle(google(googleKey(t, map[string]any{"client_email": 7}), gsub), "google key email a number", "sources.google.serviceAccountKeyFile",
			"expected a JSON object with the strings client_email, private_key and token_uri"),
		{name: "google subject with a name", yaml: base + "sources:\n  google:\n    serviceAccountKey: ${K}\n    subject: Admin <admin@acme.com> #<\n", env: map[string]string{"K": googleKey(t, nil)},
			field: "sources.google.subject", msg: `"Admin <admin@acme.com>" is not an email address such as admin@acme.com`},
		{name: "google subject missing", yaml: base + "sources:\n  google: #<\n    serviceAccountKey: ${K}\n", env: map[string]string{"K": googleKey(t, nil)}, field: "sources.google.subject", msg: "is required: the email of a Workspace admin"},
		{name: "google customer with a space", yaml: base + "sources:\n  google:\n    serviceAccountKey: ${K}\n" + gsub + "    customer: my customer #<\n", env: map[string]string{"K": googleKey(t, nil)},
			field: "sources.google.customer", msg: `"my customer" is not a customer id such as C03az79cb, or my_customer`},
		{name: "google baseURL not a URL", yaml: base + "sources:\n  google:\n    serviceAccountKey: ${K}\n" + gsub + "    baseURL: admin.googleapis.com #<\n", env: map[string]string{"K": googleKey(t, nil)},
			field: "sources.google.baseURL", msg: `"admin.googleapis.com" is not an http:// or https:// URL`},

		// the group rule of the sources
		{name: "rule prefix and names", yaml: okta("    apiToken: t\n    groups:\n      prefix: wandb-\n      names: [ml] #<\n"), field: "sources.okta.groups.names", msg: "set either prefix or names, not both"},
		{name: "rule regex and names", yaml: okta("    apiToken: t\n    groups:\n      regex: (?P<team>.+)\n      names: [ml] #<\n"), field: "sources.okta.groups.names", msg: "set either regex or names, not both"},
		{name: "rule names empty", yaml: okta("    apiToken: t\n    groups:\n      names: [] #<\n"), field: "sources.okta.groups.names", msg: "must list at least one group name; leave names out to take every group"},
		{name: "rule names twice", yaml: okta("    apiToken: t\n    groups:\n      names:\n        - ml\n        - ml #<\n"), field: "sources.okta.groups.names[1]", msg: `group "ml" is listed already at line 20`},
		{name: "rule name invalid", yaml: okta("    apiToken: t\n    groups:\n      names:\n        - ML Ops #<\n"), field: "sources.okta.groups.names[0]",
			msg: `group "ML Ops" gives team name "ML Ops": team name "ML Ops" is not a valid W&B team name`},
		{name: "rule name a mapping", yaml: okta("    apiToken: t\n    groups:\n      names: [{name: ml}] #<\n"), field: "sources.okta.groups.names[0]", msg: "expected a string, got a mapping"},
		{name: "rule name empty", yaml: okta("    apiToken: t\n    groups:\n      names: [\"${EMPTY:-}\"] #<\n"), field: "sources.okta.groups.names[0]", msg: "must not be empty"},
		{name: "rule names a string", yaml: okta("    apiToken: t\n    groups:\n      names: ml #<\n"), field: "sources.okta.groups.names", msg: "expected a list, got a string"},
		{name: "rule regex without team", yaml: okta("    apiToken: t\n    groups: {regex: \"wandb-(.+)\"} #<\n"), field: "sources.okta.groups.regex", msg: `has no group named "team"`},
		{name: "rule profile undefined", yaml: okta("    apiToken: t\n    groups: {profile: gcs} #<\n"), field: "sources.okta.groups.profile", msg: `profile "gcs" is not defined; profiles: main`},
		{name: "rule without a profile", yaml: two + "sources:\n  google: #<\n    serviceAccountKey: ${K}\n" + gsub, env: map[string]string{"K": googleKey(t, nil)},
			field: "sources.google.groups.profile", msg: "is required: the storage profile of the teams this source creates; set it here, or defaultProfile (profiles: main, s3)"},
		{name: "rule unknown key", yaml: okta("    apiToken: t\n    groups: {suffix: -wandb} #<\n"), field: "sources.okta.groups.suffix", msg: "unknown key; expected one of: prefix, regex, profile, lowercase, names, roles"},
		{name: "role rule without role", yaml: okta("    apiToken: t\n    groups:\n      roles:\n        - {prefix: admins-} #<\n"), field: "sources.okta.groups.roles[0].role", msg: "is required: the team role the members of these groups get (admin, member, viewer), or customRole"},
		{name: "role rule unknown role", yaml: okta("    apiToken: t\n    groups:\n      roles:\n        - {role: owner, prefix: admins-} #<\n"), field: "sources.okta.groups.roles[0].role", msg: `"owner" is not supported; expected one of: admin, member, viewer`},
		{name: "role and customRole", yaml: okta("    apiToken: t\n    groups:\n      roles:\n        - {role: admin, customRole: x, prefix: a-} #<\n"), field: "sources.okta.groups.roles[0].customRole", msg: "set either role or customRole, not both"},
		{name: "customRole empty", yaml: okta("    apiToken: t\n    groups:\n      roles:\n        - {customRole: \" \", prefix: a-} #<\n"), field: "sources.okta.groups.roles[0].customRole", msg: "must not be empty: the name of a custom role defined in W&B"},
		{name: "role rule selecting every group", yaml: okta("    apiToken: t\n    groups:\n      roles:\n        - {role: admin} #<\n"), field: "sources.okta.groups.roles[0].prefix", msg: "a role rule without one would take every group"},
		{name: "role rule with a profile", yaml: okta("    apiToken: t\n    groups:\n      roles:\n        - {role: admin, prefix: a-, profile: main} #<\n"), field: "sources.okta.groups.roles[0].profile", msg: "unknown key; expected one of: role, customRole, prefix, regex, names, lowercase"},
		{name: "role rules not a list", yaml: okta("    apiToken: t\n    groups:\n      roles: {role: admin} #<\n"), field: "sources.okta.groups.roles", msg: "expected a list, got a mapping"},
		{name: "role rule regex without team", yaml: base + "server: {baseURL: https://x}\nscim:\n  tokens: [\"${SCIM_TOKEN}\"]\n  groups:\n    roles:\n      - role: viewer\n        regex: \"v-(.+)\" #<\n",
			field: "scim.groups.roles[0].regex", msg: `has no group named "team"`},
		{name: "scim rule prefix, regex and names", yaml: base + "server: {baseURL: https://x}\nscim:\n  tokens: [\"${SCIM_TOKEN}\"]\n  groups:\n    prefix: a\n    regex: (?P<team>.+)\n    names: [ml] #<\n",
			count: 2, field: "scim.groups.names", msg: "set either prefix or names, not both"},

		// a team comes from one source
		{name: "names claim a YAML team", yaml: okta("    apiToken: t\n    groups:\n      names: [ml] #<\n") + yamlTeam, field: "sources.okta.groups.names[0]",
			msg: `group "ml" gives team "ml", which teams defines too, at /cfg/config.yaml:21:5: a team comes from one source`},
		{name: "names claim a team of the teams file", yaml: okta("    apiToken: t\n    groups:\n      names: [ML] #<\n      lowercase: true\n") + "teamsFile: more.yaml\n",
			files: map[string]string{"more.yaml": "teams:\n  - name: cv\n  - name: ml\n"}, field: "sources.okta.groups.names[0]", msg: `group "ML" gives team "ml", which teams defines too, at /cfg/more.yaml:3:5`},
		{name: "scim names claim a YAML team", yaml: base + "server: {baseURL: https://x}\nscim:\n  tokens: [\"${SCIM_TOKEN}\"]\n  groups: {names: [nlp, ml]} #<\n" + yamlTeam,
			field: "scim.groups.names[1]", msg: `group "ml" gives team "ml", which teams defines too`},
		{name: "two sources name one team", yaml: okta("    apiToken: t\n    groups: {names: [ml]}\n") + source(entraHead) + "    groups: {names: [ml]} #<\n",
			field: "sources.entra.groups.names[0]", msg: `group "ml" gives team "ml", which sources.okta.groups gives too, at line 18: a team comes from one source`},
		{name: "two names give one team", yaml: okta("    apiToken: t\n    groups:\n      names: [ML, ml] #<\n      lowercase: true\n"), field: "sources.okta.groups.names[1]",
			msg: `group "ml" gives team "ml", as group "ML" at line 19 does already`},

		// members
		{name: "members a list", yaml: base + "members: [sync] #<\n", field: "members", msg: "expected a mapping, got a list"},
		{name: "members unknown key", yaml: base + "members:\n  remove: true #<\n", field: "members.remove", msg: "unknown key; expected one of: sync, mode, createUsers, maxRemoveShare, keepOnOrphan"},
		{name: "members sync not a bool", yaml: base + "members:\n  sync: on #<\n", field: "members.sync", msg: `expected true or false, got "on"`},
		{name: "members mode invalid", yaml: base + "members:\n  mode: mirror #<\n", field: "members.mode", msg: `"mirror" is not supported; expected one of: owned, authoritative`},
		{name: "members mode empty", yaml: base + "members:\n  mode: ${MODE:-} #<\n", field: "members.mode", msg: "must not be empty; leave mode out for owned"},
		{name: "members createUsers a number", yaml: base + "members:\n  createUsers: 1 #<\n", field: "members.createUsers", msg: "expected true or false, got an integer"},
		{name: "members share zero", yaml: base + "members:\n  maxRemoveShare: 0 #<\n", field: "members.maxRemoveShare", msg: "must be more than 0 and at most 1 (a share of a team's members: 0.5 is half), got 0"},
		{name: "members share above one", yaml: base + "members:\n  maxRemoveShare: 1.5 #<\n", field: "members.maxRemoveShare", msg: "must be more than 0 and at most 1"},
		{name: "members share negative", yaml: base + "members:\n  maxRemoveShare: -0.1 #<\n", field: "members.maxRemoveShare", msg: "got -0.1"},
		{name: "members share a percentage", yaml: base + "members:\n  maxRemoveShare: 50% #<\n", field: "members.maxRemoveShare", msg: `expected a number such as 0.5, got "50%"`},
		{name: "members share NaN", yaml: base + "members:\n  maxRemoveShare: ${SHARE} #<\n", env: map[string]string{"SHARE": "NaN"}, field: "members.maxRemoveShare", msg: "got NaN"},
		{name: "members share YAML infinity", yaml: base + "members:\n  maxRemoveShare: .inf #<\n", field: "members.maxRemoveShare", msg: `expected a number such as 0.5, got ".inf"`},
		{name: "members share a list", yaml: base + "members:\n  maxRemoveShare: [0.5] #<\n", field: "members.maxRemoveShare", msg: "expected a number, got a list"},
		{name: "members keepOnOrphan a string", yaml: base + "members:\n  keepOnOrphan: always #<\n", field: "members.keepOnOrphan", msg: `expected true or false, got "always"`},
	}
	runBad(t, cases)
}

// TestSourceSecretsNotInProblems loads source secrets that are wrong and checks that no problem quotes them.
func TestSourceSecretsNotInProblems(t *testing.T) {
	const secret = "TOP-SECRET-VALUE"
	k := privateKeys(t)
	body := strings.Split(k.pkcs1RSA, "\n")[1]
	const okta = "sources:\n  okta:\n    orgURL: https://acme.okta.com\n"
	for name, tc := range map[string]struct {
		yaml  string
		files map[string]string
	}{
		"okta token with a space":    {yaml: okta + "    apiToken: " + secret + " " + secret + "\n"},
		"okta token with the scheme": {yaml: okta + "    apiToken: SSWS " + secret + "\n"},
		"okta key garbled":           {yaml: okta + "    clientId: c\n    privateKeyFile: k\n", files: map[string]string{"k": pemOf("PRIVATE KEY", []byte(secret))}},
		"okta key not PEM":           {yaml: okta + "    clientId: c\n    privateKey: " + secret + "\n"},
		"google key not PEM":         {yaml: "sources:\n  google:\n    subject: a@b.c\n    serviceAccountKeyFile: g\n", files: map[string]string{"g": googleKey(t, map[string]any{"private_key": secret})}},
		"google key no token_uri":    {yaml: "sources:\n  google:\n    subject: a@b.c\n    serviceAccountKeyFile: g\n", files: map[string]string{"g": googleKey(t, map[string]any{"token_uri": nil})}},
		"entra state too long":       {yaml: entraOK + "    subscription: {notificationURL: https://x, clientState: " + strings.Repeat(secret, 10) + "}\n"},
		"entra state unknown":        {yaml: entraOK + "    subscription: {notificationURL: https://x, clientState: " + secret + "}\nwebhooks: {graph: {clientStates: [x]}}\n"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadYAML(t, wandbOK+profilesOK+tc.yaml, tc.files, nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, s := range []string{secret, body, baseEnv["ENTRA_SECRET"]} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("problem quotes a secret: %v", err)
				}
			}
		})
	}
}

// TestSourceSecretsNeverPrinted prints loaded sources every way the agent might, and looks for the secrets.
func TestSourceSecretsNeverPrinted(t *testing.T) {
	k := privateKeys(t)
	yaml := wandbOK + profilesOK + oktaOK + source(entraOK) + "    subscription: {notificationURL: https://x/webhooks/graph, clientState: \"${GRAPH_STATE}\"}\n" +
		source(googleOK) + "webhooks:\n  graph: {clientStates: [\"${GRAPH_STATE}\"]}\n"
	cfg := mustLoad(t, yaml, map[string]string{"google.json": googleKey(t, nil)}, nil)
	oauth := mustLoad(t, wandbOK+profilesOK+"sources:\n  okta: {orgURL: https://acme.okta.com, clientId: c, privateKey: \"${KEY}\"}\n", nil, map[string]string{"KEY": k.pkcs8EC})
	s := cfg.Sources
	var out bytes.Buffer
	for _, v := range []any{cfg, *cfg, s, s.Okta, *s.Entra, s.Entra.Subscription, s.Google, oauth.Sources, *oauth.Sources.Okta} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		out.Write(b)
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("loaded", "sources", s, "okta", s.Okta, "entra", s.Entra, "google", s.Google, "oauth", oauth.Sources.Okta)
	}
	for _, secret := range []string{baseEnv["OKTA_TOKEN"], baseEnv["ENTRA_SECRET"], baseEnv["GRAPH_STATE"], "BEGIN", "private_key", "gserviceaccount"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output shows secret %q", secret)
		}
	}
}

func TestCheckPrivateKey(t *testing.T) {
	k := privateKeys(t)
	for _, good := range []string{k.pkcs8EC, k.sec1EC, k.pkcs1RSA, "\n" + k.pkcs1RSA} {
		if err := checkPrivateKey(good); err != nil {
			t.Errorf("checkPrivateKey: %v", err)
		}
	}
	for bad, want := range map[string]string{
		"":                           "is not a PEM private key",
		k.cert:                       `is a PEM "CERTIFICATE" block`,
		k.ed25519:                    "ed25519.PrivateKey",
		pemOf("EC PRIVATE KEY", nil): `is a PEM "EC PRIVATE KEY" block that does not parse as one`,
	} {
		if err := checkPrivateKey(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkPrivateKey(%.20q) = %v, want ...%s...", bad, err, want)
		}
	}
}

// sourceRules returns the group rules of the configured sources.
func sourceRules(s Sources) []*GroupRule {
	var out []*GroupRule
	if s.Okta != nil {
		out = append(out, s.Okta.Groups)
	}
	if s.Entra != nil {
		out = append(out, s.Entra.Groups)
	}
	if s.Google != nil {
		out = append(out, s.Google.Groups)
	}
	return out
}
