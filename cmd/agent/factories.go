package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"google.golang.org/api/option"
	"google.golang.org/api/option/internaloption"
	htransport "google.golang.org/api/transport/http"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/bucketfactory/azureblob"
	"github.com/byob-agent/byob-agent/bucketfactory/gcsbucket"
	"github.com/byob-agent/byob-agent/bucketfactory/s3bucket"
	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/internal/transport"
	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/team"
)

// newFactory builds the storage factory of one profile. It makes no request.
//
// Every factory gets an HTTP client whose Timeout bounds each attempt of a request: the SDKs retry a
// timed-out attempt with backoff, but none of them bounds an attempt by default, so a server that
// accepts a request and never answers would hold the sync forever.
//
// m, when set (the daemon), counts and times every storage request by target. The AWS and GCS clients
// also wait out a server's Retry-After before their SDK's own backoff (azcore honours it already).
func newFactory(ctx context.Context, p config.Profile, m *metrics.Metrics) (bucketfactory.Factory, error) {
	wrap := func(targetOf func(*http.Request) string, retryAfter bool) func(http.RoundTripper) http.RoundTripper {
		return func(rt http.RoundTripper) http.RoundTripper {
			if m != nil {
				rt = m.TransportBy(targetOf, rt)
			}
			if retryAfter {
				rt = &retry.Transport{Base: rt}
			}
			return rt
		}
	}
	target := func(name string) func(*http.Request) string { return func(*http.Request) string { return name } }
	caField := "profiles." + p.Name + ".caFile"
	trusted := transport.Trusted(p.CAFile, caField, os.Getenv)
	switch p.Provider {
	case team.ProviderAWS, team.ProviderS3Compatible, team.ProviderCoreWeave:
		o := s3Options(p)
		if p.CAFile != "" {
			pool, err := transport.Pool(p.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", caField, err)
			}
			o.TLS = &tls.Config{RootCAs: pool}
		}
		o.Trusted, o.Timeout, o.WrapTransport = trusted, p.Timeout, wrap(awsTarget, true)
		return s3bucket.New(ctx, o)
	}
	base, err := transport.New(transport.Options{CAFile: p.CAFile})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caField, err)
	}
	rt := transport.Explain(base, trusted)
	switch p.Provider {
	case team.ProviderGCS:
		o := gcsbucket.Options{
			Project:        p.Project,
			Location:       p.Region,
			Endpoint:       p.Endpoint,
			Principal:      p.ServiceAccount,
			SoftDeleteDays: p.SoftDeleteDays,
		}
		if key := p.GCSCredentialsJSON.Reveal(); key != "" {
			o.CredentialsJSON = []byte(key)
		}
		auth, err := gcsTransport(ctx, o.CredentialsJSON, rt)
		if err != nil {
			return nil, err
		}
		o.HTTPClient = &http.Client{Transport: wrap(target("gcs"), true)(auth), Timeout: p.Timeout}
		return gcsbucket.New(ctx, o)
	case team.ProviderAzure:
		return azureblob.New(ctx, azureblob.Options{
			Account:          p.Account,
			Endpoint:         p.Endpoint,
			AccountKey:       p.AccountKey.Reveal(),
			ConnectionString: p.ConnectionString.Reveal(),
			UseIdentity:      p.UseIdentity,
			SoftDeleteDays:   p.SoftDeleteDays,
			HTTPClient:       &http.Client{Timeout: p.Timeout, Transport: wrap(target("azure"), false)(rt)},
		})
	}
	return nil, fmt.Errorf("provider %q is not supported", p.Provider)
}

// gcsTransport authenticates every request over base as the storage library would by itself (the
// service account key, or Application Default Credentials without one; the same scopes and auth
// library). The caller adds the attempt timeout, for which the library has no option of its own; it
// bounds token requests too: they run under the request's context.
func gcsTransport(ctx context.Context, key []byte, base http.RoundTripper) (http.RoundTripper, error) {
	opts := []option.ClientOption{
		option.WithScopes(storage.ScopeFullControl, "https://www.googleapis.com/auth/cloud-platform"),
		internaloption.EnableNewAuthLibrary(),
	}
	if key != nil {
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, key))
	}
	rt, err := htransport.NewTransport(ctx, base, opts...)
	if err != nil {
		return nil, fmt.Errorf("GCS credentials: %w", err)
	}
	return rt, nil
}

// awsTarget tells KMS requests (AWS JSON protocol, X-Amz-Target: TrentService.*) from S3's: one AWS
// client configuration serves both.
func awsTarget(r *http.Request) string {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "TrentService.") {
		return "kms"
	}
	return "s3"
}

func s3Options(p config.Profile) s3bucket.Options {
	o := s3bucket.Options{
		Provider:      p.Provider,
		Region:        p.Region,
		Endpoint:      p.Endpoint,
		PathStyle:     p.PathStyle,
		PrincipalARN:  p.PrincipalARN,
		KMSEndpoint:   p.KMS.Endpoint,
		AccountID:     p.KMS.AccountID,
		OrgID:         p.OrgID,
		OrgWideAccess: p.OrgWideAccess,
	}
	if c := p.Credentials; c != nil {
		o.Credentials = credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey.Reveal(), c.SessionToken.Reveal())
	}
	return o
}
