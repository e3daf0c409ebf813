package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/team"
	"github.com/byob-agent/byob-agent/webhook"
)

// Defaults and bounds of the daemon's settings (`byob-agent run`); the one-shot commands ignore them.
const (
	DefaultListen           = "127.0.0.1:8080"
	DefaultShutdownTimeout  = 30 * time.Second
	DefaultSchedule         = "@every 10m"
	DefaultWorkers          = 4
	MaxWorkers              = 64
	DefaultWebhookTolerance = 5 * time.Minute
	// MinTokenLength keeps the bearer tokens the daemon accepts (SCIM, admin) out of guessing range.
	MinTokenLength = 16
	// maxClientStateLength is Microsoft Graph's limit on a subscription's clientState.
	maxClientStateLength = 128
	// MinWebhookSecretLength keeps webhook secrets (Okta's Authorization value, Graph clientStates, a
	// Standard Webhooks key) out of guessing range, as MinTokenLength does for bearer tokens.
	MinWebhookSecretLength = 16
	// DefaultMaxConnections caps the connections each listener holds at once: past it new ones wait
	// in the kernel's backlog, unread. IdPs push with a handful of connections.
	DefaultMaxConnections = 128
	MaxMaxConnections     = 10_000
	// DefaultSCIMTeamsPerHour is how many new teams SCIM pushes may ask for in an hour.
	DefaultSCIMTeamsPerHour = 20
)

// Server is the daemon's HTTP listener.
type Server struct {
	Listen string // host:port
	// BaseURL is the agent's external URL without a trailing slash; SCIM Location headers are built on
	// it. Empty unless set (it is required when SCIM is enabled).
	BaseURL string
	// TLSCertFile and TLSKeyFile are both set (HTTPS) or both empty (plain HTTP); resolved against the
	// config file's directory, and checked at load to be a matching pair.
	TLSCertFile, TLSKeyFile string
	ShutdownTimeout         time.Duration // how long a stop waits for requests and reconciles in flight
	// AdminToken is the bearer token of /admin/ (state backup and export while the daemon holds the
	// state file); unset, /admin/ is not served.
	AdminToken Secret
	// MaxConnections caps the connections each listener serves at once.
	MaxConnections int
	// MetricsListen, when set, is a second plain-HTTP host:port that serves /metrics, /healthz and
	// /readyz instead of Listen, so that they need not be exposed where the IdPs reach SCIM.
	MetricsListen string
}

// NeedsRestart reports whether going from s to next needs a restart of the daemon: the listener's
// settings do; the admin token is applied by a reload.
func (s Server) NeedsRestart(next Server) bool {
	s.AdminToken, next.AdminToken = Secret{}, Secret{}
	return s != next
}

// SCIM is the agent's inbound SCIM endpoint, and the rule that turns pushed groups into teams.
type SCIM struct {
	Tokens []Secret // accepted bearer tokens; several during a rotation
	// TeamsPerHour caps the new team names pushes may ask for in any hour (creates and renames of
	// groups that become teams).
	TeamsPerHour int
	// GroupRule is scim.groups, never nil; embedded so that s.Profile names the teams' profile.
	*GroupRule
	Limits SCIMLimits // scim.limits
}

// SCIMLimits bound what SCIM clients may store (scim.limits); a zero field takes the state's
// default (state.DefaultSCIMLimits). The fields are state.SCIMLimits', so one converts to the other.
type SCIMLimits struct {
	MaxUserBytes int // bytes of one user's stored JSON
	MaxUsers     int
	MaxGroups    int // live groups
	MaxMembers   int // members of one group
}

// TeamName applies scim.groups to a pushed group's displayName, as GroupRule.TeamName does; a nil
// SCIM (the endpoint is disabled) makes no group a team.
func (s *SCIM) TeamName(displayName string) (name string, ok bool, err error) {
	if s == nil {
		return "", false, nil
	}
	return s.GroupRule.TeamName(displayName)
}

// Webhooks are the IdP webhook receivers; a nil receiver is disabled.
type Webhooks struct {
	Okta    *OktaHook
	Graph   *GraphHook
	Generic *GenericHook
}

// OktaHook authenticates Okta event hooks by the static secret Okta sends in a header.
type OktaHook struct {
	Secrets []Secret
}

// GraphHook authenticates Microsoft Graph change notifications by their clientState.
type GraphHook struct {
	ClientStates []Secret
}

// GenericHook authenticates Standard Webhooks signatures. Each secret is as the sender shows it: the
// base64 of the key, optionally prefixed "whsec_" (webhook.SigningKey decodes it as the reference
// libraries do); anything else is refused at load.
type GenericHook struct {
	Secrets   []Secret
	Tolerance time.Duration // how far webhook-timestamp may be from now
}

// Storage renders the storage of team teamName in the named profile, for teams that come from other
// sources than the YAML file (SCIM pushes); the name is checked as a YAML team's is.
func (c *Config) Storage(profile, teamName string) (team.Storage, error) {
	if err := checkTeamName(teamName, c.Wandb.AllowUndocumentedTeamNames); err != nil {
		return team.Storage{}, err
	}
	p, ok := c.profiles[profile]
	if !ok {
		return team.Storage{}, fmt.Errorf("profile %q is not defined; profiles: %s", profile, strings.Join(c.ProfileNames(), ", "))
	}
	return p.Storage(teamName)
}

// server reads the server section, with the status page's viewer tokens (kept apart from Server so
// that Server stays comparable).
func (f *file) server(root mapping) (s Server, viewers []Secret) {
	s = Server{Listen: DefaultListen, ShutdownTimeout: DefaultShutdownTimeout, MaxConnections: DefaultMaxConnections}
	scimKey := root.keys["scim"]
	const needBase = "is required when scim is enabled: SCIM Location headers are absolute URLs"
	if !root.has("server") && scimKey != nil {
		f.problem(scimKey, "server.baseURL", needBase)
	}
	m, ok := f.section(root, "server", "", "listen", "baseURL", "tlsCertFile", "tlsKeyFile", "shutdownTimeout", "adminToken", "adminTokenFile",
		"maxConnections", "metricsListen", "viewerTokens", "viewerTokenFiles")
	if !ok {
		return s, nil
	}
	if l, n := f.str(m, "listen", ""); n != nil {
		if err := checkListen(l); err != nil {
			f.problem(n, m.at("listen"), "%v", err)
		}
		s.Listen = l
	}
	if u, n := f.str(m, "baseURL", when(scimKey != nil, needBase)); n != nil && u != "" {
		if err := checkURL(u); err != nil {
			f.problem(n, m.at("baseURL"), "%v", err)
		}
		s.BaseURL = strings.TrimRight(u, "/")
	}
	s.TLSCertFile, s.TLSKeyFile = f.tlsFiles(m)
	if d, n := f.duration(m, "shutdownTimeout"); n != nil {
		if d <= 0 {
			f.problem(n, m.at("shutdownTimeout"), "must be positive, got %s", d)
		}
		s.ShutdownTimeout = d
	}
	if c, n := f.integer(m, "maxConnections"); n != nil {
		if c < 1 || c > MaxMaxConnections {
			f.problem(n, m.at("maxConnections"), "must be between 1 and %d, got %d", MaxMaxConnections, c)
		}
		s.MaxConnections = c
	}
	if l, n := f.str(m, "metricsListen", ""); n != nil && l != "" {
		switch err := checkListen(l); {
		case err != nil:
			f.problem(n, m.at("metricsListen"), "%v", err)
		case l == s.Listen:
			f.problem(n, m.at("metricsListen"), "is server.listen: leave it out to serve /metrics and the probes there, or give another port")
		}
		s.MetricsListen = l
	}
	s.AdminToken = f.secret(m, "adminToken", "")
	f.checkSecret(m, "adminToken", s.AdminToken, func(v string) error {
		if msg := checkBearerToken(v); msg != "" {
			return errors.New(msg)
		}
		return nil
	})
	if m.has("viewerTokens") || m.has("viewerTokenFiles") {
		viewers = f.secretList(m, "viewerTokens", "viewerTokenFiles", checkBearerToken)
	}
	return s, viewers
}

// checkListen accepts host:port with a numeric port; an empty host listens on every interface and
// port 0 on a free port.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port, such as 127.0.0.1:8080 or :8080", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// tlsFiles reads the certificate and key files (both or neither) and checks that they are a matching
// pair, so that a mistake shows at load rather than when the listener starts. The key is a secret: no
// message shows its content.
func (f *file) tlsFiles(m mapping) (certFile, keyFile string) {
	// Empty counts as unset, so that ${TLS_CERT_FILE:-} can leave TLS off.
	cert, cn := f.str(m, "tlsCertFile", "")
	key, kn := f.str(m, "tlsKeyFile", "")
	if (cert == "") != (key == "") {
		set, unset, unsetNode := "tlsCertFile", "tlsKeyFile", kn
		if key != "" {
			set, unset, unsetNode = unset, set, cn
		}
		if unsetNode != nil || !m.has(unset) { // else its bad value is reported already
			f.problem(m.keys[set], m.at(unset), "is required when %s is set: set both, or neither for plain HTTP", set)
		}
		return "", ""
	}
	if cert == "" {
		return "", ""
	}
	certFile, keyFile = f.resolve(cert), f.resolve(key)
	certPEM, certErr := f.read(certFile)
	if certErr != nil {
		f.problem(cn, m.at("tlsCertFile"), "cannot read %q: %v", certFile, certErr)
	}
	keyPEM, keyErr := f.read(keyFile)
	if keyErr != nil {
		f.problem(kn, m.at("tlsKeyFile"), "cannot read %q: %v", keyFile, keyErr)
	}
	if certErr == nil && keyErr == nil {
		// crypto/tls's messages name what is wrong, never the key's content.
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			f.problem(cn, m.at("tlsCertFile"), "%q and %q are not a certificate and its private key: %v", certFile, keyFile, err)
		}
	}
	return certFile, keyFile
}

func (f *file) schedule(root mapping) string {
	spec, n := f.str(root, "schedule", "")
	switch {
	case n == nil:
		return DefaultSchedule
	case spec == "":
		f.problem(n, "schedule", "must not be empty; leave schedule out for the default %q", DefaultSchedule)
	default:
		if err := checkSchedule(spec); err != nil {
			f.problem(n, "schedule", "%v", err)
		}
	}
	return spec
}

// checkSchedule accepts what the daemon's cron accepts (cron.ParseStandard: five fields or a
// descriptor, optionally after CRON_TZ=<zone>), except what cron would quietly change.
func checkSchedule(spec string) error {
	const usage = `a cron schedule such as "*/15 * * * *", "@hourly" or "@every 10m"`
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		// cron's parser panics on a zone with no schedule after it.
		return fmt.Errorf("%q names a time zone but no schedule: write %s after it", spec, usage)
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return fmt.Errorf("%q is not %s: %v", spec, usage, err)
	}
	// cron runs @every in whole seconds, at least one: anything else would silently become that.
	if every, ok := sched.(cron.ConstantDelaySchedule); ok {
		_, text, _ := strings.Cut(spec, "@every ")
		if d, err := time.ParseDuration(text); err == nil && d != every.Delay {
			return fmt.Errorf("%q: @every takes a whole number of seconds, at least 1s, but got %s", spec, d)
		}
	}
	return nil
}

func (f *file) workers(root mapping) int {
	w, n := f.integer(root, "workers")
	if n == nil {
		return DefaultWorkers
	}
	if w < 1 || w > MaxWorkers {
		f.problem(n, "workers", "must be between 1 and %d, got %d", MaxWorkers, w)
	}
	return w
}

// enabled returns the mapping of an optional section that turns a feature on (scim, a webhook receiver):
// absent means off, and `key:` with nothing after it means on with every setting missing, so that the
// missing secrets are reported rather than the feature silently staying off.
func (f *file) enabled(m mapping, key string, allowed ...string) (mapping, bool) {
	k := m.keys[key]
	switch {
	case k == nil:
		return mapping{}, false
	case !m.has(key):
		return mapping{node: k, pos: k, field: m.at(key)}, true
	}
	return f.section(m, key, "", allowed...)
}

// scim reads the inbound SCIM endpoint; nil when it is absent (or too broken to use).
func (f *file) scim(root mapping, profiles map[string]*profileDef, defaultProfile string) *SCIM {
	m, ok := f.enabled(root, "scim", "tokens", "tokenFiles", "groups", "teamsPerHour", "limits")
	if !ok {
		return nil
	}
	s := &SCIM{
		Tokens:       f.secretList(m, "tokens", "tokenFiles", checkBearerToken),
		TeamsPerHour: DefaultSCIMTeamsPerHour,
		GroupRule:    f.groupRule(m, profiles, defaultProfile, "SCIM creates"),
		Limits:       f.scimLimits(m),
	}
	if c, n := f.integer(m, "teamsPerHour"); n != nil {
		if c < 0 {
			f.problem(n, m.at("teamsPerHour"), "must be 0 (pushes create no team) or more, got %d", c)
		}
		s.TeamsPerHour = c
	}
	return s
}

func (f *file) scimLimits(m mapping) SCIMLimits {
	var l SCIMLimits
	lm, ok := f.section(m, "limits", "", "maxUserBytes", "maxUsers", "maxGroups", "maxMembers")
	if !ok {
		return l
	}
	for _, x := range []struct {
		key string
		dst *int
	}{{"maxUserBytes", &l.MaxUserBytes}, {"maxUsers", &l.MaxUsers}, {"maxGroups", &l.MaxGroups}, {"maxMembers", &l.MaxMembers}} {
		if v, n := f.integer(lm, x.key); n != nil {
			if v < 1 {
				f.problem(n, lm.at(x.key), "must be at least 1, got %d (leave it out for the default)", v)
				continue
			}
			*x.dst = v
		}
	}
	return l
}

func checkBearerToken(v string) string {
	switch {
	case utf8.RuneCountInString(v) < MinTokenLength:
		return fmt.Sprintf("is shorter than %d characters: use a long random token", MinTokenLength)
	case strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "must not contain spaces or control characters: it is sent as `Authorization: Bearer <token>`"
	}
	return ""
}

func (f *file) webhooks(root mapping) Webhooks {
	var w Webhooks
	m, ok := f.section(root, "webhooks", "", "okta", "graph", "generic")
	if !ok {
		return w
	}
	if om, ok := f.enabled(m, "okta", "secrets", "secretFiles"); ok {
		w.Okta = &OktaHook{Secrets: f.secretList(om, "secrets", "secretFiles", checkOktaSecret)}
	}
	if gm, ok := f.enabled(m, "graph", "clientStates", "clientStateFiles"); ok {
		w.Graph = &GraphHook{ClientStates: f.secretList(gm, "clientStates", "clientStateFiles", checkClientState)}
	}
	if gm, ok := f.enabled(m, "generic", "secrets", "secretFiles", "tolerance"); ok {
		w.Generic = &GenericHook{Secrets: f.secretList(gm, "secrets", "secretFiles", checkWebhookSecret), Tolerance: DefaultWebhookTolerance}
		if d, n := f.duration(gm, "tolerance"); n != nil {
			if d <= 0 {
				f.problem(n, gm.at("tolerance"), "must be positive, got %s", d)
			}
			w.Generic.Tolerance = d
		}
	}
	return w
}

// checkOktaSecret checks the Authorization value of an Okta event hook: it arrives as an HTTP header
// value, which cannot hold control characters.
func checkOktaSecret(v string) string {
	if msg := checkSecretLength(utf8.RuneCountInString(v), "characters"); msg != "" {
		return msg
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return "must not contain control characters: it arrives in an HTTP header"
	}
	return ""
}

func checkClientState(v string) string {
	n := utf8.RuneCountInString(v)
	if n > maxClientStateLength {
		return fmt.Sprintf("is longer than %d characters, Microsoft Graph's limit for a subscription's clientState", maxClientStateLength)
	}
	return checkSecretLength(n, "characters")
}

// checkWebhookSecret refuses a Standard Webhooks secret the receiver could not decode: the receiver
// and this check share webhook.SigningKey, so what loads is what verifies. The length that counts is
// the decoded key's.
func checkWebhookSecret(v string) string {
	key, err := webhook.SigningKey([]byte(v))
	if err != nil {
		return "is not a Standard Webhooks secret (" + err.Error() + "): write it as the sender shows it, whsec_<base64> or <base64>"
	}
	return checkSecretLength(len(key), "bytes once base64-decoded")
}

// checkSecretLength refuses a webhook secret of fewer than MinWebhookSecretLength units.
func checkSecretLength(n int, units string) string {
	if n < MinWebhookSecretLength {
		return fmt.Sprintf("is shorter than %d %s: use a long random secret", MinWebhookSecretLength, units)
	}
	return ""
}

// secretList reads a list of secrets written inline (key, e.g. tokens) and in files (fileKey, e.g.
// tokenFiles); both may be used at once, as during a rotation. There must be at least one in total.
// check returns what is wrong with one value, or ""; messages never show a value.
func (f *file) secretList(m mapping, key, fileKey string, check func(string) string) []Secret {
	var out []Secret
	entries, listsOK := 0, true
	for _, k := range []string{key, fileKey} {
		items, ok := f.items(m, k)
		entries, listsOK = entries+len(items), listsOK && ok
		for i, n := range items {
			field := fmt.Sprintf("%s[%d]", m.at(k), i)
			if !f.is(n, field, yaml.ScalarNode, "a string") {
				continue
			}
			v, ok := f.expand(n, field)
			switch {
			case !ok:
				continue
			case v == "":
				f.problem(n, field, "must not be empty")
				continue
			case k == fileKey:
				if v, ok = f.secretFile(n, field, v); !ok {
					continue
				}
			}
			if msg := check(v); msg != "" {
				f.problem(n, field, "%s", msg)
			}
			out = append(out, NewSecret(v))
		}
	}
	if entries == 0 && listsOK {
		f.problem(m.pos, m.field, "set %s or %s: at least one", key, fileKey)
	}
	return out
}

// items returns the items of a list value; ok is false when the value is not a list (reported).
func (f *file) items(m mapping, key string) ([]*yaml.Node, bool) {
	n := m.value(key)
	if n == nil {
		return nil, true
	}
	if !f.is(n, m.at(key), yaml.SequenceNode, "a list") {
		return nil, false
	}
	return n.Content, true
}
