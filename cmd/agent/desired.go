package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/team"
)

// Claim labels for the sources that are not groups.
const claimYAML = "the configuration's teams list"

// teamSet gathers the desired teams of every source, in order: the configuration, SCIM pushes, then
// each IdP. A name asked for twice is kept once with every claim listed, and the planner reports the
// conflict: a team comes from one source, never a silent merge of two.
type teamSet struct {
	teams []team.Team
	at    map[string]int
}

func (s *teamSet) add(t team.Team) {
	if i, ok := s.at[t.Name]; ok {
		s.teams[i].Claims = append(s.teams[i].Claims, t.Claims...)
		return
	}
	if s.at == nil {
		s.at = map[string]int{}
	}
	s.at[t.Name] = len(s.teams)
	s.teams = append(s.teams, t)
}

// addGroups maps one source's groups to teams with its rule. A team group becomes a team with the
// group's members; a role group adds its members to the team of the name it gives, with its role
// (the first role rule listed wins for a member in several role groups).
func (s *teamSet) addGroups(cfg *config.Config, src string, rule *config.GroupRule, groups []source.Group, log *slog.Logger) {
	type roleGroup struct {
		g          source.Group
		team, role string
	}
	var teams []team.Team
	at := map[string]int{}
	var roles []roleGroup
	for _, g := range groups {
		name, role, ok, err := rule.Classify(g.Name)
		switch {
		case !ok:
			continue
		case err != nil:
			log.Warn("group cannot become a team", "source", src, "group", g.Name, "error", err)
			continue
		case role != "":
			roles = append(roles, roleGroup{g, name, role})
			continue
		}
		claim := fmt.Sprintf("%s group %q", src, g.Name)
		if i, dup := at[name]; dup {
			teams[i].Claims = append(teams[i].Claims, claim)
			continue
		}
		st, err := cfg.Storage(rule.Profile, name)
		if err != nil {
			log.Warn("group cannot become a team", "source", src, "team", name, "group", g.Name, "error", err)
			continue
		}
		at[name] = len(teams)
		teams = append(teams, team.Team{Name: name, Profile: rule.Profile, Source: src, Storage: st,
			ManageMembers: true, Members: slices.Clone(g.Members), Claims: []string{claim}})
	}
	rank := func(role string) int {
		return slices.IndexFunc(rule.Roles, func(r config.RoleRule) bool { return r.Role == role })
	}
	for _, rg := range roles {
		i, ok := at[rg.team]
		if !ok {
			log.Warn("role group names a team no group gives; its role is not applied", "source", src, "group", rg.g.Name, "team", rg.team, "role", rg.role)
			continue
		}
		t := &teams[i]
		if t.Roles == nil {
			t.Roles = map[string]string{}
		}
		for _, email := range rg.g.Members {
			if had, ok := t.Roles[email]; !ok || rank(rg.role) < rank(had) {
				t.Roles[email] = rg.role
			}
			t.Members = append(t.Members, email)
		}
		slices.Sort(t.Members)
		t.Members = slices.Compact(t.Members)
	}
	for _, t := range teams {
		s.add(t)
	}
}

// desiredTeams is every team wanted now: the configuration's, the SCIM-pushed groups' and the groups
// the IdP sources read last.
func desiredTeams(ctx context.Context, cfg *config.Config, db *state.DB, sources []*idpSource, log *slog.Logger) ([]team.Team, error) {
	var set teamSet
	for _, t := range cfg.DesiredTeams() {
		t.Claims = []string{claimYAML}
		set.add(t)
	}
	if cfg.SCIM != nil {
		pushed, err := db.SCIMGroups(ctx)
		if err != nil {
			return nil, err
		}
		groups := make([]source.Group, 0, len(pushed))
		for _, g := range pushed {
			if !g.Deleted {
				groups = append(groups, source.Group{ID: g.ID, Name: g.DisplayName, Members: scimMembers(g)})
			}
		}
		set.addGroups(cfg, "scim", cfg.SCIM.GroupRule, groups, log)
	}
	for _, s := range sources {
		set.addGroups(cfg, s.team, s.rule, s.snapshot(), log)
	}
	return set.teams, nil
}

// oneShotDesired is desiredTeams for plan and sync run by hand: each IdP is read once (its
// subscriptions are the daemon's business). A source that cannot be read is reported, and its teams
// are left out of the plan rather than orphaned; read lists the sources whose teams may be planned.
func (a *agent) oneShotDesired(ctx context.Context, stderr io.Writer) (teams []team.Team, read map[string]bool, err error) {
	sources, err := newSources(a.cfg)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	read = map[string]bool{"yaml": true}
	if a.cfg.SCIM != nil {
		read["scim"] = true
	}
	var ok []*idpSource
	for _, s := range sources {
		s.keep = nil
		if err := s.refresh(ctx, a.log); err != nil {
			fmt.Fprintf(stderr, "warning: %v; the teams of %s are left alone in this run\n", err, s.team)
			continue
		}
		read[s.team] = true
		ok = append(ok, s)
	}
	teams, err = desiredTeams(ctx, a.cfg, a.db, ok, a.log)
	return teams, read, err
}
