package wandb

import (
	"testing"

	"github.com/byob-agent/byob-agent/team"
)

func TestBucketForPerProvider(t *testing.T) {
	tests := []struct {
		st   team.Storage
		want StorageBucket
	}{
		{team.Storage{Provider: team.ProviderAWS, Bucket: "b", Path: "p", AWSExternalID: "x"}, StorageBucket{Name: "b", Provider: "AWS", Path: "p", KMSKeyID: "arn:k", AWSExternalID: "x"}},
		{team.Storage{Provider: team.ProviderS3Compatible, Bucket: "b"}, StorageBucket{Name: "b", Provider: "MINIO"}},
		{team.Storage{Provider: team.ProviderCoreWeave, Bucket: "b"}, StorageBucket{Name: "b", Provider: "COREWEAVE"}},
		{team.Storage{Provider: team.ProviderGCS, Bucket: "b"}, StorageBucket{Name: "b", Provider: "GCP"}},
		{team.Storage{Provider: team.ProviderAzure, Bucket: "c", Account: "acct", AzureTenantID: "t", AzureClientID: "c"}, StorageBucket{Name: "c", Provider: "AZURE", AzureTenantID: "t", AzureClientID: "c"}},
	}
	for _, tt := range tests {
		if got := BucketFor(tt.st, "arn:k"); *got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.st.Provider, *got, tt.want)
		}
	}
}
