package s3bucket

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// Address returns the bucket's storage address as W&B takes it (docs/wandb.md, "Storage addresses"):
//
//	aws            s3://<key>:<secret>@<endpoint host, else s3.<region>.amazonaws.com>/<bucket>?region=<region>
//	s3-compatible  s3://<key>:<secret>@<endpoint host[:port]>/<bucket>?region=<region>&tls=<https?>
//	coreweave      cw://<key>:<secret>@<endpoint host, cwobject.com by default>/<bucket>?tls=<https?>
//
// The key pair is the profile's credentials at the time of the call (a provider chain is asked anew).
// It makes no request to the bucket. Errors never carry the secret.
func (f *Factory) Address(ctx context.Context, b bucketfactory.Bucket) (string, error) {
	if err := f.validate(b); err != nil {
		return "", err
	}
	st := b.Storage
	region := cmp.Or(st.Region, f.region)
	endpoint := cmp.Or(st.Endpoint, f.endpoint)
	var host string
	https := true
	if endpoint != "" {
		u, isHTTPS, err := parseEndpoint(endpoint)
		if err != nil {
			return "", err
		}
		host, https = u.Host, isHTTPS
	}
	scheme, query := "s3", url.Values{}
	switch f.provider {
	case team.ProviderAWS:
		if host == "" {
			host = "s3." + region + ".amazonaws.com"
		}
		query.Set("region", region)
	case team.ProviderS3Compatible:
		if host == "" {
			return "", fmt.Errorf("bucket %q: an s3-compatible address needs the server's endpoint: set it in the profile or storage spec", st.Bucket)
		}
		query.Set("region", region)
		query.Set("tls", strconv.FormatBool(https))
	case team.ProviderCoreWeave:
		scheme = "cw"
		query.Set("tls", strconv.FormatBool(https))
	}
	creds, err := f.creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("get the credentials for the address of bucket %q: %w", st.Bucket, err)
	}
	switch {
	case creds.AccessKeyID == "" || creds.SecretAccessKey == "":
		return "", fmt.Errorf("bucket %q: the profile's credentials lack an access key or secret, which the address must carry", st.Bucket)
	case creds.SessionToken != "":
		// An address cannot carry a session token, and W&B keeps using the address long after such
		// credentials expire.
		return "", fmt.Errorf("bucket %q: the profile's credentials are temporary (they carry a session token): W&B needs a long-lived access key in the address", st.Bucket)
	}
	userinfo := escapeUserinfo(creds.AccessKeyID) + ":" + escapeUserinfo(creds.SecretAccessKey)
	return scheme + "://" + userinfo + "@" + host + "/" + st.Bucket + "?" + query.Encode(), nil
}

// escapeUserinfo percent-encodes every byte but RFC 3986's unreserved characters, so that any URL parser
// gets the key back exactly. url.UserPassword would leave '+', '=', '&', ';', ',' and '$' as they are,
// and a parser that decodes '+' as a space would then corrupt a secret.
func escapeUserinfo(s string) string {
	var b strings.Builder
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
