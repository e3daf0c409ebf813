package okta

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	scopes        = "okta.groups.read okta.users.read"
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// assertionLife is well inside Okta's one-hour maximum: an assertion is used once, right away.
	assertionLife = 5 * time.Minute
)

// tokenSource gets access tokens from the org authorization server with client credentials and a
// private_key_jwt client assertion, and caches each until shortly before it expires.
type tokenSource struct {
	clientID, keyID, endpoint string
	key                       *rsa.PrivateKey

	fetch chan struct{} // one fetch at a time; a channel so that waiting for it honours ctx

	mu        sync.Mutex
	cached    string
	refreshAt time.Time
}

func newTokenSource(clientID, keyID string, key *rsa.PrivateKey, endpoint string) *tokenSource {
	return &tokenSource{clientID: clientID, keyID: keyID, key: key, endpoint: endpoint, fetch: make(chan struct{}, 1)}
}

func (t *tokenSource) current(now time.Time) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cached != "" && now.Before(t.refreshAt) {
		return t.cached
	}
	return ""
}

// forget drops tok from the cache if it is still the cached token.
func (t *tokenSource) forget(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cached == tok {
		t.cached = ""
	}
}

func (t *tokenSource) token(ctx context.Context, s *Source) (string, error) {
	if tok := t.current(s.now()); tok != "" {
		return tok, nil
	}
	select {
	case t.fetch <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-t.fetch }()
	if tok := t.current(s.now()); tok != "" { // another caller fetched it while we waited
		return tok, nil
	}
	start := s.now()
	resp, err := s.send(ctx, func() (*http.Request, error) {
		assertion, err := t.assertion(s.now())
		if err != nil {
			return nil, err
		}
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"scope":                 {scopes},
			"client_assertion_type": {assertionType},
			"client_assertion":      {assertion},
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, fmt.Errorf("building token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", userAgent)
		return req, nil
	})
	if err != nil {
		return "", fmt.Errorf("getting an access token for client %s: %w", t.clientID, err)
	}
	var tr struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	switch {
	case json.Unmarshal(resp.body, &tr) != nil:
		return "", errors.New("getting an access token: the token endpoint's answer is not JSON")
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		return "", fmt.Errorf("getting an access token: token type %q, want Bearer (turn off \"Require DPoP\" on the service app)", clean(tr.TokenType))
	case !headerSafe(tr.AccessToken) || tr.ExpiresIn <= 0:
		return "", errors.New("getting an access token: the answer lacks a usable access_token or expires_in")
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	t.mu.Lock()
	defer t.mu.Unlock()
	// Measured from before the request, and refreshed a minute early (half the lifetime if shorter),
	// so that a request never starts with a token about to lapse.
	t.cached, t.refreshAt = tr.AccessToken, start.Add(life-min(time.Minute, life/2))
	return t.cached, nil
}

// assertion signs a fresh client assertion: RS256, iss = sub = client id, aud = the token endpoint, a
// unique jti (Okta refuses a replayed one) and a short exp.
func (t *tokenSource) assertion(now time.Time) (string, error) {
	header := map[string]string{"alg": "RS256", "typ": "JWT"}
	if t.keyID != "" {
		header["kid"] = t.keyID
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("making a jti: %w", err)
	}
	claims := map[string]any{
		"iss": t.clientID, "sub": t.clientID, "aud": t.endpoint,
		"iat": now.Unix(), "exp": now.Add(assertionLife).Unix(), "jti": hex.EncodeToString(jti),
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("encoding assertion header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding assertion claims: %w", err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, t.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("signing the client assertion: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// parseRSAKey reads a PKCS#1 or PKCS#8 RSA private key. Its errors describe the problem without
// echoing any of the input.
func parseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a valid PKCS#1 RSA private key")
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a valid PKCS#8 private key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T, but RS256 needs an RSA key", k)
		}
		key = rk
	default:
		return nil, fmt.Errorf("PEM block %q, want \"PRIVATE KEY\" or \"RSA PRIVATE KEY\"", block.Type)
	}
	if key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits, Okta requires at least 2048", key.N.BitLen())
	}
	return key, nil
}
