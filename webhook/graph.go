package webhook

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// GraphOptions configures a Microsoft Graph change notification receiver.
type GraphOptions struct {
	// ClientStates are the accepted clientState values of the subscriptions (several during a
	// rotation). Empty entries are ignored, so with none every notification is refused.
	ClientStates []string
	Queue        Enqueuer // required; Enqueue must not block
	Observe      Observer // optional
	MaxBody      int64    // DefaultMaxBody if zero
	Logger       *slog.Logger
}

// NewGraph returns the receiver of Microsoft Graph change notifications for groups. Use its URL as
// both notificationUrl and lifecycleNotificationUrl.
//
// POST ?validationToken=<t>: 200 text/plain <t> (Graph's subscription handshake, which carries no
// clientState). POST notifications: items whose clientState does not match are dropped; the others
// enqueue queuekey.Group("graph", <group id>), and lifecycle events (reauthorizationRequired, missed, ...)
// enqueue queuekey.All. 202 when at least one item was authentic, 401 when none was.
func NewGraph(o GraphOptions) http.Handler {
	return &graph{receiver: newReceiver(SourceGraph, o.Queue, o.Observe, o.MaxBody, o.Logger), states: newSecretSet(o.ClientStates)}
}

type graph struct {
	receiver
	states secretSet
}

// maxValidationTokenLength bounds the echoed token; Graph's are a few hundred characters at most.
const maxValidationTokenLength = 2048

type graphNotifications struct {
	Value []struct {
		SubscriptionID string `json:"subscriptionId"`
		ClientState    string `json:"clientState"`
		Resource       string `json:"resource"`
		ResourceData   struct {
			ID string `json:"id"`
		} `json:"resourceData"`
		LifecycleEvent string `json:"lifecycleEvent"`
	} `json:"value"`
}

func (h *graph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.methodNotAllowed(w, http.MethodPost)
		return
	}
	if q := r.URL.Query(); q.Has("validationToken") {
		h.validate(w, q.Get("validationToken"))
		return
	}
	body, ok := h.readJSON(w, r)
	if !ok {
		return
	}
	var n graphNotifications
	if err := json.Unmarshal(body, &n); err != nil || len(n.Value) == 0 {
		h.fail(w, http.StatusBadRequest, OutcomeBadRequest)
		return
	}
	var ks keySet
	authentic, forged := 0, 0
	for _, item := range n.Value {
		if !h.states.match(item.ClientState) {
			forged++
			continue
		}
		authentic++
		switch {
		case item.LifecycleEvent != "":
			// Lost notifications or a subscription about to lapse: only a full reconcile is safe, and an
			// operator must renew the subscription if the daemon does not.
			h.log.Warn("graph lifecycle notification: reconciling everything; the subscription may need reauthorizing",
				"event", item.LifecycleEvent, "subscription", item.SubscriptionID)
			ks.add(queuekey.All)
		default:
			ks.add(graphGroupKey(item.ResourceData.ID, item.Resource))
		}
	}
	if forged > 0 {
		h.log.Warn("graph notifications dropped: clientState does not match", "items", forged, "remote", r.RemoteAddr)
		if authentic == 0 {
			h.fail(w, http.StatusUnauthorized, OutcomeUnauthorized)
			return
		}
		h.observe(h.source, OutcomeUnauthorized)
	}
	h.enqueue(r, &ks)
	w.WriteHeader(http.StatusAccepted)
}

// graphGroupKey names the group of a notification by resourceData.id, else by the end of resource
// ("Groups/<id>"); a notification whose group cannot be told reconciles everything.
func graphGroupKey(id, resource string) queuekey.Key {
	if validID(id) {
		return queuekey.Group(SourceGraph, id)
	}
	segs := strings.Split(strings.Trim(resource, "/"), "/")
	if n := len(segs); n >= 2 && strings.EqualFold(segs[n-2], "groups") && validID(segs[n-1]) {
		return queuekey.Group(SourceGraph, segs[n-1])
	}
	return queuekey.All
}

// validate answers Graph's subscription handshake by echoing the (already URL-decoded) token.
func (h *graph) validate(w http.ResponseWriter, token string) {
	if token == "" || len(token) > maxValidationTokenLength {
		h.fail(w, http.StatusBadRequest, OutcomeBadRequest)
		return
	}
	// Plain text, never sniffed: an echoed token cannot become markup in a browser.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(token))
	h.observe(h.source, OutcomeVerified)
	h.log.Info("graph subscription validated")
}
