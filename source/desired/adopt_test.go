package desired

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/team"
)

// A teams-list entry marked for adoption states how to take over the team a group gives, which stays
// the group's (members); alone, it is the team.
func TestAdoptEntry(t *testing.T) {
	cfg := storageConfig(t)
	rule := &config.GroupRule{Prefix: "wandb-", Profile: "minio"}
	stated := team.Storage{Provider: team.ProviderS3Compatible, Bucket: "made-by-hand", Region: "us-east-1", Endpoint: "http://127.0.0.1:1"}
	entry := team.Team{Name: "ml", Profile: "minio", Source: "yaml", Storage: stated, Adopt: &team.Adoption{Repair: true}, Claims: []string{claimYAML}}
	tests := []struct {
		name        string
		groups      []source.Group
		wantSource  string
		wantMembers []string
		wantClaims  int
	}{
		{"a group gives the team: its members, the entry's storage", []source.Group{{ID: "1", Name: "wandb-ml", Members: []string{"ada@x.io"}}}, "okta", []string{"ada@x.io"}, 1},
		{"no group gives it: the entry is the team", []source.Group{{ID: "1", Name: "wandb-cv"}}, "yaml", nil, 1},
		{"two groups give it: still a conflict", []source.Group{{ID: "1", Name: "wandb-ml"}, {ID: "2", Name: "wandb-ml"}}, "okta", nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var set teamSet
			set.addGroups(cfg, "okta", rule, tc.groups, slog.New(slog.DiscardHandler))
			set.adopt(entry)
			i, ok := set.at["ml"]
			if !ok {
				t.Fatal("no team ml")
			}
			tm := set.teams[i]
			if tm.Source != tc.wantSource || !slices.Equal(tm.Members, tc.wantMembers) || len(tm.Claims) != tc.wantClaims ||
				tm.Storage != stated || tm.Adopt == nil || !tm.Adopt.Repair || tm.Profile != "minio" {
				t.Errorf("team = %+v", tm)
			}
			if tm.ManageMembers != (tc.wantSource == "okta") {
				t.Errorf("manage members = %v", tm.ManageMembers)
			}
		})
	}
}
