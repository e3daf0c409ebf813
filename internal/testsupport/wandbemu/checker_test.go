package wandbemu_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
)

func TestS3Checker(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	// A minimal S3 endpoint: HeadBucket is HEAD /<bucket> in path style.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKID/") {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		const rule = `<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>%s<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>`
		const all = `<AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedMethod>PUT</AllowedMethod>`
		_, cors := r.URL.Query()["cors"]
		switch {
		case cors && r.URL.Path == "/nocors":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `<Error><Code>NoSuchCORSConfiguration</Code><Message>The CORS configuration does not exist</Message></Error>`)
		case cors && r.URL.Path == "/noput":
			fmt.Fprintf(w, rule, `<AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>`)
		case cors:
			fmt.Fprintf(w, rule, all)
		case r.URL.Path == "/good" || r.URL.Path == "/nocors" || r.URL.Path == "/noput":
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/locked":
			w.WriteHeader(http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	chk := wandbemu.NewS3Checker(srv.URL, "", "AKID", "SECRET").ForS3Providers()
	tests := []struct {
		name     string
		sb       wandb.StorageBucket
		wantErr  string // "" means no error
		wantPath string // "" means no request
	}{
		{"exists (AWS)", wandb.StorageBucket{Name: "good", Provider: "AWS"}, "", "HEAD /good"},
		{"exists (MINIO)", wandb.StorageBucket{Name: "good", Provider: "MINIO"}, "", "HEAD /good"},
		{"exists (COREWEAVE)", wandb.StorageBucket{Name: "good", Provider: "COREWEAVE"}, "", "HEAD /good"},
		{"missing", wandb.StorageBucket{Name: "missing", Provider: "AWS"}, `bucket "missing" does not exist`, "HEAD /missing"},
		{"forbidden", wandb.StorageBucket{Name: "locked", Provider: "AWS"}, `bucket "locked" is not reachable`, "HEAD /locked"},
		{"no CORS", wandb.StorageBucket{Name: "nocors", Provider: "AWS"}, `bucket "nocors" has no CORS configuration`, "HEAD /nocors"},
		{"CORS without PUT", wandb.StorageBucket{Name: "noput", Provider: "MINIO"}, `no CORS rule allows GET, HEAD and PUT`, "HEAD /noput"},
		{"GCP not checkable", wandb.StorageBucket{Name: "good", Provider: "GCP"}, "cannot check GCP buckets", ""},
		{"AZURE not checkable", wandb.StorageBucket{Name: "good", Provider: "AZURE"}, "cannot check AZURE buckets", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			paths = nil
			mu.Unlock()
			err := chk.CheckBucket(t.Context(), tt.sb)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.wantPath == "" && len(paths) != 0 || tt.wantPath != "" && (len(paths) == 0 || paths[0] != tt.wantPath) {
				t.Fatalf("requests %v, want %q first", paths, tt.wantPath)
			}
		})
	}
}

func TestGCSChecker(t *testing.T) {
	const sa = "deploy@wandb-production.iam.gserviceaccount.com"
	good := `{"softDeletePolicy":{"retentionDurationSeconds":"604800"},"cors":[{"origin":["*"],"method":["GET","HEAD","PUT"],"responseHeader":["ETag"],"maxAgeSeconds":3000}]}`
	grant := `{"bindings":[{"role":"roles/storage.admin","members":["serviceAccount:` + sa + `"]}]}`
	buckets := map[string][2]string{ // bucket resource, IAM policy
		"good":       {good, grant},
		"nosoft":     {`{"cors":[{"origin":["*"],"method":["GET","HEAD","PUT"],"responseHeader":["ETag"]}]}`, grant},
		"softoff":    {strings.Replace(good, "604800", "0", 1), grant},
		"nocors":     {`{"softDeletePolicy":{"retentionDurationSeconds":"604800"}}`, grant},
		"noetag":     {strings.Replace(good, `"ETag"`, `"Content-Type"`, 1), grant},
		"nogrant":    {good, `{"bindings":[{"role":"roles/storage.objectAdmin","members":["serviceAccount:` + sa + `"]}]}`},
		"otheragent": {good, strings.Replace(grant, sa, "someone@example.com", 1)},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, iam := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/storage/v1/b/"), "/iam")
		b, ok := buckets[name]
		switch {
		case !ok:
			http.Error(w, `{"error":{"code":404}}`, http.StatusNotFound)
		case iam:
			fmt.Fprint(w, b[1])
		default:
			fmt.Fprint(w, b[0])
		}
	}))
	defer srv.Close()
	chk := wandbemu.GCSChecker{Endpoint: srv.URL, ServiceAccount: sa}
	for name, want := range map[string]string{
		"good":       "",
		"missing":    `bucket "missing" does not exist`,
		"nosoft":     "Bucket does not have soft deletion enabled",
		"softoff":    "Bucket does not have soft deletion enabled",
		"nocors":     "no CORS entry allows GET, HEAD and PUT",
		"noetag":     "no CORS entry allows GET, HEAD and PUT",
		"nogrant":    "lacks roles/storage.admin",
		"otheragent": "lacks roles/storage.admin",
	} {
		err := chk.CheckBucket(t.Context(), wandb.StorageBucket{Name: name, Provider: "GCP"})
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}
