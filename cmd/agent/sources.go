package main

import (
	"fmt"

	"github.com/byob-agent/byob-agent/config"
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
// one is configured (nil otherwise). It makes no request.
func newSources(cfg *config.Config) ([]desired.IdP, *entraSource, error) {
	var ent *entraSource
	var out []desired.IdP
	if o := cfg.Sources.Okta; o != nil {
		src, err := newOkta(o)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, desired.IdP{Key: okta.SourceKey, Name: "okta", Source: src, Rule: o.Groups})
	}
	if e := cfg.Sources.Entra; e != nil {
		src, err := entra.New(entra.Options{TenantID: e.TenantID, ClientID: e.ClientID, ClientSecret: e.ClientSecret.Reveal(),
			AuthorityURL: e.AuthorityURL, GraphURL: e.GraphURL, Filter: e.Filter, GroupIDs: e.GroupIDs})
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
			Customer: g.Customer, Query: g.Query, BaseURL: g.BaseURL})
		if err != nil {
			return nil, nil, fmt.Errorf("google source: %w", err)
		}
		out = append(out, desired.IdP{Key: "google", Name: "google", Source: src, Rule: g.Groups})
	}
	return out, ent, nil
}

func newOkta(o *config.OktaSource) (*okta.Source, error) {
	src, err := okta.New(okta.Options{OrgURL: o.OrgURL, APIToken: o.APIToken.Reveal(), ClientID: o.ClientID,
		PrivateKeyPEM: []byte(o.PrivateKey.Reveal()), KeyID: o.KeyID, Search: o.Search, Filter: o.Filter})
	if err != nil {
		return nil, fmt.Errorf("okta source: %w", err)
	}
	return src, nil
}

// newCatchUps builds the configured catch-up pollers, which keep their position in cursors. It makes
// no request.
func newCatchUps(cfg *config.Config, cursors okta.CursorStore) ([]catchUp, error) {
	var out []catchUp
	if o := cfg.Sources.Okta; o != nil && o.LogPollInterval > 0 {
		src, err := newOkta(o)
		if err != nil {
			return nil, err
		}
		out = append(out, catchUp{source: "okta", every: o.LogPollInterval, poll: src.LogPoller(cursors).Poll})
	}
	return out, nil
}
