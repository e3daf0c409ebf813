package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/team"
)

// adoptConfig is a configuration with one s3-compatible profile and the given teams list.
func (e *e2e) adoptConfig(scimURL, teams string) {
	e.t.Helper()
	cfg := fmt.Sprintf(`wandb:
  scimURL: %s
  deployment: dedicated
  auth: {mode: bearer, apiKey: "${TEST_WANDB_KEY}"}
  timeout: 5s
state:
  path: state.db
profiles:
  onprem:
    provider: s3-compatible
    region: %s
    endpoint: %s
    credentials: {accessKeyId: %s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%s-op-{{ .Team }}"
%s`, scimURL, backends.Region, backends.Endpoint, backends.AccessKey, e.prefix, teams)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// handMadeBucket creates a bucket directly in SeaweedFS with W&B's CORS rule, as someone following
// W&B's BYOB page by hand would.
func (e *e2e) handMadeBucket(name string) {
	e.t.Helper()
	c := backends.S3Client(e.t.Context())
	if _, err := c.CreateBucket(e.t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		e.t.Fatal(err)
	}
	_, err := c.PutBucketCors(e.t.Context(), &s3.PutBucketCorsInput{Bucket: aws.String(name), CORSConfiguration: &types.CORSConfiguration{
		CORSRules: []types.CORSRule{{AllowedMethods: []string{"GET", "HEAD", "PUT"}, AllowedOrigins: []string{"*"}, AllowedHeaders: []string{"*"}, ExposeHeaders: []string{"ETag"}, MaxAgeSeconds: aws.Int32(3000)}}}})
	if err != nil {
		e.t.Fatal(err)
	}
}

// bucketSettings is what the test compares before and after a refusal: tags and CORS rules.
func (e *e2e) bucketSettings(name string) string {
	e.t.Helper()
	c := backends.S3Client(e.t.Context())
	var out []string
	if tags, err := c.GetBucketTagging(e.t.Context(), &s3.GetBucketTaggingInput{Bucket: aws.String(name)}); err == nil {
		for _, t := range tags.TagSet {
			out = append(out, "tag "+aws.ToString(t.Key)+"="+aws.ToString(t.Value))
		}
	}
	if cors, err := c.GetBucketCors(e.t.Context(), &s3.GetBucketCorsInput{Bucket: aws.String(name)}); err == nil {
		for _, r := range cors.CORSRules {
			out = append(out, fmt.Sprintf("cors %v %v %v", r.AllowedMethods, r.AllowedOrigins, r.ExposeHeaders))
		}
	}
	return strings.Join(out, "; ")
}

// fillImport fills the stanzas import wrote for the named teams (bucket; no path) and drops the others.
func fillImport(t *testing.T, out string, buckets map[string]string, repair map[string]bool) string {
	t.Helper()
	blocks := strings.Split(out, "\n\n")
	kept := []string{blocks[0][strings.Index(blocks[0], "teams:"):]}
	for _, b := range blocks[1:] {
		for name, bucket := range buckets {
			if strings.Contains(b, "- name: "+name+" ") {
				b = strings.Replace(b, `bucket: "<FILL IN>"`, "bucket: "+bucket, 1)
				b = strings.Replace(b, `path: "<FILL IN>"`, `path: ""`, 1)
				if repair[name] {
					b = strings.Replace(b, "repair: false", "repair: true", 1)
				}
				kept = append(kept, b)
			}
		}
	}
	if len(kept) != len(buckets)+1 {
		t.Fatalf("import output lacks a team of %v:\n%s", buckets, out)
	}
	return strings.Join(kept, "\n")
}

// A team made by hand in W&B, on a bucket made by hand, is listed by import, shown by plan and taken
// over by sync; one whose bucket fails W&B's checks is refused and nothing changes, until the operator
// allows the repair.
func TestAdoptE2E(t *testing.T) {
	e := newE2E(t)
	scimURL := e.startEmulator(wandbemu.NewS3Checker(backends.Endpoint, backends.Region, backends.AccessKey, backends.SecretKey).ForS3Providers())
	ctx := t.Context()
	vision, audio, plain := e.team("vision"), e.team("audio"), e.team("plain")
	visionBucket, audioBucket := e.prefix+"-hand-vision", e.prefix+"-hand-audio"

	// Made by hand: two buckets with W&B's CORS rule, two W&B teams on them (W&B checks the bucket
	// before it creates a team), and one team on W&B's default storage.
	e.handMadeBucket(visionBucket)
	e.handMadeBucket(audioBucket)
	client, err := wandb.NewClient(wandb.Options{BaseURL: scimURL, Auth: wandb.AuthBearer, APIKey: apiKey})
	if err != nil {
		t.Fatal(err)
	}
	byHand := map[string]string{}
	for name, bucket := range map[string]string{vision: visionBucket, audio: audioBucket, plain: ""} {
		ng := wandb.NewGroup{DisplayName: name}
		if bucket != "" {
			ng.StorageBucket = &wandb.StorageBucket{Name: bucket, Provider: "MINIO"}
		}
		g, err := client.CreateGroup(ctx, ng)
		if err != nil {
			t.Fatalf("make team %s by hand: %v", name, err)
		}
		byHand[name] = g.ID
	}
	// Someone then removed the CORS rule of audio's bucket: W&B can no longer use it.
	if _, err := backends.S3Client(ctx).DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String(audioBucket)}); err != nil {
		t.Fatal(err)
	}

	// import lists the three and writes an entry to fill in for each.
	e.adoptConfig(scimURL, "")
	imp := e.mustRun("import")
	for _, name := range []string{vision, audio, plain} {
		if !strings.Contains(imp.stdout, "- name: "+name+"  # W&B team id "+strconv.Quote(byHand[name])) {
			t.Errorf("import does not list %s:\n%s", name, imp.stdout)
		}
	}
	if !strings.Contains(imp.stdout, "profile: onprem") || !strings.Contains(imp.stdout, `bucket: "<FILL IN>"`) || !strings.Contains(imp.stderr, "3 of W&B's 3 teams") {
		t.Errorf("import:\n%s\n%s", imp.stdout, imp.stderr)
	}
	outFile := filepath.Join(e.dir, "adopt.yaml")
	e.mustRun("import", "--output", outFile)
	if b, err := os.ReadFile(outFile); err != nil || string(b) != imp.stdout {
		t.Errorf("import --output wrote %q (%v), want what import printed", b, err)
	}

	// The operator fills in the buckets of vision and audio and adds them to the configuration.
	e.adoptConfig(scimURL, fillImport(t, imp.stdout, map[string]string{vision: visionBucket, audio: audioBucket}, nil))
	p := e.mustRun("plan")
	for _, want := range []string{
		"adopt W&B team " + byHand[vision] + " (made by hand): check bucket " + visionBucket,
		fmt.Sprintf("refused: adopting team %q refused, nothing was changed: bucket %s fails W&B's checks: cors:", audio, audioBucket),
	} {
		if !strings.Contains(oneLine(p.stdout), want) {
			t.Errorf("plan lacks %q:\n%s", want, p.stdout)
		}
	}
	var plans []plan.TeamPlan
	if err := json.Unmarshal([]byte(e.mustRun("plan", "--json").stdout), &plans); err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		switch p.Team {
		case vision:
			if p.Adopt == nil || p.Adopt.GroupID != byHand[vision] || len(p.Steps) == 0 || p.Steps[0] != plan.StepCheckAdoption {
				t.Errorf("plan --json of %s: %+v", vision, p)
			}
		case audio:
			if p.Refused == "" || len(p.Steps) != 0 {
				t.Errorf("plan --json of %s: %+v", audio, p)
			}
		}
	}

	groupsBefore := e.emu.Groups()
	audioBefore := e.bucketSettings(audioBucket)
	e.emu.ResetCounts()
	s := e.run("sync")
	if s.code != 1 || !strings.Contains(s.stdout, vision+"  adopted") || !strings.Contains(oneLine(s.stdout), audio+" refused adopting team") {
		t.Fatalf("sync: exit %d\n%s\n%s", s.code, s.stdout, s.stderr)
	}
	// Never a second team, never a change to W&B: one listing and one lookup per team.
	if n := e.emu.MutatingCount(); n != 0 || !reflect.DeepEqual(e.emu.Groups(), groupsBefore) {
		t.Errorf("W&B changed: %d mutating requests %v", n, e.emu.Counts())
	}
	recs := e.records()
	if len(recs) != 1 || recs[0].Name != vision || recs[0].Provenance != state.ProvenanceAdopted || recs[0].GroupID != byHand[vision] ||
		recs[0].Phase != state.PhaseInSync || recs[0].Storage.Bucket != visionBucket || recs[0].LastVerified.IsZero() {
		t.Fatalf("records after sync = %+v", recs)
	}
	if tags := e.bucketTags(visionBucket); tags["managed-by"] != "byob-agent" || tags["byob-agent-team"] != vision {
		t.Errorf("vision's bucket tags = %v", tags)
	}
	// The refusal changed nothing: no record, the bucket as it was.
	if got := e.bucketSettings(audioBucket); got != audioBefore {
		t.Errorf("audio's bucket changed: %q, was %q", got, audioBefore)
	}

	// A second sync: vision is managed as any team (nothing to do), audio refused again, same state.
	e.emu.ResetCounts()
	s = e.run("sync")
	if s.code != 1 || !strings.Contains(s.stdout, vision+"  unchanged") {
		t.Errorf("second sync: exit %d\n%s", s.code, s.stdout)
	}
	if n := e.emu.MutatingCount(); n != 0 || !reflect.DeepEqual(e.records(), recs) {
		t.Errorf("second sync changed something: %d mutating W&B requests", n)
	}
	if d := e.mustRun("doctor", vision); !strings.Contains(d.stdout, "ok") {
		t.Errorf("doctor %s:\n%s", vision, d.stdout)
	}

	// The operator allows the repair: audio is adopted, its CORS rule restored.
	e.adoptConfig(scimURL, fillImport(t, imp.stdout, map[string]string{vision: visionBucket, audio: audioBucket}, map[string]bool{audio: true}))
	s = e.mustRun("sync")
	if !strings.Contains(s.stdout, audio+"   adopted") && !strings.Contains(oneLine(s.stdout), audio+" adopted") {
		t.Errorf("sync with repair:\n%s", s.stdout)
	}
	if !strings.Contains(e.bucketSettings(audioBucket), "cors [GET HEAD PUT] [*] [ETag]") {
		t.Errorf("audio's bucket after the repair: %s", e.bucketSettings(audioBucket))
	}
	var rec state.Record
	if err := json.Unmarshal([]byte(e.mustRun("state", "show", audio).stdout), &rec); err != nil || rec.Provenance != state.ProvenanceAdopted || rec.GroupID != byHand[audio] {
		t.Errorf("audio's record = %+v (%v)", rec, err)
	}
	if n := len(e.emu.Groups()); n != 3 {
		t.Errorf("W&B has %d teams, want the 3 made by hand", n)
	}
	// A team W&B does not have is refused, with nothing changed.
	ghost := e.team("ghost")
	e.adoptConfig(scimURL, fillImport(t, imp.stdout, map[string]string{vision: visionBucket, audio: audioBucket}, nil)+
		"\n  - name: "+ghost+"\n    adopt: {bucket: "+visionBucket+"-nope}\n")
	recsBefore := e.records()
	e.emu.ResetCounts()
	if s := e.run("sync"); s.code != 1 || !strings.Contains(oneLine(s.stdout), fmt.Sprintf("%s refused adopting team %q refused, nothing was changed: W&B has no team named %q", ghost, ghost, ghost)) {
		t.Errorf("sync with a team W&B does not have: exit %d\n%s", s.code, s.stdout)
	}
	if n := e.emu.MutatingCount(); n != 0 || !reflect.DeepEqual(e.records(), recsBefore) {
		t.Errorf("a refusal changed something: %d mutating W&B requests", n)
	}

	// Nothing is left to import but the team on W&B's default storage.
	if imp := e.mustRun("import"); !strings.Contains(imp.stderr, "1 of W&B's 3 teams") || !strings.Contains(imp.stdout, "- name: "+plain) {
		t.Errorf("import after the adoptions:\n%s\n%s", imp.stdout, imp.stderr)
	}
}

// A team made by hand that an Okta group also gives: the teams-list entry states its storage, the
// group stays its source, and its members are synced right after the adoption.
func TestAdoptGroupTeamE2E(t *testing.T) {
	e := newE2E(t)
	scimURL := e.startEmulator(wandbemu.NewS3Checker(backends.Endpoint, backends.Region, backends.AccessKey, backends.SecretKey).ForS3Providers())
	fake, _, caFile := e.oktaSource(t)
	e.env = append(e.env, "SSL_CERT_FILE="+caFile)
	name, bucket := "search-"+e.sfx, e.prefix+"-hand-search"
	e.handMadeBucket(bucket)
	client, err := wandb.NewClient(wandb.Options{BaseURL: scimURL, Auth: wandb.AuthBearer, APIKey: apiKey})
	if err != nil {
		t.Fatal(err)
	}
	g, err := client.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: name, StorageBucket: &wandb.StorageBucket{Name: bucket, Provider: "MINIO"}})
	if err != nil {
		t.Fatal(err)
	}

	// Without adopt, the group's team is a conflict with the team made by hand.
	e.adoptConfig(scimURL, "")
	e.appendOktaConfig(fake.URL)
	if s := e.run("sync"); s.code != 1 || !strings.Contains(s.stdout, "did not create") {
		t.Fatalf("sync without adopt: exit %d\n%s", s.code, s.stdout)
	}
	e.adoptConfig(scimURL, "teams:\n  - name: "+name+"\n    profile: onprem\n    adopt: {bucket: "+bucket+"}\n")
	e.appendOktaConfig(fake.URL)
	if p := e.mustRun("plan"); !strings.Contains(oneLine(p.stdout), "record the team as adopted, mark in sync, members: add ada@example.com, bob@example.com") {
		t.Errorf("plan:\n%s", p.stdout)
	}
	e.emu.ResetCounts()
	if s := e.mustRun("sync"); !strings.Contains(s.stdout, "adopted") {
		t.Errorf("sync:\n%s", s.stdout)
	}
	if got := e.memberEmails(name); !slices.Equal(got, []string{"ada@example.com", "bob@example.com"}) || !e.hasServiceAccount(name) {
		t.Errorf("members = %v, service account kept: %v", got, e.hasServiceAccount(name))
	}
	if n := e.emu.Counts()["POST /scim/Groups"]; n != 0 || len(e.emu.Groups()) != 1 {
		t.Errorf("a team was created: %d POST /Groups, %d teams", n, len(e.emu.Groups()))
	}
	var rec state.Record
	if err := json.Unmarshal([]byte(e.mustRun("state", "show", name).stdout), &rec); err != nil ||
		rec.Provenance != state.ProvenanceAdopted || rec.Source != "okta" || rec.GroupID != g.ID || rec.Conflict != "" || len(rec.MembersAdded) != 2 {
		t.Errorf("record = %+v (%v)", rec, err)
	}
	if p := e.mustRun("plan"); !strings.Contains(p.stdout, "no change") {
		t.Errorf("plan after the adoption:\n%s", p.stdout)
	}
}

// An AWS bucket made W&B-correct by hand (KMS encryption, policy, public access block, object
// ownership, CORS) is adopted with its ownership tags added and no other setting written.
func TestAdoptAWSBucketE2E(t *testing.T) {
	e := newE2E(t)
	ctx := t.Context()
	scimURL := e.startEmulator(wandbemu.NewS3Checker(backends.Endpoint, backends.Region, backends.AccessKey, backends.SecretKey).ForS3Providers())
	e.writeConfig(scimURL, "{{ .Team }}")
	name, bucket := e.team("legacy"), e.prefix+"-hand-legacy"
	t.Setenv("TEST_WANDB_KEY", apiKey) // the configuration is loaded here too, to build the factory
	t.Setenv("TEST_S3_SECRET", backends.SecretKey)
	cfg, err := loadConfig(e.config)
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := cfg.Profile("fixed")
	f, err := newFactory(ctx, prof, nil)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: W&B's recipe on a bucket (applied here by the factory for a scratch owner), its
	// ownership tags then removed, and a W&B team created on it.
	st := team.Storage{Provider: team.ProviderAWS, Bucket: bucket, Region: backends.Region, Endpoint: backends.Endpoint, KMSKeyARN: e.keyARN, AWSExternalID: "ext-123"}
	if _, err := f.Ensure(ctx, bucketfactory.Bucket{Team: "scratch", Profile: "fixed", Storage: st, KMSKeyARN: e.keyARN}, bucketfactory.EnsureOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := backends.S3Client(ctx).DeleteBucketTagging(ctx, &s3.DeleteBucketTaggingInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	client, err := wandb.NewClient(wandb.Options{BaseURL: scimURL, Auth: wandb.AuthBearer, APIKey: apiKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateGroup(ctx, wandb.NewGroup{DisplayName: name, StorageBucket: wandb.BucketFor(st, e.keyARN)}); err != nil {
		t.Fatal(err)
	}

	raw, _ := os.ReadFile(e.config)
	text := string(raw)
	text = text[:strings.Index(text, "teams:\n")] + "teams:\n  - name: " + name + "\n    profile: fixed\n    adopt: {bucket: " + bucket + "}\n"
	if err := os.WriteFile(e.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := e.mustRun("sync")
	if !strings.Contains(s.stdout, name+"  adopted") {
		t.Fatalf("sync:\n%s", s.stdout)
	}
	tagged := false
	for _, l := range strings.Split(s.stdout, "\n") {
		c := strings.TrimSpace(l)
		tagged = tagged || strings.HasPrefix(c, "changed tags: adopted untagged bucket")
		if strings.HasPrefix(c, "changed ") && !strings.HasPrefix(c, "changed tags: ") {
			t.Errorf("a setting other than the ownership tags was written without adopt.repair: %s", c)
		}
	}
	if !tagged {
		t.Errorf("sync does not report the ownership tags it added:\n%s", s.stdout)
	}
	if tags := e.bucketTags(bucket); tags["byob-agent-team"] != name {
		t.Errorf("tags = %v", tags)
	}
	if d := e.run("doctor", name); d.code != 0 {
		t.Errorf("doctor: exit %d\n%s", d.code, d.stdout)
	}
	e.emu.ResetCounts()
	if s := e.mustRun("sync"); !strings.Contains(s.stdout, name+"  unchanged") || e.emu.MutatingCount() != 0 {
		t.Errorf("second sync:\n%s", s.stdout)
	}
}
