package azureblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/byob-agent/byob-agent/bucketfactory"
)

// Check reads every setting of W&B's recipe back and reports each, passed or failed; with o.Probe it
// also uploads, downloads and deletes a probe blob under the team's path. The account-wide settings
// (CORS, soft delete) are reported even when the container does not exist.
func (f *Factory) Check(ctx context.Context, b bucketfactory.Bucket, o bucketfactory.CheckOptions) ([]bucketfactory.CheckResult, error) {
	if err := f.validate(b); err != nil {
		return nil, err
	}
	ch := &checker{f: f, b: b, name: b.Storage.Bucket}
	props, err := getContainer(ctx, f.client.ServiceClient().NewContainerClient(ch.name), ch.name)
	if err != nil {
		return nil, err
	}
	expected := fmt.Sprintf("container %s to exist in storage account %s", ch.name, f.account)
	owned := false
	if props == nil {
		ch.Report("exists", false, expected, "no such container", "byob-agent sync creates it")
	} else {
		ch.Report("exists", true, expected, "it exists", "")
		owned = ch.checkOwnership(props)
		ch.checkPublicAccess(props)
	}
	if err := ch.checkServiceProperties(ctx); err != nil {
		return nil, err
	}
	switch {
	case props == nil || !o.Probe:
	case !owned: // the agent writes only into containers marked as its own
		ch.Report("probe", false, "upload, download and delete of a probe blob", "not run: the container is not marked for "+describeOwner(b),
			"resolve the ownership result first; byob-agent probes only containers marked as its own")
	default:
		ch.probe(ctx)
	}
	return ch.List, nil
}

// checker carries one Check call. What a check finds is a result; only a failure to read is an error.
type checker struct {
	f    *Factory
	b    bucketfactory.Bucket
	name string
	bucketfactory.Results
}

// checkOwnership reports the ownership marks and tells whether the container is fully marked as b's.
func (c *checker) checkOwnership(props *container.GetPropertiesResponse) bool {
	md := fromMetadata(props.Metadata)
	marks := ownershipMarks(c.b)
	key, value := ownerMark(c.b)
	expected := "metadata " + describeMarks(marks)
	found := describeMarks(md)
	owner := describeOwner(c.b)
	switch foreign := foreignMark(md, c.b); {
	case foreign != "":
		c.FailForeign("ownership", expected, found, fmt.Sprintf(
			"container %s is %s: give %s another container, or correct the metadata if it is wrong", c.name, foreign, owner))
	case metaValue(md, key) != value:
		c.Report("ownership", false, expected, found, fmt.Sprintf(
			"if container %s is meant for %s, set its metadata %s=%s or let the profile adopt existing containers; byob-agent sync then adds the rest", c.name, owner, key, value))
	case metaValue(md, keyManagedBy) != marks[keyManagedBy]:
		c.Report("ownership", false, expected, found, fmt.Sprintf(
			"byob-agent sync restores the metadata %s=%s", keyManagedBy, marks[keyManagedBy]))
	default:
		c.Report("ownership", true, expected, found, "")
		return true
	}
	return false
}

func (c *checker) checkPublicAccess(props *container.GetPropertiesResponse) {
	found := "private"
	if level := publicAccess(props.BlobPublicAccess); level != "" {
		found = "anonymous public access level " + level
	}
	c.Report("public-access", found == "private", "private (no anonymous public access)", found,
		fmt.Sprintf("set the public access level of container %s to private; byob-agent sync repairs it", c.name))
}

// checkServiceProperties reports the account-wide settings: W&B's CORS rule and blob soft delete.
func (c *checker) checkServiceProperties(ctx context.Context) error {
	props, err := c.f.client.ServiceClient().GetProperties(ctx, nil)
	if err != nil {
		return fmt.Errorf("get Blob service properties of storage account %q: %w", c.f.account, err)
	}
	rule := describeCORSRule(wandbCORSRule())
	corsFix := fmt.Sprintf("add a CORS rule with %s to the Blob service of storage account %s; byob-agent sync adds it first and keeps the other rules", rule, c.f.account)
	if len(props.CORS) >= maxCORSRules {
		corsFix = fmt.Sprintf("the Blob service of storage account %s has %d CORS rules, Azure's maximum: remove one or change one to %s; byob-agent sync then adds W&B's rule", c.f.account, len(props.CORS), rule)
	}
	c.Report("cors", hasWandbCORSRule(props.CORS), "a rule on the account's Blob service with "+rule, describeCORSRules(props.CORS), corsFix)
	c.Report("soft-delete", retentionOK(props.DeleteRetentionPolicy, c.f.days),
		fmt.Sprintf("blob soft delete on, at least %d days", c.f.days), describeRetention(props.DeleteRetentionPolicy),
		fmt.Sprintf("turn on blob soft delete for storage account %s with a retention of at least %d days; byob-agent sync repairs it (and keeps a longer retention)", c.f.account, c.f.days))
	return nil
}

// probe uploads, downloads and deletes a small blob under the team's path as W&B would. Each step that
// fails is a failed "probe" result; when all succeed there is one passed result. With soft delete on,
// the deleted probe stays recoverable (and billed, a few bytes) for the retention period.
func (c *checker) probe(ctx context.Context) {
	name, dir, body := bucketfactory.NewProbe(c.b)
	where := fmt.Sprintf("blob %s in container %s", name, c.name)
	prefix := fmt.Sprintf("%s/*", dir)
	failed := len(c.List)
	fail := func(expected, found, fix string) { c.Report("probe", false, expected, found, fix) }
	defer func() {
		if len(c.List) == failed {
			c.Report("probe", true, fmt.Sprintf("upload, download and delete of a probe blob under %s in container %s", prefix, c.name), "all succeeded", "")
		}
	}()
	perm := fmt.Sprintf("with an identity, grant it Storage Blob Data Contributor on container %s; check the storage account's network rules", c.name)
	if _, err := c.f.client.UploadBuffer(ctx, c.name, name, body, nil); err != nil {
		fail("upload of "+where+" to succeed", describeError(err), "allow the agent to write blobs under "+prefix+": "+perm)
		return
	}
	// Deleted even if a later step fails: the probe must not leave blobs behind.
	defer func() {
		if _, err := c.f.client.DeleteBlob(ctx, c.name, name, nil); err != nil {
			fail("delete of "+where+" to succeed", describeError(err), fmt.Sprintf(
				"allow the agent to delete blobs under %s (%s; no immutability policy or legal hold on the container), and delete the left-over %s", prefix, perm, where))
		}
	}()
	got, err := c.download(ctx, name)
	switch {
	case err != nil:
		fail("download of "+where+" to succeed", describeError(err), "allow the agent to read blobs under "+prefix+": "+perm)
	case !bytes.Equal(got, body):
		fail(fmt.Sprintf("download of %s to return the %d bytes uploaded", where, len(body)), fmt.Sprintf("%d different bytes", len(got)),
			"find what rewrites blobs between the agent and the storage account (a proxy, a gateway): W&B needs them back unchanged")
	}
}

func (c *checker) download(ctx context.Context, name string) ([]byte, error) {
	resp, err := c.f.client.DownloadStream(ctx, c.name, name, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// describeError summarises a failed call for a check result: the SDK's own text spans many lines
// (request, response headers and body).
func describeError(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
	}
	return err.Error()
}
