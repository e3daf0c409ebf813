// Package oauth holds what the identity-provider readers share for OAuth: signing RS256 JWT
// assertions, parsing PEM RSA private keys, and caching access tokens.
package oauth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
)

// SignRS256 returns the compact JWT of claims (anything encoding/json can marshal) signed with key.
// The header is {"alg":"RS256","typ":"JWT"}, with "kid" when keyID is not empty.
func SignRS256(key *rsa.PrivateKey, keyID string, claims any) (string, error) {
	header := map[string]any{"typ": "JWT"}
	if keyID != "" {
		header["kid"] = keyID
	}
	return SignRS256Header(key, header, claims)
}

// SignRS256Header is SignRS256 with the header's other members given (alg is set to RS256), for JWTs
// such as DPoP proofs whose header carries a typ and the public key.
func SignRS256Header(key *rsa.PrivateKey, header map[string]any, claims any) (string, error) {
	full := maps.Clone(header)
	if full == nil {
		full = map[string]any{}
	}
	full["alg"] = "RS256"
	h, err := json.Marshal(full)
	if err != nil {
		return "", fmt.Errorf("encoding the JWT header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding the JWT claims: %w", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("signing the JWT: %w", err)
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// KeyReason says what is wrong with a private key.
type KeyReason int

const (
	NoPEM        KeyReason = iota + 1 // no PEM block in the input
	BadBlockType                      // a PEM block of another type (strict parsing only)
	BadPKCS1                          // an "RSA PRIVATE KEY" block that is not PKCS#1
	BadPKCS8                          // a "PRIVATE KEY" block that is not PKCS#8
	BadKey                            // neither PKCS#8 nor PKCS#1 (lenient parsing only)
	NotRSA                            // a valid PKCS#8 key of another algorithm
)

// KeyError describes a key that cannot be used. It never holds any of the key material: callers map
// Reason to their own wording.
type KeyError struct {
	Reason    KeyReason
	BlockType string // the PEM block type, for BadBlockType
	KeyType   string // the Go type of the parsed key (%T), for NotRSA
}

func (e *KeyError) Error() string {
	switch e.Reason {
	case NoPEM:
		return "no PEM block found"
	case BadBlockType:
		return fmt.Sprintf("PEM block %q, want \"PRIVATE KEY\" or \"RSA PRIVATE KEY\"", e.BlockType)
	case BadPKCS1:
		return "not a valid PKCS#1 RSA private key"
	case BadPKCS8:
		return "not a valid PKCS#8 private key"
	case NotRSA:
		return fmt.Sprintf("a %s, but RS256 needs an RSA key", e.KeyType)
	default:
		return "neither a PKCS#8 nor a PKCS#1 RSA key"
	}
}

// ParseRSAKey reads the first PEM block of pemBytes as an RSA private key: PKCS#1 in an
// "RSA PRIVATE KEY" block, PKCS#8 in a "PRIVATE KEY" block; any other block type is refused. Errors
// are *KeyError.
func ParseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	return parse(pemBytes, false)
}

// ParseRSAKeyAnyBlock is ParseRSAKey for hand-made files: whatever the block type, its bytes are
// tried as PKCS#8, then as PKCS#1.
func ParseRSAKeyAnyBlock(pemBytes []byte) (*rsa.PrivateKey, error) {
	return parse(pemBytes, true)
}

func parse(pemBytes []byte, anyBlock bool) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, &KeyError{Reason: NoPEM}
	}
	pkcs8 := func() (*rsa.PrivateKey, error) {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, &KeyError{Reason: NotRSA, KeyType: fmt.Sprintf("%T", k)}
		}
		return rk, nil
	}
	if anyBlock {
		k, err := pkcs8()
		if err == nil {
			return k, nil
		}
		if _, ok := err.(*KeyError); ok {
			return nil, err
		}
		if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
			return k, nil
		}
		return nil, &KeyError{Reason: BadKey}
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, &KeyError{Reason: BadPKCS1}
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := pkcs8()
		if err != nil {
			if ke, ok := err.(*KeyError); ok {
				return nil, ke
			}
			return nil, &KeyError{Reason: BadPKCS8}
		}
		return k, nil
	default:
		return nil, &KeyError{Reason: BadBlockType, BlockType: block.Type}
	}
}
