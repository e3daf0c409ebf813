package graphfake

import (
	"errors"
	"fmt"
	"strings"
)

// expr is a parsed $filter on groups.
type expr interface {
	match(g *group) bool
}

// A filter's needs: which operators demand Graph's advanced query parameters.
type parsed struct {
	e        expr
	advanced string // the first operator that needs advanced query parameters, "" if none
}

type (
	orExpr  struct{ l, r expr }
	andExpr struct{ l, r expr }
	notExpr struct{ e expr }
	cmpExpr struct {
		prop, op, value string // op: eq, ne, startswith, endswith
	}
)

func (e orExpr) match(g *group) bool  { return e.l.match(g) || e.r.match(g) }
func (e andExpr) match(g *group) bool { return e.l.match(g) && e.r.match(g) }
func (e notExpr) match(g *group) bool { return !e.e.match(g) }

// match compares case-insensitively, as the directory does.
func (e cmpExpr) match(g *group) bool {
	v := strings.ToLower(g.displayName)
	if e.prop == "id" {
		v = strings.ToLower(g.id)
	}
	want := strings.ToLower(e.value)
	switch e.op {
	case "eq":
		return v == want
	case "ne":
		return v != want
	case "startswith":
		return strings.HasPrefix(v, want)
	default: // endswith
		return strings.HasSuffix(v, want)
	}
}

// parseFilter parses the subset of OData $filter the fake supports on groups:
// startswith(displayName,'x'), endswith(displayName,'x'), displayName|id eq|ne 'x', not, and, or,
// parentheses. endswith, ne and not need the advanced query parameters, as in Graph.
func parseFilter(s string) (parsed, error) {
	toks, err := tokenize(s)
	if err != nil {
		return parsed{}, err
	}
	p := &parser{toks: toks}
	e, err := p.or()
	if err != nil {
		return parsed{}, err
	}
	if p.pos != len(p.toks) {
		return parsed{}, fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	return parsed{e: e, advanced: p.advanced}, nil
}

type token struct {
	text   string
	quoted bool
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, token{text: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unterminated string literal")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' { // '' is an escaped quote
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && strings.IndexByte(" (),'", s[j]) < 0 {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

type parser struct {
	toks     []token
	pos      int
	advanced string
}

func (p *parser) peekWord(w string) bool {
	return p.pos < len(p.toks) && !p.toks[p.pos].quoted && strings.EqualFold(p.toks[p.pos].text, w)
}

func (p *parser) expect(w string) error {
	if !p.peekWord(w) {
		return fmt.Errorf("expected %q", w)
	}
	p.pos++
	return nil
}

func (p *parser) need(op string) {
	if p.advanced == "" {
		p.advanced = op
	}
}

func (p *parser) or() (expr, error) {
	l, err := p.and()
	for err == nil && p.peekWord("or") {
		p.pos++
		var r expr
		if r, err = p.and(); err == nil {
			l = orExpr{l, r}
		}
	}
	return l, err
}

func (p *parser) and() (expr, error) {
	l, err := p.unary()
	for err == nil && p.peekWord("and") {
		p.pos++
		var r expr
		if r, err = p.unary(); err == nil {
			l = andExpr{l, r}
		}
	}
	return l, err
}

func (p *parser) unary() (expr, error) {
	switch {
	case p.peekWord("not"):
		p.pos++
		p.need("not")
		e, err := p.unary()
		return notExpr{e}, err
	case p.peekWord("("):
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		return e, p.expect(")")
	case p.peekWord("startswith"), p.peekWord("endswith"):
		fn := strings.ToLower(p.toks[p.pos].text)
		p.pos++
		if fn == "endswith" {
			p.need("endsWith")
		}
		if err := p.expect("("); err != nil {
			return nil, err
		}
		prop, err := p.property()
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		return cmpExpr{prop: prop, op: fn, value: v}, p.expect(")")
	}
	prop, err := p.property()
	if err != nil {
		return nil, err
	}
	var op string
	switch {
	case p.peekWord("eq"):
		op = "eq"
	case p.peekWord("ne"):
		op = "ne"
		p.need("ne")
	default:
		return nil, errors.New("expected eq or ne")
	}
	p.pos++
	v, err := p.literal()
	return cmpExpr{prop: prop, op: op, value: v}, err
}

func (p *parser) property() (string, error) {
	switch {
	case p.peekWord("displayName"):
		p.pos++
		return "displayName", nil
	case p.peekWord("id"):
		p.pos++
		return "id", nil
	}
	if p.pos < len(p.toks) {
		return "", fmt.Errorf("unsupported property %q", p.toks[p.pos].text)
	}
	return "", errors.New("expected a property")
}

func (p *parser) literal() (string, error) {
	if p.pos >= len(p.toks) || !p.toks[p.pos].quoted {
		return "", errors.New("expected a string literal")
	}
	p.pos++
	return p.toks[p.pos-1].text, nil
}
