package testenv

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

func TestStartS3(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	env, err := StartS3(ctx, S3Options{Logs: &logs})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			env.Close()
		}
		if t.Failed() { // the children have stopped writing: the buffer can be read
			t.Logf("backend output:\n%s", logs.String())
		}
	}()

	// A client of the code under test goes through the proxies.
	client := newS3Client(env.Endpoint, env.Region, env.AccessKey, env.SecretKey)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("testenv-bucket")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("testenv-bucket")}); err != nil {
		t.Fatalf("head bucket: %v", err)
	}
	if got, want := env.S3Counts(), map[string]int{"PUT bucket": 1, "HEAD bucket": 1}; !maps.Equal(got, want) {
		t.Errorf("S3Counts() = %v, want %v", got, want)
	}
	if got := env.S3Mutations(); got != 1 {
		t.Errorf("S3Mutations() = %d, want 1", got)
	}

	// SSE-KMS works end to end: SeaweedFS asks kmsd (through the KMS proxy) for data keys.
	keyARN, err := env.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env.ResetCounts()
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("testenv-bucket"), Key: aws.String("a/b.txt"), Body: strings.NewReader("hello"),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(keyARN),
	}); err != nil {
		t.Fatalf("put SSE-KMS object: %v", err)
	}
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("testenv-bucket"), Key: aws.String("a/b.txt")})
	if err != nil {
		t.Fatalf("head object: %v", err)
	}
	if head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != keyARN {
		t.Errorf("object encryption = %q with key %q, want aws:kms with %q", head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId), keyARN)
	}
	if got := env.S3Counts()["PUT object"]; got != 1 {
		t.Errorf(`S3Counts()["PUT object"] = %d, want 1`, got)
	}
	if got := env.KMSCounts()["TrentService.GenerateDataKey"]; got == 0 {
		t.Errorf("SeaweedFS made no GenerateDataKey call through the KMS proxy: %v", env.KMSCounts())
	}
	if got := env.KMSMutations(); got != 0 {
		t.Errorf("KMSMutations() = %d after data-key calls only, want 0", got)
	}

	// KMS calls of the code under test are counted by target.
	env.ResetCounts()
	kmsClient := kms.New(kms.Options{
		Region: env.Region, BaseEndpoint: aws.String(env.KMSEndpoint),
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""),
	})
	if _, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{}); err != nil {
		t.Fatalf("create key through proxy: %v", err)
	}
	if got := env.KMSCounts()["TrentService.CreateKey"]; got != 1 || env.KMSMutations() != 1 {
		t.Errorf("after CreateKey: KMSCounts() = %v, KMSMutations() = %d; want one CreateKey", env.KMSCounts(), env.KMSMutations())
	}

	// An injector can spare SeaweedFS's own KMS calls and fail a client's.
	env.SetKMSInjector(NewFaults(FaultOptions{Rate: 1, Kinds: []FaultKind{FaultUnavailable}, Select: func(r *http.Request) bool { return !IsSeaweedKMSCall(r) }}))
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("testenv-bucket"), Key: aws.String("a/c.txt"), Body: strings.NewReader("hello"),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(keyARN),
	}); err != nil {
		t.Errorf("put SSE-KMS object while clients' KMS calls fail: %v", err)
	}
	if _, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{}, func(o *kms.Options) { o.RetryMaxAttempts = 1 }); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("create key with every client KMS call failing: err = %v, want 503", err)
	}
	env.SetKMSInjector(nil)

	// A fault hook answers in the backend's place.
	env.SetS3Fault(func(r *http.Request) (int, bool) { return http.StatusForbidden, r.Method == http.MethodHead })
	_, err = client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("testenv-bucket")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "Forbidden" {
		t.Errorf("head bucket with a 403 fault: err = %v, want Forbidden", err)
	}
	env.SetS3Fault(nil)
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("testenv-bucket")}); err != nil {
		t.Errorf("head bucket after removing the fault: %v", err)
	}

	// Close kills the children and removes the temporary directory.
	pids := []int{env.weed.cmd.Process.Pid, env.kmsd.cmd.Process.Pid}
	dir := env.tempDir
	closed = true
	if err := env.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still runs after Close", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work directory %s still exists after Close (stat: %v)", dir, err)
	}
}

func TestBinaryMissing(t *testing.T) {
	_, err := Binary("no-such-backend")
	if err == nil || !strings.Contains(err.Error(), "bin/no-such-backend not found: run `make tools`") {
		t.Errorf("Binary(missing) error = %v, want a hint to run make tools", err)
	}
}

func TestS3Operation(t *testing.T) {
	tests := []struct {
		method, target, want string
	}{
		{"GET", "/", "GET service"},
		{"PUT", "/b", "PUT bucket"},
		{"HEAD", "/b", "HEAD bucket"},
		{"GET", "/b?list-type=2&prefix=x", "GET bucket"},
		{"PUT", "/b?cors", "PUT ?cors"},
		{"GET", "/b?tagging=", "GET ?tagging"},
		{"DELETE", "/b?encryption", "DELETE ?encryption"},
		{"PUT", "/b/k/with/slashes?x-id=PutObject", "PUT object"},
		{"GET", "/b/k?tagging", "GET object?tagging"},
		{"POST", "/b?delete", "POST ?delete"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		if got := s3Operation(r); got != tt.want {
			t.Errorf("s3Operation(%s %s) = %q, want %q", tt.method, tt.target, got, tt.want)
		}
	}
}

func TestMutations(t *testing.T) {
	tests := []struct {
		op   string
		is   func(string) bool
		want bool
	}{
		{"PUT ?cors", isS3Mutation, true},
		{"POST ?delete", isS3Mutation, true},
		{"DELETE object", isS3Mutation, true},
		{"GET ?policy", isS3Mutation, false},
		{"HEAD bucket", isS3Mutation, false},
		{"TrentService.CreateKey", isKMSMutation, true},
		{"TrentService.EnableKeyRotation", isKMSMutation, true},
		{"TrentService.PutKeyPolicy", isKMSMutation, true},
		{"TrentService.TagResource", isKMSMutation, true},
		{"TrentService.ScheduleKeyDeletion", isKMSMutation, true},
		{"TrentService.DescribeKey", isKMSMutation, false},
		{"TrentService.GenerateDataKey", isKMSMutation, false},
		{"TrentService.ListResourceTags", isKMSMutation, false},
	}
	for _, tt := range tests {
		if got := tt.is(tt.op); got != tt.want {
			t.Errorf("mutation(%q) = %v, want %v", tt.op, got, tt.want)
		}
	}
}
