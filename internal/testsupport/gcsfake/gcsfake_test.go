package gcsfake

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
)

func newClient(t *testing.T, s *Server) *storage.Client {
	t.Helper()
	c, err := storage.NewClient(context.Background(), option.WithEndpoint(s.Endpoint()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// do sends a raw JSON request and returns the status and body.
func do(t *testing.T, s *Server, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

func status(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func TestClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	c := newClient(t, s)
	b := c.Bucket("b1")
	want := &storage.BucketAttrs{
		Location:                 "us-east1",
		Labels:                   map[string]string{"a": "1", "b": "2"},
		UniformBucketLevelAccess: storage.UniformBucketLevelAccess{Enabled: true},
		PublicAccessPrevention:   storage.PublicAccessPreventionEnforced,
		SoftDeletePolicy:         &storage.SoftDeletePolicy{RetentionDuration: 30 * 24 * time.Hour},
		CORS:                     []storage.CORS{{Origins: []string{"*"}, Methods: []string{"GET"}, ResponseHeaders: []string{"ETag"}, MaxAge: 3000 * time.Second}},
	}
	if err := b.Create(ctx, "proj", want); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := b.Create(ctx, "proj", want); status(err) != http.StatusConflict {
		t.Errorf("second create: %v, want 409", err)
	}
	got, err := b.Attrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Location != "US-EAST1" || !got.UniformBucketLevelAccess.Enabled || got.PublicAccessPrevention != storage.PublicAccessPreventionEnforced ||
		got.SoftDeletePolicy.RetentionDuration != 30*24*time.Hour || !reflect.DeepEqual(got.CORS, want.CORS) || !reflect.DeepEqual(got.Labels, want.Labels) {
		t.Errorf("attrs = %+v", got)
	}

	// Label deletion (null in the labels map) removes one label and keeps the others.
	ua := storage.BucketAttrsToUpdate{SoftDeletePolicy: &storage.SoftDeletePolicy{}, CORS: []storage.CORS{}}
	ua.DeleteLabel("a")
	ua.SetLabel("c", "3")
	if _, err := b.Update(ctx, ua); err != nil {
		t.Fatalf("update: %v", err)
	}
	raw := decode(t, s.Bucket("b1"))
	if !reflect.DeepEqual(raw["labels"], map[string]any{"b": "2", "c": "3"}) {
		t.Errorf("labels after delete = %v", raw["labels"])
	}
	if _, ok := raw["cors"]; ok {
		t.Errorf("cors after clearing = %v", raw["cors"])
	}
	if sd := raw["softDeletePolicy"].(map[string]any); sd["retentionDurationSeconds"] != "0" {
		t.Errorf("soft delete after turning off = %v", sd)
	}
	if iamc := raw["iamConfiguration"].(map[string]any); iamc["publicAccessPrevention"] != "enforced" {
		t.Errorf("patch of other fields lost iamConfiguration: %v", iamc)
	}

	// Objects go to fake-gcs-server.
	w := b.Object("p/x.txt").NewWriter(ctx)
	w.Write([]byte("hello"))
	if err := w.Close(); err != nil {
		t.Fatalf("write object: %v", err)
	}
	r, err := b.Object("p/x.txt").NewReader(ctx)
	if err != nil {
		t.Fatalf("read object: %v", err)
	}
	body, _ := io.ReadAll(r)
	r.Close()
	if string(body) != "hello" {
		t.Errorf("object = %q", body)
	}
	if err := b.Object("p/x.txt").Delete(ctx); err != nil {
		t.Fatalf("delete object: %v", err)
	}
	counts := s.Counts()
	for _, route := range []string{"POST /storage/v1/b", "GET /storage/v1/b/{bucket}", "PATCH /storage/v1/b/{bucket}",
		"POST /upload/storage/v1/b/{bucket}/o", "GET /{bucket}/{object}", "DELETE /storage/v1/b/{bucket}/o/{object}"} {
		if counts[route] == 0 {
			t.Errorf("no request counted for %s: %v", route, counts)
		}
	}
	if m := s.Mutations(); m != 5 { // 2 inserts, 1 patch, 1 upload, 1 delete
		t.Errorf("mutations = %d, want 5 (%v)", m, counts)
	}
}

func TestDefaults(t *testing.T) {
	s := Start(t)
	if code, body := do(t, s, "POST", "/storage/v1/b?project=p", `{"name":"d1","location":"eu"}`); code != 200 {
		t.Fatalf("insert: %d %s", code, body)
	}
	raw := decode(t, s.Bucket("d1"))
	sd := raw["softDeletePolicy"].(map[string]any)
	iamc := raw["iamConfiguration"].(map[string]any)
	if raw["location"] != "EU" || raw["storageClass"] != "STANDARD" || sd["retentionDurationSeconds"] != "604800" || sd["effectiveTime"] == nil ||
		iamc["publicAccessPrevention"] != "inherited" || iamc["uniformBucketLevelAccess"].(map[string]any)["enabled"] != false {
		t.Errorf("defaults = %v", raw)
	}
	if _, ok := raw["labels"]; ok {
		t.Errorf("labels on a bucket inserted without any: %v", raw["labels"])
	}
}

func TestRejects(t *testing.T) {
	s := Start(t)
	if code, body := do(t, s, "POST", "/storage/v1/b?project=p", `{"name":"r1","location":"us"}`); code != 200 {
		t.Fatalf("insert: %d %s", code, body)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"unknown top-level field", "PATCH", "/storage/v1/b/r1", `{"cros":[]}`, 400, "unknown field cros"},
		{"unsupported field", "PATCH", "/storage/v1/b/r1", `{"retentionPolicy":{"retentionPeriod":"1"}}`, 400, "unknown field retentionPolicy"},
		{"unknown nested field", "PATCH", "/storage/v1/b/r1", `{"cors":[{"origins":["*"]}]}`, 400, "unknown field cors[0].origins"},
		{"output-only field", "PATCH", "/storage/v1/b/r1", `{"softDeletePolicy":{"effectiveTime":"x"}}`, 400, "unknown field softDeletePolicy.effectiveTime"},
		{"wrong type", "PATCH", "/storage/v1/b/r1", `{"iamConfiguration":{"uniformBucketLevelAccess":{"enabled":"yes"}}}`, 400, "want a boolean"},
		{"soft delete too short", "PATCH", "/storage/v1/b/r1", `{"softDeletePolicy":{"retentionDurationSeconds":"86400"}}`, 400, "between"},
		{"soft delete too long", "PATCH", "/storage/v1/b/r1", `{"softDeletePolicy":{"retentionDurationSeconds":7776001}}`, 400, "between"},
		{"bad public access prevention", "PATCH", "/storage/v1/b/r1", `{"iamConfiguration":{"publicAccessPrevention":"on"}}`, 400, "not one of"},
		{"bad label value", "PATCH", "/storage/v1/b/r1", `{"labels":{"team":"ML"}}`, 400, "label value"},
		{"bad label key", "PATCH", "/storage/v1/b/r1", `{"labels":{"1x":"a"}}`, 400, "label key"},
		{"bad kms key", "PATCH", "/storage/v1/b/r1", `{"encryption":{"defaultKmsKeyName":"k"}}`, 400, "key name"},
		{"location change", "PATCH", "/storage/v1/b/r1", `{"location":"eu"}`, 400, "cannot be changed"},
		{"stale metageneration", "PATCH", "/storage/v1/b/r1?ifMetagenerationMatch=7", `{}`, 412, "metageneration"},
		{"missing bucket", "GET", "/storage/v1/b/nope", ``, 404, "does not exist"},
		{"insert without project", "POST", "/storage/v1/b", `{"name":"r2","location":"us"}`, 400, "project"},
		{"insert without location", "POST", "/storage/v1/b?project=p", `{"name":"r2"}`, 400, "location is required"},
		{"insert empty location", "POST", "/storage/v1/b?project=p", `{"name":"r2","location":""}`, 400, "must not be empty"},
		{"insert unknown field", "POST", "/storage/v1/b?project=p", `{"name":"r2","location":"us","website":{}}`, 400, "unknown field website"},
		{"unimplemented endpoint", "GET", "/storage/v1/b/r1/acl", ``, 501, "does not implement"},
		{"unknown policy field", "PUT", "/storage/v1/b/r1/iam", `{"bindings":[],"audit":1}`, 400, "unknown field"},
		{"bad member", "PUT", "/storage/v1/b/r1/iam", `{"bindings":[{"role":"roles/storage.admin","members":["me@x.com"]}]}`, 400, "not a valid IAM member"},
		{"condition without version 3", "PUT", "/storage/v1/b/r1/iam", `{"bindings":[{"role":"roles/storage.admin","members":["user:a@x.com"],"condition":{"expression":"true"}}]}`, 400, "version 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, s, tt.method, tt.path, tt.body)
			if code != tt.status || !strings.Contains(body, tt.msg) {
				t.Errorf("%s %s %s = %d %s, want %d containing %q", tt.method, tt.path, tt.body, code, body, tt.status, tt.msg)
			}
		})
	}
	if raw := decode(t, s.Bucket("r1")); raw["metageneration"] != "1" {
		t.Errorf("a rejected patch changed the bucket: %v", raw)
	}
	if s.Bucket("r2") != nil {
		t.Error("a rejected insert created the bucket")
	}
}

func TestPolicyEtag(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	c := newClient(t, s)
	b := c.Bucket("i1")
	if err := b.Create(ctx, "proj", &storage.BucketAttrs{Location: "us"}); err != nil {
		t.Fatal(err)
	}
	h := b.IAM().V3()
	p1, err := h.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Bindings) != 2 {
		t.Errorf("new bucket's bindings = %v, want the two convenience bindings", p1.Bindings)
	}
	p2, err := h.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p1.Bindings = append(p1.Bindings, &iampb.Binding{Role: "roles/storage.admin", Members: []string{"serviceAccount:a@p.iam.gserviceaccount.com"}})
	if err := h.SetPolicy(ctx, p1); err != nil {
		t.Fatalf("set with a fresh etag: %v", err)
	}
	p2.Bindings = nil
	if err := h.SetPolicy(ctx, p2); status(err) != http.StatusPreconditionFailed {
		t.Errorf("set with a stale etag: %v, want 412", err)
	}
	raw := decode(t, s.Policy("i1"))
	if n := len(raw["bindings"].([]any)); n != 3 || raw["version"] != float64(3) {
		t.Errorf("policy after a stale write = %v", raw)
	}
	// Public access prevention forbids public members.
	if _, err := b.Update(ctx, storage.BucketAttrsToUpdate{PublicAccessPrevention: storage.PublicAccessPreventionEnforced}); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, s, "PUT", "/storage/v1/b/i1/iam", `{"bindings":[{"role":"roles/storage.objectViewer","members":["allUsers"]}]}`); code != 412 {
		t.Errorf("public grant with prevention enforced = %d %s", code, body)
	}
}

func TestFault(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	c := newClient(t, s)
	s.SetFault(func(r *http.Request) (int, bool) {
		return http.StatusForbidden, Route(r) == "GET /storage/v1/b/{bucket}"
	})
	if _, err := c.Bucket("f1").Attrs(ctx); status(err) != http.StatusForbidden {
		t.Errorf("attrs with a fault = %v, want 403", err)
	}
	s.SetFault(nil)
	if _, err := c.Bucket("f1").Attrs(ctx); !errors.Is(err, storage.ErrBucketNotExist) {
		t.Errorf("attrs without the fault = %v, want ErrBucketNotExist", err)
	}
	if got := s.Counts()["GET /storage/v1/b/{bucket}"]; got != 2 {
		t.Errorf("counted %d gets, want 2 (faulted requests count too)", got)
	}
	s.ResetCounts()
	if len(s.Counts()) != 0 {
		t.Errorf("counts after reset = %v", s.Counts())
	}
}

func TestInjector(t *testing.T) {
	s := Start(t)
	if code, body := do(t, s, "POST", "/storage/v1/b?project=p", `{"name":"j1","location":"us-east1"}`); code != 200 {
		t.Fatalf("insert = %d %s", code, body)
	}
	// Every request about bucket j1, bucket and object routes alike, fails without reaching the fake.
	s.SetInjector(testenv.NewFaults(testenv.FaultOptions{Rate: 1, Kinds: []testenv.FaultKind{testenv.FaultUnavailable},
		Select: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/j1") }}))
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/storage/v1/b/j1", ""},
		{"POST", "/upload/storage/v1/b/j1/o?uploadType=media&name=probe", "data"},
	} {
		if code, body := do(t, s, req.method, req.path, req.body); code != 503 {
			t.Errorf("%s %s with the injector = %d %s, want 503", req.method, req.path, code, body)
		}
	}
	if code, _ := do(t, s, "GET", "/storage/v1/b/other", ""); code != 404 {
		t.Errorf("a request the injector does not select = %d, want the fake's 404", code)
	}
	s.SetInjector(nil)
	if code, _ := do(t, s, "GET", "/storage/v1/b/j1/o/probe", ""); code != 404 {
		t.Errorf("the failed upload stored an object: GET = %d, want 404", code)
	}
	if code, body := do(t, s, "POST", "/upload/storage/v1/b/j1/o?uploadType=media&name=probe", "data"); code != 200 {
		t.Errorf("upload without the injector = %d %s", code, body)
	}
	if code, _ := do(t, s, "GET", "/storage/v1/b/j1/o/probe", ""); code != 200 {
		t.Errorf("GET of the uploaded object = %d, want 200", code)
	}
	if got := s.Counts()["POST /upload/storage/v1/b/{bucket}/o"]; got != 2 {
		t.Errorf("counted %d uploads, want 2 (failed requests count too)", got)
	}
}

func TestRoute(t *testing.T) {
	tests := []struct{ method, target, want string }{
		{"POST", "/storage/v1/b?project=p", "POST /storage/v1/b"},
		{"GET", "/storage/v1/b/x?alt=json", "GET /storage/v1/b/{bucket}"},
		{"PATCH", "/storage/v1/b/x", "PATCH /storage/v1/b/{bucket}"},
		{"PUT", "/storage/v1/b/x/iam", "PUT /storage/v1/b/{bucket}/iam"},
		{"GET", "/storage/v1/b/x/o", "GET /storage/v1/b/{bucket}/o"},
		{"DELETE", "/storage/v1/b/x/o/a%2Fb", "DELETE /storage/v1/b/{bucket}/o/{object}"},
		{"POST", "/upload/storage/v1/b/x/o?uploadType=multipart", "POST /upload/storage/v1/b/{bucket}/o"},
		{"GET", "/download/storage/v1/b/x/o/a", "GET /download/storage/v1/b/{bucket}/o/{object}"},
		{"GET", "/x/a/b", "GET /{bucket}/{object}"},
		{"GET", "/storage/v1/b/x/acl", "GET /storage/v1/b/{bucket}/acl"},
	}
	for _, tt := range tests {
		if got := Route(httptest.NewRequest(tt.method, tt.target, nil)); got != tt.want {
			t.Errorf("Route(%s %s) = %q, want %q", tt.method, tt.target, got, tt.want)
		}
	}
}
