package okta

import (
	"slices"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// TestDPoP: a service app that requires DPoP (Okta's default for new API service apps) is read: the
// agent learns it from the token endpoint, sends proofs with Okta's nonce, and calls the API with DPoP
// tokens and per-call proofs, which the fake verifies (signature, htm, htu, iat, jti, nonce, ath, key
// binding). A new nonce and revoked tokens cost one more token request each, and the System Log poller's
// token of its own uses the same key.
func TestDPoP(t *testing.T) {
	e := newEnv(t)
	e.fake.AddClient(clientID, &testKey().PublicKey, keyID, "okta.groups.read", "okta.logs.read")
	e.fake.RequireDPoP(clientID, true)
	s := e.source(t, oauth, nil)
	got, err := s.Groups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || !slices.Equal(got[0].Members, wantML.Members) {
		t.Errorf("groups = %v", got)
	}
	// Without a proof, with a proof but no nonce, with both.
	if n := e.fake.TokenRequests(); n != 3 {
		t.Errorf("%d token requests, want 3", n)
	}

	e.fake.RotateDPoPNonce()
	e.fake.RevokeAccessTokens()
	if _, err := s.Groups(t.Context()); err != nil {
		t.Fatalf("after a new nonce: %v", err)
	}
	// The API's 401, then use_dpop_nonce, then the token.
	if n := e.fake.TokenRequests(); n != 5 {
		t.Errorf("%d token requests after a new nonce, want 5", n)
	}

	p := s.LogPoller(&memCursors{})
	if _, _, err := poll(t, p); err != nil {
		t.Fatal(err)
	}
	e.fake.AddMember("00g004", "00u1")
	if keys, _, err := poll(t, p); err != nil || !slices.Equal(keys, []queuekey.Key{group("00g004")}) {
		t.Errorf("log poll with DPoP: keys %v, err %v", keys, err)
	}
	if n := e.fake.TokenRequests(); n != 6 {
		t.Errorf("%d token requests after the log poller's, want 6: it knows DPoP and the nonce already", n)
	}
}

// TestDPoPRefused: when Okta refuses the agent's proofs, the error says how to turn DPoP off.
func TestDPoPRefused(t *testing.T) {
	for _, code := range []string{"invalid_dpop_proof", "use_dpop_nonce"} {
		msg := (&APIError{Status: 400, Code: code, Summary: "The DPoP proof signature is invalid."}).Error()
		if !strings.Contains(msg, `General tab, General Settings, Edit, and under Proof of possession clear "Require Demonstrating Proof of Possession (DPoP) header in token requests"`) {
			t.Errorf("%s: %s", code, msg)
		}
	}
}

// TestNoDPoPUnlessAsked: an app that does not require DPoP is sent no proof (the fake refuses one).
func TestNoDPoPUnlessAsked(t *testing.T) {
	e := newEnv(t)
	if _, err := e.source(t, oauth, nil).Groups(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

// TestDPoPConcurrent: the group reads and the System Log poller find out about DPoP at the same time,
// with tokens of their own; both get through (a token request sent without a proof, or with an old
// nonce, just before the other learned better is retried).
func TestDPoPConcurrent(t *testing.T) {
	e := newEnv(t)
	e.fake.AddClient(clientID, &testKey().PublicKey, keyID, "okta.groups.read", "okta.logs.read")
	e.fake.RequireDPoP(clientID, true)
	s := e.source(t, oauth, nil)
	p := s.LogPoller(&memCursors{})
	errs := make(chan error, 2)
	go func() { _, err := s.Groups(t.Context()); errs <- err }()
	go func() { _, _, err := poll(t, p); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
