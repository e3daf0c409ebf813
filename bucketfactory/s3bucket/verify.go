package s3bucket

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
)

// probeDir is where Verify writes its probe objects, under the team's path.
const probeDir = ".byob-agent-probe"

// Verify reads every setting of W&B's recipe back and writes, reads and deletes a probe object. The probe
// matters: S3 and SeaweedFS accept a default-encryption key they cannot use, and only a write fails (on
// SeaweedFS with a bare 500 InternalError, on S3 with a KMS error).
func (f *Factory) Verify(ctx context.Context, b bucketfactory.Bucket) error {
	c, err := f.bucketClient(b)
	if err != nil {
		return err
	}
	v := &verifier{f: f, c: c, b: b, name: b.Storage.Bucket}
	exists, err := bucketExists(ctx, c, v.name)
	if err != nil {
		return err
	}
	if !exists {
		v.finding("bucket", "bucket "+v.name+" to exist", "no such bucket")
		return v.result()
	}
	checks := []struct {
		awsOnly bool
		run     func(context.Context) error
	}{
		{false, v.checkTags},
		{true, v.checkOwnershipControls},
		{true, v.checkPublicAccessBlock},
		{false, v.checkEncryption},
		{false, v.checkCORS},
		{true, v.checkPolicy},
		{false, v.probe},
	}
	for _, check := range checks {
		if check.awsOnly && !f.isAWS() {
			continue
		}
		if err := check.run(ctx); err != nil {
			return err
		}
	}
	return v.result()
}

// verifier carries one Verify call. A check returns an error only when it could not run; what it found
// wrong is a finding.
type verifier struct {
	f        *Factory
	c        *s3.Client
	b        bucketfactory.Bucket
	name     string
	findings []bucketfactory.Finding
}

func (v *verifier) finding(check, expected, found string) {
	v.findings = append(v.findings, bucketfactory.Finding{Check: check, Expected: expected, Found: found})
}

func (v *verifier) result() error {
	if len(v.findings) == 0 {
		return nil
	}
	return &bucketfactory.VerifyError{Bucket: v.name, Findings: v.findings}
}

func (v *verifier) checkTags(ctx context.Context) error {
	tags, err := getTags(ctx, v.c, v.name)
	if err != nil {
		return err
	}
	for k, want := range ownershipTags(v.b.Team) {
		if got, ok := tags[k]; !ok || got != want {
			v.finding("tags", fmt.Sprintf("tag %s=%s", k, want), fmt.Sprintf("%s=%s", k, orNone(got)))
		}
	}
	return nil
}

func (v *verifier) checkOwnershipControls(ctx context.Context) error {
	got, err := getOwnershipControls(ctx, v.c, v.name)
	if err == nil && got != types.ObjectOwnershipBucketOwnerPreferred {
		v.finding("ownership-controls", "object ownership "+string(types.ObjectOwnershipBucketOwnerPreferred), orNone(string(got)))
	}
	return err
}

func (v *verifier) checkPublicAccessBlock(ctx context.Context) error {
	got, err := getPublicAccessBlock(ctx, v.c, v.name)
	if err == nil && !allBlocked(got) {
		v.finding("public-access-block", "all four flags true", describePublicAccessBlock(got))
	}
	return err
}

func (v *verifier) checkEncryption(ctx context.Context) error {
	if v.b.KMSKeyARN == "" {
		return nil
	}
	got, err := getEncryption(ctx, v.c, v.name)
	if err == nil && !got.matches(v.b.KMSKeyARN) {
		v.finding("encryption", encryption{types.ServerSideEncryptionAwsKms, v.b.KMSKeyARN, true}.String(), got.String())
	}
	return err
}

func (v *verifier) checkCORS(ctx context.Context) error {
	rules, err := getCORSRules(ctx, v.c, v.name)
	if err != nil {
		return err
	}
	if !hasWandbCORSRule(rules) {
		v.finding("cors", "a rule with "+describeCORSRule(wandbCORSRule()), describeCORSRules(rules))
	}
	return nil
}

func (v *verifier) checkPolicy(ctx context.Context) error {
	doc, err := getPolicy(ctx, v.c, v.name)
	if err != nil {
		return err
	}
	expected := fmt.Sprintf("policy granting %s W&B's actions on the bucket and its objects", v.f.principal)
	if doc == "" {
		v.finding("policy", expected, "no bucket policy")
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		v.finding("policy", expected, fmt.Sprintf("a policy that does not parse: %v", err))
		return nil
	}
	stmts, err := policyStatements(m)
	if err != nil {
		v.finding("policy", expected, err.Error())
		return nil
	}
	if missing := missingGrants(stmts, v.f.principal, wandbBucketActions, bucketResources(v.f.partition, v.name)); len(missing) > 0 {
		v.finding("policy", expected, "not granted: "+strings.Join(missing, ", "))
	}
	return nil
}

// probe writes, reads back, inspects and deletes a small object as W&B would. Failures of these calls
// are findings: they are what the probe is for.
func (v *verifier) probe(ctx context.Context) error {
	key := path.Join(v.b.Storage.Path, probeDir, rand.Text())
	body := []byte("byob-agent probe " + key)
	where := fmt.Sprintf("s3://%s/%s", v.name, key)
	if _, err := v.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(v.name), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		v.finding("probe", "write of "+where+" to succeed", err.Error())
		return nil
	}
	// Deleted even if a later step fails: the probe must not leave objects behind.
	defer func() {
		if _, err := v.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(v.name), Key: aws.String(key)}); err != nil {
			v.finding("probe", "delete of "+where+" to succeed", err.Error())
		}
	}()
	got, err := v.readObject(ctx, key)
	switch {
	case err != nil:
		v.finding("probe", "read of "+where+" to succeed", err.Error())
	case !bytes.Equal(got, body):
		v.finding("probe", fmt.Sprintf("read of %s to return the %d bytes written", where, len(body)), fmt.Sprintf("%d different bytes", len(got)))
	}
	if v.b.KMSKeyARN == "" {
		return nil
	}
	head, err := v.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(v.name), Key: aws.String(key)})
	if err != nil {
		v.finding("probe", "head of "+where+" to succeed", err.Error())
		return nil
	}
	// BucketKeyEnabled is not compared here: SeaweedFS does not report it on objects. The bucket's
	// encryption check covers it.
	if head.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != v.b.KMSKeyARN {
		v.finding("probe", "object encrypted with aws:kms and key "+v.b.KMSKeyARN,
			fmt.Sprintf("%s with key %s", orNone(string(head.ServerSideEncryption)), orNone(aws.ToString(head.SSEKMSKeyId))))
	}
	return nil
}

func (v *verifier) readObject(ctx context.Context, key string) ([]byte, error) {
	out, err := v.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(v.name), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}
