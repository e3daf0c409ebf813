package wandbemu

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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

// S3Checker does W&B's "bucket exists and is reachable" check with HeadBucket against one
// S3-compatible endpoint (SeaweedFS in tests).
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

// CheckBucket reports why sb is not usable, or nil.
func (c *S3Checker) CheckBucket(ctx context.Context, sb wandb.StorageBucket) error {
	_, err := c.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(sb.Name)})
	var nf *types.NotFound
	switch {
	case errors.As(err, &nf):
		return fmt.Errorf("bucket %q does not exist", sb.Name)
	case err != nil:
		return fmt.Errorf("bucket %q is not reachable: %w", sb.Name, err)
	}
	return nil
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

// CheckBucket reports why the container sb.Name is not usable, or nil.
func (c *AzureChecker) CheckBucket(ctx context.Context, sb wandb.StorageBucket) error {
	_, err := c.client.ServiceClient().NewContainerClient(sb.Name).GetProperties(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("container %q does not exist", sb.Name)
	case err != nil:
		return fmt.Errorf("container %q is not reachable: %w", sb.Name, err)
	}
	return nil
}
