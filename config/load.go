package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

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
	cfg.Warnings = l.warnings
	return cfg, nil
}

var topKeys = []string{"wandb", "state", "sync", "defaultProfile", "profiles", "teams", "teamsFile",
	"server", "schedule", "workers", "scim", "webhooks", "sources", "members"}

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
	cfg.Server = f.server(m)
	cfg.Schedule = f.schedule(m)
	cfg.Workers = f.workers(m)
	cfg.SCIM = f.scim(m, profiles, cfg.DefaultProfile)
	before := len(l.probs)
	cfg.Webhooks = f.webhooks(m)
	cfg.Sources = f.sources(m, profiles, cfg.DefaultProfile, cfg.Webhooks.Graph, len(l.probs) == before)
	cfg.Members = f.members(m)

	teams := f.teamList(m, "")
	if name, n := f.str(m, "teamsFile", ""); n != nil && name != "" {
		teams = append(teams, f.teamsFile(n, name)...)
	}
	l.checkClaims(teams)
	cfg.teams = resolveTeams(teams, profiles, cfg.DefaultProfile, l.undocumentedNames)
	for _, t := range cfg.teams {
		if l.undocumentedNames && team.CheckDocumented(t.Name) != nil {
			l.warnings = append(l.warnings, fmt.Sprintf("team %q is outside W&B's documented team name rule (lowercase letters, numbers and hyphens); wandb.allowUndocumentedTeamNames sends it unverified", t.Name))
		}
	}

	cfg.profiles = make(map[string]Profile, len(profiles))
	for name, p := range profiles {
		cfg.profiles[name] = p.Profile
	}
	return cfg
}

func (f *file) wandb(root mapping) Wandb {
	w := Wandb{Timeout: DefaultTimeout}
	m, ok := f.section(root, "wandb", mustSet, "scimURL", "deployment", "auth", "timeout", "caFile", "allowUndocumentedTeamNames")
	if !ok {
		return w
	}
	w.Timeout = f.timeout(m)
	w.CAFile = f.caFile(m)
	if v, n := f.boolean(m, "allowUndocumentedTeamNames"); n != nil {
		w.AllowUndocumentedTeamNames = v
		f.loader.undocumentedNames = v
	}
	if u, n := f.str(m, "scimURL", mustSet); n != nil {
		if err := checkURL(u); err != nil {
			f.problem(n, m.at("scimURL"), "%v", err)
		}
		// Without the slash, the client appends "/Groups" and the like directly.
		w.SCIMURL = strings.TrimRight(u, "/")
	}
	w.Deployment, _ = f.enum(m, "deployment", mustSet, DeploymentMultiTenant, DeploymentDedicated, DeploymentSelfManaged)
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
	m, ok := f.section(root, "state", "", "path", "postgres")
	if !ok {
		return s
	}
	if p, n := f.str(m, "path", ""); n != nil && p != "" {
		s.Path = f.resolve(p)
	}
	s.Postgres = f.postgresState(m)
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
