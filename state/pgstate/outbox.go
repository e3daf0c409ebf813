package pgstate

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// triggerChannel is the NOTIFY channel that wakes the leader when a trigger is added.
const triggerChannel = "byob_triggers"

// Trigger is one accepted webhook or SCIM change waiting for the leader: the work-queue key it names.
type Trigger struct {
	ID     int64
	Source string // okta, graph, generic, scim
	Key    string
}

// AddTriggers records keys accepted from source, and notifies the leader, in one transaction: once it
// returns nil the triggers survive any replica's death. Unfenced: every replica accepts triggers.
func (s *Store) AddTriggers(ctx context.Context, source string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO trigger_outbox (source, key) SELECT $1, unnest($2::text[])`, source, keys); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, triggerChannel) // delivered at commit
		return err
	})
	if err != nil {
		return fmt.Errorf("record %d %s trigger(s): %w", len(keys), source, err)
	}
	return nil
}

// Triggers returns up to limit triggers with an id above after, oldest first.
func (s *Store) Triggers(ctx context.Context, after int64, limit int) ([]Trigger, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, source, key FROM trigger_outbox WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read triggers: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Trigger])
	if err != nil {
		return nil, fmt.Errorf("read triggers: %w", err)
	}
	return out, nil
}

// DeleteTriggers removes triggers whose reconcile succeeded; fenced like every leader write, so a
// replica that lost the lease leaves them to the next leader.
func (s *Store) DeleteTriggers(ctx context.Context, ids []int64) error {
	err := s.write(ctx, func(tx pgx.Tx) (bool, error) {
		_, err := tx.Exec(ctx, `DELETE FROM trigger_outbox WHERE id = ANY($1)`, ids)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("delete %d processed trigger(s): %w", len(ids), err)
	}
	return nil
}

// ListenTriggers calls wake whenever a trigger may have been added, until ctx ends or the listening
// connection fails (then it returns the error: the caller's poll still finds the triggers). It listens
// on a connection of its own, named "byob-agent triggers" (application_name).
func (s *Store) ListenTriggers(ctx context.Context, wake func()) error {
	cc := s.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["application_name"] = "byob-agent triggers"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("listen for triggers: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+triggerChannel); err != nil {
		return fmt.Errorf("listen for triggers: %w", err)
	}
	wake() // anything added before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wait for triggers: %w", err)
		}
		wake()
	}
}
