package testenv

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIsMutation(t *testing.T) {
	kmsReq := func(target string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
		r.Header.Set("X-Amz-Target", target)
		return r
	}
	tests := []struct {
		name string
		r    *http.Request
		is   func(*http.Request) bool
		want bool
	}{
		{"S3 create bucket", httptest.NewRequest(http.MethodPut, "http://127.0.0.1/b", nil), IsS3Mutation, true},
		{"S3 put tagging", httptest.NewRequest(http.MethodPut, "http://127.0.0.1/b?tagging", nil), IsS3Mutation, true},
		{"S3 head bucket", httptest.NewRequest(http.MethodHead, "http://127.0.0.1/b", nil), IsS3Mutation, false},
		{"Azure create container", httptest.NewRequest(http.MethodPut, "http://127.0.0.1/acct/c?restype=container", nil), IsS3Mutation, true},
		{"Azure container properties", httptest.NewRequest(http.MethodGet, "http://127.0.0.1/acct/c?restype=container", nil), IsS3Mutation, false},
		{"KMS create key", kmsReq("TrentService.CreateKey"), IsKMSMutation, true},
		{"KMS create alias", kmsReq("TrentService.CreateAlias"), IsKMSMutation, true},
		{"KMS describe key (a POST that changes nothing)", kmsReq("TrentService.DescribeKey"), IsKMSMutation, false},
		{"KMS data key for SSE", kmsReq("TrentService.GenerateDataKey"), IsKMSMutation, false},
	}
	for _, tt := range tests {
		if got := tt.is(tt.r); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
