package main

import (
	"context"
	"fmt"
	"time"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source/desired"
	"github.com/byob-agent/byob-agent/source/entra"
	"github.com/byob-agent/byob-agent/source/google"
	"github.com/byob-agent/byob-agent/source/okta"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// newSources builds the clients of the configured IdP sources, and the keeper of the Entra
// subscription when one is configured (nil otherwise). It makes no request.
func newSources(cfg *config.Config) ([]desired.IdP, *entra.Subscriptions, error) {
	var subs *entra.Subscriptions
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
		if sub := e.Subscription; sub != nil {
			// Graph lists existing subscriptions, so a restart adopts ours instead of adding one.
			subs = entra.NewSubscriptions(src, entra.SubscriptionOptions{
				NotificationURL: sub.NotificationURL, ClientState: sub.ClientState.Reveal()})
			s.Keep = subs.Ensure
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
	return out, subs, nil
}

func newOkta(o *config.OktaSource) (*okta.Source, error) {
	src, err := okta.New(okta.Options{OrgURL: o.OrgURL, APIToken: o.APIToken.Reveal(), ClientID: o.ClientID,
		PrivateKeyPEM: []byte(o.PrivateKey.Reveal()), KeyID: o.KeyID, Search: o.Search, Filter: o.Filter})
	if err != nil {
		return nil, fmt.Errorf("okta source: %w", err)
	}
	return src, nil
}

// catchUp polls an IdP's change log for what a missed webhook would have announced.
type catchUp struct {
	source string // okta
	every  time.Duration
	poll   func(ctx context.Context, enqueue func(queuekey.Key)) (events int, err error)
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
