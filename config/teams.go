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
		tm, ok := f.mapping(item, field, "name", "profile")
		if !ok {
			continue
		}
		e := &teamEntry{f: f, field: field, node: item}
		e.name, e.nameNode = f.str(tm, "name", mustSet)
		e.profile, e.profileNode = f.str(tm, "profile", "")
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

// storageKey identifies where a team's data lives, ignoring the path inside the bucket.
type storageKey struct {
	provider, endpoint, bucket string
}

// resolveTeams checks every team's name and profile, renders its storage, and checks that no two
// teams share a name or storage. It returns the valid teams, sorted by name.
func resolveTeams(entries []*teamEntry, profiles map[string]*profileDef, defaultProfile string) []team.Team {
	var out []team.Team
	byName := map[string]*teamEntry{}
	byStorage := map[storageKey]*teamEntry{}
	for _, e := range entries {
		if e.nameNode == nil {
			continue
		}
		if err := team.ValidateName(e.name); err != nil {
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
		// Only AWS bucket names are global; other servers each have their own namespace.
		key := storageKey{provider: st.Provider, bucket: st.Bucket}
		if st.Provider != team.ProviderAWS {
			key.endpoint = st.Endpoint
		}
		// One bucket per team: a bucket carries the ownership tag of exactly one team. Shared buckets
		// with a prefix per team need their own ownership model and are not supported yet.
		if other, dup := byStorage[key]; dup {
			e.problem("team %q would get bucket %q, which team %q at %s gets too: the bucket template must give every team its own bucket (use {{ .Team }}); shared buckets are not supported yet",
				e.name, st.Bucket, other.name, other.where())
			continue
		}
		byStorage[key] = e
		out = append(out, team.Team{Name: e.name, Profile: pname, Source: "yaml", Storage: st})
	}
	slices.SortFunc(out, func(a, b team.Team) int { return strings.Compare(a.Name, b.Name) })
	return out
}
