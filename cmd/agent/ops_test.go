package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestDoctor(t *testing.T) {
	e := newE2E(t)
	e.mustRun("sync")
	e.emu.ResetCounts()

	ok := e.mustRun("doctor")
	for _, team := range []string{"alpha", "beta", "gamma", "delta"} {
		if !strings.Contains(ok.stdout, e.team(team)) {
			t.Errorf("doctor does not list %s:\n%s", team, ok.stdout)
		}
	}
	if strings.Count(ok.stdout, "probe=pass") != 4 || strings.Contains(ok.stdout, "FAIL") {
		t.Errorf("doctor on healthy buckets:\n%s", ok.stdout)
	}

	ctx := t.Context()
	broken := e.prefix + "-" + e.team("alpha")
	admin := backends.S3Client(ctx)
	if _, err := admin.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String(broken)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String(broken)}); err != nil {
		t.Fatal(err)
	}
	bad := e.run("doctor")
	if bad.code != 1 || !strings.Contains(bad.stdout, "cors=FAIL") || !strings.Contains(bad.stdout, "policy=FAIL") ||
		strings.Count(bad.stdout, "fix: ") != 2 || !strings.Contains(bad.stderr, "1 of 4 buckets") {
		t.Errorf("doctor on a broken bucket: exit %d\n%s\n%s", bad.code, bad.stdout, bad.stderr)
	}
	one := e.run("doctor", e.team("gamma"), "--json")
	if one.code != 0 || strings.Contains(one.stdout, e.team("alpha")) || !strings.Contains(one.stdout, `"ok": true`) {
		t.Errorf("doctor for one team: exit %d\n%s", one.code, one.stdout)
	}
	if unknown := e.run("doctor", "nobody"); unknown.code != 2 || !strings.Contains(unknown.stderr, `team "nobody"`) {
		t.Errorf("doctor for an unknown team: exit %d %s", unknown.code, unknown.stderr)
	}
	if !strings.Contains(ok.stdout, "W&B "+e.emuURL()+" (dedicated, auth bearer): ok") || !strings.Contains(ok.stdout, "note: Azure and S3-compatible teams: W&B receives only the container or bucket name") {
		t.Errorf("doctor does not report W&B and the S3-compatible profile's note:\n%s", ok.stdout)
	}
	// A key W&B refuses as a bearer token: on dedicated, doctor names the version that took bearer
	// tokens and the basic modes.
	e.env = []string{"TEST_WANDB_KEY=not-the-key-0123456789"}
	refused := e.run("doctor", e.team("gamma"))
	if refused.code != 1 || !strings.Contains(refused.stdout, "(dedicated, auth bearer): FAIL") || !strings.Contains(refused.stdout, "server v0.79.0") ||
		!strings.Contains(refused.stdout, "basic-user") || !strings.Contains(refused.stderr, "W&B's SCIM API cannot be used") {
		t.Errorf("doctor with a refused key: exit %d\n%s\n%s", refused.code, refused.stdout, refused.stderr)
	}
	e.env = nil
	if n := e.emu.MutatingCount(); n != 0 {
		t.Errorf("doctor touched W&B: %d mutations", n)
	}
}

// runState runs a state subcommand.
func (e *e2e) runState(sub string, args ...string) (runResult, error) {
	r := e.run(append([]string{"state", sub}, args...)...)
	if r.code != 0 {
		return r, fmt.Errorf("state %s: exit %d: %s", sub, r.code, r.stderr)
	}
	return r, nil
}

// writeSharedConfig writes a config with one shared s3-compatible bucket that must be registered.
func (e *e2e) writeSharedConfig(teams ...string) {
	cfg := fmt.Sprintf(`wandb:
  scimURL: %[1]s
  deployment: self-managed
  auth: {mode: basic-service-account, apiKey: "${TEST_WANDB_KEY}"}
state:
  path: state.db
profiles:
  shared:
    provider: s3-compatible
    topology: shared
    requireRegistered: true
    region: %[2]s
    endpoint: %[3]s
    credentials: {accessKeyId: %[4]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[5]s-shared"
    path: "teams/{{ .Team }}"
teams:
`, e.emuURL(), backends.Region, backends.Endpoint, backends.AccessKey, e.prefix)
	for _, t := range teams {
		cfg += "  - name: " + t + "\n"
	}
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func TestSharedBucketWithRegistration(t *testing.T) {
	e := newE2E(t)
	one, two := e.team("one"), e.team("two")
	e.writeSharedConfig(one, two)

	first := e.mustRun("sync")
	if !strings.Contains(first.stdout, "2 teams: 2 waiting") || !strings.Contains(first.stdout, "mark-registered") {
		t.Errorf("first sync should stop at ready buckets:\n%s", first.stdout)
	}
	if got := e.buckets(); len(got) != 1 || got[0] != e.prefix+"-shared" {
		t.Fatalf("buckets = %v, want one shared bucket", got)
	}
	if tags := e.bucketTags(e.prefix + "-shared"); tags["byob-agent-shared"] != "shared" || tags["byob-agent-team"] != "" {
		t.Errorf("shared bucket tags = %v", tags)
	}
	if n := len(e.emu.Groups()); n != 0 {
		t.Fatalf("W&B has %d teams before the bucket was registered", n)
	}

	out := filepath.Join(e.dir, "stores")
	// A symlink at the output is refused, and what it points to is left as it was.
	victim := filepath.Join(e.dir, "victim")
	if err := os.WriteFile(victim, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, out); err != nil {
		t.Fatal(err)
	}
	if r := e.run("file-stores", "--output", out); r.code == 0 || !strings.Contains(r.stderr, "symbolic link") {
		t.Errorf("file-stores through a symlink: exit %d, stderr %q", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
		t.Errorf("the symlink's target became %q", b)
	}
	os.Remove(out)
	fsOut := e.mustRun("file-stores", "--output", out)
	if fsOut.stdout != "" || !strings.Contains(fsOut.stderr, "holds storage credentials") {
		t.Errorf("file-stores with --output printed %q, stderr %q", fsOut.stdout, fsOut.stderr)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file-stores file: %v %v", st, err)
	}
	raw, _ := os.ReadFile(out)
	want := fmt.Sprintf("s3://%s:", backends.AccessKey)
	if strings.Count(string(raw), "s3://") != 1 || !strings.HasPrefix(string(raw), want) || !strings.Contains(string(raw), "/"+e.prefix+"-shared?region=") {
		t.Errorf("file-stores value %q (one address for the one shared bucket)", raw)
	}

	marked, err := e.runState("mark-registered", one)
	if err != nil || strings.Count(marked.stdout, "marked bucket") != 2 {
		t.Fatalf("mark-registered: %v\n%s", err, marked.stdout)
	}
	second := e.mustRun("sync")
	if !strings.Contains(second.stdout, "2 created") {
		t.Errorf("sync after registration:\n%s", second.stdout)
	}
	for _, g := range e.emu.Groups() {
		if sb := g.StorageBucket; sb == nil || sb.Name != e.prefix+"-shared" || sb.Path != "teams/"+g.DisplayName || sb.Provider != "MINIO" {
			t.Errorf("team %s storage %+v", g.DisplayName, sb)
		}
	}
	backends.ResetCounts()
	e.emu.ResetCounts()
	e.mustRun("sync")
	if n := backends.S3Mutations() + e.emu.MutatingCount(); n != 0 {
		t.Errorf("third sync made %d mutations", n)
	}
}
