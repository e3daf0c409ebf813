package gcsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// bucket is one stored bucket.
type bucket struct {
	project        string         // its id; GCS returns a number, made here from the id
	res            map[string]any // the settings as sent (merged), plus what GCS fills on insert
	metageneration int64
	created        time.Time
	updated        time.Time
	policy         policy
}

// kind is the JSON type a field takes.
type kind int

const (
	kString kind = iota
	kBool
	kInt64 // a JSON number or a decimal string, as the JSON API accepts for int64
	kObject
	kArray
	kMap // an object with arbitrary keys
)

// field describes one known field of the bucket resource.
type field struct {
	kind     kind
	fields   map[string]*field // kObject
	elem     *field            // kArray, kMap
	keyCheck func(string) error
	check    func(any) error
	// asString stores an int64 as a decimal string, as GCS returns int64 fields that the discovery
	// document marks format int64.
	asString bool
}

func str(check func(any) error) *field { return &field{kind: kString, check: check} }
func obj(fields map[string]*field) *field {
	return &field{kind: kObject, fields: fields}
}
func arr(elem *field) *field { return &field{kind: kArray, elem: elem} }

var (
	labelKeyRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	labelValueRE = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
	kmsKeyRE     = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$`)
)

// Soft delete retention GCS accepts: 0 (off) or 7 to 90 days.
const (
	minSoftDelete     = 7 * 24 * 3600
	maxSoftDelete     = 90 * 24 * 3600
	defaultSoftDelete = minSoftDelete
)

// bucketSchema lists every bucket field a client may send. Anything else is rejected.
var bucketSchema = obj(map[string]*field{
	"name":     str(nil),
	"location": str(nonEmpty),
	"storageClass": str(oneOf("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE",
		"MULTI_REGIONAL", "REGIONAL", "DURABLE_REDUCED_AVAILABILITY")),
	"labels": {
		kind: kMap,
		elem: str(matches(labelValueRE, "a label value: at most 63 lowercase letters, digits, '_' or '-'")),
		keyCheck: func(k string) error {
			return matches(labelKeyRE, "a label key: a lowercase letter, then at most 62 lowercase letters, digits, '_' or '-'")(k)
		},
	},
	"cors": arr(obj(map[string]*field{
		"origin":         arr(str(nonEmpty)),
		"method":         arr(str(nonEmpty)),
		"responseHeader": arr(str(nonEmpty)),
		"maxAgeSeconds":  {kind: kInt64, check: inRange(0, 1<<31-1)},
	})),
	"iamConfiguration": obj(map[string]*field{
		"uniformBucketLevelAccess": obj(map[string]*field{"enabled": {kind: kBool}}),
		"publicAccessPrevention":   str(oneOf("enforced", "inherited")),
	}),
	"softDeletePolicy": obj(map[string]*field{
		"retentionDurationSeconds": {kind: kInt64, asString: true, check: softDeleteRange},
	}),
	"encryption": obj(map[string]*field{
		"defaultKmsKeyName": str(matches(kmsKeyRE, "a key name projects/P/locations/L/keyRings/R/cryptoKeys/K")),
	}),
	"versioning": obj(map[string]*field{"enabled": {kind: kBool}}),
	// The Go client sends an empty lifecycle on insert; rules are not modelled, so any rule field is unknown.
	"lifecycle": obj(map[string]*field{"rule": arr(obj(nil))}),
})

func nonEmpty(v any) error {
	if v == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

func oneOf(allowed ...string) func(any) error {
	return func(v any) error {
		if !slices.Contains(allowed, v.(string)) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
		}
		return nil
	}
}

func matches(re *regexp.Regexp, what string) func(any) error {
	return func(v any) error {
		if !re.MatchString(v.(string)) {
			return fmt.Errorf("%q is not %s", v, what)
		}
		return nil
	}
}

func inRange(lo, hi int64) func(any) error {
	return func(v any) error {
		if n := v.(int64); n < lo || n > hi {
			return fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
		}
		return nil
	}
}

func softDeleteRange(v any) error {
	if n := v.(int64); n != 0 && (n < minSoftDelete || n > maxSoftDelete) {
		return fmt.Errorf("retention %d s must be 0 (off) or between %d (7 days) and %d (90 days)", n, minSoftDelete, maxSoftDelete)
	}
	return nil
}

// validate checks v against f and returns it in stored form. null is kept (it deletes in a PATCH).
func validate(path string, f *field, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	var (
		out any
		err error
	)
	switch f.kind {
	case kString:
		if _, ok := v.(string); !ok {
			return nil, badRequest("field %s: want a string, got %s", path, jsonType(v))
		}
		out = v
	case kBool:
		if _, ok := v.(bool); !ok {
			return nil, badRequest("field %s: want a boolean, got %s", path, jsonType(v))
		}
		out = v
	case kInt64:
		var n int64
		switch x := v.(type) {
		case json.Number:
			n, err = x.Int64()
		case string:
			n, err = strconv.ParseInt(x, 10, 64)
		default:
			return nil, badRequest("field %s: want an integer, got %s", path, jsonType(v))
		}
		if err != nil {
			return nil, badRequest("field %s: want an integer, got %v", path, v)
		}
		if f.check != nil {
			if err := f.check(n); err != nil {
				return nil, badRequest("field %s: %v", path, err)
			}
		}
		if f.asString {
			return strconv.FormatInt(n, 10), nil
		}
		return json.Number(strconv.FormatInt(n, 10)), nil
	case kObject, kMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, badRequest("field %s: want an object, got %s", path, jsonType(v))
		}
		res := make(map[string]any, len(m))
		for k, sub := range m {
			sf := f.elem
			if f.kind == kObject {
				if sf = f.fields[k]; sf == nil {
					return nil, badRequest("unknown field %s", join(path, k))
				}
			} else if err := f.keyCheck(k); err != nil {
				return nil, badRequest("field %s: %v", path, err)
			}
			if res[k], err = validate(join(path, k), sf, sub); err != nil {
				return nil, err
			}
		}
		return res, nil
	case kArray:
		a, ok := v.([]any)
		if !ok {
			return nil, badRequest("field %s: want an array, got %s", path, jsonType(v))
		}
		res := make([]any, len(a))
		for i, e := range a {
			p := fmt.Sprintf("%s[%d]", path, i)
			if e == nil {
				return nil, badRequest("field %s: null in an array", p)
			}
			if res[i], err = validate(p, f.elem, e); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	if f.check != nil {
		if err := f.check(out); err != nil {
			return nil, badRequest("field %s: %v", path, err)
		}
	}
	return out, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// mergePatch applies a JSON API patch: objects merge field by field, null deletes, anything else
// (arrays included) replaces.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			d, ok := dst[k].(map[string]any)
			if !ok {
				d = map[string]any{}
				dst[k] = d
			}
			mergePatch(d, pv)
		default:
			dst[k] = v
		}
	}
}

// prune removes empty objects and arrays, which GCS does not return (a bucket whose last label was
// deleted has no labels field).
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			prune(x)
			if len(x) == 0 {
				delete(m, k)
			}
		case []any:
			if len(x) == 0 {
				delete(m, k)
			}
		}
	}
}

// decodeBucket reads a request body and validates it against the bucket schema.
func decodeBucket(r *http.Request) (map[string]any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, badRequest("read body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, badRequest("body is not JSON: %v", err)
	}
	v, err := validate("", bucketSchema, raw)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	if m == nil {
		return nil, badRequest("body must be a bucket object")
	}
	return m, nil
}

// insertBucket serves POST /storage/v1/b?project=P.
func (s *Server) insertBucket(r *http.Request) (any, error) {
	q := r.URL.Query()
	project := q.Get("project")
	if project == "" {
		return nil, badRequest("required parameter project is missing")
	}
	if q.Get("predefinedAcl") != "" || q.Get("predefinedDefaultObjectAcl") != "" {
		return nil, badRequest("gcsfake does not model ACLs: predefinedAcl and predefinedDefaultObjectAcl are refused")
	}
	in, err := decodeBucket(r)
	if err != nil {
		return nil, err
	}
	name, _ := in["name"].(string)
	if name == "" {
		return nil, badRequest("field name is required")
	}
	loc, _ := in["location"].(string)
	if loc == "" {
		return nil, badRequest("field location is required (gcsfake does not default it to US)")
	}
	res := map[string]any{}
	mergePatch(res, in)
	res["location"] = strings.ToUpper(loc)
	fillDefaults(res)
	prune(res)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[name]; ok {
		return nil, &apiError{http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it."}
	}
	now := time.Now().UTC()
	b := &bucket{project: project, res: res, metageneration: 1, created: now, updated: now, policy: newPolicy(project)}
	setSoftDeleteEffective(res, nil, now)
	// Objects live in fake-gcs-server: the bucket must exist there too.
	s.objects.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	s.buckets[name] = b
	return b.render(), nil
}

// fillDefaults sets what GCS sets on a bucket inserted without it.
func fillDefaults(res map[string]any) {
	if _, ok := res["storageClass"]; !ok {
		res["storageClass"] = "STANDARD"
	}
	sd, _ := res["softDeletePolicy"].(map[string]any)
	if _, ok := sd["retentionDurationSeconds"]; !ok {
		res["softDeletePolicy"] = map[string]any{"retentionDurationSeconds": strconv.Itoa(defaultSoftDelete)}
	}
	iamc, _ := res["iamConfiguration"].(map[string]any)
	if iamc == nil {
		iamc = map[string]any{}
		res["iamConfiguration"] = iamc
	}
	if _, ok := iamc["uniformBucketLevelAccess"]; !ok {
		iamc["uniformBucketLevelAccess"] = map[string]any{"enabled": false}
	}
	if _, ok := iamc["publicAccessPrevention"]; !ok {
		iamc["publicAccessPrevention"] = "inherited"
	}
}

// setSoftDeleteEffective stamps softDeletePolicy.effectiveTime when the retention is new or changed,
// as GCS does.
func setSoftDeleteEffective(res, before map[string]any, now time.Time) {
	sd, _ := res["softDeletePolicy"].(map[string]any)
	if sd == nil {
		return
	}
	old, _ := before["softDeletePolicy"].(map[string]any)
	if old == nil || old["retentionDurationSeconds"] != sd["retentionDurationSeconds"] {
		sd["effectiveTime"] = now.Format(time.RFC3339Nano)
	}
}

// getBucket serves GET /storage/v1/b/{bucket}.
func (s *Server) getBucket(r *http.Request, name string) (any, error) {
	if err := refuseFields(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return b.render(), nil
}

// patchBucket serves PATCH /storage/v1/b/{bucket}, honouring ifMetagenerationMatch.
func (s *Server) patchBucket(r *http.Request, name string) (any, error) {
	if err := refuseFields(r); err != nil {
		return nil, err
	}
	in, err := decodeBucket(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if m := r.URL.Query().Get("ifMetagenerationMatch"); m != "" && m != strconv.FormatInt(b.metageneration, 10) {
		return nil, &apiError{http.StatusPreconditionFailed, fmt.Sprintf("metageneration is %d, not %s", b.metageneration, m)}
	}
	if n, ok := in["name"]; ok && n != name {
		return nil, badRequest("field name: a bucket cannot be renamed")
	}
	if l, ok := in["location"]; ok && (l == nil || !strings.EqualFold(l.(string), b.res["location"].(string))) {
		return nil, badRequest("field location: a bucket's location cannot be changed")
	}
	res := deepCopy(b.res)
	mergePatch(res, in)
	res["location"] = b.res["location"]
	prune(res)
	now := time.Now().UTC()
	setSoftDeleteEffective(res, b.res, now)
	b.res, b.updated = res, now
	b.metageneration++
	return b.render(), nil
}

// refuseFields refuses partial responses, which the fake does not implement.
func refuseFields(r *http.Request) error {
	if r.URL.Query().Get("fields") != "" {
		return &apiError{http.StatusNotImplemented, "gcsfake does not implement partial responses (fields=...)"}
	}
	return nil
}

// lookup returns a bucket; s.mu must be held.
func (s *Server) lookup(name string) (*bucket, error) {
	b, ok := s.buckets[name]
	if !ok {
		return nil, &apiError{http.StatusNotFound, "The specified bucket does not exist."}
	}
	return b, nil
}

// render returns the bucket resource as GCS returns it: the stored settings and the output-only fields.
func (b *bucket) render() map[string]any {
	out := deepCopy(b.res)
	name := out["name"].(string)
	maps.Copy(out, map[string]any{
		"kind":           "storage#bucket",
		"id":             name,
		"selfLink":       "https://www.googleapis.com/storage/v1/b/" + name,
		"projectNumber":  strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(b.project))), 10),
		"metageneration": strconv.FormatInt(b.metageneration, 10),
		"etag":           "CA" + strconv.FormatInt(b.metageneration, 10),
		"timeCreated":    b.created.Format(time.RFC3339Nano),
		"updated":        b.updated.Format(time.RFC3339Nano),
		"locationType":   "region",
	})
	return out
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}
