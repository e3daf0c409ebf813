package directoryfake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// token implements the JWT bearer grant of https://oauth2.googleapis.com/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthErr(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(w, http.StatusBadRequest, "invalid_request", "Malformed form body")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthErr(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
		return
	}
	claims, problem := s.verifyAssertion(r.PostForm.Get("assertion"))
	if problem != "" {
		oauthErr(w, http.StatusBadRequest, "invalid_grant", problem)
		return
	}
	if !strings.EqualFold(claims.Sub, s.Admin) {
		oauthErr(w, http.StatusBadRequest, "invalid_grant", "Invalid email or User ID")
		return
	}
	scopes := map[string]bool{}
	for _, sc := range strings.Fields(claims.Scope) {
		scopes[sc] = true
	}
	if len(scopes) == 0 {
		oauthErr(w, http.StatusBadRequest, "invalid_scope", "Empty or missing scope not allowed.")
		return
	}
	for sc := range scopes {
		if !s.delegated[sc] {
			oauthErr(w, http.StatusUnauthorized, "unauthorized_client",
				"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")
			return
		}
	}
	tok := "ya29.fake-" + randomHex(24)
	s.mu.Lock()
	s.tokens[tok] = issued{scopes: scopes, expiry: s.now().Add(tokenLifetime)}
	s.issued = append(s.issued, tok)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_in":   int(tokenLifetime / time.Second),
		"token_type":   "Bearer",
	})
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// verifyAssertion checks the JWT as Google does and returns what is wrong in Google's words.
func (s *Server) verifyAssertion(a string) (jwtClaims, string) {
	const badSig = "Invalid JWT Signature."
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return jwtClaims{}, "Invalid JWT: not a compact JWS"
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return jwtClaims{}, "Invalid JWT: not base64url"
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if json.Unmarshal(hb, &h) != nil || h.Alg != "RS256" {
		return jwtClaims{}, "Invalid JWT: alg must be RS256"
	}
	if h.Kid != "" && h.Kid != s.KeyID {
		return jwtClaims{}, badSig
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return jwtClaims{}, badSig
	}
	var c jwtClaims
	if json.Unmarshal(cb, &c) != nil {
		return jwtClaims{}, "Invalid JWT: claims are not a JSON object"
	}
	now := s.now()
	iat, exp := time.Unix(c.Iat, 0), time.Unix(c.Exp, 0)
	switch {
	case c.Iss != s.ClientEmail:
		return jwtClaims{}, badSig
	case c.Aud != s.TokenURI:
		return jwtClaims{}, "Invalid JWT: aud must be " + s.TokenURI
	case c.Iat == 0 || c.Exp == 0 || iat.After(now.Add(allowedSkew)) || !exp.After(now) ||
		!exp.After(iat) || exp.Sub(iat) > time.Hour:
		return jwtClaims{}, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	return c, ""
}

// authorize checks the bearer token and that it carries one of the scopes; it writes the error answer.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, anyOf ...string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		apiErr(w, http.StatusUnauthorized, "required", "Login Required.")
		return false
	}
	s.mu.Lock()
	t, ok := s.tokens[tok]
	s.mu.Unlock()
	if !ok || !s.now().Before(t.expiry) {
		apiErr(w, http.StatusUnauthorized, "authError", "Invalid Credentials")
		return false
	}
	for _, sc := range anyOf {
		if t.scopes[sc] {
			return true
		}
	}
	apiErr(w, http.StatusForbidden, "insufficientPermissions", "Request had insufficient authentication scopes.")
	return false
}

func oauthErr(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}
