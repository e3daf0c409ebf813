package gcsfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// policy is a bucket's IAM policy.
type policy struct {
	bindings []binding
	version  int
	etag     string
	serial   int // bumped on every write; the etag derives from it
}

type binding struct {
	Role      string     `json:"role"`
	Members   []string   `json:"members"`
	Condition *condition `json:"condition,omitempty"`
}

type condition struct {
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	Expression  string `json:"expression"`
	Location    string `json:"location,omitempty"`
}

// newPolicy is the policy GCS gives a new bucket: the project's convenience bindings.
func newPolicy(project string) policy {
	p := policy{version: 1, bindings: []binding{
		{Role: "roles/storage.legacyBucketOwner", Members: []string{"projectEditor:" + project, "projectOwner:" + project}},
		{Role: "roles/storage.legacyBucketReader", Members: []string{"projectViewer:" + project}},
	}}
	p.bump()
	return p
}

func (p *policy) bump() {
	p.serial++
	p.etag = base64.StdEncoding.EncodeToString([]byte("gcsfake-policy-" + strconv.Itoa(p.serial)))
}

func (p policy) hasConditions() bool {
	for _, b := range p.bindings {
		if b.Condition != nil {
			return true
		}
	}
	return false
}

func (b *bucket) renderPolicy() map[string]any {
	bindings := b.policy.bindings
	if bindings == nil {
		bindings = []binding{}
	}
	return map[string]any{
		"kind":       "storage#policy",
		"resourceId": "projects/_/buckets/" + b.res["name"].(string),
		"version":    b.policy.version,
		"etag":       b.policy.etag,
		"bindings":   bindings,
	}
}

// getPolicy serves GET /storage/v1/b/{bucket}/iam.
func (s *Server) getPolicy(r *http.Request, name string) (any, error) {
	requested := 1
	if v := r.URL.Query().Get("optionsRequestedPolicyVersion"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 1 && n != 3) {
			return nil, badRequest("optionsRequestedPolicyVersion %q must be 1 or 3", v)
		}
		requested = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if requested < 3 && b.policy.hasConditions() {
		return nil, badRequest("the policy has conditional role bindings: request policy version 3")
	}
	return b.renderPolicy(), nil
}

// memberPrefixes are the member types IAM accepts on a bucket.
var memberPrefixes = []string{
	"user:", "serviceAccount:", "group:", "domain:", "principal:", "principalSet:",
	"projectOwner:", "projectEditor:", "projectViewer:",
}

func validMember(m string) bool {
	if m == "allUsers" || m == "allAuthenticatedUsers" {
		return true
	}
	for _, p := range memberPrefixes {
		if rest, ok := strings.CutPrefix(m, p); ok && rest != "" {
			return true
		}
	}
	return false
}

// putPolicy serves PUT /storage/v1/b/{bucket}/iam: a stale etag gets 412, no etag overwrites.
func (s *Server) putPolicy(r *http.Request, name string) (any, error) {
	var in struct {
		Bindings []binding `json:"bindings"`
		Etag     string    `json:"etag"`
		Version  int       `json:"version"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, badRequest("policy: %v", err)
	}
	p := policy{version: in.Version}
	if p.version == 0 {
		p.version = 1
	}
	if p.version != 1 && p.version != 3 {
		return nil, badRequest("policy version %d must be 1 or 3", in.Version)
	}
	for i, b := range in.Bindings {
		if !strings.HasPrefix(b.Role, "roles/") && !strings.HasPrefix(b.Role, "projects/") && !strings.HasPrefix(b.Role, "organizations/") {
			return nil, badRequest("bindings[%d]: role %q is not a role name", i, b.Role)
		}
		for _, m := range b.Members {
			if !validMember(m) {
				return nil, badRequest("bindings[%d]: member %q is not a valid IAM member", i, m)
			}
		}
		if b.Condition != nil && b.Condition.Expression == "" {
			return nil, badRequest("bindings[%d]: a condition needs an expression", i)
		}
		if len(b.Members) > 0 { // IAM drops bindings without members
			p.bindings = append(p.bindings, b)
		}
	}
	if p.version < 3 && p.hasConditions() {
		return nil, badRequest("conditional role bindings need policy version 3")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if in.Etag != "" && in.Etag != b.policy.etag {
		return nil, &apiError{http.StatusPreconditionFailed, fmt.Sprintf("the policy's etag is %s, not %s: it changed since it was read", b.policy.etag, in.Etag)}
	}
	if pap, _ := b.res["iamConfiguration"].(map[string]any)["publicAccessPrevention"].(string); pap == "enforced" {
		for _, bd := range p.bindings {
			for _, m := range bd.Members {
				if m == "allUsers" || m == "allAuthenticatedUsers" {
					return nil, &apiError{http.StatusPreconditionFailed, "public access prevention is enforced on the bucket: " + m + " cannot be granted"}
				}
			}
		}
	}
	p.serial = b.policy.serial
	p.bump()
	b.policy = p
	return b.renderPolicy(), nil
}
