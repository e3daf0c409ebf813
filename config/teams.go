package config

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/team"
)

// teamEntry is one item of a teams list, inline or in the teams file.
type teamEntry struct {
	f           *file
	field       string     // "teams[3]"
	node        *yaml.Node // the item
	name        string
	nameNode    *yaml.Node // nil when the name is absent or bad
	profile     string
	profileNode *yaml.Node
	adopt       *adoptEntry // nil: the agent creates the team
}

func (e *teamEntry) problem(format string, args ...any) {
	e.f.problem(e.node, e.field, format, args...)
}

// where is the entry's position as shown in messages about another entry.
func (e *teamEntry) where() string {
	return fmt.Sprintf("%s:%d:%d", e.f.name, e.node.Line, e.node.Column)
}

// teamList decodes the `teams` list of m; ifMissing makes it required (in the teams file).
func (f *file) teamList(m mapping, ifMissing string) []*teamEntry {
	n := m.value("teams")
	if n == nil {
		if ifMissing != "" {
			f.missing(m, "teams", ifMissing)
		}
		return nil
	}
	if !f.is(n, "teams", yaml.SequenceNode, "a list") {
		return nil
	}
	var out []*teamEntry
	for i, item := range n.Content {
		field := fmt.Sprintf("teams[%d]", i)
		tm, ok := f.mapping(item, field, "name", "profile", "adopt")
		if !ok {
			continue
		}
		e := &teamEntry{f: f, field: field, node: item}
		e.name, e.nameNode = f.str(tm, "name", mustSet)
		e.profile, e.profileNode = f.str(tm, "profile", "")
		e.adopt = f.adoptEntry(tm)
		out = append(out, e)
	}
	return out
}

// teamsFile reads the teams file that n (the teamsFile value) names; its problems carry its own name.
func (f *file) teamsFile(n *yaml.Node, name string) []*teamEntry {
	path := f.resolve(name)
	data, err := f.read(path)
	if err != nil {
		f.problem(n, "teamsFile", "cannot read %q: %v", path, err)
		return nil
	}
	tf := f.loader.file(path)
	root := tf.parse(data)
	if root == nil {
		return nil
	}
	m, ok := tf.mapping(root, "", "teams")
	if !ok {
		return nil
	}
	return tf.teamList(m, "is required: the teams file holds a `teams:` list (write `teams: []` for none)")
}

// storageKey identifies a bucket, in the namespace its name is unique in.
type storageKey struct {
	provider, endpoint, account, bucket string
}

func keyOf(st team.Storage) storageKey {
	k := storageKey{provider: st.Provider, bucket: st.Bucket}
	switch st.Provider {
	case team.ProviderAWS, team.ProviderGCS, team.ProviderCoreWeave: // names are global
	default: // each server, or Azure storage account, has its own namespace
		k.endpoint, k.account = strings.TrimSuffix(st.Endpoint, "/"), st.Account
	}
	return k
}

// bucketUse is who gets a bucket: the profile and first team, and for a shared bucket every team's path.
type bucketUse struct {
	first   *teamEntry
	profile string
	shared  bool
	paths   map[string]*teamEntry // shared: the team of each path
	below   map[string]string     // shared: each proper ancestor of a team's path -> that path
}

// claim gives team e the path p in the shared bucket unless another team has it, or a path inside or
// around it: a team's prefix holds only its own data, and no team's path may lie inside another's.
func (u *bucketUse) claim(e *teamEntry, bucket, p string) bool {
	if o := u.paths[p]; o != nil {
		e.problem("team %q would get path %q in shared bucket %q, which team %q at %s gets too: the path template must give every team its own prefix (use {{ .Team }})",
			e.name, p, bucket, o.name, o.where())
		return false
	}
	for _, a := range ancestors(p) {
		if o := u.paths[a]; o != nil {
			e.problem("team %q would get path %q in shared bucket %q, inside path %q of team %q at %s: no team's path may lie inside another's",
				e.name, p, bucket, a, o.name, o.where())
			return false
		}
	}
	if inner, ok := u.below[p]; ok {
		o := u.paths[inner]
		e.problem("team %q would get path %q in shared bucket %q, which holds path %q of team %q at %s: no team's path may lie inside another's",
			e.name, p, bucket, inner, o.name, o.where())
		return false
	}
	u.paths[p] = e
	for _, a := range ancestors(p) {
		if _, ok := u.below[a]; !ok {
			u.below[a] = p
		}
	}
	return true
}

// ancestors returns the proper ancestors of a slash-separated path: "a/b/c" gives "a" and "a/b".
func ancestors(p string) []string {
	var out []string
	for i := range len(p) {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

// resolveTeams checks every team's name and profile, renders its storage, and checks that no two
// teams share a name or storage. It returns the valid teams, sorted by name.
func resolveTeams(entries []*teamEntry, profiles map[string]*profileDef, defaultProfile string, undocumentedOK bool) []team.Team {
	var out []team.Team
	byName := map[string]*teamEntry{}
	byBucket := map[storageKey]*bucketUse{}
	for _, e := range entries {
		if e.nameNode == nil {
			continue
		}
		if err := checkTeamName(e.name, undocumentedOK); err != nil {
			e.f.problem(e.nameNode, e.field+".name", "%v", err)
		}
		if first, dup := byName[e.name]; dup {
			e.f.problem(e.nameNode, e.field+".name", "team %q is already defined at %s", e.name, first.where())
			continue
		}
		byName[e.name] = e

		pname := e.profile
		if pname == "" {
			pname = defaultProfile
		}
		p, ok := profiles[pname]
		switch {
		case pname == "" && len(profiles) > 0:
			e.problem("team %q has no profile: set profile here, or defaultProfile (profiles: %s)", e.name, profileList(profiles))
			continue
		case !ok && e.profile != "":
			e.f.problem(e.profileNode, e.field+".profile", "profile %q is not defined; profiles: %s", e.profile, profileList(profiles))
			continue
		case !ok || !p.renderable: // the profile's own problem is reported already
			continue
		}
		st, err := p.Storage(e.name)
		if err != nil {
			e.problem("team %q: %v", e.name, err)
			continue
		}
		var adopt *team.Adoption
		if e.adopt != nil {
			if st, ok = e.adopt.storage(e, &p.Profile, st); !ok {
				continue
			}
			adopt = &team.Adoption{Repair: e.adopt.repair}
		}
		// A bucket carries the ownership mark of one team, or of one shared profile.
		key := keyOf(st)
		u := byBucket[key]
		switch {
		case u == nil:
			u = &bucketUse{first: e, profile: pname, shared: st.Shared, paths: map[string]*teamEntry{}, below: map[string]string{}}
			byBucket[key] = u
		case u.profile != pname:
			e.problem("team %q would get bucket %q from profile %q, but team %q at %s gets it from profile %q: a bucket serves one profile only",
				e.name, st.Bucket, pname, u.first.name, u.first.where(), u.profile)
			continue
		case !st.Shared:
			e.problem("team %q would get bucket %q, which team %q at %s gets too: the bucket template must give every team its own bucket (use {{ .Team }}), or set topology: shared and a path per team",
				e.name, st.Bucket, u.first.name, u.first.where())
			continue
		}
		if st.Shared && !u.claim(e, st.Bucket, st.Path) {
			continue
		}
		out = append(out, team.Team{Name: e.name, Profile: pname, Source: "yaml", Storage: st, Adopt: adopt})
	}
	slices.SortFunc(out, func(a, b team.Team) int { return strings.Compare(a.Name, b.Name) })
	return out
}
