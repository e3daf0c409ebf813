package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

var (
	genericKey1   = []byte("generic-key-one")
	genericKey2   = []byte("generic-key-two")
	genericNow    = time.Unix(1_700_000_000, 0)
	genericSecret = []byte("whsec_" + base64.StdEncoding.EncodeToString(genericKey1)) // as senders show it
)

// sign returns the webhook-signature entry of body under key.
func sign(key []byte, id, ts, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signedCall is a Standard Webhooks call sent skew after genericNow, signed under key (unsigned if nil).
func signedCall(key []byte, id string, skew time.Duration, body string) call {
	ts := strconv.FormatInt(genericNow.Add(skew).Unix(), 10)
	h := map[string]string{"webhook-id": id, "webhook-timestamp": ts}
	if key != nil {
		h["webhook-signature"] = sign(key, id, ts, body)
	}
	return call{contentType: "application/json", header: h, body: body}
}

// genericRawKey is configured as written, not base64: the reference libraries would not take it as a
// secret, so the receiver must ignore it.
var genericRawKey = []byte("generic-raw-key")

func newTestGeneric(rec *recorder, now func() time.Time) http.Handler {
	return NewGeneric(GenericOptions{
		Secrets: [][]byte{genericSecret, []byte(base64.StdEncoding.EncodeToString(genericKey2)), []byte("whsec_!!"), genericRawKey, nil},
		Now:     now, Queue: rec, Observe: rec.observer(SourceGeneric), MaxBody: 4096,
	})
}

func TestGeneric(t *testing.T) {
	with := func(c call, k, v string) call {
		h := maps.Clone(c.header)
		h[k] = v
		c.header = h
		return c
	}
	teams := `{"teams":["ml-research","vision","ml-research"]}`
	accepted := []string{OutcomeAccepted}
	unauthorized := []string{OutcomeUnauthorized}
	bad := []string{OutcomeBadRequest}
	valid := signedCall(genericKey1, "msg_1", 0, teams)
	tests := []struct {
		name string
		call call
		want want
	}{
		{"teams", valid, want{status: 204, keys: []queuekey.Key{"team:ml-research", "team:vision"}, outcomes: accepted}},
		{"groups", signedCall(genericKey1, "msg_1", 0, `{"groups":["okta:00g1","scim:2819c223-7f76"]}`),
			want{status: 204, keys: []queuekey.Key{"group:okta:00g1", "group:scim:2819c223-7f76"}, outcomes: accepted}},
		{"everything", signedCall(genericKey1, "msg_1", 0, `{}`), want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"rotated secret written without whsec_", signedCall(genericKey2, "msg_1", 0, `{"teams":["a"]}`), want{status: 204, keys: []queuekey.Key{"team:a"}, outcomes: accepted}},
		{"a secret that is not base64 is no key", signedCall(genericRawKey, "msg_1", 0, `{"teams":["a"]}`), want{status: 401, outcomes: unauthorized}},
		{"structured +json type", withType(signedCall(genericKey1, "msg_1", 0, `{"teams":["a"]}`), "application/vnd.ci+json; charset=utf-8"),
			want{status: 204, keys: []queuekey.Key{"team:a"}, outcomes: accepted}},
		// The spec recommends JSON payloads but allows other content types: a signed body the agent cannot
		// read is a trigger for everything.
		{"text body", withType(signedCall(genericKey1, "msg_1", 0, "deploy finished"), "text/plain"),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"form body", withType(signedCall(genericKey1, "msg_1", 0, "teams=a"), "application/x-www-form-urlencoded"),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"no content type", withType(signedCall(genericKey1, "msg_1", 0, `{"teams":["a"]}`), ""),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"empty JSON body", signedCall(genericKey1, "msg_1", 0, ""), want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"empty body, no content type", withType(signedCall(genericKey1, "msg_1", 0, ""), ""),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"text body unsigned", withType(signedCall(nil, "msg_1", 0, "deploy finished"), "text/plain"), want{status: 401, outcomes: unauthorized}},
		{"text body signed with the wrong key", withType(signedCall([]byte("other"), "msg_1", 0, "x"), "text/plain"), want{status: 401, outcomes: unauthorized}},
		{"text body too old", withType(signedCall(genericKey1, "msg_1", -6*time.Minute, "x"), "text/plain"), want{status: 401, outcomes: []string{OutcomeStale}}},
		{"JSON type with a body that is not JSON", withType(signedCall(genericKey1, "msg_1", 0, "deploy finished"), "application/json"),
			want{status: 400, outcomes: bad}},
		{"one valid signature among several", with(valid, "webhook-signature", "v1,AAAA v1a,xyz "+valid.header["webhook-signature"]+" v1,!!"),
			want{status: 204, keys: []queuekey.Key{"team:ml-research", "team:vision"}, outcomes: accepted}},
		{"skew within tolerance", signedCall(genericKey1, "msg_1", -4*time.Minute, `{}`), want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"wrong key", signedCall([]byte("other"), "msg_1", 0, teams), want{status: 401, outcomes: unauthorized}},
		{"undecoded whsec secret is not a key", signedCall([]byte("whsec_!!"), "msg_1", 0, teams), want{status: 401, outcomes: unauthorized}},
		{"no signature", signedCall(nil, "msg_1", 0, teams), want{status: 401, outcomes: unauthorized}},
		{"no id", with(valid, "webhook-id", ""), want{status: 401, outcomes: unauthorized}},
		{"no timestamp", with(valid, "webhook-timestamp", ""), want{status: 401, outcomes: unauthorized}},
		{"other id", with(valid, "webhook-id", "msg_2"), want{status: 401, outcomes: unauthorized}},
		{"other timestamp", with(valid, "webhook-timestamp", "1700000001"), want{status: 401, outcomes: unauthorized}},
		{"tampered body", func() call { c := valid; c.body = `{"teams":["vision"]}`; return c }(), want{status: 401, outcomes: unauthorized}},
		{"asymmetric signature only", with(valid, "webhook-signature", "v1a,"+strings.TrimPrefix(valid.header["webhook-signature"], "v1,")),
			want{status: 401, outcomes: unauthorized}},
		{"too old", signedCall(genericKey1, "msg_1", -6*time.Minute, `{}`), want{status: 401, outcomes: []string{OutcomeStale}}},
		{"too far ahead", signedCall(genericKey1, "msg_1", 6*time.Minute, `{}`), want{status: 401, outcomes: []string{OutcomeStale}}},
		{"signed timestamp not a number", func() call {
			c := with(valid, "webhook-timestamp", "soon")
			return with(c, "webhook-signature", sign(genericKey1, "msg_1", "soon", teams))
		}(), want{status: 400, outcomes: bad}},
		{"signed id too long", signedCall(genericKey1, strings.Repeat("i", maxWebhookIDLength+1), 0, `{}`), want{status: 400, outcomes: bad}},
		{"invalid team name", signedCall(genericKey1, "msg_1", 0, `{"teams":["Not A Team"]}`), want{status: 400, outcomes: bad}},
		{"invalid group", signedCall(genericKey1, "msg_1", 0, `{"groups":["00g1"]}`), want{status: 400, outcomes: bad}},
		{"unknown field", signedCall(genericKey1, "msg_1", 0, `{"team":["a"]}`), want{status: 400, outcomes: bad}},
		{"invalid JSON", signedCall(genericKey1, "msg_1", 0, `{"teams":`), want{status: 400, outcomes: bad}},
		{"trailing data", signedCall(genericKey1, "msg_1", 0, `{} {}`), want{status: 400, outcomes: bad}},
		{"wrong method", call{method: "GET"}, want{status: 405, outcomes: bad}},
		{"oversized body", signedCall(genericKey1, "msg_1", 0, `{"teams":["`+strings.Repeat("a", 4096)+`"]}`),
			want{status: 413, outcomes: []string{OutcomeTooLarge}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h := newTestGeneric(rec, func() time.Time { return genericNow })
			tt.want.check(t, tt.call.do(h), rec, string(genericKey1), string(genericKey2), string(genericSecret))
		})
	}
}

func TestGenericReplay(t *testing.T) {
	rec := &recorder{}
	now := genericNow
	h := newTestGeneric(rec, func() time.Time { return now })
	steps := []struct {
		name    string
		call    call
		advance time.Duration // before the call
		want    int
		outcome string
		down    bool // the queue refuses the keys
	}{
		{"first delivery", signedCall(genericKey1, "msg_1", 0, `{"teams":["a"]}`), 0, 204, OutcomeAccepted, false},
		{"same delivery again", signedCall(genericKey1, "msg_1", 0, `{"teams":["a"]}`), time.Minute, 204, OutcomeReplay, false},
		{"retry re-signed later", signedCall(genericKey1, "msg_1", 2*time.Minute, `{"teams":["a"]}`), time.Minute, 204, OutcomeReplay, false},
		{"another id", signedCall(genericKey1, "msg_2", 2*time.Minute, `{"teams":["b"]}`), 0, 204, OutcomeAccepted, false},
		// msg_1 was sent at genericNow: past genericNow+5m it can only come back with a new timestamp.
		{"id forgotten once stale", signedCall(genericKey1, "msg_1", 6*time.Minute, `{"teams":["a"]}`), 4 * time.Minute, 204, OutcomeAccepted, false},
		{"queue down: 503", signedCall(genericKey1, "msg_3", 6*time.Minute, `{"teams":["c"]}`), 0, 503, OutcomeUnavailable, true},
		{"retry once it is back is not a replay", signedCall(genericKey1, "msg_3", 6*time.Minute, `{"teams":["c"]}`), 0, 204, OutcomeAccepted, false},
		{"and then it is", signedCall(genericKey1, "msg_3", 6*time.Minute, `{"teams":["c"]}`), 0, 204, OutcomeReplay, false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		rec.outcomes, rec.fail = nil, nil
		if s.down {
			rec.fail = errors.New("outbox unreachable")
		}
		w := s.call.do(h)
		if w.Code != s.want || len(rec.outcomes) != 1 || rec.outcomes[0] != s.outcome {
			t.Errorf("step %d (%s): status %d outcomes %q, want %d %q", i, s.name, w.Code, rec.outcomes, s.want, s.outcome)
		}
	}
	if want := []queuekey.Key{"team:a", "team:b", "team:a", "team:c"}; !slices.Equal(rec.keys, want) {
		t.Errorf("keys = %q, want %q", rec.keys, want)
	}
}

func withType(c call, contentType string) call {
	c.contentType = contentType
	return c
}

// The test vector every Standard Webhooks reference library checks (github.com/standard-webhooks/
// standard-webhooks, libraries/go/webhook_test.go TestWebhookSign, and the same in the JavaScript, Java
// and C# tests): this secret signs this id, timestamp and payload to this signature.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = "1614265330"
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// SigningKey reads secrets as the reference libraries' NewWebhook does: optional whsec_, then base64.
func TestSigningKey(t *testing.T) {
	vectorKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorSecret, "whsec_"))
	tests := []struct {
		secret  string
		want    []byte
		wantErr string
	}{
		{vectorSecret, vectorKey, ""},
		{strings.TrimPrefix(vectorSecret, "whsec_"), vectorKey, ""}, // the prefix is optional
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte{0}), []byte{0}, ""},
		{"", nil, "empty"},
		{"whsec_", nil, "empty"},
		{"whsec_!!", nil, "not base64"},
		{"generic-raw-key", nil, "not base64"},                       // raw bytes are not a secret
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", nil, "not base64"}, // truncated: padding is required
		{"whsec_whsec_" + base64.StdEncoding.EncodeToString([]byte("k")), nil, "not base64"},
		{" " + vectorSecret, nil, "not base64"}, // nothing is trimmed: config reads secrets exactly
	}
	for _, tt := range tests {
		t.Run(tt.secret, func(t *testing.T) {
			got, err := SigningKey([]byte(tt.secret))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("SigningKey = %x, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("SigningKey = %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

// The specification's test vector, through the whole receiver: a sender using any reference library
// is accepted with the secret written with or without whsec_.
func TestGenericSignatureVector(t *testing.T) {
	vectorNow := func() time.Time { return time.Unix(1614265330+60, 0) }
	signed := call{header: map[string]string{"webhook-id": vectorID, "webhook-timestamp": vectorTimestamp, "webhook-signature": vectorSignature}, body: vectorPayload}
	tests := []struct {
		name   string
		secret string
		call   call
		want   want
	}{
		// The vector's payload is JSON of its own shape, which the agent refuses (400) only after the
		// signature passed (a bad signature is 401).
		{"JSON payload, whsec_ secret", vectorSecret, withType(signed, "application/json"), want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"JSON payload, unprefixed secret", strings.TrimPrefix(vectorSecret, "whsec_"), withType(signed, "application/json"),
			want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"sent as text", vectorSecret, withType(signed, "text/plain"), want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: []string{OutcomeAccepted}}},
		{"sent without a content type", strings.TrimPrefix(vectorSecret, "whsec_"), signed,
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: []string{OutcomeAccepted}}},
		{"another secret", "whsec_" + base64.StdEncoding.EncodeToString([]byte("other")), withType(signed, "text/plain"),
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"payload changed by a byte", vectorSecret, func() call { c := withType(signed, "text/plain"); c.body = `{"test": 2432232315}`; return c }(),
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h := NewGeneric(GenericOptions{Secrets: [][]byte{[]byte(tt.secret)}, Now: vectorNow, Queue: rec, Observe: rec.observer(SourceGeneric)})
			tt.want.check(t, tt.call.do(h), rec, tt.secret)
		})
	}
}

func FuzzGeneric(f *testing.F) {
	f.Add([]byte(`{"teams":["a"]}`), "msg_1", int64(0), "", true)
	f.Add([]byte(`{"groups":["okta:1"]}`), "msg_1", int64(-400), "", true)
	f.Add([]byte(`{}`), "msg_1", int64(0), "v1,AAAA", false)
	f.Add([]byte(`{"teams":[""]}`), "", int64(0), "v1a,x v1,", true)
	f.Add([]byte(`{"groups":["okta:1","graph:2","okta:1"],"teams":["a","b"]}`), "msg_2", int64(0), "", true)
	f.Fuzz(func(t *testing.T, body []byte, id string, skew int64, signature string, signIt bool) {
		rec := &recorder{}
		h := newTestGeneric(rec, func() time.Time { return genericNow })
		ts := strconv.FormatInt(genericNow.Unix()+skew, 10)
		if signIt {
			signature = sign(genericKey1, id, ts, string(body)) + " " + signature
		}
		hdr := map[string]string{"Content-Type": "application/json", "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": signature}
		fuzzCall(t, h, "POST", "/hook", hdr, body, []int{204, 400, 401, 413}, rec, signIt)
	})
}
