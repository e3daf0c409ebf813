package okta

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/url"
	"sync"
	"time"

	shared "github.com/byob-agent/byob-agent/source/internal/oauth"
)

// DPoP (RFC 9449) as Okta documents it for its own APIs
// (https://developer.okta.com/docs/guides/dpop/oktaresourceserver/main/). Okta turns "Require
// Demonstrating Proof of Possession (DPoP) header in token requests" on by default for new API service
// apps; the agent finds out from the token endpoint's invalid_dpop_proof answer and from then on sends
// proofs:
//   - with each token request a proof JWT (header typ dpop+jwt, alg RS256 as Okta's guide uses, jwk the
//     public key; claims htm POST, htu the token endpoint, iat, jti), carrying as nonce the DPoP-Nonce
//     Okta last sent with a use_dpop_nonce answer, which Okta asks for and renews daily;
//   - with each API call `Authorization: DPoP <token>` and a proof for that call (htm, htu without the
//     query, iat, jti, and ath, the base64url SHA-256 of the access token; Okta needs no nonce there).
// The proof key is generated in memory and is not the client assertion's: Okta wants them separate.

// dpopKeyBits is the proof key's size: Okta accepts RSA keys of 2048 bits and more for client keys, and
// the proof key is as strong.
const dpopKeyBits = 2048

// dpop is the DPoP state a Source's token sources share: whether Okta asked for proofs, the proof key,
// and the last nonce. It is safe for concurrent use.
type dpop struct {
	mu    sync.Mutex
	on    bool
	key   *rsa.PrivateKey
	jwk   map[string]string
	nonce string
}

// enabled reports whether proofs are being sent.
func (d *dpop) enabled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.on
}

// enable starts sending proofs, generating the key the first time.
func (d *dpop) enable() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on {
		return nil
	}
	key, err := rsa.GenerateKey(rand.Reader, dpopKeyBits)
	if err != nil {
		return fmt.Errorf("making a DPoP key: %w", err)
	}
	enc := base64.RawURLEncoding
	d.key, d.on = key, true
	d.jwk = map[string]string{"kty": "RSA", "e": enc.EncodeToString(big.NewInt(int64(key.E)).Bytes()), "n": enc.EncodeToString(key.N.Bytes())}
	return nil
}

// setNonce keeps a nonce Okta sent in answer to a proof that carried used. It reports whether a retry
// would carry another nonce than used (another token source may have stored this one already).
func (d *dpop) setNonce(nonce, used string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if nonce == "" || !headerSafe(nonce) {
		return false
	}
	d.nonce = nonce
	return nonce != used
}

// proof signs a DPoP proof for a request: method and target, the access token it carries (none for a
// token request), with the last nonce when withNonce; it returns the nonce it put in.
func (d *dpop) proof(method, target string, now time.Time, accessToken string, withNonce bool) (jwt, nonce string, err error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", "", fmt.Errorf("DPoP proof for %q: %w", target, err)
	}
	u.RawQuery, u.Fragment = "", "" // htu is the target URI without query and fragment (RFC 9449, 4.2)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", "", fmt.Errorf("making a jti: %w", err)
	}
	claims := map[string]any{"htm": method, "htu": u.String(), "iat": now.Unix(), "jti": hex.EncodeToString(jti)}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	d.mu.Lock()
	key, jwk := d.key, d.jwk
	if withNonce && d.nonce != "" {
		nonce = d.nonce
		claims["nonce"] = nonce
	}
	d.mu.Unlock()
	jwt, err = shared.SignRS256Header(key, map[string]any{"typ": "dpop+jwt", "jwk": jwk}, claims)
	if err != nil {
		return "", "", fmt.Errorf("signing the DPoP proof: %w", err)
	}
	return jwt, nonce, nil
}
