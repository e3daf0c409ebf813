// Package azureblob provisions and verifies W&B team containers in an existing Azure storage account
// (provider "azure") with the Azure SDK's azblob.
//
// W&B's recipe on Azure (docs/wandb.md): one container per team (or one shared container, a path per
// team) in the account, private, with the account's Blob service allowing W&B's CORS rule and keeping
// deleted blobs (soft delete) for W&B's artifact garbage collection.
//
// The CORS rules and the delete retention policy belong to the account's Blob service, which every
// container of the account shares: they are merged, never replaced. Others' CORS rules are kept, W&B's
// rule is added only when no equivalent rule exists, and a retention longer than the configured one is
// kept (the agent never shortens what another administrator chose). The read-modify-write of these
// properties is serialised within a Factory, so that concurrent Ensure calls for several containers of
// the account cannot lose each other's changes.
//
// Ownership marks are container metadata. Azure metadata names must be C# identifiers, so the marks of
// package bucketfactory are written with '_' for '-': managed_by=byob-agent and byob_agent_team=<team>
// (or, for a shared container, byob_agent_shared=<profile>). Azure compares metadata names without
// regard to case, and so does this package.
package azureblob

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// DefaultSoftDeleteDays is the blob soft delete retention set when Options.SoftDeleteDays is 0: GCS's
// default, which W&B accepts there.
const DefaultSoftDeleteDays = 7

// Options configures a Factory for one storage account. Exactly one of AccountKey, ConnectionString and
// UseIdentity says how requests are authorised.
type Options struct {
	Account  string // storage account name; with ConnectionString it may be left out
	Endpoint string // Blob service URL; default https://<account>.blob.core.windows.net/
	// AccountKey is the account's shared key (a secret). W&B's storage address carries it.
	AccountKey string
	// ConnectionString is an alternative to Account, Endpoint and AccountKey (a secret). It must hold
	// AccountName and AccountKey; BlobEndpoint, or DefaultEndpointsProtocol and EndpointSuffix, give the endpoint.
	ConnectionString string
	// UseIdentity authorises with azidentity's DefaultAzureCredential (environment, workload or managed
	// identity, Azure CLI). The identity needs Storage Account Contributor (service properties) and
	// Storage Blob Data Contributor. Address is not available then: it needs the account key.
	UseIdentity bool
	// SoftDeleteDays is the blob soft delete retention the account must have at least, 1..365; 0 means
	// DefaultSoftDeleteDays.
	SoftDeleteDays int
	// HTTPClient sends every request; nil: the SDK's.
	HTTPClient *http.Client
}

// Factory implements bucketfactory.Factory for one storage account. It is safe for concurrent use.
type Factory struct {
	account  string
	endpoint string // normalised by normalizeEndpoint
	key      string // account key; "" with an identity
	days     int32
	client   *azblob.Client

	// serviceMu serialises the read-modify-write of the account's Blob service properties.
	serviceMu sync.Mutex
}

var _ bucketfactory.Factory = (*Factory)(nil)

var accountRE = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// New builds a Factory. It makes no request. Its errors never contain the key or connection string.
func New(ctx context.Context, o Options) (*Factory, error) {
	auths := 0
	for _, set := range []bool{o.AccountKey != "", o.ConnectionString != "", o.UseIdentity} {
		if set {
			auths++
		}
	}
	if auths != 1 {
		return nil, fmt.Errorf("azureblob: set exactly one of account key, connection string and identity (%d set)", auths)
	}
	days := o.SoftDeleteDays
	switch {
	case days == 0:
		days = DefaultSoftDeleteDays
	case days < 1 || days > 365:
		return nil, fmt.Errorf("azureblob: soft delete retention must be 1 to 365 days, got %d", days)
	}
	f := &Factory{account: o.Account, endpoint: o.Endpoint, key: o.AccountKey, days: int32(days)}
	if o.ConnectionString != "" {
		cs, err := parseConnectionString(o.ConnectionString)
		if err != nil {
			return nil, err
		}
		if f.account != "" && f.account != cs.account {
			return nil, fmt.Errorf("azureblob: the connection string is for storage account %q, the profile names %q", cs.account, f.account)
		}
		if f.endpoint != "" && cs.endpoint != "" && normalizeEndpoint(f.endpoint) != normalizeEndpoint(cs.endpoint) {
			return nil, fmt.Errorf("azureblob: the connection string's BlobEndpoint %q differs from the profile's endpoint %q", cs.endpoint, f.endpoint)
		}
		f.account, f.key = cs.account, cs.key
		if f.endpoint == "" {
			f.endpoint = cs.endpoint
		}
	}
	if !accountRE.MatchString(f.account) {
		return nil, fmt.Errorf("azureblob: storage account name %q must be 3 to 24 lowercase letters and digits", f.account)
	}
	if f.endpoint == "" {
		f.endpoint = "https://" + f.account + ".blob.core.windows.net/"
	}
	if err := checkEndpoint(f.endpoint); err != nil {
		return nil, err
	}
	f.endpoint = normalizeEndpoint(f.endpoint)

	clientOpts := azcore.ClientOptions{}
	if o.HTTPClient != nil {
		clientOpts.Transport = o.HTTPClient
	}
	var err error
	if o.UseIdentity {
		var cred *azidentity.DefaultAzureCredential
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: clientOpts})
		if err != nil {
			return nil, fmt.Errorf("azureblob: set up the default Azure credential: %w", err)
		}
		f.client, err = azblob.NewClient(f.endpoint, cred, &azblob.ClientOptions{ClientOptions: clientOpts})
	} else {
		var cred *azblob.SharedKeyCredential
		// The SDK's error would only say the key is not base64; it never repeats it, nor does this one.
		if cred, err = azblob.NewSharedKeyCredential(f.account, f.key); err != nil {
			return nil, errors.New("azureblob: the storage account key is not valid base64")
		}
		f.client, err = azblob.NewClientWithSharedKeyCredential(f.endpoint, cred, &azblob.ClientOptions{ClientOptions: clientOpts})
	}
	if err != nil {
		return nil, fmt.Errorf("azureblob: create the Blob service client for %s: %w", f.endpoint, err)
	}
	return f, nil
}

// checkEndpoint accepts an absolute http(s) URL without credentials, query or fragment.
func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return fmt.Errorf("azureblob: endpoint is not a valid URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("azureblob: endpoint %q is not an http:// or https:// URL", endpoint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("azureblob: endpoint %q must not carry credentials, a query or a fragment (use the account key or identity)", u.Redacted())
	}
	return nil
}

// normalizeEndpoint makes two spellings of one endpoint compare equal ("https://a.blob.core.windows.net"
// and ".../").
func normalizeEndpoint(endpoint string) string { return strings.TrimRight(endpoint, "/") + "/" }

// validate checks b against the profile without any request.
func (f *Factory) validate(b bucketfactory.Bucket) error {
	if err := b.Validate(team.ProviderAzure); err != nil {
		return err
	}
	st := b.Storage
	switch {
	case st.Account != f.account:
		return fmt.Errorf("container %q is in storage account %q, this factory serves account %q", st.Bucket, st.Account, f.account)
	case st.Endpoint != "" && normalizeEndpoint(st.Endpoint) != f.endpoint:
		return fmt.Errorf("container %q names endpoint %q, this factory serves %q", st.Bucket, st.Endpoint, f.endpoint)
	}
	return nil
}

// Ensure creates the container if absent and applies W&B's recipe, writing only what differs. For a
// shared container, and for the account-wide settings every container shares, only the first Ensure writes.
func (f *Factory) Ensure(ctx context.Context, b bucketfactory.Bucket, opts bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	if err := f.validate(b); err != nil {
		return nil, err
	}
	e := &ensurer{f: f, b: b, name: b.Storage.Bucket, c: f.client.ServiceClient().NewContainerClient(b.Storage.Bucket)}
	props, err := e.ensureExistsAndOwned(ctx, opts)
	if err != nil {
		return e.changes, err
	}
	if err := e.ensurePrivate(ctx, props); err != nil {
		return e.changes, err
	}
	return e.changes, e.ensureServiceProperties(ctx)
}

// ensurer carries one Ensure call.
type ensurer struct {
	f       *Factory
	b       bucketfactory.Bucket
	name    string
	c       *container.Client
	changes []bucketfactory.Change
}

func (e *ensurer) changed(setting, format string, args ...any) {
	e.changes = append(e.changes, bucketfactory.Change{Setting: setting, Detail: fmt.Sprintf(format, args...)})
}

// ensureExistsAndOwned creates the container with its ownership marks, or checks that the existing one
// is the team's (or, shared, the profile's) and makes its marks right. It returns the container's properties.
func (e *ensurer) ensureExistsAndOwned(ctx context.Context, opts bucketfactory.EnsureOptions) (*container.GetPropertiesResponse, error) {
	props, err := getContainer(ctx, e.c, e.name)
	if err != nil {
		return nil, err
	}
	owner := describeOwner(e.b)
	if props == nil {
		// Created private and marked in one call: a crash cannot leave an anonymous container behind.
		_, err := e.c.Create(ctx, &container.CreateOptions{Metadata: toMetadata(ownershipMarks(e.b))})
		switch {
		case err == nil:
			e.changed("create", "created container %q in storage account %q, marked for %s", e.name, e.f.account, owner)
			return &container.GetPropertiesResponse{Metadata: toMetadata(ownershipMarks(e.b))}, nil
		case bloberror.HasCode(err, bloberror.ContainerAlreadyExists): // a concurrent or earlier attempt won
			if props, err = getContainer(ctx, e.c, e.name); err != nil {
				return nil, err
			}
			if props == nil {
				return nil, fmt.Errorf("container %q was reported to exist and then not found: retry", e.name)
			}
		case bloberror.HasCode(err, bloberror.ContainerBeingDeleted):
			return nil, fmt.Errorf("create container %q: a container of that name is being deleted; retry in a minute", e.name)
		default:
			return nil, fmt.Errorf("create container %q: %w", e.name, err)
		}
	}
	md := fromMetadata(props.Metadata)
	key, value := ownerMark(e.b)
	adopting := false
	switch foreign := foreignMark(md, e.b); {
	case foreign != "":
		return nil, &bucketfactory.OwnershipError{Bucket: e.name, Reason: "it is " + foreign}
	case metaValue(md, key) == value:
	case !opts.AdoptUntagged:
		return nil, &bucketfactory.OwnershipError{Bucket: e.name, Reason: fmt.Sprintf("it exists without the %s metadata and adopting unmarked containers is off", key)}
	default:
		adopting = true
	}
	merged, changed := mergeMarks(md, ownershipMarks(e.b))
	if !changed {
		return props, nil
	}
	if _, err := e.c.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: toMetadata(merged)}); err != nil {
		return nil, fmt.Errorf("set ownership metadata on container %q: %w", e.name, err)
	}
	if adopting {
		e.changed("metadata", "adopted unmarked container %q for %s, kept %d other metadata item(s)", e.name, owner, len(merged)-len(ownershipMarks(e.b)))
	} else {
		e.changed("metadata", "restored ownership metadata of container %q for %s", e.name, owner)
	}
	return props, nil
}

// getContainer returns the container's properties, nil when it does not exist.
func getContainer(ctx context.Context, c *container.Client, name string) (*container.GetPropertiesResponse, error) {
	props, err := c.GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get properties of container %q: %w", name, err)
	}
	return &props, nil
}

// ensurePrivate turns anonymous public access off, keeping the container's stored access policies
// (Set Container ACL replaces them, so they are read and sent back).
func (e *ensurer) ensurePrivate(ctx context.Context, props *container.GetPropertiesResponse) error {
	level := publicAccess(props.BlobPublicAccess)
	if level == "" {
		return nil
	}
	acl, err := e.c.GetAccessPolicy(ctx, nil)
	if err != nil {
		return fmt.Errorf("get access policy of container %q: %w", e.name, err)
	}
	if _, err := e.c.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: acl.SignedIdentifiers}); err != nil {
		return fmt.Errorf("turn off public access of container %q: %w", e.name, err)
	}
	e.changed("public-access", "turned off anonymous public access to container %q (was %s), kept %d stored access policy(ies)", e.name, level, len(acl.SignedIdentifiers))
	return nil
}

func publicAccess(p *container.PublicAccessType) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// ensureServiceProperties merges W&B's CORS rule and blob soft delete into the account's Blob service
// properties and writes only the elements that changed (Azure keeps an element left out of the request).
func (e *ensurer) ensureServiceProperties(ctx context.Context) error {
	e.f.serviceMu.Lock()
	defer e.f.serviceMu.Unlock()
	svc := e.f.client.ServiceClient()
	props, err := svc.GetProperties(ctx, nil)
	if err != nil {
		return fmt.Errorf("get Blob service properties of storage account %q: %w", e.f.account, err)
	}
	var set service.SetPropertiesOptions
	rules, corsChanged, err := mergeCORSRules(props.CORS)
	if err != nil {
		return fmt.Errorf("storage account %q: %w", e.f.account, err)
	}
	if corsChanged {
		set.CORS = rules
	}
	retention, retentionChanged := mergeRetention(props.DeleteRetentionPolicy, e.f.days)
	if retentionChanged {
		set.DeleteRetentionPolicy = retention
	}
	if !corsChanged && !retentionChanged {
		return nil
	}
	if _, err := svc.SetProperties(ctx, &set); err != nil {
		return fmt.Errorf("set Blob service properties (CORS, delete retention) of storage account %q: %w", e.f.account, err)
	}
	if corsChanged {
		e.changed("cors", "added W&B's rule (%s) to the Blob service of storage account %q, kept %d other rule(s)", describeCORSRule(wandbCORSRule()), e.f.account, len(rules)-1)
	}
	if retentionChanged {
		e.changed("soft-delete", "blob soft delete of storage account %q on, %d days (was %s)", e.f.account, e.f.days, describeRetention(props.DeleteRetentionPolicy))
	}
	return nil
}

// describeOwner names the container's rightful owner for messages.
func describeOwner(b bucketfactory.Bucket) string {
	if b.Shared {
		return fmt.Sprintf("the teams of profile %q (shared)", b.Profile)
	}
	return fmt.Sprintf("team %q", b.Team)
}
