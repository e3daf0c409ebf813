package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tlsPair returns a new self-signed certificate and its private key, PEM-encoded.
func tlsPair(t testing.TB) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func reveal(secrets []Secret) []string {
	out := make([]string, len(secrets))
	for i, s := range secrets {
		out[i] = s.Reveal()
	}
	return out
}

func TestLoadDaemon(t *testing.T) {
	cert, key := tlsPair(t)
	tests := []struct {
		name  string
		yaml  string
		files map[string]string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "everything set",
			yaml: wandbOK + profilesOK + daemonOK,
			check: func(t *testing.T, c *Config) {
				if want := (Server{Listen: "127.0.0.1:9000", BaseURL: "https://byob.example.com/agent", ShutdownTimeout: 10 * time.Second, MaxConnections: DefaultMaxConnections}); c.Server != want {
					t.Errorf("server = %+v, want %+v", c.Server, want)
				}
				if c.Schedule != "*/15 * * * *" || c.Workers != 8 {
					t.Errorf("schedule %q, workers %d", c.Schedule, c.Workers)
				}
				s := c.SCIM
				if s == nil || strings.Join(reveal(s.Tokens), ",") != "scim-token-value-0123" || s.Prefix != "wandb-" || s.Regex != nil || s.Profile != "main" || s.Lowercase ||
					s.TeamsPerHour != DefaultSCIMTeamsPerHour {
					t.Fatalf("scim = %+v", s)
				}
				w := c.Webhooks
				if w.Okta == nil || reveal(w.Okta.Secrets)[0] != baseEnv["OKTA_SECRET"] || w.Graph == nil || reveal(w.Graph.ClientStates)[0] != baseEnv["GRAPH_STATE"] ||
					w.Generic == nil || reveal(w.Generic.Secrets)[0] != baseEnv["HOOK_SECRET"] || w.Generic.Tolerance != 2*time.Minute {
					t.Errorf("webhooks = %+v", w)
				}
			},
		},
		{
			name: "tls, secrets from files and inline at once, regex",
			yaml: wandbOK + profilesOK + `server:
  baseURL: http://127.0.0.1:8080
  tlsCertFile: tls/server.crt
  tlsKeyFile: /etc/byob/tls.key
  adminTokenFile: admin.token
  viewerTokens: [viewer-token-0123456789]
  viewerTokenFiles: [viewer.token]
scim:
  tokens: ["${SCIM_TOKEN}"]
  tokenFiles: [scim/old.token]
  groups:
    regex: '^(?:wandb-(?P<team>.+)|(?P<team>.+)-wandb)$'
    lowercase: true
  limits: {maxUsers: 500, maxUserBytes: 4096}
webhooks:
  okta: {secretFiles: [okta.secret]}
  graph: {clientStateFiles: [graph.state], clientStates: [inline-state-0123456]}
  generic: {secrets: [cmF3LWdlbmVyaWMta2V5LTAxMjM=]} # unprefixed base64, as the reference libraries also accept
`,
			files: map[string]string{"tls/server.crt": cert, "/etc/byob/tls.key": key, "admin.token": "admin-token-from-file-0123\n", "viewer.token": "viewer-from-file-0123\n", "scim/old.token": "old-scim-token-0123456789\n",
				"okta.secret": "Bearer okta-from-file\n", "graph.state": "state-from-file-0123"},
			check: func(t *testing.T, c *Config) {
				if got := strings.Join(reveal(c.ViewerTokens), ","); got != "viewer-token-0123456789,viewer-from-file-0123" {
					t.Errorf("viewer tokens = %q", got)
				}
				if c.Server.TLSCertFile != "/cfg/tls/server.crt" || c.Server.TLSKeyFile != "/etc/byob/tls.key" || c.Server.Listen != DefaultListen ||
					c.Server.AdminToken.Reveal() != "admin-token-from-file-0123" {
					t.Errorf("server = %+v", c.Server)
				}
				s := c.SCIM
				if got := strings.Join(reveal(s.Tokens), ","); got != "scim-token-value-0123,old-scim-token-0123456789" {
					t.Errorf("tokens = %q", got)
				}
				if s.Regex == nil || s.Prefix != "" || !s.Lowercase || s.Profile != "main" {
					t.Errorf("scim = %+v", s)
				}
				if s.Limits != (SCIMLimits{MaxUsers: 500, MaxUserBytes: 4096}) {
					t.Errorf("scim.limits = %+v", s.Limits)
				}
				if name, ok, err := s.TeamName("NLP-wandb"); name != "nlp" || !ok || err != nil {
					t.Errorf("TeamName = %q, %v, %v", name, ok, err)
				}
				w := c.Webhooks
				if got := strings.Join(reveal(w.Graph.ClientStates), ","); got != "inline-state-0123456,state-from-file-0123" {
					t.Errorf("client states = %q", got)
				}
				if reveal(w.Okta.Secrets)[0] != "Bearer okta-from-file" || w.Generic.Tolerance != DefaultWebhookTolerance {
					t.Errorf("webhooks = %+v", w)
				}
			},
		},
		{
			name:  "scim without groups takes every group into the only profile",
			yaml:  wandbOK + profilesOK + "server: {listen: \":0\", baseURL: \"https://x.example.com\"}\nschedule: \"@hourly\"\nworkers: 1\nscim:\n  tokenFiles: [t]\n",
			files: map[string]string{"t": "token-from-file-0123456789"},
			check: func(t *testing.T, c *Config) {
				if s := c.SCIM; s.Profile != "main" || s.Prefix != "" || s.Regex != nil {
					t.Errorf("scim = %+v", s)
				}
				if c.Server.Listen != ":0" || c.Schedule != "@hourly" || c.Workers != 1 || c.Webhooks != (Webhooks{}) {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "scim profile from defaultProfile, tls off by empty variables, zone",
			yaml: wandbOK + profilesOK + edit(s3ProfilesOK, "profiles:\n  main:", "  s3:") + "defaultProfile: s3\n" +
				"server:\n  baseURL: https://x.example.com\n  tlsCertFile: ${TLS_CERT:-}\n  tlsKeyFile: ${TLS_KEY:-}\n" +
				"schedule: CRON_TZ=UTC 0 3 * * *\nworkers: 64\nscim:\n  tokens: [\"${SCIM_TOKEN}\"]\n  groups: {prefix: team-}\n",
			check: func(t *testing.T, c *Config) {
				if c.SCIM.Profile != "s3" || c.Server.TLSCertFile != "" || c.Server.TLSKeyFile != "" || c.Workers != 64 {
					t.Errorf("scim %+v, server %+v", c.SCIM, c.Server)
				}
			},
		},
		{
			name: "listener limits, metrics listener, team quota",
			yaml: wandbOK + profilesOK + "server:\n  baseURL: https://x.example.com\n  maxConnections: 8\n  metricsListen: 0.0.0.0:9090\nscim:\n  tokens: [\"${SCIM_TOKEN}\"]\n  teamsPerHour: 0\n",
			check: func(t *testing.T, c *Config) {
				if c.Server.MaxConnections != 8 || c.Server.MetricsListen != "0.0.0.0:9090" || c.SCIM.TeamsPerHour != 0 {
					t.Errorf("server %+v, scim %+v", c.Server, c.SCIM)
				}
			},
		},
		{
			name: "one receiver",
			yaml: wandbOK + profilesOK + "webhooks:\n  generic: {secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], tolerance: 1m}\n",
			check: func(t *testing.T, c *Config) {
				if w := c.Webhooks; w.Okta != nil || w.Graph != nil || w.Generic == nil || w.Generic.Tolerance != time.Minute || c.SCIM != nil {
					t.Errorf("webhooks %+v, scim %+v", w, c.SCIM)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustLoad(t, tc.yaml, tc.files, tc.env))
		})
	}
}

func TestServerNeedsRestart(t *testing.T) {
	base := Server{Listen: "127.0.0.1:8080", ShutdownTimeout: time.Second, AdminToken: NewSecret("admin-token-0123456789")}
	tests := []struct {
		name string
		next func(*Server)
		want bool
	}{
		{"unchanged (a new load)", func(s *Server) { s.AdminToken = NewSecret("admin-token-0123456789") }, false},
		{"admin token rotated", func(s *Server) { s.AdminToken = NewSecret("another-token-0123456789") }, false},
		{"admin token removed", func(s *Server) { s.AdminToken = Secret{} }, false},
		{"listen changed", func(s *Server) { s.Listen = "127.0.0.1:9090" }, true},
		{"tls turned on", func(s *Server) { s.TLSCertFile, s.TLSKeyFile = "c", "k" }, true},
	}
	for _, tt := range tests {
		next := base
		tt.next(&next)
		if got := base.NeedsRestart(next); got != tt.want {
			t.Errorf("%s: NeedsRestart = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestLoadBadDaemon(t *testing.T) {
	cert, key := tlsPair(t)
	_, otherKey := tlsPair(t)
	const base = wandbOK + profilesOK
	const server = "server: {baseURL: https://x.example.com}\n"
	const withServer = base + server
	const tokens = "  tokens: [\"${SCIM_TOKEN}\"]\n"
	tlsFiles := func(cert, key string) map[string]string { return map[string]string{"tls.crt": cert, "tls.key": key} }
	const tlsBoth = "server:\n  tlsCertFile: tls.crt #<\n  tlsKeyFile: tls.key\n"
	runBad(t, []badCase{
		// server
		{name: "server not a mapping", yaml: base + "server: 127.0.0.1:8080 #<\n", field: "server", msg: "expected a mapping, got a string"},
		{name: "server unknown key", yaml: base + "server:\n  port: 8080 #<\n", field: "server.port", msg: "unknown key; expected one of: listen, baseURL, tlsCertFile"},
		{name: "listen without port", yaml: base + "server:\n  listen: 127.0.0.1 #<\n", field: "server.listen", msg: `"127.0.0.1" is not host:port, such as 127.0.0.1:8080 or :8080`},
		{name: "listen port too high", yaml: base + "server:\n  listen: \":70000\" #<\n", field: "server.listen", msg: `port "70000" is not a number from 0 to 65535`},
		{name: "listen port by name", yaml: base + "server:\n  listen: localhost:http #<\n", field: "server.listen", msg: `port "http" is not a number`},
		{name: "baseURL not a URL", yaml: base + "server:\n  baseURL: byob.example.com #<\n", field: "server.baseURL", msg: `"byob.example.com" is not an http:// or https:// URL`},
		{name: "baseURL with query", yaml: base + "server:\n  baseURL: https://byob.example.com/?a=1 #<\n", field: "server.baseURL", msg: "must not have a query or fragment"},
		{name: "baseURL with credentials", yaml: base + "server:\n  baseURL: https://u:p@byob.example.com #<\n", field: "server.baseURL", msg: "must not contain a user name or password"},
		{name: "baseURL missing with scim", yaml: base + "server: #<\n  listen: 127.0.0.1:8080\nscim:\n" + tokens, field: "server.baseURL", msg: "is required when scim is enabled: SCIM Location headers are absolute URLs"},
		{name: "server missing with scim", yaml: base + "scim: #<\n" + tokens, field: "server.baseURL", msg: "is required when scim is enabled"},
		{name: "baseURL empty with scim", yaml: base + "server:\n  baseURL: ${BASE:-} #<\nscim:\n" + tokens, field: "server.baseURL", msg: "must not be empty"},
		{name: "tlsCertFile alone", yaml: base + "server:\n  tlsCertFile: tls.crt #<\n", field: "server.tlsKeyFile", msg: "is required when tlsCertFile is set: set both, or neither for plain HTTP"},
		{name: "tlsKeyFile alone", yaml: base + "server:\n  tlsKeyFile: tls.key #<\n  tlsCertFile: \"\"\n", field: "server.tlsCertFile", msg: "is required when tlsKeyFile is set"},
		{name: "tlsCertFile unreadable", yaml: base + tlsBoth, files: map[string]string{"tls.key": key}, field: "server.tlsCertFile", msg: `cannot read "/cfg/tls.crt": file does not exist`},
		{name: "tlsKeyFile unreadable", yaml: base + "server:\n  tlsCertFile: tls.crt\n  tlsKeyFile: /etc/tls.key #<\n", files: map[string]string{"tls.crt": cert}, field: "server.tlsKeyFile", msg: `cannot read "/etc/tls.key"`},
		{name: "tls key of another certificate", yaml: base + tlsBoth, files: tlsFiles(cert, otherKey), field: "server.tlsCertFile",
			msg: `"/cfg/tls.crt" and "/cfg/tls.key" are not a certificate and its private key: tls: private key does not match public key`},
		{name: "tls files switched", yaml: base + tlsBoth, files: tlsFiles(key, cert), field: "server.tlsCertFile", msg: "PEM inputs may have been switched"},
		{name: "tls files not PEM", yaml: base + tlsBoth, files: tlsFiles("cert", "key"), field: "server.tlsCertFile", msg: "failed to find any PEM data in certificate input"},
		{name: "shutdownTimeout zero", yaml: base + "server:\n  shutdownTimeout: 0s #<\n", field: "server.shutdownTimeout", msg: "must be positive, got 0s"},
		{name: "adminToken short", yaml: base + "server:\n  adminToken: short-token #<\n", field: "server.adminToken", msg: "is shorter than 16 characters: use a long random token"},
		{name: "adminToken with a space", yaml: base + "server:\n  adminToken: \"${SPACY}\" #<\n", env: map[string]string{"SPACY": "an admin token with spaces"}, field: "server.adminToken", msg: "must not contain spaces or control characters"},
		{name: "adminToken empty", yaml: base + "server:\n  adminToken: \"\" #<\n", field: "server.adminToken", msg: "is empty"},
		{name: "adminToken variable unset", yaml: base + "server:\n  adminToken: ${NOPE} #<\n", field: "server.adminToken", msg: "environment variable NOPE is not set"},
		{name: "adminToken and adminTokenFile", yaml: base + "server:\n  adminToken: admin-token-0123456789\n  adminTokenFile: admin.token #<\n", field: "server.adminTokenFile", msg: "set either adminToken or adminTokenFile, not both"},
		{name: "viewerTokens short", yaml: base + "server:\n  viewerTokens: [short] #<\n", field: "server.viewerTokens[0]", msg: "is shorter than 16 characters"},
		{name: "viewerTokens empty list", yaml: base + "server: #<\n  viewerTokens: []\n", field: "server", msg: "set viewerTokens or viewerTokenFiles: at least one"},
		{name: "adminTokenFile missing", yaml: base + "server:\n  adminTokenFile: admin.token #<\n", field: "server.adminTokenFile", msg: `cannot read "/cfg/admin.token": file does not exist`},
		{name: "adminTokenFile empty", yaml: base + "server:\n  adminTokenFile: admin.token #<\n", files: map[string]string{"admin.token": "\n"}, field: "server.adminTokenFile", msg: `file "/cfg/admin.token" is empty`},
		{name: "adminTokenFile short", yaml: base + "server:\n  adminTokenFile: admin.token #<\n", files: map[string]string{"admin.token": "short\n"}, field: "server.adminTokenFile", msg: "is shorter than 16 characters"},
		{name: "shutdownTimeout without unit", yaml: base + "server:\n  shutdownTimeout: 30 #<\n", field: "server.shutdownTimeout", msg: `expected a duration such as 30s or 24h, got "30"`},

		// schedule and workers
		{name: "schedule prose", yaml: base + "schedule: every 10 minutes #<\n", field: "schedule", msg: `"every 10 minutes" is not a cron schedule such as "*/15 * * * *", "@hourly" or "@every 10m": expected exactly 5 fields, found 3`},
		{name: "schedule with seconds", yaml: base + "schedule: \"0 */5 * * * *\" #<\n", field: "schedule", msg: "expected exactly 5 fields, found 6"},
		{name: "schedule field out of range", yaml: base + "schedule: \"0 25 * * *\" #<\n", field: "schedule", msg: "above maximum (23)"},
		{name: "schedule unknown descriptor", yaml: base + "schedule: \"@fortnightly\" #<\n", field: "schedule", msg: "unrecognized descriptor: @fortnightly"},
		{name: "schedule empty", yaml: base + "schedule: \"\" #<\n", field: "schedule", msg: `must not be empty; leave schedule out for the default "@every 10m"`},
		{name: "schedule below a second", yaml: base + "schedule: \"@every 500ms\" #<\n", field: "schedule", msg: "@every takes a whole number of seconds, at least 1s, but got 500ms"},
		{name: "schedule negative", yaml: base + "schedule: \"@every -5m\" #<\n", field: "schedule", msg: "but got -5m0s"},
		{name: "schedule fraction of a second", yaml: base + "schedule: \"@every 1.5s\" #<\n", field: "schedule", msg: "but got 1.5s"},
		{name: "schedule zone only", yaml: base + "schedule: CRON_TZ=UTC #<\n", field: "schedule", msg: `"CRON_TZ=UTC" names a time zone but no schedule`},
		{name: "schedule unknown zone", yaml: base + "schedule: CRON_TZ=Mars/Olympus @hourly #<\n", field: "schedule", msg: "provided bad location Mars/Olympus"},
		{name: "maxConnections zero", yaml: base + "server:\n  maxConnections: 0 #<\n", field: "server.maxConnections", msg: "must be between 1 and 10000, got 0"},
		{name: "metricsListen not host:port", yaml: base + "server:\n  metricsListen: 9090 #<\n", field: "server.metricsListen", msg: `"9090" is not host:port`},
		{name: "metricsListen is listen", yaml: base + "server:\n  listen: :8080\n  metricsListen: :8080 #<\n", field: "server.metricsListen", msg: "is server.listen"},
		{name: "scim teamsPerHour negative", yaml: withServer + "scim:\n" + tokens + "  teamsPerHour: -1 #<\n", field: "scim.teamsPerHour", msg: "must be 0 (pushes create no team) or more, got -1"},
		{name: "workers zero", yaml: base + "workers: 0 #<\n", field: "workers", msg: "must be between 1 and 64, got 0"},
		{name: "workers too many", yaml: base + "workers: ${WORKERS} #<\n", env: map[string]string{"WORKERS": "65"}, field: "workers", msg: "must be between 1 and 64, got 65"},
		{name: "workers not a number", yaml: base + "workers: four #<\n", field: "workers", msg: `expected an integer, got "four"`},

		// scim
		{name: "scim without anything", yaml: withServer + "scim: #<\n", field: "scim", msg: "set tokens or tokenFiles: at least one"},
		{name: "scim tokens empty", yaml: withServer + "scim: #<\n  tokens: []\n  tokenFiles: []\n", field: "scim", msg: "set tokens or tokenFiles: at least one"},
		{name: "scim tokens not a list", yaml: withServer + "scim:\n  tokens: ${SCIM_TOKEN} #<\n", field: "scim.tokens", msg: "expected a list, got a string"},
		{name: "scim token short", yaml: withServer + "scim:\n  tokens: [short-token] #<\n", field: "scim.tokens[0]", msg: "is shorter than 16 characters: use a long random token"},
		{name: "scim token with a space", yaml: withServer + "scim:\n  tokens: [\"${SPACY}\"] #<\n", env: map[string]string{"SPACY": "a token with spaces in it"}, field: "scim.tokens[0]", msg: "must not contain spaces or control characters"},
		{name: "scim token variable unset", yaml: withServer + "scim:\n  tokens: [\"${SCIM_TOKEN}\", \"${NOPE}\"] #<\n", field: "scim.tokens[1]", msg: "environment variable NOPE is not set"},
		{name: "scim token empty", yaml: withServer + "scim:\n  tokens:\n    - \"\" #<\n", field: "scim.tokens[0]", msg: "must not be empty"},
		{name: "scim token a mapping", yaml: withServer + "scim:\n  tokens: [{value: x}] #<\n", field: "scim.tokens[0]", msg: "expected a string, got a mapping"},
		{name: "scim tokenFile missing", yaml: withServer + "scim:\n  tokenFiles: [scim.token] #<\n", field: "scim.tokenFiles[0]", msg: `cannot read "/cfg/scim.token": file does not exist`},
		{name: "scim tokenFile empty", yaml: withServer + "scim:\n  tokenFiles: [scim.token] #<\n", files: map[string]string{"scim.token": "\n"}, field: "scim.tokenFiles[0]", msg: `file "/cfg/scim.token" is empty`},
		{name: "scim tokenFile short", yaml: withServer + "scim:\n  tokenFiles: [scim.token] #<\n", files: map[string]string{"scim.token": "short\n"}, field: "scim.tokenFiles[0]", msg: "is shorter than 16 characters"},
		{name: "scim unknown key", yaml: withServer + "scim:\n" + tokens + "  token: x #<\n", field: "scim.token", msg: "unknown key; expected one of: tokens, tokenFiles, groups"},
		{name: "scim groups a list", yaml: withServer + "scim:\n" + tokens + "  groups: [wandb-] #<\n", field: "scim.groups", msg: "expected a mapping, got a list"},
		{name: "scim groups unknown key", yaml: withServer + "scim:\n" + tokens + "  groups:\n    suffix: -wandb #<\n", field: "scim.groups.suffix", msg: "unknown key; expected one of: prefix, regex, profile, lowercase"},
		{name: "scim prefix and regex", yaml: withServer + "scim:\n" + tokens + "  groups:\n    prefix: wandb-\n    regex: ^wandb-(?P<team>.+)$ #<\n", field: "scim.groups.regex", msg: "set either prefix or regex, not both"},
		{name: "scim regex invalid", yaml: withServer + "scim:\n" + tokens + "  groups:\n    regex: \"wandb-(?P<team>.+\" #<\n", field: "scim.groups.regex", msg: "invalid regular expression: error parsing regexp: missing closing )"},
		{name: "scim regex without team group", yaml: withServer + "scim:\n" + tokens + "  groups:\n    regex: ^wandb-(?P<name>.+)$ #<\n", field: "scim.groups.regex", msg: `"^wandb-(?P<name>.+)$" has no group named "team": write (?P<team>...) around the part that is the team name`},
		{name: "scim profile undefined", yaml: withServer + "scim:\n" + tokens + "  groups:\n    profile: gcp #<\n", field: "scim.groups.profile", msg: `profile "gcp" is not defined; profiles: main`},
		{name: "scim without a profile", yaml: base + edit(s3ProfilesOK, "profiles:\n  main:", "  s3:") + server + "scim: #<\n" + tokens, field: "scim.groups.profile",
			msg: "is required: the storage profile of the teams SCIM creates; set it here, or defaultProfile (profiles: main, s3)"},
		{name: "scim groups without a profile", yaml: base + edit(s3ProfilesOK, "profiles:\n  main:", "  s3:") + server + "scim:\n" + tokens + "  groups: #<\n    prefix: wandb-\n", field: "scim.groups.profile", msg: "is required: the storage profile"},
		{name: "scim lowercase not a bool", yaml: withServer + "scim:\n" + tokens + "  groups:\n    lowercase: yes #<\n", field: "scim.groups.lowercase", msg: `expected true or false, got "yes"`},
		{name: "scim limit zero", yaml: withServer + "scim:\n" + tokens + "  limits:\n    maxUsers: 0 #<\n", field: "scim.limits.maxUsers", msg: "must be at least 1, got 0"},
		{name: "scim limit not a number", yaml: withServer + "scim:\n" + tokens + "  limits:\n    maxMembers: many #<\n", field: "scim.limits.maxMembers", msg: `expected an integer, got "many"`},
		{name: "scim limit unknown", yaml: withServer + "scim:\n" + tokens + "  limits:\n    maxTeams: 3 #<\n", field: "scim.limits.maxTeams", msg: "unknown"},

		// caFile (wandb and profiles)
		{name: "wandb caFile missing", yaml: edit(wandbOK, "  deployment: dedicated\n", "  deployment: dedicated\n  caFile: ca.pem #<\n") + profilesOK, field: "wandb.caFile", msg: `cannot read "/cfg/ca.pem": file does not exist`},
		{name: "wandb caFile not PEM", yaml: edit(wandbOK, "  deployment: dedicated\n", "  deployment: dedicated\n  caFile: ca.pem #<\n") + profilesOK, files: map[string]string{"ca.pem": "not a certificate\n"}, field: "wandb.caFile", msg: `"/cfg/ca.pem" holds no PEM certificate`},
		{name: "profile caFile holds a key", yaml: wandbOK + profilesOK + "    caFile: ca.pem #<\n", files: map[string]string{"ca.pem": cert + key}, field: "profiles.main.caFile", msg: `"/cfg/ca.pem" holds a PRIVATE KEY block: a CA file holds certificates only`},
		{name: "profile caFile bad certificate", yaml: wandbOK + profilesOK + "    caFile: ca.pem #<\n", files: map[string]string{"ca.pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, field: "profiles.main.caFile", msg: "holds a certificate that does not parse"},

		// webhooks
		{name: "webhooks a list", yaml: base + "webhooks: [okta] #<\n", field: "webhooks", msg: "expected a mapping, got a list"},
		{name: "webhooks unknown receiver", yaml: base + "webhooks:\n  github: {secrets: [x]} #<\n", field: "webhooks.github", msg: "unknown key; expected one of: okta, graph, generic"},
		{name: "okta without secrets", yaml: base + "webhooks:\n  okta: {} #<\n", field: "webhooks.okta", msg: "set secrets or secretFiles: at least one"},
		{name: "okta with nothing", yaml: base + "webhooks:\n  okta: #<\n", field: "webhooks.okta", msg: "set secrets or secretFiles: at least one"},
		{name: "okta secretFile missing", yaml: base + "webhooks:\n  okta:\n    secretFiles: [/run/okta] #<\n", field: "webhooks.okta.secretFiles[0]", msg: `cannot read "/run/okta"`},
		{name: "okta secret with a newline", yaml: base + "webhooks:\n  okta: {secrets: [\"${NL}\"]} #<\n", env: map[string]string{"NL": "okta-secret-0123456\nb"}, field: "webhooks.okta.secrets[0]", msg: "must not contain control characters: it arrives in an HTTP header"},
		{name: "graph clientState too long", yaml: base + "webhooks:\n  graph: {clientStates: [\"${LONG}\"]} #<\n", env: map[string]string{"LONG": strings.Repeat("s", 129)},
			field: "webhooks.graph.clientStates[0]", msg: "is longer than 128 characters, Microsoft Graph's limit"},
		{name: "graph with secrets", yaml: base + "webhooks:\n  graph: {secrets: [x]} #<\n", count: 2, field: "webhooks.graph.secrets", msg: "unknown key; expected one of: clientStates, clientStateFiles"},
		{name: "generic secret bad base64", yaml: base + "webhooks:\n  generic: {secrets: [\"whsec_not base64!\"]} #<\n", field: "webhooks.generic.secrets[0]", msg: "is not a Standard Webhooks secret (not base64)"},
		{name: "generic secret raw key", yaml: base + "webhooks:\n  generic: {secrets: [raw-generic-key]} #<\n", field: "webhooks.generic.secrets[0]", msg: "is not a Standard Webhooks secret (not base64): write it as the sender shows it, whsec_<base64> or <base64>"},
		{name: "generic secret unpadded base64", yaml: base + "webhooks:\n  generic: {secrets: [whsec_a2V5cw]} #<\n", field: "webhooks.generic.secrets[0]", msg: "(not base64)"},
		{name: "generic secret prefix only", yaml: base + "webhooks:\n  generic: {secrets: [whsec_]} #<\n", field: "webhooks.generic.secrets[0]", msg: "is not a Standard Webhooks secret (empty)"},
		{name: "generic secret empty key", yaml: base + "webhooks:\n  generic: {secrets: [\"whsec_====\"]} #<\n", field: "webhooks.generic.secrets[0]", msg: "(not base64)"},
		{name: "generic tolerance zero", yaml: base + "webhooks:\n  generic:\n    secrets: [MDEyMzQ1Njc4OWFiY2RlZg==]\n    tolerance: 0s #<\n", field: "webhooks.generic.tolerance", msg: "must be positive, got 0s"},
		{name: "okta secret short", yaml: base + "webhooks:\n  okta: {secrets: [okta-secret]} #<\n", field: "webhooks.okta.secrets[0]", msg: "is shorter than 16 characters: use a long random secret"},
		{name: "graph clientState short", yaml: base + "webhooks:\n  graph:\n    clientStateFiles: [s] #<\n", files: map[string]string{"s": "state\n"}, field: "webhooks.graph.clientStateFiles[0]", msg: "is shorter than 16 characters: use a long random secret"},
		{name: "generic key short", yaml: base + "webhooks:\n  generic: {secrets: [\"whsec_c2hvcnQta2V5\"]} #<\n", field: "webhooks.generic.secrets[0]", msg: "is shorter than 16 bytes once base64-decoded: use a long random secret"},
		{name: "generic tolerance bad", yaml: base + "webhooks:\n  generic:\n    secrets: [MDEyMzQ1Njc4OWFiY2RlZg==]\n    tolerance: five #<\n", field: "webhooks.generic.tolerance", msg: `expected a duration such as 30s or 24h, got "five"`},
	})
}

// TestDaemonSecretsNotInProblems loads daemon secrets that are wrong and checks that no problem quotes them.
func TestDaemonSecretsNotInProblems(t *testing.T) {
	const secret = "TOP-SECRET-VALUE"
	cert, _ := tlsPair(t)
	_, key := tlsPair(t)
	keyBody := strings.Split(key, "\n")[1]
	for name, tc := range map[string]struct {
		yaml  string
		files map[string]string
	}{
		"short token":           {yaml: "server: {baseURL: https://x}\nscim: {tokens: [S3CR3T]}\n"},
		"token with a space":    {yaml: "server: {baseURL: https://x}\nscim: {tokens: [\"" + secret + " " + secret + "\"]}\n"},
		"token file with space": {yaml: "server: {baseURL: https://x}\nscim: {tokenFiles: [t]}\n", files: map[string]string{"t": secret + " x\n"}},
		"okta control char":     {yaml: "webhooks: {okta: {secrets: [\"" + secret + "\\t\"]}}\n"},
		"graph too long":        {yaml: "webhooks: {graph: {clientStates: [" + strings.Repeat(secret, 10) + "]}}\n"},
		"whsec not base64":      {yaml: "webhooks: {generic: {secrets: [whsec_" + secret + "]}}\n"},
		"tls key mismatch":      {yaml: "server: {tlsCertFile: c, tlsKeyFile: k}\n", files: map[string]string{"c": cert, "k": key}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadYAML(t, wandbOK+profilesOK+tc.yaml, tc.files, nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, s := range []string{secret, "S3CR3T", keyBody} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("problem quotes a secret: %v", err)
				}
			}
		})
	}
}

func TestGroupRuleTeamName(t *testing.T) {
	alt := regexp.MustCompile(`^(?:wandb-(?P<team>.+)|(?P<team>.+)-wandb)$`)
	tests := []struct {
		name  string
		rule  *GroupRule
		group string
		want  string
		ok    bool
		err   string
	}{
		{name: "prefix", rule: &GroupRule{Prefix: "wandb-"}, group: "wandb-ml", want: "ml", ok: true},
		{name: "prefix does not match", rule: &GroupRule{Prefix: "wandb-"}, group: "eng-ml"},
		{name: "prefix is case-sensitive", rule: &GroupRule{Prefix: "wandb-"}, group: "WANDB-ml"},
		{name: "prefix only", rule: &GroupRule{Prefix: "wandb-"}, group: "wandb-", ok: true, err: `group "wandb-" gives team name "": team name is empty`},
		{name: "invalid name reported, not mangled", rule: &GroupRule{Prefix: "wandb-"}, group: "wandb-ML", want: "ML", ok: true,
			err: `group "wandb-ML" gives team name "ML": team name "ML" is not a valid W&B team name`},
		{name: "lowercase", rule: &GroupRule{Prefix: "wandb-", Lowercase: true}, group: "wandb-ML-Ops", want: "ml-ops", ok: true},
		{name: "lowercase keeps other faults", rule: &GroupRule{Prefix: "wandb-", Lowercase: true}, group: "wandb-ML Ops", want: "ml ops", ok: true, err: `gives team name "ml ops"`},
		{name: "regex first alternative", rule: &GroupRule{Regex: alt}, group: "wandb-ml", want: "ml", ok: true},
		{name: "regex second alternative", rule: &GroupRule{Regex: alt}, group: "nlp-wandb", want: "nlp", ok: true},
		{name: "regex does not match", rule: &GroupRule{Regex: alt}, group: "eng"},
		{name: "regex team group not taking part", rule: &GroupRule{Regex: regexp.MustCompile(`^wandb(?:-(?P<team>.+))?$`)}, group: "wandb", ok: true, err: "team name is empty"},
		{name: "regex unanchored", rule: &GroupRule{Regex: regexp.MustCompile(`wandb-(?P<team>[a-z]+)`)}, group: "x-wandb-ml-y", want: "ml", ok: true},
		{name: "no rule", rule: &GroupRule{}, group: "ml-research", want: "ml-research", ok: true},
		{name: "no rule, invalid", rule: &GroupRule{}, group: "ML Research", want: "ML Research", ok: true, err: "is not a valid W&B team name"},
		{name: "names", rule: &GroupRule{Names: []string{"ml", "NLP"}}, group: "ml", want: "ml", ok: true},
		{name: "names, not listed", rule: &GroupRule{Names: []string{"ml"}}, group: "ml-x"},
		{name: "names compare as written", rule: &GroupRule{Names: []string{"ML"}, Lowercase: true}, group: "ml"},
		{name: "names, lowercase", rule: &GroupRule{Names: []string{"NLP"}, Lowercase: true}, group: "NLP", want: "nlp", ok: true},
		{name: "names, invalid", rule: &GroupRule{Names: []string{"NLP"}}, group: "NLP", want: "NLP", ok: true, err: `group "NLP" gives team name "NLP"`},
		{name: "empty names select nothing", rule: &GroupRule{Names: []string{}}, group: "ml"},
		{name: "underscore outside W&B's rule", rule: &GroupRule{Prefix: "wandb-"}, group: "wandb-ml_ops", want: "ml_ops", ok: true, err: `use "ml-ops"`},
		{name: "underscore allowed by the operator", rule: &GroupRule{Prefix: "wandb-", undocumentedOK: true}, group: "wandb-ml_ops", want: "ml_ops", ok: true},
		{name: "source not configured", rule: nil, group: "wandb-ml"},
	}
	// A disabled SCIM endpoint makes no group a team.
	if name, ok, err := (*SCIM)(nil).TeamName("wandb-ml"); name != "" || ok || err != nil {
		t.Errorf("nil SCIM TeamName = %q, %v, %v", name, ok, err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, ok, err := tc.rule.TeamName(tc.group)
			if name != tc.want || ok != tc.ok {
				t.Errorf("TeamName(%q) = %q, %v, want %q, %v", tc.group, name, ok, tc.want, tc.ok)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("TeamName(%q) error = %v", tc.group, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("TeamName(%q) error = %v, want ...%s...", tc.group, err, tc.err)
			}
		})
	}
}

// TestUndocumentedTeamNamesOptIn: with wandb.allowUndocumentedTeamNames a name with '_' loads, and the
// configuration says it is unverified.
func TestUndocumentedTeamNamesOptIn(t *testing.T) {
	cfg := mustLoad(t, edit(wandbOK, "  deployment: dedicated\n", "  deployment: dedicated\n  allowUndocumentedTeamNames: true\n")+
		edit(s3ProfilesOK, "    bucket: s-{{ .Team }}\n", "    topology: shared\n    bucket: shared-bucket\n")+"teams:\n  - name: ml_ops\n  - name: nlp\n", nil, nil)
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], `team "ml_ops" is outside W&B's documented team name rule`) {
		t.Errorf("warnings = %q, want one naming ml_ops", cfg.Warnings)
	}
	if _, err := cfg.Storage("main", "from_scim"); err != nil {
		t.Errorf("Storage with the opt-in: %v", err)
	}
}

func TestConfigStorage(t *testing.T) {
	cfg := mustLoad(t, wandbOK+s3ProfilesOK, nil, nil)
	st, err := cfg.Storage("main", "from-scim")
	if err != nil || st.Bucket != "s-from-scim" || st.Path != "wandb/from-scim" || st.Provider != "s3-compatible" {
		t.Errorf("Storage = %+v, %v", st, err)
	}
	for _, tc := range []struct{ profile, team, err string }{
		{"nope", "ml", `profile "nope" is not defined; profiles: main`},
		{"", "ml", `profile "" is not defined`},
		{"main", "Bad Name", `team name "Bad Name" is not a valid W&B team name`},
		{"main", "", "team name is empty"},
		{"main", "from_scim", `outside W&B's documented rule (lowercase letters, numbers and hyphens): use "from-scim"`},
	} {
		if _, err := cfg.Storage(tc.profile, tc.team); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Storage(%q, %q) error = %v, want ...%s...", tc.profile, tc.team, err, tc.err)
		}
	}
}

// FuzzCheckSchedule feeds schedules straight to the cron parser's guard: robfig/cron panics on some
// inputs, and a config must never crash the agent.
func FuzzCheckSchedule(f *testing.F) {
	for _, s := range []string{DefaultSchedule, "*/15 * * * *", "@hourly", "CRON_TZ=UTC 0 3 * * *", "TZ=UTC", "@every -1s", "0-59/0 * * * *", "L W * * ?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		_ = checkSchedule(spec)
	})
}
