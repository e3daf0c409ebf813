// Package desired provides the teams wanted now: it merges the configuration's teams, the groups the
// identity providers give and the groups pushed over SCIM, through the group rules, into desired teams
// with their claims, and names the teams a queue key concerns.
package desired

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/source/scimpush"
	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/team"
)

// Claim labels for the sources that are not groups.
const claimYAML = "the configuration's teams list"

// teamSet gathers the desired teams of every source, in order: the configuration, SCIM pushes, then
// each IdP. A name asked for twice is kept once with every claim listed, and the planner reports the
// conflict: a team comes from one source, never a silent merge of two. The exception is a pushed
// group's team, which never takes a name another source claims, whichever came first: it yields,
// and the other source's team goes on unharmed.
type teamSet struct {
	teams   []team.Team
	at      map[string]int
	yielded []Yielded
}

func (s *teamSet) add(t team.Team) {
	if i, ok := s.at[t.Name]; ok {
		had := &s.teams[i]
		switch pushed, hadPushed := t.Source == scimpush.Name, had.Source == scimpush.Name; {
		case pushed && !hadPushed:
			s.yielded = append(s.yielded, Yielded{Team: t.Name, Groups: t.Claims, ClaimedBy: slices.Clone(had.Claims)})
		case !pushed && hadPushed:
			s.yielded = append(s.yielded, Yielded{Team: t.Name, Groups: had.Claims, ClaimedBy: slices.Clone(t.Claims)})
			*had = t
		default:
			had.Claims = append(had.Claims, t.Claims...)
		}
		return
	}
	if s.at == nil {
		s.at = map[string]int{}
	}
	s.at[t.Name] = len(s.teams)
	s.teams = append(s.teams, t)
}

// adopt adds a teams-list entry marked for adoption. When a group gives that team, the group stays
// its source (members, roles) and the entry only says how to take the team over: the storage it was
// created with, under the entry's profile. Otherwise the entry is the team, as any teams-list entry.
func (s *teamSet) adopt(t team.Team) {
	i, ok := s.at[t.Name]
	if !ok {
		s.add(t)
		return
	}
	g := &s.teams[i]
	g.Profile, g.Storage, g.Adopt = t.Profile, t.Storage, t.Adopt
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

// IdP is one identity provider to read groups from.
type IdP struct {
	Key    string // the name webhooks use in group keys: okta, graph, google
	Name   string // the Source of its teams: okta, entra, google
	Source source.Source
	Rule   *config.GroupRule
	// Keep, when set, keeps the IdP's change notifications alive (Entra's Graph subscription); the
	// daemon runs it with every full read.
	Keep func(ctx context.Context) error
}

// Sources are the sources of desired teams of one configuration. The daemon keeps them across
// reconciles: they hold the groups each IdP returned last.
type Sources struct {
	cfg    *config.Config
	idps   []*idpSource
	pushed *scimpush.Source // nil without cfg.SCIM
	log    *slog.Logger

	mu          sync.Mutex
	pushedNames map[string]string // id -> display name of every pushed group, as read last
	claims      claims            // the team names of every source, as read last
	yielded     []Yielded         // the pushed groups that yielded a name, as read last
}

// New returns the sources of cfg: its teams, idps, and the groups pushed over SCIM when cfg.SCIM is
// set. It makes no request.
func New(cfg *config.Config, idps []IdP, pushed *scimpush.Source, log *slog.Logger) *Sources {
	s := &Sources{cfg: cfg, log: log}
	if cfg.SCIM != nil {
		s.pushed = pushed
	}
	var set teamSet
	s.addYAML(&set)
	s.claims = claimsOf(set.teams)
	for _, p := range idps {
		s.idps = append(s.idps, &idpSource{key: p.Key, team: p.Name, src: p.Source, rule: p.Rule, keep: p.Keep})
	}
	return s
}

// Teams reads the sources as key asks and returns every team wanted now: the IdPs are read whole for
// queuekey.All (or before their first full read), one group for a group key of theirs, and not at
// all otherwise; the pushed groups are read from the state every time.
func (s *Sources) Teams(ctx context.Context, key queuekey.Key) ([]team.Team, error) {
	if err := s.readIdPs(ctx, key); err != nil {
		return nil, err
	}
	return s.teams(ctx, s.idps)
}

// ReadOnce is Teams for plan and sync run by hand: each IdP is read once (its subscriptions are the
// daemon's business). An IdP that cannot be read is passed to skipped, and its teams are left out of
// the plan rather than orphaned; read lists the sources whose teams may be planned.
func (s *Sources) ReadOnce(ctx context.Context, skipped func(source string, err error)) (teams []team.Team, read map[string]bool, err error) {
	read = map[string]bool{"yaml": true}
	if s.pushed != nil {
		read[scimpush.Name] = true
	}
	var ok []*idpSource
	for _, src := range s.idps {
		src.keep = nil
		if err := src.refresh(ctx, s.log); err != nil {
			skipped(src.team, err)
			continue
		}
		read[src.team] = true
		ok = append(ok, src)
	}
	teams, err = s.teams(ctx, ok)
	return teams, read, err
}

// Known reports whether source is the key of a source of group keys this configuration reads (an
// IdP's, or the SCIM pushes').
func (s *Sources) Known(source string) bool {
	if source == scimpush.Name {
		return s.pushed != nil
	}
	return slices.ContainsFunc(s.idps, func(idp *idpSource) bool { return idp.key == source })
}

// Resolve names the teams of a group key (deleted and renamed groups too: their team is orphaned).
// ok=false means the key names a group its source has not shown yet: reconcile everything. A key of
// a source that is not read names no team (the webhooks drop those first; this covers keys queued
// before a reload removed their source). The pushed groups are those Teams read last, so a key's
// pushed group is read once.
func (s *Sources) Resolve(_ context.Context, key queuekey.Key) (teams []string, ok bool) {
	src, id, isGroup := key.Group()
	if !isGroup {
		return nil, false
	}
	for _, idp := range s.idps {
		if src == idp.key {
			return idp.teamNames(id), true
		}
	}
	if !s.Known(src) {
		s.log.Warn("a group key of no configured source names no team", "key", string(key))
		return nil, true
	}
	s.mu.Lock()
	display, found := s.pushedNames[id]
	s.mu.Unlock()
	if !found {
		return nil, false
	}
	if name, _, ok, err := s.cfg.SCIM.Classify(display); ok && err == nil {
		return []string{name}, true
	}
	return nil, true // not a team group: nothing to do
}

// teams is every team wanted now: the configuration's, the SCIM-pushed groups' and the groups idps
// read last.
func (s *Sources) teams(ctx context.Context, idps []*idpSource) ([]team.Team, error) {
	var groups []source.Group
	if s.pushed != nil {
		var names map[string]string
		var err error
		if groups, names, err = s.pushed.Read(ctx); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.pushedNames = names
		s.mu.Unlock()
	}
	// Sized for every team up front: the daemon builds this set for every reconcile, and with
	// 10,000 teams growing it was most of what the daemon allocated (issue 15).
	n := s.cfg.DesiredTeamCount() + len(groups)
	set := teamSet{teams: make([]team.Team, 0, n), at: make(map[string]int, n)}
	adoptions := s.addYAML(&set)
	if s.pushed != nil {
		set.addGroups(s.cfg, scimpush.Name, s.cfg.SCIM.GroupRule, groups, s.log)
	}
	for _, src := range idps {
		set.addGroups(s.cfg, src.team, src.rule, src.snapshot(), s.log)
	}
	for _, t := range adoptions {
		set.adopt(t)
	}
	s.remember(set)
	return set.teams, nil
}

// addYAML adds the teams list's teams to set, except those marked for adoption, which it returns:
// they go in after the groups, since a group may give such a team (the entry gives its storage).
func (s *Sources) addYAML(set *teamSet) (adoptions []team.Team) {
	for t := range s.cfg.EachDesiredTeam() {
		t.Claims = []string{claimYAML}
		if t.Adopt != nil {
			adoptions = append(adoptions, t)
			continue
		}
		set.add(t)
	}
	return adoptions
}

// readIdPs refreshes the IdP sources as the key asks: everything for a full reconcile (or before
// the first full read), one group for a group key of that source.
func (s *Sources) readIdPs(ctx context.Context, key queuekey.Key) error {
	var errs []error
	src, id, isGroup := key.Group()
	for _, idp := range s.idps {
		idp.mu.Lock()
		never := idp.groups == nil
		idp.mu.Unlock()
		switch {
		case key == queuekey.All || never:
			errs = append(errs, idp.refresh(ctx, s.log))
		case isGroup && src == idp.key:
			errs = append(errs, idp.refreshOne(ctx, id))
		}
	}
	return errors.Join(errs...)
}
