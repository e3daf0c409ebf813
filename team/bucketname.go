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
