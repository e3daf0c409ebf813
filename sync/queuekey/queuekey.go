// Package queuekey provides the keys of the daemon's work queue: every team, one team, or the teams of
// one group of a source, with the one parser of their text.
package queuekey

import "strings"

// Key names the work of one reconcile. Build keys with All, Team and Group; read them with its methods.
type Key string

// All reconciles every team. The schedule enqueues it, and webhooks that cannot name a narrower key.
const All Key = "all"

// Team is the key that reconciles one team.
func Team(name string) Key { return Key(teamPrefix + name) }

// Group is the key that reconciles the team(s) of one group; source names where the group comes from
// (okta, graph, google, scim).
func Group(source, groupID string) Key { return Key(groupPrefix + source + ":" + groupID) }

const (
	teamPrefix  = "team:"
	groupPrefix = "group:"
)

// parse is the one reader of a key's text: its kind (the text before the first ':', or the whole key)
// and, for team and group keys, what it names.
func (k Key) parse() (kind, team, source, id string) {
	s := string(k)
	if name, ok := strings.CutPrefix(s, teamPrefix); ok {
		return "team", name, "", ""
	}
	if rest, ok := strings.CutPrefix(s, groupPrefix); ok {
		if src, gid, ok := strings.Cut(rest, ":"); ok {
			return "group", "", src, gid
		}
		return "group", "", "", ""
	}
	kind, _, _ = strings.Cut(s, ":")
	return kind, "", "", ""
}

// Kind is the kind of key: "all", "team", "group" (for metrics and logs).
func (k Key) Kind() string {
	kind, _, _, _ := k.parse()
	return kind
}

// Team returns the team a team key names.
func (k Key) Team() (name string, ok bool) {
	kind, name, _, _ := k.parse()
	return name, kind == "team"
}

// Group returns the source and group id a group key names.
func (k Key) Group() (source, groupID string, ok bool) {
	kind, _, source, groupID := k.parse()
	return source, groupID, kind == "group" && source != ""
}

// Set collects keys, each once, in the order first added. The zero Set is empty and ready to use.
type Set struct {
	all   bool
	seen  map[Key]bool
	order []Key
}

// Add adds key.
func (s *Set) Add(key Key) {
	if key == All {
		s.all = true
		return
	}
	if s.seen == nil {
		s.seen = map[Key]bool{}
	}
	if !s.seen[key] {
		s.seen[key] = true
		s.order = append(s.order, key)
	}
}

// Has reports whether key was added (All aside).
func (s *Set) Has(key Key) bool { return s.seen[key] }

// Len is the number of distinct keys added, All aside.
func (s *Set) Len() int { return len(s.order) }

// Everything reports whether All was added.
func (s *Set) Everything() bool { return s.all }

// List returns the keys to enqueue: All alone when it was added, as it covers every other key.
func (s *Set) List() []Key {
	if s.all {
		return []Key{All}
	}
	return s.order
}
