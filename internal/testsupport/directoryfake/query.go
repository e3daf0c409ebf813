package directoryfake

import (
	"errors"
	"fmt"
	"strings"
)

// parseQuery compiles a groups.list query as https://developers.google.com/admin-sdk/directory/v1/guides/search-groups
// describes it: whitespace-separated clauses, all of which must hold; each is field=value (exact) or
// field:prefix* (prefix) on email or name; values may be single-quoted, with \' for a quote. Matching
// ignores case. memberKey is part of the syntax but not implemented by the fake.
func parseQuery(q string) (func(Group) bool, error) {
	clauses, err := splitClauses(q)
	if err != nil {
		return nil, err
	}
	var tests []func(Group) bool
	for _, c := range clauses {
		i := strings.IndexAny(c, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("clause %q has no field and operator", c)
		}
		field, op, value := c[:i], c[i], unquote(c[i+1:])
		var get func(Group) string
		switch field {
		case "email":
			get = func(g Group) string { return g.Email }
		case "name":
			get = func(g Group) string { return g.Name }
		case "memberKey":
			return nil, errors.New("directoryfake: memberKey is not implemented")
		default:
			return nil, fmt.Errorf("unknown field %q", field)
		}
		want := strings.ToLower(value)
		switch {
		case op == '=':
			tests = append(tests, func(g Group) bool { return strings.ToLower(get(g)) == want })
		case strings.HasSuffix(want, "*") && len(want) > 1:
			prefix := strings.TrimSuffix(want, "*")
			tests = append(tests, func(g Group) bool { return strings.HasPrefix(strings.ToLower(get(g)), prefix) })
		default:
			return nil, fmt.Errorf("operator ':' needs a value ending in '*', got %q", c)
		}
	}
	return func(g Group) bool {
		for _, t := range tests {
			if !t(g) {
				return false
			}
		}
		return true
	}, nil
}

// splitClauses splits on whitespace outside single quotes.
func splitClauses(q string) ([]string, error) {
	var (
		out    []string
		cur    strings.Builder
		quoted bool
	)
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\\' && quoted && i+1 < len(q):
			cur.WriteByte(c)
			i++
			cur.WriteByte(q[i])
		case c == '\'':
			quoted = !quoted
			cur.WriteByte(c)
		case (c == ' ' || c == '\t' || c == '\n') && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}

// unquote strips single quotes and resolves \' escapes.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = v[1 : len(v)-1]
	}
	return strings.ReplaceAll(v, `\'`, `'`)
}
