package team

import (
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		bad  string // error fragment; "" means valid
	}{
		{"ml-research", ""},
		{"team_2", ""},
		{"a", ""},
		{"0day", ""},
		{"", "empty"},
		{"ML", "not a valid W&B team name"},
		{"my team", "not a valid W&B team name"},
		{"-lead", "not a valid W&B team name"},
		{"a.b", "not a valid W&B team name"},
		{strings.Repeat("x", 65), "at most 64"},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if (tt.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
			t.Errorf("ValidateName(%q) = %v, want %q", tt.name, err, tt.bad)
		}
	}
}

func TestValidateBucketName(t *testing.T) {
	tests := []struct {
		provider, name string
		bad            string
	}{
		{ProviderAWS, "wandb-ml", ""},
		{ProviderS3Compatible, "a.b-c", ""},
		{ProviderAWS, "ab", "3 to 63"},
		{ProviderAWS, strings.Repeat("a", 64), "3 to 63"},
		{ProviderAWS, "wandb_ml", "lowercase letters"},
		{ProviderAWS, "Wandb", "lowercase letters"},
		{ProviderAWS, "-wandb", "begin and end"},
		{ProviderAWS, "a..b", "two adjacent periods"},
		{ProviderAWS, "192.168.1.1", "IP address"},
		{ProviderAWS, "xn--abc", "prefix"},
		{ProviderAWS, "abc-s3alias", "suffix"},
		{ProviderCoreWeave, "wandb-ml", ""},
		{ProviderCoreWeave, "cw-ml", "cw- or vip-"},
		{ProviderCoreWeave, "vip-ml", "cw- or vip-"},
		{ProviderCoreWeave, "a.-b", "DNS-compatible"},
		{ProviderGCS, "wandb_ml-1", ""},
		{ProviderGCS, "wandb.ml", "dotted"},
		{ProviderGCS, "google-ml", "google"},
		{ProviderGCS, "goog-ml", "goog"},
		{ProviderGCS, "Wandb", "lowercase"},
		{ProviderAzure, "wandb-ml", ""},
		{ProviderAzure, "wandb--ml", "consecutive"},
		{ProviderAzure, "wandb_ml", "lowercase letters, digits and '-'"},
		{ProviderAzure, "ab", "3 to 63"},
		{"b2", "abc", "unknown provider"},
	}
	for _, tt := range tests {
		err := ValidateBucketName(tt.provider, tt.name)
		if (tt.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
			t.Errorf("ValidateBucketName(%q, %q) = %v, want %q", tt.provider, tt.name, err, tt.bad)
		}
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		bad  string
	}{
		{"", ""},
		{"wandb", ""},
		{"teams/ml-1/x=y", ""},
		{"/teams", "begin or end"},
		{"teams/", "begin or end"},
		{"a//b", "invalid segment"},
		{"a/../b", "invalid segment"},
		{"a b", "invalid segment"},
		{strings.Repeat("a", 513), "longer than 512"},
	}
	for _, tt := range tests {
		err := ValidatePath(tt.path)
		if (tt.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
			t.Errorf("ValidatePath(%q) = %v, want %q", tt.path, err, tt.bad)
		}
	}
}

func TestStorageDigestAndProvider(t *testing.T) {
	a := Storage{Provider: ProviderAWS, Bucket: "b", Region: "us-east-1", KMSKeyARN: "arn:k"}
	b := a
	if a.Digest() != b.Digest() || !strings.HasPrefix(a.Digest(), "sha256:") {
		t.Fatalf("equal specs, different digests: %s %s", a.Digest(), b.Digest())
	}
	for _, change := range []func(*Storage){
		func(s *Storage) { s.Bucket = "c" },
		func(s *Storage) { s.Path = "p" },
		func(s *Storage) { s.KMSKeyARN = "" },
		func(s *Storage) { s.CreateKMSKey = true },
		func(s *Storage) { s.AWSExternalID = "x" },
		func(s *Storage) { s.Endpoint = "http://x" },
		func(s *Storage) { s.Shared = true },
		func(s *Storage) { s.Account = "acct" },
		func(s *Storage) { s.AzureClientID = "c" },
	} {
		c := a
		change(&c)
		if c.Digest() == a.Digest() {
			t.Errorf("digest ignores a change: %+v", c)
		}
	}
}
