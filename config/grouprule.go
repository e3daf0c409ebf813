package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/team"
)

// GroupRule is a `groups:` block (scim.groups, sources.<idp>.groups): which groups of a source become
// teams, under what name and in which storage profile. At most one of Prefix, Regex and Names is set;
// none selects every group, named as it is.
//
// Only Names says at load which teams a rule claims, so only those are checked against the YAML teams
// and the other rules' Names; an overlap a prefix or regex produces shows once groups are read, and the
// daemon reports it at run time.
type GroupRule struct {
	// Prefix, when set, selects groups whose displayName starts with it and cuts it off.
	Prefix string
	// Regex, when set, selects groups whose displayName it matches; the team name is what its group named
	// "team" matched.
	Regex *regexp.Regexp
	// Names, when set, selects exactly the groups of these displayNames (compared as written); the team
	// name is the displayName.
	Names     []string
	Profile   string // storage profile of the teams (groups.profile, else the default profile)
	Lowercase bool   // lowercase the name before it is checked
	// Roles give the members of other groups a role in a team (groups.roles). A group a role rule
	// selects is a role group, never a team of its own.
	Roles []RoleRule

	undocumentedOK bool // wandb.allowUndocumentedTeamNames
}

// RoleRule is one entry of groups.roles: the groups Match selects name a team as a groups rule does,
// and their members get Role in that team (and are members of it).
type RoleRule struct {
	Role  string // one of team.Roles, or the name of a custom role defined in W&B (customRole)
	Match *GroupRule
}

// Classify applies the role rules, then the team rule, to a group's displayName: role is "" for a
// team group, the role for a role group; ok and err are those of TeamName.
func (r *GroupRule) Classify(displayName string) (name, role string, ok bool, err error) {
	if r == nil {
		return "", "", false, nil
	}
	for _, rr := range r.Roles {
		if name, ok, err = rr.Match.TeamName(displayName); ok {
			return name, rr.Role, ok, err
		}
	}
	name, ok, err = r.TeamName(displayName)
	return name, "", ok, err
}

// TeamName applies the rule to a group's displayName. ok is false when the group is not a team group
// (always, for a nil rule: the source is not configured); err says, naming the group and the result,
// that the result is not a valid team name (it is never repaired silently).
func (r *GroupRule) TeamName(displayName string) (name string, ok bool, err error) {
	if r == nil {
		return "", false, nil
	}
	switch {
	case r.Regex != nil:
		if name, ok = regexTeam(r.Regex, displayName); !ok {
			return "", false, nil
		}
	case r.Prefix != "":
		if name, ok = strings.CutPrefix(displayName, r.Prefix); !ok {
			return "", false, nil
		}
	case r.Names != nil:
		if !slices.Contains(r.Names, displayName) {
			return "", false, nil
		}
		name = displayName
	default:
		name = displayName
	}
	if r.Lowercase {
		name = strings.ToLower(name)
	}
	if err := checkTeamName(name, r.undocumentedOK); err != nil {
		return name, true, fmt.Errorf("group %q gives team name %q: %w", displayName, name, err)
	}
	return name, true, nil
}

// regexTeam returns what the first group named "team" that took part in the match matched, so that
// alternatives may each have their own: ^(?:wandb-(?P<team>.+)|(?P<team>.+)-wandb)$.
func regexTeam(re *regexp.Regexp, s string) (string, bool) {
	m := re.FindStringSubmatchIndex(s)
	if m == nil {
		return "", false
	}
	for i, n := range re.SubexpNames() {
		if n == teamGroup && m[2*i] >= 0 {
			return s[m[2*i]:m[2*i+1]], true
		}
	}
	return "", true // matched, but the team group did not take part: an empty, invalid name
}

const teamGroup = "team"

// The keys of a groups block; names comes last so that messages listing them read as before it existed.
var ruleKeys = []string{"prefix", "regex", "profile", "lowercase", "names", "roles"}

// groupRule reads the `groups` block of m (scim, sources.<idp>). Absent, it selects every group, named
// as it is, in the default profile. who completes "the storage profile of the teams ..." in messages.
// The teams its names claim are recorded for checkClaims. It never returns nil.
func (f *file) groupRule(m mapping, profiles map[string]*profileDef, defaultProfile, who string) *GroupRule {
	r := &GroupRule{undocumentedOK: f.loader.undocumentedNames}
	gm, ok := f.enabled(m, "groups", ruleKeys...)
	switch {
	case !ok && m.keys["groups"] != nil: // bad, reported already
		return r
	case !ok:
		gm = mapping{pos: m.pos, field: m.at("groups")}
	}
	names := f.selector(gm, r)
	r.Roles = f.roleRules(gm)
	name, n := f.str(gm, "profile", "")
	switch {
	case n != nil && name != "":
		if _, ok := profiles[name]; !ok && len(profiles) > 0 {
			f.problem(n, gm.at("profile"), "profile %q is not defined; profiles: %s", name, profileList(profiles))
		}
		r.Profile = name
	case n == nil && gm.has("profile"): // bad, reported already
	case defaultProfile == "" && len(profiles) > 0:
		f.missing(gm, "profile", "is required: the storage profile of the teams "+who+"; set it here, or defaultProfile (profiles: "+profileList(profiles)+")")
	default:
		r.Profile = defaultProfile
	}
	// Names are team names known at load: check them as a YAML team's are, and claim them.
	for i, g := range r.Names {
		field := fmt.Sprintf("%s[%d]", gm.at("names"), i)
		tn, _, err := r.TeamName(g)
		if err != nil {
			f.problem(names[i], field, "%v", err)
			continue
		}
		f.claims = append(f.claims, claim{team: tn, group: g, f: f, node: names[i], field: field, rule: gm.field})
	}
	return r
}

// selector reads the keys that select groups and name their teams (prefix, regex or names; lowercase)
// into r, and returns the node of each name.
func (f *file) selector(gm mapping, r *GroupRule) []*yaml.Node {
	// One selector at most; a second is reported and ignored.
	sel := ""
	for _, k := range []string{"prefix", "regex", "names"} {
		switch {
		case !gm.has(k):
		case sel != "":
			f.problem(gm.vals[k], gm.at(k), "set either %s or %s, not both", sel, k)
		default:
			sel = k
		}
	}
	var names []*yaml.Node
	switch sel {
	case "prefix":
		r.Prefix, _ = f.str(gm, "prefix", "")
	case "regex":
		r.Regex = f.ruleRegex(gm)
	case "names":
		r.Names, names = f.ruleNames(gm)
	}
	if lc, n := f.boolean(gm, "lowercase"); n != nil {
		r.Lowercase = lc
	}
	return names
}

// roleRules reads groups.roles: a list of {role, prefix | regex | names, lowercase}.
func (f *file) roleRules(gm mapping) []RoleRule {
	items, ok := f.items(gm, "roles")
	if !ok {
		return nil
	}
	var out []RoleRule
	for i, n := range items {
		field := fmt.Sprintf("%s[%d]", gm.at("roles"), i)
		rm, ok := f.mapping(n, field, "role", "customRole", "prefix", "regex", "names", "lowercase")
		if !ok {
			continue
		}
		var role string
		var rn *yaml.Node
		if rm.has("customRole") {
			// W&B's teamRoles takes a custom role's name as well ("automate IAM":
			// https://docs.wandb.ai/platform/hosting/iam/automate_iam). Its own name rules are not
			// documented: any name without control characters is passed on as written.
			if rm.has("role") {
				f.problem(rm.keys["customRole"], rm.at("customRole"), "set either role or customRole, not both")
			}
			role, rn = f.str(rm, "customRole", "")
			if rn != nil && strings.TrimSpace(role) == "" {
				f.problem(rn, rm.at("customRole"), "must not be empty: the name of a custom role defined in W&B")
				role = ""
			} else if strings.IndexFunc(role, unicode.IsControl) >= 0 {
				f.problem(rn, rm.at("customRole"), "must not contain control characters")
				role = ""
			}
			if role == "" {
				rn = nil
			}
		} else {
			role, rn = f.enum(rm, "role", "is required: the team role the members of these groups get ("+strings.Join(team.Roles, ", ")+"), or customRole", team.Roles...)
		}
		match := &GroupRule{undocumentedOK: f.loader.undocumentedNames}
		f.selector(rm, match)
		if !rm.has("prefix") && !rm.has("regex") && !rm.has("names") {
			f.missing(rm, "prefix", "is required (or regex, or names): which groups give this role; "+
				"a role rule without one would take every group")
		}
		if rn != nil && role == "" {
			f.problem(rn, rm.at("role"), "must not be empty; one of: %s", strings.Join(team.Roles, ", "))
		}
		if rn != nil && role != "" {
			out = append(out, RoleRule{Role: role, Match: match})
		}
	}
	return out
}

func (f *file) ruleRegex(gm mapping) *regexp.Regexp {
	expr, n := f.str(gm, "regex", "")
	if n == nil {
		return nil
	}
	re, err := regexp.Compile(expr)
	switch {
	case err != nil:
		f.problem(n, gm.at("regex"), "invalid regular expression: %v", err)
	case re.SubexpIndex(teamGroup) < 0:
		f.problem(n, gm.at("regex"), "%q has no group named %q: write (?P<team>...) around the part that is the team name", expr, teamGroup)
	default:
		return re
	}
	return nil
}

// ruleNames reads the names list: distinct, non-empty group names, at least one. It returns them with
// the node of each.
func (f *file) ruleNames(gm mapping) ([]string, []*yaml.Node) {
	items, ok := f.items(gm, "names")
	if !ok {
		return nil, nil
	}
	if len(items) == 0 {
		f.problem(gm.vals["names"], gm.at("names"), "must list at least one group name; leave names out to take every group")
	}
	names := []string{} // not nil: a rule with names selects only those, even when none is valid
	var nodes []*yaml.Node
	seen := map[string]*yaml.Node{}
	for i, n := range items {
		field := fmt.Sprintf("%s[%d]", gm.at("names"), i)
		if !f.is(n, field, yaml.ScalarNode, "a string") {
			continue
		}
		v, ok := f.expand(n, field)
		switch first, dup := seen[v]; {
		case !ok:
			continue
		case v == "":
			f.problem(n, field, "must not be empty")
			continue
		case dup:
			f.problem(n, field, "group %q is listed already at line %d", v, first.Line)
			continue
		}
		seen[v] = n
		names, nodes = append(names, v), append(nodes, n)
	}
	return names, nodes
}

// claim is a team that a rule's names give, known at load.
type claim struct {
	team, group string
	f           *file
	node        *yaml.Node
	field       string // "sources.okta.groups.names[1]"
	rule        string // "sources.okta.groups"
}

// checkClaims reports every team that the YAML teams and a rule's names, or two names, give at once: a
// team comes from one source.
func (l *loader) checkClaims(entries []*teamEntry) {
	yamlTeams := map[string]*teamEntry{}
	for _, e := range entries {
		if _, dup := yamlTeams[e.name]; e.nameNode != nil && !dup {
			yamlTeams[e.name] = e
		}
	}
	first := map[string]claim{}
	for _, c := range l.claims {
		e := yamlTeams[c.team]
		o, dup := first[c.team]
		switch {
		case e != nil && e.adopt == nil: // an adopt entry may state the storage of a group's team
			c.f.problem(c.node, c.field, "group %q gives team %q, which teams defines too, at %s: a team comes from one source; drop it here or there",
				c.group, c.team, e.where())
		case dup && o.rule == c.rule:
			c.f.problem(c.node, c.field, "group %q gives team %q, as group %q at line %d does already", c.group, c.team, o.group, o.node.Line)
		case dup:
			c.f.problem(c.node, c.field, "group %q gives team %q, which %s gives too, at line %d: a team comes from one source",
				c.group, c.team, o.rule, o.node.Line)
		default:
			first[c.team] = c
		}
	}
}
