package desired

import (
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source"
	"github.com/byob-agent/byob-agent/team"
)

// storageConfig is a configuration with one profile, so that teams get storage, and extra.
func storageConfig(t *testing.T, extra ...string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.yaml")
	yaml := `
wandb: {scimURL: "http://127.0.0.1:1/scim", deployment: self-managed, auth: {mode: bearer, apiKey: k}}
state: {path: ` + filepath.Join(t.TempDir(), "state.db") + `}
defaultProfile: minio
profiles:
  minio: {provider: s3-compatible, endpoint: "http://127.0.0.1:1", region: us-east-1, credentials: {accessKeyId: a, secretAccessKey: b}, bucket: "wandb-{{ .Team }}"}
` + strings.Join(extra, "")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.LoadOptions{LookupEnv: os.LookupEnv, ReadFile: os.ReadFile})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestTeamSetGroups(t *testing.T) {
	cfg := storageConfig(t)
	log := slog.New(slog.DiscardHandler)
	rule := &config.GroupRule{Prefix: "wandb-", Profile: "minio", Lowercase: true, Roles: []config.RoleRule{
		{Role: team.RoleAdmin, Match: &config.GroupRule{Prefix: "wandb-admins-", Lowercase: true}},
		{Role: team.RoleViewer, Match: &config.GroupRule{Regex: regexp.MustCompile(`^viewers-(?P<team>.+)$`)}},
	}}
	g := func(id, name string, members ...string) source.Group {
		return source.Group{ID: id, Name: name, Members: members}
	}
	type want struct {
		members []string
		roles   map[string]string
		claims  int
	}
	tests := []struct {
		name   string
		yaml   []string // teams of the configuration, claimed first
		groups []source.Group
		want   map[string]want
	}{
		{"team groups become teams", nil,
			[]source.Group{g("1", "wandb-ML", "ada@x.io"), g("2", "other", "bob@x.io")},
			map[string]want{"ml": {members: []string{"ada@x.io"}, claims: 1}}},
		{"role groups add members with a role, and are no team of their own", nil,
			[]source.Group{g("1", "wandb-ml", "ada@x.io"), g("2", "wandb-admins-ml", "bob@x.io"), g("3", "viewers-ml", "cy@x.io", "bob@x.io")},
			map[string]want{"ml": {members: []string{"ada@x.io", "bob@x.io", "cy@x.io"},
				roles: map[string]string{"bob@x.io": "admin", "cy@x.io": "viewer"}, claims: 1}}},
		{"the first role rule wins, whatever the group order", nil,
			[]source.Group{g("1", "viewers-ml", "bob@x.io"), g("2", "wandb-ml"), g("3", "wandb-admins-ml", "bob@x.io")},
			map[string]want{"ml": {members: []string{"bob@x.io"}, roles: map[string]string{"bob@x.io": "admin"}, claims: 1}}},
		{"a role group for a team no group gives is ignored", nil,
			[]source.Group{g("1", "wandb-admins-cv", "bob@x.io")},
			map[string]want{}},
		{"two groups giving one name are a conflict", nil,
			[]source.Group{g("1", "wandb-ml", "ada@x.io"), g("2", "wandb-ML", "bob@x.io")},
			map[string]want{"ml": {members: []string{"ada@x.io"}, claims: 2}}},
		{"a group giving a team of the configuration is a conflict", []string{"ml"},
			[]source.Group{g("1", "wandb-ml", "ada@x.io")},
			map[string]want{"ml": {claims: 2}}},
		{"an invalid team name is left out", nil,
			[]source.Group{g("1", "wandb-no spaces", "ada@x.io")},
			map[string]want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var set teamSet
			for _, n := range tt.yaml {
				set.add(team.Team{Name: n, Source: "yaml", Claims: []string{claimYAML}})
			}
			set.addGroups(cfg, "okta", rule, tt.groups, log)
			got := map[string]team.Team{}
			for _, tm := range set.teams {
				got[tm.Name] = tm
			}
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want))) {
				t.Fatalf("teams %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want)))
			}
			for name, w := range tt.want {
				tm := got[name]
				if len(tm.Claims) != w.claims {
					t.Errorf("%s: claims %q, want %d", name, tm.Claims, w.claims)
				}
				if tm.Source == "okta" && (!slices.Equal(tm.Members, w.members) || !maps.Equal(tm.Roles, w.roles)) {
					t.Errorf("%s: members %v roles %v, want %v %v", name, tm.Members, tm.Roles, w.members, w.roles)
				}
				if tm.Source == "okta" && tm.Storage.Bucket != "wandb-"+name {
					t.Errorf("%s: storage %+v", name, tm.Storage)
				}
			}
		})
	}
}
