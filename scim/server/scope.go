package server

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/byob-agent/byob-agent/state"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

var (
	enterpriseUser = schema.ExtensionEnterpriseUser()
	userScope      = newScope(schema.CoreUserSchema(), "userName", state.SCIMByUserName, enterpriseUser)
	groupScope     = newScope(groupSchema(), "displayName", state.SCIMByDisplayName)
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
	// unique is the attribute the store keeps normalised and unique; indexes are the (core)
	// attributes the store can look resources up by.
	unique  string
	indexes map[string]state.SCIMIndex
}

func newScope(core schema.Schema, unique string, byUnique state.SCIMIndex, exts ...schema.Schema) scope {
	attrs := slices.Clone(core.Attributes)
	for _, a := range schema.CommonAttributes() {
		if a.Name() == "id" || a.Name() == "externalId" {
			attrs = append(attrs, a)
		}
	}
	indexes := map[string]state.SCIMIndex{"id": state.SCIMByID, "externalId": state.SCIMByExternalID, unique: byUnique}
	return scope{core: core, attrs: attrs, exts: exts, unique: unique, indexes: indexes}
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
