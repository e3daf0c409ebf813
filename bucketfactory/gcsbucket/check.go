package gcsbucket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"cloud.google.com/go/storage"

	"github.com/byob-agent/byob-agent/bucketfactory"
)

// Check reads every setting W&B requires and reports each. With o.Probe it also writes, reads and deletes
// a probe object; without, it only reads.
func (f *Factory) Check(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.CheckOptions) ([]bucketfactory.CheckResult, error) {
	if err := f.checkBucket(b); err != nil {
		return nil, err
	}
	name := b.Storage.Bucket
	bkt := f.client.Bucket(name)
	attrs, err := readAttrs(ctx, bkt, name)
	if errors.Is(err, storage.ErrBucketNotExist) {
		return []bucketfactory.CheckResult{{
			Check: "exists", Expected: "bucket " + name + " exists", Found: "no such bucket",
			Fix: "create it: byob-agent sync creates it with W&B's settings",
		}}, nil
	}
	if err != nil {
		return nil, err
	}
	c := &checker{f: f, b: b, name: name}
	c.Pass("exists", "bucket "+name+" exists")
	c.checkOwnership(attrs)
	c.checkLocation(attrs)
	c.checkAttrs(attrs)
	policy, err := bkt.IAM().V3().Policy(ctx)
	if err != nil {
		return nil, fmt.Errorf("get IAM policy of bucket %q: %w", name, err)
	}
	member := serviceAccountMember(f.principal)
	expected := fmt.Sprintf("%s granted %s on the bucket", member, strings.Join(wandbRoles, " and "))
	if missing := missingRoles(policy.Bindings, member, wandbRoles); len(missing) > 0 {
		c.Fail("iam", expected, "not granted: "+strings.Join(missing, ", "),
			fmt.Sprintf("grant %s on bucket %s to %s (without it W&B's checks get 403); byob-agent sync repairs it", strings.Join(missing, " and "), name, member))
	} else {
		c.Pass("iam", expected)
	}
	if o.Probe {
		c.probe(ctx, bkt)
	}
	return c.List, nil
}

// checker collects the results of one Check call.
type checker struct {
	f    *Factory
	b    bucketfactory.Bucket
	name string
	bucketfactory.Results
}

func (c *checker) checkOwnership(attrs *storage.BucketAttrs) {
	key, value := c.b.Owner()
	expected := fmt.Sprintf("labels %s=%s and %s=%s", bucketfactory.TagManagedBy, bucketfactory.TagManagedByValue, key, value)
	if owner := foreignOwner(attrs.Labels, c.b); owner != "" {
		c.FailForeign("ownership", expected, "label "+owner,
			fmt.Sprintf("the bucket belongs to %s: give this team another bucket name (relabel it %s=%s only if it really is this team's)", owner, key, value))
		return
	}
	var missing []string
	for k, v := range wantLabels(c.b) {
		if attrs.Labels[k] != v {
			missing = append(missing, k+"="+v)
		}
	}
	if len(missing) == 0 {
		c.Pass("ownership", expected)
		return
	}
	slices.Sort(missing)
	c.Fail("ownership", expected, "missing labels "+strings.Join(missing, ", "),
		fmt.Sprintf("label the bucket %s; byob-agent sync does so for a bucket it owns, or adopts an unlabelled one when adopting is allowed", strings.Join(missing, ", ")))
}

func (c *checker) checkLocation(attrs *storage.BucketAttrs) {
	want := strings.ToUpper(c.f.bucketLocation(c.b))
	got := strings.ToUpper(attrs.Location)
	c.Compare("location", "location "+want, "location "+got,
		fmt.Sprintf("the bucket is in %s; W&B team storage cannot move: set the profile's location (or the team's region) to %s, or give the team another bucket", got, got))
}

// checkAttrs checks the settings read with the bucket's attributes.
func (c *checker) checkAttrs(attrs *storage.BucketAttrs) {
	c.Compare("uniform-access", "uniform bucket-level access on", onOff("uniform bucket-level access", attrs.UniformBucketLevelAccess.Enabled),
		"turn on uniform bucket-level access; byob-agent sync repairs it")
	c.Compare("public-access-prevention", "public access prevention enforced", "public access prevention "+attrs.PublicAccessPrevention.String(),
		"set public access prevention to enforced; byob-agent sync repairs it")
	found := "Google-managed encryption"
	if k := kmsKey(attrs); k != "" {
		found = "default KMS key " + k
	}
	c.Compare("encryption", "Google-managed encryption", found,
		"remove the bucket's default KMS key so that Google-managed encryption applies; byob-agent sync repairs it")
	c.Compare("soft-delete", "soft delete retention "+days(c.f.softDelete), "soft delete retention "+days(softDelete(attrs)),
		fmt.Sprintf("set soft delete retention to %s (W&B refuses a bucket without soft delete); byob-agent sync repairs it", days(c.f.softDelete)))
	expected := "a CORS entry with " + describeCORS(wandbCORS())
	if !hasWandbCORS(attrs.CORS) {
		c.Fail("cors", expected, describeCORS(attrs.CORS...),
			fmt.Sprintf("add a CORS entry with origin *, methods %s and response header ETag (max age 3000 s), keeping the others; byob-agent sync repairs it", strings.Join(wandbMethods, ", ")))
	} else {
		c.Pass("cors", expected)
	}
}

// probe writes, reads back and deletes a small object as W&B would. Failures of these calls are results:
// they are what the probe is for.
func (c *checker) probe(ctx context.Context, bkt *storage.BucketHandle) {
	key, _, body := bucketfactory.NewProbe(c.b)
	where := fmt.Sprintf("gs://%s/%s", c.name, key)
	expected := "write, read and delete of " + where + " succeed"
	fix := fmt.Sprintf("let these credentials and %s write, read and delete objects in the bucket (IAM, organisation policies); byob-agent sync grants W&B's roles", serviceAccountMember(c.f.principal))
	// The library retries only idempotent calls, and an object write or delete without preconditions is
	// not one. The probe's are: its key is new each time, and a delete repeated after a lost answer
	// finds the object gone. So a transient fault does not fail the probe.
	obj := bkt.Object(key).Retryer(storage.WithPolicy(storage.RetryAlways))
	w := obj.NewWriter(ctx)
	w.ChunkSize = 0 // one request: the probe is tiny
	_, err := w.Write(body)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.Fail("probe", expected, "write failed: "+err.Error(), fix)
		return
	}
	got, readErr := readObject(ctx, obj)
	// Deleted even if the read failed: the probe must not leave objects behind.
	deleteErr := obj.Delete(ctx)
	if errors.Is(deleteErr, storage.ErrObjectNotExist) {
		deleteErr = nil // deleted by an attempt whose answer was lost
	}
	switch {
	case readErr != nil:
		c.Fail("probe", expected, "read failed: "+readErr.Error(), fix)
	case !bytes.Equal(got, body):
		c.Fail("probe", expected, fmt.Sprintf("read returned %d different bytes instead of the %d written", len(got), len(body)), fix)
	case deleteErr != nil:
		c.Fail("probe", expected, "delete failed: "+deleteErr.Error(), fix)
	default:
		c.Pass("probe", expected)
	}
}

func readObject(ctx context.Context, obj *storage.ObjectHandle) ([]byte, error) {
	r, err := obj.NewReader(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func onOff(what string, on bool) string {
	if on {
		return what + " on"
	}
	return what + " off"
}
