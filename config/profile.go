package config

import (
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
