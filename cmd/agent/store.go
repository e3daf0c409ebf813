package main

import (
	"context"
	"io"
	"time"

	"github.com/byob-agent/byob-agent/config"
	scimserver "github.com/byob-agent/byob-agent/scim/server"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/pgstate"
	"github.com/byob-agent/byob-agent/sync/apply"
)

// stateStore is the state the daemon and the commands use: the bbolt file (*state.DB, the default),
// or PostgreSQL (*pgstate.Store) when state.postgres is set. Both pass the suites of package
// statetest.
type stateStore interface {
	apply.Store      // team records, for the reconciler
	scimserver.Store // the SCIM push store, for /scim/v2
	Get(ctx context.Context, name string) (state.Record, error)
	MarkRegistered(ctx context.Context, name string) ([]state.Record, error)
	Cursor(ctx context.Context, name string) (string, error)
	SetCursor(ctx context.Context, name, value string) error
	SCIMGroups(ctx context.Context) ([]state.SCIMGroup, error)
	PurgeDeletedSCIMGroups(ctx context.Context, before time.Time, ids ...string) (int, error)
	SetSCIMLimits(l state.SCIMLimits)
	Export(ctx context.Context, w io.Writer) error
	Backup(ctx context.Context, w io.Writer) (int64, error) // bbolt only: PostgreSQL says to use pg_dump
	Close() error
}

var (
	_ stateStore = (*state.DB)(nil)
	_ stateStore = (*pgstate.Store)(nil)
)

// openState opens the configured state: PostgreSQL with state.postgres (so creates or migrates its
// schema), else the bbolt file at state.path with options so.
func openState(ctx context.Context, cfg *config.Config, so state.Options) (stateStore, error) {
	if p := cfg.State.Postgres; p != nil {
		s, err := pgstate.Open(ctx, p.DSN.Reveal())
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	db, err := state.Open(cfg.State.Path, so)
	if err != nil {
		return nil, err
	}
	return db, nil
}
