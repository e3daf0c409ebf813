package wandbemu

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/byob-agent/byob-agent/scim"
)

// S3Checker does W&B's "bucket exists and is reachable" check with HeadBucket against one
// S3-compatible endpoint (SeaweedFS in tests), for the providers that speak S3.
type S3Checker struct {
	client *s3.Client
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
func (c *S3Checker) CheckBucket(ctx context.Context, sb scim.StorageBucket) error {
	switch sb.Provider {
	case "AWS", "MINIO", "COREWEAVE":
	default:
		return fmt.Errorf("the emulator cannot check %s buckets: only AWS, MINIO and COREWEAVE buckets are checked, on its S3 endpoint", sb.Provider)
	}
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
