// Package s3bucket provisions and checks W&B team buckets through the S3 API with aws-sdk-go-v2: on
// Amazon S3 (provider "aws"), on CoreWeave AI Object Storage (provider "coreweave") and on
// S3-compatible servers (provider "s3-compatible"). The providers share one recipe; they differ in
// which settings exist (object ownership and public access block: aws only; bucket policy: not on
// s3-compatible servers; SSE-KMS: aws, optionally s3-compatible) and in the policy's principal. On aws
// it also creates each team's KMS key when the profile asks for one (EnsureKey).
//
// Every setting is read first and written only when it differs, compared as S3 means it (lists as sets,
// policies structurally), so that a second run changes nothing. Settings others added (tags, CORS rules,
// policy statements) are kept.
package s3bucket

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// Options configures a Factory for one storage profile.
type Options struct {
	Provider string // team.ProviderAWS, team.ProviderCoreWeave or team.ProviderS3Compatible
	// Region is the default region (coreweave: the availability zone, e.g. US-EAST-04A); a bucket's
	// Storage.Region overrides it.
	Region string
	// Endpoint is the S3 endpoint URL; empty: AWS's (coreweave: https://cwobject.com). A bucket's
	// Storage.Endpoint overrides it.
	Endpoint  string
	PathStyle bool // path-style addressing (most S3-compatible servers; CoreWeave wants virtual-hosted)
	// Credentials signs every request and goes into storage addresses; nil: the SDK's default chain.
	Credentials aws.CredentialsProvider
	// PrincipalARN is the W&B principal granted access to the bucket (aws, coreweave) and key (aws).
	PrincipalARN string
	// OrgID is the W&B organization (or customer namespace) that CoreWeave's policy condition
	// wandb:OrgID admits (coreweave only, required there).
	OrgID string
	// OrgWideAccess, when set, is the CoreWeave organization id granted s3:* on every bucket by a
	// second policy statement (coreweave only).
	OrgWideAccess string
	// KMSEndpoint overrides the KMS endpoint URL (aws only).
	KMSEndpoint string
	// AccountID is the account whose root administers created keys; empty: asked of STS when a key
	// must be created.
	AccountID string
	// TLS is the base TLS configuration of every request (it is copied, never changed): the roots a
	// profile's caFile adds. nil: the system roots. CoreWeave's copy requires TLS 1.3. A CA bundle that
	// the AWS configuration names (AWS_CA_BUNDLE, or ca_bundle in the shared config) is added by the SDK.
	TLS *tls.Config
	// Trusted describes the roots of TLS, for the message of a certificate error.
	Trusted string
	// Timeout bounds each attempt of a request (the SDK retries a timed-out attempt); 0: no bound.
	Timeout time.Duration
	// WrapTransport, when set, wraps the transport (metrics, Retry-After).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Factory implements bucketfactory.Factory for one S3 profile, and bucketfactory.KeyFactory (which
// only an aws profile can serve). It is safe for concurrent use.
type Factory struct {
	provider  string
	principal string
	partition string // of the principal's ARN: bucket and root ARNs must use the same one
	orgID     string // coreweave
	orgWide   string // coreweave
	region    string // default region
	endpoint  string // default endpoint URL; "" for AWS's
	creds     aws.CredentialsProvider
	s3        *s3.Client
	// clients are the S3 clients of the regions and endpoints buckets name, by region and endpoint:
	// built once and reused across teams (building one per call was a share of every team's CPU).
	clients sync.Map
	kms     *kms.Client // nil unless aws
	sts     *sts.Client // nil unless aws

	accountMu sync.Mutex
	accountID string // from Options or, once asked, from STS
}

var (
	_ bucketfactory.Factory    = (*Factory)(nil)
	_ bucketfactory.KeyFactory = (*Factory)(nil)
)

// New builds a Factory. It makes no request.
func New(ctx context.Context, o Options) (*Factory, error) {
	if err := checkOptions(&o); err != nil {
		return nil, err
	}
	var loadOpts []func(*config.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(o.Credentials))
	}
	own := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if o.TLS != nil {
			tr.TLSClientConfig = o.TLS.Clone()
		}
		if o.Provider == team.ProviderCoreWeave {
			requireTLS13(tr)
		}
	})
	loadOpts = append(loadOpts, config.WithHTTPClient(own))
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("no region: set the profile's region or AWS_REGION")
	}
	cfg.HTTPClient = sdkHTTPClient(cfg.HTTPClient, own, o)
	f := &Factory{
		provider:  o.Provider,
		principal: o.PrincipalARN,
		partition: arnPartition(o.PrincipalARN),
		orgID:     o.OrgID,
		orgWide:   o.OrgWideAccess,
		region:    cfg.Region,
		endpoint:  o.Endpoint,
		creds:     cfg.Credentials,
		accountID: o.AccountID,
		s3: s3.NewFromConfig(cfg, func(so *s3.Options) {
			if o.Endpoint != "" {
				so.BaseEndpoint = aws.String(o.Endpoint)
			}
			so.UsePathStyle = o.PathStyle
		}),
	}
	if o.Provider == team.ProviderAWS {
		f.kms = kms.NewFromConfig(cfg, func(ko *kms.Options) {
			if o.KMSEndpoint != "" {
				ko.BaseEndpoint = aws.String(o.KMSEndpoint)
			}
		})
		f.sts = sts.NewFromConfig(cfg)
	}
	return f, nil
}

// checkOptions rejects options that cannot work and fills in CoreWeave's default endpoint.
func checkOptions(o *Options) error {
	switch o.Provider {
	case team.ProviderAWS, team.ProviderCoreWeave:
		if !strings.HasPrefix(o.PrincipalARN, "arn:") {
			return fmt.Errorf("provider %q needs the W&B principal ARN, got %q", o.Provider, o.PrincipalARN)
		}
	case team.ProviderS3Compatible:
	default:
		return fmt.Errorf("s3bucket: unsupported provider %q (want %q, %q or %q)", o.Provider, team.ProviderAWS, team.ProviderCoreWeave, team.ProviderS3Compatible)
	}
	if o.Provider == team.ProviderCoreWeave {
		if err := checkCoreWeaveOptions(o); err != nil {
			return err
		}
	} else if o.OrgID != "" || o.OrgWideAccess != "" {
		return fmt.Errorf("provider %q takes no W&B org id or org-wide access: they are CoreWeave policy settings", o.Provider)
	}
	return checkEndpoint(o.Provider, o.Endpoint)
}

// managesAccessControls tells whether the provider has object ownership and public access block
// settings: S3-compatible servers commonly lack them, and CoreWeave's S3 compatibility reference lists
// neither (its buckets are private unless a policy grants access), so only aws manages them.
func (f *Factory) managesAccessControls() bool { return f.provider == team.ProviderAWS }

// managesPolicy tells whether the provider takes W&B's bucket policy (MinIO-style servers do not).
func (f *Factory) managesPolicy() bool { return f.provider != team.ProviderS3Compatible }

// validate checks b against the profile without any request.
func (f *Factory) validate(b bucketfactory.Bucket) error {
	if err := b.Validate(f.provider); err != nil {
		return err
	}
	return checkEndpoint(f.provider, b.Storage.Endpoint)
}

// bucketClient validates b for Ensure and Check and returns the S3 client for its region and endpoint.
func (f *Factory) bucketClient(b bucketfactory.Bucket) (*s3.Client, error) {
	if err := f.validate(b); err != nil {
		return nil, err
	}
	st := b.Storage
	switch {
	case f.provider == team.ProviderAWS && b.KMSKeyARN == "":
		return nil, fmt.Errorf("bucket %q: W&B needs SSE-KMS with a customer key on AWS: set the key ARN or let the agent create one", st.Bucket)
	case f.provider == team.ProviderCoreWeave && b.KMSKeyARN != "":
		return nil, fmt.Errorf("bucket %q: CoreWeave encrypts every object at rest and takes no KMS key: remove the key from the storage spec", st.Bucket)
	}
	if st.Region == "" && st.Endpoint == "" {
		return f.s3, nil
	}
	key := st.Region + "\x00" + st.Endpoint
	if c, ok := f.clients.Load(key); ok {
		return c.(*s3.Client), nil
	}
	c := s3.New(f.s3.Options(), func(o *s3.Options) {
		if st.Region != "" {
			o.Region = st.Region
		}
		if st.Endpoint != "" {
			o.BaseEndpoint = aws.String(st.Endpoint)
		}
	})
	actual, _ := f.clients.LoadOrStore(key, c)
	return actual.(*s3.Client), nil
}

// recipeStep is one bucket setting of W&B's recipe, as Ensure applies it and Check reports it.
type recipeStep struct {
	applies func(*Factory, bucketfactory.Bucket) bool // nil: always
	ensure  func(*ensurer, context.Context) error
	check   func(*checker, context.Context) error
}

// recipe lists the settings after the ownership tags, in the order Ensure applies them.
var recipe = []recipeStep{
	{withAccessControls, (*ensurer).ensureOwnershipControls, (*checker).checkOwnershipControls},
	{withAccessControls, (*ensurer).ensurePublicAccessBlock, (*checker).checkPublicAccessBlock},
	{withKey, (*ensurer).ensureEncryption, (*checker).checkEncryption},
	{nil, (*ensurer).ensureCORS, (*checker).checkCORS},
	{withPolicy, (*ensurer).ensurePolicy, (*checker).checkPolicy},
}

func withAccessControls(f *Factory, _ bucketfactory.Bucket) bool { return f.managesAccessControls() }
func withPolicy(f *Factory, _ bucketfactory.Bucket) bool         { return f.managesPolicy() }

// withKey: without a key (s3-compatible, coreweave) the bucket's encryption is left alone.
func withKey(_ *Factory, b bucketfactory.Bucket) bool { return b.KMSKeyARN != "" }

func (s recipeStep) appliesTo(f *Factory, b bucketfactory.Bucket) bool {
	return s.applies == nil || s.applies(f, b)
}

// apiCode returns the service's error code ("NoSuchTagSet"), or "" for no error or a transport error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus returns the HTTP status of a failed call, or 0 for no error or a transport error.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
