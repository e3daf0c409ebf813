package config

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/team"
)

// loader collects the problems of one Load across all files it reads.
type loader struct {
	// undocumentedNames is wandb.allowUndocumentedTeamNames: team names outside W&B's documented rule
	// are accepted (with a warning) instead of refused. wandb is read first, so every check sees it.
	undocumentedNames bool
	warnings          []string

	opts   LoadOptions
	files  []string // in the order read, to sort problems
	probs  []Problem
	claims []claim // teams that group rules' names give, for checkClaims
}

// read reads a file through LoadOptions. A *fs.PathError is unwrapped because every message that
// shows the error already names the path.
func (l *loader) read(path string) ([]byte, error) {
	data, err := l.opts.ReadFile(path)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		err = pe.Err
	}
	return data, err
}

// file is one YAML file being decoded: problems found in it carry its name.
type file struct {
	*loader
	name string // as shown in problems
	dir  string // relative paths written in this file resolve against it
}

func (l *loader) file(name string) *file {
	l.files = append(l.files, name)
	return &file{loader: l, name: name, dir: filepath.Dir(name)}
}

func (f *file) problem(n *yaml.Node, field, format string, args ...any) {
	p := Problem{File: f.name, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	f.probs = append(f.probs, p)
}

// resolve makes a path written in this file relative to the file's directory.
func (f *file) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.dir, p)
}

var yamlErrRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse parses the file's single YAML document and returns its root node, or nil after reporting why
// there is none (syntax error, empty file).
func (f *file) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			f.problem(&yaml.Node{Line: 1, Column: 1}, "", "the file is empty")
		} else {
			f.syntaxError(err)
		}
		return nil
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		f.problem(&yaml.Node{Line: max(doc.Line, 1), Column: max(doc.Column, 1)}, "", "the file is empty")
		return nil
	}
	// A second document would otherwise be ignored without a word.
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		f.problem(&next, "", "a second YAML document starts here; the file must hold exactly one")
	} else if !errors.Is(err, io.EOF) {
		f.syntaxError(err)
	}
	return doc.Content[0]
}

func (f *file) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if m := yamlErrRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	f.problem(&yaml.Node{Line: line}, "", "invalid YAML: %s", msg)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, never its value: the value may be a secret.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "nothing"
	}
	return "a string"
}

// is checks a node's kind; want describes the expected value for the message.
func (f *file) is(n *yaml.Node, field string, kind yaml.Kind, want string) bool {
	switch n.Kind {
	case kind:
		return true
	case yaml.AliasNode:
		// Following aliases could loop (an anchor may contain its own alias); the schema is small enough
		// to write out.
		f.problem(n, field, "YAML aliases (*%s) are not supported; write the value out", n.Value)
	default:
		f.problem(n, field, "expected %s, got %s", want, describe(n))
	}
	return false
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// pair is one key and its value in a YAML mapping.
type pair struct{ key, val *yaml.Node }

// pairs checks that n is a mapping with distinct scalar keys and returns its entries in order.
func (f *file) pairs(n *yaml.Node, field string) ([]pair, bool) {
	if !f.is(n, field, yaml.MappingNode, "a mapping") {
		return nil, false
	}
	var out []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !f.is(k, field, yaml.ScalarNode, "a string key") {
			continue
		}
		if first, dup := seen[k.Value]; dup {
			f.problem(k, join(field, k.Value), "duplicate key; first defined at line %d", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	return out, true
}

// mapping is one YAML mapping of the schema, its keys checked against the keys the schema allows.
type mapping struct {
	node  *yaml.Node
	pos   *yaml.Node // where a missing key is reported: the key that holds the mapping, else the mapping
	field string
	keys  map[string]*yaml.Node
	vals  map[string]*yaml.Node
}

func (f *file) mapping(n *yaml.Node, field string, allowed ...string) (mapping, bool) {
	ps, ok := f.pairs(n, field)
	if !ok {
		return mapping{}, false
	}
	m := mapping{node: n, pos: n, field: field, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	for _, p := range ps {
		k := p.key.Value
		if !slices.Contains(allowed, k) {
			f.problem(p.key, join(field, k), "unknown key; expected one of: %s", strings.Join(allowed, ", "))
			continue
		}
		m.keys[k], m.vals[k] = p.key, p.val
	}
	return m, true
}

// has reports whether key is set to something other than null.
func (m mapping) has(key string) bool {
	v, ok := m.vals[key]
	return ok && !isNull(v)
}

func (m mapping) at(key string) string { return join(m.field, key) }

// mustSet is the message for a plainly required value; a conditionally required one has its own.
const mustSet = "is required"

// when returns msg if cond holds: the ifMissing argument of a conditionally required value.
func when(cond bool, msg string) string {
	if cond {
		return msg
	}
	return ""
}

// missing reports an absent required key: at the key when it is there with no value, else where the
// mapping is.
func (f *file) missing(m mapping, key, msg string) {
	n := m.keys[key]
	if n == nil {
		n = m.pos
	}
	f.problem(n, m.at(key), "%s", msg)
}

// value returns key's value, or nil when it is absent or null.
func (m mapping) value(key string) *yaml.Node {
	if !m.has(key) {
		return nil
	}
	return m.vals[key]
}

// expand expands ${ENV} references in a scalar's text and reports bad ones at the scalar.
func (f *file) expand(n *yaml.Node, field string) (string, bool) {
	s, errs := expand(n.Value, f.opts.LookupEnv)
	for _, e := range errs {
		f.problem(n, field, "%s", e)
	}
	return s, len(errs) == 0
}

// str returns a string value with ${ENV} expanded, and its node; the node is nil when the value is
// absent or bad (then already reported). ifMissing, when not empty, makes the value required: an
// absent value is reported with that message, an empty one as empty. Any scalar counts as a string,
// so that `awsExternalId: 12345` means the text written.
func (f *file) str(m mapping, key, ifMissing string) (string, *yaml.Node) {
	n := m.value(key)
	if n == nil {
		if ifMissing != "" {
			f.missing(m, key, ifMissing)
		}
		return "", nil
	}
	if !f.is(n, m.at(key), yaml.ScalarNode, "a string") {
		return "", nil
	}
	s, ok := f.expand(n, m.at(key))
	if !ok {
		return "", nil
	}
	if s == "" && ifMissing != "" {
		f.problem(n, m.at(key), "must not be empty")
		return "", nil
	}
	return s, n
}

// enum is str restricted to a set of values.
func (f *file) enum(m mapping, key, ifMissing string, allowed ...string) (string, *yaml.Node) {
	s, n := f.str(m, key, ifMissing)
	if n == nil || s == "" || slices.Contains(allowed, s) {
		return s, n
	}
	f.problem(n, m.at(key), "%q is not supported; expected one of: %s", s, strings.Join(allowed, ", "))
	return "", nil
}

// text returns a typed scalar's text: as written for one of the YAML type tags, or, for a string
// (which is how a ${ENV} reference is written), after expansion. ok is false when absent or bad.
func (f *file) text(m mapping, key, want string, tags ...string) (s string, n *yaml.Node, ok bool) {
	if n = m.value(key); n == nil || !f.is(n, m.at(key), yaml.ScalarNode, want) {
		return "", nil, false
	}
	switch tag := n.ShortTag(); {
	case tag == "!!str":
		s, ok = f.expand(n, m.at(key))
		return s, n, ok
	case slices.Contains(tags, tag):
		return n.Value, n, true
	}
	f.problem(n, m.at(key), "expected %s, got %s", want, describe(n))
	return "", nil, false
}

// integer returns an integer value; the node is nil when absent or bad.
func (f *file) integer(m mapping, key string) (int, *yaml.Node) {
	s, n, ok := f.text(m, key, "an integer", "!!int")
	if !ok {
		return 0, nil
	}
	i, err := strconv.ParseInt(s, 0, 0)
	if err != nil {
		f.problem(n, m.at(key), "expected an integer, got %q", s)
		return 0, nil
	}
	return int(i), n
}

// number returns a decimal number ("0.5", "1"); the node is nil when absent or bad.
func (f *file) number(m mapping, key string) (float64, *yaml.Node) {
	s, n, ok := f.text(m, key, "a number", "!!float", "!!int")
	if !ok {
		return 0, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		f.problem(n, m.at(key), "expected a number such as 0.5, got %q", s)
		return 0, nil
	}
	return x, n
}

// boolean returns a true/false value; the node is nil when absent or bad.
func (f *file) boolean(m mapping, key string) (bool, *yaml.Node) {
	s, n, ok := f.text(m, key, "true or false", "!!bool")
	if !ok {
		return false, nil
	}
	switch strings.ToLower(s) {
	case "true":
		return true, n
	case "false":
		return false, n
	}
	f.problem(n, m.at(key), "expected true or false, got %q", s)
	return false, nil
}

// duration returns a Go duration ("90s", "24h"); a bare 0 is accepted as zero. The node is nil when
// absent or bad.
func (f *file) duration(m mapping, key string) (time.Duration, *yaml.Node) {
	s, n, ok := f.text(m, key, "a duration such as 30s or 24h", "!!int")
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		f.problem(n, m.at(key), "expected a duration such as 30s or 24h, got %q", s)
		return 0, nil
	}
	return d, n
}

// timeout reads the "timeout" key of m, a positive per-request timeout; DefaultTimeout when absent.
func (f *file) timeout(m mapping) time.Duration {
	d, n := f.duration(m, "timeout")
	switch {
	case n == nil:
		return DefaultTimeout
	case d <= 0:
		f.problem(n, m.at("timeout"), "must be positive, got %s", d)
	}
	return d
}

// checkTeamName is every check a team name from any source goes through: the agent's own rule, then
// W&B's documented one unless wandb.allowUndocumentedTeamNames is set.
func checkTeamName(name string, undocumentedOK bool) error {
	if err := team.ValidateName(name); err != nil {
		return err
	}
	if undocumentedOK {
		return nil
	}
	return team.CheckDocumented(name)
}

// caFile reads the optional "caFile" key of m: a PEM file of CA certificates the clients of that section
// trust in addition to the system roots. The file is read now, so that a missing or empty one is
// reported with its line rather than at the first request. Empty counts as unset (${CA_FILE:-}).
func (f *file) caFile(m mapping) string {
	p, n := f.str(m, "caFile", "")
	if n == nil || p == "" {
		return ""
	}
	p = f.resolve(p)
	data, err := f.read(p)
	if err != nil {
		f.problem(n, m.at("caFile"), "cannot read %q: %v", p, err)
		return p
	}
	if msg := checkCAPEM(data); msg != "" {
		f.problem(n, m.at("caFile"), "%q %s", p, msg)
	}
	return p
}

// checkCAPEM says what is wrong with a CA bundle, or "" when it holds at least one certificate and
// nothing else: a private key put there by mistake must not be accepted silently.
func checkCAPEM(data []byte) string {
	certs := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Sprintf("holds a %s block: a CA file holds certificates only", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Sprintf("holds a certificate that does not parse: %v", err)
		}
		certs++
	}
	if certs == 0 {
		return "holds no PEM certificate"
	}
	return ""
}

// section returns a nested mapping; ok is false when it is absent or bad.
func (f *file) section(m mapping, key, ifMissing string, allowed ...string) (mapping, bool) {
	n := m.value(key)
	if n == nil {
		if ifMissing != "" {
			f.missing(m, key, ifMissing)
		}
		return mapping{}, false
	}
	sm, ok := f.mapping(n, m.at(key), allowed...)
	sm.pos = m.keys[key]
	return sm, ok
}

// secret returns key's value, or the content of the file keyFile names (one trailing newline
// removed). Messages name paths and variables, never the content.
func (f *file) secret(m mapping, key, ifMissing string) Secret {
	fileKey := key + "File"
	if m.has(key) && m.has(fileKey) {
		f.problem(m.keys[fileKey], m.at(fileKey), "set either %s or %s, not both", key, fileKey)
		return Secret{}
	}
	if m.has(key) {
		v, n := f.str(m, key, "")
		if n != nil && v == "" {
			f.problem(n, m.at(key), "is empty")
		}
		return NewSecret(v)
	}
	if !m.has(fileKey) {
		if ifMissing != "" {
			f.missing(m, key, ifMissing)
		}
		return Secret{}
	}
	p, n := f.str(m, fileKey, mustSet)
	if n == nil {
		return Secret{}
	}
	v, _ := f.secretFile(n, m.at(fileKey), p)
	return NewSecret(v)
}

// checkSecret reports what check finds wrong with the secret that secret(m, key) read, where it was
// written (key or its File variant). An unset secret is not checked: secret reported it if need be.
func (f *file) checkSecret(m mapping, key string, s Secret, check func(string) error) {
	if s.Reveal() == "" {
		return
	}
	if err := check(s.Reveal()); err != nil {
		n, field := m.secretAt(key)
		f.problem(n, field, "%v", err)
	}
}

// secretAt is where the secret that secret(m, key) read was written: key or its File variant.
func (m mapping) secretAt(key string) (*yaml.Node, string) {
	if !m.has(key) {
		key += "File"
	}
	return m.vals[key], m.at(key)
}

// secretFile reads the secret in the file that p (written at n) names; ok is false after reporting an
// unreadable or empty file.
func (f *file) secretFile(n *yaml.Node, field, p string) (v string, ok bool) {
	path := f.resolve(p)
	data, err := f.read(path)
	if err != nil {
		f.problem(n, field, "cannot read %q: %v", path, err)
		return "", false
	}
	v = trimNewline(string(data))
	if v == "" {
		f.problem(n, field, "file %q is empty", path)
		return "", false
	}
	return v, true
}

// trimNewline removes one trailing "\n" or "\r\n", as editors and `echo` leave one in secret files.
func trimNewline(s string) string {
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		return t
	}
	return strings.TrimSuffix(s, "\n")
}
