package desired

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/source/scimpush"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/team"
)

// A pushed group never takes a team name another source gives, whichever is added first: the other
// source's team keeps one claim (no conflict stops it) and the pushed group is reported.
func TestPushedGroupYields(t *testing.T) {
	cfg := storageConfig(t)
	log := slog.New(slog.DiscardHandler)
	rule := &config.GroupRule{Prefix: "wandb-", Profile: "minio"}
	pushed := []source.Group{{ID: "p1", Name: "wandb-ml", Members: []string{"eve@x.io"}}, {ID: "p2", Name: "wandb-cv"}}
	okta := []source.Group{{ID: "o1", Name: "wandb-ml", Members: []string{"ada@x.io"}}}
	tests := []struct {
		name  string
		build func(*teamSet)
		want  map[string]string // team -> its source
	}{
		{"push after okta", func(s *teamSet) {
			s.addGroups(cfg, "okta", rule, okta, log)
			s.addGroups(cfg, scimpush.Name, rule, pushed, log)
		}, map[string]string{"ml": "okta", "cv": scimpush.Name}},
		{"push before okta", func(s *teamSet) {
			s.addGroups(cfg, scimpush.Name, rule, pushed, log)
			s.addGroups(cfg, "okta", rule, okta, log)
		}, map[string]string{"ml": "okta", "cv": scimpush.Name}},
		{"push after the configuration", func(s *teamSet) {
			s.add(team.Team{Name: "ml", Source: "yaml", Claims: []string{claimYAML}})
			s.addGroups(cfg, scimpush.Name, rule, pushed, log)
		}, map[string]string{"ml": "yaml", "cv": scimpush.Name}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var set teamSet
			tt.build(&set)
			got := map[string]string{}
			for _, tm := range set.teams {
				got[tm.Name] = tm.Source
				if len(tm.Claims) != 1 {
					t.Errorf("team %s has claims %q: a conflict would stop it", tm.Name, tm.Claims)
				}
				if tm.Name == "ml" && slices.Contains(tm.Members, "eve@x.io") {
					t.Errorf("the pushed group's members reached team ml: %v", tm.Members)
				}
			}
			if len(got) != len(tt.want) || got["ml"] != tt.want["ml"] || got["cv"] != tt.want["cv"] {
				t.Errorf("teams %v, want %v", got, tt.want)
			}
			if len(set.yielded) != 1 || set.yielded[0].Team != "ml" || !slices.Equal(set.yielded[0].Groups, []string{`scim group "wandb-ml"`}) {
				t.Errorf("yielded %+v", set.yielded)
			}
		})
	}
}

// AdmitPush refuses a pushed group the name of a team the configuration or an IdP gives, and new
// teams past scim.teamsPerHour; the same sources then keep the refused names out of the teams.
func TestAdmitPush(t *testing.T) {
	ctx := context.Background()
	cfg := storageConfig(t, "server: {baseURL: https://agent.example.com}\n",
		"scim: {tokens: [scim-token-0123456789], teamsPerHour: 2, groups: {prefix: wandb-}}\n",
		"teams:\n  - name: from-yaml\n")
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logs bytes.Buffer
	okta := &stubSource{groups: []source.Group{{ID: "o1", Name: "wandb-from-okta"}}}
	s := New(cfg, []IdP{{Key: "okta", Name: "okta", Source: okta, Rule: &config.GroupRule{Prefix: "wandb-", Profile: "minio"}}},
		scimpush.New(db), slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Unix(1_700_000_000, 0)
	quota := scimpush.NewQuota(func() time.Time { return now })

	// Before any read the configuration's teams are known already.
	var claimed *ClaimedError
	if err := s.AdmitPush("wandb-from-yaml", quota); !errors.As(err, &claimed) || !strings.Contains(err.Error(), "the configuration's teams list gives it") {
		t.Errorf("a YAML team's name: %v", err)
	}
	if _, err := s.Teams(ctx, queuekey.All); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want string // "" admitted, else part of the error
	}{
		{"wandb-from-okta", `okta group "wandb-from-okta" gives it`},
		{"not-a-team-group", ""},
		{"wandb-new-1", ""},
		{"wandb-new-1", ""}, // asked again: not counted twice
		{"wandb-new-2", ""},
		{"wandb-new-3", "already asked for 2 new teams in the last hour"},
		{"wandb-bad name", ""}, // no valid team: reported when read, never a team
	}
	for _, tt := range tests {
		err := s.AdmitPush(tt.name, quota)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("AdmitPush(%q) = %v, want %q", tt.name, err, tt.want)
		}
	}

	// A push stored anyway (before YAML gained the name, say) yields at the next read, and is logged.
	if _, err := db.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "wandb-from-okta"}); err != nil {
		t.Fatal(err)
	}
	teams, err := s.Teams(ctx, queuekey.All)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(teams, func(tm team.Team) bool { return tm.Name == "from-okta" })
	if i < 0 || teams[i].Source != "okta" || len(teams[i].Claims) != 1 {
		t.Fatalf("teams %+v", teams)
	}
	if y := s.Yielded(); len(y) != 1 || y[0].Team != "from-okta" || !strings.Contains(logs.String(), "a pushed SCIM group asks for a team another source gives") {
		t.Errorf("yielded %+v, log:\n%s", y, logs.String())
	}
	// A pushed group's own team is no new team.
	if _, err := db.CreateSCIMGroup(ctx, state.SCIMGroup{DisplayName: "wandb-pushed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Teams(ctx, queuekey.All); err != nil {
		t.Fatal(err)
	}
	if err := s.AdmitPush("wandb-pushed", quota); err != nil {
		t.Errorf("the name of a pushed team, at quota: %v", err)
	}
}
