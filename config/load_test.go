package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/team"
)

func TestLoadGood(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		files map[string]string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "defaults",
			yaml: wandbOK + profilesOK,
			check: func(t *testing.T, c *Config) {
				want := Config{
					File: configPath,
					Wandb: Wandb{SCIMURL: "https://acme.wandb.io/scim", Deployment: DeploymentDedicated,
						Auth: Auth{Mode: AuthBearer}, Timeout: 30 * time.Second},
					State:          State{Path: "/cfg/byob-agent.db"},
					Sync:           Sync{Concurrency: 8, DriftCheckInterval: 24 * time.Hour},
					DefaultProfile: "main",
					Server:         Server{Listen: "127.0.0.1:8080", ShutdownTimeout: 30 * time.Second, MaxConnections: DefaultMaxConnections},
					Schedule:       "@every 10m",
					Workers:        4,
					Members:        Members{Mode: MembersOwned, MaxRemoveShare: 0.5, KeepOnOrphan: true},
				}
				got := *c
				got.Wandb.Auth.APIKey, got.profiles, got.teams = Secret{}, nil, nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("config = %+v, want %+v", got, want)
				}
				if k := c.Wandb.Auth.APIKey.Reveal(); k != "wandb-key-value" {
					t.Errorf("api key = %q", k)
				}
				p, ok := c.Profile("main")
				if !ok {
					t.Fatal("no profile main")
				}
				if p.Provider != team.ProviderAWS || p.Region != "us-east-1" || p.PathStyle || p.Credentials != nil ||
					p.PrincipalARN != principalDedicated || p.KMS != (KMS{Create: true}) || p.AdoptExisting {
					t.Errorf("profile = %+v", p)
				}
				if len(c.DesiredTeams()) != 0 {
					t.Errorf("teams = %v, want none", c.DesiredTeams())
				}
			},
		},
		{
			name: "everything set",
			yaml: `wandb:
  scimURL: https://api.wandb.ai/scim/v2/
  deployment: multi-tenant
  auth:
    mode: basic-user
    username: admin
    apiKeyFile: wandb.key
  timeout: 5s
state:
  path: /var/lib/byob-agent/state.db
sync:
  concurrency: ${CONCURRENCY}
  driftCheckInterval: 0
defaultProfile: aws
profiles:
  aws:
    provider: aws
    region: eu-west-1
    endpoint: http://127.0.0.1:4566
    pathStyle: true
    credentials:
      accessKeyId: AKIAEXAMPLE
      secretAccessKeyFile: /run/aws.key
      sessionToken: ${TOKEN}
    bucket: "acme-{{ .Profile }}-{{ .Team }}"
    principal: arn:aws:iam::123456789012:role/wandb
    kms:
      keyArn: arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
      endpoint: http://127.0.0.1:4599
    awsExternalId: 12345
    adoptExisting: true
    timeout: 2s
  dedicated-preset:
    provider: aws
    region: us-east-1
    bucket: "d-{{ .Team }}"
    principal: dedicated
    kms: {create: true}
teams:
  - name: zeta
  - name: alpha
    profile: dedicated-preset
`,
			files: map[string]string{"wandb.key": "wandb-file-key\n", "/run/aws.key": "aws-file-secret\r\n"},
			env:   map[string]string{"CONCURRENCY": "32", "TOKEN": "session-token-value"},
			check: func(t *testing.T, c *Config) {
				w := c.Wandb
				if w.SCIMURL != "https://api.wandb.ai/scim/v2" || w.Deployment != DeploymentMultiTenant || w.Timeout != 5*time.Second ||
					w.Auth.Mode != AuthBasicUser || w.Auth.Username != "admin" || w.Auth.APIKey.Reveal() != "wandb-file-key" {
					t.Errorf("wandb = %+v (key %q)", w, w.Auth.APIKey.Reveal())
				}
				if c.State.Path != "/var/lib/byob-agent/state.db" || c.Sync != (Sync{Concurrency: 32}) || c.DefaultProfile != "aws" {
					t.Errorf("state %+v, sync %+v, default %q", c.State, c.Sync, c.DefaultProfile)
				}
				p, _ := c.Profile("aws")
				cr := p.Credentials
				if cr == nil || cr.AccessKeyID != "AKIAEXAMPLE" || cr.SecretAccessKey.Reveal() != "aws-file-secret" || cr.SessionToken.Reveal() != "session-token-value" {
					t.Errorf("credentials = %+v", cr)
				}
				if !p.PathStyle || p.Endpoint != "http://127.0.0.1:4566" || p.PrincipalARN != "arn:aws:iam::123456789012:role/wandb" ||
					p.KMS.Endpoint != "http://127.0.0.1:4599" || p.AWSExternalID != "12345" || !p.AdoptExisting || p.Timeout != 2*time.Second {
					t.Errorf("profile = %+v", p)
				}
				if d, _ := c.Profile("dedicated-preset"); d.PrincipalARN != principalDedicated || d.Timeout != DefaultTimeout {
					t.Errorf("preset principal = %q, timeout %v (want the default)", d.PrincipalARN, d.Timeout)
				}
				if got, want := c.ProfileNames(), []string{"aws", "dedicated-preset"}; !reflect.DeepEqual(got, want) {
					t.Errorf("ProfileNames = %v, want %v", got, want)
				}
				want := []team.Team{
					{Name: "alpha", Profile: "dedicated-preset", Source: "yaml", Storage: team.Storage{
						Provider: "aws", Bucket: "d-alpha", Region: "us-east-1", CreateKMSKey: true}},
					{Name: "zeta", Profile: "aws", Source: "yaml", Storage: team.Storage{
						Provider: "aws", Bucket: "acme-aws-zeta", Region: "eu-west-1", Endpoint: "http://127.0.0.1:4566",
						KMSKeyARN: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", AWSExternalID: "12345"}},
				}
				if got := c.DesiredTeams(); !reflect.DeepEqual(got, want) {
					t.Errorf("DesiredTeams =\n%+v\nwant\n%+v", got, want)
				}
			},
		},
		{
			name:  "s3-compatible with teams file",
			yaml:  wandbOK + s3ProfilesOK + "teams:\n  - name: b-team\nteamsFile: more/teams.yaml\n",
			files: map[string]string{"more/teams.yaml": "teams:\n  - name: a-team\n    profile: main\n"},
			check: func(t *testing.T, c *Config) {
				p, _ := c.Profile("main")
				if !p.PathStyle || p.PrincipalARN != "" || p.KMS != (KMS{}) || p.Credentials.SecretAccessKey.Reveal() != "s3-secret-value" {
					t.Errorf("profile = %+v", p)
				}
				st := func(name string) team.Storage {
					return team.Storage{Provider: "s3-compatible", Bucket: "s-" + name, Path: "wandb/" + name, Region: "us-east-1", Endpoint: "http://127.0.0.1:8333"}
				}
				want := []team.Team{
					{Name: "a-team", Profile: "main", Source: "yaml", Storage: st("a-team")},
					{Name: "b-team", Profile: "main", Source: "yaml", Storage: st("b-team")},
				}
				if got := c.DesiredTeams(); !reflect.DeepEqual(got, want) {
					t.Errorf("DesiredTeams = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "pathStyle off, state relative, literal dollar",
			yaml: wandbOK + strings.Replace(s3ProfilesOK, "    bucket: s-{{ .Team }}\n", "    pathStyle: false\n    bucket: cost-$$100-{{ .Team }}\n", 1) +
				"state:\n  path: data/state.db\nteams: []\n",
			check: func(t *testing.T, c *Config) {
				if p, _ := c.Profile("main"); p.PathStyle || p.bucketText != "cost-$$100-{{ .Team }}" {
					t.Errorf("profile = %+v", p)
				}
				if c.State.Path != "/cfg/data/state.db" {
					t.Errorf("state path = %q", c.State.Path)
				}
			},
		},
		{
			name: "state in PostgreSQL",
			yaml: wandbOK + profilesOK + "state:\n  postgres:\n    dsn: ${PG_DSN}\n    leaseDuration: 30s\n    renewDeadline: 20s\n",
			env:  map[string]string{"PG_DSN": "postgres://agent:pw@db:5432/byob"},
			check: func(t *testing.T, c *Config) {
				p := c.State.Postgres
				if p == nil || p.DSN.Reveal() != "postgres://agent:pw@db:5432/byob" || p.LeaseDuration != 30*time.Second || p.RenewDeadline != 20*time.Second || p.RetryPeriod != 0 {
					t.Errorf("state.postgres = %+v", p)
				}
			},
		},
		{
			name:  "state in PostgreSQL, DSN from a file",
			yaml:  wandbOK + profilesOK + "state:\n  postgres:\n    dsnFile: pg.dsn\n",
			files: map[string]string{"pg.dsn": "host=db dbname=byob\n"},
			check: func(t *testing.T, c *Config) {
				if p := c.State.Postgres; p == nil || p.DSN.Reveal() != "host=db dbname=byob" {
					t.Errorf("state.postgres = %+v", p)
				}
			},
		},
		{
			name: "literal ${ in a value",
			yaml: wandbOK + profilesOK + "    awsExternalId: a$${b}\n",
			check: func(t *testing.T, c *Config) {
				if p, _ := c.Profile("main"); p.AWSExternalID != "a${b}" {
					t.Errorf("external id = %q", p.AWSExternalID)
				}
			},
		},
		{
			name: "self-managed with explicit principal, presets by name",
			yaml: strings.Replace(wandbOK, "dedicated", "self-managed", 1) + profilesOK +
				"    principal: arn:aws-us-gov:iam::123456789012:role/wandb-server\n" +
				"  mt:\n    provider: aws\n    region: us-east-1\n    bucket: mt-{{ .Team }}\n    principal: multi-tenant\n    kms: {create: true}\n" +
				"defaultProfile: main\nteams:\n  - name: ml\n  - name: nlp\n    profile: mt\n",
			check: func(t *testing.T, c *Config) {
				if p, _ := c.Profile("main"); p.PrincipalARN != "arn:aws-us-gov:iam::123456789012:role/wandb-server" {
					t.Errorf("principal = %q", p.PrincipalARN)
				}
				if p, _ := c.Profile("mt"); p.PrincipalARN != principalMultiTenant {
					t.Errorf("principal = %q", p.PrincipalARN)
				}
				teams := c.DesiredTeams()
				if len(teams) != 2 || teams[0].Profile != "main" || teams[1].Profile != "mt" {
					t.Errorf("teams = %+v", teams)
				}
			},
		},
		{
			name: "gcs defaults (dedicated)",
			yaml: wandbOK + gcsOK + "teams:\n  - name: ml\n",
			check: func(t *testing.T, c *Config) {
				p, _ := c.Profile("main")
				if p.Provider != team.ProviderGCS || p.Topology != TopologyPerTeam || p.Region != "us-east1" || p.Project != "acme-ml" ||
					p.ServiceAccount != gcsServiceAccountDedicated || p.SoftDeleteDays != 7 || p.GCSCredentialsJSON.Reveal() != "" ||
					p.Endpoint != "" || p.PrincipalARN != "" || p.Credentials != nil || p.RequireRegistered {
					t.Errorf("profile = %+v", p)
				}
				want := []team.Team{{Name: "ml", Profile: "main", Source: "yaml", Storage: team.Storage{Provider: "gcs", Bucket: "g-ml", Region: "us-east1"}}}
				if got := c.DesiredTeams(); !reflect.DeepEqual(got, want) {
					t.Errorf("DesiredTeams = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "gcs multi-tenant with key, endpoint, soft delete",
			yaml: on("multi-tenant") + gcsOK + "    endpoint: http://127.0.0.1:4443/storage/v1/\n    softDeleteDays: 90\n    requireRegistered: false\n" +
				"    credentials:\n      serviceAccountKey: ${GCS_KEY}\n" +
				"  by-file:\n    provider: gcs\n    region: EU\n    project: example.com:acme-ml\n    bucket: f-{{ .Team }}\n    principal: dedicated\n" +
				"    credentials:\n      serviceAccountKeyFile: keys/sa.json\n",
			files: map[string]string{"keys/sa.json": gcsKey + "\n"},
			check: func(t *testing.T, c *Config) {
				p, _ := c.Profile("main")
				if p.ServiceAccount != gcsServiceAccountMultiTenant || p.SoftDeleteDays != 90 || p.Endpoint != "http://127.0.0.1:4443/storage/v1/" || p.GCSCredentialsJSON.Reveal() != gcsKey {
					t.Errorf("profile = %+v", p)
				}
				f, _ := c.Profile("by-file")
				if f.ServiceAccount != gcsServiceAccountDedicated || f.GCSCredentialsJSON.Reveal() != gcsKey || f.Project != "example.com:acme-ml" {
					t.Errorf("profile = %+v", f)
				}
			},
		},
		{
			name: "gcs self-managed with its service account",
			yaml: on("self-managed") + gcsOK + "    principal: wandb@acme-ml.iam.gserviceaccount.com\n    requireRegistered: true\n",
			check: func(t *testing.T, c *Config) {
				if p, _ := c.Profile("main"); p.ServiceAccount != "wandb@acme-ml.iam.gserviceaccount.com" || !p.RequireRegistered {
					t.Errorf("profile = %+v", p)
				}
			},
		},
		{
			name: "azure defaults",
			yaml: wandbOK + azureOK + "teams:\n  - name: ml\n",
			check: func(t *testing.T, c *Config) {
				p, _ := c.Profile("main")
				if p.Account != "acmewandb" || p.Endpoint != "https://acmewandb.blob.core.windows.net/" || p.SoftDeleteDays != 7 ||
					p.AccountKey.Reveal() != "YXp1cmUta2V5LXZhbHVl" || p.ConnectionString.Reveal() != "" || p.UseIdentity ||
					p.TenantID != "11111111-2222-3333-4444-555555555555" || p.ClientID != "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" {
					t.Errorf("profile = %+v", p)
				}
				want := []team.Team{{Name: "ml", Profile: "main", Source: "yaml", Storage: team.Storage{
					Provider: "azure", Bucket: "a-ml", Endpoint: "https://acmewandb.blob.core.windows.net/", Account: "acmewandb",
					AzureTenantID: "11111111-2222-3333-4444-555555555555", AzureClientID: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}}}
				if got := c.DesiredTeams(); !reflect.DeepEqual(got, want) {
					t.Errorf("DesiredTeams = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "azure connection string, identity, same container name in two accounts",
			yaml: on("self-managed") + edit(azureOK, "accountKey: ${AZURE_KEY}", "connectionStringFile: az.conn") +
				"    endpoint: http://127.0.0.1:10000/acmewandb\n    region: westeurope\n    softDeleteDays: 365\n    requireRegistered: true\n" +
				edit(azureOK, "profiles:\n  main:", "  mi:", "acmewandb", "acmeother", "accountKey: ${AZURE_KEY}", "identity: true", `"a-{{ .Team }}"`, `"a-{{ .Team }}"`) +
				"teams:\n  - name: ml\n    profile: main\n  - name: ml2\n    profile: mi\n",
			files: map[string]string{"az.conn": "DefaultEndpointsProtocol=http;AccountName=acmewandb;AccountKey=c2VjcmV0;BlobEndpoint=http://127.0.0.1:10000/acmewandb;\n"},
			check: func(t *testing.T, c *Config) {
				p, _ := c.Profile("main")
				if p.ConnectionString.Reveal() == "" || p.AccountKey.Reveal() != "" || p.UseIdentity || p.Endpoint != "http://127.0.0.1:10000/acmewandb" ||
					p.Region != "westeurope" || p.SoftDeleteDays != 365 || !p.RequireRegistered {
					t.Errorf("profile = %+v", p)
				}
				if mi, _ := c.Profile("mi"); !mi.UseIdentity || mi.Account != "acmeother" || mi.Endpoint != "https://acmeother.blob.core.windows.net/" {
					t.Errorf("profile = %+v", mi)
				}
			},
		},
		{
			name: "coreweave principals and org-wide access",
			yaml: on("self-managed") + coreweaveOK + "    region: US-EAST-04A\n    orgWideAccess: cw1a2b\n" +
				edit(coreweaveOK, "profiles:\n  main:", "  mt:", `"c-{{ .Team }}"`, `"m-{{ .Team }}"`) + "    principal: multi-tenant\n    endpoint: https://cwobject.com/\n" +
				edit(coreweaveOK, "profiles:\n  main:", "  own:", `"c-{{ .Team }}"`, `"o-{{ .Team }}"`) + "    principal: arn:aws:iam::wandb:static/wandb-integration-eu\n" +
				"defaultProfile: main\nteams:\n  - name: ml\n",
			check: func(t *testing.T, c *Config) {
				p, _ := c.Profile("main")
				if p.Endpoint != DefaultCoreWeaveEndpoint || p.PrincipalARN != coreweavePrincipal || p.OrgID != "acme" || p.OrgWideAccess != "cw1a2b" ||
					p.Region != "US-EAST-04A" || p.Credentials.AccessKeyID != "CWKEY" || p.Credentials.SecretAccessKey.Reveal() != "cw-secret-value" || p.PathStyle {
					t.Errorf("profile = %+v", p)
				}
				if mt, _ := c.Profile("mt"); mt.PrincipalARN != coreweavePrincipalMultiTenant || mt.Endpoint != "https://cwobject.com/" {
					t.Errorf("profile = %+v", mt)
				}
				if own, _ := c.Profile("own"); own.PrincipalARN != "arn:aws:iam::wandb:static/wandb-integration-eu" {
					t.Errorf("profile = %+v", own)
				}
				want := []team.Team{{Name: "ml", Profile: "main", Source: "yaml", Storage: team.Storage{
					Provider: "coreweave", Bucket: "c-ml", Region: "US-EAST-04A", Endpoint: DefaultCoreWeaveEndpoint}}}
				if got := c.DesiredTeams(); !reflect.DeepEqual(got, want) {
					t.Errorf("DesiredTeams = %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "shared topology",
			yaml: wandbOK + sharedOK + "    requireRegistered: true\n" + edit(s3ProfilesOK, "profiles:\n  main:", "  solo:") +
				"defaultProfile: main\nteams:\n  - name: nlp\n  - name: ml\n  - name: ml-x\n  - name: cv\n    profile: solo\n",
			check: func(t *testing.T, c *Config) {
				p, _ := c.Profile("main")
				if p.Topology != TopologyShared || !p.RequireRegistered || p.sharedBucket != "wandb-shared" {
					t.Errorf("profile = %+v", p)
				}
				shared := func(name string) team.Team {
					return team.Team{Name: name, Profile: "main", Source: "yaml", Storage: team.Storage{Provider: "s3-compatible", Bucket: "wandb-shared",
						Path: "teams/" + name, Region: "us-east-1", Endpoint: "http://127.0.0.1:8333", Shared: true}}
				}
				want := []team.Team{
					{Name: "cv", Profile: "solo", Source: "yaml", Storage: team.Storage{Provider: "s3-compatible", Bucket: "s-cv", Path: "wandb/cv", Region: "us-east-1", Endpoint: "http://127.0.0.1:8333"}},
					shared("ml"), shared("ml-x"), shared("nlp"),
				}
				if got := c.DesiredTeams(); !reflect.DeepEqual(got, want) {
					t.Errorf("DesiredTeams =\n%+v\nwant\n%+v", got, want)
				}
			},
		},
		{
			name: "shared aws bucket, same name on two s3-compatible servers",
			yaml: wandbOK + edit(profilesOK, `"wandb-{{ .Team }}"`, "acme-shared") + "    topology: shared\n    path: \"{{ .Profile }}/{{ .Team }}\"\n" +
				edit(s3ProfilesOK, "profiles:\n  main:", "  a:", "s-{{ .Team }}", "acme-shared") +
				edit(s3ProfilesOK, "profiles:\n  main:", "  b:", "s-{{ .Team }}", "acme-shared", "8333", "9000") +
				"teams:\n  - name: ml\n    profile: main\n  - name: cv\n    profile: a\n  - name: rl\n    profile: b\n",
			check: func(t *testing.T, c *Config) {
				teams := c.DesiredTeams()
				if len(teams) != 3 || teams[1].Storage.Path != "main/ml" || !teams[1].Storage.Shared || teams[1].Storage.KMSKeyARN != "" || !teams[1].Storage.CreateKMSKey {
					t.Errorf("teams = %+v", teams)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustLoad(t, tc.yaml, tc.files, tc.env))
		})
	}
}

// TestExampleConfig keeps config.example.yaml loadable: it is read from disk, with a fake environment.
// Its commented-out profiles are uncommented and loaded too, so that they stay correct.
func TestExampleConfig(t *testing.T) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const keyFile, directoryKeyFile = "/run/secrets/gcp-service-account.json", "/run/secrets/google-directory.json"
	directoryKey := googleKey(t, nil)
	required := map[string]string{"WANDB_API_KEY": "k", "MINIO_ACCESS_KEY": "a", "MINIO_SECRET_KEY": "s", "AZURE_STORAGE_KEY": "YXp1cmUta2V5"}
	load := func(text string, env map[string]string) (*Config, error) {
		return Load("/example/config.yaml", LoadOptions{
			LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
			ReadFile: func(p string) ([]byte, error) {
				switch p {
				case "/example/config.yaml":
					return []byte(text), nil
				case keyFile:
					return []byte(gcsKey), nil
				case directoryKeyFile:
					return []byte(directoryKey), nil
				}
				return nil, fs.ErrNotExist
			},
		})
	}

	cfg, err := load(string(example), required)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	byProvider := map[string][]team.Team{}
	for _, tm := range cfg.DesiredTeams() {
		byProvider[tm.Storage.Provider] = append(byProvider[tm.Storage.Provider], tm)
	}
	if len(byProvider[team.ProviderAWS]) < 3 || len(byProvider[team.ProviderS3Compatible]) < 3 || len(byProvider[team.ProviderAzure]) != 1 {
		t.Errorf("teams by provider = %v, want 3 aws, 3 s3-compatible (one per-team, two shared), 1 azure", byProvider)
	}
	shared := 0
	for _, tm := range byProvider[team.ProviderS3Compatible] {
		if tm.Storage.Shared {
			shared++
			if tm.Storage.Bucket != "acme-wandb-shared" || tm.Storage.Path != "teams/"+tm.Name {
				t.Errorf("shared team storage = %+v", tm.Storage)
			}
		}
	}
	if shared != 2 {
		t.Errorf("%d teams in the shared bucket, want 2", shared)
	}
	if az := byProvider[team.ProviderAzure]; len(az) == 1 && (az[0].Storage.Account != "acmewandb" ||
		az[0].Storage.Endpoint != "https://acmewandb.blob.core.windows.net/" || az[0].Storage.AzureTenantID == "" || az[0].Storage.AzureClientID == "") {
		t.Errorf("azure team storage = %+v", az[0].Storage)
	}

	// Every variable it documents as required is needed.
	for name := range required {
		env := maps.Clone(required)
		delete(env, name)
		if _, err := load(string(example), env); err == nil || !strings.Contains(err.Error(), "environment variable "+name+" is not set") {
			t.Errorf("without %s: %v", name, err)
		}
	}

	// The commented-out profiles load once uncommented.
	text := string(example)
	for _, name := range []string{"gcs-main", "coreweave"} {
		text = uncomment(t, text, "  # "+name+":")
	}
	env := maps.Clone(required)
	env["CW_ACCESS_KEY_ID"], env["CW_SECRET_ACCESS_KEY"] = "cw-a", "cw-s"
	cfg, err = load(text, env)
	if err != nil {
		t.Fatalf("Load with the commented profiles: %v", err)
	}
	g, _ := cfg.Profile("gcs-main")
	cw, _ := cfg.Profile("coreweave")
	if g.Provider != team.ProviderGCS || g.ServiceAccount != gcsServiceAccountDedicated || g.GCSCredentialsJSON.Reveal() != gcsKey ||
		cw.Provider != team.ProviderCoreWeave || cw.PrincipalARN != coreweavePrincipal || cw.Credentials.AccessKeyID != "cw-a" || cw.OrgID == "" {
		t.Errorf("gcs profile %+v, coreweave profile %+v", g, cw)
	}
	for _, p := range []Profile{g, cw} {
		if _, err := p.Storage("ml"); err != nil {
			t.Errorf("profile %s: %v", p.Name, err)
		}
	}

	// So do the commented-out daemon settings, with every variable they name needed.
	text = uncomment(t, text, "# server:")
	daemonEnv := map[string]string{"SCIM_TOKEN": "scim-token-0123456789", "OKTA_HOOK_SECRET": "okta-hook-secret-0123", "GRAPH_CLIENT_STATE": "graph-client-state-0123", "WEBHOOK_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZg==",
		"BYOB_ADMIN_TOKEN": "admin-token-0123456789"}
	maps.Copy(env, daemonEnv)
	if cfg, err = load(text, env); err != nil {
		t.Fatalf("Load with the daemon settings: %v", err)
	}
	if srv := cfg.Server; srv.Listen != "127.0.0.1:8080" || srv.BaseURL != "https://byob.example.com" || srv.ShutdownTimeout != 30*time.Second ||
		srv.AdminToken.Reveal() != "admin-token-0123456789" ||
		cfg.Schedule != DefaultSchedule || cfg.Workers != DefaultWorkers {
		t.Errorf("server %+v, schedule %q, workers %d", cfg.Server, cfg.Schedule, cfg.Workers)
	}
	w := cfg.Webhooks
	if cfg.SCIM == nil || w.Okta == nil || w.Graph == nil || w.Generic == nil || w.Generic.Tolerance != 5*time.Minute {
		t.Fatalf("scim %+v, webhooks %+v", cfg.SCIM, w)
	}
	name, ok, err := cfg.SCIM.TeamName("wandb-ml")
	if name != "ml" || !ok || err != nil {
		t.Errorf("TeamName = %q, %v, %v", name, ok, err)
	}
	if st, err := cfg.Storage(cfg.SCIM.Profile, name); err != nil || st.Bucket != "acme-wandb-ml" {
		t.Errorf("Storage = %+v, %v", st, err)
	}
	for name := range daemonEnv {
		e := maps.Clone(env)
		delete(e, name)
		if _, err := load(text, e); err == nil || !strings.Contains(err.Error(), "environment variable "+name+" is not set") {
			t.Errorf("without %s: %v", name, err)
		}
	}

	// And the commented-out sources and members, with every variable they name needed.
	text = uncomment(t, text, "# sources:")
	sourcesEnv := map[string]string{"OKTA_API_TOKEN": "okta-token", "ENTRA_CLIENT_SECRET": "entra-secret"}
	maps.Copy(env, sourcesEnv)
	if cfg, err = load(text, env); err != nil {
		t.Fatalf("Load with the sources: %v", err)
	}
	s := cfg.Sources
	if s.Okta == nil || s.Okta.APIToken.Reveal() != "okta-token" || s.Okta.Groups.Profile != "aws-main" ||
		s.Entra == nil || s.Entra.Subscription == nil || s.Entra.ClientSecret.Reveal() != "entra-secret" ||
		s.Google == nil || s.Google.ServiceAccountKey.Reveal() != directoryKey || s.Google.Customer != DefaultGoogleCustomer {
		t.Fatalf("sources = %+v", s)
	}
	for rule, groups := range map[*GroupRule]map[string]string{
		s.Okta.Groups:   {"wandb-ml": "ml", "ml": ""},
		s.Entra.Groups:  {"ML-Platform": "ml-platform", "Data-Eng": "data-eng", "wandb-ml": ""},
		s.Google.Groups: {"wandb-cv": "cv"},
	} {
		for group, want := range groups {
			if name, ok, err := rule.TeamName(group); name != want || ok != (want != "") || err != nil {
				t.Errorf("TeamName(%q) = %q, %v, %v", group, name, ok, err)
			}
		}
	}
	if st, err := cfg.Storage(s.Google.Groups.Profile, "cv"); err != nil || !st.Shared {
		t.Errorf("google team storage = %+v, %v", st, err)
	}
	if cfg.Members != (Members{Mode: MembersOwned, MaxRemoveShare: 0.5, KeepOnOrphan: true}) {
		t.Errorf("members = %+v", cfg.Members)
	}
	for name := range sourcesEnv {
		e := maps.Clone(env)
		delete(e, name)
		if _, err := load(text, e); err == nil || !strings.Contains(err.Error(), "environment variable "+name+" is not set") {
			t.Errorf("without %s: %v", name, err)
		}
	}
}

// uncomment removes the "# " of a commented-out block of the example: the line start (such as
// "  # coreweave:") and the lines after it, up to the first blank line, that begin the same way. A
// comment inside the block ("  #   # ...") stays a comment.
func uncomment(t *testing.T, text, start string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	i := slices.Index(lines, start)
	if i < 0 {
		t.Fatalf("no commented block %q in the example", start)
	}
	prefix := start[:strings.Index(start, "# ")+2]
	indent := strings.TrimSuffix(prefix, "# ")
	for ; i < len(lines) && strings.HasPrefix(lines[i], prefix); i++ {
		lines[i] = indent + strings.TrimPrefix(lines[i], prefix)
	}
	return strings.Join(lines, "\n")
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "REF": "${A}"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want string
		errs     []string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x-${A}-${A}-y", want: "x-alpha-alpha-y"},
		{in: "${EMPTY}", want: ""},
		{in: "$${A}", want: "${A}"},
		{in: "$A and $", want: "$A and $"},
		{in: "${REF}", want: "${A}"}, // values are not expanded again
		{in: "${NOPE:-dflt}", want: "dflt"},
		{in: "${EMPTY:-d}", want: "d"},
		{in: "${A:-d}", want: "alpha"},
		{in: "x${NOPE:-}y", want: "xy"},
		{in: "${NOPE}", errs: []string{"environment variable NOPE is not set"}},
		{in: "${NOPE}${A}${NADA}", errs: []string{"environment variable NOPE is not set", "environment variable NADA is not set"}},
		{in: "${}", errs: []string{`"" is not a valid environment variable name in ${...}`}},
		{in: "${A-B}", errs: []string{`"A-B" is not a valid environment variable name in ${...}`}},
		{in: "x${A", errs: []string{`unterminated "${": add "}", or write "$${" for a literal "${"`}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, errs := expand(tc.in, lookup)
			if !reflect.DeepEqual(errs, tc.errs) {
				t.Fatalf("expand(%q) errors = %q, want %q", tc.in, errs, tc.errs)
			}
			if tc.errs == nil && got != tc.want {
				t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestFileSecrets reads secrets and the teams file from a real directory, with paths relative to the
// config file.
func TestFileSecrets(t *testing.T) {
	d := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(d, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }, ReadFile: os.ReadFile}
	const head = "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: bearer\n    apiKeyFile: secrets/wandb\n"
	const s3 = "profiles:\n  main:\n    provider: s3-compatible\n    region: r\n    endpoint: http://127.0.0.1:8333\n" +
		"    credentials:\n      accessKeyId: a\n      secretAccessKeyFile: secrets/s3\n      sessionTokenFile: " // line 14
	write("secrets/wandb", "wandb-secret\n\n") // only one newline is trimmed
	write("secrets/s3", "s3-secret")
	write("secrets/token", "token-secret\n")
	write("teams.yaml", "teams:\n  - name: t1\n")
	write("config.yaml", head+s3+filepath.Join(d, "secrets/token")+"\n    bucket: b-{{ .Team }}\nteamsFile: teams.yaml\n")

	cfg, err := Load(filepath.Join(d, "config.yaml"), o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	p, _ := cfg.Profile("main")
	for got, want := range map[string]string{
		cfg.Wandb.Auth.APIKey.Reveal():         "wandb-secret\n",
		p.Credentials.SecretAccessKey.Reveal(): "s3-secret",
		p.Credentials.SessionToken.Reveal():    "token-secret",
	} {
		if got != want {
			t.Errorf("secret = %q, want %q", got, want)
		}
	}
	if teams := cfg.DesiredTeams(); len(teams) != 1 || teams[0].Name != "t1" {
		t.Errorf("teams = %+v", teams)
	}

	// Missing files are named by path, with the line of the key that names them; the teams file's
	// problems carry its own name and lines.
	if err := os.Remove(filepath.Join(d, "secrets/s3")); err != nil {
		t.Fatal(err)
	}
	write("teams.yaml", "teams:\n  - name: t1\n  - name: t1\n")
	_, err = Load(filepath.Join(d, "config.yaml"), o)
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.Problems) != 2 {
		t.Fatalf("Load error = %v, want 2 problems", err)
	}
	want := []string{
		fmt.Sprintf("%s:14:28: profiles.main.credentials.secretAccessKeyFile: cannot read %q: no such file or directory",
			filepath.Join(d, "config.yaml"), filepath.Join(d, "secrets/s3")),
		fmt.Sprintf("%s:3:11: teams[1].name: team \"t1\" is already defined at %s:2:5", filepath.Join(d, "teams.yaml"), filepath.Join(d, "teams.yaml")),
	}
	for i, w := range want {
		if got := errs.Problems[i].String(); !strings.HasPrefix(got, w) {
			t.Errorf("problem %d =\n%s\nwant prefix\n%s", i, got, w)
		}
	}
	if strings.Contains(err.Error(), "wandb-secret") || strings.Contains(err.Error(), "token-secret") {
		t.Errorf("error shows a secret: %v", err)
	}
}

// TestSecretsNeverPrinted prints a loaded configuration every way the agent might, and looks for the
// secret values.
func TestSecretsNeverPrinted(t *testing.T) {
	secrets := []string{"wandb-key-value", "s3-secret-value", "session-token-value", "gcs-private-key-value", "YXp1cmUta2V5LXZhbHVl", "conn-key-value",
		baseEnv["SCIM_TOKEN"], baseEnv["OKTA_SECRET"], baseEnv["GRAPH_STATE"], baseEnv["HOOK_SECRET"]}
	yaml := wandbOK + strings.Replace(s3ProfilesOK, "${S3_SECRET}\n", "${S3_SECRET}\n      sessionToken: session-token-value\n", 1) +
		edit(gcsOK, "profiles:\n  main:", "  gcs:") + "    credentials:\n      serviceAccountKey: ${GCS_KEY}\n" +
		edit(azureOK, "profiles:\n  main:", "  azure:") +
		edit(azureOK, "profiles:\n  main:", "  azure-cs:", "accountKey: ${AZURE_KEY}", "connectionString: AccountName=acmewandb;AccountKey=conn-key-value", "acmewandb\n", "acmewandb\n    bucket: b-{{ .Team }}\n", "    bucket: \"a-{{ .Team }}\"\n", "") +
		"defaultProfile: main\n" + teamsOK + daemonOK
	cfg := mustLoad(t, yaml, nil, nil)
	p, _ := cfg.Profile("main")
	if p.Credentials.SessionToken.Reveal() != "session-token-value" {
		t.Fatal("session token not loaded")
	}
	g, _ := cfg.Profile("gcs")
	az, _ := cfg.Profile("azure")
	cs, _ := cfg.Profile("azure-cs")
	if !strings.Contains(g.GCSCredentialsJSON.Reveal(), "gcs-private-key-value") || az.AccountKey.Reveal() == "" || !strings.Contains(cs.ConnectionString.Reveal(), "conn-key-value") {
		t.Fatal("gcs or azure secrets not loaded")
	}

	w := cfg.Webhooks
	if cfg.SCIM == nil || w.Okta == nil || w.Graph == nil || w.Generic == nil {
		t.Fatal("daemon secrets not loaded")
	}

	var out bytes.Buffer
	for _, v := range []any{cfg, *cfg, p, *p.Credentials, p.Credentials, cfg.Wandb, cfg.Wandb.Auth.APIKey, g, az, cs,
		cfg.SCIM, *cfg.SCIM, cfg.SCIM.Tokens, w, w.Okta, *w.Graph, *w.Generic} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		out.Write(b)
	}
	text, err := cfg.Wandb.Auth.APIKey.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	out.Write(text)
	out.WriteString(cfg.Wandb.Auth.APIKey.String() + cfg.Wandb.Auth.APIKey.GoString())
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(h).Info("loaded", "config", cfg, "profile", p, "key", cfg.Wandb.Auth.APIKey, "creds", p.Credentials,
			"scim", cfg.SCIM, "tokens", cfg.SCIM.Tokens, "webhooks", w)
	}

	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Errorf("output shows secret %q:\n%s", s, out.String())
		}
	}
	if !strings.Contains(out.String(), redacted) {
		t.Errorf("output never says %s", redacted)
	}
}

// TestSecretsNotInProblems loads secrets that are wrong and checks that no problem quotes them.
func TestSecretsNotInProblems(t *testing.T) {
	const secret = "TOP-SECRET-VALUE"
	for name, yaml := range map[string]string{
		"gcs key not JSON":      wandbOK + gcsOK + "    credentials:\n      serviceAccountKey: x" + secret + "\n",
		"gcs key of a user":     wandbOK + gcsOK + "    credentials:\n      serviceAccountKey: '{\"type\": \"" + secret + "\", \"private_key\": \"" + secret + "\"}'\n",
		"gcs key bad type":      wandbOK + gcsOK + "    credentials:\n      serviceAccountKey: '{\"client_email\": 1, \"private_key\": \"" + secret + "\"}'\n",
		"azure key not base64":  wandbOK + edit(azureOK, "${AZURE_KEY}", secret+"!"),
		"azure conn malformed":  wandbOK + edit(azureOK, "accountKey: ${AZURE_KEY}", "connectionString: AccountKey="+secret+";"+secret),
		"azure conn of another": wandbOK + edit(azureOK, "accountKey: ${AZURE_KEY}", "connectionString: AccountName=other;AccountKey="+secret),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadYAML(t, yaml, nil, nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("problem quotes the secret: %v", err)
			}
		})
	}
}

// TestEveryProblemAtOnce checks that one bad file gives all its problems, not the first.
func TestEveryProblemAtOnce(t *testing.T) {
	yaml := `wandb:
  scimURL: nope
  deployment: cloud
  auth: {mode: bearer}
sync: {concurrency: "eight", driftCheckInterval: soon}
profiles:
  main:
    provider: b2
    region: us-east-1
    bucket: "{{ .Team "
  aws:
    provider: aws
    region: us-east-1
    bucket: "b-{{ .Team }}"
teams:
  - name: Bad
  - name: ok
    profile: nope
  - nme: x
`
	_, err := loadYAML(t, yaml, nil, nil)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load error = %v", err)
	}
	wantLines := []int{2, 3, 4, 5, 5, 8, 10, 11, 16, 16, 18, 19, 19}
	var gotLines []int
	for _, p := range errs.Problems {
		gotLines = append(gotLines, p.Line)
	}
	if !reflect.DeepEqual(gotLines, wantLines) {
		t.Errorf("problem lines = %v, want %v:\n%v", gotLines, wantLines, err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(errs.Problems) {
		t.Errorf("Error() has %d lines for %d problems", n, len(errs.Problems))
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "c.yaml", Line: 3, Column: 5, Field: "teams[0].name", Msg: "bad"}, "c.yaml:3:5: teams[0].name: bad"},
		{Problem{File: "c.yaml", Line: 3, Msg: "invalid YAML: x"}, "c.yaml:3: invalid YAML: x"},
		{Problem{File: "c.yaml", Msg: "cannot read"}, "c.yaml: cannot read"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	errs := &Errors{Problems: []Problem{tests[0].p, tests[1].p}}
	if got, want := errs.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLoadNeedsOptions(t *testing.T) {
	if _, err := Load("x", LoadOptions{}); err == nil {
		t.Error("Load without options succeeded")
	}
}

func TestUnreadableConfig(t *testing.T) {
	_, err := Load(configPath, opts(nil, nil))
	if err == nil || err.Error() != "/cfg/config.yaml: cannot read the configuration file: file does not exist" {
		t.Errorf("Load error = %v", err)
	}
}

func TestProfileStorage(t *testing.T) {
	cfg := mustLoad(t, wandbOK+s3ProfilesOK, nil, nil)
	p, _ := cfg.Profile("main")
	st, err := p.Storage("from-idp")
	if err != nil || st.Bucket != "s-from-idp" || st.Path != "wandb/from-idp" {
		t.Errorf("Storage = %+v, %v", st, err)
	}
	if _, err := p.Storage("Bad Name"); err == nil {
		t.Error("Storage accepted a path with a space")
	}
	if _, err := (Profile{Name: "zero"}).Storage("t"); err == nil {
		t.Error("zero Profile gave storage")
	}
}

// TestSharedProfileStorage renders storage for teams from other sources: the shared bucket, a path each.
func TestSharedProfileStorage(t *testing.T) {
	cfg := mustLoad(t, wandbOK+edit(sharedOK, "bucket: wandb-shared", `bucket: '{{ if eq .Team "odd" }}odd{{ else }}wandb-shared{{ end }}'`), nil, nil)
	p, _ := cfg.Profile("main")
	st, err := p.Storage("from-idp")
	if err != nil || st.Bucket != "wandb-shared" || st.Path != "teams/from-idp" || !st.Shared {
		t.Errorf("Storage = %+v, %v", st, err)
	}
	if _, err := p.Storage("odd"); err == nil || !strings.Contains(err.Error(), "must not depend on the team") {
		t.Errorf("Storage(odd) = %v, want an error", err)
	}
}

func TestAncestors(t *testing.T) {
	for p, want := range map[string][]string{
		"a":       nil,
		"a/b":     {"a"},
		"a/b/c":   {"a", "a/b"},
		"t/ml-x":  {"t"},
		"x.y/z=1": {"x.y"},
	} {
		if got := ancestors(p); !reflect.DeepEqual(got, want) {
			t.Errorf("ancestors(%q) = %q, want %q", p, got, want)
		}
	}
}

func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(example),
		wandbOK + profilesOK + teamsOK,
		wandbOK + s3ProfilesOK + "teamsFile: teams.yaml\n",
		wandbOK + sharedOK + teamsOK, wandbOK + gcsOK + teamsOK, wandbOK + azureOK + teamsOK, wandbOK + coreweaveOK + teamsOK,
		wandbOK + profilesOK + daemonOK, wandbOK + profilesOK + "server: {tlsCertFile: c, tlsKeyFile: k}\nschedule: CRON_TZ=UTC\n",
		wandbOK + profilesOK + "schedule: \"TZ=UTC @every 1s\"\nscim:\n  tokenFiles: [t]\n  groups: {regex: \"(?P<team>a)|(?P<team>b)\"}\n",
		"", "---\n---\n", "a: &a [*a]\n", "teams: {a: b}\n", "wandb: [\n", "profiles:\n  x:\n    bucket: '{{ range . }}'\n",
		wandbOK + profilesOK + oktaOK + source(entraOK) + "    groupIds: [x]\n    subscription: {notificationURL: https://x, clientState: state-0123456789ab}\n" + source(googleOK) +
			"    groups: {names: [ml-research, ML]}\nwebhooks: {graph: {clientStates: [state-0123456789ab]}}\nmembers: {sync: true, mode: authoritative, maxRemoveShare: .5}\n" + teamsOK,
		wandbOK + profilesOK + "server: {baseURL: https://x}\nscim: {tokens: [t], groups: {names: [a, A], lowercase: true}}\nmembers: {maxRemoveShare: 1e-3, keepOnOrphan: false}\n",
	} {
		f.Add([]byte(s))
	}
	// Sources with usable keys, so that the fuzzer starts from configurations that load.
	k := privateKeys(f)
	indent := func(pem string) string {
		return "      " + strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n      ") + "\n"
	}
	f.Add([]byte(wandbOK + profilesOK + "sources:\n  okta:\n    orgURL: https://acme.okta.com\n    clientId: c\n    keyId: k\n    privateKey: |\n" + indent(k.pkcs8EC) +
		"    groups: {regex: '^(?P<team>.+)-wandb$', lowercase: true}\n"))
	f.Add([]byte(wandbOK + profilesOK + "sources:\n  google:\n    subject: a@b.c\n    serviceAccountKey: '" + googleKey(f, map[string]any{"private_key": k.sec1EC}) + "'\n"))
	o := LoadOptions{
		LookupEnv: func(k string) (string, bool) { return "v-" + k, !strings.HasPrefix(k, "UNSET") },
		ReadFile: func(p string) ([]byte, error) {
			switch p {
			case configPath:
				return nil, nil // replaced below
			case teamsPath:
				return []byte("teams:\n  - name: from-file\n"), nil
			}
			return []byte("secret\n"), nil
		},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := o
		read := o.ReadFile
		o.ReadFile = func(p string) ([]byte, error) {
			if p == configPath {
				return data, nil
			}
			return read(p)
		}
		cfg, err := Load(configPath, o)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Load = %v, %v: want exactly one", cfg, err)
		}
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.Problems) == 0 {
				t.Fatalf("Load error %v is not a non-empty *Errors", err)
			}
			return
		}
		_ = cfg.DesiredTeams()
		if name, ok, err := cfg.SCIM.TeamName(string(data)); ok && err == nil {
			_, _ = cfg.Storage(cfg.SCIM.Profile, name)
		}
		for _, r := range sourceRules(cfg.Sources) {
			if name, ok, err := r.TeamName(string(data)); ok && err == nil {
				_, _ = cfg.Storage(r.Profile, name)
			}
		}
	})
}
