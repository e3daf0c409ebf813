package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/bucketfactory/azureblob"
	"github.com/byob-agent/byob-agent/bucketfactory/gcsbucket"
	"github.com/byob-agent/byob-agent/bucketfactory/s3bucket"
	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/team"
)

// newFactory builds the storage factory of one profile. It makes no request.
func newFactory(ctx context.Context, p config.Profile) (bucketfactory.Factory, error) {
	switch p.Provider {
	case team.ProviderAWS, team.ProviderS3Compatible, team.ProviderCoreWeave:
		return s3bucket.New(ctx, s3Options(p))
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
		return gcsbucket.New(ctx, o)
	case team.ProviderAzure:
		return azureblob.New(ctx, azureblob.Options{
			Account:          p.Account,
			Endpoint:         p.Endpoint,
			AccountKey:       p.AccountKey.Reveal(),
			ConnectionString: p.ConnectionString.Reveal(),
			UseIdentity:      p.UseIdentity,
			SoftDeleteDays:   p.SoftDeleteDays,
		})
	}
	return nil, fmt.Errorf("provider %q is not supported", p.Provider)
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
