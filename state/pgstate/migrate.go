package pgstate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the advisory lock key migrations run under ("byob" in ASCII): replicas starting at
// once take turns, and each finds the migrations the first one applied.
const migrationLock = 0x62796f62

// migrations are the schema's versions, in order: version i+1 is migrations[i]. A released migration
// is never changed; a new version is appended.
var migrations = []string{
	// 1: team records and cursors, as state.DB's buckets; epoch is the fencing term of the write
	// (NULL: unfenced); the leader lease and every term it began.
	`CREATE TABLE team_records (
		name       text PRIMARY KEY,
		data       jsonb NOT NULL,
		epoch      bigint,
		updated_at timestamptz NOT NULL DEFAULT now()
	);
	CREATE TABLE cursors (
		name  text PRIMARY KEY,
		value text NOT NULL,
		epoch bigint
	);
	CREATE TABLE leader_lease (
		name        text PRIMARY KEY,
		holder      text NOT NULL,
		epoch       bigint NOT NULL,
		expires_at  timestamptz NOT NULL,
		acquired_at timestamptz NOT NULL,
		renewed_at  timestamptz NOT NULL
	);
	CREATE TABLE leader_terms (
		name        text NOT NULL,
		epoch       bigint NOT NULL,
		holder      text NOT NULL,
		acquired_at timestamptz NOT NULL,
		PRIMARY KEY (name, epoch)
	);`,
	// 2: triggers (webhook and SCIM changes) any replica accepted, until the leader has reconciled
	// their key; see outbox.go.
	`CREATE TABLE trigger_outbox (
		id          bigserial PRIMARY KEY,
		source      text NOT NULL,
		key         text NOT NULL,
		accepted_at timestamptz NOT NULL DEFAULT now()
	);`,
}

// SchemaVersion is the schema version this build migrates to.
var SchemaVersion = len(migrations)

// migrate brings the schema to SchemaVersion in one transaction.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("wait for the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if current > SchemaVersion {
			return fmt.Errorf("the database schema is version %d, newer than this byob-agent understands (%d): upgrade byob-agent", current, SchemaVersion)
		}
		for v := current + 1; v <= SchemaVersion; v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migrate the schema to version %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("record schema version %d: %w", v, err)
			}
		}
		return nil
	})
}
