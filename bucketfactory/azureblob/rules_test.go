package azureblob

import (
	"maps"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/byob-agent/byob-agent/bucketfactory"
)

func rule(origins, methods, headers, exposed string, maxAge int32) *service.CORSRule {
	return &service.CORSRule{AllowedOrigins: to.Ptr(origins), AllowedMethods: to.Ptr(methods), AllowedHeaders: to.Ptr(headers),
		ExposedHeaders: to.Ptr(exposed), MaxAgeInSeconds: to.Ptr(maxAge)}
}

func TestMergeCORSRules(t *testing.T) {
	foreign := rule("https://app.example", "POST", "x-custom", "", 60)
	tests := []struct {
		name    string
		rules   []*service.CORSRule
		want    []*service.CORSRule // nil: unchanged
		wantErr string
	}{
		{name: "none", rules: nil, want: []*service.CORSRule{wandbCORSRule()}},
		{name: "foreign kept after ours", rules: []*service.CORSRule{foreign}, want: []*service.CORSRule{wandbCORSRule(), foreign}},
		{name: "ours present", rules: []*service.CORSRule{foreign, wandbCORSRule()}},
		{name: "equivalent spelling", rules: []*service.CORSRule{rule("*", "put, get,HEAD", "*", "*", 3000)}},
		{name: "duplicate list items", rules: []*service.CORSRule{rule("*", "GET,HEAD,PUT,GET", "*", "*", 3000)}},
		{name: "methods differ", rules: []*service.CORSRule{rule("*", "GET,PUT", "*", "*", 3000)},
			want: []*service.CORSRule{wandbCORSRule(), rule("*", "GET,PUT", "*", "*", 3000)}},
		{name: "max age differs", rules: []*service.CORSRule{rule("*", "GET,HEAD,PUT", "*", "*", 600)},
			want: []*service.CORSRule{wandbCORSRule(), rule("*", "GET,HEAD,PUT", "*", "*", 600)}},
		{name: "exposed headers differ", rules: []*service.CORSRule{rule("*", "GET,HEAD,PUT", "*", "ETag", 3000)},
			want: []*service.CORSRule{wandbCORSRule(), rule("*", "GET,HEAD,PUT", "*", "ETag", 3000)}},
		{name: "five foreign rules: no room", rules: []*service.CORSRule{foreign, foreign, foreign, foreign, foreign}, wantErr: "5 CORS rules, Azure's maximum"},
		{name: "five rules with ours", rules: []*service.CORSRule{foreign, foreign, foreign, foreign, wandbCORSRule()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := mergeCORSRules(tt.rules)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != (tt.want != nil) {
				t.Fatalf("changed = %v, want %v", changed, tt.want != nil)
			}
			want := tt.want
			if want == nil {
				want = tt.rules
			}
			if describeCORSRules(got) != describeCORSRules(want) {
				t.Errorf("merged:\n %s\nwant:\n %s", describeCORSRules(got), describeCORSRules(want))
			}
		})
	}
}

func TestMergeRetention(t *testing.T) {
	policy := func(enabled bool, days int32) *service.RetentionPolicy {
		p := &service.RetentionPolicy{Enabled: to.Ptr(enabled)}
		if enabled {
			p.Days = to.Ptr(days)
		}
		return p
	}
	tests := []struct {
		name    string
		got     *service.RetentionPolicy
		changed bool
		want    string
	}{
		{"never set", nil, true, "on, 7 days"},
		{"off", policy(false, 0), true, "on, 7 days"},
		{"shorter is raised", policy(true, 3), true, "on, 7 days"},
		{"equal", policy(true, 7), false, "on, 7 days"},
		{"longer is kept", policy(true, 30), false, "on, 30 days"},
	}
	for _, tt := range tests {
		got, changed := mergeRetention(tt.got, 7)
		if changed != tt.changed || describeRetention(got) != tt.want {
			t.Errorf("%s: mergeRetention = %s, changed %v; want %s, changed %v", tt.name, describeRetention(got), changed, tt.want, tt.changed)
		}
		if retentionOK(got, 7) != true {
			t.Errorf("%s: merged retention %s does not pass the check", tt.name, describeRetention(got))
		}
	}
	kept, _ := mergeRetention(&service.RetentionPolicy{Enabled: to.Ptr(false), AllowPermanentDelete: to.Ptr(true)}, 7)
	if !deref(kept.AllowPermanentDelete) {
		t.Error("mergeRetention dropped AllowPermanentDelete")
	}
}

func TestMergeMarks(t *testing.T) {
	team := bucketfactory.Bucket{Team: "ml"}
	tests := []struct {
		name    string
		md      map[string]string
		want    map[string]string
		changed bool
	}{
		{"empty", nil, map[string]string{"managed_by": "byob-agent", "byob_agent_team": "ml"}, true},
		{"others kept", map[string]string{"CostCenter": "42"}, map[string]string{"CostCenter": "42", "managed_by": "byob-agent", "byob_agent_team": "ml"}, true},
		{"present as the SDK spells it", map[string]string{"Managed_by": "byob-agent", "Byob_agent_team": "ml"}, map[string]string{"Managed_by": "byob-agent", "Byob_agent_team": "ml"}, false},
		{"wrong value replaced once", map[string]string{"Managed_by": "someone", "byob_agent_team": "ml"}, map[string]string{"managed_by": "byob-agent", "byob_agent_team": "ml"}, true},
	}
	for _, tt := range tests {
		got, changed := mergeMarks(tt.md, ownershipMarks(team))
		if changed != tt.changed || !maps.Equal(got, tt.want) {
			t.Errorf("%s: mergeMarks = %v, changed %v; want %v, changed %v", tt.name, got, changed, tt.want, tt.changed)
		}
	}
}

func TestForeignMark(t *testing.T) {
	perTeam := bucketfactory.Bucket{Team: "ml", Profile: "p"}
	shared := bucketfactory.Bucket{Team: "ml", Profile: "p", Shared: true}
	tests := []struct {
		name string
		b    bucketfactory.Bucket
		md   map[string]string
		want string
	}{
		{"unmarked", perTeam, map[string]string{"x": "y"}, ""},
		{"ours", perTeam, map[string]string{"Byob_agent_team": "ml"}, ""},
		{"other team", perTeam, map[string]string{"byob_agent_team": "nlp"}, `marked for team "nlp"`},
		{"shared container taken per team", perTeam, map[string]string{"byob_agent_shared": "p"}, `marked as the shared container of profile "p"`},
		{"ours shared", shared, map[string]string{"byob_agent_shared": "p"}, ""},
		{"other profile", shared, map[string]string{"byob_agent_shared": "q"}, `marked as the shared container of profile "q"`},
		{"a team's container taken as shared", shared, map[string]string{"byob_agent_team": "ml"}, `marked for team "ml"`},
	}
	for _, tt := range tests {
		if got := foreignMark(tt.md, tt.b); got != tt.want {
			t.Errorf("%s: foreignMark = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseConnectionString(t *testing.T) {
	const key = "a2V5a2V5a2V5a2V5+/8=="
	tests := []struct {
		name, s string
		want    connString
		wantErr string
	}{
		{name: "blob endpoint", s: "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:1/acct;",
			want: connString{account: "acct", key: key, endpoint: "http://127.0.0.1:1/acct"}},
		{name: "suffix", s: "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + key + ";EndpointSuffix=core.chinacloudapi.cn",
			want: connString{account: "acct", key: key, endpoint: "https://acct.blob.core.chinacloudapi.cn/"}},
		{name: "names without case", s: "accountname=acct;ACCOUNTKEY=" + key, want: connString{account: "acct", key: key}},
		{name: "SAS only", s: "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2020&sig=abc", wantErr: "must hold AccountName and AccountKey"},
		{name: "development storage", s: "UseDevelopmentStorage=true", wantErr: "not supported"},
		{name: "garbage", s: "AccountName=acct;" + key[:10], wantErr: "without '='"},
	}
	for _, tt := range tests {
		got, err := parseConnectionString(tt.s)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), key[:10]) {
				t.Errorf("%s: error repeats the key: %v", tt.name, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: parse = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}
