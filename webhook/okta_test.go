package webhook

import (
	"errors"
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

const (
	oktaSecret1 = "okta-secret-one"
	oktaSecret2 = "okta-secret-two"
)

func oktaEvents(events ...string) string {
	return `{"eventType":"com.okta.event_hook","eventId":"e1","data":{"events":[` + strings.Join(events, ",") + `]}}`
}

func oktaEvent(eventType string, targets ...string) string {
	return `{"uuid":"u","published":"2024-01-01T00:00:00Z","eventType":"` + eventType + `","target":[` + strings.Join(targets, ",") + `]}`
}

func oktaTarget(typ, id string) string { return `{"id":"` + id + `","type":"` + typ + `"}` }

func TestOkta(t *testing.T) {
	auth := func(v string) map[string]string { return map[string]string{"Authorization": v} }
	challenge := func(authz, c string) map[string]string {
		return map[string]string{"Authorization": authz, "x-okta-verification-challenge": c}
	}
	user := oktaTarget("User", "00u1")
	add := func(group string) string {
		return oktaEvent("group.user_membership.add", user, oktaTarget("UserGroup", group))
	}
	post := func(h map[string]string, body string) call {
		return call{contentType: "application/json", header: h, body: body}
	}
	accepted := []string{OutcomeAccepted}
	tests := []struct {
		name    string
		secrets []string
		call    call
		want    want
	}{
		{"verification", nil, call{method: "GET", header: challenge(oktaSecret1, "abc")},
			want{status: 200, outcomes: []string{OutcomeVerified}, body: `{"verification":"abc"}` + "\n"}},
		{"verification with the rotated secret", nil, call{method: "GET", header: challenge(oktaSecret2, "abc")},
			want{status: 200, outcomes: []string{OutcomeVerified}, body: `{"verification":"abc"}` + "\n"}},
		{"verification echo is escaped", nil, call{method: "GET", header: challenge(oktaSecret1, `<b>"x"`)},
			want{status: 200, outcomes: []string{OutcomeVerified}, body: `{"verification":"\u003cb\u003e\"x\""}` + "\n"}},
		{"verification without secret", nil, call{method: "GET", header: map[string]string{"x-okta-verification-challenge": "abc"}},
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"verification with wrong secret", nil, call{method: "GET", header: challenge("nope", "abc")},
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"verification without challenge", nil, call{method: "GET", header: auth(oktaSecret1)},
			want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"verification with oversized challenge", nil, call{method: "GET", header: challenge(oktaSecret1, strings.Repeat("a", maxChallengeLength+1))},
			want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"batch of membership events", nil, post(auth(oktaSecret1), oktaEvents(
			add("00g1"),
			oktaEvent("group.user_membership.remove", oktaTarget("UserGroup", "00g2"), user),
			add("00g1"),
			oktaEvent("group.profile.update", oktaTarget("UserGroup", "00g3")),
			oktaEvent("user.session.start", user),
		)),
			want{status: 204, keys: []queuekey.Key{"group:okta:00g1", "group:okta:00g2", "group:okta:00g3"}, outcomes: accepted}},
		{"rotated secret", nil, post(auth(oktaSecret2), oktaEvents(oktaEvent("group.lifecycle.delete", oktaTarget("UserGroup", "00g9")))),
			want{status: 204, keys: []queuekey.Key{"group:okta:00g9"}, outcomes: accepted}},
		{"user deactivation reconciles everything", nil, post(auth(oktaSecret1), oktaEvents(add("00g1"), oktaEvent("user.lifecycle.deactivate", user))),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"user activation reconciles everything", nil, post(auth(oktaSecret1), oktaEvents(oktaEvent("user.lifecycle.activate", user))),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"user reactivation reconciles everything", nil, post(auth(oktaSecret1), oktaEvents(oktaEvent("user.lifecycle.reactivate", user), add("00g1"))),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"other user lifecycle events are ignored", nil, post(auth(oktaSecret1), oktaEvents(oktaEvent("user.lifecycle.suspend", user), oktaEvent("user.lifecycle.create", user))),
			want{status: 204, outcomes: accepted}},
		{"group event without a usable group id", nil, post(auth(oktaSecret1), oktaEvents(oktaEvent("group.lifecycle.create", oktaTarget("UserGroup", "a/b")))),
			want{status: 204, keys: []queuekey.Key{queuekey.All}, outcomes: accepted}},
		{"unknown events only", nil, post(auth(oktaSecret1), oktaEvents(oktaEvent("user.session.start", user), oktaEvent("app.oauth2.as.token.grant", user))),
			want{status: 204, outcomes: accepted}},
		{"no events", nil, post(auth(oktaSecret1), `{}`), want{status: 204, outcomes: accepted}},
		{"wrong secret", nil, post(auth("Bearer "+oktaSecret1), oktaEvents(add("00g1"))),
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"missing secret", nil, post(nil, oktaEvents(add("00g1"))), want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"empty configured secret accepts nothing", []string{""}, post(auth(""), oktaEvents(add("00g1"))),
			want{status: 401, outcomes: []string{OutcomeUnauthorized}}},
		{"wrong method", nil, call{method: "PUT", header: auth(oktaSecret1)}, want{status: 405, outcomes: []string{OutcomeBadRequest}}},
		{"wrong content type", nil, call{contentType: "text/plain", header: auth(oktaSecret1), body: oktaEvents(add("00g1"))},
			want{status: 415, outcomes: []string{OutcomeBadRequest}}},
		{"invalid JSON", nil, post(auth(oktaSecret1), `{"data":`), want{status: 400, outcomes: []string{OutcomeBadRequest}}},
		{"oversized body", nil, post(auth(oktaSecret1), oktaEvents(strings.Repeat(add("00g1")+",", 40)+add("00g2"))),
			want{status: 413, outcomes: []string{OutcomeTooLarge}}},
		{"oversized body without length", nil, call{contentType: "application/json", header: auth(oktaSecret1), chunked: true, body: strings.Repeat(" ", 4097) + "{}"},
			want{status: 413, outcomes: []string{OutcomeTooLarge}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{oktaSecret1, oktaSecret2}
			}
			rec := &recorder{}
			h := NewOkta(OktaOptions{Secrets: secrets, Queue: rec, Observe: rec.observer(SourceOkta), MaxBody: 4096})
			tt.want.check(t, tt.call.do(h), rec, oktaSecret1, oktaSecret2)
		})
	}
}

func FuzzOkta(f *testing.F) {
	group := oktaEvents(oktaEvent("group.user_membership.add", oktaTarget("User", "00u1"), oktaTarget("UserGroup", "00g1")))
	f.Add("POST", "application/json", oktaSecret1, "", []byte(group))
	f.Add("POST", "application/json", "wrong", "", []byte(group))
	f.Add("POST", "application/json", oktaSecret1, "", []byte(oktaEvents(oktaEvent("user.lifecycle.deactivate"))))
	f.Add("GET", "", oktaSecret1, "challenge", []byte(nil))
	f.Add("POST", "application/json; charset=utf-8", oktaSecret1, "", []byte(`{"data":{"events":[{"target":null}]}}`))
	f.Fuzz(func(t *testing.T, method, contentType, authz, challenge string, body []byte) {
		rec := &recorder{}
		h := NewOkta(OktaOptions{Secrets: []string{oktaSecret1}, Queue: rec, MaxBody: 4096})
		hdr := map[string]string{"Content-Type": contentType, "Authorization": authz, "x-okta-verification-challenge": challenge}
		fuzzCall(t, h, method, "/hook", hdr, body, []int{200, 204, 400, 401, 405, 413, 415}, rec, authz == oktaSecret1)
	})
}

// TestOktaQueueDown: keys that cannot be recorded are answered 503, so Okta sends the event again.
func TestOktaQueueDown(t *testing.T) {
	rec := &recorder{fail: errors.New("outbox unreachable")}
	h := NewOkta(OktaOptions{Secrets: []string{oktaSecret1}, Queue: rec, Observe: rec.observer(SourceOkta)})
	w := call{contentType: "application/json", header: map[string]string{"Authorization": oktaSecret1},
		body: oktaEvents(oktaEvent("group.user_membership.add", oktaTarget("UserGroup", "00g1")))}.do(h)
	want{status: 503, outcomes: []string{OutcomeUnavailable}}.check(t, w, rec, oktaSecret1)
}
