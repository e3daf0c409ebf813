package config

import (
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

// LoadOptions is Load's only access to the outside world. The caller decides what they are
// (os.LookupEnv and os.ReadFile in cmd/agent; fakes in tests).
type LoadOptions struct {
	LookupEnv func(name string) (string, bool)
	ReadFile  func(path string) ([]byte, error)
}

// Load reads, resolves and validates the configuration file at path and the teams file it may name.
// When anything is wrong the error is an *Errors listing every problem, and the Config is nil.
func Load(path string, opts LoadOptions) (*Config, error) {
	if opts.LookupEnv == nil || opts.ReadFile == nil {
		return nil, errors.New("config: LoadOptions.LookupEnv and LoadOptions.ReadFile must both be set")
	}
	l := &loader{opts: opts}
	cfg := l.load(path)
	if len(l.probs) > 0 {
		sortProblems(l.probs, l.files)
		return nil, &Errors{Problems: l.probs}
	}
	return cfg, nil
}

var topKeys = []string{"wandb", "state", "sync", "defaultProfile", "profiles", "teams", "teamsFile"}

func (l *loader) load(path string) *Config {
	f := l.file(path)
	data, err := l.read(path)
	if err != nil {
		f.problem(nil, "", "cannot read the configuration file: %v", err)
		return nil
	}
	root := f.parse(data)
	if root == nil {
		return nil
	}
	m, ok := f.mapping(root, "", topKeys...)
	if !ok {
		return nil
	}
	cfg := &Config{
		File:  path,
		Wandb: f.wandb(m),
		State: f.state(m),
		Sync:  f.sync(m),
	}
	profiles := f.profiles(m, cfg.Wandb.Deployment)
	cfg.DefaultProfile = f.defaultProfile(m, profiles)

	teams := f.teamList(m, "")
	if name, n := f.str(m, "teamsFile", ""); n != nil && name != "" {
		teams = append(teams, f.teamsFile(n, name)...)
	}
	cfg.teams = resolveTeams(teams, profiles, cfg.DefaultProfile)

	cfg.profiles = make(map[string]Profile, len(profiles))
	for name, p := range profiles {
		cfg.profiles[name] = p.Profile
	}
	return cfg
}

func (f *file) wandb(root mapping) Wandb {
	w := Wandb{Timeout: DefaultTimeout}
	m, ok := f.section(root, "wandb", mustSet, "scimURL", "deployment", "auth", "timeout")
	if !ok {
		return w
	}
	if u, n := f.str(m, "scimURL", mustSet); n != nil {
		if err := checkURL(u); err != nil {
			f.problem(n, m.at("scimURL"), "%v", err)
		}
		// Without the slash, the client appends "/Groups" and the like directly.
		w.SCIMURL = strings.TrimRight(u, "/")
	}
	w.Deployment, _ = f.enum(m, "deployment", mustSet, DeploymentMultiTenant, DeploymentDedicated, DeploymentSelfManaged)
	if d, n := f.duration(m, "timeout"); n != nil {
		if d <= 0 {
			f.problem(n, m.at("timeout"), "must be positive, got %s", d)
		}
		w.Timeout = d
	}
	am, ok := f.section(m, "auth", mustSet, "mode", "username", "apiKey", "apiKeyFile")
	if !ok {
		return w
	}
	w.Auth.Mode, _ = f.enum(am, "mode", mustSet, AuthBearer, AuthBasicUser, AuthBasicServiceAccount)
	user, un := f.str(am, "username", when(w.Auth.Mode == AuthBasicUser, "is required when mode is basic-user"))
	switch {
	case w.Auth.Mode != "" && w.Auth.Mode != AuthBasicUser && am.has("username"):
		f.problem(am.keys["username"], am.at("username"), "is only used when mode is basic-user")
	case un != nil && strings.Contains(user, ":"):
		// HTTP Basic separates user and password with the first colon (RFC 7617).
		f.problem(un, am.at("username"), "must not contain ':'")
	}
	w.Auth.Username = user
	w.Auth.APIKey = f.secret(am, "apiKey", "is required: set apiKey or apiKeyFile")
	return w
}

// checkURL accepts an absolute http(s) URL without credentials, query or fragment. Its messages never
// repeat a URL that holds credentials.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("not a valid URL: %w", err)
	}
	switch {
	case u.User != nil:
		return errors.New("the URL must not contain a user name or password")
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or fragment", s)
	}
	return nil
}

func (f *file) state(root mapping) State {
	s := State{Path: f.resolve(DefaultStatePath)}
	m, ok := f.section(root, "state", "", "path")
	if !ok {
		return s
	}
	if p, n := f.str(m, "path", ""); n != nil && p != "" {
		s.Path = f.resolve(p)
	}
	return s
}

func (f *file) sync(root mapping) Sync {
	s := Sync{Concurrency: DefaultConcurrency, DriftCheckInterval: DefaultDriftCheckInterval}
	m, ok := f.section(root, "sync", "", "concurrency", "driftCheckInterval")
	if !ok {
		return s
	}
	if c, n := f.integer(m, "concurrency"); n != nil {
		if c < 1 || c > MaxConcurrency {
			f.problem(n, m.at("concurrency"), "must be between 1 and %d, got %d", MaxConcurrency, c)
		}
		s.Concurrency = c
	}
	if d, n := f.duration(m, "driftCheckInterval"); n != nil {
		if d < 0 {
			f.problem(n, m.at("driftCheckInterval"), "must not be negative (0 disables the drift check), got %s", d)
		}
		s.DriftCheckInterval = d
	}
	return s
}

// profileDef is a profile as loaded, with what team resolution needs to know about it.
type profileDef struct {
	Profile
	// renderable says the provider and templates are valid, so that its teams' storage can be
	// computed; otherwise teams skip it rather than repeat the profile's problem once per team.
	renderable bool
}

var profileNameRE = regexp.MustCompile(`^[a-z0-9-]+$`)

var profileKeys = []string{
	"provider", "region", "endpoint", "pathStyle", "credentials", "bucket", "path",
	"principal", "kms", "awsExternalId", "adoptExisting",
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
	for _, p := range ps {
		name := p.key.Value
		field := join("profiles", name)
		if !profileNameRE.MatchString(name) {
			f.problem(p.key, field, "profile name %q may contain only lowercase letters, digits and '-'", name)
		}
		if d := f.profile(name, p.key, p.val, field, deployment); d != nil {
			out[name] = d
		}
	}
	return out
}

var (
	principalRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(root|role/\S+|user/\S+)$`)
	kmsKeyARNRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:kms:([a-z0-9-]+):[0-9]{12}:key/[A-Za-z0-9-]+$`)
)

func (f *file) profile(name string, key, n *yaml.Node, field, deployment string) *profileDef {
	m, ok := f.mapping(n, field, profileKeys...)
	if !ok {
		return nil
	}
	m.pos = key
	d := &profileDef{Profile: Profile{Name: name}}
	p := &d.Profile
	prov, provNode := f.enum(m, "provider", mustSet, team.ProviderAWS, team.ProviderS3Compatible)
	p.Provider = prov
	aws, s3c := prov == team.ProviderAWS, prov == team.ProviderS3Compatible
	if s3c && deployment == DeploymentMultiTenant {
		f.problem(provNode, m.at("provider"), "W&B multi-tenant cloud does not accept s3-compatible team storage (docs/wandb.md); use aws, or a dedicated or self-managed deployment")
	}
	p.Region, _ = f.str(m, "region", mustSet)
	if e, en := f.str(m, "endpoint", when(s3c, "is required for provider s3-compatible")); en != nil && e != "" {
		if err := checkURL(e); err != nil {
			f.problem(en, m.at("endpoint"), "%v", err)
		}
		p.Endpoint = e
	}
	// S3-compatible servers are commonly reached by IP or a name without wildcard DNS.
	p.PathStyle = s3c
	if ps, n := f.boolean(m, "pathStyle"); n != nil {
		p.PathStyle = ps
	}
	p.Credentials = f.credentials(m, s3c)

	bucketOK := false
	if t, tn := f.str(m, "bucket", "is required: a template such as \"wandb-{{ .Team }}\""); tn != nil {
		p.bucketText = t
		p.bucket, bucketOK = f.template(tn, m.at("bucket"), name, t)
	}
	pathOK := true
	if t, tn := f.str(m, "path", ""); tn != nil && t != "" {
		p.pathText = t
		p.path, pathOK = f.template(tn, m.at("path"), name, t)
	}
	d.renderable = prov != "" && bucketOK && pathOK

	for _, key := range []string{"principal", "awsExternalId"} {
		if s3c && m.has(key) {
			f.problem(m.keys[key], m.at(key), "is only used with provider aws")
		}
	}
	if aws {
		p.PrincipalARN = f.principal(m, deployment)
		p.AWSExternalID, _ = f.str(m, "awsExternalId", "")
	}
	p.KMS = f.kms(m, prov, p.Region)
	if a, n := f.boolean(m, "adoptExisting"); n != nil {
		p.AdoptExisting = a
	}
	return d
}

func (f *file) credentials(pm mapping, required bool) *Credentials {
	m, ok := f.section(pm, "credentials", when(required, "is required for provider s3-compatible"),
		"accessKeyId", "secretAccessKey", "secretAccessKeyFile", "sessionToken", "sessionTokenFile")
	if !ok {
		return nil
	}
	c := &Credentials{}
	c.AccessKeyID, _ = f.str(m, "accessKeyId", mustSet)
	c.SecretAccessKey = f.secret(m, "secretAccessKey", "is required: set secretAccessKey or secretAccessKeyFile")
	c.SessionToken = f.secret(m, "sessionToken", "")
	return c
}

// template parses a bucket or path template and tries it once, so that a mistake such as an unknown
// field is reported here, once, rather than for every team.
func (f *file) template(n *yaml.Node, field, profile, text string) (*template.Template, bool) {
	t, err := template.New(field).Option("missingkey=error").Parse(text)
	if err != nil {
		f.problem(n, field, "invalid template %q: %v", text, err)
		return nil, false
	}
	if _, err := render(t, map[string]string{"Team": "team", "Profile": profile}); err != nil {
		f.problem(n, field, "template %q fails: %v (it may use .Team and .Profile)", text, err)
		return nil, false
	}
	return t, true
}

func (f *file) principal(m mapping, deployment string) string {
	v, n := f.str(m, "principal", "")
	switch {
	case n == nil && m.has("principal"): // bad, already reported
		return ""
	case v == "" || v == DeploymentMultiTenant || v == DeploymentDedicated:
		if v == "" {
			v = deployment
		}
		switch v {
		case DeploymentMultiTenant:
			return principalMultiTenant
		case DeploymentDedicated:
			return principalDedicated
		case DeploymentSelfManaged:
			f.missing(m, "principal", "is required when wandb.deployment is self-managed: the ARN of the IAM role or user your W&B server runs as")
		}
		return ""
	case !principalRE.MatchString(v):
		f.problem(n, m.at("principal"), "%q is not multi-tenant, dedicated or an IAM principal ARN (arn:aws:iam::<account>:role/<name>)", v)
		return ""
	}
	return v
}

var accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)

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
	if e, en := f.str(m, "endpoint", ""); en != nil && e != "" {
		if err := checkURL(e); err != nil {
			f.problem(en, m.at("endpoint"), "%v", err)
		}
		k.Endpoint = e
	}
	return k
}

func (f *file) defaultProfile(root mapping, profiles map[string]*profileDef) string {
	name, n := f.str(root, "defaultProfile", "")
	switch {
	case n != nil && name != "":
		if _, ok := profiles[name]; !ok && len(profiles) > 0 {
			f.problem(n, "defaultProfile", "profile %q is not defined; profiles: %s", name, profileList(profiles))
		}
		return name
	case len(profiles) == 1:
		for name := range profiles {
			return name
		}
	}
	return ""
}

func profileList(profiles map[string]*profileDef) string {
	if len(profiles) == 0 {
		return "none"
	}
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
