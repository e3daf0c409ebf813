package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	scimerr "github.com/elimity-com/scim/errors"
	filter "github.com/scim2/filter-parser/v2"
)

// Caps on the attributes and excludedAttributes parameters: IdPs send one or two names, and each
// entry costs a parse.
const (
	maxAttrList    = 1024 // bytes of one parameter
	maxAttrEntries = 32   // comma-separated entries of one parameter
)

// attrListParses counts parses of attribute lists, so tests can bound them per request.
var attrListParses atomic.Int64

// projection is a request's parsed attributes and excludedAttributes (RFC 7644 section 3.4.2.5),
// which the library ignores (Entra sends excludedAttributes=members). A nil projection, or one with
// neither list, returns every attribute. id, schemas and meta are always sent.
type projection struct{ include, exclude []attrRef }

type projectionKey struct{}

func projectionFrom(ctx context.Context) *projection {
	p, _ := ctx.Value(projectionKey{}).(*projection)
	return p
}

// parseProjection parses the request's attribute lists once, for every resource it renders.
func (s scope) parseProjection(q url.Values) (*projection, *scimerr.ScimError) {
	var p projection
	for _, l := range []struct {
		param string
		dst   *[]attrRef
	}{{"attributes", &p.include}, {"excludedAttributes", &p.exclude}} {
		refs, err := s.refs(q.Get(l.param))
		if err != nil {
			e := scimerr.ScimError{Status: http.StatusBadRequest, ScimType: err.scimType, Detail: l.param + ": " + err.detail}
			return nil, &e
		}
		*l.dst = refs
	}
	return &p, nil
}

// shows says whether the projection keeps attribute name (a core one) at all.
func (p *projection) shows(name string) bool {
	if p == nil {
		return true
	}
	is := func(r attrRef) bool { return r.ext == "" && r.name == name }
	if slices.ContainsFunc(p.exclude, func(r attrRef) bool { return is(r) && r.sub == "" }) {
		return false
	}
	return p.include == nil || slices.ContainsFunc(p.include, is)
}

// project applies the projection to a resource's attributes.
func (p *projection) project(attrs map[string]any) map[string]any {
	if p == nil || (p.include == nil && p.exclude == nil) {
		return attrs
	}
	src := asMap(deepCopy(attrs))
	out := src
	if p.include != nil {
		out = map[string]any{}
		for _, r := range p.include {
			r.copy(out, src)
		}
	}
	for _, r := range p.exclude {
		r.remove(out)
	}
	return out
}

// attrRef names an attribute in an attributes list: ext ("" for core), name, optional sub.
type attrRef struct{ ext, name, sub string }

type listError struct {
	scimType scimerr.ScimType
	detail   string
}

// refs parses an attribute list: capped, de-duplicated; names the scope lacks are ignored (RFC 7644
// leaves that open, and an IdP may ask for attributes this server does not keep).
func (s scope) refs(param string) ([]attrRef, *listError) {
	if param == "" {
		return nil, nil
	}
	attrListParses.Add(1)
	if len(param) > maxAttrList {
		return nil, &listError{scimerr.ScimTypeInvalidValue, fmt.Sprintf("longer than %d bytes", maxAttrList)}
	}
	if n := strings.Count(param, ",") + 1; n > maxAttrEntries {
		return nil, &listError{scimerr.ScimTypeTooMany, fmt.Sprintf("%d entries, more than %d", n, maxAttrEntries)}
	}
	out := []attrRef{}
	for raw := range strings.SplitSeq(param, ",") {
		r, ok := s.ref(strings.TrimSpace(raw))
		if ok && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s scope) ref(raw string) (attrRef, bool) {
	if ext, ok := s.ext(raw); ok {
		return attrRef{name: ext}, true
	}
	p, err := filter.ParseAttrPath([]byte(raw))
	if err != nil {
		return attrRef{}, false
	}
	ext, a, err := s.resolve(p)
	if err != nil {
		return attrRef{}, false
	}
	r := attrRef{ext: ext, name: a.Name()}
	if p.SubAttribute != nil {
		if r.sub, err = subAttr(a, *p.SubAttribute); err != nil {
			return attrRef{}, false
		}
	}
	return r, true
}

func (r attrRef) copy(dst, src map[string]any) {
	v, ok := container(src, r.ext, false)[r.name]
	if !ok {
		return
	}
	dc := container(dst, r.ext, true)
	switch v := v.(type) {
	case map[string]any:
		if r.sub == "" {
			dc[r.name] = v
		} else if x, ok := v[r.sub]; ok {
			obj := asMap(dc[r.name])
			if obj == nil {
				obj = map[string]any{}
				dc[r.name] = obj
			}
			obj[r.sub] = x
		}
	case []any:
		if r.sub == "" {
			dc[r.name] = v
			return
		}
		// Element-wise, so emails.value and emails.type requested together stay paired.
		cur, _ := dc[r.name].([]any)
		if len(cur) != len(v) {
			cur = make([]any, len(v))
			for i := range cur {
				cur[i] = map[string]any{}
			}
			dc[r.name] = cur
		}
		for i, el := range v {
			if x, ok := asMap(el)[r.sub]; ok {
				asMap(cur[i])[r.sub] = x
			}
		}
	default:
		if r.sub == "" {
			dc[r.name] = v
		}
	}
}

func (r attrRef) remove(m map[string]any) {
	c := container(m, r.ext, false)
	switch v := c[r.name].(type) {
	case nil:
	case map[string]any:
		if r.sub != "" {
			delete(v, r.sub)
			break
		}
		delete(c, r.name)
	case []any:
		if r.sub == "" {
			delete(c, r.name)
		}
		for _, el := range v {
			delete(asMap(el), r.sub)
		}
	default:
		if r.sub == "" {
			delete(c, r.name)
		}
	}
	if r.ext != "" && c != nil && len(c) == 0 {
		delete(m, r.ext)
	}
}
