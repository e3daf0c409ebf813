// Package scimpush provides the groups an identity provider pushed to the agent's SCIM endpoint as a
// source of teams, read from the state where the SCIM endpoint keeps them.
package scimpush

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/state"
)

// Name is the pushed groups' name as a source: the Source of their teams and the source of their
// group keys.
const Name = "scim"

// Store is the part of the state that holds the pushed groups.
type Store interface {
	SCIMGroups(ctx context.Context) ([]state.SCIMGroup, error)
}

// Source reads the pushed groups. It keeps nothing: the state is the record of what was pushed.
type Source struct{ store Store }

var _ source.Source = (*Source)(nil)

// New returns the source of the groups pushed into store.
func New(store Store) *Source { return &Source{store: store} }

// Read returns the pushed groups that are not deleted, and the display name of every pushed group by
// id, deleted ones included: the state keeps a deleted group so that its team is orphaned.
func (s *Source) Read(ctx context.Context) (live []source.Group, names map[string]string, err error) {
	pushed, err := s.store.SCIMGroups(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read the SCIM-pushed groups: %w", err)
	}
	live = make([]source.Group, 0, len(pushed))
	names = make(map[string]string, len(pushed))
	for _, g := range pushed {
		names[g.ID] = g.DisplayName
		if !g.Deleted {
			live = append(live, source.Group{ID: g.ID, Name: g.DisplayName, Members: members(g)})
		}
	}
	return live, names, nil
}

// Groups returns the pushed groups that are not deleted.
func (s *Source) Groups(ctx context.Context) ([]source.Group, error) {
	live, _, err := s.Read(ctx)
	return live, err
}

// Group returns one pushed group; found is false when it was deleted or never pushed.
func (s *Source) Group(ctx context.Context, id string) (source.Group, bool, error) {
	live, _, err := s.Read(ctx)
	if i := slices.IndexFunc(live, func(g source.Group) bool { return g.ID == id }); i >= 0 {
		return live[i], true, err
	}
	return source.Group{}, false, err
}

// members are the emails of a pushed group's active members, lowercased and sorted.
func members(g state.SCIMGroup) []string {
	var out []string
	for _, m := range g.Members {
		if !m.Active {
			continue
		}
		email := m.Email
		if email == "" {
			email = m.UserName
		}
		if strings.Contains(email, "@") {
			out = append(out, strings.ToLower(email))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
