package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/source/desired"
	"github.com/byob-agent/byob-agent/source/entra"
	"github.com/byob-agent/byob-agent/source/google"
	"github.com/byob-agent/byob-agent/source/okta"
)

// entraSource is the daemon's handle on the Entra source: the reader (for the delta catch-up) and
// the keeper of its subscription (nil without one).
type entraSource struct {
	src  *entra.Source
	subs *entra.Subscriptions
}

// newSources builds the clients of the configured IdP sources, and the Entra source's handle when
// one is configured (nil otherwise). It makes no request. With m (the daemon), each IdP's requests
// are counted and timed under its name (okta, entra, google).
func newSources(cfg *config.Config, m *metrics.Metrics) ([]desired.IdP, *entraSource, error) {
	var ent *entraSource
	var out []desired.IdP
	if o := cfg.Sources.Okta; o != nil {
		src, err := newOkta(o, m)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, desired.IdP{Key: okta.SourceKey, Name: "okta", Source: src, Rule: o.Groups})
	}
	if e := cfg.Sources.Entra; e != nil {
		src, err := entra.New(entra.Options{TenantID: e.TenantID, ClientID: e.ClientID, ClientSecret: e.ClientSecret.Reveal(),
			AuthorityURL: e.AuthorityURL, GraphURL: e.GraphURL, Filter: e.Filter, GroupIDs: e.GroupIDs, HTTPClient: idpClient(m, "entra", 60*time.Second)})
		if err != nil {
			return nil, nil, fmt.Errorf("entra source: %w", err)
		}
		s := desired.IdP{Key: "graph", Name: "entra", Source: src, Rule: e.Groups}
		ent = &entraSource{src: src}
		if sub := e.Subscription; sub != nil {
			// Graph lists existing subscriptions, so a restart adopts ours instead of adding one.
			ent.subs = entra.NewSubscriptions(src, entra.SubscriptionOptions{
				NotificationURL: sub.NotificationURL, ClientState: sub.ClientState.Reveal()})
			s.Keep = ent.subs.Ensure
		}
		out = append(out, s)
	}
	if g := cfg.Sources.Google; g != nil {
		src, err := google.New(google.Options{CredentialsJSON: []byte(g.ServiceAccountKey.Reveal()), Subject: g.Subject,
			Customer: g.Customer, Query: g.Query, BaseURL: g.BaseURL, HTTPClient: idpClient(m, "google", 30*time.Second)})
		if err != nil {
			return nil, nil, fmt.Errorf("google source: %w", err)
		}
		out = append(out, desired.IdP{Key: "google", Name: "google", Source: src, Rule: g.Groups})
	}
	return out, ent, nil
}

// idpClient is the HTTP client of an IdP source: nil (the source's own default) without m, else one
// whose requests m counts under target, with the timeout the source's default has.
func idpClient(m *metrics.Metrics, target string, timeout time.Duration) *http.Client {
	if m == nil {
		return nil
	}
	return &http.Client{Timeout: timeout, Transport: m.Transport(target, nil)}
}

func newOkta(o *config.OktaSource, m *metrics.Metrics) (*okta.Source, error) {
	src, err := okta.New(okta.Options{OrgURL: o.OrgURL, APIToken: o.APIToken.Reveal(), ClientID: o.ClientID,
		PrivateKeyPEM: []byte(o.PrivateKey.Reveal()), KeyID: o.KeyID, Search: o.Search, Filter: o.Filter,
		HTTPClient: idpClient(m, "okta", 30*time.Second)})
	if err != nil {
		return nil, fmt.Errorf("okta source: %w", err)
	}
	return src, nil
}

// newCatchUps builds the configured catch-up pollers, which keep their position in cursors. It makes
// no request.
func newCatchUps(cfg *config.Config, cursors okta.CursorStore, m *metrics.Metrics) ([]catchUp, error) {
	var out []catchUp
	if o := cfg.Sources.Okta; o != nil && o.LogPollInterval > 0 {
		src, err := newOkta(o, m)
		if err != nil {
			return nil, err
		}
		out = append(out, catchUp{source: "okta", every: o.LogPollInterval, poll: src.LogPoller(cursors).Poll})
	}
	return out, nil
}
