package webhook

import (
	"encoding/json"
	"log/slog"
	"net/http"

	oktasource "github.com/byob-agent/byob-agent/source/okta"
)

// OktaOptions configures an Okta event hook receiver.
type OktaOptions struct {
	// Secrets are the accepted values of the Authorization header, as configured in the event hook
	// (several during a rotation). Empty entries are ignored, so with none every call is refused.
	Secrets []string
	Queue   Enqueuer // required; Enqueue must not block
	Observe Observer // optional
	MaxBody int64    // DefaultMaxBody if zero
	// MaxKeys caps the distinct keys one delivery enqueues (DefaultMaxKeys if zero); past it the
	// delivery is one full reconcile. Known says which group-key sources the agent reads (every one
	// if nil): keys of other sources are dropped, as reconciling them would reconcile everything.
	MaxKeys int
	Known   func(source string) bool
	Logger  *slog.Logger
}

// NewOkta returns the receiver of Okta event hooks. Okta sends no signature, only the static secret
// in the Authorization header, so every request, the one-time verification GET included, must carry it.
//
// GET with x-okta-verification-challenge: 200 {"verification":"<challenge>"}.
// POST: each event of the batch enqueues the key oktasource.EventKey gives it (a group's events that group, a
// user's deactivation or (re)activation everything); other event types are ignored; 204.
func NewOkta(o OktaOptions) http.Handler {
	return &okta{receiver: newReceiver(SourceOkta, common{o.Queue, o.Observe, o.MaxBody, o.MaxKeys, o.Known, o.Logger}), secrets: newSecretSet(o.Secrets)}
}

type okta struct {
	receiver
	secrets secretSet
}

// maxChallengeLength bounds the echoed challenge; Okta's are a few dozen characters.
const maxChallengeLength = 1024

// oktaDelivery is the part of an event hook delivery the receiver reads. Events need no sorting by
// published time: they only name keys, and the reconciler reads the current state.
type oktaDelivery struct {
	Data struct {
		Events []oktasource.LogEvent `json:"events"`
	} `json:"data"`
}

func (h *okta) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.verify(w, r)
	case http.MethodPost:
		h.deliver(w, r)
	default:
		h.methodNotAllowed(w, "GET, POST")
	}
}

// deliver takes a batch of events.
func (h *okta) deliver(w http.ResponseWriter, r *http.Request) {
	if !h.authenticated(w, r) {
		return
	}
	body, ok := h.readJSON(w, r)
	if !ok {
		return
	}
	var d oktaDelivery
	if err := json.Unmarshal(body, &d); err != nil {
		h.fail(w, http.StatusBadRequest, OutcomeBadRequest)
		return
	}
	ks := h.newKeys()
	for _, e := range d.Data.Events {
		if key, ok := oktasource.EventKey(e); ok {
			ks.Add(key)
		}
	}
	if !h.enqueue(w, r, ks) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// verify answers Okta's one-time verification GET.
func (h *okta) verify(w http.ResponseWriter, r *http.Request) {
	if !h.authenticated(w, r) {
		return
	}
	challenge := r.Header.Get("x-okta-verification-challenge")
	if challenge == "" || len(challenge) > maxChallengeLength {
		h.fail(w, http.StatusBadRequest, OutcomeBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The encoder escapes <, > and &, and the reply is JSON: the echo cannot become markup. A write
	// error only means Okta is gone.
	_ = json.NewEncoder(w).Encode(struct {
		Verification string `json:"verification"`
	}{challenge})
	h.observe(h.source, OutcomeVerified)
	h.log.Info("okta event hook verified", "remote", r.RemoteAddr)
}

// authenticated checks the Authorization header; on failure it has answered 401.
func (h *okta) authenticated(w http.ResponseWriter, r *http.Request) bool {
	if h.secrets.match(r.Header.Get("Authorization")) {
		return true
	}
	h.log.Warn("okta webhook refused: wrong or missing Authorization header", "remote", r.RemoteAddr)
	h.fail(w, http.StatusUnauthorized, OutcomeUnauthorized)
	return false
}
