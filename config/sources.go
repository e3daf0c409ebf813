package config

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Defaults of the identity-provider sources.
const (
	DefaultEntraAuthorityURL = "https://login.microsoftonline.com"
	DefaultGraphURL          = "https://graph.microsoft.com" // without the API version
	DefaultGoogleBaseURL     = "https://admin.googleapis.com"
	DefaultGoogleCustomer    = "my_customer" // the customer of the impersonated admin
	// DefaultEntraCatchUpInterval: a change Graph did not notify reaches W&B within minutes, for one
	// cheap request when nothing changed.
	DefaultEntraCatchUpInterval = 5 * time.Minute
)

// Membership modes (members.mode).
const (
	MembersOwned         = "owned"         // only members the agent added are ever removed
	MembersAuthoritative = "authoritative" // the W&B team is made exactly the group's members
)

// The System Log catch-up's interval (sources.okta.logPolling.interval): its default, and the least
// accepted, so that polling stays far inside Okta's per-minute limit on /api/v1/logs.
const (
	DefaultOktaLogPollInterval = 2 * time.Minute
	MinOktaLogPollInterval     = 5 * time.Second
)

// DefaultMaxRemoveShare is members.maxRemoveShare when it is left out.
const DefaultMaxRemoveShare = 0.5

// Sources are the identity providers whose groups become teams; a nil source is not configured.
type Sources struct {
	Okta   *OktaSource
	Entra  *EntraSource
	Google *GoogleSource
}

// OktaSource reads groups through Okta's Groups API. Exactly one of APIToken (SSWS) and ClientID with
// PrivateKey (OAuth 2.0 private_key_jwt) is set.
type OktaSource struct {
	OrgURL     string // https://acme.okta.com, without a trailing slash
	APIToken   Secret
	ClientID   string
	PrivateKey Secret // PEM, RSA or EC
	KeyID      string // the kid of the JWT header; optional
	// Search and Filter (never both) are passed to GET /api/v1/groups as they are.
	Search, Filter string
	// LogPollInterval, when not zero, polls the System Log that often for the group and user events an
	// event hook would deliver (a catch-up for missed hooks); it needs okta.logs.read.
	LogPollInterval time.Duration
	Groups          *GroupRule // never nil
}

// EntraSource reads groups through Microsoft Graph with OAuth 2.0 client credentials.
type EntraSource struct {
	TenantID     string
	ClientID     string
	ClientSecret Secret
	// Filter ($filter of GET /groups) and GroupIDs (read these groups only) are never both set.
	Filter   string
	GroupIDs []string
	// AuthorityURL and GraphURL are DefaultEntraAuthorityURL and DefaultGraphURL unless overridden
	// (national clouds, tests); without a trailing slash.
	AuthorityURL, GraphURL string
	Subscription           *GraphSubscription // nil: no change notifications, only the schedule
	// CatchUpInterval is how often the daemon asks Graph's delta query which groups changed, so a
	// change without a notification is picked up between full reads; DefaultEntraCatchUpInterval
	// unless set, 0 disables it.
	CatchUpInterval time.Duration
	Groups          *GroupRule // never nil
}

// GraphSubscription is the change-notification subscription the agent keeps on /groups.
type GraphSubscription struct {
	NotificationURL string // https; where Graph POSTs, normally <server.baseURL>/webhooks/graph
	// ClientState is sent back with every notification; it is one of webhooks.graph.clientStates.
	ClientState Secret
}

// GoogleSource reads groups through the Admin SDK Directory API, as a service account with
// domain-wide delegation impersonating Subject.
type GoogleSource struct {
	ServiceAccountKey Secret // JSON with client_email, private_key (PEM) and token_uri
	Subject           string // the admin's email
	Customer          string // DefaultGoogleCustomer unless set
	Query             string // the query parameter of groups.list; optional
	BaseURL           string // DefaultGoogleBaseURL unless overridden; without a trailing slash
	Groups            *GroupRule
}

// Members says whether and how team members follow the groups' members.
type Members struct {
	Sync        bool   // false: teams' members are never touched
	Mode        string // MembersOwned or MembersAuthoritative
	CreateUsers bool   // create W&B users for member emails W&B does not know
	// MaxRemoveShare refuses a run that would remove more than this share (0 < x ≤ 1) of a team's members.
	MaxRemoveShare float64
	KeepOnOrphan   bool // when a group disappears: keep its team's members (true), or remove those the agent added
}

// sources reads the identity-provider sources. graph is webhooks.graph; webhooksOK says the webhooks
// loaded without a problem, so that an Entra subscription can be checked against graph.
func (f *file) sources(root mapping, profiles map[string]*profileDef, defaultProfile string, graph *GraphHook, webhooksOK bool) Sources {
	var s Sources
	m, ok := f.section(root, "sources", "", "okta", "entra", "google")
	if !ok {
		return s
	}
	rule := func(m mapping) *GroupRule { return f.groupRule(m, profiles, defaultProfile, "this source creates") }
	if om, ok := f.enabled(m, "okta", "orgURL", "apiToken", "apiTokenFile", "clientId", "privateKey", "privateKeyFile", "keyId", "search", "filter", "logPolling", "groups"); ok {
		s.Okta = f.okta(om)
		s.Okta.Groups = rule(om)
	}
	if em, ok := f.enabled(m, "entra", "tenantId", "clientId", "clientSecret", "clientSecretFile", "filter", "groupIds", "authorityURL", "graphURL", "subscription", "catchUpInterval", "groups"); ok {
		s.Entra = f.entra(em, graph, webhooksOK)
		s.Entra.Groups = rule(em)
	}
	if gm, ok := f.enabled(m, "google", "serviceAccountKey", "serviceAccountKeyFile", "subject", "customer", "query", "baseURL", "groups"); ok {
		s.Google = f.google(gm)
		s.Google.Groups = rule(gm)
	}
	return s
}

var oktaAuthKeys = []string{"clientId", "privateKey", "privateKeyFile"}

func (f *file) okta(m mapping) *OktaSource {
	o := &OktaSource{}
	if u, n := f.str(m, "orgURL", "is required: your Okta org's URL, such as https://acme.okta.com"); n != nil {
		if err := checkOktaOrgURL(u); err != nil {
			f.problem(n, m.at("orgURL"), "%v", err)
		}
		o.OrgURL = strings.TrimRight(u, "/")
	}
	oauth := ""
	for _, k := range oktaAuthKeys {
		if oauth == "" && m.has(k) {
			oauth = k
		}
	}
	ssws := m.has("apiToken") || m.has("apiTokenFile")
	switch {
	case ssws && oauth != "":
		f.problem(m.keys[oauth], m.at(oauth), "set either apiToken (SSWS) or clientId and privateKey (OAuth 2.0), not both")
	case oauth != "":
		o.ClientID, _ = f.str(m, "clientId", "is required with privateKey: the client id of the Okta API service app")
		o.PrivateKey = f.secret(m, "privateKey", "is required with clientId: set privateKey or privateKeyFile, the PEM private key whose public key the service app holds")
		f.checkSecret(m, "privateKey", o.PrivateKey, checkPrivateKey)
	default:
		o.APIToken = f.secret(m, "apiToken", "is required: set apiToken (or apiTokenFile), or clientId and privateKey (or privateKeyFile) for OAuth 2.0")
		f.checkSecret(m, "apiToken", o.APIToken, checkOktaToken)
	}
	if id, n := f.str(m, "keyId", ""); n != nil {
		if oauth == "" {
			f.problem(n, m.at("keyId"), "is only used with clientId and privateKey")
		}
		o.KeyID = id
	}
	o.Search, o.Filter = f.either(m, "search", "filter")
	if lm, ok := f.enabled(m, "logPolling", "interval"); ok {
		o.LogPollInterval = DefaultOktaLogPollInterval
		if d, n := f.duration(lm, "interval"); n != nil {
			if d < MinOktaLogPollInterval {
				f.problem(n, lm.at("interval"), "must be at least %v: each poll counts against Okta's rate limit on /api/v1/logs", MinOktaLogPollInterval)
			}
			o.LogPollInterval = d
		}
	}
	return o
}

// checkOktaOrgURL wants the org's own https URL: the Admin Console's -admin host serves no API to tokens.
func checkOktaOrgURL(s string) error {
	if err := checkHTTPS(s, false); err != nil {
		return err
	}
	u, _ := url.Parse(s) // checked by checkHTTPS
	label, _, _ := strings.Cut(u.Hostname(), ".")
	switch {
	case strings.Trim(u.Path, "/") != "":
		return fmt.Errorf("%q has a path: write the org URL alone, such as https://acme.okta.com", s)
	case strings.HasSuffix(label, "-admin"):
		return fmt.Errorf("%q is the Admin Console's URL: write the org URL, without -admin", s)
	}
	return nil
}

func checkOktaToken(v string) error {
	switch {
	case strings.HasPrefix(v, "SSWS "):
		return errors.New("starts with SSWS: write the token alone, the agent adds the SSWS scheme")
	case strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return errors.New("must not contain spaces or control characters: it is sent as `Authorization: SSWS <token>`")
	}
	return nil
}

// checkPrivateKey checks that v is an unencrypted PEM RSA or EC private key (PKCS #8, PKCS #1 or SEC 1).
// Its messages never quote the key.
func checkPrivateKey(v string) error {
	b, _ := pem.Decode([]byte(v))
	if b == nil {
		return errors.New("is not a PEM private key (-----BEGIN PRIVATE KEY----- ...); a JWK must be converted to PEM")
	}
	var key any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return errors.New("is encrypted: give the agent the key without a passphrase")
	default:
		return fmt.Errorf("is a PEM %q block, not a private key", b.Type)
	}
	if err != nil {
		return fmt.Errorf("is a PEM %q block that does not parse as one", b.Type) // x509's message is no help here
	}
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
		return nil
	}
	return fmt.Errorf("is a %T key; the agent signs with RSA or EC keys", key)
}

func (f *file) entra(m mapping, graph *GraphHook, webhooksOK bool) *EntraSource {
	e := &EntraSource{}
	e.TenantID = f.guid(m, "tenantId", "is required: the directory (tenant) id of your Entra ID tenant")
	e.ClientID = f.guid(m, "clientId", "is required: the application (client) id of the app registration with GroupMember.Read.All and User.Read.All (and Group.Read.All for a subscription)")
	e.ClientSecret = f.secret(m, "clientSecret", "is required: set clientSecret or clientSecretFile, a client secret of the app registration")
	if m.has("filter") && m.has("groupIds") {
		f.problem(m.keys["groupIds"], m.at("groupIds"), "set either filter or groupIds, not both")
	} else {
		e.Filter, _ = f.str(m, "filter", "")
		e.GroupIDs = f.groupIDs(m)
	}
	e.AuthorityURL = cmp.Or(f.httpsURL(m, "authorityURL", true), DefaultEntraAuthorityURL)
	e.GraphURL = cmp.Or(f.httpsURL(m, "graphURL", true), DefaultGraphURL)
	e.CatchUpInterval = DefaultEntraCatchUpInterval
	if d, n := f.duration(m, "catchUpInterval"); n != nil {
		if d < 0 || d > 0 && d < time.Minute {
			f.problem(n, m.at("catchUpInterval"), "must be at least 1m (or 0 to disable the catch-up), got %s", d)
		}
		e.CatchUpInterval = d
	}
	sm, ok := f.enabled(m, "subscription", "notificationURL", "clientState", "clientStateFile")
	if !ok {
		return e
	}
	sub := &GraphSubscription{ClientState: f.secret(sm, "clientState", "is required: set clientState or clientStateFile, the secret Graph sends back with every notification")}
	if u, n := f.str(sm, "notificationURL", "is required: the agent's /webhooks/graph URL, such as https://byob.example.com/webhooks/graph"); n != nil {
		if err := checkHTTPS(u, false); err != nil {
			f.problem(n, sm.at("notificationURL"), "%v: Graph delivers notifications over https only", err)
		}
		sub.NotificationURL = u
	}
	f.checkSecret(sm, "clientState", sub.ClientState, func(v string) error {
		if msg := checkClientState(v); msg != "" {
			return errors.New(msg)
		}
		return nil
	})
	switch {
	case !webhooksOK || sub.ClientState.Reveal() == "": // reported already
	case graph == nil:
		f.problem(sm.pos, sm.field, "needs webhooks.graph, with this clientState among its clientStates: Graph delivers the notifications there")
	case !hasSecret(graph.ClientStates, sub.ClientState):
		n, field := sm.secretAt("clientState")
		f.problem(n, field, "is not among webhooks.graph.clientStates: the receiver would reject every notification of this subscription")
	}
	e.Subscription = sub
	return e
}

// hasSecret reports whether s is one of list, comparing in constant time.
func hasSecret(list []Secret, s Secret) bool {
	found := 0
	for _, o := range list {
		found |= subtle.ConstantTimeCompare([]byte(o.Reveal()), []byte(s.Reveal()))
	}
	return found == 1
}

// groupIDs reads Entra's groupIds: distinct GUIDs, at least one.
func (f *file) groupIDs(m mapping) []string {
	items, ok := f.items(m, "groupIds")
	if !ok || !m.has("groupIds") {
		return nil
	}
	if len(items) == 0 {
		f.problem(m.vals["groupIds"], m.at("groupIds"), "must list at least one group id; leave groupIds out to read every group")
	}
	var ids []string
	seen := map[string]*yaml.Node{}
	for i, n := range items {
		field := fmt.Sprintf("%s[%d]", m.at("groupIds"), i)
		if !f.is(n, field, yaml.ScalarNode, "a string") {
			continue
		}
		id, ok := f.expand(n, field)
		first, dup := seen[strings.ToLower(id)]
		switch {
		case !ok:
		case !guidRE.MatchString(id):
			f.problem(n, field, "%q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): the object id of a group", id)
		case dup:
			f.problem(n, field, "group id %q is listed already at line %d", id, first.Line)
		default:
			seen[strings.ToLower(id)] = n
			ids = append(ids, id)
		}
	}
	return ids
}

var googleCustomerRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

func (f *file) google(m mapping) *GoogleSource {
	g := &GoogleSource{Customer: DefaultGoogleCustomer}
	g.ServiceAccountKey = f.secret(m, "serviceAccountKey", "is required: set serviceAccountKey or serviceAccountKeyFile, the JSON key of a service account with domain-wide delegation")
	f.checkSecret(m, "serviceAccountKey", g.ServiceAccountKey, checkDelegationKey)
	if s, n := f.str(m, "subject", "is required: the email of a Workspace admin the service account acts as"); n != nil {
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			f.problem(n, m.at("subject"), "%q is not an email address such as admin@acme.com", s)
		}
		g.Subject = s
	}
	if c, n := f.str(m, "customer", ""); n != nil {
		if !googleCustomerRE.MatchString(c) {
			f.problem(n, m.at("customer"), "%q is not a customer id such as C03az79cb, or %s", c, DefaultGoogleCustomer)
		}
		g.Customer = c
	}
	g.Query, _ = f.str(m, "query", "")
	g.BaseURL = cmp.Or(f.httpsURL(m, "baseURL", true), DefaultGoogleBaseURL)
	return g
}

// checkDelegationKey checks a service account key the agent signs its own token requests with: it needs
// a usable private key and token_uri, which a storage credential does not.
func checkDelegationKey(v string) error {
	k, err := parseServiceAccountKey(v, "token_uri")
	if err != nil {
		return err
	}
	if err := checkPrivateKey(k.PrivateKey); err != nil {
		return fmt.Errorf("has a private_key that %v", err)
	}
	if err := checkHTTPS(k.TokenURI, true); err != nil {
		return fmt.Errorf("has a token_uri that is not usable: %v", err)
	}
	return nil
}

// either reads two optional strings of which at most one may be set; the second is reported and
// dropped when both are.
func (f *file) either(m mapping, a, b string) (string, string) {
	av, _ := f.str(m, a, "")
	if m.has(a) && m.has(b) {
		f.problem(m.keys[b], m.at(b), "set either %s or %s, not both", a, b)
		return av, ""
	}
	bv, _ := f.str(m, b, "")
	return av, bv
}

// httpsURL reads an optional URL that checkHTTPS accepts, without a trailing slash; "" when absent,
// empty or bad.
func (f *file) httpsURL(m mapping, key string, loopback bool) string {
	u, n := f.str(m, key, "")
	if n == nil || u == "" {
		return ""
	}
	if err := checkHTTPS(u, loopback); err != nil {
		f.problem(n, m.at(key), "%v", err)
		return ""
	}
	return strings.TrimRight(u, "/")
}

// checkHTTPS is checkURL that also wants https, except, with loopback, plain http to a loopback IP
// address (a test server).
func checkHTTPS(s string, loopback bool) error {
	if err := checkURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s) // checked by checkURL
	ip := net.ParseIP(u.Hostname())
	switch {
	case u.Scheme == "https", loopback && ip != nil && ip.IsLoopback():
		return nil
	case loopback:
		return fmt.Errorf("%q is not an https:// URL (plain http only to a loopback address such as 127.0.0.1, for tests)", s)
	}
	return fmt.Errorf("%q is not an https:// URL", s)
}

func (f *file) members(root mapping) Members {
	mb := Members{Mode: MembersOwned, MaxRemoveShare: DefaultMaxRemoveShare, KeepOnOrphan: true}
	m, ok := f.section(root, "members", "", "sync", "mode", "createUsers", "maxRemoveShare", "keepOnOrphan")
	if !ok {
		return mb
	}
	if v, n := f.boolean(m, "sync"); n != nil {
		mb.Sync = v
	}
	switch v, n := f.enum(m, "mode", "", MembersOwned, MembersAuthoritative); {
	case n != nil && v == "":
		f.problem(n, m.at("mode"), "must not be empty; leave mode out for %s", MembersOwned)
	case n != nil:
		mb.Mode = v
	}
	if v, n := f.boolean(m, "createUsers"); n != nil {
		mb.CreateUsers = v
	}
	if x, n := f.number(m, "maxRemoveShare"); n != nil {
		if !(x > 0 && x <= 1) { // also false for NaN
			f.problem(n, m.at("maxRemoveShare"), "must be more than 0 and at most 1 (a share of a team's members: 0.5 is half), got %v", x)
		}
		mb.MaxRemoveShare = x
	}
	if v, n := f.boolean(m, "keepOnOrphan"); n != nil {
		mb.KeepOnOrphan = v
	}
	return mb
}
