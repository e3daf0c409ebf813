package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

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
	// MaxKeys caps the distinct keys one delivery enqueues (DefaultMaxKeys if zero); past it the
	// delivery is one full reconcile. Known says which group-key sources the agent reads (every one
	// if nil): keys of other sources are dropped, as reconciling them would reconcile everything.
	MaxKeys int
	Known   func(source string) bool
	Logger  *slog.Logger
	// Lifecycle, when set, acts on an authentic lifecycle notification (the agent's subscription
	// keeper: reauthorize on reauthorizationRequired, create again on subscriptionRemoved, check on
	// missed). It runs after the answer, in the background (Graph waits 3 s at most), with a context
	// of LifecycleTimeout; events of one kind that arrive while it runs for that kind make it run once
	// more afterwards, with the latest subscription id.
	Lifecycle        func(ctx context.Context, event, subscriptionID string) error
	LifecycleTimeout time.Duration // DefaultLifecycleTimeout if zero
	// CatchUp, when set, asks for a catch-up (Graph's delta query, which enqueues only the groups that
	// changed) after missed, subscriptionRemoved and reauthorizationRequired, once Lifecycle has acted
	// on them, instead of queuekey.All. Graph's lifecycle page asks for it: notifications may have been
	// lost, or delivery paused (learn.microsoft.com/graph/change-notifications-lifecycle-events). It
	// must not block.
	CatchUp func()
}

// DefaultLifecycleTimeout bounds one run of GraphOptions.Lifecycle.
const DefaultLifecycleTimeout = 2 * time.Minute

// Graph's lifecycle events (learn.microsoft.com/graph/change-notifications-lifecycle-events).
const (
	LifecycleReauthorizationRequired = "reauthorizationRequired"
	LifecycleSubscriptionRemoved     = "subscriptionRemoved"
	LifecycleMissed                  = "missed"
)

// NewGraph returns the receiver of Microsoft Graph change notifications for groups. Use its URL as
// both notificationUrl and lifecycleNotificationUrl.
//
// POST ?validationToken=<t>: 200 text/plain <t> (Graph's subscription handshake, which carries no
// clientState). POST notifications: items whose clientState does not match are dropped; the others
// enqueue queuekey.Group("graph", <group id>). Lifecycle events go to o.Lifecycle; missed and
// subscriptionRemoved (changes may have gone unnotified) then catch up with o.CatchUp, and so does
// reauthorizationRequired (delivery may have paused until it was acted on). Without o.CatchUp, missed,
// subscriptionRemoved and unknown events enqueue queuekey.All instead, and so does
// reauthorizationRequired when there is no o.Lifecycle to act on it. 202 when at least one item was
// authentic, 401 when none was.
func NewGraph(o GraphOptions) http.Handler {
	if o.LifecycleTimeout <= 0 {
		o.LifecycleTimeout = DefaultLifecycleTimeout
	}
	return &graph{receiver: newReceiver(SourceGraph, common{o.Queue, o.Observe, o.MaxBody, o.MaxKeys, o.Known, o.Logger}), states: newSecretSet(o.ClientStates),
		lifecycle: o.Lifecycle, timeout: o.LifecycleTimeout, catchUp: o.CatchUp, runs: map[string]*lifecycleRun{}}
}

type graph struct {
	receiver
	states    secretSet
	lifecycle func(ctx context.Context, event, subscriptionID string) error
	timeout   time.Duration
	catchUp   func()

	mu   sync.Mutex
	runs map[string]*lifecycleRun // by event
}

// lifecycleRun is the background run of the lifecycle hook for one kind of event.
type lifecycleRun struct {
	rerun
	// Guarded by graph.mu: the latest subscription id, and whether a catch-up is due after the next run.
	sub     string
	catchUp bool
}

// catchesUp reports whether an event may mean lost notifications that a catch-up finds.
func catchesUp(event string) bool {
	return event == LifecycleMissed || event == LifecycleSubscriptionRemoved || event == LifecycleReauthorizationRequired
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
	ks := h.newKeys()
	events := map[string]string{} // lifecycle event -> subscription id, acted on after the answer
	authentic, forged := 0, 0
	for _, item := range n.Value {
		if !h.states.match(item.ClientState) {
			forged++
			continue
		}
		authentic++
		switch {
		case item.LifecycleEvent != "":
			h.log.Info("graph lifecycle notification", "event", item.LifecycleEvent, "subscription", item.SubscriptionID)
			if h.lifecycle == nil {
				h.log.Warn("graph lifecycle notification with no subscription keeper: an operator must reauthorize or recreate the subscription",
					"event", item.LifecycleEvent, "subscription", item.SubscriptionID)
			}
			switch event := item.LifecycleEvent; {
			case !catchesUp(event), h.lifecycle == nil && event == LifecycleReauthorizationRequired:
				// An unknown event, or notifications will stop: read everything.
				ks.Add(queuekey.All)
			case h.catchUp == nil && event != LifecycleReauthorizationRequired:
				// Notifications may have been lost (missed, removed): catch up by reading everything.
				ks.Add(queuekey.All)
			}
			events[item.LifecycleEvent] = item.SubscriptionID
		default:
			ks.Add(graphGroupKey(item.ResourceData.ID, item.Resource))
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
	if !h.enqueue(w, r, ks) {
		return
	}
	w.WriteHeader(http.StatusAccepted)
	for event, sub := range events {
		h.act(event, sub, h.catchUp != nil && catchesUp(event) && !ks.Everything())
	}
}

// act runs the lifecycle hook for event in the background, or marks the running one to run again,
// and then the catch-up when catchUp is set.
func (h *graph) act(event, sub string, catchUp bool) {
	if h.lifecycle == nil {
		if catchUp {
			h.catchUp()
		}
		return
	}
	h.mu.Lock()
	run := h.runs[event]
	if run == nil {
		run = &lifecycleRun{}
		h.runs[event] = run
	}
	run.sub = sub
	run.catchUp = run.catchUp || catchUp
	h.mu.Unlock()
	run.trigger(func() {
		h.mu.Lock()
		sub, catchUp := run.sub, run.catchUp
		run.catchUp = false
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
		err := h.lifecycle(ctx, event, sub)
		cancel()
		if err != nil {
			h.log.Error("acting on a graph lifecycle notification failed; the schedule still reads every group", "event", event, "subscription", sub, "error", err)
		} else {
			h.log.Info("graph lifecycle notification acted on", "event", event, "subscription", sub)
		}
		if catchUp {
			h.catchUp()
		}
	})
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
