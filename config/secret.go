package config

import (
	"fmt"
	"io"
	"log/slog"
)

const redacted = "[redacted]"

// Secret holds a credential. Every way of printing, encoding or logging it gives "[redacted]"; only
// Reveal gives the value. The value sits behind a pointer because fmt prints fields reached through
// unexported struct fields by reflection, without calling the methods below: a pointer then shows as
// an address, never as the secret.
type Secret struct {
	v *string
}

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v: &v} }

// Reveal returns the value; "" when the secret is not set. Call it only where the value is sent.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

func (s Secret) String() string   { return redacted }
func (s Secret) GoString() string { return redacted }

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x, ...) print "[redacted]".
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
