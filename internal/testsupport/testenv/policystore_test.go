package testenv

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

func TestValidatePolicy(t *testing.T) {
	const ok = `{"Sid":"WandbAccess","Effect":"Allow","Principal":{"CW":"arn:aws:iam::wandb:static/wandb-integration"},` +
		`"Action":["s3:GetObject*","s3:PutObject"],"Resource":["arn:aws:s3:::cw-b","arn:aws:s3:::cw-b/*"],` +
		`"Condition":{"StringLike":{"wandb:OrgID":["org-1"]}}}`
	policy := func(stmts string) string { return `{"Version":"2012-10-17","Statement":[` + stmts + `]}` }
	tests := []struct {
		name, doc, wantErr string // wantErr "": valid
	}{
		{"CW statement with condition", policy(ok), ""},
		{"AWS principal list, single strings", policy(`{"Effect":"Deny","Principal":{"AWS":["arn:aws:iam::1:root"]},"Action":"s3:*","Resource":"arn:aws:s3:::cw-b/x/*"}`), ""},
		{"single statement object", `{"Version":"2012-10-17","Id":"x","Statement":` + ok + `}`, ""},
		{"two statements", policy(ok + `,` + strings.Replace(ok, "WandbAccess", "OrgWideAccess", 1)), ""},
		{"not JSON", `{"Version":`, "not a JSON object"},
		{"trailing data", policy(ok) + `{}`, "data after the JSON value"},
		{"a list", `[` + ok + `]`, "not a JSON object"},
		{"unknown top-level key", `{"Version":"2012-10-17","Extra":1,"Statement":[` + ok + `]}`, `unknown policy key "Extra"`},
		{"key case matters", `{"version":"2012-10-17","Statement":[` + ok + `]}`, `unknown policy key "version"`},
		{"old version", `{"Version":"2008-10-17","Statement":[` + ok + `]}`, "Version must be"},
		{"no version", `{"Statement":[` + ok + `]}`, "Version must be"},
		{"no statements", policy(``), "no statements"},
		{"statement not an object", policy(`"x"`), "Statement must be"},
		{"unknown statement key", policy(strings.Replace(ok, `"Effect"`, `"NotAction":"s3:x","Effect"`, 1)), `unknown statement key "NotAction"`},
		{"duplicate Sid", policy(ok + `,` + ok), `Sid "WandbAccess" is not unique`},
		{"bad effect", policy(strings.Replace(ok, `"Allow"`, `"allow"`, 1)), "Effect must be"},
		{"no principal", policy(`{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::cw-b"}`), "Principal must be"},
		{"principal star", policy(strings.Replace(ok, `{"CW":"arn:aws:iam::wandb:static/wandb-integration"}`, `"*"`, 1)), "Principal must be"},
		{"both AWS and CW", policy(strings.Replace(ok, `{"CW":`, `{"AWS":"arn:aws:iam::1:root","CW":`, 1)), "exactly one of AWS or CW"},
		{"other principal kind", policy(strings.Replace(ok, `{"CW":`, `{"Service":`, 1)), `"Service" is neither AWS nor CW`},
		{"empty principal list", policy(strings.Replace(ok, `{"CW":"arn:aws:iam::wandb:static/wandb-integration"}`, `{"CW":[]}`, 1)), "Principal CW must be"},
		{"no action", policy(`{"Effect":"Allow","Principal":{"CW":"x"},"Resource":"arn:aws:s3:::cw-b"}`), "Action must be"},
		{"non-s3 action", policy(strings.Replace(ok, `"s3:PutObject"`, `"kms:Decrypt"`, 1)), `"kms:Decrypt" is not an s3: action`},
		{"no resource", policy(`{"Effect":"Allow","Principal":{"CW":"x"},"Action":"s3:*"}`), "Resource must be"},
		{"another bucket", policy(strings.Replace(ok, `"arn:aws:s3:::cw-b/*"`, `"arn:aws:s3:::cw-bb/*"`, 1)), `"arn:aws:s3:::cw-bb/*" is neither`},
		{"bucket wildcard", policy(strings.Replace(ok, `"arn:aws:s3:::cw-b/*"`, `"arn:aws:s3:::*"`, 1)), "is neither"},
		{"condition not an object of objects", policy(strings.Replace(ok, `{"StringLike":{"wandb:OrgID":["org-1"]}}`, `{"StringLike":"x"}`, 1)), "Condition must map"},
		{"condition value not strings", policy(strings.Replace(ok, `["org-1"]`, `[1]`, 1)), "Condition StringLike wandb:OrgID must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validatePolicy("cw-b", []byte(tt.doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("validatePolicy(%s) = %v, want valid", tt.doc, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("validatePolicy(%s) = %v, want an error containing %q", tt.doc, err, tt.wantErr)
			}
		})
	}
}

// TestPolicyStore drives the store through the S3 SDK, so that its answers are what the SDK expects.
func TestPolicyStore(t *testing.T) {
	var store policyStore
	store.addPrefix("cw-")
	passedOn := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !store.serve(w, r) {
			passedOn++
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	ctx := t.Context()
	client := newS3Client(srv.URL, "us-east-1", "ak", "sk")
	apiCode := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	bucket := aws.String("cw-b")
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"CW":"x"},"Action":"s3:*","Resource":"arn:aws:s3:::cw-b"}]}`

	if _, err := client.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: bucket}); apiCode(err) != "NoSuchBucketPolicy" {
		t.Errorf("GET before PUT: %v, want NoSuchBucketPolicy", err)
	}
	if _, err := client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: bucket, Policy: aws.String(`{"Version":"2012-10-17"}`)}); apiCode(err) != "MalformedPolicy" {
		t.Errorf("PUT of a policy without statements: %v, want MalformedPolicy", err)
	}
	if _, err := client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: bucket, Policy: aws.String(doc)}); err != nil {
		t.Fatalf("PUT: %v", err)
	}
	out, err := client.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: bucket})
	if err != nil || aws.ToString(out.Policy) != doc {
		t.Errorf("GET after PUT = %q, %v; want %s", aws.ToString(out.Policy), err, doc)
	}
	if got, ok := store.get("cw-b"); !ok || got != doc {
		t.Errorf("stored policy = %q, %v", got, ok)
	}
	if _, err := client.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: bucket}); err != nil {
		t.Errorf("DELETE: %v", err)
	}
	if _, ok := store.get("cw-b"); ok {
		t.Error("policy still stored after DELETE")
	}

	// Other buckets, and other requests of intercepted buckets, go to the backend.
	client.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("other")})
	client.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: bucket})
	if passedOn != 2 {
		t.Errorf("%d requests passed on to the backend, want 2", passedOn)
	}

	anon, err := http.Get(srv.URL + "/cw-b?policy")
	if err != nil {
		t.Fatal(err)
	}
	anon.Body.Close()
	if anon.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous GET ?policy: status %d, want 403", anon.StatusCode)
	}
}
