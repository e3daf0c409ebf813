package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
)

const importBase = `wandb:
  scimURL: https://acme.wandb.io/scim
  deployment: dedicated
  auth: {mode: bearer, apiKey: k}
defaultProfile: main
profiles:
  main:
    provider: aws
    region: us-east-1
    bucket: "wandb-{{ .Team }}"
    kms: {create: true}
  onprem:
    provider: s3-compatible
    region: us-east-1
    endpoint: http://127.0.0.1:8333
    credentials: {accessKeyId: AKIAEXAMPLE, secretAccessKey: s}
    bucket: "op-{{ .Team }}"
`

func loadImportConfig(t testing.TB, text string) (*config.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadConfig(path)
}

// The stanzas import writes parse, are refused while a placeholder is left, and once filled in
// load as adoptions of exactly the teams byob-agent does not manage.
func TestImportStanzas(t *testing.T) {
	cfg, err := loadImportConfig(t, importBase+"teams:\n  - name: clash\n    profile: onprem\n")
	if err != nil {
		t.Fatal(err)
	}
	groups := []wandb.Group{
		{ID: "G-v", DisplayName: "vision", Members: []wandb.Member{{Value: "u1"}, {Value: "u2"}}},
		{ID: "G-m", DisplayName: "managed"},
		{ID: "G-c", DisplayName: "clash"},
		{ID: "G-u", DisplayName: "under_score"},
		{ID: "G-a", DisplayName: "audio"},
	}
	recs := []state.Record{
		{Name: "managed", Phase: state.PhaseInSync},
		{Name: "clash", Phase: state.PhaseDesired, Conflict: "W&B already has a team named \"clash\""},
	}
	unmanaged := unmanagedTeams(groups, recs)
	var names []string
	for _, g := range unmanaged {
		names = append(names, g.DisplayName)
	}
	if got := strings.Join(names, " "); got != "audio clash under_score vision" {
		t.Fatalf("unmanaged teams = %s", got)
	}
	out := importStanzas(cfg, unmanaged)
	var doc struct {
		Teams []map[string]any `yaml:"teams"`
	}
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil || len(doc.Teams) != 3 {
		t.Fatalf("stanzas do not parse as a teams list of 3 (%v):\n%s", err, out)
	}
	for _, want := range []string{
		"# W&B team \"under_score\" (id \"G-u\") cannot be adopted",
		`- name: vision  # W&B team id "G-v", members: 2`,
		"profile: main  # the profile whose provider",
		"# add only the adopt block below to that entry",
		"profile: onprem",
		"kmsKeyArn: \"<FILL IN>\"  # FILL IN the KMS key",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stanzas lack %q:\n%s", want, out)
		}
	}

	// Pasted unfilled: every placeholder is refused, with its line and field.
	unfilled := importBase + strings.Replace(out, "\n  - name: clash", "\n  - name: clash-renamed", 1)
	_, err = loadImportConfig(t, unfilled)
	var errs *config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("unfilled stanzas loaded: %v", err)
	}
	if n := strings.Count(err.Error(), "still holds the placeholder <FILL IN>"); n != 8 || !strings.Contains(err.Error(), "teams[2].adopt.kmsKeyArn") {
		t.Errorf("want the 8 placeholders (3 buckets, 3 paths, 2 keys) reported:\n%v", err)
	}

	// Filled in: three adoptions.
	filled := unfilled
	for i := 0; strings.Contains(filled, `bucket: "<FILL IN>"`); i++ {
		filled = strings.Replace(filled, `bucket: "<FILL IN>"`, fmt.Sprintf("bucket: hand-made-%d", i), 1)
	}
	filled = strings.ReplaceAll(filled, `path: "<FILL IN>"`, `path: ""`)
	filled = strings.ReplaceAll(filled, `kmsKeyArn: "<FILL IN>"`, `kmsKeyArn: "arn:aws:kms:us-east-1:123456789012:key/k-1"`)
	got, err := loadImportConfig(t, filled)
	if err != nil {
		t.Fatalf("filled stanzas: %v\n%s", err, filled)
	}
	adopted := 0
	for _, tm := range got.DesiredTeams() {
		if tm.Adopt != nil && strings.HasPrefix(tm.Storage.Bucket, "hand-made-") && tm.Adopt.Repair == false {
			adopted++
		}
	}
	if adopted != 3 {
		t.Errorf("%d adoptions loaded, want 3: %+v", adopted, got.DesiredTeams())
	}
}

func TestImportNothingToAdopt(t *testing.T) {
	cfg, err := loadImportConfig(t, importBase)
	if err != nil {
		t.Fatal(err)
	}
	out := importStanzas(cfg, nil)
	var doc struct {
		Teams []any `yaml:"teams"`
	}
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil || doc.Teams == nil || len(doc.Teams) != 0 {
		t.Errorf("no team: %q (%v)", out, err)
	}
}

// --output replaces a file whole through a new one, mode 0644; a symlink or a directory there is
// refused and left as it is (writeFileReplacing's own cases are in TestWriteSecretFile).
func TestImportOutputFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "adopt.yaml")
	if err := os.WriteFile(out, []byte("old entries, longer than the new ones\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileReplacing(out, "teams: []\n", 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(out)
	if b, _ := os.ReadFile(out); err != nil || fi.Mode().Perm() != 0o644 || string(b) != "teams: []\n" {
		t.Errorf("output: %v, mode %v, %q", err, fi.Mode(), b)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := writeFileReplacing(link, "teams: []\n", 0o644); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("writing over a symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if err := writeFileReplacing(dir, "x", 0o644); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("writing over a directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("left behind: %v", entries)
	}
}

// Team names and ids come from W&B: whatever they hold, the stanzas stay YAML with at most that one
// entry, named as the team is, and no value that outside text chose.
func FuzzImportStanzas(f *testing.F) {
	cfg, err := loadImportConfig(f, importBase)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("vision", "R3JvdXA6MQ==")
	f.Add("x\n  - name: evil\n    adopt: {bucket: b}", "id\n  - name: evil2")
	f.Add("under_score", "#")
	f.Fuzz(func(t *testing.T, name, id string) {
		out := importStanzas(cfg, []wandb.Group{{ID: id, DisplayName: name}})
		var doc struct {
			Teams []struct {
				Name  string         `yaml:"name"`
				Adopt map[string]any `yaml:"adopt"`
			} `yaml:"teams"`
		}
		if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("not YAML (%v):\n%s", err, out)
		}
		switch {
		case len(doc.Teams) > 1:
			t.Fatalf("%d entries for one team:\n%s", len(doc.Teams), out)
		case len(doc.Teams) == 1 && (doc.Teams[0].Name != name || doc.Teams[0].Adopt["bucket"] != config.Placeholder):
			t.Fatalf("entry %+v for team %q:\n%s", doc.Teams[0], name, out)
		}
	})
}
