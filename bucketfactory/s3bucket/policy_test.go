package s3bucket

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

const testPrincipal = "arn:aws:iam::725579432336:role/WandbIntegration"

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

func TestEqualPolicyJSON(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"identical", `{"Action":["s3:A","s3:B"]}`, `{"Action":["s3:A","s3:B"]}`, true},
		{"list order", `{"Action":["s3:A","s3:B"]}`, `{"Action":["s3:B","s3:A"]}`, true},
		{"string vs one-element list", `{"Resource":"*"}`, `{"Resource":["*"]}`, true},
		{"duplicates", `{"Action":["s3:A","s3:A"]}`, `{"Action":"s3:A"}`, true},
		{"principal list order", `{"Principal":{"AWS":["x","y"]}}`, `{"Principal":{"AWS":["y","x"]}}`, true},
		{"different action", `{"Action":["s3:A"]}`, `{"Action":["s3:B"]}`, false},
		{"missing key", `{"Action":"s3:A","Condition":{}}`, `{"Action":"s3:A"}`, false},
		{"statement lists keep their order", `{"Statement":[{"Sid":"a"},{"Sid":"b"}]}`, `{"Statement":[{"Sid":"b"},{"Sid":"a"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := equalPolicyJSON(decodeJSON(t, tt.a), decodeJSON(t, tt.b)); got != tt.want {
				t.Errorf("equalPolicyJSON(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestMergeStatements(t *testing.T) {
	ours := wandbBucketStatement("aws", "b", testPrincipal)
	oursJSON := mustMarshal(ours)
	// The same statement as a person might write it: other order, single strings.
	oursReordered := `{"Sid":"WandbAccess","Effect":"Allow","Principal":{"AWS":["` + testPrincipal + `"]},
		"Resource":["arn:aws:s3:::b/*","arn:aws:s3:::b"],"Action":["s3:GetBucketVersioning","s3:GetObject*",
		"s3:GetEncryptionConfiguration","s3:ListBucket","s3:ListBucketMultipartUploads","s3:ListBucketVersions",
		"s3:AbortMultipartUpload","s3:DeleteObject","s3:PutObject","s3:GetBucketCORS","s3:GetBucketLocation"]}`
	other := `{"Sid":"Other","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}`
	drifted := `{"Sid":"WandbAccess","Effect":"Allow","Principal":{"AWS":"` + testPrincipal + `"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}`

	tests := []struct {
		name        string
		doc         string
		wantChanged bool
		wantSids    []string // Sids of the merged policy, in order
		wantErr     bool
	}{
		{"no policy", "", true, []string{"WandbAccess"}, false},
		{"ours already", `{"Version":"2012-10-17","Statement":[` + oursJSON + `]}`, false, []string{"WandbAccess"}, false},
		// SeaweedFS returns the stored document with a trailing newline.
		{"ours with trailing newline", `{"Version":"2012-10-17","Statement":[` + oursJSON + "]}\n", false, []string{"WandbAccess"}, false},
		{"ours written differently", `{"Version":"2012-10-17","Statement":[` + other + `,` + oursReordered + `]}`, false, []string{"Other", "WandbAccess"}, false},
		{"others only", `{"Version":"2012-10-17","Statement":[` + other + `]}`, true, []string{"Other", "WandbAccess"}, false},
		{"single statement object", `{"Version":"2012-10-17","Statement":` + other + `}`, true, []string{"Other", "WandbAccess"}, false},
		{"ours drifted is replaced in place", `{"Version":"2012-10-17","Statement":[` + drifted + `,` + other + `]}`, true, []string{"WandbAccess", "Other"}, false},
		{"not JSON", `{"Statement":`, false, nil, true},
		{"statement not an object", `{"Statement":["x"]}`, false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged, changed, err := mergeStatements(tt.doc, []statement{ours})
			if (err != nil) != tt.wantErr {
				t.Fatalf("mergeStatements error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if !changed && merged != tt.doc {
				t.Errorf("unchanged policy was rewritten:\n got %s\nwant %s", merged, tt.doc)
			}
			stmts, err := policyStatements(decodeJSON(t, merged))
			if err != nil {
				t.Fatal(err)
			}
			var sids []string
			for _, s := range stmts {
				sids = append(sids, s["Sid"].(string))
				if s["Sid"] == wandbSid && !equalPolicyJSON(s, decodeJSON(t, oursJSON)) {
					t.Errorf("merged W&B statement = %v, want %s", s, oursJSON)
				}
			}
			if !slices.Equal(sids, tt.wantSids) {
				t.Errorf("merged Sids = %v, want %v", sids, tt.wantSids)
			}
		})
	}
}

func TestKeyPolicyStatements(t *testing.T) {
	doc := decodeJSON(t, newPolicy(keyPolicyStatements("aws", "111122223333", testPrincipal)))
	want := decodeJSON(t, `{"Version":"2012-10-17","Statement":[
		{"Sid":"EnableRootAccess","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
		{"Sid":"WandbAccess","Effect":"Allow","Principal":{"AWS":"`+testPrincipal+`"},
		 "Action":["kms:Decrypt","kms:Describe*","kms:Encrypt","kms:ReEncrypt*","kms:GenerateDataKey*"],"Resource":"*"}]}`)
	if !equalPolicyJSON(doc, want) {
		t.Errorf("key policy = %v, want %v", doc, want)
	}
}

func TestMissingGrants(t *testing.T) {
	stmt := func(effect, principal, action, resource string) statement {
		return statement{"Effect": effect, "Principal": map[string]any{"AWS": principal}, "Action": action, "Resource": resource}
	}
	ours := wandbBucketStatement("aws", "b", testPrincipal)
	cw := testCoreWeaveFactory().bucketGrants("b")
	cwWandb, cwOrgWide := cw[0].stmt, cw[1].stmt
	with := func(s statement, key string, value any) statement {
		c := maps.Clone(s)
		if value == nil {
			delete(c, key)
		} else {
			c[key] = value
		}
		return c
	}
	all := 2 * len(wandbBucketActions)
	tests := []struct {
		name  string
		stmts []statement
		want  statement // the grant looked for
		n     int       // number of missing action-resource pairs
	}{
		{"W&B statement", []statement{ours}, ours, 0},
		{"s3:* on bucket wildcard", []statement{stmt("Allow", testPrincipal, "s3:*", "arn:aws:s3:::b*")}, ours, 0},
		{"actions are case-insensitive", []statement{stmt("Allow", testPrincipal, "S3:*", "*")}, ours, 0},
		{"conditions of others are not evaluated", []statement{with(ours, "Condition", map[string]any{"Bool": map[string]any{"aws:SecureTransport": "true"}})}, ours, 0},
		{"only objects", []statement{stmt("Allow", testPrincipal, "s3:*", "arn:aws:s3:::b/*")}, ours, len(wandbBucketActions)},
		{"another principal", []statement{stmt("Allow", "arn:aws:iam::1:root", "s3:*", "*")}, ours, all},
		{"anonymous does not count", []statement{{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}}, ours, all},
		{"deny wins", []statement{ours, stmt("Deny", testPrincipal, "s3:PutObject", "*")}, ours, 2},
		{"no statements", nil, ours, all},
		{"CW statement", []statement{cwWandb}, cwWandb, 0},
		{"CW principal given as AWS", []statement{with(cwWandb, "Principal", map[string]any{"AWS": cwPrincipal})}, cwWandb, all},
		{"CW statement without the org condition", []statement{with(cwWandb, "Condition", nil)}, cwWandb, all},
		{"CW statement for another org", []statement{with(cwWandb, "Condition", map[string]any{"StringLike": map[string]any{"wandb:OrgID": "other-org"}})}, cwWandb, all},
		{"CW condition as a single string", []statement{with(cwWandb, "Condition", map[string]any{"StringLike": map[string]any{"wandb:OrgID": testOrgID}})}, cwWandb, 0},
		{"org-wide s3:*", []statement{cwWandb, cwOrgWide}, cwOrgWide, 0},
		{"org-wide missing", []statement{cwWandb}, cwOrgWide, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Round-trip through JSON: policies are read back from S3 as decoded JSON.
			var decoded []statement
			if err := json.Unmarshal([]byte(mustMarshal(tt.stmts)), &decoded); err != nil {
				t.Fatal(err)
			}
			got := missingGrants(decoded, tt.want)
			if len(got) != tt.n {
				t.Errorf("missingGrants = %d %v, want %d", len(got), got, tt.n)
			}
		})
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"s3:GetObject*", "s3:GetObject*", true},
		{"s3:GetObject*", "s3:GetObjectTagging", true},
		{"s3:*", "s3:PutObject", true},
		{"*", "", true},
		{"s3:Get?bject", "s3:GetObject", true},
		{"s3:Get?bject", "s3:Getbject", false},
		{"arn:aws:s3:::b/*", "arn:aws:s3:::b", false},
		{"arn:aws:s3:::b*", "arn:aws:s3:::b/*", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"abc", "abcd", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestARNParts(t *testing.T) {
	tests := []struct {
		arn, partition, account string
	}{
		{"arn:aws:kms:eu-central-1:111122223333:key/abc", "aws", "111122223333"},
		{"arn:aws-cn:iam::123456789012:role/x", "aws-cn", "123456789012"},
		{"not-an-arn", "aws", ""},
	}
	for _, tt := range tests {
		if got := arnPartition(tt.arn); got != tt.partition {
			t.Errorf("arnPartition(%q) = %q, want %q", tt.arn, got, tt.partition)
		}
		if got := arnAccount(tt.arn); got != tt.account {
			t.Errorf("arnAccount(%q) = %q, want %q", tt.arn, got, tt.account)
		}
	}
	if got := strings.Join(bucketResources("aws-cn", "b"), " "); got != "arn:aws-cn:s3:::b arn:aws-cn:s3:::b/*" {
		t.Errorf("bucketResources = %s", got)
	}
}
