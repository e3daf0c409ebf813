package oktafake

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The grammar of Okta's `search` and `filter` expressions, as far as the Groups API documents them:
// `attr op "value"` joined by `and`/`or` (and binds tighter), grouped with parentheses. `search` takes
// sw, eq and co (co only on profile.name and profile.description) plus date comparisons; `filter` takes only
// id, type, lastUpdated and lastMembershipUpdated. Anything else is rejected, as Okta rejects it.
//
// `search` covers, per Okta's List all groups (https://developer.okta.com/docs/api/resources/groups): any
// group profile attribute, custom and imported ones included; the top-level id, created,
// lastMembershipUpdated, lastUpdated and type; and `source.id`, the app an APP_GROUP comes from (as in
// `type eq "APP_GROUP" and source.id eq "0oa…"`). Inferences: a custom profile attribute must be set on
// some group in the fake (its stand-in for the group profile schema) and takes eq and sw; source.id takes eq.

type exprMode int

const (
	modeSearch exprMode = iota
	modeFilter
)

type attr struct {
	get   func(*Group) string
	ops   []string
	fold  bool // profile values compare case-insensitively
	dates bool // values are timestamps
}

var (
	dateOps = []string{"eq", "gt", "ge", "lt", "le"}

	searchAttrs = map[string]attr{
		"id":                    {get: func(g *Group) string { return g.ID }, ops: []string{"eq", "sw"}},
		"type":                  {get: func(g *Group) string { return g.typ() }, ops: []string{"eq", "sw"}},
		"profile.name":          {get: func(g *Group) string { return g.Name }, ops: []string{"eq", "sw", "co"}, fold: true},
		"profile.description":   {get: func(g *Group) string { return g.Description }, ops: []string{"eq", "sw", "co"}, fold: true},
		"created":               {get: func(g *Group) string { return stamp(g.Created) }, ops: dateOps, dates: true},
		"lastUpdated":           {get: func(g *Group) string { return stamp(g.LastUpdated) }, ops: dateOps, dates: true},
		"lastMembershipUpdated": {get: func(g *Group) string { return stamp(g.LastMembershipUpdated) }, ops: dateOps, dates: true},
		"source.id":             {get: func(g *Group) string { return g.SourceID }, ops: []string{"eq"}},
	}
	filterAttrs = map[string]attr{
		"id":                    {get: func(g *Group) string { return g.ID }, ops: []string{"eq"}},
		"type":                  {get: func(g *Group) string { return g.typ() }, ops: []string{"eq"}},
		"lastUpdated":           searchAttrs["lastUpdated"],
		"lastMembershipUpdated": searchAttrs["lastMembershipUpdated"],
	}
)

type predicate func(*Group) bool

type token struct {
	text   string
	quoted bool
}

// maxDepth bounds parenthesis nesting so a hostile expression cannot exhaust the stack.
const maxDepth = 32

// parseExpr parses a search or filter expression; custom names the custom group profile attributes
// (without the profile. prefix) a search may use.
func parseExpr(s string, mode exprMode, custom ...string) (predicate, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, attrs: filterAttrs}
	if mode == modeSearch {
		p.attrs = maps.Clone(searchAttrs)
		for _, k := range custom {
			if _, builtIn := p.attrs["profile."+k]; !builtIn {
				p.attrs["profile."+k] = attr{get: func(g *Group) string { return g.Profile[k] }, ops: []string{"eq", "sw"}, fold: true}
			}
		}
	}
	pred, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	return pred, nil
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{text: s[i : i+1]})
			i++
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unterminated string")
				}
				if s[i] == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '"' {
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t()\"", rune(s[j])) {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

type parser struct {
	toks  []token
	pos   int
	attrs map[string]attr
}

func (p *parser) peekWord(w string) bool {
	return p.pos < len(p.toks) && !p.toks[p.pos].quoted && strings.EqualFold(p.toks[p.pos].text, w)
}

func (p *parser) or(depth int) (predicate, error) {
	left, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.peekWord("or") {
		p.pos++
		right, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l := left
		left = func(g *Group) bool { return l(g) || right(g) }
	}
	return left, nil
}

func (p *parser) and(depth int) (predicate, error) {
	left, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for p.peekWord("and") {
		p.pos++
		right, err := p.primary(depth)
		if err != nil {
			return nil, err
		}
		l := left
		left = func(g *Group) bool { return l(g) && right(g) }
	}
	return left, nil
}

func (p *parser) primary(depth int) (predicate, error) {
	if p.pos >= len(p.toks) {
		return nil, errors.New("unexpected end of expression")
	}
	if t := p.toks[p.pos]; !t.quoted && t.text == "(" {
		if depth >= maxDepth {
			return nil, errors.New("expression nested too deeply")
		}
		p.pos++
		inner, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.toks) || p.toks[p.pos].quoted || p.toks[p.pos].text != ")" {
			return nil, errors.New("missing )")
		}
		p.pos++
		return inner, nil
	}
	if p.pos+3 > len(p.toks) {
		return nil, errors.New("incomplete comparison")
	}
	name, op, val := p.toks[p.pos], p.toks[p.pos+1], p.toks[p.pos+2]
	p.pos += 3
	a, ok := p.attrs[name.text]
	if name.quoted || !ok {
		return nil, fmt.Errorf("unsupported attribute %q", name.text)
	}
	opName := strings.ToLower(op.text)
	if op.quoted || !slices.Contains(a.ops, opName) {
		return nil, fmt.Errorf("operator %q not supported on %s", op.text, name.text)
	}
	if !val.quoted {
		return nil, fmt.Errorf("value for %s must be a quoted string", name.text)
	}
	want := val.text
	if a.dates {
		t, err := time.Parse(time.RFC3339, want)
		if err != nil {
			return nil, fmt.Errorf("value for %s is not a timestamp", name.text)
		}
		want = stamp(t)
	}
	fold := func(s string) string {
		if a.fold {
			return strings.ToLower(s)
		}
		return s
	}
	want = fold(want)
	return func(g *Group) bool {
		have := fold(a.get(g))
		switch opName {
		case "eq":
			return have == want
		case "sw":
			return strings.HasPrefix(have, want)
		case "co":
			return strings.Contains(have, want)
		case "gt":
			return have > want // fixed-width UTC stamps order lexically
		case "ge":
			return have >= want
		case "lt":
			return have < want
		default: // le
			return have <= want
		}
	}, nil
}
