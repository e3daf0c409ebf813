package wandbemu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/byob-agent/byob-agent/scim/wandb"
)

// ByProvider does W&B's "bucket exists and is reachable" check with the checker of the bucket's
// provider. A provider without a checker is refused: the emulator cannot vouch for what it cannot see.
type ByProvider map[string]BucketChecker

// CheckBucket reports why sb is not usable, or nil.
func (m ByProvider) CheckBucket(ctx context.Context, sb wandb.StorageBucket) error {
	c, ok := m[sb.Provider]
	if !ok {
		return fmt.Errorf("the emulator cannot check %s buckets: no checker is configured for that provider", sb.Provider)
	}
	return c.CheckBucket(ctx, sb)
}

// S3Checker does W&B's bucket check against one S3-compatible endpoint (SeaweedFS in tests): the bucket
// exists and has W&B's CORS rule.
type S3Checker struct {
	client *s3.Client
}

// ForS3Providers is a ByProvider that checks AWS, MINIO and COREWEAVE buckets with c.
func (c *S3Checker) ForS3Providers() ByProvider {
	return ByProvider{"AWS": c, "MINIO": c, "COREWEAVE": c}
}

// NewS3Checker returns a checker for endpoint (e.g. http://127.0.0.1:8333) using path-style requests.
func NewS3Checker(endpoint, region, accessKey, secretKey string) *S3Checker {
	if region == "" {
		region = "us-east-1"
	}
	// Built from explicit options, not config.LoadDefaultConfig, so nothing from the environment leaks in.
	return &S3Checker{client: s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})}
}

// CheckBucket reports why sb is not usable, or nil: the bucket must exist and carry W&B's CORS rule.
func (c *S3Checker) CheckBucket(ctx context.Context, sb wandb.StorageBucket) error {
	_, err := c.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(sb.Name)})
	var nf *types.NotFound
	switch {
	case errors.As(err, &nf):
		return fmt.Errorf("bucket %q does not exist", sb.Name)
	case err != nil:
		return fmt.Errorf("bucket %q is not reachable: %w", sb.Name, err)
	}
	out, err := c.client.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String(sb.Name)})
	if apiCode(err) == "NoSuchCORSConfiguration" {
		return fmt.Errorf("bucket %q has no CORS configuration", sb.Name)
	} else if err != nil {
		return fmt.Errorf("bucket %q: reading CORS: %w", sb.Name, err)
	}
	for _, r := range out.CORSRules {
		if corsAllows(r.AllowedOrigins, r.AllowedMethods, r.ExposeHeaders) {
			return nil
		}
	}
	return fmt.Errorf("bucket %q: no CORS rule allows GET, HEAD and PUT from any origin and exposes ETag", sb.Name)
}

// corsAllows is W&B's CORS requirement for team storage: GET, HEAD and PUT from any origin, ETag
// exposed (https://docs.wandb.ai/platform/hosting/data-security/secure-storage-connector). W&B checks
// the bucket before it creates a team; that the check takes exactly this rule is an inference.
// exposed may be ["*"] (Azure's documented rule exposes every header).
func corsAllows(origins, methods, exposed []string) bool {
	has := func(list []string, v string) bool {
		return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(strings.TrimSpace(x), v) })
	}
	return has(origins, "*") && has(methods, "GET") && has(methods, "HEAD") && has(methods, "PUT") && (has(exposed, "ETag") || has(exposed, "*"))
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// AzureChecker checks that a container exists in one storage account (Azurite in tests).
type AzureChecker struct {
	client *azblob.Client
}

// NewAzureChecker returns a checker for the account at endpoint (e.g. http://127.0.0.1:10000/devstoreaccount1).
func NewAzureChecker(endpoint, account, key string) (*AzureChecker, error) {
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		return nil, fmt.Errorf("azure checker: %w", err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(endpoint, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("azure checker: %w", err)
	}
	return &AzureChecker{client: c}, nil
}

// CheckBucket reports why the container sb.Name is not usable, or nil: it must exist, and the
// account's Blob service must carry W&B's CORS rule.
func (c *AzureChecker) CheckBucket(ctx context.Context, sb wandb.StorageBucket) error {
	_, err := c.client.ServiceClient().NewContainerClient(sb.Name).GetProperties(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("container %q does not exist", sb.Name)
	case err != nil:
		return fmt.Errorf("container %q is not reachable: %w", sb.Name, err)
	}
	props, err := c.client.ServiceClient().GetProperties(ctx, nil)
	if err != nil {
		return fmt.Errorf("container %q: reading the account's CORS rules: %w", sb.Name, err)
	}
	split := func(p *string) []string {
		if p == nil {
			return nil
		}
		return strings.Split(*p, ",")
	}
	for _, r := range props.CORS {
		if corsAllows(split(r.AllowedOrigins), split(r.AllowedMethods), split(r.ExposedHeaders)) {
			return nil
		}
	}
	return fmt.Errorf("container %q: the account's Blob service has no CORS rule allowing GET, HEAD and PUT from any origin", sb.Name)
}
