package desired

import (
	"fmt"
	"slices"
	"strings"

	"github.com/byob-agent/byob-agent/source/scimpush"
	"github.com/byob-agent/byob-agent/team"
)

// Yielded is a pushed group whose team name another source claims: the other source keeps the team,
// and the pushed group makes none (issue 14: a push must never stop a team it did not make).
type Yielded struct {
	Team      string   `json:"team"`
	Groups    []string `json:"groups"`    // the pushed group(s), as claims: scim group "wandb-ml"
	ClaimedBy []string `json:"claimedBy"` // the other source's claims
}

func (y Yielded) String() string {
	return fmt.Sprintf("%s asks for team %q, which %s gives: the push is ignored; rename the group in the IdP",
		strings.Join(y.Groups, " and "), y.Team, strings.Join(y.ClaimedBy, " and "))
}

// claims maps the team names of the sources other than SCIM pushes to their claims, and marks the
// names pushed groups have (with a nil list).
type claims map[string][]string

func claimsOf(teams []team.Team) claims {
	c := make(claims, len(teams))
	for _, t := range teams {
		if t.Source == scimpush.Name {
			c[t.Name] = nil
		} else {
			c[t.Name] = t.Claims
		}
	}
	return c
}

// remember keeps what a read of every source showed: the claims AdmitPush checks, and the pushed
// groups that yielded, logged when they change.
func (s *Sources) remember(set teamSet) {
	c := claimsOf(set.teams)
	s.mu.Lock()
	before := s.yielded
	s.claims, s.yielded = c, set.yielded
	s.mu.Unlock()
	if slices.EqualFunc(before, set.yielded, func(a, b Yielded) bool { return a.String() == b.String() }) {
		return
	}
	for _, y := range set.yielded {
		s.log.Warn("a pushed SCIM group asks for a team another source gives", "team", y.Team, "detail", y.String())
	}
}

// Yielded returns the pushed groups that yielded their team name at the last read.
func (s *Sources) Yielded() []Yielded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.yielded)
}

// ClaimedError refuses a pushed group a team name another source claims.
type ClaimedError struct {
	Team string
	By   []string
}

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("the team name %q is taken: %s gives it; rename the group", e.Team, strings.Join(e.By, " and "))
}

// QuotaError refuses a pushed group a new team past scim.teamsPerHour.
type QuotaError struct {
	Team    string
	PerHour int
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("team %q would be new, and pushes have already asked for %d new teams in the last hour (scim.teamsPerHour): try again later",
		e.Team, e.PerHour)
}

// AdmitPush decides whether a pushed group may take displayName (when created or renamed): not when
// its team name is one another source gives (the configuration's teams, the IdP groups read last),
// nor when it would be a new team past the quota. A name that makes no team is always admitted.
func (s *Sources) AdmitPush(displayName string, quota *scimpush.Quota) error {
	if s.pushed == nil {
		return nil
	}
	name, role, ok, err := s.cfg.SCIM.Classify(displayName)
	if !ok || err != nil || role != "" {
		return nil // no team of its own (an invalid name is reported when the groups are read)
	}
	s.mu.Lock()
	by, known := s.claims[name]
	s.mu.Unlock()
	switch {
	case by != nil:
		return &ClaimedError{Team: name, By: by}
	case known: // a pushed group's team already
		return nil
	case !quota.Take(name, s.cfg.SCIM.TeamsPerHour):
		return &QuotaError{Team: name, PerHour: s.cfg.SCIM.TeamsPerHour}
	}
	return nil
}
