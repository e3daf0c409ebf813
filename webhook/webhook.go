// Package webhook holds the IdP webhook receivers (Okta event hooks, Microsoft Graph change
// notifications, Standard Webhooks signed calls). A webhook is only a trigger: a receiver
// authenticates the call, enqueues "reconcile group X" (or "reconcile all") and answers at once; the
// reconciler then re-reads the IdP's API. A forged or replayed call therefore costs at most one extra
// read, never a wrong change, and the periodic full reconcile makes up for lost calls.
package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// Sources, as passed to an Observer and used in group keys.
const (
	SourceOkta    = "okta"
	SourceGraph   = "graph"
	SourceGeneric = "generic"
)

// Outcomes passed to an Observer.
const (
	OutcomeAccepted     = "accepted"     // an authenticated delivery was taken (keys enqueued, possibly none)
	OutcomeVerified     = "verified"     // a subscription handshake (Okta challenge, Graph validation) was answered
	OutcomeUnauthorized = "unauthorized" // missing or wrong secret, clientState or signature
	OutcomeBadRequest   = "bad_request"  // wrong method or content type, unreadable or invalid body
	OutcomeTooLarge     = "too_large"    // body over MaxBody
	OutcomeReplay       = "replay"       // a signed call whose webhook-id was already seen
	OutcomeStale        = "stale"        // a signed call whose webhook-timestamp is out of tolerance
	OutcomeUnavailable  = "unavailable"  // authentic, but its keys could not be recorded (503)
	// OutcomeUnknownSource: an authenticated delivery named groups of a source the agent does not
	// read; those keys were dropped (they would otherwise reconcile everything).
	OutcomeUnknownSource = "unknown_source"
	// OutcomeTooManyKeys: an authenticated delivery named more than MaxKeys teams or groups; it was
	// taken as one full reconcile instead.
	OutcomeTooManyKeys = "too_many_keys"
)

// Defaults of every Options.
const (
	// DefaultMaxBody caps request bodies when an Options' MaxBody is zero.
	DefaultMaxBody = 1 << 20
	// DefaultMaxKeys caps the distinct keys one delivery enqueues when an Options' MaxKeys is zero. A
	// delivery naming more becomes one full reconcile: the work of a delivery stays bounded, and a
	// large genuine batch loses nothing.
	DefaultMaxKeys = 100
)

// logSample is how many keys a log line about dropped or excess keys shows, after their count.
const logSample = 5

// Enqueuer is the daemon's work queue, or the database's outbox when several replicas share the work.
// Enqueue must return promptly: receivers call it while the IdP waits for the answer (Okta and Graph
// give up after 3 s). An error means the keys were not taken: the delivery is answered 503, so the
// IdP retries it.
type Enqueuer interface {
	Enqueue(ctx context.Context, keys []queuekey.Key) error
}

// Observer is told the outcome of every request, for metrics. It is called once per outcome per
// request: a Graph batch mixing valid and forged items reports both accepted and unauthorized.
type Observer func(source, outcome string)

// receiver is what the three handlers share.
type receiver struct {
	source  string
	queue   Enqueuer
	observe Observer
	maxBody int64
	maxKeys int
	known   func(source string) bool
	log     *slog.Logger
}

// common are the settings every Options has.
type common struct {
	Queue   Enqueuer
	Observe Observer
	MaxBody int64
	MaxKeys int
	Known   func(source string) bool
	Logger  *slog.Logger
}

func newReceiver(source string, o common) receiver {
	if o.Queue == nil {
		panic("webhook: " + source + " receiver needs a queue")
	}
	if o.Observe == nil {
		o.Observe = func(string, string) {}
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Known == nil {
		o.Known = func(string) bool { return true }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return receiver{source: source, queue: o.Queue, observe: o.Observe, maxBody: o.MaxBody, maxKeys: o.MaxKeys, known: o.Known,
		log: o.Logger.With("webhook", source)}
}

// fail answers status with a fixed message (never anything taken from the request) and reports outcome.
func (rc receiver) fail(w http.ResponseWriter, status int, outcome string) {
	rc.observe(rc.source, outcome)
	http.Error(w, http.StatusText(status), status)
}

// methodNotAllowed answers 405, naming the allowed methods.
func (rc receiver) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	rc.fail(w, http.StatusMethodNotAllowed, OutcomeBadRequest)
}

// readJSON checks that r carries JSON and reads its body, at most maxBody bytes. On failure it has
// answered (415, 413 or 400) and returns false.
func (rc receiver) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		rc.fail(w, http.StatusUnsupportedMediaType, OutcomeBadRequest)
		return nil, false
	}
	return rc.readBody(w, r)
}

// readBody reads r's body whatever its content type, at most maxBody bytes. On failure it has answered
// (413 or 400) and returns false.
func (rc receiver) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > rc.maxBody {
		rc.fail(w, http.StatusRequestEntityTooLarge, OutcomeTooLarge)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.maxBody))
	if err != nil {
		if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
			rc.fail(w, http.StatusRequestEntityTooLarge, OutcomeTooLarge)
		} else {
			rc.fail(w, http.StatusBadRequest, OutcomeBadRequest)
		}
		return nil, false
	}
	return body, true
}

// newKeys returns the empty key set of one delivery.
func (rc receiver) newKeys() *keySet {
	return &keySet{max: rc.maxKeys, known: rc.known}
}

// enqueue queues ks and reports the delivery as accepted, and what was dropped or capped. On false it
// has answered 503.
func (rc receiver) enqueue(w http.ResponseWriter, r *http.Request, ks *keySet) bool {
	if len(ks.unknown) > 0 {
		rc.observe(rc.source, OutcomeUnknownSource)
		rc.log.Warn("webhook named groups of no configured source: dropped", "count", ks.unknownN, "sample", ks.unknown, "remote", r.RemoteAddr)
	}
	if ks.excess > 0 {
		rc.observe(rc.source, OutcomeTooManyKeys)
		rc.log.Warn("webhook named more teams or groups than one delivery may: reconciling everything instead",
			"count", ks.Len()+ks.excess, "max", ks.max, "sample", ks.Set.List()[:min(ks.Len(), logSample)], "remote", r.RemoteAddr)
	}
	keys := ks.List()
	if err := rc.queue.Enqueue(r.Context(), keys); err != nil {
		rc.log.Error("webhook keys could not be recorded: answering 503 so that it is sent again", "keys", len(keys), "error", err, "remote", r.RemoteAddr)
		rc.fail(w, http.StatusServiceUnavailable, OutcomeUnavailable)
		return false
	}
	rc.observe(rc.source, OutcomeAccepted)
	rc.log.Debug("webhook accepted", "keys", keys, "remote", r.RemoteAddr)
	return true
}

// keySet collects the keys of one delivery, each once, at most max of them: past that the delivery
// becomes queuekey.All. Group keys of a source known does not know are left out, counted.
type keySet struct {
	queuekey.Set
	max   int
	known func(source string) bool

	excess   int            // distinct keys past max
	unknown  []queuekey.Key // the first logSample keys of unknown sources
	unknownN int
}

func (ks *keySet) Add(key queuekey.Key) {
	if src, _, ok := key.Group(); ok && !ks.known(src) {
		if len(ks.unknown) < logSample {
			ks.unknown = append(ks.unknown, key)
		}
		ks.unknownN++
		return
	}
	if key != queuekey.All && !ks.Has(key) && ks.Len() == ks.max {
		// Remember no more keys: past max, the delivery is a full reconcile whatever they are.
		ks.excess++
		return
	}
	ks.Set.Add(key)
}

// Everything reports whether the delivery is a full reconcile: it asked for one, or named too many keys.
func (ks *keySet) Everything() bool { return ks.excess > 0 || ks.Set.Everything() }

// List returns the keys to enqueue: queuekey.All alone when the delivery is a full reconcile, as it
// covers every other key.
func (ks *keySet) List() []queuekey.Key {
	if ks.excess > 0 {
		return []queuekey.Key{queuekey.All}
	}
	return ks.Set.List()
}

// secretSet holds the SHA-256 digests of the accepted secrets (several during a rotation). Comparing
// fixed-size digests keeps the comparison constant-time whatever the length of the presented value.
type secretSet [][sha256.Size]byte

// newSecretSet drops empty secrets, which would otherwise match a missing header.
func newSecretSet(secrets []string) secretSet {
	var s secretSet
	for _, v := range secrets {
		if v != "" {
			s = append(s, sha256.Sum256([]byte(v)))
		}
	}
	return s
}

// match reports whether v is one of the secrets; it checks them all, so timing does not tell which.
func (s secretSet) match(v string) bool {
	d := sha256.Sum256([]byte(v))
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(d[:], s[i][:])
	}
	return found == 1
}

// validID reports whether id (an IdP group id) can go into a queue key: Okta ids and Graph GUIDs
// are short and made of letters, digits and '-'; anything else is not trusted into a key.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

const maxIDLength = 128
