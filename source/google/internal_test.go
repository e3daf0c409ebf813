package google

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAssertion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := credentials{email: "sa@p.iam.gserviceaccount.com", keyID: "kid1", tokenURI: "https://oauth2.googleapis.com/token", key: key}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	jwt, err := assertion(c, "admin@example.com", Scopes, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d parts", len(parts))
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	var header map[string]string
	var claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		t.Fatal("header or claims are not JSON")
	}
	if want := map[string]string{"alg": "RS256", "typ": "JWT", "kid": "kid1"}; !reflect.DeepEqual(header, want) {
		t.Errorf("header = %v, want %v", header, want)
	}
	iat := now.Add(-clockSkew).Unix()
	want := map[string]any{
		"iss":   "sa@p.iam.gserviceaccount.com",
		"sub":   "admin@example.com",
		"scope": "https://www.googleapis.com/auth/admin.directory.group.readonly", // the one scope the README says to delegate
		"aud":   "https://oauth2.googleapis.com/token",
		"iat":   float64(iat),
		"exp":   float64(iat + 3600),
	}
	if !reflect.DeepEqual(claims, want) {
		t.Errorf("claims = %v\nwant %v", claims, want)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		hint    time.Duration
		lo, hi  time.Duration // [lo, hi)
	}{
		{0, 0, time.Second, 2 * time.Second},
		{1, 0, 2 * time.Second, 3 * time.Second},
		{4, 0, 16 * time.Second, 17 * time.Second},
		{5, 0, 32 * time.Second, 33 * time.Second},
		{20, 0, 32 * time.Second, 33 * time.Second},
		{0, 10 * time.Second, 10 * time.Second, 10*time.Second + 1},
		{0, time.Hour, 2 * time.Minute, 2*time.Minute + 1},
	}
	p := policy
	p.Attempts = 0 // the waits alone, past the last attempt too
	for _, tt := range tests {
		for range 20 {
			if d, _ := p.Delay(tt.attempt+1, tt.hint, tt.hint > 0); d < tt.lo || d >= tt.hi {
				t.Errorf("Delay after attempt %d, Retry-After %v = %v, want [%v, %v)", tt.attempt, tt.hint, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"-3", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		if got := retryAfter(h, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

func TestMemberEmails(t *testing.T) {
	tests := []struct {
		name string
		in   []apiMember
		want []string
	}{
		{"none", nil, []string{}},
		{"lowercased, trimmed, sorted, unique", []apiMember{
			{Email: "Bob@Example.com", Type: "USER", Status: "ACTIVE"},
			{Email: " alice@example.com ", Type: "USER", Status: "ACTIVE"},
			{Email: "ALICE@example.com", Type: "USER"},
		}, []string{"alice@example.com", "bob@example.com"}},
		{"only users who can sign in", []apiMember{
			{Email: "nested@example.com", Type: "GROUP"},
			{Type: "CUSTOMER"},
			{Email: "gone@example.com", Type: "USER", Status: "SUSPENDED"},
			{Email: "ext@other.org", Type: "USER", Status: "UNDEFINED"},
			{Type: "USER", Status: "ACTIVE"},
		}, []string{"ext@other.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := memberEmails(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("memberEmails = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsAreClippedAndExplained(t *testing.T) {
	long := strings.Repeat("x", 5000)
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"code": 403, "message": long, "errors": []map[string]string{{"reason": "forbidden"}}}})
	e := decodeAPIError(403, body)
	if len(e.Error()) > 500 || !strings.Contains(e.Error(), "forbidden") {
		t.Errorf("api error not clipped or lost its reason: %d bytes", len(e.Error()))
	}
	oe := decodeOAuthError(400, []byte(`{"error":"invalid_grant","error_description":"`+long+`"}`))
	if len(oe.Error()) > 500 || !strings.Contains(oe.Error(), "invalid_grant") {
		t.Errorf("oauth error not clipped or lost its code: %d bytes", len(oe.Error()))
	}
	if got := decodeOAuthError(502, []byte("<html>bad gateway</html>")).Error(); got != "token endpoint answered HTTP 502" {
		t.Errorf("non-JSON token error = %q", got)
	}
}

// FuzzDecode feeds arbitrary bodies to every decoder: none may panic, and whatever members come out
// obey source.Group's contract (lowercased, sorted, unique, non-empty).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"members":[{"email":"B@x.com","type":"USER","status":"ACTIVE"},{"email":"a@x.com","type":"USER"},{"email":"b@X.COM","type":"USER"}],"nextPageToken":"t"}`))
	f.Add([]byte(`{"groups":[{"id":"1","email":"g@x.com","name":"G"}],"nextPageToken":""}`))
	f.Add([]byte(`{"error":{"code":429,"message":"Rate Limit Exceeded","errors":[{"reason":"rateLimitExceeded"}]}}`))
	f.Add([]byte(`{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}`))
	f.Add([]byte(`{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`))
	f.Add([]byte(`{"members":[{"email":"\u0130@x.com","type":"USER"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = decodeAPIError(403, body).Error()
		_ = decodeOAuthError(400, body).Error()
		if tok, err := decodeToken(body); err == nil && (tok.AccessToken == "" || tok.ExpiresIn <= 0) {
			t.Fatalf("decodeToken accepted %+v", tok)
		}
		var gp groupsPage
		_ = json.Unmarshal(body, &gp)
		var mp membersPage
		if json.Unmarshal(body, &mp) != nil {
			return
		}
		got := memberEmails(mp.Members)
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("members not sorted and unique: %q", got)
		}
		for _, e := range got {
			if e == "" || e != strings.ToLower(e) {
				t.Fatalf("member %q is empty or not lowercased", e)
			}
		}
	})
}
