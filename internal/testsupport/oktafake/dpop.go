package oktafake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// DPoP (RFC 9449) as Okta documents it for its org authorization server and its own APIs
// (https://developer.okta.com/docs/guides/dpop/oktaresourceserver/main/):
//   - an app that requires DPoP gets no token without a proof: 400 invalid_dpop_proof "The DPoP proof
//     JWT header is missing." (seen from live orgs);
//   - a proof is a JWT with header typ dpop+jwt, an asymmetric alg and the public jwk, and claims htm,
//     htu, iat and a jti never used before; the token endpoint also wants the nonce it hands out in the
//     DPoP-Nonce header of a 400 use_dpop_nonce "Authorization server requires nonce in DPoP proof.";
//   - the token comes back with token_type DPoP, bound to the proof key's thumbprint (cnf.jkt);
//   - an API call carries `Authorization: DPoP <token>` and a proof with htm, htu, iat, jti and ath (the
//     base64url SHA-256 of the token), made with the bound key; Okta needs no nonce there.
// The fake verifies RS256 proofs, the algorithm Okta's guide uses; other algorithms are refused as not
// implemented. Inferences: iat may be at most dpopMaxAge old and clockSkew ahead; a DPoP-bound token
// presented as a Bearer token is refused (RFC 9449, 7.1); an app that does not require DPoP is sent no
// proofs by a correct client, so a proof there is refused as a test mistake.

const dpopMaxAge = 5 * time.Minute

type dpopProof struct {
	jkt string // the RFC 7638 thumbprint of the proof's key
}

// errNonce is a proof without the current nonce, answered with use_dpop_nonce.
var errNonce = errors.New("Authorization server requires nonce in DPoP proof.")

// verifyProof checks a DPoP proof for a request to htu with method; accessToken is the token it must
// carry the hash of ("" for a token request, which needs the nonce instead).
func (s *Server) verifyProof(jwt, method, htu, accessToken string, now time.Time) (dpopProof, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return dpopProof{}, errors.New("The DPoP proof is not a JWT.")
	}
	var header struct {
		Typ string            `json:"typ"`
		Alg string            `json:"alg"`
		JWK map[string]string `json:"jwk"`
	}
	var claims struct {
		Htm   string `json:"htm"`
		Htu   string `json:"htu"`
		Iat   *int64 `json:"iat"`
		Jti   string `json:"jti"`
		Ath   string `json:"ath"`
		Nonce string `json:"nonce"`
	}
	if decodeSegment(parts[0], &header) != nil || decodeSegment(parts[1], &claims) != nil {
		return dpopProof{}, errors.New("The DPoP proof is malformed.")
	}
	switch {
	case header.Typ != "dpop+jwt":
		return dpopProof{}, errors.New("The DPoP proof typ must be dpop+jwt.")
	case header.Alg != "RS256":
		return dpopProof{}, fmt.Errorf("The DPoP proof algorithm %q is not supported (oktafake implements RS256).", header.Alg)
	case header.JWK["kty"] != "RSA" || header.JWK["d"] != "" || header.JWK["p"] != "":
		return dpopProof{}, errors.New("The DPoP proof jwk must be a public RSA key.")
	}
	key, err := rsaPublicKey(header.JWK)
	if err != nil {
		return dpopProof{}, err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err != nil || rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) != nil {
		return dpopProof{}, errors.New("The DPoP proof signature is invalid.")
	}
	switch {
	case claims.Htm != method:
		return dpopProof{}, fmt.Errorf("The DPoP proof htm %q does not match the request method.", claims.Htm)
	case claims.Htu != htu:
		return dpopProof{}, fmt.Errorf("The DPoP proof htu %q does not match the request URI.", claims.Htu)
	case claims.Iat == nil || time.Unix(*claims.Iat, 0).Before(now.Add(-dpopMaxAge)) || time.Unix(*claims.Iat, 0).After(now.Add(clockSkew)):
		return dpopProof{}, errors.New("The DPoP proof iat is missing or not recent.")
	case claims.Jti == "" || s.usedDPoPJTI[claims.Jti]:
		return dpopProof{}, errors.New("The DPoP proof jti is missing or was used before.")
	}
	if accessToken == "" && claims.Nonce != s.dpopNonce {
		return dpopProof{}, errNonce
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if claims.Ath != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return dpopProof{}, errors.New("The DPoP proof ath does not match the access token.")
		}
	}
	s.usedDPoPJTI[claims.Jti] = true
	thumb := sha256.Sum256([]byte(`{"e":"` + header.JWK["e"] + `","kty":"RSA","n":"` + header.JWK["n"] + `"}`))
	return dpopProof{jkt: base64.RawURLEncoding.EncodeToString(thumb[:])}, nil
}

func rsaPublicKey(jwk map[string]string) (*rsa.PublicKey, error) {
	n, err1 := base64.RawURLEncoding.DecodeString(jwk["n"])
	e, err2 := base64.RawURLEncoding.DecodeString(jwk["e"])
	if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("The DPoP proof jwk is not a usable RSA key of at least 2048 bits.")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
}
