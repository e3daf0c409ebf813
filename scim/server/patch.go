package server

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

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
		drop := newValueSet(list(v))
		setValue(c, name, slices.DeleteFunc(slices.Clone(list(c[name])), drop.has))
	case kind == "remove":
		delete(c, name)
	case a.MultiValued() && kind == "replace":
		setValue(c, name, list(v)) // [] arrives as nil: clears
	case a.MultiValued():
		cur := slices.Clone(list(c[name]))
		seen := newValueSet(cur)
		for _, x := range list(v) {
			if !seen.has(x) {
				cur = append(cur, x)
				seen.add(x)
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

// valueSet holds values of a multi-valued attribute so that a merge of n values into m costs
// n+m, not n*m: by their scalar "value" sub-attribute in a map (members, emails), the rare others
// in a list compared as sameValue does.
type valueSet struct {
	byValue map[any]bool
	others  []any
}

func newValueSet(vs []any) *valueSet {
	s := &valueSet{byValue: make(map[any]bool, len(vs))}
	for _, v := range vs {
		s.add(v)
	}
	return s
}

// scalarValue is an element's "value" when it is a string, number or boolean (comparable, and
// equal exactly when reflect.DeepEqual says so).
func scalarValue(el any) (any, bool) {
	switch v := asMap(el)["value"].(type) {
	case string, float64, bool:
		return v, true
	}
	return nil, false
}

func (s *valueSet) add(el any) {
	if v, ok := scalarValue(el); ok {
		s.byValue[v] = true
		return
	}
	s.others = append(s.others, el)
}

// has says whether the set holds an element sameValue as el: one with a scalar value can only
// equal another with the same value.
func (s *valueSet) has(el any) bool {
	if v, ok := scalarValue(el); ok {
		return s.byValue[v]
	}
	return slices.ContainsFunc(s.others, func(x any) bool { return sameValue(x, el) })
}

// Caps on a PATCH request: IdPs send one operation per change, and at most a few hundred member
// values in one (Entra batches group members by 100s).
const (
	maxOperations = 1000
	maxValues     = 10000 // values of one operation
)

// checkOps refuses a PATCH over the caps before anything is parsed further or stored.
func checkOps(ops []scim.PatchOperation) error {
	if len(ops) > maxOperations {
		return tooMany(fmt.Sprintf("A PATCH request may hold at most %d operations; this one has %d.", maxOperations, len(ops)))
	}
	for i, op := range ops {
		n := len(list(op.Value))
		if m, ok := op.Value.(map[string]any); ok {
			n = 0
			for _, v := range m {
				n += len(list(v))
			}
		}
		if n > maxValues {
			return tooMany(fmt.Sprintf("Operation %d holds %d values; a PATCH operation may hold at most %d.", i+1, n, maxValues))
		}
	}
	return nil
}

func tooMany(detail string) scimerr.ScimError {
	return scimerr.ScimError{Status: http.StatusBadRequest, ScimType: scimerr.ScimTypeTooMany, Detail: detail}
}

// memberOps recognises the PATCH IdPs send most, operations on a group's members alone (add,
// replace or remove with a list of {"value": id}, or remove of them all), and returns it as a merge
// of member id sets, which skips building the group's attributes. ok is false for anything else,
// which the general path (apply) handles with the same outcome.
func memberOps(ops []scim.PatchOperation) (merge func(ids []string) []string, ok bool) {
	type step struct {
		kind string
		ids  []string
	}
	steps := make([]step, 0, len(ops))
	for _, op := range ops {
		p := op.Path
		if p == nil || p.ValueExpression != nil || p.SubAttribute != nil || p.AttributePath.URIPrefix != nil ||
			!strings.EqualFold(p.AttributePath.AttributeName, "members") {
			return nil, false
		}
		st := step{kind: strings.ToLower(op.Op)}
		for _, v := range list(op.Value) {
			id, ok := asMap(v)["value"].(string)
			if !ok {
				return nil, false
			}
			st.ids = append(st.ids, id)
		}
		steps = append(steps, st)
	}
	// ids arrive sorted (the store keeps them so): the result is those not removed, in order,
	// merged with the added ones sorted, so a PATCH of k members costs k log k, not a sort of all.
	return func(ids []string) []string {
		cleared, touched := false, map[string]bool{} // touched: last say on an id, in or out
		for _, st := range steps {
			switch st.kind {
			case "add":
			case "replace":
				cleared = true
				clear(touched)
			default: // remove: these, or all
				if st.ids == nil {
					cleared = true
					clear(touched)
				}
			}
			for _, id := range st.ids {
				touched[id] = st.kind != "remove" && id != ""
			}
		}
		var kept, added []string
		if !cleared {
			kept = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { in, ok := touched[id]; return ok && !in })
		}
		for id, in := range touched {
			if _, found := slices.BinarySearch(kept, id); in && !found {
				added = append(added, id)
			}
		}
		slices.Sort(added)
		return mergeSorted(kept, added)
	}, true
}

// mergeSorted merges two sorted lists.
func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] <= b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}
