// Package pgstate provides the team records and cursors of package state in PostgreSQL, for several
// replicas sharing one database, and the leader lease that fences their writes (lease.go).
//
// Records have the semantics of the bbolt backend (state.DB), held to them by the suite in package
// statetest: one team's Update is a read-modify-write in one transaction with the row locked, so
// concurrent updates lose nothing. A Store made Fenced by a Term checks that term's epoch inside every
// write transaction, and a write of a replica that lost the lease fails with ErrFenced.
//
// Open creates and migrates the schema: versioned migrations in one transaction under an advisory lock,
// so replicas starting at once apply each migration once; a database migrated by a newer build is
// refused.
package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/byob-agent/byob-agent/state"
)

// Store is the PostgreSQL-backed state. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	now   func() time.Time
	fence *Term // nil: writes are not fenced (one-shot commands, migrate), unless fenceCtx
	// fenceCtx fences each write by the term its context carries (WithTerm).
	fenceCtx bool
	// limits bound SCIM writes; shared by every Fenced view of the store.
	limits *atomic.Pointer[state.SCIMLimits]
}

// Open connects to the database named by dsn and migrates its schema. The DSN is a secret: errors
// never quote it (pgx redacts the password in its own).
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL state: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL state: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open PostgreSQL state on %s: %w", where(cfg.ConnConfig), err)
	}
	return &Store{pool: pool, now: time.Now, limits: new(atomic.Pointer[state.SCIMLimits])}, nil
}

// where names a database without its credentials.
func where(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Close releases the connections. It returns nil, as state.DB's Close may fail.
// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("reach the PostgreSQL state: %w", err)
	}
	return nil
}

func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// ErrNoBackup: the state is in PostgreSQL, whose own tools back it up.
var ErrNoBackup = errors.New("state backup copies the bbolt state file, and this state is in PostgreSQL: back it up with pg_dump, or write its team records as JSON with `byob-agent state export`")

// Backup refuses: see ErrNoBackup.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) { return 0, ErrNoBackup }

// Fenced returns a view of s whose every write checks, in its own transaction, that t is still the
// current term: a write after the lease moved on fails with ErrFenced and commits nothing.
func (s *Store) Fenced(t *Term) *Store {
	f := *s
	f.fence = t
	return &f
}

// write runs fn in a transaction, after the fence check; fn's commit false rolls back (nothing to
// write) without an error.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) (commit bool, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) // a no-op after Commit
	if t := s.term(ctx); t != nil {
		if err := t.check(ctx, tx); err != nil {
			return err
		}
	}
	commit, err := fn(tx)
	if err != nil || !commit {
		return err
	}
	return tx.Commit(ctx)
}

// epoch is what a write records as its writer: the fencing term's epoch, or NULL when unfenced. It
// lets a test (or an operator) check in the database that no stale leader committed anything.
func (s *Store) epoch(ctx context.Context) *int64 {
	if t := s.term(ctx); t != nil {
		return &t.Epoch
	}
	return nil
}

// Get returns the record of one team, or state.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (state.Record, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM team_records WHERE name = $1`, name).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return state.Record{}, fmt.Errorf("team %q: %w", name, state.ErrNotFound)
	}
	if err != nil {
		return state.Record{}, fmt.Errorf("read state of team %q: %w", name, err)
	}
	var r state.Record
	if err := decode(name, data, &r); err != nil {
		return state.Record{}, err
	}
	return r, nil
}

// List returns every record, sorted by team name as bytes (as bbolt keeps them), from one snapshot.
func (s *Store) List(ctx context.Context) ([]state.Record, error) {
	out, err := list(ctx, s.pool, "")
	if err != nil {
		return nil, fmt.Errorf("list team states: %w", err)
	}
	return out, nil
}

// list reads every record; suffix ends the query (FOR UPDATE).
func list(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, suffix string) ([]state.Record, error) {
	rows, err := q.Query(ctx, `SELECT name, data FROM team_records ORDER BY name COLLATE "C" `+suffix)
	if err != nil {
		return nil, err
	}
	out := []state.Record{}
	var name string
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&name, &data}, func() error {
		var r state.Record
		if err := decode(name, data, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// CountByStatus counts the teams of each status (state.Record.Status), reading only the four fields
// status depends on: it runs at every metrics scrape.
func (s *Store) CountByStatus(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT coalesce(data->>'phase', ''), coalesce(data->>'lastError', ''),
		coalesce(data->>'conflict', ''), coalesce((data->>'orphaned')::boolean, false) FROM team_records`)
	if err != nil {
		return nil, fmt.Errorf("count teams by status: %w", err)
	}
	counts := map[string]int{}
	var r state.Record
	var phase string
	_, err = pgx.ForEachRow(rows, []any{&phase, &r.LastError, &r.Conflict, &r.Orphaned}, func() error {
		r.Phase = state.Phase(phase)
		counts[r.Status()]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count teams by status: %w", err)
	}
	return counts, nil
}

// Update applies fn to the team's record (a zero Record with the name set if there is none) and
// stores the result, all in one transaction with the team's row locked. Returning an error from fn
// stores nothing; a record fn leaves unchanged is not written.
func (s *Store) Update(ctx context.Context, name string, fn func(*state.Record) error) (state.Record, error) {
	var out state.Record
	err := s.write(ctx, func(tx pgx.Tx) (bool, error) {
		r := state.Record{Name: name}
		// A new team's row is made (and locked) first, so that concurrent first updates queue on it
		// like later ones; a rollback removes it again.
		var inserted bool
		err := tx.QueryRow(ctx, `INSERT INTO team_records (name, data) VALUES ($1, '{}') ON CONFLICT (name) DO NOTHING RETURNING true`, name).Scan(&inserted)
		if errors.Is(err, pgx.ErrNoRows) {
			var data []byte
			if err := tx.QueryRow(ctx, `SELECT data FROM team_records WHERE name = $1 FOR UPDATE`, name).Scan(&data); err != nil {
				return false, err
			}
			err = decode(name, data, &r)
		}
		if err != nil {
			return false, err
		}
		next, changed, err := state.Apply(r, fn, s.now())
		if err != nil || !changed {
			out = next
			return false, err
		}
		data, err := json.Marshal(next)
		if err != nil {
			return false, fmt.Errorf("encode team %q: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE team_records SET data = $2, epoch = $3, updated_at = now() WHERE name = $1`, name, data, s.epoch(ctx)); err != nil {
			return false, err
		}
		out = next
		return true, nil
	})
	if err != nil {
		return state.Record{}, fmt.Errorf("update state of team %q: %w", name, err)
	}
	return out, nil
}

// MarkRegistered records that the operator registered the bucket of team name with W&B: every team on
// that bucket is marked, in one transaction; it returns them. A team whose bucket is not ready yet is
// an error.
func (s *Store) MarkRegistered(ctx context.Context, name string) ([]state.Record, error) {
	var marked []state.Record
	err := s.write(ctx, func(tx pgx.Tx) (bool, error) {
		all, err := list(ctx, tx, "FOR UPDATE")
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(all, func(r state.Record) bool { return r.Name == name })
		if i < 0 {
			return false, fmt.Errorf("team %q: %w", name, state.ErrNotFound)
		}
		if marked, err = state.Registering(all[i], all, s.now()); err != nil {
			return false, err
		}
		for _, r := range marked {
			data, err := json.Marshal(r)
			if err != nil {
				return false, fmt.Errorf("encode team %q: %w", r.Name, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE team_records SET data = $2, epoch = $3, updated_at = now() WHERE name = $1`, r.Name, data, s.epoch(ctx)); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return marked, nil
}

// Export writes every record as indented JSON, with the schema version.
func (s *Store) Export(ctx context.Context, w io.Writer) error {
	recs, err := s.List(ctx)
	if err != nil {
		return err
	}
	return state.WriteExport(w, recs)
}

// Cursor returns the cursor stored under name, or "" if there is none.
func (s *Store) Cursor(ctx context.Context, name string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM cursors WHERE name = $1`, name).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("read cursor %q: %w", name, err)
	}
	return v, nil
}

// SetCursor stores value under name; an empty value removes the cursor (the next read is full).
func (s *Store) SetCursor(ctx context.Context, name, value string) error {
	err := s.write(ctx, func(tx pgx.Tx) (bool, error) {
		var err error
		if value == "" {
			_, err = tx.Exec(ctx, `DELETE FROM cursors WHERE name = $1`, name)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO cursors (name, value, epoch) VALUES ($1, $2, $3)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value, epoch = excluded.epoch`, name, value, s.epoch(ctx))
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("store cursor %q: %w", name, err)
	}
	return nil
}

func decode(name string, data []byte, r *state.Record) error {
	if err := json.Unmarshal(data, r); err != nil {
		return fmt.Errorf("decode state of team %q: %w", name, err)
	}
	return nil
}
