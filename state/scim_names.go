package state

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// NormalizeSCIMName is a userName or group displayName as the store keeps and compares it: without
// surrounding white space and in Unicode NFC, so that " alice" and "alice", or a name typed
// precomposed and decomposed, are one name. A name that is empty, is not UTF-8 or holds a control
// or bidirectional-formatting character (which make two different names look alike) is refused.
func NormalizeSCIMName(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: the name is not valid UTF-8", ErrSCIMInvalid)
	}
	s = strings.TrimSpace(norm.NFC.String(strings.TrimSpace(s)))
	if s == "" {
		return "", fmt.Errorf("%w: the name is empty", ErrSCIMInvalid)
	}
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) || bidiControl(r) || r == '\u2028' || r == '\u2029' {
			return "", fmt.Errorf("%w: the name holds the control character %U", ErrSCIMInvalid, r)
		}
	}
	return s, nil
}

// bidiControl: the Unicode bidirectional formatting characters (UAX #9, section 2).
func bidiControl(r rune) bool {
	return r == '\u061C' || r == '\u200E' || r == '\u200F' || (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}

// CheckSCIMName refuses a name a writer did not normalise (the SCIM endpoint normalises what it is sent).
func CheckSCIMName(name string) error {
	n, err := NormalizeSCIMName(name)
	switch {
	case err != nil:
		return err
	case n != name:
		return fmt.Errorf("%w: %q is not normalised (NormalizeSCIMName)", ErrSCIMInvalid, name)
	}
	return nil
}

// FoldSCIMName maps every rune to the smallest rune of its case-folding orbit, so two names get the
// same key exactly when strings.EqualFold says they are equal: the uniqueness check and the SCIM
// filter `userName eq` (which uses EqualFold) then agree on every name.
func FoldSCIMName(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// Member is what a group's member list shows of the user.
func (u SCIMUser) Member() SCIMMember {
	return SCIMMember{ID: u.ID, UserName: u.UserName, DisplayName: displayName(u.Attributes), Email: u.Email, Active: u.Active}
}

// displayName is a user's displayName attribute (SCIM attribute names are case-insensitive, RFC 7643
// section 2.1), or "".
func displayName(attrs map[string]any) string {
	for k, v := range attrs {
		if s, ok := v.(string); ok && strings.EqualFold(k, "displayName") {
			return s
		}
	}
	return ""
}

// SCIMLimits bound what SCIM clients may store. A zero field takes its DefaultSCIMLimits value.
type SCIMLimits struct {
	MaxUserBytes int // bytes of one user's stored JSON (its attributes)
	MaxUsers     int
	MaxGroups    int // live groups
	MaxMembers   int // members of one group
}

// DefaultSCIMLimits are generous for an organisation's directory and small enough that one client
// cannot fill the disk or the daemon's memory.
var DefaultSCIMLimits = SCIMLimits{MaxUserBytes: 64 << 10, MaxUsers: 100_000, MaxGroups: 10_000, MaxMembers: 20_000}

// SCIMLimitError is a write refused by a limit.
type SCIMLimitError struct {
	What  string // "users", "groups", "members of one group", "bytes of one user"
	Limit int
}

func (e *SCIMLimitError) Error() string {
	return fmt.Sprintf("the agent keeps at most %d %s", e.Limit, e.What)
}

// ErrSCIMLimit matches every *SCIMLimitError with errors.Is.
var ErrSCIMLimit = errors.New("SCIM limit reached")

func (e *SCIMLimitError) Is(target error) bool { return target == ErrSCIMLimit }

// WithDefaults is l with its zero fields set to the defaults.
func (l SCIMLimits) WithDefaults() SCIMLimits {
	def := DefaultSCIMLimits
	for _, f := range []struct{ v, def *int }{{&l.MaxUserBytes, &def.MaxUserBytes}, {&l.MaxUsers, &def.MaxUsers}, {&l.MaxGroups, &def.MaxGroups}, {&l.MaxMembers, &def.MaxMembers}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

// SetSCIMLimits sets the limits later writes check; zero fields take the defaults.
func (d *DB) SetSCIMLimits(l SCIMLimits) {
	l = l.WithDefaults()
	d.limits.Store(&l)
}

// SCIMLimits are the limits in force.
func (d *DB) SCIMLimits() SCIMLimits {
	if l := d.limits.Load(); l != nil {
		return *l
	}
	return DefaultSCIMLimits
}
