package desired

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source"
)

// idpSource is one identity provider the daemon reads groups from, with the groups it read last. A
// full reconcile re-reads everything; a webhook's group key re-reads one group.
type idpSource struct {
	key  string // the name webhooks use in group keys: okta, graph, google
	team string // the team's Source: okta, entra, google
	src  source.Source
	rule *config.GroupRule
	// keep, when set, keeps the IdP's change notifications alive (Entra's Graph subscription); it runs
	// with every full read.
	keep func(ctx context.Context) error

	mu     sync.Mutex
	groups map[string]source.Group // by id; nil until the first full read succeeded
	gone   map[string]string       // id -> name of groups that disappeared, so their team is orphaned
}

// refresh reads every group. On failure the groups read before stay in use; with none read yet the
// error is returned, since reconciling without the source would orphan its teams.
func (s *idpSource) refresh(ctx context.Context, log *slog.Logger) error {
	if s.keep != nil {
		if err := s.keep(ctx); err != nil {
			log.Error("keeping the change-notification subscription failed; the schedule still reads every group", "source", s.team, "error", err)
		}
	}
	groups, err := s.src.Groups(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.groups == nil {
			return fmt.Errorf("read groups from %s: %w", s.team, err)
		}
		log.Warn("reading groups failed; using the groups read before", "source", s.team, "error", err)
		return nil
	}
	next := make(map[string]source.Group, len(groups))
	for _, g := range groups {
		next[g.ID] = g
	}
	for id, g := range s.groups {
		if _, ok := next[id]; !ok {
			s.remember(id, g.Name)
		}
	}
	s.groups = next
	return nil
}

// refreshOne re-reads one group, as a webhook asked, and the selected groups that contain it when
// the source nests groups (their members changed with it).
func (s *idpSource) refreshOne(ctx context.Context, id string) error {
	if err := s.readOne(ctx, id); err != nil {
		return err
	}
	for _, parent := range s.containing(id) {
		if parent != id {
			if err := s.readOne(ctx, parent); err != nil {
				return err
			}
		}
	}
	return nil
}

// containing are the selected groups that contain group id, as the source read them last.
func (s *idpSource) containing(id string) []string {
	if n, ok := s.src.(source.Nesting); ok {
		return n.Containing(id)
	}
	return nil
}

// readOne re-reads one group.
func (s *idpSource) readOne(ctx context.Context, id string) error {
	g, found, err := s.src.Group(ctx, id)
	if err != nil {
		return fmt.Errorf("read group %s from %s: %w", id, s.team, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups == nil {
		s.groups = map[string]source.Group{}
	}
	if found {
		if old, ok := s.groups[id]; ok && old.Name != g.Name {
			s.remember(id, old.Name) // renamed: the old team is orphaned, the new name is a new team
		}
		s.groups[id] = g
		return nil
	}
	if old, ok := s.groups[id]; ok {
		s.remember(id, old.Name)
		delete(s.groups, id)
	}
	return nil
}

func (s *idpSource) remember(id, name string) {
	if s.gone == nil {
		s.gone = map[string]string{}
	}
	s.gone[id] = name
}

// teamNames are the team names a group key concerns: its group now, and the name it had, and those
// of the selected groups that contain it.
func (s *idpSource) teamNames(id string) []string {
	parents := s.containing(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	displays := []string{s.groups[id].Name, s.gone[id]}
	for _, p := range parents {
		if p != id {
			displays = append(displays, s.groups[p].Name)
		}
	}
	for _, display := range displays {
		if name, _, ok, err := s.rule.Classify(display); display != "" && ok && err == nil {
			names = append(names, name)
		}
	}
	return names
}

// snapshot returns the groups read last, by id.
func (s *idpSource) snapshot() []source.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]source.Group, 0, len(s.groups))
	for _, id := range slices.Sorted(maps.Keys(s.groups)) {
		out = append(out, s.groups[id])
	}
	return out
}
