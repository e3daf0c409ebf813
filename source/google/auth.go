package google

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/source/internal/oauth"
)

const (
	// Scopes is the one scope the admin grants the service account's client ID under domain-wide
	// delegation (Security > API controls), and all the agent requests. admin.directory.group.readonly is
	// the least scope that every call the agent makes accepts: groups.list and groups.get take it or
	// admin.directory.group, members.list takes it or one of the member scopes ("Authorization scopes" on
	// developers.google.com/workspace/admin/directory/reference/rest/v1/groups/list, .../groups/get and
	// .../members/list). Requesting a scope that was not delegated fails the whole token request
	// (unauthorized_client), so asking for less than this would break, and more would ask admins for more.
	Scopes = "https://www.googleapis.com/auth/admin.directory.group.readonly"

	defaultTokenURI = "https://oauth2.googleapis.com/token"
	jwtBearerGrant  = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// Google refuses assertions living longer than an hour.
	assertionLifetime = time.Hour
	// iat is back-dated a little so that a server clock slightly behind ours does not see a future token.
	clockSkew = 10 * time.Second
	// A cached token is replaced this long before Google says it expires, so no request carries a token
	// that dies in flight.
	refreshMargin = time.Minute
)

// credentials is what the agent needs from a service account key file.
type credentials struct {
	email    string
	keyID    string
	tokenURI string
	key      *rsa.PrivateKey
}

// parseCredentials reads a service account key file. Errors describe the problem without quoting the
// file: it holds a private key.
func parseCredentials(b []byte) (credentials, error) {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKeyID string `json:"private_key_id"`
		PrivateKey   string `json:"private_key"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		// encoding/json errors can quote a character of the input; report only where it broke.
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return credentials{}, fmt.Errorf("service account key is not valid JSON (at byte %d)", syn.Offset)
		}
		return credentials{}, errors.New("service account key does not have the shape of a key file")
	}
	if f.Type != "service_account" {
		return credentials{}, fmt.Errorf("service account key: type is %q, want \"service_account\"", f.Type)
	}
	if f.ClientEmail == "" {
		return credentials{}, errors.New("service account key: client_email is missing")
	}
	key, err := parseRSAKey(f.PrivateKey)
	if err != nil {
		return credentials{}, fmt.Errorf("service account key %s: %w", f.ClientEmail, err)
	}
	c := credentials{email: f.ClientEmail, keyID: f.PrivateKeyID, tokenURI: f.TokenURI, key: key}
	if c.tokenURI == "" {
		c.tokenURI = defaultTokenURI
	}
	if u, err := url.Parse(c.tokenURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return credentials{}, fmt.Errorf("service account key %s: token_uri %q is not an http(s) URL", f.ClientEmail, c.tokenURI)
	}
	return c, nil
}

// parseRSAKey accepts the PKCS#8 PEM that Google writes into key files, and PKCS#1 for hand-made ones.
// Nothing of the key can leak through its errors.
func parseRSAKey(s string) (*rsa.PrivateKey, error) {
	if s == "" {
		return nil, errors.New("private_key is missing")
	}
	k, err := oauth.ParseRSAKeyAnyBlock([]byte(s))
	var ke *oauth.KeyError
	switch {
	case err == nil:
		return k, nil
	case !errors.As(err, &ke):
		return nil, err
	case ke.Reason == oauth.NoPEM:
		return nil, errors.New("private_key is not PEM")
	case ke.Reason == oauth.NotRSA:
		return nil, errors.New("private_key is not an RSA key")
	default:
		return nil, errors.New("private_key is neither a PKCS#8 nor a PKCS#1 RSA key")
	}
}

// assertion builds the signed JWT of Google's service account flow: the service account (iss) asks
// for a token acting as the admin (sub) with the given scopes, for the token endpoint (aud).
func assertion(c credentials, subject, scopes string, now time.Time) (string, error) {
	iat := now.Add(-clockSkew)
	return oauth.SignRS256(c.key, c.keyID, map[string]any{
		"iss":   c.email,
		"sub":   subject,
		"scope": scopes,
		"aud":   c.tokenURI,
		"iat":   iat.Unix(),
		"exp":   iat.Add(assertionLifetime).Unix(),
	})
}

// tokenSource hands out the cached access token and fetches a new one when it is about to expire.
type tokenSource struct {
	creds   credentials
	subject string
	client  *http.Client
	now     func() time.Time
	retry   func(ctx context.Context, op func() error) error
	cache   *oauth.Cache
}

func newTokenSource(creds credentials, subject string, client *http.Client, now func() time.Time, retry func(context.Context, func() error) error) *tokenSource {
	return &tokenSource{creds: creds, subject: subject, client: client, now: now, retry: retry,
		cache: oauth.NewCache(oauth.CacheOptions{
			Margin: func(life time.Duration) time.Duration { return min(refreshMargin, life/2) },
			Now:    now,
		})}
}

func (ts *tokenSource) get(ctx context.Context) (string, error) {
	return ts.cache.Token(ctx, func(ctx context.Context) (string, time.Duration, error) {
		var tok tokenResponse
		err := ts.retry(ctx, func() error {
			var err error
			tok, err = ts.fetch(ctx)
			return err
		})
		if err != nil {
			return "", 0, fmt.Errorf("get access token for %s as %s: %w", ts.creds.email, ts.subject, err)
		}
		return tok.AccessToken, time.Duration(tok.ExpiresIn) * time.Second, nil
	})
}

// invalidate drops token if it is still the cached one (the API refused it: revoked, or the clock lied).
func (ts *tokenSource) invalidate(token string) { ts.cache.Forget(token) }

func (ts *tokenSource) fetch(ctx context.Context) (tokenResponse, error) {
	a, err := assertion(ts.creds, ts.subject, Scopes, ts.now())
	if err != nil {
		return tokenResponse{}, err
	}
	form := url.Values{"grant_type": {jwtBearerGrant}, "assertion": {a}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.creds.tokenURI, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	status, header, body, err := send(ctx, ts.client, req)
	if err != nil {
		return tokenResponse{}, err
	}
	if status != http.StatusOK {
		oe := decodeOAuthError(status, body)
		if status == http.StatusTooManyRequests || status >= 500 {
			return tokenResponse{}, &retryableError{err: oe, wait: retryAfter(header, ts.now())}
		}
		return tokenResponse{}, oe
	}
	return decodeToken(body)
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// maxTokenLife bounds a server-sent lifetime so a wild value cannot pin a token for ever.
const maxTokenLife = 24 * 60 * 60

func decodeToken(body []byte) (tokenResponse, error) {
	var t tokenResponse
	if err := json.Unmarshal(body, &t); err != nil {
		return tokenResponse{}, errors.New("token endpoint answered 200 with a body that is not a token response")
	}
	switch {
	case t.AccessToken == "":
		return tokenResponse{}, errors.New("token endpoint answered 200 without access_token")
	case !strings.EqualFold(t.TokenType, "Bearer"):
		return tokenResponse{}, fmt.Errorf("token endpoint answered token_type %.40q, want Bearer", t.TokenType)
	case t.ExpiresIn <= 0 || t.ExpiresIn > maxTokenLife:
		return tokenResponse{}, fmt.Errorf("token endpoint answered expires_in %d, want 1..%d", t.ExpiresIn, maxTokenLife)
	}
	return t, nil
}

// oauthError is an RFC 6749 error answer of the token endpoint, e.g. invalid_grant when the key was
// deleted or the subject is wrong, unauthorized_client when domain-wide delegation lacks a scope.
type oauthError struct {
	Status      int
	Code        string
	Description string
}

func (e *oauthError) Error() string {
	msg := fmt.Sprintf("token endpoint answered HTTP %d", e.Status)
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.Code == "unauthorized_client" {
		msg += " (is domain-wide delegation granted to this service account's client ID for " + Scopes + "?)"
	}
	return msg
}

func decodeOAuthError(status int, body []byte) *oauthError {
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &b) // a body that is not an OAuth error still leaves the status to report
	return &oauthError{Status: status, Code: clip(b.Error), Description: clip(b.Description)}
}
