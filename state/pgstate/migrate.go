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
	// 2: the SCIM push store (scim.go). Names are unique by state.FoldSCIMName, kept as bytea like
	// externalIds and the JSON records: a value a client sends may hold any byte, NUL included, which
	// text refuses. A deleted group keeps its row (no name key, no externalId) until purged; modified_ns
	// is its Modified in Unix nanoseconds, compared as exactly as Go compares times. The member rows
	// index who is in which live group; their foreign key keeps a deleted user out of every group.
	`CREATE TABLE scim_users (
		id          text PRIMARY KEY,
		name_key    bytea NOT NULL,
		external_id bytea,
		member      bytea NOT NULL,
		data        bytea NOT NULL,
		epoch       bigint,
		updated_at  timestamptz NOT NULL DEFAULT now()
	);
	CREATE UNIQUE INDEX scim_users_name_key ON scim_users (name_key);
	CREATE INDEX scim_users_external_id ON scim_users (external_id);
	CREATE TABLE scim_groups (
		id          text PRIMARY KEY,
		name_key    bytea,
		external_id bytea,
		deleted     boolean NOT NULL,
		modified_ns bigint NOT NULL,
		data        bytea NOT NULL,
		epoch       bigint,
		updated_at  timestamptz NOT NULL DEFAULT now()
	);
	CREATE UNIQUE INDEX scim_groups_name_key ON scim_groups (name_key);
	CREATE INDEX scim_groups_external_id ON scim_groups (external_id);
	CREATE INDEX scim_groups_deleted ON scim_groups (modified_ns) WHERE deleted;
	CREATE TABLE scim_members (
		user_id  text NOT NULL REFERENCES scim_users (id),
		group_id text NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
		PRIMARY KEY (user_id, group_id)
	);
	CREATE INDEX scim_members_group ON scim_members (group_id);
	CREATE TABLE scim_counts (
		name text PRIMARY KEY,
		n    bigint NOT NULL
	);
	INSERT INTO scim_counts (name, n) VALUES ('users', 0), ('groups', 0);`,
	// 3: triggers (webhook and SCIM changes) any replica accepted, until the leader has reconciled
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
