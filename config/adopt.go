package config

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/team"
)

// Placeholder is what `byob-agent import` writes where the operator must fill a value in. Loading
// refuses it, so a stanza pasted unfilled cannot adopt a team onto a made-up bucket.
const Placeholder = "<FILL IN>"

// adoptEntry is a team's `adopt` block: W&B already has the team (made by hand), and it was created
// with this bucket and path. W&B's API never shows a team's storage, so the operator states it.
type adoptEntry struct {
	field      string
	node       *yaml.Node
	bucket     string
	bucketNode *yaml.Node
	path       string
	pathNode   *yaml.Node
	keyARN     string
	keyNode    *yaml.Node
	repair     bool
}

// adoptEntry decodes the `adopt` block of a team entry, or returns nil without one.
func (f *file) adoptEntry(tm mapping) *adoptEntry {
	n := tm.value("adopt")
	if n == nil {
		return nil
	}
	m, ok := f.mapping(n, tm.at("adopt"), "bucket", "path", "kmsKeyArn", "repair")
	if !ok {
		return nil
	}
	m.pos = tm.keys["adopt"]
	a := &adoptEntry{field: m.field, node: n}
	a.bucket, a.bucketNode = f.str(m, "bucket", "is required: the bucket (Azure: container) the W&B team was created with")
	a.path, a.pathNode = f.str(m, "path", "")
	a.keyARN, a.keyNode = f.str(m, "kmsKeyArn", "")
	a.repair, _ = f.boolean(m, "repair")
	for _, v := range []struct {
		key  string
		val  string
		node *yaml.Node
	}{{"bucket", a.bucket, a.bucketNode}, {"path", a.path, a.pathNode}, {"kmsKeyArn", a.keyARN, a.keyNode}} {
		if v.node != nil && strings.Contains(v.val, Placeholder) {
			f.problem(v.node, m.at(v.key), "still holds the placeholder %s: fill in the value the W&B team was created with", Placeholder)
			if v.key == "bucket" {
				a.bucketNode = nil
			}
		}
	}
	if a.bucketNode == nil {
		return nil // reported: the team is left out rather than adopted onto a wrong bucket
	}
	return a
}

// storage is the storage the team was created with: the profile's (provider, region, endpoint,
// credentials, principal) with the stated bucket, path and key. ok is false when it is reported wrong.
func (a *adoptEntry) storage(e *teamEntry, p *Profile, st team.Storage) (team.Storage, bool) {
	f := e.f
	ok := true
	if err := team.ValidateBucketName(p.Provider, a.bucket); err != nil {
		f.problem(a.bucketNode, join(a.field, "bucket"), "%v", err)
		ok = false
	}
	if err := team.ValidatePath(a.path); err != nil {
		f.problem(a.pathNode, join(a.field, "path"), "%v", err)
		ok = false
	}
	if st.Shared && a.path == "" {
		f.problem(a.node, join(a.field, "path"), "profile %q is shared (a path per team): state the path the team was created with", p.Name)
		ok = false
	}
	st.Bucket, st.Path, st.CreateKMSKey = a.bucket, a.path, false
	switch {
	case a.keyNode != nil && p.Provider != team.ProviderAWS && p.Provider != team.ProviderS3Compatible:
		f.problem(a.keyNode, join(a.field, "kmsKeyArn"), "applies to providers aws and s3-compatible only; profile %q is %s", p.Name, p.Provider)
		ok = false
	case a.keyNode != nil:
		if p.Provider == team.ProviderAWS {
			if match := kmsKeyARNRE.FindStringSubmatch(a.keyARN); match == nil {
				f.problem(a.keyNode, join(a.field, "kmsKeyArn"), "%q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>)", a.keyARN)
				ok = false
			}
		}
		st.KMSKeyARN = a.keyARN
	case p.KMS.Create:
		f.problem(a.node, join(a.field, "kmsKeyArn"), "is required: profile %q creates a KMS key per team, but a team made by hand has its own; state the key its bucket is encrypted with", p.Name)
		ok = false
	}
	return st, ok
}
