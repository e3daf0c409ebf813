package okta

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	shared "github.com/byob-agent/byob-agent/source/internal/oauth"
)

const (
	// groupsScope is the least the group reads need: okta.groups.read covers listing groups, reading one
	// and listing a group's member users (Okta's Groups API names it for all three); okta.users.read
	// would only add the Users API, which the agent does not call.
	groupsScope = "okta.groups.read"
	// logsScope is what GET /api/v1/logs needs (https://developer.okta.com/docs/api/resources/system_log),
	// asked for in a token of its own so that the group reads keep working where it is not granted.
	logsScope     = "okta.logs.read"
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// assertionLife is well inside Okta's one-hour maximum: an assertion is used once, right away.
	assertionLife = 5 * time.Minute
)

// tokenSource gets access tokens from the org authorization server with client credentials and a
// private_key_jwt client assertion, and caches each until shortly before it expires.
type tokenSource struct {
	clientID, keyID, endpoint string
	scope                     string // the one scope its tokens carry
	key                       *rsa.PrivateKey
	cache                     *shared.Cache
}

func newTokenSource(clientID, keyID string, key *rsa.PrivateKey, endpoint, scope string, now func() time.Time) *tokenSource {
	return &tokenSource{clientID: clientID, keyID: keyID, key: key, endpoint: endpoint, scope: scope, cache: shared.NewCache(shared.CacheOptions{
		// Measured from before the request, and refreshed a minute early (half the lifetime if shorter),
		// so that a request never starts with a token about to lapse.
		Margin:    func(life time.Duration) time.Duration { return min(time.Minute, life/2) },
		Now:       now,
		FromStart: true,
	})}
}

// forget drops tok from the cache if it is still the cached token.
func (t *tokenSource) forget(tok string) { t.cache.Forget(tok) }

// withScope is a token source for the same client whose tokens carry scope, with a cache of its own.
func (t *tokenSource) withScope(scope string, now func() time.Time) *tokenSource {
	return newTokenSource(t.clientID, t.keyID, t.key, t.endpoint, scope, now)
}

func (t *tokenSource) token(ctx context.Context, s *Source) (string, error) {
	return t.cache.Token(ctx, func(ctx context.Context) (string, time.Duration, error) { return t.fetch(ctx, s) })
}

// fetch gets an access token. Without DPoP the first request carries no proof; Okta's answers then say
// what it wants: invalid_dpop_proof (proofs required) turns DPoP on, use_dpop_nonce brings the nonce to
// put in the next proof. Each only leads to one more request when it changes something.
func (t *tokenSource) fetch(ctx context.Context, s *Source) (string, time.Duration, error) {
	var resp *response
	var sent sentProof
	var err error
	var ae *APIError
	for range 3 {
		resp, sent, err = t.request(ctx, s)
		if !errors.As(err, &ae) {
			break
		}
		if ae.Code == "invalid_dpop_proof" && !sent.proof {
			if derr := s.dpop.enable(); derr != nil {
				return "", 0, derr
			}
			continue
		}
		if ae.Code == "use_dpop_nonce" && sent.proof && s.dpop.setNonce(ae.dpopNonce, sent.nonce) {
			continue
		}
		break
	}
	if errors.As(err, &ae) && ae.Code == "invalid_scope" {
		ae.hint = "the agent requests only the scope " + t.scope + ": grant it to the service app (Okta API Scopes tab)"
	}
	if err != nil {
		return "", 0, fmt.Errorf("getting an access token for client %s: %w", t.clientID, err)
	}
	var tr struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	wantType := "Bearer"
	if sent.proof {
		wantType = "DPoP"
	}
	switch {
	case json.Unmarshal(resp.body, &tr) != nil:
		return "", 0, errors.New("getting an access token: the token endpoint's answer is not JSON")
	case !strings.EqualFold(tr.TokenType, wantType):
		return "", 0, fmt.Errorf("getting an access token: token type %q, want %s", clean(tr.TokenType), wantType)
	case !headerSafe(tr.AccessToken) || tr.ExpiresIn <= 0:
		return "", 0, errors.New("getting an access token: the answer lacks a usable access_token or expires_in")
	}
	return tr.AccessToken, time.Duration(tr.ExpiresIn) * time.Second, nil
}

// sentProof is what the last attempt of a token request carried: a DPoP proof, with which nonce.
type sentProof struct {
	proof bool
	nonce string
}

// request makes one token request, with a DPoP proof once Okta asked for them.
func (t *tokenSource) request(ctx context.Context, s *Source) (*response, sentProof, error) {
	var sent sentProof
	resp, err := s.send(ctx, func() (*http.Request, error) {
		assertion, err := t.assertion(s.now())
		if err != nil {
			return nil, err
		}
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"scope":                 {t.scope},
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
		sent = sentProof{}
		if s.dpop.enabled() {
			proof, nonce, err := s.dpop.proof(http.MethodPost, t.endpoint, s.now(), "", true)
			if err != nil {
				return nil, err
			}
			req.Header.Set("DPoP", proof)
			sent = sentProof{proof: true, nonce: nonce}
		}
		return req, nil
	})
	return resp, sent, err
}

// assertion signs a fresh client assertion: RS256, iss = sub = client id, aud = the token endpoint, a
// unique jti (Okta refuses a replayed one) and a short exp.
func (t *tokenSource) assertion(now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("making a jti: %w", err)
	}
	claims := map[string]any{
		"iss": t.clientID, "sub": t.clientID, "aud": t.endpoint,
		"iat": now.Unix(), "exp": now.Add(assertionLife).Unix(), "jti": hex.EncodeToString(jti),
	}
	a, err := shared.SignRS256(t.key, t.keyID, claims)
	if err != nil {
		return "", fmt.Errorf("signing the client assertion: %w", err)
	}
	return a, nil
}

// parseRSAKey reads a PKCS#1 or PKCS#8 RSA private key of at least 2048 bits. Its errors describe the
// problem without echoing any of the input.
func parseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	key, err := shared.ParseRSAKey(pemBytes)
	if err != nil {
		return nil, err
	}
	if key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits, Okta requires at least 2048", key.N.BitLen())
	}
	return key, nil
}
