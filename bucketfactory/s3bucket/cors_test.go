package s3bucket

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestEquivalentCORSRule(t *testing.T) {
	ours := wandbCORSRule()
	with := func(change func(*types.CORSRule)) types.CORSRule {
		r := wandbCORSRule()
		change(&r)
		return r
	}
	tests := []struct {
		name string
		rule types.CORSRule
		want bool
	}{
		{"same", ours, true},
		{"no ID", with(func(r *types.CORSRule) { r.ID = nil }), true},
		{"other order and case", with(func(r *types.CORSRule) {
			r.AllowedMethods = []string{"put", "GET", "head"}
			r.ExposeHeaders = []string{"etag"}
		}), true},
		{"other max age", with(func(r *types.CORSRule) { r.MaxAgeSeconds = aws.Int32(600) }), false},
		{"no max age", with(func(r *types.CORSRule) { r.MaxAgeSeconds = nil }), false},
		{"extra method", with(func(r *types.CORSRule) { r.AllowedMethods = append(r.AllowedMethods, "POST") }), false},
		{"narrower origin", with(func(r *types.CORSRule) { r.AllowedOrigins = []string{"https://wandb.ai"} }), false},
		{"no exposed ETag", with(func(r *types.CORSRule) { r.ExposeHeaders = nil }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := equivalentCORSRule(tt.rule, ours); got != tt.want {
				t.Errorf("equivalentCORSRule(%s) = %v, want %v", describeCORSRule(tt.rule), got, tt.want)
			}
		})
	}
}

func TestMergeCORSRules(t *testing.T) {
	foreign := types.CORSRule{ID: aws.String("theirs"), AllowedMethods: []string{"POST"}, AllowedOrigins: []string{"https://x.example"}}
	equivalent := wandbCORSRule()
	equivalent.ID = aws.String("someone-elses")
	drifted := wandbCORSRule()
	drifted.MaxAgeSeconds = aws.Int32(60)

	tests := []struct {
		name        string
		rules       []types.CORSRule
		wantChanged bool
		wantIDs     []string
	}{
		{"none", nil, true, []string{wandbCORSRuleID}},
		{"foreign kept, ours first", []types.CORSRule{foreign}, true, []string{wandbCORSRuleID, "theirs"}},
		{"equivalent rule suffices", []types.CORSRule{foreign, equivalent}, false, []string{"theirs", "someone-elses"}},
		{"drifted own rule replaced", []types.CORSRule{foreign, drifted}, true, []string{wandbCORSRuleID, "theirs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged, changed := mergeCORSRules(tt.rules)
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			var ids []string
			for _, r := range merged {
				ids = append(ids, aws.ToString(r.ID))
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("merged rule IDs = %v, want %v", ids, tt.wantIDs)
			}
			if !hasWandbCORSRule(merged) {
				t.Errorf("merged rules lack W&B's: %s", describeCORSRules(merged))
			}
		})
	}
}
