package config

import (
	"reflect"
	"testing"

	"github.com/byob-agent/byob-agent/team"
)

func TestLoadAdopt(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want team.Team
	}{
		{
			name: "bucket and path replace the profile's",
			yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt: {bucket: made-by-hand, path: runs/vision}\n",
			want: team.Team{Name: "vision", Profile: "main", Source: "yaml", Adopt: &team.Adoption{},
				Storage: team.Storage{Provider: "s3-compatible", Bucket: "made-by-hand", Path: "runs/vision", Region: "us-east-1", Endpoint: "http://127.0.0.1:8333"}},
		},
		{
			name: "no path, repair allowed",
			yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: made-by-hand\n      repair: true\n",
			want: team.Team{Name: "vision", Profile: "main", Source: "yaml", Adopt: &team.Adoption{Repair: true},
				Storage: team.Storage{Provider: "s3-compatible", Bucket: "made-by-hand", Region: "us-east-1", Endpoint: "http://127.0.0.1:8333"}},
		},
		{
			name: "aws profile creating keys: the stated key replaces creation",
			yaml: wandbOK + profilesOK + "teams:\n  - name: vision\n    adopt: {bucket: made-by-hand, kmsKeyArn: \"arn:aws:kms:us-east-1:123456789012:key/abc-1\"}\n",
			want: team.Team{Name: "vision", Profile: "main", Source: "yaml", Adopt: &team.Adoption{},
				Storage: team.Storage{Provider: "aws", Bucket: "made-by-hand", Region: "us-east-1", KMSKeyARN: "arn:aws:kms:us-east-1:123456789012:key/abc-1"}},
		},
		{
			name: "shared profile: the team's own path in another bucket",
			yaml: wandbOK + sharedOK + "teams:\n  - name: vision\n    adopt: {bucket: old-shared, path: vision}\n",
			want: team.Team{Name: "vision", Profile: "main", Source: "yaml", Adopt: &team.Adoption{},
				Storage: team.Storage{Provider: "s3-compatible", Bucket: "old-shared", Path: "vision", Region: "us-east-1", Endpoint: "http://127.0.0.1:8333", Shared: true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			teams := mustLoad(t, tc.yaml, nil, map[string]string{"WANDB_API_KEY": "k", "S3_SECRET": "s"}).DesiredTeams()
			if len(teams) != 1 || !reflect.DeepEqual(teams[0], tc.want) {
				t.Errorf("teams = %+v\nwant %+v", teams, tc.want)
			}
		})
	}
}

func TestLoadAdoptBad(t *testing.T) {
	env := map[string]string{"WANDB_API_KEY": "k", "S3_SECRET": "s"}
	runBad(t, []badCase{
		{name: "no bucket", yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt: {path: x} #<\n", env: env,
			field: "teams[0].adopt.bucket", msg: "is required: the bucket (Azure: container) the W&B team was created with"},
		{name: "placeholder left", yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: \"<FILL IN>\" #<\n", env: env,
			field: "teams[0].adopt.bucket", msg: "still holds the placeholder <FILL IN>"},
		{name: "placeholder in path", yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: b-1\n      path: \"<FILL IN>\" #<\n", env: env,
			field: "teams[0].adopt.path", msg: "still holds the placeholder <FILL IN>", count: 2},
		{name: "invalid bucket name", yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: Bad_Bucket #<\n", env: env,
			field: "teams[0].adopt.bucket", msg: "Bad_Bucket"},
		{name: "unknown key", yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: b-1\n      storage: x #<\n", env: env,
			field: "teams[0].adopt.storage", msg: "unknown key; expected one of: bucket, path, kmsKeyArn, repair"},
		{name: "repair not a bool", yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: b-1\n      repair: yes please #<\n", env: env,
			field: "teams[0].adopt.repair", msg: "expected true or false"},
		{name: "key required when the profile creates keys", yaml: wandbOK + profilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: b-1 #<\n", env: env,
			field: "teams[0].adopt.kmsKeyArn", msg: "is required: profile \"main\" creates a KMS key per team"},
		{name: "key not an ARN", yaml: wandbOK + profilesOK + "teams:\n  - name: vision\n    adopt:\n      bucket: b-1\n      kmsKeyArn: mykey #<\n", env: env,
			field: "teams[0].adopt.kmsKeyArn", msg: "is not a KMS key ARN"},
		{name: "shared profile without path", yaml: wandbOK + sharedOK + "teams:\n  - name: vision\n    adopt:\n      bucket: b-1 #<\n", env: env,
			field: "teams[0].adopt.path", msg: "profile \"main\" is shared"},
		{name: "two teams state one bucket", yaml: wandbOK + s3ProfilesOK + "teams:\n  - name: vision\n    adopt: {bucket: b-1}\n  - name: audio #<\n    adopt: {bucket: b-1}\n", env: env,
			field: "teams[1]", msg: "which team \"vision\""},
		{name: "in the teams file", yaml: wandbOK + s3ProfilesOK + "teamsFile: teams.yaml\n", env: env, file: "teams.yaml",
			files: map[string]string{"teams.yaml": "teams:\n  - name: vision\n    adopt:\n      bucket: \"<FILL IN>\" #<\n"},
			field: "teams[0].adopt.bucket", msg: "still holds the placeholder"},
	})
}

// An adopt entry may state the storage of a team that a group rule's names give: the group stays the
// team's source. Without adopt, that is two sources claiming one team (TestLoadBadSources).
func TestLoadAdoptNamedGroup(t *testing.T) {
	yaml := wandbOK + s3ProfilesOK + "sources:\n  okta:\n    orgURL: https://acme.okta.com\n    apiToken: t\n    groups: {names: [ml]}\n" +
		"teams:\n  - name: ml\n    adopt: {bucket: made-by-hand}\n"
	teams := mustLoad(t, yaml, nil, map[string]string{"WANDB_API_KEY": "k", "S3_SECRET": "s"}).DesiredTeams()
	if len(teams) != 1 || teams[0].Adopt == nil || teams[0].Storage.Bucket != "made-by-hand" {
		t.Errorf("teams = %+v", teams)
	}
}
