package s3bucket

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// A secret with every character that needs escaping in a URL's userinfo, plus '+' and '=', which
// url.UserPassword would leave as they are.
const (
	addrKey       = "AKIAEXAMPLE"
	addrSecret    = "wJal/rXU+tn@FEMI:K7M=DENG"
	addrSecretEnc = "wJal%2FrXU%2Btn%40FEMI%3AK7M%3DDENG"
)

// credsFunc stands for the SDK's default chain without touching the environment: it is asked at each
// Address call, and counts how often.
func credsFunc(calls *int, c aws.Credentials, err error) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		*calls++
		return c, err
	})
}

func TestAddress(t *testing.T) {
	awsOpts := Options{Provider: team.ProviderAWS, Region: "eu-central-1", PrincipalARN: testPrincipal}
	cwOpts := Options{Provider: team.ProviderCoreWeave, Region: "US-EAST-04A", PrincipalARN: cwPrincipal, OrgID: testOrgID}
	compat := func(endpoint string) Options {
		return Options{Provider: team.ProviderS3Compatible, Region: "us-east-1", Endpoint: endpoint, PathStyle: true}
	}
	withEndpoint := func(o Options, endpoint string) Options { o.Endpoint = endpoint; return o }
	tests := []struct {
		name   string
		o      Options
		change func(*team.Storage)
		want   string
	}{
		{"aws regional endpoint", awsOpts, nil,
			"s3://AKIAEXAMPLE:" + addrSecretEnc + "@s3.eu-central-1.amazonaws.com/wandb-ml?region=eu-central-1"},
		{"aws bucket in another region", awsOpts, func(s *team.Storage) { s.Region = "us-west-2" },
			"s3://AKIAEXAMPLE:" + addrSecretEnc + "@s3.us-west-2.amazonaws.com/wandb-ml?region=us-west-2"},
		{"aws configured endpoint", withEndpoint(awsOpts, "https://s3.dualstack.eu-central-1.amazonaws.com"), nil,
			"s3://AKIAEXAMPLE:" + addrSecretEnc + "@s3.dualstack.eu-central-1.amazonaws.com/wandb-ml?region=eu-central-1"},
		{"aws bucket endpoint", awsOpts, func(s *team.Storage) { s.Endpoint = "https://bucket.vpce-1a2b.s3.eu-central-1.vpce.amazonaws.com/" },
			"s3://AKIAEXAMPLE:" + addrSecretEnc + "@bucket.vpce-1a2b.s3.eu-central-1.vpce.amazonaws.com/wandb-ml?region=eu-central-1"},
		{"s3-compatible over http", compat("http://127.0.0.1:9000"), nil,
			"s3://AKIAEXAMPLE:" + addrSecretEnc + "@127.0.0.1:9000/wandb-ml?region=us-east-1&tls=false"},
		{"s3-compatible over https", compat("https://minio.example.com"), nil,
			"s3://AKIAEXAMPLE:" + addrSecretEnc + "@minio.example.com/wandb-ml?region=us-east-1&tls=true"},
		{"coreweave default endpoint", cwOpts, nil,
			"cw://AKIAEXAMPLE:" + addrSecretEnc + "@cwobject.com/wandb-ml?tls=true"},
		{"coreweave configured endpoint", withEndpoint(cwOpts, "https://cwobject.com:443"), nil,
			"cw://AKIAEXAMPLE:" + addrSecretEnc + "@cwobject.com:443/wandb-ml?tls=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			tt.o.Credentials = credsFunc(&calls, aws.Credentials{AccessKeyID: addrKey, SecretAccessKey: addrSecret}, nil)
			f, err := New(t.Context(), tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if calls != 0 {
				t.Errorf("New asked for credentials %d time(s), want none", calls)
			}
			b := bucketfactory.Bucket{Team: "ml", Storage: team.Storage{Provider: tt.o.Provider, Bucket: "wandb-ml", Path: "ml"}}
			if tt.change != nil {
				tt.change(&b.Storage)
			}
			got, err := f.Address(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Address =\n %s\nwant\n %s", got, tt.want)
			}
			if calls != 1 {
				t.Errorf("Address asked for credentials %d time(s), want 1", calls)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("address does not parse: %v", err)
			}
			if pw, _ := u.User.Password(); u.User.Username() != addrKey || pw != addrSecret {
				t.Errorf("address parses to key %q and secret %q, want the originals", u.User.Username(), pw)
			}
		})
	}
}

func TestAddressErrors(t *testing.T) {
	b := bucketfactory.Bucket{Team: "ml", Storage: team.Storage{Provider: team.ProviderS3Compatible, Bucket: "wandb-ml"}}
	errFromChain := errors.New("no EC2 role")
	tests := []struct {
		name     string
		endpoint string
		creds    aws.Credentials
		credsErr error
		want     string
	}{
		{"no endpoint", "", aws.Credentials{AccessKeyID: addrKey, SecretAccessKey: addrSecret}, nil, "needs the server's endpoint"},
		{"credentials fail", "https://minio.example.com", aws.Credentials{}, errFromChain, "get the credentials for the address"},
		{"no secret", "https://minio.example.com", aws.Credentials{AccessKeyID: addrKey}, nil, "lack an access key or secret"},
		{"temporary credentials", "https://minio.example.com", aws.Credentials{AccessKeyID: addrKey, SecretAccessKey: addrSecret, SessionToken: "FQoGZXIvYXdzEXAMPLETOKEN"}, nil, "temporary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			f, err := New(t.Context(), Options{Provider: team.ProviderS3Compatible, Region: "us-east-1", Endpoint: tt.endpoint,
				Credentials: credsFunc(&calls, tt.creds, tt.credsErr)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Address(t.Context(), b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Address = %q, %v; want an error containing %q", got, err, tt.want)
			}
			if strings.Contains(err.Error(), addrSecret) || strings.Contains(err.Error(), addrSecretEnc) || strings.Contains(err.Error(), "FQoGZXIvYXdzEXAMPLETOKEN") {
				t.Errorf("Address error reveals a secret: %v", err)
			}
			if tt.credsErr != nil && !errors.Is(err, tt.credsErr) {
				t.Errorf("Address error %v does not wrap the credential chain's", err)
			}
		})
	}
}
