package server

import (
	"net/url"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// project applies the attributes and excludedAttributes query parameters (Entra sends
// excludedAttributes=members), which the library ignores. id, schemas and meta are always sent.
func (s scope) project(attrs map[string]any, q url.Values) map[string]any {
	include, exclude := s.refs(q.Get("attributes")), s.refs(q.Get("excludedAttributes"))
	if include == nil && exclude == nil {
		return attrs
	}
	src := asMap(deepCopy(attrs))
	out := src
	if include != nil {
		out = map[string]any{}
		for _, r := range include {
			r.copy(out, src)
		}
	}
	for _, r := range exclude {
		r.remove(out)
	}
	return out
}

// attrRef names an attribute in an attributes list: ext ("" for core), name, optional sub.
type attrRef struct{ ext, name, sub string }

func (s scope) refs(param string) []attrRef {
	var out []attrRef
	for raw := range strings.SplitSeq(param, ",") {
		raw = strings.TrimSpace(raw)
		if ext, ok := s.ext(raw); ok {
			out = append(out, attrRef{name: ext})
			continue
		}
		p, err := filter.ParseAttrPath([]byte(raw))
		if err != nil {
			continue
		}
		ext, a, err := s.resolve(p)
		if err != nil {
			continue
		}
		r := attrRef{ext: ext, name: a.Name()}
		if p.SubAttribute != nil {
			if r.sub, err = subAttr(a, *p.SubAttribute); err != nil {
				continue
			}
		}
		out = append(out, r)
	}
	return out
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
