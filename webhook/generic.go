package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
	"github.com/byob-agent/byob-agent/team"
)

// GenericOptions configures a receiver of Standard Webhooks (https://www.standardwebhooks.com) calls.
type GenericOptions struct {
	// Secrets are the accepted signing secrets (several during a rotation) as senders show them:
	// base64 of the key, optionally prefixed "whsec_", as the Standard Webhooks reference libraries
	// read them. Empty and undecodable entries are ignored (and logged).
	Secrets [][]byte
	// Tolerance is how far webhook-timestamp may be from now (5 minutes if zero).
	Tolerance time.Duration
	// MaxReplayIDs bounds the remembered webhook-ids (100,000 if zero); past it the ids closest to
	// expiring are forgotten first. Only ids of correctly signed calls are remembered.
	MaxReplayIDs int
	Now          func() time.Time // time.Now if nil
	Queue        Enqueuer         // required; Enqueue must not block
	Observe      Observer         // optional
	MaxBody      int64            // DefaultMaxBody if zero
	// MaxKeys caps the distinct keys one delivery enqueues (DefaultMaxKeys if zero); past it the
	// delivery is one full reconcile. Known says which group-key sources the agent reads (every one
	// if nil): keys of other sources are dropped, as reconciling them would reconcile everything.
	MaxKeys int
	Known   func(source string) bool
	Logger  *slog.Logger
}

// Defaults of GenericOptions.
const (
	DefaultTolerance    = 5 * time.Minute
	DefaultMaxReplayIDs = 100_000
)

// NewGeneric returns the receiver of signed triggers from anything else (a CI job, a script). The
// signature is checked over the raw body whatever its content type. A JSON body (application/json or
// a +json type) names what to reconcile:
//
//	{"teams": ["ml-research"]}     -> queuekey.Team per name (W&B team names)
//	{"groups": ["okta:00g1abc"]}   -> queuekey.Group per "<source>:<group id>", as an IdP webhook would enqueue
//	{}                             -> queuekey.All
//
// Unknown fields and invalid JSON are refused (400) so that a typo does not silently become
// "reconcile everything". The specification recommends JSON payloads but allows other content types
// (spec/standard-webhooks.md, "Payload structure"): an empty body, or a body of any other content type
// (or none), is a signed trigger whose content the agent cannot read, and enqueues queuekey.All.
// Answers: 204 accepted; 204 for a replayed webhook-id too, with nothing enqueued, because a sender
// retrying after a lost answer must stop retrying; 401 for a missing or wrong signature or a
// timestamp out of tolerance.
func NewGeneric(o GenericOptions) http.Handler {
	rc := newReceiver(SourceGeneric, common{o.Queue, o.Observe, o.MaxBody, o.MaxKeys, o.Known, o.Logger})
	if o.Tolerance <= 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.MaxReplayIDs <= 0 {
		o.MaxReplayIDs = DefaultMaxReplayIDs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var keys [][]byte
	for i, s := range o.Secrets {
		k, err := SigningKey(s)
		if err != nil {
			rc.log.Error("generic webhook secret ignored", "index", i, "err", err)
			continue
		}
		keys = append(keys, k)
	}
	return &generic{receiver: rc, keys: keys, tolerance: int64(o.Tolerance / time.Second), now: o.Now, seen: newReplayCache(o.MaxReplayIDs)}
}

type generic struct {
	receiver
	keys      [][]byte
	tolerance int64 // seconds
	now       func() time.Time
	seen      *replayCache
}

// SigningKey decodes a Standard Webhooks secret into the HMAC key as the specification's reference
// libraries do (github.com/standard-webhooks/standard-webhooks, libraries/go NewWebhook, libraries/javascript
// and libraries/python alike): strip an optional "whsec_" prefix, then base64-decode (standard alphabet,
// padded) what is left; an empty key is refused. The spec serializes HMAC secrets as "base64 encoded,
// prefixed with whsec_". Config validation calls it so that a secret the receiver would drop is refused
// at load. Errors never quote the secret.
func SigningKey(secret []byte) ([]byte, error) {
	b64, _ := bytes.CutPrefix(secret, []byte("whsec_"))
	if len(b64) == 0 {
		return nil, errors.New("empty")
	}
	k := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(k, b64)
	switch {
	case err != nil:
		return nil, errors.New("not base64")
	case n == 0:
		return nil, errors.New("decodes to an empty key")
	}
	return k[:n], nil
}

// maxWebhookIDLength bounds the remembered ids; senders use UUID-like ids.
const maxWebhookIDLength = 256

type genericBody struct {
	Teams  []string `json:"teams"`
	Groups []string `json:"groups"`
}

func (h *generic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.methodNotAllowed(w, http.MethodPost)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	if !h.signed(id, ts, body, r.Header.Get("webhook-signature")) {
		h.log.Warn("generic webhook refused: missing or wrong signature", "remote", r.RemoteAddr)
		h.fail(w, http.StatusUnauthorized, OutcomeUnauthorized)
		return
	}
	// From here on the call comes from a key holder: checking the rest after the signature keeps
	// forgers out of the stale and replay counts and out of the replay cache.
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(id) > maxWebhookIDLength {
		h.fail(w, http.StatusBadRequest, OutcomeBadRequest)
		return
	}
	now := h.now().Unix()
	if sent < now-h.tolerance || sent > now+h.tolerance {
		h.log.Warn("generic webhook refused: timestamp out of tolerance", "webhook_id", id, "skew_seconds", now-sent)
		h.fail(w, http.StatusUnauthorized, OutcomeStale)
		return
	}
	ks := h.newKeys()
	err = genericKeys(ks, r.Header.Get("Content-Type"), body)
	if err != nil {
		h.observe(h.source, OutcomeBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A message cannot pass the timestamp check after sent+tolerance, so its id is only needed until then.
	if !h.seen.add(id, sent+h.tolerance, now) {
		h.log.Info("generic webhook replay ignored", "webhook_id", id)
		h.observe(h.source, OutcomeReplay)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !h.enqueue(w, r, ks) {
		h.seen.forget(id) // not taken: its retry is not a replay
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// signed reports whether one of the v1 signatures in header is the HMAC-SHA256 of "id.ts.body" under
// one of the keys. Other signature versions (v1a, asymmetric) are not supported and never match.
func (h *generic) signed(id, ts string, body []byte, header string) bool {
	if id == "" || ts == "" || header == "" {
		return false
	}
	var sigs [][]byte
	for _, f := range strings.Fields(header) {
		if b64, ok := strings.CutPrefix(f, "v1,"); ok {
			if sig, err := base64.StdEncoding.DecodeString(b64); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	if len(sigs) == 0 {
		return false
	}
	found := false
	for _, k := range h.keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range sigs {
			found = hmac.Equal(want, sig) || found
		}
	}
	return found
}

// genericKeys reads the body of a signed call into ks; the error is meant for the sender. Only a JSON
// body names teams or groups; an empty or non-JSON one asks for everything (see NewGeneric).
func genericKeys(ks *keySet, contentType string, body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 || !isJSON(contentType) {
		ks.Add(queuekey.All)
		return nil
	}
	var b genericBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return fmt.Errorf("body must be {\"teams\":[...]}, {\"groups\":[\"<source>:<id>\"]} or {}: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("body must hold one JSON object only")
	}
	if len(b.Teams) == 0 && len(b.Groups) == 0 {
		ks.Add(queuekey.All)
		return nil
	}
	for _, name := range b.Teams {
		if err := team.ValidateName(name); err != nil {
			return err
		}
		ks.Add(queuekey.Team(name))
	}
	for _, g := range b.Groups {
		source, id, ok := strings.Cut(g, ":")
		if !ok || !validID(source) || !validID(id) {
			return fmt.Errorf("group %q must be <source>:<group id>, e.g. okta:00g1abc", g)
		}
		ks.Add(queuekey.Group(source, id))
	}
	return nil
}

// isJSON reports whether a Content-Type is JSON: application/json or a structured +json type. A
// missing or unparsable type is not.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")))
}
