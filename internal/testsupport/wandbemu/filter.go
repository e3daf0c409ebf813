package wandbemu

import (
	"encoding/json"
	"fmt"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// maxBody bounds request bodies; SCIM bodies here are small.
const maxBody = 1 << 20

// parseEqFilter accepts exactly `<attr> eq "<value>"` with attr one of allowed (SCIM attribute names
// are case-insensitive) and returns the allowed spelling and the value. W&B documents nothing more.
func parseEqFilter(f string, allowed ...string) (attr, value string, err error) {
	a, rest, ok1 := strings.Cut(strings.TrimSpace(f), " ")
	op, lit, ok2 := strings.Cut(strings.TrimSpace(rest), " ")
	if !ok1 || !ok2 || !strings.EqualFold(op, "eq") || json.Unmarshal([]byte(strings.TrimSpace(lit)), &value) != nil {
		return "", "", fmt.Errorf(`filter %q is not supported: use %s eq "<value>"`, f, strings.Join(allowed, " or "))
	}
	for _, want := range allowed {
		if strings.EqualFold(a, want) {
			return want, value, nil
		}
	}
	return "", "", fmt.Errorf("filtering on %q is not supported: only %s", a, strings.Join(allowed, " or "))
}

// parsePatchPath splits a PATCH path like `members[value eq "<id>"]` into its attribute and filter value.
func parsePatchPath(p string) (attr, filterValue string, hasFilter bool, err error) {
	attr, rest, found := strings.Cut(p, "[")
	if !found {
		return strings.TrimSpace(p), "", false, nil
	}
	inner, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return "", "", false, fmt.Errorf("path %q: missing ]", p)
	}
	if _, filterValue, err = parseEqFilter(inner, "value"); err != nil {
		return "", "", false, fmt.Errorf("path %q: %w", p, err)
	}
	return strings.TrimSpace(attr), filterValue, true, nil
}

// paging reads startIndex (1-based) and count the way RFC 7644 3.4.2.4 says, capping count at the page size.
func (s *Server) paging(r *http.Request) (start, count int, err error) {
	start, count = 1, s.opts.MaxPageSize
	q := r.URL.Query()
	if v := q.Get("startIndex"); v != "" && !s.opts.IgnoreStartIndex {
		if start, err = strconv.Atoi(v); err != nil {
			return 0, 0, fmt.Errorf("startIndex %q is not an integer", v)
		}
		start = max(start, 1)
	}
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil {
			return 0, 0, fmt.Errorf("count %q is not an integer", v)
		}
		count = min(max(count, 0), s.opts.MaxPageSize)
	}
	return start, count, nil
}

// serveList answers a list request with the items match accepts (all when match is nil), the page
// from start (1-based) of at most count, each rendered by out. The caller holds s.mu.
func serveList[T, O any](w http.ResponseWriter, start, count int, items []T, match func(T) bool, out func(T) O) {
	var hits []T
	for _, it := range items {
		if match == nil || match(it) {
			hits = append(hits, it)
		}
	}
	var page []T
	if i := start - 1; i < len(hits) {
		page = hits[i:min(len(hits), i+count)]
	}
	res := make([]any, 0, len(page))
	for _, it := range page {
		res = append(res, out(it))
	}
	writeJSON(w, http.StatusOK, listResponse{
		Schemas: []string{wandb.SchemaListResponse}, TotalResults: len(hits), ItemsPerPage: len(res), StartIndex: start, Resources: res,
	})
}

// decodeBody reads a JSON request body into v, answering the error itself when it returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/scim+json" && mt != "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "", "Content-Type must be application/scim+json, not %q", r.Header.Get("Content-Type"))
		return false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "reading body: %v", err)
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "body is not valid JSON for this request: %v", err)
		return false
	}
	return true
}
