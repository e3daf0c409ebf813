package testenv

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// InterceptPolicies makes the S3 proxy answer PUT, GET and DELETE ?policy of every bucket whose name
// starts with prefix itself, from memory, instead of passing them to SeaweedFS, which refuses CoreWeave's
// {"CW": ...} principal. A PUT is stored only after a strict validation (see validatePolicy); a refused
// one gets S3's 400 MalformedPolicy. The requests are counted like any other. Only path-style requests
// are recognised; signatures are not checked, but a request without an Authorization header is refused.
// It may be called again with more prefixes.
func (e *S3Env) InterceptPolicies(prefix string) {
	e.policies.addPrefix(prefix)
	e.s3p.setIntercept(e.policies.serve)
}

// InterceptedPolicy returns the policy document stored for an intercepted bucket, exactly as it was put.
func (e *S3Env) InterceptedPolicy(bucket string) (doc string, ok bool) {
	return e.policies.get(bucket)
}

// policyStore holds the bucket policies of intercepted buckets. The zero value is ready to use.
type policyStore struct {
	mu       sync.Mutex
	prefixes []string
	docs     map[string]string // by bucket
}

func (s *policyStore) addPrefix(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.prefixes, prefix) {
		s.prefixes = append(s.prefixes, prefix)
	}
}

func (s *policyStore) get(bucket string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.docs[bucket]
	return doc, ok
}

// maxPolicySize is S3's limit on a bucket policy (20 KB).
const maxPolicySize = 20 << 10

// serve answers r when it is a ?policy request on an intercepted bucket, and tells whether it did.
func (s *policyStore) serve(w http.ResponseWriter, r *http.Request) bool {
	bucket, ok := s.intercepted(r)
	if !ok {
		return false
	}
	if r.Header.Get("Authorization") == "" {
		writeS3Error(w, http.StatusForbidden, "AccessDenied", "Anonymous access is refused", bucket)
		return true
	}
	switch r.Method {
	case http.MethodGet:
		doc, ok := s.get(bucket)
		if !ok {
			writeS3Error(w, http.StatusNotFound, "NoSuchBucketPolicy", "The bucket policy does not exist", bucket)
			return true
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, doc)
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPolicySize+1))
		switch {
		case err != nil:
			writeS3Error(w, http.StatusBadRequest, "IncompleteBody", err.Error(), bucket)
			return true
		case len(body) > maxPolicySize:
			writeS3Error(w, http.StatusBadRequest, "PolicyTooLarge", fmt.Sprintf("Policies must be at most %d bytes", maxPolicySize), bucket)
			return true
		}
		if err := validatePolicy(bucket, body); err != nil {
			writeS3Error(w, http.StatusBadRequest, "MalformedPolicy", err.Error(), bucket)
			return true
		}
		s.mu.Lock()
		if s.docs == nil {
			s.docs = map[string]string{}
		}
		s.docs[bucket] = string(body)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		s.mu.Lock()
		delete(s.docs, bucket)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource", bucket)
	}
	return true
}

// intercepted returns the bucket of a path-style bucket-level ?policy request on an intercepted bucket.
func (s *policyStore) intercepted(r *http.Request) (string, bool) {
	if _, ok := r.URL.Query()["policy"]; !ok {
		return "", false
	}
	bucket := strings.Trim(r.URL.Path, "/")
	if bucket == "" || strings.Contains(bucket, "/") {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return bucket, slices.ContainsFunc(s.prefixes, func(p string) bool { return strings.HasPrefix(bucket, p) })
}

func writeS3Error(w http.ResponseWriter, status int, code, message, bucket string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	xml.NewEncoder(w).Encode(struct {
		XMLName    xml.Name `xml:"Error"`
		Code       string
		Message    string
		BucketName string
	}{Code: code, Message: message, BucketName: bucket})
}

// Keys a policy and its statements may have; anything else (NotAction, NotPrincipal, a misspelling) is refused.
var (
	policyKeys    = []string{"Version", "Id", "Statement"}
	statementKeys = []string{"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}
)

// validatePolicy checks a bucket policy more strictly than S3 does: a JSON object with Version
// 2012-10-17 and a non-empty Statement list (or one statement object); each statement with an Effect of
// Allow or Deny, a Principal naming exactly one of AWS or CW, s3: actions, resources that are the bucket
// or objects in it, a well-formed Condition if any, and a Sid unique in the policy. Unknown keys at
// either level are refused; key names are case-sensitive.
func validatePolicy(bucket string, doc []byte) error {
	var top map[string]json.RawMessage
	if err := decodeStrict(doc, &top); err != nil {
		return fmt.Errorf("policy is not a JSON object: %w", err)
	}
	if err := onlyKeys(top, policyKeys, "policy"); err != nil {
		return err
	}
	var version string
	if err := json.Unmarshal(top["Version"], &version); err != nil || version != "2012-10-17" {
		return fmt.Errorf("policy Version must be \"2012-10-17\", got %s", orMissing(top["Version"]))
	}
	raw := top["Statement"]
	var stmts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &stmts); err != nil {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(raw, &one); err != nil || one == nil {
			return fmt.Errorf("policy Statement must be a list of objects or one object, got %s", orMissing(raw))
		}
		stmts = []map[string]json.RawMessage{one}
	}
	if len(stmts) == 0 {
		return errors.New("policy has no statements")
	}
	sids := map[string]bool{}
	for i, st := range stmts {
		if err := validateStatement(bucket, st, sids); err != nil {
			return fmt.Errorf("statement %d: %w", i, err)
		}
	}
	return nil
}

func validateStatement(bucket string, st map[string]json.RawMessage, sids map[string]bool) error {
	if st == nil {
		return errors.New("statement is null")
	}
	if err := onlyKeys(st, statementKeys, "statement"); err != nil {
		return err
	}
	if raw, ok := st["Sid"]; ok {
		var sid string
		if err := json.Unmarshal(raw, &sid); err != nil {
			return fmt.Errorf("Sid must be a string, got %s", raw)
		}
		if sids[sid] {
			return fmt.Errorf("Sid %q is not unique", sid)
		}
		sids[sid] = true
	}
	var effect string
	if err := json.Unmarshal(st["Effect"], &effect); err != nil || (effect != "Allow" && effect != "Deny") {
		return fmt.Errorf("Effect must be \"Allow\" or \"Deny\", got %s", orMissing(st["Effect"]))
	}
	var principal map[string]json.RawMessage
	if err := json.Unmarshal(st["Principal"], &principal); err != nil || len(principal) != 1 {
		return fmt.Errorf("Principal must be an object with exactly one of AWS or CW, got %s", orMissing(st["Principal"]))
	}
	for kind, raw := range principal {
		if kind != "AWS" && kind != "CW" {
			return fmt.Errorf("Principal kind %q is neither AWS nor CW", kind)
		}
		if _, err := stringOrList(raw, "Principal "+kind); err != nil {
			return err
		}
	}
	actions, err := stringOrList(st["Action"], "Action")
	if err != nil {
		return err
	}
	for _, a := range actions {
		if !strings.HasPrefix(a, "s3:") {
			return fmt.Errorf("Action %q is not an s3: action", a)
		}
	}
	resources, err := stringOrList(st["Resource"], "Resource")
	if err != nil {
		return err
	}
	arn := "arn:aws:s3:::" + bucket
	for _, res := range resources {
		if res != arn && !strings.HasPrefix(res, arn+"/") {
			return fmt.Errorf("Resource %q is neither %s nor an object in it", res, arn)
		}
	}
	if raw, ok := st["Condition"]; ok {
		var cond map[string]map[string]json.RawMessage
		if err := json.Unmarshal(raw, &cond); err != nil || len(cond) == 0 {
			return fmt.Errorf("Condition must map operators to objects of keys and values, got %s", raw)
		}
		for op, keys := range cond {
			if len(keys) == 0 {
				return fmt.Errorf("Condition operator %s has no keys", op)
			}
			for k, v := range keys {
				if _, err := stringOrList(v, "Condition "+op+" "+k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stringOrList reads an IAM field that is a non-empty string or a non-empty list of non-empty strings.
func stringOrList(raw json.RawMessage, what string) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil && one != "" {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 || slices.Contains(list, "") {
		return nil, fmt.Errorf("%s must be a non-empty string or list of non-empty strings, got %s", what, orMissing(raw))
	}
	return list, nil
}

// decodeStrict decodes exactly one JSON value from doc.
func decodeStrict(doc []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

func onlyKeys(m map[string]json.RawMessage, allowed []string, what string) error {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("unknown %s key %q (allowed: %s)", what, k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func orMissing(raw json.RawMessage) string {
	if raw == nil {
		return "nothing"
	}
	return string(raw)
}
