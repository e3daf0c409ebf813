package oktafake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	tokenLifetime = time.Hour
	// maxAssertionLife is Okta's limit on a client assertion's exp; clockSkew what the fake tolerates on iat.
	maxAssertionLife = time.Hour
	clockSkew        = time.Minute
)

// token is the org authorization server's token endpoint, client credentials with private_key_jwt only.
func (s *Server) token(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "The token endpoint accepts POST only.")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "The request must be form-encoded.")
		return
	}
	if r.URL.RawQuery != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Parameters must be sent in the request body.")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "The request body is malformed.")
		return
	}
	for k, v := range r.PostForm {
		if !slices.Contains([]string{"grant_type", "scope", "client_assertion_type", "client_assertion", "client_id"}, k) {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Unsupported parameter "+k+".")
			return
		}
		if len(v) != 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Parameter "+k+" given more than once.")
			return
		}
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server.")
		return
	}
	if f.Get("client_assertion_type") != assertionType {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "The client_assertion_type is invalid.")
		return
	}
	clientID, err := s.verifyAssertion(f.Get("client_assertion"), s.URL+"/oauth2/v1/token", now)
	if err != nil {
		oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	if id := f.Get("client_id"); id != "" && id != clientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "The client_id does not match the client_assertion.")
		return
	}
	c := s.clients[clientID]
	// DPoP (dpop.go); the order relative to the scope check is an inference.
	var bound dpopProof
	switch proof := r.Header.Get("DPoP"); {
	case c.dpop && proof == "":
		oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", "The DPoP proof JWT header is missing.")
		return
	case !c.dpop && proof != "":
		oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", "DPoP proof sent for a client that does not require DPoP (oktafake).")
		return
	case c.dpop:
		bound, err = s.verifyProof(proof, http.MethodPost, s.URL+"/oauth2/v1/token", "", now)
		if errors.Is(err, errNonce) {
			w.Header().Set("DPoP-Nonce", s.dpopNonce)
			oauthError(w, http.StatusBadRequest, "use_dpop_nonce", err.Error())
			return
		}
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", err.Error())
			return
		}
	}
	scopes := strings.Fields(f.Get("scope"))
	if len(scopes) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "The authorization server requires a scope for the client credentials flow.")
		return
	}
	var denied []string
	for _, sc := range scopes {
		if !slices.Contains(c.scopes, sc) {
			denied = append(denied, sc)
		}
	}
	if len(denied) > 0 {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "The following scopes are not allowed: "+strings.Join(denied, " "))
		return
	}
	tok := randomHex(24)
	s.access[tok] = accessToken{scopes: scopes, expiry: now.Add(tokenLifetime), noRole: c.noRole, jkt: bound.jkt}
	tokenType := "Bearer"
	if bound.jkt != "" {
		tokenType = "DPoP"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": tokenType, "expires_in": int(tokenLifetime.Seconds()), "access_token": tok, "scope": strings.Join(scopes, " "),
	})
}

// verifyAssertion checks a client assertion as Okta documents it: an RS256 JWT signed with a key
// registered for the client, iss = sub = client id, aud = the token endpoint, exp within the hour, and a
// jti never seen before. It returns the client id.
func (s *Server) verifyAssertion(jwt, audience string, now time.Time) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("The client_assertion is not a JWT.")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp *int64          `json:"exp"`
		Iat *int64          `json:"iat"`
		Jti string          `json:"jti"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return "", errors.New("The client_assertion header is malformed.")
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return "", errors.New("The client_assertion claims are malformed.")
	}
	if header.Alg != "RS256" {
		return "", fmt.Errorf("The client_assertion algorithm %q is not supported.", header.Alg)
	}
	c := s.clients[claims.Iss]
	if c == nil {
		return "", errors.New("The client_id is invalid.")
	}
	if header.Kid != "" && c.keyID != "" && header.Kid != c.keyID {
		return "", errors.New("The client_assertion kid does not match a registered key.")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", errors.New("The client_assertion signature is malformed.")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(c.key, crypto.SHA256, digest[:], sig) != nil {
		return "", errors.New("The client_assertion signature is invalid.")
	}
	var aud string
	if json.Unmarshal(claims.Aud, &aud) != nil || aud != audience {
		return "", errors.New("The audience claim for client_assertion must be the endpoint invoked for the request.")
	}
	if claims.Sub != claims.Iss {
		return "", errors.New("The client_assertion sub must equal iss.")
	}
	if claims.Exp == nil || claims.Iat == nil {
		return "", errors.New("The client_assertion must carry exp and iat.")
	}
	exp, iat := time.Unix(*claims.Exp, 0), time.Unix(*claims.Iat, 0)
	switch {
	case !now.Before(exp):
		return "", errors.New("The client_assertion token is expired.")
	case exp.Sub(now) > maxAssertionLife:
		return "", errors.New("The client_assertion token has an expiration too far into the future.")
	case iat.After(now.Add(clockSkew)):
		return "", errors.New("The client_assertion token was issued in the future.")
	case claims.Jti == "":
		return "", errors.New("The client_assertion must carry a jti.")
	case s.usedJTI[claims.Jti]:
		return "", errors.New("The client_assertion token has already been used.")
	}
	s.usedJTI[claims.Jti] = true
	return claims.Iss, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// AddClient registers an OAuth service app authenticating with private_key_jwt. keyID, when set, must
// match a kid the assertion names. scopes are the granted Okta API scopes.
func (s *Server) AddClient(clientID string, key *rsa.PublicKey, keyID string, scopes ...string) {
	s.with(func() { s.clients[clientID] = &oauthClient{key: key, keyID: keyID, scopes: scopes} })
}

// RequireDPoP turns the service app's "Require DPoP header in token requests" setting on or off: with it
// on, tokens need DPoP proofs and are bound to the proof key (dpop.go).
func (s *Server) RequireDPoP(clientID string, on bool) {
	s.with(func() { s.client(clientID).dpop = on })
}

// SetAdminRole gives the service app an admin role (true, the default of AddClient, so that existing
// tests read groups) or takes every role away (false). Without one, Okta still issues tokens, but the
// Groups API answers 403 E0000006 (inference from Okta's "admin roles aren't automatically assigned to
// apps", https://developer.okta.com/docs/reference/api/roles; the exact error body is the one Okta
// gives any call without permission).
func (s *Server) SetAdminRole(clientID string, assigned bool) {
	s.with(func() { s.client(clientID).noRole = !assigned })
}

func (s *Server) client(id string) *oauthClient {
	c := s.clients[id]
	if c == nil {
		panic(fmt.Sprintf("oktafake: unknown client %q", id))
	}
	return c
}

// RotateDPoPNonce makes the token endpoint want a new nonce, as Okta does daily.
func (s *Server) RotateDPoPNonce() { s.with(func() { s.dpopNonce = randomHex(16) }) }

// RevokeAccessTokens invalidates every access token issued so far.
func (s *Server) RevokeAccessTokens() { s.with(func() { clear(s.access) }) }

// authenticate returns the access token's scopes for OAuth (and whether its app lacks an admin role),
// nil for an API token (which carries the permissions of its admin), and false when neither is valid.
func (s *Server) authenticate(r *http.Request, now time.Time) (scopes []string, noRole, ok bool) {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "SSWS "); ok && s.apiTokens[tok] {
		return nil, false, true
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && r.Header.Get("DPoP") == "" {
		if at, found := s.access[tok]; found && now.Before(at.expiry) && at.jkt == "" {
			return at.scopes, at.noRole, true
		}
	}
	if tok, ok := strings.CutPrefix(h, "DPoP "); ok {
		if at, found := s.access[tok]; found && now.Before(at.expiry) && at.jkt != "" {
			p, err := s.verifyProof(r.Header.Get("DPoP"), r.Method, s.URL+r.URL.Path, tok, now)
			if err == nil && p.jkt == at.jkt {
				return at.scopes, at.noRole, true
			}
		}
	}
	return nil, false, false
}
