package graphfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// MaxLifetime is Graph's limit on a subscription to groups: 41,760 minutes.
const MaxLifetime = 41760 * time.Minute

// Subscription is a change-notification subscription as the fake keeps it.
type Subscription struct {
	ID, Resource, ChangeType, NotificationURL, LifecycleNotificationURL, ClientState string
	ExpirationDateTime                                                               time.Time
}

// wire is the JSON of a subscription; clientState is never returned after creation (Graph hides it).
func (s *Subscription) wire(withClientState bool) map[string]any {
	m := map[string]any{
		"id": s.ID, "resource": s.Resource, "changeType": s.ChangeType, "notificationUrl": s.NotificationURL,
		"lifecycleNotificationUrl": nullable(s.LifecycleNotificationURL), "clientState": nil,
		"expirationDateTime": s.ExpirationDateTime.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"applicationId":      "00000000-0000-0000-0000-000000000000", "latestSupportedTlsVersion": "v1_2",
		"includeResourceData": false,
	}
	if withClientState {
		m["clientState"] = nullable(s.ClientState)
	}
	return m
}

// Subscriptions returns the live (unexpired) subscriptions, sorted by id.
func (f *Fake) Subscriptions() []Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.purgeExpired()
	var out []Subscription
	for _, id := range slices.Sorted(maps.Keys(f.subs)) {
		out = append(out, *f.subs[id])
	}
	return out
}

// AddSubscription stores a subscription as if created earlier (e.g. by a previous run) and returns its id.
func (f *Fake) AddSubscription(s Subscription) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.ID == "" {
		s.ID = newID()
	}
	f.subs[s.ID] = &s
	return s.ID
}

// ExpireSubscription lets a subscription lapse now: Graph then no longer knows it.
func (f *Fake) ExpireSubscription(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.subs[id]; ok {
		s.ExpirationDateTime = f.cfg.Now().Add(-time.Second)
	}
}

// DeleteSubscription removes a subscription, as an administrator or Graph itself may.
func (f *Fake) DeleteSubscription(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, id)
}

// Reauthorizations counts the reauthorize calls on a subscription.
func (f *Fake) Reauthorizations(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reauthCalls[id]
}

// purgeExpired drops lapsed subscriptions. Called with f.mu held.
func (f *Fake) purgeExpired() {
	now := f.cfg.Now()
	maps.DeleteFunc(f.subs, func(_ string, s *Subscription) bool { return !s.ExpirationDateTime.After(now) })
}

func (f *Fake) serveSubscriptions(w http.ResponseWriter, r *http.Request, segs []string) {
	allowed := []string{}
	if len(segs) == 0 && r.Method == http.MethodGet {
		allowed = []string{"$skiptoken"} // list: no OData options, but pages
	}
	q, ok := checkQuery(w, r, nil, allowed...)
	if !ok {
		return
	}
	if !(len(segs) == 0 && r.Method == http.MethodGet) && !f.permit(w, manageGroupSubscriptions...) {
		return
	}
	switch {
	case len(segs) == 0 && r.Method == http.MethodGet:
		f.mu.Lock()
		f.purgeExpired()
		var items []map[string]any
		for _, id := range slices.Sorted(maps.Keys(f.subs)) {
			items = append(items, f.subs[id].wire(false))
		}
		f.mu.Unlock()
		f.page(w, r, q, items, "subscriptions")
	case len(segs) == 0 && r.Method == http.MethodPost:
		f.createSubscription(w, r)
	case len(segs) == 1 && (r.Method == http.MethodGet || r.Method == http.MethodPatch || r.Method == http.MethodDelete),
		len(segs) == 2 && segs[1] == "reauthorize" && r.Method == http.MethodPost:
		f.subscription(w, r, segs)
	default:
		writeError(w, http.StatusMethodNotAllowed, "BadRequest", fmt.Sprintf("%s is not supported on this resource.", r.Method))
	}
}

// subscriptionBody is what a create or update may carry; anything else is refused.
type subscriptionBody struct {
	ChangeType                string  `json:"changeType"`
	NotificationURL           string  `json:"notificationUrl"`
	LifecycleNotificationURL  string  `json:"lifecycleNotificationUrl"`
	Resource                  string  `json:"resource"`
	ExpirationDateTime        *string `json:"expirationDateTime"`
	ClientState               string  `json:"clientState"`
	LatestSupportedTLSVersion string  `json:"latestSupportedTlsVersion"`
}

func decodeBody(w http.ResponseWriter, r *http.Request) (subscriptionBody, bool) {
	var b subscriptionBody
	d := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	d.DisallowUnknownFields()
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "BadRequest", "Content-Type must be application/json.")
		return b, false
	}
	if err := d.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid request: "+err.Error())
		return b, false
	}
	return b, true
}

// checkExpiry parses an expirationDateTime and holds it to Graph's limit for groups.
func (f *Fake) checkExpiry(w http.ResponseWriter, v *string) (time.Time, bool) {
	if v == nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "expirationDateTime is required.")
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	now := f.cfg.Now()
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("Cannot convert '%s' to DateTimeOffset.", *v))
	case !t.After(now):
		writeError(w, http.StatusBadRequest, "InvalidRequest", "Subscription expiration must be in the future.")
	case t.After(now.Add(MaxLifetime)):
		writeError(w, http.StatusBadRequest, "InvalidRequest", "Subscription expiration can only be 41760 minutes in the future.")
	default:
		return t, true
	}
	return time.Time{}, false
}

func (f *Fake) createSubscription(w http.ResponseWriter, r *http.Request) {
	b, ok := decodeBody(w, r)
	if !ok {
		return
	}
	exp, ok := f.checkExpiry(w, b.ExpirationDateTime)
	if !ok {
		return
	}
	if !strings.EqualFold(strings.Trim(b.Resource, "/"), "groups") {
		writeError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("The fake supports only the resource '/groups', not '%s'.", b.Resource))
		return
	}
	if b.ChangeType == "" {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "changeType is required.")
		return
	}
	for t := range strings.SplitSeq(b.ChangeType, ",") {
		if t != "updated" && t != "deleted" {
			writeError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("ChangeType '%s' is not supported for resource 'groups'; use updated or deleted.", t))
			return
		}
	}
	if !isHTTPS(b.NotificationURL) || b.LifecycleNotificationURL != "" && !isHTTPS(b.LifecycleNotificationURL) {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "The notification URLs must be absolute https URLs.")
		return
	}
	if len(b.ClientState) > 128 {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "clientState is longer than 128 characters.")
		return
	}
	for _, u := range []string{b.NotificationURL, b.LifecycleNotificationURL} {
		if problem := f.validate(r.Context(), u); problem != "" {
			writeError(w, http.StatusBadRequest, "ValidationError", "Subscription validation request failed. "+problem)
			return
		}
	}
	s := &Subscription{
		ID: newID(), Resource: b.Resource, ChangeType: b.ChangeType, NotificationURL: b.NotificationURL,
		LifecycleNotificationURL: b.LifecycleNotificationURL, ClientState: b.ClientState, ExpirationDateTime: exp,
	}
	f.mu.Lock()
	f.subs[s.ID] = s
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.wire(true))
}

// validate performs Graph's handshake: POST <url>?validationToken=<t>, expecting 200 text/plain <t>
// within 10 seconds. It returns what went wrong, "" when the endpoint answered correctly.
func (f *Fake) validate(ctx context.Context, u string) string {
	if f.cfg.ValidationClient == nil || u == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok := "Validation: Testing client application reachability for subscription Request-Id: " + newID()
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+sep+"validationToken="+url.QueryEscape(tok), bytes.NewReader(nil))
	if err != nil {
		return "The notification URL is invalid."
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := f.cfg.ValidationClient.Do(req)
	if err != nil {
		return "The notification endpoint is not reachable."
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || string(body) != tok {
		return "Response must exactly match validationToken query parameter."
	}
	return ""
}

func isHTTPS(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Scheme == "https" && p.Host != ""
}

func (f *Fake) subscription(w http.ResponseWriter, r *http.Request, segs []string) {
	id := segs[0]
	var b subscriptionBody
	if r.Method == http.MethodPatch {
		var ok bool
		if b, ok = decodeBody(w, r); !ok {
			return
		}
		if b != (subscriptionBody{ExpirationDateTime: b.ExpirationDateTime}) {
			writeError(w, http.StatusBadRequest, "InvalidRequest", "Only expirationDateTime can be updated.")
			return
		}
	}
	f.mu.Lock()
	f.purgeExpired()
	s, ok := f.subs[id]
	f.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The object was not found. Subscription '%s' does not exist.", id))
		return
	}
	switch {
	case len(segs) == 2: // reauthorize
		f.mu.Lock()
		f.reauthCalls[id]++
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		f.DeleteSubscription(id)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPatch:
		exp, ok := f.checkExpiry(w, b.ExpirationDateTime)
		if !ok {
			return
		}
		f.mu.Lock()
		s.ExpirationDateTime = exp
		out := s.wire(false)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	default:
		f.mu.Lock()
		out := s.wire(false)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	}
}
