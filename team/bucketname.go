package team

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

var s3NameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)

// ValidateBucketName checks a bucket name against the naming rules of the provider, so a bad template
// fails before any call is made.
func ValidateBucketName(provider, name string) error {
	switch provider {
	case ProviderAWS, ProviderS3Compatible:
		return validateS3BucketName(name)
	case ProviderCoreWeave:
		return validateCoreWeaveBucketName(name)
	case ProviderGCS:
		return validateGCSBucketName(name)
	case ProviderAzure:
		return validateAzureContainerName(name)
	}
	return fmt.Errorf("unknown provider %q", provider)
}

// validateS3BucketName applies Amazon S3's general purpose bucket naming rules.
func validateS3BucketName(name string) error {
	switch {
	case len(name) < 3 || len(name) > 63:
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long (it is %d)", name, len(name))
	case !s3NameRE.MatchString(name):
		return fmt.Errorf("bucket name %q may contain only lowercase letters, digits, '.' and '-', and must begin and end with a letter or digit", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("bucket name %q must not contain two adjacent periods", name)
	case net.ParseIP(name) != nil:
		return fmt.Errorf("bucket name %q must not be formatted as an IP address", name)
	case strings.HasPrefix(name, "xn--"), strings.HasPrefix(name, "sthree-"), strings.HasPrefix(name, "amzn-s3-demo-"):
		return fmt.Errorf("bucket name %q must not start with a prefix S3 reserves (xn--, sthree-, amzn-s3-demo-)", name)
	case strings.HasSuffix(name, "-s3alias"), strings.HasSuffix(name, "--ol-s3"), strings.HasSuffix(name, ".mrap"), strings.HasSuffix(name, "--x-s3"), strings.HasSuffix(name, "--table-s3"):
		return fmt.Errorf("bucket name %q must not end with a suffix S3 reserves", name)
	}
	return nil
}

var pathSegmentRE = regexp.MustCompile(`^[A-Za-z0-9._=-]+$`)

// ValidatePath checks a prefix inside a bucket: slash-separated segments of safe characters,
// no leading or trailing slash, no "." or ".." segments. An empty path is valid (the bucket root).
func ValidatePath(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > 512 {
		return fmt.Errorf("path %q is longer than 512 characters", p)
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("path %q must not begin or end with '/'", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." || !pathSegmentRE.MatchString(seg) {
			return fmt.Errorf("path %q has an invalid segment %q: use letters, digits, '.', '_', '=', '-' between single slashes", p, seg)
		}
	}
	return nil
}

var dnsLabelsRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// validateCoreWeaveBucketName applies CoreWeave AI Object Storage's rules: S3's, DNS-compatible
// (virtual-hosted addressing), no '_', and no prefix CoreWeave reserves.
func validateCoreWeaveBucketName(name string) error {
	if err := validateS3BucketName(name); err != nil {
		return err
	}
	switch {
	case !dnsLabelsRE.MatchString(name):
		return fmt.Errorf("bucket name %q must be DNS-compatible: labels of lowercase letters, digits and '-', not starting or ending with '-'", name)
	case strings.HasPrefix(name, "cw-"), strings.HasPrefix(name, "vip-"):
		return fmt.Errorf("bucket name %q must not start with cw- or vip- (CoreWeave reserves them)", name)
	}
	return nil
}

var gcsNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*[a-z0-9]$`)

// validateGCSBucketName applies Cloud Storage's bucket naming rules (names without dots; dotted
// names are domain names that need verification, which the agent cannot do).
func validateGCSBucketName(name string) error {
	switch {
	case len(name) < 3 || len(name) > 63:
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long (it is %d)", name, len(name))
	case !gcsNameRE.MatchString(name):
		return fmt.Errorf("bucket name %q may contain only lowercase letters, digits, '-', '_' and '.', and must begin and end with a letter or digit", name)
	case strings.Contains(name, "."):
		return fmt.Errorf("bucket name %q contains '.': dotted names need domain verification; use '-' instead", name)
	case strings.HasPrefix(name, "goog"), strings.Contains(name, "google"), strings.Contains(name, "g00gle"):
		return fmt.Errorf("bucket name %q must not begin with \"goog\" or contain \"google\"", name)
	}
	return nil
}

var azureContainerRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// validateAzureContainerName applies Azure Blob Storage's container naming rules.
func validateAzureContainerName(name string) error {
	switch {
	case len(name) < 3 || len(name) > 63:
		return fmt.Errorf("container name %q must be 3 to 63 characters long (it is %d)", name, len(name))
	case !azureContainerRE.MatchString(name):
		return fmt.Errorf("container name %q may contain only lowercase letters, digits and '-', and must begin and end with a letter or digit", name)
	case strings.Contains(name, "--"):
		return fmt.Errorf("container name %q must not contain two consecutive hyphens", name)
	}
	return nil
}
