package s3bucket

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/byob-agent/byob-agent/team"
)

// IAM policy pieces. Policies are handled as generic JSON so that statements others wrote round-trip
// unchanged; only the statement with the agent's Sid is ever replaced.

const (
	policyVersion = "2012-10-17"
	wandbSid      = "WandbAccess"
	rootSid       = "EnableRootAccess"
)

// wandbBucketActions are the S3 actions W&B needs on its bucket (docs/wandb.md).
var wandbBucketActions = []string{
	"s3:GetObject*", "s3:GetEncryptionConfiguration", "s3:ListBucket", "s3:ListBucketMultipartUploads",
	"s3:ListBucketVersions", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject",
	"s3:GetBucketCORS", "s3:GetBucketLocation", "s3:GetBucketVersioning",
}

// wandbKeyActions are the KMS actions W&B needs on the bucket's key.
var wandbKeyActions = []string{"kms:Decrypt", "kms:Describe*", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"}

type statement = map[string]any

// bucketResources are the two ARNs W&B needs access to: the bucket and every object in it.
func bucketResources(partition, bucket string) []string {
	arn := fmt.Sprintf("arn:%s:s3:::%s", partition, bucket)
	return []string{arn, arn + "/*"}
}

// wandbBucketStatement grants the W&B principal its actions on the bucket and its objects.
func wandbBucketStatement(partition, bucket, principal string) statement {
	return statement{
		"Sid":       wandbSid,
		"Effect":    "Allow",
		"Principal": map[string]any{"AWS": principal},
		"Action":    toAnySlice(wandbBucketActions),
		"Resource":  toAnySlice(bucketResources(partition, bucket)),
	}
}

// policyGrant is one statement W&B's recipe puts into the bucket policy, and how Check names and
// describes it.
type policyGrant struct {
	check string // CheckResult name
	what  string // "<principal> <access> on the bucket and its objects"
	stmt  statement
}

// bucketGrants are the statements the profile's bucket policy must hold.
func (f *Factory) bucketGrants(bucket string) []policyGrant {
	stmt := wandbBucketStatement(f.partition, bucket, f.principal)
	what := fmt.Sprintf("%s W&B's %d actions on the bucket and its objects", f.principal, len(wandbBucketActions))
	if f.provider == team.ProviderCoreWeave {
		return f.coreWeaveGrants(stmt, what, bucket)
	}
	return []policyGrant{{check: "policy", what: what, stmt: stmt}}
}

// keyPolicyStatements are W&B's key policy: the account root administers the key, W&B uses it.
func keyPolicyStatements(partition, account, principal string) []statement {
	return []statement{
		{
			"Sid":       rootSid,
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": fmt.Sprintf("arn:%s:iam::%s:root", partition, account)},
			"Action":    "kms:*",
			"Resource":  "*",
		},
		{
			"Sid":       wandbSid,
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": principal},
			"Action":    toAnySlice(wandbKeyActions),
			"Resource":  "*",
		},
	}
}

// newPolicy is a policy document holding exactly the given statements.
func newPolicy(stmts []statement) string {
	doc := map[string]any{"Version": policyVersion, "Statement": stmtsToAny(stmts)}
	return mustMarshal(doc)
}

// mergeStatements returns the policy doc with each wanted statement present: a statement with the same
// Sid that differs is replaced in place, a missing one is appended, every other statement is kept.
// changed is false when doc already holds them all (compared structurally, see equalPolicyJSON).
// An empty doc is a policy with no statements.
func mergeStatements(doc string, want []statement) (merged string, changed bool, err error) {
	if strings.TrimSpace(doc) == "" {
		return newPolicy(want), true, nil
	}
	m, stmts, err := parsePolicy(doc)
	if err != nil {
		return "", false, err
	}
	for _, w := range want {
		i := slices.IndexFunc(stmts, func(s statement) bool { return s["Sid"] == w["Sid"] })
		switch {
		case i < 0:
			stmts = append(stmts, w)
			changed = true
		case !equalPolicyJSON(stmts[i], w):
			stmts[i] = w
			changed = true
		}
	}
	if !changed {
		return doc, false, nil
	}
	if _, ok := m["Version"]; !ok {
		m["Version"] = policyVersion
	}
	m["Statement"] = stmtsToAny(stmts)
	return mustMarshal(m), true, nil
}

// parsePolicy decodes a policy document and its statements.
func parsePolicy(doc string) (map[string]any, []statement, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		return nil, nil, fmt.Errorf("a policy that does not parse: %w", err)
	}
	if m == nil {
		return nil, nil, fmt.Errorf("a policy that is JSON null, not an object")
	}
	stmts, err := policyStatements(m)
	if err != nil {
		return nil, nil, err
	}
	return m, stmts, nil
}

// policyStatements returns a parsed policy's statements; IAM allows a single statement object in place
// of the list.
func policyStatements(doc map[string]any) ([]statement, error) {
	switch s := doc["Statement"].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return []statement{s}, nil
	case []any:
		out := make([]statement, 0, len(s))
		for _, v := range s {
			st, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("policy statement is %T, want an object", v)
			}
			out = append(out, st)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("policy Statement is %T, want a list or an object", s)
	}
}

// equalPolicyJSON compares two decoded policy fragments as IAM reads them: a string equals a list
// holding only it, and lists of strings (actions, resources, principals, condition values) are sets.
func equalPolicyJSON(a, b any) bool {
	return reflect.DeepEqual(normalizePolicyJSON(a), normalizePolicyJSON(b))
}

func normalizePolicyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalizePolicyJSON(x)
		}
		return out
	case string:
		return []string{v}
	case []any:
		strs := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok { // a list of objects (statements): order kept
				out := make([]any, len(v))
				for i, y := range v {
					out[i] = normalizePolicyJSON(y)
				}
				return out
			}
			strs = append(strs, s)
		}
		slices.Sort(strs)
		return slices.Compact(strs)
	default:
		return v
	}
}

// stringSet reads an IAM field that may be a string or a list of strings.
func stringSet(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// missingGrants returns each "action on resource" that the wanted statement grants and stmts do not
// allow its principal (or explicitly deny). Wildcards in the policy's actions and resources are honoured;
// conditions are not evaluated, but when the wanted statement has one, only an Allow under the same
// condition counts (CoreWeave's wandb:OrgID is what keeps other W&B organisations out).
func missingGrants(stmts []statement, want statement) []string {
	key, principal := soleEntry(want["Principal"])
	var missing []string
	for _, a := range stringSet(want["Action"]) {
		for _, r := range stringSet(want["Resource"]) {
			if !allows(stmts, key, principal, want["Condition"], a, r) {
				missing = append(missing, a+" on "+r)
			}
		}
	}
	return missing
}

func allows(stmts []statement, key, principal string, condition any, action, resource string) bool {
	allowed := false
	for _, s := range stmts {
		if !namesPrincipal(s["Principal"], key, principal) ||
			!slices.ContainsFunc(stringSet(s["Action"]), func(p string) bool { return wildcardMatch(strings.ToLower(p), strings.ToLower(action)) }) ||
			!slices.ContainsFunc(stringSet(s["Resource"]), func(p string) bool { return wildcardMatch(p, resource) }) {
			continue
		}
		switch s["Effect"] {
		case "Deny":
			return false
		case "Allow":
			if condition == nil || equalPolicyJSON(s["Condition"], condition) {
				allowed = true
			}
		}
	}
	return allowed
}

// namesPrincipal tells whether a statement's Principal is exactly the given principal of the given kind
// ("AWS", "CW") or includes it. "*" does not count: W&B's access must be granted explicitly.
func namesPrincipal(p any, key, principal string) bool {
	m, ok := p.(map[string]any)
	return ok && slices.Contains(stringSet(m[key]), principal)
}

// soleEntry returns the one key and value of a principal the agent built ({"AWS": arn}).
func soleEntry(p any) (key, value string) {
	for k, v := range p.(map[string]any) {
		return k, v.(string)
	}
	return "", ""
}

// wildcardMatch matches IAM-style patterns: '*' is any run of characters, '?' any one character.
func wildcardMatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			pattern = strings.TrimLeft(pattern, "*")
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if wildcardMatch(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
		}
		pattern, s = pattern[1:], s[1:]
	}
	return s == ""
}

// arnPartition returns the partition of an ARN ("aws", "aws-cn", "aws-us-gov"); "aws" if it has none.
func arnPartition(arn string) string {
	parts := strings.SplitN(arn, ":", 3)
	if len(parts) == 3 && parts[0] == "arn" && parts[1] != "" {
		return parts[1]
	}
	return "aws"
}

// arnAccount returns the account field of an ARN, or "".
func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 {
		return parts[4]
	}
	return ""
}

func toAnySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func stmtsToAny(stmts []statement) []any {
	out := make([]any, len(stmts))
	for i, s := range stmts {
		out[i] = s
	}
	return out
}

func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil { // decoded JSON and maps of strings always marshal
		panic(fmt.Sprintf("s3bucket: marshal policy: %v", err))
	}
	return string(b)
}
