package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
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
					p.KMS.Endpoint != "http://127.0.0.1:4599" || p.AWSExternalID != "12345" || !p.AdoptExisting {
					t.Errorf("profile = %+v", p)
				}
				if d, _ := c.Profile("dedicated-preset"); d.PrincipalARN != principalDedicated {
					t.Errorf("preset principal = %q", d.PrincipalARN)
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustLoad(t, tc.yaml, tc.files, tc.env))
		})
	}
}

// TestExampleConfig keeps config.example.yaml loadable: it is read from disk, with a fake environment.
func TestExampleConfig(t *testing.T) {
	env := map[string]string{"WANDB_API_KEY": "k", "MINIO_ACCESS_KEY": "a", "MINIO_SECRET_KEY": "s"}
	o := LoadOptions{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile:  os.ReadFile,
	}
	cfg, err := Load("../config.example.yaml", o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.ProfileNames(); len(got) < 2 {
		t.Errorf("profiles = %v, want an aws and an s3-compatible one", got)
	}
	teams := cfg.DesiredTeams()
	if len(teams) < 3 {
		t.Errorf("teams = %v, want at least 3", teams)
	}
	providers := map[string]bool{}
	for _, tm := range teams {
		providers[tm.Storage.Provider] = true
	}
	if !providers[team.ProviderAWS] || !providers[team.ProviderS3Compatible] {
		t.Errorf("teams use providers %v, want both", providers)
	}

	// Every variable it documents is needed, and no other.
	delete(env, "MINIO_SECRET_KEY")
	_, err = Load("../config.example.yaml", o)
	if err == nil || !strings.Contains(err.Error(), "environment variable MINIO_SECRET_KEY is not set") {
		t.Errorf("without MINIO_SECRET_KEY: %v", err)
	}
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
	secrets := []string{"wandb-key-value", "s3-secret-value", "session-token-value"}
	yaml := wandbOK + strings.Replace(s3ProfilesOK, "${S3_SECRET}\n", "${S3_SECRET}\n      sessionToken: session-token-value\n", 1) + teamsOK
	cfg := mustLoad(t, yaml, nil, nil)
	p, _ := cfg.Profile("main")
	if p.Credentials.SessionToken.Reveal() != "session-token-value" {
		t.Fatal("session token not loaded")
	}

	var out bytes.Buffer
	for _, v := range []any{cfg, *cfg, p, *p.Credentials, p.Credentials, cfg.Wandb, cfg.Wandb.Auth.APIKey} {
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
		slog.New(h).Info("loaded", "config", cfg, "profile", p, "key", cfg.Wandb.Auth.APIKey, "creds", p.Credentials)
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

// TestEveryProblemAtOnce checks that one bad file gives all its problems, not the first.
func TestEveryProblemAtOnce(t *testing.T) {
	yaml := `wandb:
  scimURL: nope
  deployment: cloud
  auth: {mode: bearer}
sync: {concurrency: "eight", driftCheckInterval: soon}
profiles:
  main:
    provider: gcs
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

func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(example),
		wandbOK + profilesOK + teamsOK,
		wandbOK + s3ProfilesOK + "teamsFile: teams.yaml\n",
		"", "---\n---\n", "a: &a [*a]\n", "teams: {a: b}\n", "wandb: [\n", "profiles:\n  x:\n    bucket: '{{ range . }}'\n",
	} {
		f.Add([]byte(s))
	}
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
	})
}
