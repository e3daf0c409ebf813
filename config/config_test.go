package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const (
	dir        = "/cfg"
	configPath = "/cfg/config.yaml"
	teamsPath  = "/cfg/teams.yaml"
)

// fragments of a valid configuration, combined by the cases below.
const (
	wandbOK = `wandb:
  scimURL: https://acme.wandb.io/scim
  deployment: dedicated
  auth:
    mode: bearer
    apiKey: ${WANDB_API_KEY}
`
	profilesOK = `profiles:
  main:
    provider: aws
    region: us-east-1
    bucket: "wandb-{{ .Team }}"
    kms:
      create: true
`
	s3ProfilesOK = `profiles:
  main:
    provider: s3-compatible
    region: us-east-1
    endpoint: http://127.0.0.1:8333
    credentials:
      accessKeyId: AKIAEXAMPLE
      secretAccessKey: ${S3_SECRET}
    bucket: s-{{ .Team }}
    path: "wandb/{{ .Team }}"
`
	teamsOK = `teams:
  - name: ml-research
`
	sharedOK = `profiles:
  main:
    provider: s3-compatible
    topology: shared
    region: us-east-1
    endpoint: http://127.0.0.1:8333
    credentials:
      accessKeyId: AKIAEXAMPLE
      secretAccessKey: ${S3_SECRET}
    bucket: wandb-shared
    path: "teams/{{ .Team }}"
`
	gcsOK = `profiles:
  main:
    provider: gcs
    region: us-east1
    project: acme-ml
    bucket: "g-{{ .Team }}"
`
	azureOK = `profiles:
  main:
    provider: azure
    account: acmewandb
    tenantId: 11111111-2222-3333-4444-555555555555
    clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
    credentials:
      accountKey: ${AZURE_KEY}
    bucket: "a-{{ .Team }}"
`
	coreweaveOK = `profiles:
  main:
    provider: coreweave
    credentials:
      accessKeyId: CWKEY
      secretAccessKey: ${CW_SECRET}
    orgId: acme
    bucket: "c-{{ .Team }}"
`
	daemonOK = `server:
  listen: 127.0.0.1:9000
  baseURL: https://byob.example.com/agent/
  shutdownTimeout: 10s
schedule: "*/15 * * * *"
workers: 8
scim:
  tokens: ["${SCIM_TOKEN}"]
  groups:
    prefix: wandb-
    profile: main
webhooks:
  okta: {secrets: ["${OKTA_SECRET}"]}
  graph: {clientStates: ["${GRAPH_STATE}"]}
  generic: {secrets: ["${HOOK_SECRET}"], tolerance: 2m}
`
	gcsKey = `{"type": "service_account", "project_id": "acme-ml", "client_email": "byob@acme-ml.iam.gserviceaccount.com", "private_key": "gcs-private-key-value"}`
)

var baseEnv = map[string]string{
	"WANDB_API_KEY": "wandb-key-value", "S3_SECRET": "s3-secret-value", "CW_SECRET": "cw-secret-value",
	"AZURE_KEY":  "YXp1cmUta2V5LXZhbHVl", // base64 of "azure-key-value"
	"GCS_KEY":    gcsKey,
	"SCIM_TOKEN": "scim-token-value-0123", "OKTA_SECRET": "okta-secret-value-0123", "GRAPH_STATE": "graph-state-value-0123",
	"HOOK_SECRET": "whsec_Z2VuZXJpYy1ob29rLWtleS12YWx1ZQ==", // base64 of "generic-hook-key-value"
	"OKTA_TOKEN":  "okta-api-token-value", "ENTRA_SECRET": "entra-secret-value",
}

// edit applies replacements (old, new, old, new, ...) to s, each exactly once; it panics when an old
// string is not in s, so that a fragment that changes cannot silently make a case test nothing.
func edit(s string, pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			panic(fmt.Sprintf("edit: %q not in %q", pairs[i], s))
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

// on sets wandb.deployment.
func on(deployment string) string { return edit(wandbOK, "dedicated", deployment) }

// opts gives Load an in-memory file system (paths under /cfg) and environment.
func opts(files, env map[string]string) LoadOptions {
	return LoadOptions{
		LookupEnv: func(k string) (string, bool) {
			if v, ok := env[k]; ok {
				return v, true
			}
			v, ok := baseEnv[k]
			return v, ok
		},
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[strings.TrimPrefix(p, dir+"/")]; ok {
				return []byte(v), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
	}
}

func loadYAML(t *testing.T, yaml string, files, env map[string]string) (*Config, error) {
	t.Helper()
	all := map[string]string{"config.yaml": yaml}
	for k, v := range files {
		all[k] = v
	}
	return Load(configPath, opts(all, env))
}

func mustLoad(t *testing.T, yaml string, files, env map[string]string) *Config {
	t.Helper()
	cfg, err := loadYAML(t, yaml, files, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// markerLine returns the line of s that carries the "#<" marker.
func markerLine(s string) int {
	for i, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "#<") {
			return i + 1
		}
	}
	return 0
}

// badCase is a configuration with a problem, and where and what the problem is.
type badCase struct {
	name  string
	yaml  string
	files map[string]string // more files under /cfg
	env   map[string]string
	file  string // file of the problem, under /cfg; default config.yaml
	line  int    // expected line; 0 means the line marked "#<" in that file
	field string
	msg   string
	count int // problems expected; 0 means 1
}

// runBad loads each case and looks for its problem among exactly count problems.
func runBad(t *testing.T, tests []badCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := cmp.Or(tc.file, "config.yaml")
			content := tc.yaml
			if file != "config.yaml" {
				content = tc.files[file]
			}
			line := tc.line
			if line == 0 {
				if line = markerLine(content); line == 0 {
					t.Fatal("test case has neither line nor #< marker")
				}
			}
			_, err := loadYAML(t, tc.yaml, tc.files, tc.env)
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load error = %v, want *Errors", err)
			}
			if want := max(tc.count, 1); len(errs.Problems) != want {
				t.Errorf("got %d problems, want %d:\n%v", len(errs.Problems), want, err)
			}
			for _, p := range errs.Problems {
				if p.File == filepath.Join(dir, file) && p.Line == line && p.Field == tc.field && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("no problem %s:%d: %s: ...%s...; got:\n%v", file, line, tc.field, tc.msg, err)
		})
	}
}

func TestLoadBad(t *testing.T) {
	runBad(t, []badCase{
		{name: "empty file", yaml: "", line: 1, msg: "the file is empty"},
		{name: "only comments", yaml: "# nothing here\n", line: 1, msg: "the file is empty"},
		{name: "malformed YAML", yaml: "wandb:\n  scimURL: a: b #<\n", msg: "invalid YAML: mapping values are not allowed"},
		{name: "second document", yaml: wandbOK + profilesOK + "--- #<\na: 1\n", msg: "second YAML document"},
		{name: "top level is a list", yaml: "- a #<\n", field: "", msg: "expected a mapping, got a list"},
		{name: "unknown top-level key", yaml: wandbOK + profilesOK + "colour: blue #<\n", field: "colour", msg: "unknown key; expected one of: wandb, state"},
		{name: "duplicate key", yaml: wandbOK + profilesOK + "sync: {}\nsync: {} #<\n", field: "sync", msg: "duplicate key; first defined at line 14"},
		{name: "wandb missing", yaml: "profiles: #<\n  main:\n    provider: aws\n    region: r\n    bucket: b-{{ .Team }}\n    principal: dedicated\n    kms: {create: true}\n", field: "wandb", msg: "is required"},
		{name: "wandb not a mapping", yaml: "wandb: hello #<\n" + profilesOK, field: "wandb", msg: "expected a mapping, got a string"},
		{name: "scimURL missing", yaml: "wandb: #<\n  deployment: dedicated\n  auth: {mode: bearer, apiKey: k}\n" + profilesOK, field: "wandb.scimURL", msg: "is required"},
		{name: "scimURL not http", yaml: "wandb:\n  scimURL: ftp://x/scim #<\n  deployment: dedicated\n  auth: {mode: bearer, apiKey: k}\n" + profilesOK, field: "wandb.scimURL", msg: `"ftp://x/scim" is not an http:// or https:// URL`},
		{name: "scimURL with credentials", yaml: "wandb:\n  scimURL: https://u:pw@x/scim #<\n  deployment: dedicated\n  auth: {mode: bearer, apiKey: k}\n" + profilesOK, field: "wandb.scimURL", msg: "must not contain a user name or password"},
		{name: "deployment invalid", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: cloud #<\n  auth: {mode: bearer, apiKey: k}\n" + profilesOK, field: "wandb.deployment", msg: `"cloud" is not supported; expected one of: multi-tenant, dedicated, self-managed`},
		{name: "auth mode invalid", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth: {mode: token, apiKey: k} #<\n" + profilesOK, field: "wandb.auth.mode", msg: `"token" is not supported`},
		{name: "auth missing", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n" + profilesOK, line: 1, field: "wandb.auth", msg: "is required"},
		{name: "basic-user without username", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth: #<\n    mode: basic-user\n    apiKey: k\n" + profilesOK, field: "wandb.auth.username", msg: "is required when mode is basic-user"},
		{name: "username with bearer", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: bearer\n    username: admin #<\n    apiKey: k\n" + profilesOK, field: "wandb.auth.username", msg: "only used when mode is basic-user"},
		{name: "username with colon", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: basic-user\n    username: a:b #<\n    apiKey: k\n" + profilesOK, field: "wandb.auth.username", msg: "must not contain ':'"},
		{name: "apiKey and apiKeyFile", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: bearer\n    apiKey: k\n    apiKeyFile: key.txt #<\n" + profilesOK, field: "wandb.auth.apiKeyFile", msg: "set either apiKey or apiKeyFile, not both"},
		{name: "no apiKey", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth: #<\n    mode: bearer\n" + profilesOK, field: "wandb.auth.apiKey", msg: "set apiKey or apiKeyFile"},
		{name: "apiKey env unset", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: bearer\n    apiKey: ${NOPE} #<\n" + profilesOK, field: "wandb.auth.apiKey", msg: "environment variable NOPE is not set"},
		{name: "apiKey empty after expansion", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: bearer\n    apiKey: ${EMPTY} #<\n" + profilesOK, env: map[string]string{"EMPTY": ""}, field: "wandb.auth.apiKey", msg: "is empty"},
		{name: "apiKeyFile missing", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: bearer\n    apiKeyFile: secrets/key #<\n" + profilesOK, field: "wandb.auth.apiKeyFile", msg: `cannot read "/cfg/secrets/key": file does not exist`},
		{name: "apiKeyFile empty", yaml: "wandb:\n  scimURL: https://x/scim\n  deployment: dedicated\n  auth:\n    mode: bearer\n    apiKeyFile: key #<\n" + profilesOK, files: map[string]string{"key": "\n"}, field: "wandb.auth.apiKeyFile", msg: `file "/cfg/key" is empty`},
		{name: "unterminated reference", yaml: "wandb:\n  scimURL: https://x/${HOST #<\n  deployment: dedicated\n  auth: {mode: bearer, apiKey: k}\n" + profilesOK, field: "wandb.scimURL", msg: `unterminated "${"`},
		{name: "bad variable name", yaml: "wandb:\n  scimURL: https://x/${1HOST} #<\n  deployment: dedicated\n  auth: {mode: bearer, apiKey: k}\n" + profilesOK, field: "wandb.scimURL", msg: `"1HOST" is not a valid environment variable name`},
		{name: "timeout without unit", yaml: wandbOK + "  timeout: 30 #<\n" + profilesOK, field: "wandb.timeout", msg: `expected a duration such as 30s or 24h, got "30"`},
		{name: "timeout zero", yaml: wandbOK + "  timeout: 0s #<\n" + profilesOK, field: "wandb.timeout", msg: "must be positive"},
		{name: "timeout a list", yaml: wandbOK + "  timeout: [1s] #<\n" + profilesOK, field: "wandb.timeout", msg: "expected a duration such as 30s or 24h, got a list"},
		{name: "profile timeout negative", yaml: wandbOK + profilesOK + "    timeout: -1s #<\n", field: "profiles.main.timeout", msg: "must be positive, got -1s"},
		{name: "profile timeout without unit", yaml: wandbOK + profilesOK + "    timeout: 5 #<\n", field: "profiles.main.timeout", msg: `expected a duration such as 30s or 24h, got "5"`},
		{name: "concurrency not a number", yaml: wandbOK + profilesOK + "sync:\n  concurrency: \"eight\" #<\n", field: "sync.concurrency", msg: `expected an integer, got "eight"`},
		{name: "concurrency a float", yaml: wandbOK + profilesOK + "sync:\n  concurrency: 1.5 #<\n", field: "sync.concurrency", msg: "expected an integer, got a number"},
		{name: "concurrency zero", yaml: wandbOK + profilesOK + "sync:\n  concurrency: 0 #<\n", field: "sync.concurrency", msg: "must be between 1 and 256, got 0"},
		{name: "concurrency too high", yaml: wandbOK + profilesOK + "sync:\n  concurrency: 1000 #<\n", field: "sync.concurrency", msg: "must be between 1 and 256, got 1000"},
		{name: "drift interval negative", yaml: wandbOK + profilesOK + "sync:\n  driftCheckInterval: -1h #<\n", field: "sync.driftCheckInterval", msg: "must not be negative"},
		{name: "drift interval bad", yaml: wandbOK + profilesOK + "sync:\n  driftCheckInterval: daily #<\n", field: "sync.driftCheckInterval", msg: `got "daily"`},
		{name: "state unknown key", yaml: wandbOK + profilesOK + "state:\n  file: x.db #<\n", field: "state.file", msg: "unknown key; expected one of: path, postgres"},
		{name: "postgres without dsn", yaml: wandbOK + profilesOK + "state:\n  postgres: #<\n    leaseDuration: 20s\n", field: "state.postgres.dsn", msg: "is required: set dsn"},
		{name: "postgres dsn twice", yaml: wandbOK + profilesOK + "state:\n  postgres:\n    dsn: x\n    dsnFile: f #<\n", field: "state.postgres.dsnFile", msg: "set either dsn or dsnFile, not both"},
		{name: "postgres dsn env unset", yaml: wandbOK + profilesOK + "state:\n  postgres:\n    dsn: ${NOPE} #<\n", field: "state.postgres.dsn", msg: "environment variable NOPE is not set"},
		{name: "postgres lease negative", yaml: wandbOK + profilesOK + "state:\n  postgres:\n    dsn: x\n    retryPeriod: -2s #<\n", field: "state.postgres.retryPeriod", msg: "must be positive"},
		{name: "postgres renewDeadline too long", yaml: wandbOK + profilesOK + "state:\n  postgres:\n    dsn: x\n    renewDeadline: 20s #<\n", field: "state.postgres.renewDeadline", msg: "renewDeadline 20s must be shorter than the lease duration 15s (defaults: leaseDuration 15s"},
		{name: "postgres retryPeriod too long", yaml: wandbOK + profilesOK + "state:\n  postgres:\n    dsn: x\n    leaseDuration: 30s\n    retryPeriod: 12s #<\n", field: "state.postgres.retryPeriod", msg: "retryPeriod 12s must be shorter than renewDeadline 10s"},
		{name: "postgres unknown key", yaml: wandbOK + profilesOK + "state:\n  postgres:\n    dsn: x\n    url: y #<\n", field: "state.postgres.url", msg: "unknown key; expected one of: dsn, dsnFile, leaseDuration"},
		{name: "profiles missing", yaml: wandbOK + "teams: [] #<\n", line: 1, field: "profiles", msg: "is required: define at least one storage profile"},
		{name: "profiles empty", yaml: wandbOK + "profiles: {} #<\n", field: "profiles", msg: "define at least one storage profile"},
		{name: "profile name invalid", yaml: wandbOK + "profiles:\n  Main_1: #<\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n", field: "profiles.Main_1", msg: `profile name "Main_1" may contain only lowercase letters, digits and '-'`},
		{name: "profile not a mapping", yaml: wandbOK + "profiles:\n  main: aws #<\n", field: "profiles.main", msg: "expected a mapping, got a string"},
		{name: "provider unsupported", yaml: wandbOK + "profiles:\n  main:\n    provider: b2 #<\n    region: us-east-1\n    bucket: b-{{ .Team }}\n" + teamsOK, field: "profiles.main.provider", msg: `"b2" is not supported; expected one of: aws, s3-compatible, coreweave, gcs, azure`},
		{name: "provider missing", yaml: wandbOK + "profiles:\n  main: #<\n    region: us-east-1\n    bucket: b-{{ .Team }}\n" + teamsOK, field: "profiles.main.provider", msg: "is required"},
		{name: "region missing", yaml: wandbOK + "profiles:\n  main: #<\n    provider: aws\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n", field: "profiles.main.region", msg: "is required"},
		{name: "region empty", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: \"\" #<\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n", field: "profiles.main.region", msg: "must not be empty"},
		{name: "unknown profile key", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n    versioning: true #<\n", field: "profiles.main.versioning", msg: "unknown key; expected one of: provider, topology, region"},
		{name: "endpoint not a URL", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    endpoint: localhost:4566 #<\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n", field: "profiles.main.endpoint", msg: "is not an http:// or https:// URL"},
		{name: "pathStyle not a bool", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    pathStyle: yes #<\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n", field: "profiles.main.pathStyle", msg: `expected true or false, got "yes"`},
		{name: "adoptExisting not a bool", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n    adoptExisting: 1 #<\n", field: "profiles.main.adoptExisting", msg: "expected true or false, got an integer"},
		{name: "s3-compatible without endpoint", yaml: wandbOK + "profiles:\n  main: #<\n    provider: s3-compatible\n    region: r\n    credentials: {accessKeyId: a, secretAccessKey: s}\n    bucket: b-{{ .Team }}\n", field: "profiles.main.endpoint", msg: "is required for provider s3-compatible"},
		{name: "s3-compatible without credentials", yaml: wandbOK + "profiles:\n  main: #<\n    provider: s3-compatible\n    region: r\n    endpoint: http://127.0.0.1:8333\n    bucket: b-{{ .Team }}\n", field: "profiles.main.credentials", msg: "is required for provider s3-compatible"},
		{name: "s3-compatible on multi-tenant", yaml: strings.Replace(wandbOK, "dedicated", "multi-tenant", 1) + strings.Replace(s3ProfilesOK, "provider: s3-compatible", "provider: s3-compatible #<", 1), field: "profiles.main.provider", msg: "W&B multi-tenant cloud does not accept s3-compatible team storage"},
		{name: "principal on s3-compatible", yaml: wandbOK + s3ProfilesOK + "    principal: dedicated #<\n", field: "profiles.main.principal", msg: "is only used with providers aws, coreweave and gcs"},
		{name: "awsExternalId on s3-compatible", yaml: wandbOK + s3ProfilesOK + "    awsExternalId: x #<\n", field: "profiles.main.awsExternalId", msg: "is only used with provider aws"},
		{name: "credentials without accessKeyId", yaml: wandbOK + strings.Replace(s3ProfilesOK, "credentials:\n      accessKeyId: AKIAEXAMPLE\n", "credentials: #<\n", 1), field: "profiles.main.credentials.accessKeyId", msg: "is required"},
		{name: "secretAccessKey twice", yaml: wandbOK + strings.Replace(s3ProfilesOK, "${S3_SECRET}\n", "${S3_SECRET}\n      secretAccessKeyFile: s3.key #<\n", 1), field: "profiles.main.credentials.secretAccessKeyFile", msg: "set either secretAccessKey or secretAccessKeyFile, not both"},
		{name: "sessionTokenFile missing", yaml: wandbOK + strings.Replace(s3ProfilesOK, "${S3_SECRET}\n", "${S3_SECRET}\n      sessionTokenFile: /run/token #<\n", 1), field: "profiles.main.credentials.sessionTokenFile", msg: `cannot read "/run/token"`},
		{name: "credentials a list", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    credentials: [a] #<\n    bucket: b-{{ .Team }}\n    kms: {create: true}\n", field: "profiles.main.credentials", msg: "expected a mapping, got a list"},
		{name: "aws without kms", yaml: wandbOK + "profiles:\n  main: #<\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n", field: "profiles.main.kms", msg: "is required for provider aws: W&B requires SSE-KMS"},
		{name: "kms keyArn and create", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n    kms:\n      keyArn: arn:aws:kms:us-east-1:111122223333:key/abc\n      create: true #<\n", field: "profiles.main.kms.create", msg: "set either keyArn or create: true, not both"},
		{name: "kms neither", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n    kms: {create: false} #<\n", field: "profiles.main.kms", msg: "set keyArn, or create: true"},
		{name: "kms keyArn malformed", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n    kms:\n      keyArn: alias/wandb #<\n", field: "profiles.main.kms.keyArn", msg: `"alias/wandb" is not a KMS key ARN`},
		{name: "kms key in another region", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: b-{{ .Team }}\n    kms:\n      keyArn: arn:aws:kms:eu-west-1:111122223333:key/abc #<\n", field: "profiles.main.kms.keyArn", msg: "the key is in region eu-west-1 but the profile's region is us-east-1"},
		{name: "principal invalid", yaml: wandbOK + profilesOK + "    principal: wandb #<\n", field: "profiles.main.principal", msg: `"wandb" is not multi-tenant, dedicated or an IAM principal ARN`},
		{name: "self-managed without principal", yaml: strings.Replace(wandbOK, "dedicated", "self-managed", 1) + strings.Replace(profilesOK, "  main:", "  main: #<", 1), field: "profiles.main.principal", msg: "is required when wandb.deployment is self-managed"},
		{name: "bucket missing", yaml: wandbOK + "profiles:\n  main: #<\n    provider: aws\n    region: us-east-1\n    kms: {create: true}\n" + teamsOK, field: "profiles.main.bucket", msg: "is required"},
		{name: "bucket template does not parse", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: \"wandb-{{ .Team }\" #<\n    kms: {create: true}\n" + teamsOK, field: "profiles.main.bucket", msg: `invalid template "wandb-{{ .Team }": template: profiles.main.bucket:1: unexpected "}"`},
		{name: "bucket template unknown field", yaml: wandbOK + "profiles:\n  main:\n    provider: aws\n    region: us-east-1\n    bucket: \"wandb-{{ .Name }}\" #<\n    kms: {create: true}\n" + teamsOK, field: "profiles.main.bucket", msg: `map has no entry for key "Name"`},
		{name: "path template does not parse", yaml: wandbOK + strings.Replace(s3ProfilesOK, `path: "wandb/{{ .Team }}"`, `path: "{{" #<`, 1), field: "profiles.main.path", msg: `invalid template "{{"`},
		{name: "team name outside W&B's rule", yaml: wandbOK + profilesOK + "teams:\n  - name: ml\n  - name: ml_team #<\n", count: 2, field: "teams[1].name", msg: `team name "ml_team" has "_", outside W&B's documented rule (lowercase letters, numbers and hyphens): use "ml-team", or set wandb.allowUndocumentedTeamNames`},
		{name: "allowUndocumentedTeamNames not a bool", yaml: edit(wandbOK, "  deployment: dedicated\n", "  deployment: dedicated\n  allowUndocumentedTeamNames: sure #<\n") + profilesOK, field: "wandb.allowUndocumentedTeamNames", msg: `expected true or false, got "sure"`},
		{name: "bucket name invalid for a team", yaml: edit(wandbOK, "  deployment: dedicated\n", "  deployment: dedicated\n  allowUndocumentedTeamNames: true\n") + profilesOK + "teams:\n  - name: ml\n  - name: team_x #<\n", field: "teams[1]", msg: `team "team_x": profile "main" bucket template "wandb-{{ .Team }}" gives "wandb-team_x": bucket name "wandb-team_x" may contain only`},
		{name: "bucket name too short", yaml: wandbOK + strings.Replace(profilesOK, `"wandb-{{ .Team }}"`, `"{{ .Team }}"`, 1) + "teams:\n  - name: ab #<\n", field: "teams[0]", msg: `gives "ab": bucket name "ab" must be 3 to 63 characters long`},
		{name: "path invalid for a team", yaml: wandbOK + strings.Replace(s3ProfilesOK, `path: "wandb/{{ .Team }}"`, `path: "/teams/{{ .Team }}"`, 1) + "teams:\n  - name: ml #<\n", field: "teams[0]", msg: `path template "/teams/{{ .Team }}" gives "/teams/ml": path "/teams/ml" must not begin or end with '/'`},
		{name: "teams is a mapping", yaml: wandbOK + profilesOK + "teams: {a: b} #<\n", field: "teams", msg: "expected a list, got a mapping"},
		{name: "team is a string", yaml: wandbOK + profilesOK + "teams:\n  - ml #<\n", field: "teams[0]", msg: "expected a mapping, got a string"},
		{name: "team name invalid", yaml: wandbOK + profilesOK + "teams:\n  - name: ML-Research #<\n", field: "teams[0].name", msg: `team name "ML-Research" is not a valid W&B team name`, count: 2},
		{name: "team name missing", yaml: wandbOK + profilesOK + "teams:\n  - profile: main #<\n", field: "teams[0].name", msg: "is required"},
		{name: "team unknown key", yaml: wandbOK + profilesOK + "teams:\n  - name: ml\n    admins: [a] #<\n", field: "teams[0].admins", msg: "unknown key; expected one of: name, profile"},
		{name: "team profile undefined", yaml: wandbOK + profilesOK + "teams:\n  - name: ml\n    profile: gcp #<\n", field: "teams[0].profile", msg: `profile "gcp" is not defined; profiles: main`},
		{name: "team without profile", yaml: wandbOK + profilesOK + strings.Replace(s3ProfilesOK, "profiles:\n  main:", "  s3:", 1) + "teams:\n  - name: ml #<\n", field: "teams[0]", msg: `team "ml" has no profile: set profile here, or defaultProfile (profiles: main, s3)`},
		{name: "defaultProfile undefined", yaml: wandbOK + profilesOK + "defaultProfile: mian #<\n", field: "defaultProfile", msg: `profile "mian" is not defined; profiles: main`},
		{name: "duplicate team", yaml: wandbOK + profilesOK + "teams:\n  - name: ml\n  - name: nlp\n  - name: ml #<\n", field: "teams[2].name", msg: `team "ml" is already defined at /cfg/config.yaml:15:5`},
		{name: "same storage", yaml: wandbOK + strings.Replace(profilesOK, `"wandb-{{ .Team }}"`, "shared", 1) + "teams:\n  - name: ml\n  - name: nlp #<\n", field: "teams[1]", msg: `team "nlp" would get bucket "shared", which team "ml" at /cfg/config.yaml:15:5 gets too`},
		{name: "shared bucket, other paths", yaml: wandbOK + strings.Replace(s3ProfilesOK, "s-{{ .Team }}", "shared", 1) + "teams:\n  - name: all\n  - name: ml #<\n", field: "teams[1]", msg: `must give every team its own bucket (use {{ .Team }}), or set topology: shared and a path per team`},
		{name: "alias", yaml: wandbOK + strings.Replace(profilesOK, "kms:", "kms: &k", 1) + "  other:\n    provider: aws\n    region: us-east-1\n    bucket: o-{{ .Team }}\n    kms: *k #<\n", field: "profiles.other.kms", msg: "YAML aliases (*k) are not supported"},
		{name: "teamsFile missing", yaml: wandbOK + profilesOK + "teamsFile: more.yaml #<\n", field: "teamsFile", msg: `cannot read "/cfg/more.yaml": file does not exist`},
		{name: "teamsFile empty", yaml: wandbOK + profilesOK + "teamsFile: teams.yaml\n", files: map[string]string{"teams.yaml": ""}, file: "teams.yaml", line: 1, msg: "the file is empty"},
		{name: "teamsFile without teams", yaml: wandbOK + profilesOK + "teamsFile: teams.yaml\n", files: map[string]string{"teams.yaml": "# teams\nother: 1 #<\n"}, file: "teams.yaml", count: 2, field: "other", msg: "unknown key; expected one of: teams"},
		{name: "teamsFile bad team", yaml: wandbOK + profilesOK + "teamsFile: teams.yaml\n", files: map[string]string{"teams.yaml": "teams:\n  - name: a1\n  - name: b1\n    owner: x #<\n"}, file: "teams.yaml", field: "teams[1].owner", msg: "unknown key"},
		{name: "teamsFile duplicate of inline", yaml: wandbOK + profilesOK + teamsOK + "teamsFile: teams.yaml\n", files: map[string]string{"teams.yaml": "teams:\n  - name: ml-research #<\n"}, file: "teams.yaml", field: "teams[0].name", msg: `team "ml-research" is already defined at /cfg/config.yaml:15:5`},
		{name: "teamsFile malformed", yaml: wandbOK + profilesOK + "teamsFile: teams.yaml\n", files: map[string]string{"teams.yaml": "teams:\n  - name: a\n  - name: [ #<\n"}, file: "teams.yaml", msg: "invalid YAML"},
		// topologies and registration
		{name: "topology invalid", yaml: wandbOK + profilesOK + "    topology: mixed #<\n", field: "profiles.main.topology", msg: `"mixed" is not supported; expected one of: per-team, shared`},
		{name: "shared without path", yaml: wandbOK + edit(sharedOK, "  main:\n", "  main: #<\n", "    path: \"teams/{{ .Team }}\"\n", "") + teamsOK, field: "profiles.main.path", msg: `is required with topology shared: a prefix per team such as "teams/{{ .Team }}"`},
		{name: "shared path empty", yaml: wandbOK + edit(sharedOK, `path: "teams/{{ .Team }}"`, `path: "" #<`), field: "profiles.main.path", msg: "must not be empty"},
		{name: "shared bucket depends on the team", yaml: wandbOK + edit(sharedOK, "bucket: wandb-shared", `bucket: "wandb-{{ .Team }}" #<`) + teamsOK, field: "profiles.main.bucket", msg: `every team gets the same bucket, so the template must not depend on the team: it gives "wandb-team" for team "team" and "wandb-other-team" for team "other-team"`},
		{name: "shared path same for every team", yaml: wandbOK + edit(sharedOK, `path: "teams/{{ .Team }}"`, "path: wandb #<") + teamsOK, field: "profiles.main.path", msg: `the template must use {{ .Team }}: it gives "wandb" for every team`},
		{name: "shared bucket name invalid", yaml: wandbOK + edit(sharedOK, "bucket: wandb-shared", "bucket: Wandb_Shared #<") + teamsOK, field: "profiles.main.bucket", msg: `bucket name "Wandb_Shared" may contain only`},
		{name: "shared bucket differs for one team", yaml: wandbOK + edit(sharedOK, "bucket: wandb-shared", `bucket: '{{ if eq .Team "odd" }}odd-bucket{{ else }}wandb-shared{{ end }}'`) + "teams:\n  - name: ml\n  - name: odd #<\n",
			field: "teams[1]", msg: `profile "main" is shared, so every team gets bucket "wandb-shared", but its bucket template "{{ if eq .Team \"odd\" }}odd-bucket{{ else }}wandb-shared{{ end }}" gives "odd-bucket" for this team`},
		{name: "shared path of two teams", yaml: wandbOK + edit(sharedOK, `path: "teams/{{ .Team }}"`, `path: "teams/{{ slice .Team 0 2 }}"`) + "teams:\n  - name: ml-a\n  - name: ml-b #<\n",
			field: "teams[1]", msg: `team "ml-b" would get path "teams/ml" in shared bucket "wandb-shared", which team "ml-a" at /cfg/config.yaml:19:5 gets too`},
		{name: "shared path inside another's", yaml: wandbOK + edit(sharedOK, `path: "teams/{{ .Team }}"`, `path: '{{ if eq .Team "ml" }}teams{{ else }}teams/{{ .Team }}{{ end }}'`) + "teams:\n  - name: ml\n  - name: nlp #<\n",
			field: "teams[1]", msg: `team "nlp" would get path "teams/nlp" in shared bucket "wandb-shared", inside path "teams" of team "ml" at /cfg/config.yaml:19:5: no team's path may lie inside another's`},
		{name: "shared path around another's", yaml: wandbOK + edit(sharedOK, `path: "teams/{{ .Team }}"`, `path: '{{ if eq .Team "ml" }}teams{{ else }}teams/{{ .Team }}/data{{ end }}'`) + "teams:\n  - name: nlp\n  - name: ml #<\n",
			field: "teams[1]", msg: `team "ml" would get path "teams" in shared bucket "wandb-shared", which holds path "teams/nlp/data" of team "nlp" at /cfg/config.yaml:19:5`},
		{name: "shared path empty for a team", yaml: wandbOK + edit(sharedOK, `path: "teams/{{ .Team }}"`, `path: '{{ if ne .Team "ml" }}teams/{{ .Team }}{{ end }}'`) + "teams:\n  - name: ml #<\n",
			field: "teams[0]", msg: `is shared, so every team needs a path of its own, but its path template "{{ if ne .Team \"ml\" }}teams/{{ .Team }}{{ end }}" gives an empty path for this team`},
		{name: "two shared profiles, one bucket", yaml: wandbOK + sharedOK + edit(sharedOK, "profiles:\n  main:", "  other:", "bucket: wandb-shared", "bucket: wandb-shared #<") + "defaultProfile: main\n",
			field: "profiles.other.bucket", msg: `bucket "wandb-shared" is already the shared bucket of profile "main": a shared bucket belongs to one profile`},
		{name: "shared bucket of another profile", yaml: wandbOK + sharedOK + edit(s3ProfilesOK, "profiles:\n  main:", "  solo:", "s-{{ .Team }}", "wandb-shared") + "teams:\n  - name: ml\n    profile: main\n  - name: cv #<\n    profile: solo\n",
			field: "teams[1]", msg: `team "cv" would get bucket "wandb-shared" from profile "solo", but team "ml" at /cfg/config.yaml:28:5 gets it from profile "main": a bucket serves one profile only`},
		{name: "requireRegistered on multi-tenant", yaml: on("multi-tenant") + profilesOK + "    requireRegistered: true #<\n", field: "profiles.main.requireRegistered", msg: "W&B multi-tenant cloud needs no bucket registration"},
		{name: "requireRegistered not a bool", yaml: wandbOK + profilesOK + "    requireRegistered: sometimes #<\n", field: "profiles.main.requireRegistered", msg: `expected true or false, got "sometimes"`},
		{name: "key of another provider", yaml: wandbOK + profilesOK + "    tenantId: 11111111-2222-3333-4444-555555555555 #<\n", field: "profiles.main.tenantId", msg: "is only used with provider azure"},
		{name: "softDeleteDays on s3-compatible", yaml: wandbOK + s3ProfilesOK + "    softDeleteDays: 7 #<\n", field: "profiles.main.softDeleteDays", msg: "is only used with providers gcs and azure"},

		// gcs
		{name: "gcs without project", yaml: wandbOK + edit(gcsOK, "  main:", "  main: #<", "    project: acme-ml\n", ""), field: "profiles.main.project", msg: "is required for provider gcs: the id of the Google Cloud project"},
		{name: "gcs without region", yaml: wandbOK + edit(gcsOK, "  main:", "  main: #<", "    region: us-east1\n", ""), field: "profiles.main.region", msg: "is required for provider gcs: the bucket location, such as us-east1, nam4 or US"},
		{name: "gcs with an AWS region", yaml: wandbOK + edit(gcsOK, "region: us-east1", "region: us-east-1 #<"), field: "profiles.main.region", msg: `"us-east-1" is an AWS region name; GCS locations look like us-east1`},
		{name: "gcs project id invalid", yaml: wandbOK + edit(gcsOK, "project: acme-ml", "project: Acme_ML #<"), field: "profiles.main.project", msg: `"Acme_ML" is not a Google Cloud project id`},
		{name: "gcs soft delete off", yaml: wandbOK + gcsOK + "    softDeleteDays: 0 #<\n", field: "profiles.main.softDeleteDays", msg: `must be between 7 and 90, got 0: GCS keeps soft-deleted objects 7 to 90 days, and 0 turns soft delete off, which W&B refuses: "Bucket does not have soft deletion enabled"`},
		{name: "gcs soft delete too long", yaml: wandbOK + gcsOK + "    softDeleteDays: ${DAYS} #<\n", env: map[string]string{"DAYS": "91"}, field: "profiles.main.softDeleteDays", msg: "must be between 7 and 90, got 91"},
		{name: "gcs self-managed without principal", yaml: on("self-managed") + edit(gcsOK, "  main:", "  main: #<"), field: "profiles.main.principal", msg: "is required when wandb.deployment is self-managed: the email of the service account your W&B server runs as"},
		{name: "gcs principal not an email", yaml: wandbOK + gcsOK + "    principal: arn:aws:iam::123456789012:root #<\n", field: "profiles.main.principal", msg: `"arn:aws:iam::123456789012:root" is not multi-tenant, dedicated or a service account email`},
		{name: "gcs key not JSON", yaml: wandbOK + gcsOK + "    credentials:\n      serviceAccountKey: /etc/gcp/key.json #<\n", field: "profiles.main.credentials.serviceAccountKey", msg: "is not valid JSON (error at byte 1): a service account key is the JSON file Google issues; use serviceAccountKeyFile"},
		{name: "gcs key without private key", yaml: wandbOK + gcsOK + "    credentials:\n      serviceAccountKey: '{\"client_email\": \"a@b.iam.gserviceaccount.com\"}' #<\n", field: "profiles.main.credentials.serviceAccountKey", msg: "is not a service account key: it has no private_key"},
		{name: "gcs key of a user", yaml: wandbOK + gcsOK + "    credentials:\n      serviceAccountKeyFile: adc.json #<\n", files: map[string]string{"adc.json": `{"type": "authorized_user", "client_id": "x", "refresh_token": "y"}`},
			field: "profiles.main.credentials.serviceAccountKeyFile", msg: `is not a service account key: its "type" is not "service_account"`},
		{name: "gcs key a list", yaml: wandbOK + gcsOK + "    credentials:\n      serviceAccountKeyFile: key.json #<\n", files: map[string]string{"key.json": "[1, 2]\n"},
			field: "profiles.main.credentials.serviceAccountKeyFile", msg: "expected a JSON object with the strings client_email and private_key"},
		{name: "gcs key file missing", yaml: wandbOK + gcsOK + "    credentials:\n      serviceAccountKeyFile: sa.json #<\n", field: "profiles.main.credentials.serviceAccountKeyFile", msg: `cannot read "/cfg/sa.json"`},
		{name: "gcs credentials of S3", yaml: wandbOK + gcsOK + "    credentials:\n      accessKeyId: a #<\n", count: 2, field: "profiles.main.credentials.accessKeyId", msg: "unknown key; expected one of: serviceAccountKey, serviceAccountKeyFile"},
		{name: "gcs with kms", yaml: wandbOK + gcsOK + "    kms: {create: true} #<\n", field: "profiles.main.kms", msg: "is only used with providers aws and s3-compatible"},
		{name: "gcs with orgId", yaml: wandbOK + gcsOK + "    orgId: acme #<\n", field: "profiles.main.orgId", msg: "is only used with provider coreweave"},
		{name: "gcs bucket name invalid", yaml: wandbOK + edit(gcsOK, `"g-{{ .Team }}"`, `"google-{{ .Team }}"`) + "teams:\n  - name: ml #<\n", field: "teams[0]", msg: `bucket name "google-ml" must not begin with "goog" or contain "google"`},

		// azure
		{name: "azure on multi-tenant", yaml: on("multi-tenant") + edit(azureOK, "provider: azure", "provider: azure #<"), field: "profiles.main.provider", msg: "W&B multi-tenant cloud does not support Azure team storage"},
		{name: "azure without account", yaml: wandbOK + edit(azureOK, "  main:", "  main: #<", "    account: acmewandb\n", ""), field: "profiles.main.account", msg: "is required for provider azure: the storage account"},
		{name: "azure account invalid", yaml: wandbOK + edit(azureOK, "account: acmewandb", "account: Acme_Wandb #<"), field: "profiles.main.account", msg: `"Acme_Wandb" is not a storage account name (3 to 24 lowercase letters and digits)`},
		{name: "azure without tenantId", yaml: wandbOK + edit(azureOK, "  main:", "  main: #<", "    tenantId: 11111111-2222-3333-4444-555555555555\n", ""), field: "profiles.main.tenantId", msg: "is required for provider azure: the Entra ID tenant"},
		{name: "azure clientId not a GUID", yaml: wandbOK + edit(azureOK, "clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "clientId: wandb-app #<"), field: "profiles.main.clientId", msg: `"wandb-app" is not a GUID`},
		{name: "azure without credentials", yaml: wandbOK + edit(azureOK, "  main:", "  main: #<", "    credentials:\n      accountKey: ${AZURE_KEY}\n", ""), field: "profiles.main.credentials", msg: "is required for provider azure: set one of accountKey (or accountKeyFile), connectionString (or connectionStringFile) or identity: true"},
		{name: "azure two credentials", yaml: wandbOK + edit(azureOK, "    credentials:\n", "    credentials: #<\n      identity: true\n"), field: "profiles.main.credentials", msg: "set only one of accountKey, connectionString and identity: true"},
		{name: "azure identity off", yaml: wandbOK + edit(azureOK, "    credentials:\n      accountKey: ${AZURE_KEY}\n", "    credentials: #<\n      identity: false\n"), field: "profiles.main.credentials", msg: "set one of accountKey"},
		{name: "azure account key not base64", yaml: wandbOK + edit(azureOK, "accountKey: ${AZURE_KEY}", "accountKey: ${AZURE_BAD} #<"), env: map[string]string{"AZURE_BAD": "not base64!"}, field: "profiles.main.credentials.accountKey", msg: "is not base64"},
		{name: "azure connection string of another account", yaml: wandbOK + edit(azureOK, "accountKey: ${AZURE_KEY}", "connectionStringFile: az.conn #<"),
			files: map[string]string{"az.conn": "DefaultEndpointsProtocol=https;AccountName=other;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net\n"},
			field: "profiles.main.credentials.connectionStringFile", msg: `names storage account "other", but the profile's account is "acmewandb"`},
		{name: "azure connection string malformed", yaml: wandbOK + edit(azureOK, "accountKey: ${AZURE_KEY}", "connectionString: just-a-key #<"), field: "profiles.main.credentials.connectionString", msg: "is not an Azure Storage connection string"},
		{name: "azure soft delete off", yaml: wandbOK + azureOK + "    softDeleteDays: 0 #<\n", field: "profiles.main.softDeleteDays", msg: "must be between 1 and 365, got 0: Azure keeps soft-deleted blobs 1 to 365 days"},
		{name: "azure with principal", yaml: wandbOK + azureOK + "    principal: dedicated #<\n", field: "profiles.main.principal", msg: "is only used with providers aws, coreweave and gcs"},
		{name: "azure with project", yaml: wandbOK + azureOK + "    project: acme-ml #<\n", field: "profiles.main.project", msg: "is only used with provider gcs"},
		{name: "azure endpoint not a URL", yaml: wandbOK + azureOK + "    endpoint: acmewandb.blob.core.windows.net #<\n", field: "profiles.main.endpoint", msg: "is not an http:// or https:// URL"},
		{name: "azure container name invalid", yaml: wandbOK + azureOK + "teams:\n  - name: ml--x #<\n", field: "teams[0]", msg: `container name "a-ml--x" must not contain two consecutive hyphens`},

		// coreweave
		{name: "coreweave without credentials", yaml: wandbOK + edit(coreweaveOK, "  main:", "  main: #<", "    credentials:\n      accessKeyId: CWKEY\n      secretAccessKey: ${CW_SECRET}\n", ""), field: "profiles.main.credentials", msg: "is required for provider coreweave"},
		{name: "coreweave without orgId", yaml: wandbOK + edit(coreweaveOK, "  main:", "  main: #<", "    orgId: acme\n", ""), field: "profiles.main.orgId", msg: "is required for provider coreweave: your W&B organization id or customer namespace"},
		{name: "coreweave endpoint without TLS", yaml: wandbOK + coreweaveOK + "    endpoint: http://cwobject.com #<\n", field: "profiles.main.endpoint", msg: "must be an https:// URL"},
		{name: "coreweave LOTA endpoint", yaml: wandbOK + coreweaveOK + "    endpoint: http://cwlota.com #<\n", field: "profiles.main.endpoint", msg: "W&B does not support CoreWeave LOTA endpoints; use https://cwobject.com"},
		{name: "coreweave with kms", yaml: wandbOK + coreweaveOK + "    kms: {keyArn: k} #<\n", field: "profiles.main.kms", msg: "is only used with providers aws and s3-compatible"},
		{name: "coreweave with pathStyle", yaml: wandbOK + coreweaveOK + "    pathStyle: true #<\n", field: "profiles.main.pathStyle", msg: "is only used with providers aws and s3-compatible"},
		{name: "coreweave with awsExternalId", yaml: wandbOK + coreweaveOK + "    awsExternalId: x #<\n", field: "profiles.main.awsExternalId", msg: "is only used with provider aws"},
		{name: "coreweave session token", yaml: wandbOK + edit(coreweaveOK, "${CW_SECRET}\n", "${CW_SECRET}\n      sessionToken: t #<\n"), field: "profiles.main.credentials.sessionToken", msg: "unknown key; expected one of: accessKeyId, secretAccessKey, secretAccessKeyFile"},
		{name: "coreweave principal invalid", yaml: wandbOK + coreweaveOK + "    principal: wandb #<\n", field: "profiles.main.principal", msg: `"wandb" is not multi-tenant, dedicated, self-managed or a CoreWeave principal ARN`},
		{name: "coreweave orgWideAccess invalid", yaml: wandbOK + coreweaveOK + "    orgWideAccess: \"acme:*\" #<\n", field: "profiles.main.orgWideAccess", msg: `"acme:*" is not a CoreWeave organization id`},
		{name: "coreweave with softDeleteDays", yaml: wandbOK + coreweaveOK + "    softDeleteDays: 7 #<\n", field: "profiles.main.softDeleteDays", msg: "is only used with providers gcs and azure"},
		{name: "coreweave bucket name reserved", yaml: wandbOK + edit(coreweaveOK, `"c-{{ .Team }}"`, `"cw-{{ .Team }}"`) + "teams:\n  - name: ml #<\n", field: "teams[0]", msg: `bucket name "cw-ml" must not start with cw- or vip-`},
	})
}
