package s3bucket

import (
	"errors"
	"testing"

	"github.com/aws/smithy-go"
)

func TestRetryNoSuchBucket(t *testing.T) {
	noSuch := &smithy.GenericAPIError{Code: "NoSuchBucket"}
	other := errors.New("access denied")
	tests := []struct {
		name      string
		errs      []error // returned by successive calls; then nil
		wantCalls int
		wantErr   error
	}{
		{"ok at once", nil, 1, nil},
		{"missing for a moment", []error{noSuch, noSuch}, 3, nil},
		{"other errors are not retried", []error{other}, 1, other},
		{"missing, then another error", []error{noSuch, other}, 2, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := retryNoSuchBucket(t.Context(), func() error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) || calls != tt.wantCalls {
				t.Fatalf("err %v after %d calls, want %v after %d", err, calls, tt.wantErr, tt.wantCalls)
			}
		})
	}
}
