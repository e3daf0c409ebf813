package s3bucket

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// wandbCORSRuleID names the agent's rule, so that a drifted copy of it is replaced rather than duplicated.
const wandbCORSRuleID = "byob-agent-wandb"

// wandbCORSRule is the rule W&B needs: browsers upload and download through pre-signed URLs.
func wandbCORSRule() types.CORSRule {
	return types.CORSRule{
		ID:             aws.String(wandbCORSRuleID),
		AllowedHeaders: []string{"*"},
		AllowedMethods: []string{"GET", "HEAD", "PUT"},
		AllowedOrigins: []string{"*"},
		ExposeHeaders:  []string{"ETag"},
		MaxAgeSeconds:  aws.Int32(3000),
	}
}

// equivalentCORSRule compares two rules as S3 applies them: the ID does not matter, lists are sets,
// methods and header names are case-insensitive, origins are not.
func equivalentCORSRule(a, b types.CORSRule) bool {
	return sameSet(a.AllowedMethods, b.AllowedMethods, strings.ToUpper) &&
		sameSet(a.AllowedOrigins, b.AllowedOrigins, nil) &&
		sameSet(a.AllowedHeaders, b.AllowedHeaders, strings.ToLower) &&
		sameSet(a.ExposeHeaders, b.ExposeHeaders, strings.ToLower) &&
		aws.ToInt32(a.MaxAgeSeconds) == aws.ToInt32(b.MaxAgeSeconds)
}

// hasWandbCORSRule tells whether one of the rules is equivalent to W&B's.
func hasWandbCORSRule(rules []types.CORSRule) bool {
	want := wandbCORSRule()
	return slices.ContainsFunc(rules, func(r types.CORSRule) bool { return equivalentCORSRule(r, want) })
}

// mergeCORSRules returns rules with W&B's rule present. Others' rules are kept. A missing rule goes first:
// S3 answers a preflight with the first matching rule, and a broader rule of someone else's could
// otherwise hide W&B's exposed ETag header. changed is false when an equivalent rule is already there.
func mergeCORSRules(rules []types.CORSRule) (merged []types.CORSRule, changed bool) {
	if hasWandbCORSRule(rules) {
		return rules, false
	}
	// A drifted copy of our own rule is dropped rather than kept beside the fresh one.
	others := slices.DeleteFunc(slices.Clone(rules), func(r types.CORSRule) bool {
		return aws.ToString(r.ID) == wandbCORSRuleID
	})
	return append([]types.CORSRule{wandbCORSRule()}, others...), true
}

// describeCORSRules summarises rules for a finding.
func describeCORSRules(rules []types.CORSRule) string {
	if len(rules) == 0 {
		return "no CORS rules"
	}
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = describeCORSRule(r)
	}
	return strings.Join(parts, "; ")
}

func describeCORSRule(r types.CORSRule) string {
	return fmt.Sprintf("methods %s from origins %s, headers %s, exposing %s, max age %d s",
		strings.Join(r.AllowedMethods, ","), strings.Join(r.AllowedOrigins, ","),
		strings.Join(r.AllowedHeaders, ","), strings.Join(r.ExposeHeaders, ","), aws.ToInt32(r.MaxAgeSeconds))
}

// sameSet compares two lists as sets after applying norm (nil: as is) to each element.
func sameSet(a, b []string, norm func(string) string) bool {
	return slices.Equal(canonicalSet(a, norm), canonicalSet(b, norm))
}

func canonicalSet(ss []string, norm func(string) string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if norm != nil {
			s = norm(s)
		}
		out[i] = s
	}
	slices.Sort(out)
	return slices.Compact(out)
}
