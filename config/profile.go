package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/team"
)

// profileDef is a profile as loaded, with what team resolution needs to know about it.
type profileDef struct {
	Profile
	// renderable says the provider and templates are valid, so that its teams' storage can be
	// computed; otherwise teams skip it rather than repeat the profile's problem once per team.
	renderable bool
	field      string
	bucketNode *yaml.Node
}

var profileNameRE = regexp.MustCompile(`^[a-z0-9-]+$`)

var profileKeys = []string{
	"provider", "topology", "region", "endpoint", "pathStyle", "credentials", "bucket", "path",
	"principal", "kms", "awsExternalId", "adoptExisting", "requireRegistered", "project",
	"softDeleteDays", "account", "tenantId", "clientId", "orgId", "orgWideAccess", "timeout", "caFile",
}

// providerOnly lists the profile keys that only some providers use; every other key applies to all.
var providerOnly = []struct {
	key       string
	providers []string
}{
	{"pathStyle", []string{team.ProviderAWS, team.ProviderS3Compatible}},
	{"principal", []string{team.ProviderAWS, team.ProviderCoreWeave, team.ProviderGCS}},
	{"kms", []string{team.ProviderAWS, team.ProviderS3Compatible}},
	{"awsExternalId", []string{team.ProviderAWS}},
	{"project", []string{team.ProviderGCS}},
	{"softDeleteDays", []string{team.ProviderGCS, team.ProviderAzure}},
	{"account", []string{team.ProviderAzure}},
	{"tenantId", []string{team.ProviderAzure}},
	{"clientId", []string{team.ProviderAzure}},
	{"orgId", []string{team.ProviderCoreWeave}},
	{"orgWideAccess", []string{team.ProviderCoreWeave}},
}

// list joins words as a sentence does: "a", "a and b", "a, b and c" (conj "and" or "or").
func list(words []string, conj string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}

func (f *file) profiles(root mapping, deployment string) map[string]*profileDef {
	out := map[string]*profileDef{}
	n := root.value("profiles")
	if n == nil {
		f.missing(root, "profiles", "is required: define at least one storage profile")
		return out
	}
	ps, ok := f.pairs(n, "profiles")
	if !ok {
		return out
	}
	if len(ps) == 0 {
		f.problem(n, "profiles", "define at least one storage profile")
	}
	var defs []*profileDef // in file order
	for _, p := range ps {
		name := p.key.Value
		field := join("profiles", name)
		if !profileNameRE.MatchString(name) {
			f.problem(p.key, field, "profile name %q may contain only lowercase letters, digits and '-'", name)
		}
		if d := f.profile(name, p.key, p.val, field, deployment); d != nil {
			out[name] = d
			defs = append(defs, d)
		}
	}
	f.sharedOnce(defs)
	return out
}

// sharedOnce checks that no two shared profiles name the same bucket: the bucket's ownership mark names
// one profile. (A shared bucket that a per-team profile also gives a team is found when teams resolve.)
func (f *file) sharedOnce(defs []*profileDef) {
	owner := map[storageKey]*profileDef{}
	for _, d := range defs {
		if !d.renderable || d.Topology != TopologyShared {
			continue
		}
		k := keyOf(team.Storage{Provider: d.Provider, Endpoint: d.Endpoint, Account: d.Account, Bucket: d.sharedBucket})
		if o, dup := owner[k]; dup {
			f.problem(d.bucketNode, d.field+".bucket", "bucket %q is already the shared bucket of profile %q: a shared bucket belongs to one profile", d.sharedBucket, o.Name)
			d.renderable = false
			continue
		}
		owner[k] = d
	}
}

func (f *file) profile(name string, key, n *yaml.Node, field, deployment string) *profileDef {
	m, ok := f.mapping(n, field, profileKeys...)
	if !ok {
		return nil
	}
	m.pos = key
	d := &profileDef{Profile: Profile{Name: name, Topology: TopologyPerTeam}, field: field}
	p := &d.Profile
	p.Timeout = f.timeout(m)
	p.CAFile = f.caFile(m)
	prov, provNode := f.enum(m, "provider", mustSet, team.Providers...)
	p.Provider = prov
	topology, tn := f.enum(m, "topology", "", TopologyPerTeam, TopologyShared)
	topologyOK := tn != nil || !m.has("topology")
	if topology != "" {
		p.Topology = topology
	}
	if deployment == DeploymentMultiTenant {
		switch prov {
		case team.ProviderS3Compatible:
			f.problem(provNode, m.at("provider"), "W&B multi-tenant cloud does not accept s3-compatible team storage (docs/wandb.md); use aws, or a dedicated or self-managed deployment")
		case team.ProviderAzure:
			f.problem(provNode, m.at("provider"), "W&B multi-tenant cloud does not support Azure team storage (docs/wandb.md); use aws, gcs or coreweave, or a dedicated or self-managed deployment")
		}
	}
	switch prov {
	case team.ProviderAWS, team.ProviderS3Compatible:
		f.s3Profile(m, p, deployment)
	case team.ProviderCoreWeave:
		f.coreweaveProfile(m, p, deployment)
	case team.ProviderGCS:
		f.gcsProfile(m, p, deployment)
	case team.ProviderAzure:
		f.azureProfile(m, p)
	}
	if prov != "" {
		for _, k := range providerOnly {
			if m.has(k.key) && !slices.Contains(k.providers, prov) {
				noun := "provider"
				if len(k.providers) > 1 {
					noun = "providers"
				}
				f.problem(m.keys[k.key], m.at(k.key), "is only used with %s %s", noun, list(k.providers, "and"))
			}
		}
	}
	templatesOK := f.templates(m, d)
	d.renderable = prov != "" && topologyOK && templatesOK

	if a, n := f.boolean(m, "adoptExisting"); n != nil {
		p.AdoptExisting = a
	}
	if r, n := f.boolean(m, "requireRegistered"); n != nil {
		if r && deployment == DeploymentMultiTenant {
			f.problem(n, m.at("requireRegistered"), "W&B multi-tenant cloud needs no bucket registration: leave requireRegistered out")
		}
		p.RequireRegistered = r
	}
	return d
}

// templates reads the bucket and path templates and, for a shared profile, checks that the bucket does
// not depend on the team and the path does. It reports whether teams' storage can be rendered.
func (f *file) templates(m mapping, d *profileDef) bool {
	p := &d.Profile
	shared := p.Topology == TopologyShared
	bucketOK := false
	ifMissing := `is required: a template such as "wandb-{{ .Team }}"`
	if shared {
		ifMissing = "is required: the name of the bucket every team of the profile shares"
	}
	if t, tn := f.str(m, "bucket", ifMissing); tn != nil {
		p.bucketText, d.bucketNode = t, tn
		p.bucket, bucketOK = f.template(tn, m.at("bucket"), p.Name, t)
	}
	pathOK := !shared
	var pathNode *yaml.Node
	if t, tn := f.str(m, "path", when(shared, `is required with topology shared: a prefix per team such as "teams/{{ .Team }}"`)); tn != nil && t != "" {
		p.pathText, pathNode = t, tn
		p.path, pathOK = f.template(tn, m.at("path"), p.Name, t)
	}
	if !shared || !bucketOK || !pathOK {
		return bucketOK && pathOK
	}

	// Two sample teams: the shared bucket must come out the same, the paths different. Each real team
	// is checked again when its storage is rendered (a template may test the team's name).
	samples := [2]string{"team", "other-team"}
	var buckets, paths [2]string
	for i, s := range samples {
		var err error
		data := templateData(s, p.Name)
		if buckets[i], err = render(p.bucket, data); err != nil {
			f.problem(d.bucketNode, m.at("bucket"), "template %q fails for team %q: %v", p.bucketText, s, err)
			return false
		}
		if paths[i], err = render(p.path, data); err != nil {
			f.problem(pathNode, m.at("path"), "template %q fails for team %q: %v", p.pathText, s, err)
			return false
		}
	}
	ok := true
	switch {
	case buckets[0] != buckets[1]:
		f.problem(d.bucketNode, m.at("bucket"), "with topology shared every team gets the same bucket, so the template must not depend on the team: it gives %q for team %q and %q for team %q",
			buckets[0], samples[0], buckets[1], samples[1])
		ok = false
	case p.Provider != "":
		if err := team.ValidateBucketName(p.Provider, buckets[0]); err != nil {
			f.problem(d.bucketNode, m.at("bucket"), "%v", err)
			ok = false
		}
	}
	if paths[0] == paths[1] {
		f.problem(pathNode, m.at("path"), "with topology shared every team needs a path of its own, so the template must use {{ .Team }}: it gives %q for every team", paths[0])
		ok = false
	}
	p.sharedBucket = buckets[0]
	return ok
}

// template parses a bucket or path template and tries it once, so that a mistake such as an unknown
// field is reported here, once, rather than for every team.
func (f *file) template(n *yaml.Node, field, profile, text string) (*template.Template, bool) {
	t, err := template.New(field).Option("missingkey=error").Parse(text)
	if err != nil {
		f.problem(n, field, "invalid template %q: %v", text, err)
		return nil, false
	}
	if _, err := render(t, templateData("team", profile)); err != nil {
		f.problem(n, field, "template %q fails: %v (it may use .Team and .Profile)", text, err)
		return nil, false
	}
	return t, true
}

// endpoint returns the endpoint URL of m; "" and a nil node when it is absent, empty or bad.
func (f *file) endpoint(m mapping, ifMissing string) (string, *yaml.Node) {
	e, n := f.str(m, "endpoint", ifMissing)
	if n == nil || e == "" {
		return "", nil
	}
	if err := checkURL(e); err != nil {
		f.problem(n, m.at("endpoint"), "%v", err)
		return "", nil
	}
	return e, n
}

// s3Profile reads the settings of aws and s3-compatible profiles.
func (f *file) s3Profile(m mapping, p *Profile, deployment string) {
	aws, s3c := p.Provider == team.ProviderAWS, p.Provider == team.ProviderS3Compatible
	p.Region, _ = f.str(m, "region", mustSet)
	p.Endpoint, _ = f.endpoint(m, when(s3c, "is required for provider s3-compatible"))
	// S3-compatible servers are commonly reached by IP or a name without wildcard DNS.
	p.PathStyle = s3c
	if ps, n := f.boolean(m, "pathStyle"); n != nil {
		p.PathStyle = ps
	}
	p.Credentials = f.s3Credentials(m, when(s3c, "is required for provider s3-compatible"), true)
	if aws {
		p.PrincipalARN = f.principal(m, awsPrincipal, deployment)
		p.AWSExternalID, _ = f.str(m, "awsExternalId", "")
	}
	p.KMS = f.kms(m, p.Provider, p.Region)
}

var coreweaveOrgRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// coreweaveProfile reads the settings of a coreweave profile.
func (f *file) coreweaveProfile(m mapping, p *Profile, deployment string) {
	p.Region, _ = f.str(m, "region", "")
	p.Endpoint = DefaultCoreWeaveEndpoint
	if e, n := f.endpoint(m, ""); n != nil {
		u, _ := url.Parse(e) // checked by endpoint
		switch {
		case u.Hostname() == "cwlota.com" || strings.HasSuffix(u.Hostname(), ".cwlota.com"):
			f.problem(n, m.at("endpoint"), "W&B does not support CoreWeave LOTA endpoints; use %s", DefaultCoreWeaveEndpoint)
		case u.Scheme != "https":
			f.problem(n, m.at("endpoint"), "must be an https:// URL: CoreWeave AI Object Storage is reached over TLS")
		}
		p.Endpoint = e
	}
	p.Credentials = f.s3Credentials(m, "is required for provider coreweave: an access key of the CoreWeave organization", false)
	p.OrgID, _ = f.str(m, "orgId", "is required for provider coreweave: your W&B organization id or customer namespace (the wandb:OrgID condition of the bucket policy)")
	p.PrincipalARN = f.principal(m, coreweavePrincipalRule, deployment)
	if id, n := f.str(m, "orgWideAccess", ""); n != nil && id != "" {
		if !coreweaveOrgRE.MatchString(id) {
			f.problem(n, m.at("orgWideAccess"), "%q is not a CoreWeave organization id (letters, digits and '-')", id)
		}
		p.OrgWideAccess = id
	}
}

var (
	// awsRegionRE matches AWS region names (us-east-1), which GCS locations never look like (us-east1).
	awsRegionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	gcpProjectIDRE = regexp.MustCompile(`^([a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
)

// gcsProfile reads the settings of a gcs profile.
func (f *file) gcsProfile(m mapping, p *Profile, deployment string) {
	if r, n := f.str(m, "region", "is required for provider gcs: the bucket location, such as us-east1, nam4 or US"); n != nil {
		if awsRegionRE.MatchString(r) {
			f.problem(n, m.at("region"), "%q is an AWS region name; GCS locations look like us-east1, nam4 or US", r)
		}
		p.Region = r
	}
	if id, n := f.str(m, "project", "is required for provider gcs: the id of the Google Cloud project that holds the buckets"); n != nil {
		if !gcpProjectIDRE.MatchString(id) {
			f.problem(n, m.at("project"), "%q is not a Google Cloud project id (6 to 30 lowercase letters, digits and '-', starting with a letter)", id)
		}
		p.Project = id
	}
	p.Endpoint, _ = f.endpoint(m, "")
	p.ServiceAccount = f.principal(m, gcsPrincipalRule, deployment)
	p.GCSCredentialsJSON = f.gcsCredentials(m)
	p.SoftDeleteDays = f.softDeleteDays(m, 7, 90,
		`GCS keeps soft-deleted objects 7 to 90 days, and 0 turns soft delete off, which W&B refuses: "Bucket does not have soft deletion enabled"`)
}

var (
	azureAccountRE = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	guidRE         = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// azureProfile reads the settings of an azure profile.
func (f *file) azureProfile(m mapping, p *Profile) {
	p.Region, _ = f.str(m, "region", "")
	if a, n := f.str(m, "account", "is required for provider azure: the storage account that holds the containers"); n != nil {
		if !azureAccountRE.MatchString(a) {
			f.problem(n, m.at("account"), "%q is not a storage account name (3 to 24 lowercase letters and digits)", a)
		}
		p.Account = a
	}
	if e, n := f.endpoint(m, ""); n != nil {
		p.Endpoint = e
	} else if p.Account != "" {
		p.Endpoint = "https://" + p.Account + ".blob.core.windows.net/"
	}
	p.TenantID = f.guid(m, "tenantId", "is required for provider azure: the Entra ID tenant W&B's storageBucket.azureTenantId names")
	p.ClientID = f.guid(m, "clientId", "is required for provider azure: the client id of the managed identity W&B uses (storageBucket.azureClientId)")
	f.azureCredentials(m, p)
	p.SoftDeleteDays = f.softDeleteDays(m, 1, 365,
		"Azure keeps soft-deleted blobs 1 to 365 days, and W&B's artifact garbage collection needs blob soft delete")
}

func (f *file) guid(m mapping, key, ifMissing string) string {
	v, n := f.str(m, key, ifMissing)
	if n != nil && !guidRE.MatchString(v) {
		f.problem(n, m.at(key), "%q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", v)
	}
	return v
}

// softDeleteDays returns softDeleteDays (default DefaultSoftDeleteDays), checked against lo..hi; why
// explains the bounds.
func (f *file) softDeleteDays(m mapping, lo, hi int, why string) int {
	d, n := f.integer(m, "softDeleteDays")
	if n == nil {
		return DefaultSoftDeleteDays
	}
	if d < lo || d > hi {
		f.problem(n, m.at("softDeleteDays"), "must be between %d and %d, got %d: %s", lo, hi, d, why)
	}
	return d
}

// s3Credentials reads the S3 API credentials of aws, s3-compatible and coreweave profiles; session
// allows a session token (AWS STS credentials).
func (f *file) s3Credentials(pm mapping, ifMissing string, session bool) *Credentials {
	keys := []string{"accessKeyId", "secretAccessKey", "secretAccessKeyFile"}
	if session {
		keys = append(keys, "sessionToken", "sessionTokenFile")
	}
	m, ok := f.section(pm, "credentials", ifMissing, keys...)
	if !ok {
		return nil
	}
	c := &Credentials{}
	c.AccessKeyID, _ = f.str(m, "accessKeyId", mustSet)
	c.SecretAccessKey = f.secret(m, "secretAccessKey", "is required: set secretAccessKey or secretAccessKeyFile")
	if session {
		c.SessionToken = f.secret(m, "sessionToken", "")
	}
	return c
}

// gcsCredentials reads an optional service account key; unset means Application Default Credentials.
func (f *file) gcsCredentials(pm mapping) Secret {
	m, ok := f.section(pm, "credentials", "", "serviceAccountKey", "serviceAccountKeyFile")
	if !ok {
		return Secret{}
	}
	s := f.secret(m, "serviceAccountKey", "is required: set serviceAccountKey or serviceAccountKeyFile, or leave credentials out to use Application Default Credentials")
	// W&B's storage address needs client_email and private_key.
	f.checkSecret(m, "serviceAccountKey", s, func(v string) error { _, err := parseServiceAccountKey(v); return err })
	return s
}

// serviceAccountKey is what the agent reads of a Google service account key.
type serviceAccountKey struct {
	Type        string `json:"type"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
	TokenURI    string `json:"token_uri"`
}

// parseServiceAccountKey parses a Google service account key that has client_email, private_key and
// the other fields need names. Its messages never quote the key.
func parseServiceAccountKey(v string, need ...string) (serviceAccountKey, error) {
	var k serviceAccountKey
	fields := append([]string{"client_email", "private_key"}, need...)
	if err := json.Unmarshal([]byte(v), &k); err != nil {
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			return k, fmt.Errorf("is not valid JSON (error at byte %d): a service account key is the JSON file Google issues; use serviceAccountKeyFile to read one from a file", se.Offset)
		}
		return k, fmt.Errorf("is not a service account key: expected a JSON object with the strings %s", list(fields, "and"))
	}
	values := map[string]string{"client_email": k.ClientEmail, "private_key": k.PrivateKey, "token_uri": k.TokenURI}
	var lacks []string
	for _, name := range fields {
		if values[name] == "" {
			lacks = append(lacks, name)
		}
	}
	switch {
	case k.Type != "" && k.Type != "service_account":
		return k, errors.New(`is not a service account key: its "type" is not "service_account"`)
	case lacks != nil:
		return k, fmt.Errorf("is not a service account key: it has no %s", list(lacks, "or"))
	}
	return k, nil
}

const azureCredentialChoice = "set one of accountKey (or accountKeyFile), connectionString (or connectionStringFile) or identity: true"

// azureCredentials reads how the agent authenticates to the storage account: exactly one way.
func (f *file) azureCredentials(pm mapping, p *Profile) {
	m, ok := f.section(pm, "credentials", "is required for provider azure: "+azureCredentialChoice,
		"accountKey", "accountKeyFile", "connectionString", "connectionStringFile", "identity")
	if !ok {
		return
	}
	ways := 0
	if m.has("accountKey") || m.has("accountKeyFile") {
		ways++
		p.AccountKey = f.secret(m, "accountKey", "")
		f.checkSecret(m, "accountKey", p.AccountKey, func(k string) error {
			if _, err := base64.StdEncoding.DecodeString(k); err != nil {
				return errors.New("is not base64: a storage account key is the base64 text Azure shows as key1 or key2")
			}
			return nil
		})
	}
	if m.has("connectionString") || m.has("connectionStringFile") {
		ways++
		p.ConnectionString = f.secret(m, "connectionString", "")
		f.checkSecret(m, "connectionString", p.ConnectionString, func(cs string) error { return checkConnectionString(cs, p.Account) })
	}
	if id, n := f.boolean(m, "identity"); id || n == nil && m.has("identity") { // a bad value is reported already
		ways++
		p.UseIdentity = id
	}
	switch {
	case ways == 0:
		f.problem(m.pos, m.field, "%s", azureCredentialChoice)
	case ways > 1:
		f.problem(m.pos, m.field, "set only one of accountKey, connectionString and identity: true")
	}
}

// checkConnectionString checks the form of an Azure Storage connection string and that it names the
// profile's account. Its messages never quote the string.
func checkConnectionString(cs, account string) error {
	var name string
	for _, part := range strings.Split(strings.TrimSuffix(cs, ";"), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return errors.New("is not an Azure Storage connection string (Key=Value pairs separated by ';')")
		}
		if strings.EqualFold(strings.TrimSpace(k), "AccountName") {
			name = v
		}
	}
	if name != "" && account != "" && name != account {
		return fmt.Errorf("names storage account %q, but the profile's account is %q", name, account)
	}
	return nil
}

// principalRule is how a provider's `principal` is read: presets by deployment, or an explicit value.
type principalRule struct {
	presets     map[string]string // deployment -> W&B's principal
	re          *regexp.Regexp    // an explicit value
	what        string            // what an explicit value is, for messages
	selfManaged string            // what to set when self-managed W&B has no preset
}

var (
	awsPrincipal = principalRule{
		presets:     map[string]string{DeploymentMultiTenant: principalMultiTenant, DeploymentDedicated: principalDedicated},
		re:          regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(root|role/\S+|user/\S+)$`),
		what:        "an IAM principal ARN (arn:aws:iam::<account>:role/<name>)",
		selfManaged: "the ARN of the IAM role or user your W&B server runs as",
	}
	coreweavePrincipalRule = principalRule{
		presets: map[string]string{DeploymentMultiTenant: coreweavePrincipalMultiTenant, DeploymentDedicated: coreweavePrincipal,
			DeploymentSelfManaged: coreweavePrincipal},
		re:   regexp.MustCompile(`^arn:aws:iam::[A-Za-z0-9-]+:\S+$`),
		what: "a CoreWeave principal ARN (" + coreweavePrincipal + ")",
	}
	gcsPrincipalRule = principalRule{
		presets:     map[string]string{DeploymentMultiTenant: gcsServiceAccountMultiTenant, DeploymentDedicated: gcsServiceAccountDedicated},
		re:          regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`),
		what:        "a service account email (name@project.iam.gserviceaccount.com)",
		selfManaged: "the email of the service account your W&B server runs as",
	}
)

// principal returns the W&B principal a profile grants access: the preset of wandb.deployment unless
// `principal` names a deployment or gives the principal itself.
func (f *file) principal(m mapping, r principalRule, deployment string) string {
	v, n := f.str(m, "principal", "")
	if n == nil && m.has("principal") { // bad, already reported
		return ""
	}
	preset := v
	if preset == "" {
		preset = deployment
	}
	if w, ok := r.presets[preset]; ok {
		return w
	}
	switch {
	case v == "" && deployment == DeploymentSelfManaged:
		f.missing(m, "principal", "is required when wandb.deployment is self-managed: "+r.selfManaged)
	case v == "": // no valid deployment, reported already
	case !r.re.MatchString(v):
		var names []string
		for _, d := range []string{DeploymentMultiTenant, DeploymentDedicated, DeploymentSelfManaged} {
			if _, ok := r.presets[d]; ok {
				names = append(names, d)
			}
		}
		f.problem(n, m.at("principal"), "%q is not %s or %s", v, strings.Join(names, ", "), r.what)
	default:
		return v
	}
	return ""
}

var (
	kmsKeyARNRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:kms:([a-z0-9-]+):[0-9]{12}:key/[A-Za-z0-9-]+$`)
	accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
)

func (f *file) kms(pm mapping, provider, region string) KMS {
	aws := provider == team.ProviderAWS
	m, ok := f.section(pm, "kms", when(aws, "is required for provider aws: W&B requires SSE-KMS with a customer key (set keyArn, or create: true)"),
		"keyArn", "create", "endpoint", "accountId")
	if !ok {
		return KMS{}
	}
	var k KMS
	arn, an := f.str(m, "keyArn", "")
	create, cn := f.boolean(m, "create")
	k.Create = create
	switch {
	case an != nil && arn != "" && create:
		f.problem(m.keys["create"], m.at("create"), "set either keyArn or create: true, not both")
	case !create && !m.has("keyArn") && (cn != nil || !m.has("create")):
		f.problem(m.pos, m.field, "set keyArn, or create: true")
	case !k.Create && an != nil && arn == "":
		f.problem(an, m.at("keyArn"), "must not be empty")
	case aws && arn != "":
		// Only AWS key ids are ARNs; S3-compatible servers name their keys as their KMS does.
		match := kmsKeyARNRE.FindStringSubmatch(arn)
		switch {
		case match == nil:
			f.problem(an, m.at("keyArn"), "%q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>)", arn)
		case region != "" && match[2] != region:
			f.problem(an, m.at("keyArn"), "the key is in region %s but the profile's region is %s; S3 needs the key in the bucket's region", match[2], region)
		}
	}
	k.KeyARN = arn
	if id, in := f.str(m, "accountId", ""); in != nil && id != "" {
		if !accountIDRE.MatchString(id) {
			f.problem(in, m.at("accountId"), "%q is not an AWS account id (12 digits)", id)
		}
		k.AccountID = id
	}
	k.Endpoint, _ = f.endpoint(m, "")
	return k
}
