package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

var (
	enterpriseUser = schema.ExtensionEnterpriseUser()
	userScope      = newScope(schema.CoreUserSchema(), enterpriseUser)
	groupScope     = newScope(groupSchema())
)

// groupSchema is the core Group schema with displayName declared unique, as this server enforces.
func groupSchema() schema.Schema {
	s := schema.CoreGroupSchema()
	s.Attributes = slices.Clone(s.Attributes)
	for i, a := range s.Attributes {
		if a.Name() == "displayName" {
			s.Attributes[i] = schema.SimpleCoreAttribute(schema.SimpleStringParams(schema.StringParams{
				Description: optional.NewString("A human-readable name for the Group, unique among groups (case-insensitively): it names the W&B team. REQUIRED."),
				Name:        "displayName",
				Required:    true,
				Uniqueness:  schema.AttributeUniquenessServer(),
			}))
		}
	}
	return s
}

// scope is what the filters, PATCH paths and attribute lists of one resource type may name: the
// core schema plus the common id and externalId, and the schema extensions. Values live in a
// map keyed by canonical attribute names, extension attributes under the extension's URN.
type scope struct {
	core  schema.Schema
	attrs schema.Attributes
	exts  []schema.Schema
}

func newScope(core schema.Schema, exts ...schema.Schema) scope {
	attrs := slices.Clone(core.Attributes)
	for _, a := range schema.CommonAttributes() {
		if a.Name() == "id" || a.Name() == "externalId" {
			attrs = append(attrs, a)
		}
	}
	return scope{core: core, attrs: attrs, exts: exts}
}

// within is the scope of a multi-valued attribute's elements, for value filters.
func within(a schema.CoreAttribute) scope { return scope{attrs: a.SubAttributes()} }

func (s scope) ext(uri string) (string, bool) {
	for _, e := range s.exts {
		if strings.EqualFold(e.ID, uri) {
			return e.ID, true
		}
	}
	return "", false
}

// resolve finds the attribute a path names, and the extension URN holding it ("" for core).
func (s scope) resolve(p filter.AttributePath) (string, schema.CoreAttribute, error) {
	attrs, ext := s.attrs, ""
	if uri := p.URI(); uri != "" && !strings.EqualFold(uri, s.core.ID) {
		i := slices.IndexFunc(s.exts, func(e schema.Schema) bool { return strings.EqualFold(e.ID, uri) })
		if i < 0 {
			return "", schema.CoreAttribute{}, fmt.Errorf("unknown schema %q", uri)
		}
		attrs, ext = s.exts[i].Attributes, s.exts[i].ID
	}
	a, ok := attrs.ContainsAttribute(p.AttributeName)
	if !ok {
		return "", schema.CoreAttribute{}, fmt.Errorf("unknown attribute %q", p.AttributeName)
	}
	return ext, a, nil
}

// subAttr finds a sub-attribute by name, case-insensitively.
func subAttr(a schema.CoreAttribute, name string) (string, error) {
	sub, ok := a.SubAttributes().ContainsAttribute(name)
	if !ok {
		return "", fmt.Errorf("%s has no sub-attribute %q", a.Name(), name)
	}
	return sub.Name(), nil
}

// container is the map holding ext's attributes (the resource itself for core); nil if absent
// and not created.
func container(m map[string]any, ext string, create bool) map[string]any {
	if ext == "" {
		return m
	}
	c := asMap(m[ext])
	if c == nil && create {
		c = map[string]any{}
		m[ext] = c
	}
	return c
}

// predicate reports whether a resource (as attributes, with "id") matches a filter.
type predicate func(map[string]any) bool

type filterKey struct{}

func filterFrom(ctx context.Context) predicate {
	if p, ok := ctx.Value(filterKey{}).(predicate); ok {
		return p
	}
	return func(map[string]any) bool { return true }
}

// maxFilter bounds a filter's length: IdPs send a few dozen bytes, and parsing takes time in
// proportion (tens of microseconds a byte for nested parentheses).
const maxFilter = 2048

// parseFilter compiles a filter. Any filter it cannot evaluate exactly is an error, answered as
// 400 invalidFilter.
func (s scope) parseFilter(text string) (predicate, error) {
	if len(text) > maxFilter {
		return nil, fmt.Errorf("filter longer than %d bytes", maxFilter)
	}
	e, err := filter.ParseFilter([]byte(text))
	if err != nil {
		var ok bool
		if e, ok = subValuePath(text); !ok {
			return nil, err
		}
	}
	return s.compile(e)
}

// subValuePath parses `emails[type eq "work"].value eq "x"`, which Entra sends but RFC 7644's
// grammar (and so the parser) lacks, as `emails[type eq "work" and value eq "x"]`.
func subValuePath(text string) (filter.Expression, bool) {
	open := strings.IndexByte(text, '[')
	end := closingBracket(text, open)
	if end < 0 {
		return nil, false
	}
	rest, ok := strings.CutPrefix(text[end+1:], ".")
	if !ok {
		return nil, false
	}
	path, err := filter.ParseAttrPath([]byte(strings.TrimSpace(text[:open])))
	if err != nil || path.SubAttribute != nil {
		return nil, false
	}
	inner, err := filter.ParseFilter([]byte(text[open+1 : end]))
	if err != nil {
		return nil, false
	}
	tail, err := filter.ParseAttrExp([]byte(rest))
	if err != nil || tail.AttributePath.URIPrefix != nil || tail.AttributePath.SubAttribute != nil {
		return nil, false
	}
	return &filter.ValuePath{AttributePath: path, ValueFilter: &filter.LogicalExpression{Left: inner, Right: &tail, Operator: filter.AND}}, true
}

// closingBracket is the index of the "]" closing the "[" at open, skipping quoted strings; -1 if none.
func closingBracket(s string, open int) int {
	if open < 0 {
		return -1
	}
	quoted := false
	for i := open + 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ']':
			return i
		}
	}
	return -1
}

func (s scope) compile(e filter.Expression) (predicate, error) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		return s.compileAttr(e)
	case *filter.NotExpression:
		inner, err := s.compile(e.Expression)
		if err != nil {
			return nil, err
		}
		return func(m map[string]any) bool { return !inner(m) }, nil
	case *filter.LogicalExpression:
		left, err := s.compile(e.Left)
		if err != nil {
			return nil, err
		}
		right, err := s.compile(e.Right)
		if err != nil {
			return nil, err
		}
		switch strings.ToLower(string(e.Operator)) {
		case "and":
			return func(m map[string]any) bool { return left(m) && right(m) }, nil
		case "or":
			return func(m map[string]any) bool { return left(m) || right(m) }, nil
		}
	case *filter.ValuePath:
		ext, a, err := s.resolve(e.AttributePath)
		if err != nil {
			return nil, err
		}
		if e.AttributePath.SubAttribute != nil || !a.MultiValued() || !a.HasSubAttributes() {
			return nil, fmt.Errorf("%s cannot take a value filter", a.Name())
		}
		inner, err := within(a).compile(e.ValueFilter)
		if err != nil {
			return nil, err
		}
		return func(m map[string]any) bool {
			return slices.ContainsFunc(list(container(m, ext, false)[a.Name()]), func(el any) bool { return inner(asMap(el)) })
		}, nil
	}
	return nil, fmt.Errorf("unsupported filter %v", e)
}

// compileAttr compiles `attr op value`. A multi-valued attribute matches when any value does; a
// multi-valued complex one without sub-attribute compares its "value" (`members eq "id"`).
func (s scope) compileAttr(e *filter.AttributeExpression) (predicate, error) {
	ext, a, err := s.resolve(e.AttributePath)
	if err != nil {
		return nil, err
	}
	op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
	leaf, sub := a, e.AttributePath.SubAttributeName()
	if sub == "" && a.HasSubAttributes() && a.MultiValued() && op != filter.PR {
		sub = "value"
	}
	if sub != "" {
		var ok bool
		if leaf, ok = a.SubAttributes().ContainsAttribute(sub); !ok {
			return nil, fmt.Errorf("%s has no sub-attribute %q", a.Name(), sub)
		}
		sub = leaf.Name()
	}
	test, err := comparison(op, e.CompareValue, leaf)
	if err != nil {
		return nil, err
	}
	values := func(m map[string]any) []any {
		vs := list(container(m, ext, false)[a.Name()])
		if sub == "" {
			return vs
		}
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = asMap(v)[sub]
		}
		return out
	}
	if op == filter.NE {
		return func(m map[string]any) bool { return !slices.ContainsFunc(values(m), test) }, nil
	}
	return func(m map[string]any) bool { return slices.ContainsFunc(values(m), test) }, nil
}

// comparison tests one value; for ne it tests equality (the caller negates). Strings compare
// case-insensitively unless the attribute is caseExact (userName and displayName are not).
func comparison(op filter.CompareOperator, want any, a schema.CoreAttribute) (func(any) bool, error) {
	if op == filter.PR {
		return present, nil
	}
	switch a.AttributeType() {
	case "string", "reference":
		raw, ok := want.(string)
		if !ok {
			break
		}
		w, err := unescape(raw)
		if err != nil {
			return nil, err
		}
		fold := func(s string) string { return s }
		if !a.CaseExact() {
			fold = strings.ToLower
		}
		str := func(pred func(got string) bool) func(any) bool {
			return func(v any) bool { s, ok := v.(string); return ok && pred(s) }
		}
		switch op {
		case filter.EQ, filter.NE:
			if a.CaseExact() {
				return str(func(s string) bool { return s == w }), nil
			}
			return str(func(s string) bool { return strings.EqualFold(s, w) }), nil
		case filter.CO:
			return str(func(s string) bool { return strings.Contains(fold(s), fold(w)) }), nil
		case filter.SW:
			return str(func(s string) bool { return strings.HasPrefix(fold(s), fold(w)) }), nil
		case filter.EW:
			return str(func(s string) bool { return strings.HasSuffix(fold(s), fold(w)) }), nil
		}
	case "boolean":
		w, ok := want.(bool)
		if ok && (op == filter.EQ || op == filter.NE) {
			return func(v any) bool { return v == w }, nil
		}
	}
	return nil, fmt.Errorf("%s %s %v is not supported", a.Name(), op, want)
}

// unescape decodes a filter string literal: the parser keeps its JSON escapes.
func unescape(raw string) (string, error) {
	var s string
	if err := json.Unmarshal([]byte(`"`+raw+`"`), &s); err != nil {
		return "", fmt.Errorf("string %q: %w", raw, err)
	}
	return s, nil
}

// apply performs one PATCH operation, as validated by the library, on attrs.
func (s scope) apply(attrs map[string]any, op scim.PatchOperation) error {
	kind := strings.ToLower(op.Op) // Entra sends "Add", "Replace", "Remove"
	if op.Path != nil {
		return s.applyPath(attrs, kind, *op.Path, op.Value)
	}
	// Path-less (Okta: {"displayName": ...} or {"active": false}): each key is a path.
	values, ok := op.Value.(map[string]any)
	if !ok {
		return invalidValue("A PATCH operation without path needs an object value.")
	}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		if ext, ok := s.ext(key); ok {
			sub := asMap(values[key])
			for _, name := range slices.Sorted(maps.Keys(sub)) {
				p := filter.Path{AttributePath: filter.AttributePath{URIPrefix: &ext, AttributeName: name}}
				if err := s.applyPath(attrs, kind, p, sub[name]); err != nil {
					return err
				}
			}
			continue
		}
		p, err := filter.ParsePath([]byte(key))
		if err != nil {
			return scimerr.ScimErrorInvalidPath
		}
		if err := s.applyPath(attrs, kind, p, values[key]); err != nil {
			return err
		}
	}
	return nil
}

func (s scope) applyPath(attrs map[string]any, kind string, p filter.Path, v any) error {
	ext, a, err := s.resolve(p.AttributePath)
	if err != nil {
		return scimerr.ScimErrorInvalidPath
	}
	if a.Mutability() == "readOnly" {
		return scimerr.ScimErrorMutability
	}
	c := container(attrs, ext, kind != "remove")
	if c == nil {
		return nil // removing from an absent extension
	}
	defer func() {
		if ext != "" && len(c) == 0 {
			delete(attrs, ext)
		}
	}()
	name := a.Name()
	switch {
	case p.ValueExpression != nil:
		return s.applyFiltered(c, kind, a, p, v)
	case p.AttributePath.SubAttribute != nil:
		sub, err := subAttr(a, p.AttributePath.SubAttributeName())
		if err != nil || a.MultiValued() {
			return scimerr.ScimErrorInvalidPath
		}
		obj := asMap(c[name])
		if kind == "remove" {
			delete(obj, sub)
		} else {
			if obj == nil {
				obj = map[string]any{}
			}
			obj[sub] = v
		}
		setValue(c, name, obj)
	case kind == "remove" && a.MultiValued() && present(v):
		// Entra's older member removal: {"op":"Remove","path":"members","value":[{"value":"id"}]}.
		setValue(c, name, slices.DeleteFunc(slices.Clone(list(c[name])), func(el any) bool {
			return slices.ContainsFunc(list(v), func(x any) bool { return sameValue(el, x) })
		}))
	case kind == "remove":
		delete(c, name)
	case a.MultiValued() && kind == "replace":
		setValue(c, name, list(v)) // [] arrives as nil: clears
	case a.MultiValued():
		cur := slices.Clone(list(c[name]))
		for _, x := range list(v) {
			if !slices.ContainsFunc(cur, func(el any) bool { return sameValue(el, x) }) {
				cur = append(cur, x)
			}
		}
		setValue(c, name, cur)
	case a.HasSubAttributes():
		// RFC 7644 3.5.2: sub-attributes the value does not name are left unchanged.
		obj := asMap(c[name])
		if obj == nil {
			obj = map[string]any{}
		}
		maps.Copy(obj, asMap(v))
		setValue(c, name, obj)
	default:
		c[name] = v
	}
	return nil
}

// applyFiltered handles paths like members[value eq "id"] and emails[type eq "work"].value.
func (s scope) applyFiltered(c map[string]any, kind string, a schema.CoreAttribute, p filter.Path, v any) error {
	if !a.MultiValued() || !a.HasSubAttributes() {
		return scimerr.ScimErrorInvalidPath
	}
	elems := within(a)
	match, err := elems.compile(p.ValueExpression)
	if err != nil {
		return scimerr.ScimErrorInvalidPath
	}
	field := ""
	if p.SubAttribute != nil {
		if field, err = subAttr(a, *p.SubAttribute); err != nil {
			return scimerr.ScimErrorInvalidPath
		}
	} else if kind != "remove" && asMap(v) == nil {
		return scimerr.ScimErrorInvalidValue
	}
	var (
		out []any
		hit bool
	)
	for _, el := range list(c[a.Name()]) {
		obj := asMap(el)
		if obj == nil || !match(obj) {
			out = append(out, el)
			continue
		}
		hit = true
		switch {
		case kind == "remove" && field == "":
		case kind == "remove":
			delete(obj, field)
			if len(obj) > 0 {
				out = append(out, obj)
			}
		case field == "":
			out = append(out, v)
		default:
			obj[field] = v
			out = append(out, obj)
		}
	}
	if !hit && kind != "remove" {
		// Entra sets emails[type eq "work"].value on a user with no work email yet: add the
		// element the filter describes.
		el, ok := elems.seed(p.ValueExpression)
		if !ok {
			return scimerr.ScimErrorNoTarget
		}
		if field == "" {
			maps.Copy(el, asMap(v))
		} else {
			el[field] = v
		}
		out = append(out, el)
	}
	setValue(c, a.Name(), out)
	return nil
}

// seed is the element an equality filter (`type eq "work"`, joined by and) describes.
func (s scope) seed(e filter.Expression) (map[string]any, bool) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		_, a, err := s.resolve(e.AttributePath)
		if err != nil || !strings.EqualFold(string(e.Operator), string(filter.EQ)) || e.AttributePath.SubAttribute != nil {
			return nil, false
		}
		v := e.CompareValue
		if raw, ok := v.(string); ok {
			if v, err = unescape(raw); err != nil {
				return nil, false
			}
		}
		return map[string]any{a.Name(): v}, true
	case *filter.LogicalExpression:
		left, ok := s.seed(e.Left)
		right, ok2 := s.seed(e.Right)
		if !ok || !ok2 || !strings.EqualFold(string(e.Operator), string(filter.AND)) {
			return nil, false
		}
		maps.Copy(left, right)
		return left, true
	}
	return nil, false
}

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

// list views a multi-valued attribute (or one value) as a slice.
func list(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// setValue stores v, or drops the attribute when v is empty.
func setValue(c map[string]any, name string, v any) {
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			delete(c, name)
			return
		}
	case map[string]any:
		if len(x) == 0 {
			delete(c, name)
			return
		}
	}
	c[name] = v
}

// sameValue says whether two values of a multi-valued attribute are the same entry: by their
// "value" sub-attribute when both have one (members, emails), else entirely.
func sameValue(a, b any) bool {
	va, okA := asMap(a)["value"]
	vb, okB := asMap(b)["value"]
	if okA && okB {
		return reflect.DeepEqual(va, vb)
	}
	return reflect.DeepEqual(a, b)
}

// compact drops empty values, which the library keeps as nil slices (Entra sends "roles": []).
func compact(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = compact(sub)
		}
		if present(v) {
			out[k] = v
		}
	}
	return out
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, x := range v {
			l[i] = deepCopy(x)
		}
		return l
	}
	return v
}
