package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/byob-agent/byob-agent/state"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

// predicate reports whether a resource (as attributes, with "id") matches a filter.
type predicate func(map[string]any) bool

// query is a compiled list filter: the store narrows the candidates through an index when the
// filter holds an equality on an indexed attribute (by, value), and match tests the rest, unless
// the filter is that equality alone (exact).
type query struct {
	match predicate
	by    state.SCIMIndex
	value string
	exact bool
}

type filterKey struct{}

// queryFrom is the request's filter; without one, every resource matches.
func queryFrom(ctx context.Context) query {
	q, _ := ctx.Value(filterKey{}).(query)
	return q
}

// keep is the test the store runs on each candidate; nil when the index (or no filter) says all.
func (q query) keep() predicate {
	if q.match == nil || q.exact {
		return nil
	}
	return q.match
}

// maxFilter bounds a filter's length: IdPs send a few dozen bytes, and parsing takes time in
// proportion (tens of microseconds a byte for nested parentheses).
const maxFilter = 2048

// parseFilter compiles a filter. Any filter it cannot evaluate exactly is an error, answered as
// 400 invalidFilter.
func (s scope) parseFilter(text string) (query, error) {
	if len(text) > maxFilter {
		return query{}, fmt.Errorf("filter longer than %d bytes", maxFilter)
	}
	e, err := filter.ParseFilter([]byte(text))
	if err != nil {
		var ok bool
		if e, ok = subValuePath(text); !ok {
			return query{}, err
		}
	}
	match, err := s.compile(e)
	if err != nil {
		return query{}, err
	}
	q := query{match: match}
	q.by, q.value, q.exact = s.indexHint(e)
	return q, nil
}

// indexHint finds an equality on an indexed attribute that every match must satisfy: the filter
// itself (exact), or one side of a top-level and.
func (s scope) indexHint(e filter.Expression) (by state.SCIMIndex, value string, exact bool) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		raw, ok := e.CompareValue.(string)
		if !ok || !strings.EqualFold(string(e.Operator), string(filter.EQ)) || e.AttributePath.SubAttribute != nil {
			return "", "", false
		}
		ext, a, err := s.resolve(e.AttributePath)
		if err != nil || ext != "" {
			return "", "", false
		}
		by, ok := s.indexes[a.Name()]
		if value, err = unescape(raw); !ok || err != nil {
			return "", "", false
		}
		return by, value, true
	case *filter.LogicalExpression:
		if !strings.EqualFold(string(e.Operator), string(filter.AND)) {
			return "", "", false
		}
		if by, value, _ = s.indexHint(e.Left); by == "" {
			by, value, _ = s.indexHint(e.Right)
		}
		return by, value, false
	}
	return "", "", false
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
	test, err := comparison(op, e.CompareValue, leaf, ext == "" && sub == "" && a.Name() == s.unique)
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
// case-insensitively unless the attribute is caseExact (userName and displayName are not). A
// unique name (normalized) is compared normalised, as the store keeps it.
func comparison(op filter.CompareOperator, want any, a schema.CoreAttribute, normalized bool) (func(any) bool, error) {
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
		if n, err := state.NormalizeSCIMName(w); normalized && err == nil {
			w = n
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
