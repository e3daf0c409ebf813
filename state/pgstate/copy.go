package pgstate

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/byob-agent/byob-agent/state"
)

// Cursors returns every stored cursor by name.
func (s *Store) Cursors(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, value FROM cursors`)
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	out := map[string]string{}
	var name, value string
	if _, err := pgx.ForEachRow(rows, []any{&name, &value}, func() error { out[name] = value; return nil }); err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	return out, nil
}

// Import stores records and cursors as they are, timestamps included, into a database that has no
// team and no cursor yet, in one transaction: the receiving end of state.Copy.
func (s *Store) Import(ctx context.Context, recs []state.Record, cursors map[string]string) error {
	err := s.write(ctx, func(tx pgx.Tx) (bool, error) {
		// Writers wait until the import commits; a second import then finds the tables full.
		if _, err := tx.Exec(ctx, `LOCK TABLE team_records, cursors IN EXCLUSIVE MODE`); err != nil {
			return false, err
		}
		var teams, curs int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM team_records), (SELECT count(*) FROM cursors)`).Scan(&teams, &curs); err != nil {
			return false, err
		}
		if teams+curs > 0 {
			return false, fmt.Errorf("it already holds %d teams and %d cursors: import only into a new state", teams, curs)
		}
		rows := make([][]any, 0, len(recs))
		for _, r := range recs {
			data, err := json.Marshal(r)
			if err != nil {
				return false, fmt.Errorf("encode team %q: %w", r.Name, err)
			}
			rows = append(rows, []any{r.Name, data, s.epoch(ctx)})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"team_records"}, []string{"name", "data", "epoch"}, pgx.CopyFromRows(rows)); err != nil {
			return false, fmt.Errorf("store teams: %w", err)
		}
		crows := make([][]any, 0, len(cursors))
		for name, v := range cursors {
			crows = append(crows, []any{name, v, s.epoch(ctx)})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cursors"}, []string{"name", "value", "epoch"}, pgx.CopyFromRows(crows)); err != nil {
			return false, fmt.Errorf("store cursors: %w", err)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("import into PostgreSQL state: %w", err)
	}
	return nil
}

// ImportSCIM stores users and groups as they are (ids, versions, times; deleted groups too) into a
// database that has no SCIM user or group yet, in one transaction: the receiving end of
// state.CopySCIM. A name taken twice or a member that names no user is refused.
func (s *Store) ImportSCIM(ctx context.Context, users []state.SCIMUser, groups []state.SCIMGroup) error {
	err := s.write(ctx, func(tx pgx.Tx) (bool, error) {
		if _, err := tx.Exec(ctx, `LOCK TABLE scim_users, scim_groups IN EXCLUSIVE MODE`); err != nil {
			return false, err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM scim_users) + (SELECT count(*) FROM scim_groups)`).Scan(&n); err != nil {
			return false, err
		}
		if n > 0 {
			return false, fmt.Errorf("it already holds %d SCIM users and groups: import only into a new state", n)
		}
		for _, u := range users {
			raw, err := json.Marshal(u)
			if err != nil {
				return false, fmt.Errorf("encode %s: %w", u.ID, err)
			}
			if err := s.putUser(ctx, tx, u, raw, true); err != nil {
				return false, fmt.Errorf("user %s: %w", u.ID, err)
			}
		}
		live := 0
		for _, g := range groups {
			g.Members = nil
			if err := s.putGroup(ctx, tx, g, true); err != nil {
				return false, fmt.Errorf("group %s: %w", g.ID, err)
			}
			if !g.Deleted {
				live++
				if err := addMembers(ctx, tx, g.ID, g.MemberIDs); err != nil {
					return false, fmt.Errorf("group %s: members: %w", g.ID, err)
				}
			}
		}
		_, err := tx.Exec(ctx, `UPDATE scim_counts SET n = CASE name WHEN 'users' THEN $1::bigint ELSE $2::bigint END`, len(users), live)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("import SCIM users and groups into PostgreSQL state: %w", err)
	}
	return nil
}
