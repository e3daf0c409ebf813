package s3bucket

import (
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/byob-agent/byob-agent/internal/transport"
)

// sdkHTTPClient is the client every S3, KMS and STS request goes through: the transport of the SDK's
// buildable client, the agent's wrappers (certificate errors explained, metrics, Retry-After) and the
// attempt timeout.
//
// The SDK applies a CA bundle named by AWS_CA_BUNDLE or the shared config's ca_bundle only to its own
// *BuildableClient (it refuses to load at all with any other client), so the agent gives it one, lets
// LoadDefaultConfig add the bundle (loaded is then a copy of own), and wraps what came back. The bundle
// is added to the roots already set (the profile's caFile and the system's), or when none are, trusted
// alone, as the AWS CLI does.
func sdkHTTPClient(loaded aws.HTTPClient, own *awshttp.BuildableClient, o Options) aws.HTTPClient {
	bc, ok := loaded.(*awshttp.BuildableClient)
	if !ok {
		bc = own
	}
	trusted := o.Trusted
	if trusted == "" {
		trusted = "the system roots"
	}
	if bc != own {
		const bundle = "the CA bundle of the AWS configuration (AWS_CA_BUNDLE, or ca_bundle in the shared config)"
		if o.TLS != nil && o.TLS.RootCAs != nil {
			trusted += " and " + bundle
		} else {
			trusted = bundle
		}
	}
	var rt http.RoundTripper = transport.Explain(bc.GetTransport(), trusted)
	if o.WrapTransport != nil {
		rt = o.WrapTransport(rt)
	}
	return &http.Client{Transport: rt, Timeout: o.Timeout}
}
