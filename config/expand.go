package config

import (
	"fmt"
	"regexp"
	"strings"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces every ${NAME} in s with the variable's value, and ${NAME:-default} with the value or,
// when the variable is unset or empty, the default (as a shell does); "$${" stands for a literal "${".
// Values are inserted as they are, never expanded again. It returns one message per bad reference
// (unset variable, bad name, missing "}"); the messages name variables, never their values.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	var errs []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				errs = append(errs, `unterminated "${": add "}", or write "$${" for a literal "${"`)
				return s, errs
			}
			name := s[i+2 : i+2+end]
			i += 2 + end + 1
			name, def, hasDefault := strings.Cut(name, ":-")
			if !envNameRE.MatchString(name) {
				errs = append(errs, fmt.Sprintf("%q is not a valid environment variable name in ${...}", name))
				continue
			}
			v, ok := lookup(name)
			if hasDefault && v == "" {
				v, ok = def, true
			}
			if !ok {
				errs = append(errs, fmt.Sprintf("environment variable %s is not set", name))
				continue
			}
			b.WriteString(v)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), errs
}
