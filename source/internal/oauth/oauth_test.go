package oauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignRS256Verifies(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := SignRS256(key, "k1", map[string]any{"iss": "me", "aud": "you"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if !strings.Contains(string(header), `"alg":"RS256"`) || !strings.Contains(string(header), `"kid":"k1"`) {
		t.Errorf("header %s", header)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
}

func TestParseRSAKey(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	for _, in := range [][]byte{good, pkcs1} {
		if got, err := ParseRSAKey(in); err != nil || !got.Equal(key) {
			t.Errorf("ParseRSAKey: %v", err)
		}
		if got, err := ParseRSAKeyAnyBlock(in); err != nil || !got.Equal(key) {
			t.Errorf("ParseRSAKeyAnyBlock: %v", err)
		}
	}
	var ke *KeyError
	if _, err := ParseRSAKey([]byte("not a key")); !errors.As(err, &ke) || ke.Reason != NoPEM {
		t.Errorf("garbage: %v", err)
	}
	if _, err := ParseRSAKey(good[:len(good)/2]); err == nil || strings.Contains(err.Error(), string(good[40:60])) {
		t.Errorf("a broken key: %v (must not quote the key)", err)
	}
}

func TestCacheFetchesOnceAndForgets(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := NewCache(CacheOptions{Now: func() time.Time { return now }, Margin: func(time.Duration) time.Duration { return time.Minute }})
	var fetches atomic.Int32
	fetch := func(context.Context) (string, time.Duration, error) {
		n := fetches.Add(1)
		time.Sleep(5 * time.Millisecond)
		return "tok" + string(rune('0'+n)), time.Hour, nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tok, err := c.Token(t.Context(), fetch); err != nil || tok != "tok1" {
				t.Errorf("Token = %q, %v", tok, err)
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 8 concurrent callers, want 1", n)
	}
	c.Forget("someone-else")
	if tok, _ := c.Token(t.Context(), fetch); tok != "tok1" {
		t.Errorf("forgetting another token dropped ours: %q", tok)
	}
	c.Forget("tok1")
	if tok, _ := c.Token(t.Context(), fetch); tok != "tok2" {
		t.Errorf("after Forget: %q, want a new token", tok)
	}
	now = now.Add(59*time.Minute + time.Second) // inside the refresh margin
	if tok, _ := c.Token(t.Context(), fetch); tok != "tok3" {
		t.Errorf("near expiry: %q, want a fresh token", tok)
	}
}
