package pgstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/byob-agent/byob-agent/state"
)

// The SCIM push store, with the semantics of state.DB's (held to them by statetest.SCIM): a userName
// is unique among users and a displayName among live groups, compared by state.FoldSCIMName through
// unique indexes; a group's members are users that exist. Unlike bbolt, an update runs its function
// inside the write transaction with the row locked (FOR UPDATE): replicas then queue on the row
// instead of retrying each other's writes, and no concurrent update is lost. A transaction that
// deadlocks with another (a user deletion and a group update lock user and group in opposite
// orders) is run again; every write returns once committed.

// maxTries bounds how often a SCIM write that deadlocked, or met a user deleted under it, runs again.
const maxTries = 8

// scimWrite runs fn as a (fenced) write transaction, again when PostgreSQL aborted it for a deadlock
// or a serialization failure, or when a member it added was deleted meanwhile (a foreign key
// violation). fn sets its results afresh on every run.
func (s *Store) scimWrite(ctx context.Context, fn func(tx pgx.Tx) (commit bool, err error)) error {
	for range maxTries {
		err := s.write(ctx, fn)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "40P01" && pe.Code != "40001" && pe.Code != "23503") {
			return err
		}
	}
	return state.ErrSCIMBusy
}

// read runs fn in a read-only transaction that sees one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// SetSCIMLimits sets the limits later writes check; zero fields take the defaults.
func (s *Store) SetSCIMLimits(l state.SCIMLimits) {
	l = l.WithDefaults()
	s.limits.Store(&l)
}

// SCIMLimits are the limits in force.
func (s *Store) SCIMLimits() state.SCIMLimits {
	if l := s.limits.Load(); l != nil {
		return *l
	}
	return state.DefaultSCIMLimits
}

// usable says whether a key can be a text parameter: PostgreSQL's text takes neither NUL nor invalid
// UTF-8, and such an id names no resource (ids are generated hex).
func usable(id string) bool { return utf8.ValidString(id) && !strings.ContainsRune(id, 0) }

// usableIDs keeps the ids usable as text parameters.
func usableIDs(ids []string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !usable(id) })
}

// nullable is a bytea parameter: NULL for "".
func nullable(v string) []byte {
	if v == "" {
		return nil
	}
	return []byte(v)
}

// conflict maps a unique violation of a name index to state.ErrSCIMConflict.
func conflict(err error, attr, name string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && strings.HasSuffix(pe.ConstraintName, "_name_key") {
		return fmt.Errorf("%s %q: %w", attr, name, state.ErrSCIMConflict)
	}
	return err
}

// take counts one more user or live group, refusing one over the limit. The count's row serialises
// creations, so that concurrent ones cannot pass the limit together.
func take(ctx context.Context, tx pgx.Tx, what string, limit int) error {
	var n int
	err := tx.QueryRow(ctx, `UPDATE scim_counts SET n = n + 1 WHERE name = $1 AND n < $2 RETURNING n`, what, limit).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return &state.SCIMLimitError{What: what, Limit: limit}
	}
	return err
}

func release(ctx context.Context, tx pgx.Tx, what string) error {
	_, err := tx.Exec(ctx, `UPDATE scim_counts SET n = greatest(n - 1, 0) WHERE name = $1`, what)
	return err
}

// CreateSCIMUser stores a new user under a new id.
func (s *Store) CreateSCIMUser(ctx context.Context, u state.SCIMUser) (state.SCIMUser, error) {
	if err := state.CheckSCIMName(u.UserName); err != nil {
		return state.SCIMUser{}, fmt.Errorf("create SCIM user: userName: %w", err)
	}
	lim := s.SCIMLimits()
	now := s.now().UTC()
	u.Version, u.Created, u.Modified = 1, now, now
	id, err := state.NewSCIMID()
	if err != nil {
		return state.SCIMUser{}, fmt.Errorf("create SCIM user: %w", err)
	}
	u.ID = id
	raw, err := state.EncodeSCIMUser(u, lim)
	if err != nil {
		return state.SCIMUser{}, fmt.Errorf("create SCIM user: %w", err)
	}
	err = s.scimWrite(ctx, func(tx pgx.Tx) (bool, error) {
		if err := take(ctx, tx, "users", lim.MaxUsers); err != nil {
			return false, err
		}
		return true, s.putUser(ctx, tx, u, raw, true)
	})
	if err != nil {
		return state.SCIMUser{}, fmt.Errorf("create SCIM user: %w", err)
	}
	return u, nil
}

// putUser inserts or updates a user (raw is its encoding) with its name key, externalId and member
// summary.
func (s *Store) putUser(ctx context.Context, tx pgx.Tx, u state.SCIMUser, raw []byte, insert bool) error {
	member, err := json.Marshal(u.Member())
	if err != nil {
		return fmt.Errorf("encode %s: %w", u.ID, err)
	}
	q := `UPDATE scim_users SET name_key = $2, external_id = $3, member = $4, data = $5, epoch = $6, updated_at = now() WHERE id = $1`
	if insert {
		q = `INSERT INTO scim_users (id, name_key, external_id, member, data, epoch) VALUES ($1, $2, $3, $4, $5, $6)`
	}
	_, err = tx.Exec(ctx, q, u.ID, []byte(state.FoldSCIMName(u.UserName)), nullable(u.ExternalID), member, raw, s.epoch(ctx))
	return conflict(err, "userName", u.UserName)
}

// SCIMUser returns one user, or ErrSCIMNotFound.
func (s *Store) SCIMUser(ctx context.Context, id string) (state.SCIMUser, error) {
	var u state.SCIMUser
	if err := getOne(ctx, s.pool, `SELECT data FROM scim_users WHERE id = $1`, id, &u); err != nil {
		return state.SCIMUser{}, fmt.Errorf("read SCIM user %q: %w", id, err)
	}
	return u, nil
}

// getOne decodes the record query (of one id parameter) returns, or gives ErrSCIMNotFound.
func getOne(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, query, id string, v any) error {
	if !usable(id) {
		return state.ErrSCIMNotFound
	}
	var raw []byte
	err := q.QueryRow(ctx, query, id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return state.ErrSCIMNotFound
	}
	if err != nil {
		return err
	}
	return decodeSCIM(id, raw, v)
}

func decodeSCIM(id string, raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", id, err)
	}
	return nil
}

// SCIMUsers returns every user, in id order.
func (s *Store) SCIMUsers(ctx context.Context) ([]state.SCIMUser, error) {
	out, _, err := s.ListSCIMUsers(ctx, state.SCIMList[state.SCIMUser]{Keep: func(state.SCIMUser) bool { return true }, Count: int(^uint(0) >> 1)})
	return out, err
}

// ListSCIMUsers returns one page of users and how many match in all.
func (s *Store) ListSCIMUsers(ctx context.Context, q state.SCIMList[state.SCIMUser]) ([]state.SCIMUser, int, error) {
	page, total, err := listPage(ctx, s, "scim_users", "users", q, func(u state.SCIMUser) bool {
		switch q.By {
		case state.SCIMByUserName:
			return strings.EqualFold(u.UserName, state.LookupSCIMName(q.Value))
		case state.SCIMByExternalID:
			return u.ExternalID == q.Value
		}
		return true
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list SCIM users: %w", err)
	}
	return page, total, nil
}

// listPage reads one page of a SCIM table (users, or live groups), in id order, from one snapshot.
// A plain page reads only its rows, the total from the count; an index lookup or a Keep reads every
// candidate, re-checked by has (a name key may stand for more than one name).
func listPage[T any](ctx context.Context, s *Store, table, count string, q state.SCIMList[T], has func(T) bool) ([]T, int, error) {
	start, n := max(q.Start, 0), max(q.Count, 0)
	var (
		page  []T
		total int
	)
	err := s.read(ctx, func(tx pgx.Tx) error {
		page, total = nil, 0
		if q.By == "" && q.Keep == nil {
			if err := tx.QueryRow(ctx, `SELECT n FROM scim_counts WHERE name = $1`, count).Scan(&total); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, lookup(table, "")+` LIMIT $1 OFFSET $2`, n, start)
			if err != nil {
				return err
			}
			return eachRecord(rows, func(v T) { page = append(page, v) })
		}
		var args []any
		switch q.By {
		case state.SCIMByID:
			if !usable(q.Value) {
				return nil
			}
			args = []any{q.Value}
		case state.SCIMByUserName, state.SCIMByDisplayName:
			args = []any{[]byte(state.FoldSCIMName(state.LookupSCIMName(q.Value)))}
		case state.SCIMByExternalID:
			args = []any{[]byte(q.Value)}
		}
		rows, err := tx.Query(ctx, lookup(table, q.By), args...)
		if err != nil {
			return err
		}
		return eachRecord(rows, func(v T) {
			if !has(v) || (q.Keep != nil && !q.Keep(v)) {
				return
			}
			if total >= start && total-start < n {
				page = append(page, v)
			}
			total++
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return page, total, nil
}

// lookup is the query of the records of table (live ones only, for groups) that index by takes to
// its one parameter, or of them all; each lookup goes through an index (TestLookupsUseIndexes).
func lookup(table string, by state.SCIMIndex) string {
	where, ok := map[state.SCIMIndex]string{
		state.SCIMByID:          "id = $1",
		state.SCIMByUserName:    "name_key = $1",
		state.SCIMByDisplayName: "name_key = $1",
		state.SCIMByExternalID:  "external_id = $1",
	}[by]
	if !ok {
		where = "true" // every record, as state.DB lists them for an index it does not know
	}
	if table == "scim_groups" {
		where += " AND NOT deleted"
	}
	return `SELECT id, data FROM ` + table + ` WHERE ` + where + ` ORDER BY id COLLATE "C"`
}

// eachRecord decodes the (id, data) rows one at a time.
func eachRecord[T any](rows pgx.Rows, fn func(T)) error {
	var (
		id  string
		raw []byte
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
		var v T
		if err := decodeSCIM(id, raw, &v); err != nil {
			return err
		}
		fn(v)
		return nil
	})
	return err
}

// UpdateSCIMUser applies fn to the user and stores the result; an error from fn stores nothing.
// It returns the live groups the user belongs to when the write changed something.
func (s *Store) UpdateSCIMUser(ctx context.Context, id string, fn func(*state.SCIMUser) error) (state.SCIMUser, []string, error) {
	lim := s.SCIMLimits()
	var (
		out    state.SCIMUser
		groups []string
	)
	err := s.scimWrite(ctx, func(tx pgx.Tx) (bool, error) {
		groups = nil
		var raw []byte
		if usable(id) {
			if err := tx.QueryRow(ctx, `SELECT data FROM scim_users WHERE id = $1 FOR UPDATE`, id).Scan(&raw); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return false, err
			}
		}
		if raw == nil {
			return false, state.ErrSCIMNotFound
		}
		var cur state.SCIMUser
		if err := decodeSCIM(id, raw, &cur); err != nil {
			return false, err
		}
		version, created, modified := cur.Version, cur.Created, cur.Modified
		if err := fn(&cur); err != nil {
			return false, err
		}
		next := cur
		next.ID, next.Version, next.Created, next.Modified = id, version, created, modified
		if same, err := json.Marshal(next); err != nil || bytes.Equal(same, raw) {
			out = next
			return false, err // nothing changed: no write
		}
		if err := state.CheckSCIMName(next.UserName); err != nil {
			return false, fmt.Errorf("userName: %w", err)
		}
		next.Version++
		next.Modified = s.now().UTC()
		enc, err := state.EncodeSCIMUser(next, lim)
		if err != nil {
			return false, err
		}
		if err := s.putUser(ctx, tx, next, enc, false); err != nil {
			return false, err
		}
		if groups, err = column(ctx, tx, `SELECT group_id FROM scim_members WHERE user_id = $1 ORDER BY group_id COLLATE "C"`, id); err != nil {
			return false, err
		}
		out = next
		return true, nil
	})
	if err != nil {
		return state.SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: %w", id, err)
	}
	return out, groups, nil
}

// column returns the one text column a query yields.
func column(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DeleteSCIMUser removes the user and its memberships in one transaction, once check (nil accepts
// any) accepts the current user. It returns the live groups the user left.
func (s *Store) DeleteSCIMUser(ctx context.Context, id string, check func(state.SCIMUser) error) ([]string, error) {
	var left []string
	err := s.scimWrite(ctx, func(tx pgx.Tx) (bool, error) {
		left = nil
		var u state.SCIMUser
		if err := getOne(ctx, tx, `SELECT data FROM scim_users WHERE id = $1 FOR UPDATE`, id, &u); err != nil {
			return false, err
		}
		if check != nil {
			if err := check(u); err != nil {
				return false, err
			}
		}
		var err error
		if left, err = column(ctx, tx, `DELETE FROM scim_members WHERE user_id = $1 RETURNING group_id`, id); err != nil {
			return false, err
		}
		slices.Sort(left)
		for _, gid := range left {
			if err := s.leave(ctx, tx, gid, id); err != nil {
				return false, err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM scim_users WHERE id = $1`, id); err != nil {
			return false, err
		}
		return true, release(ctx, tx, "users")
	})
	if err != nil {
		return nil, fmt.Errorf("delete SCIM user %q: %w", id, err)
	}
	return left, nil
}

// SCIMMembers resolves member ids to what a member list shows; ids that name no user are skipped.
func (s *Store) SCIMMembers(ctx context.Context, ids []string) ([]state.SCIMMember, error) {
	var out []state.SCIMMember
	err := s.read(ctx, func(tx pgx.Tx) error {
		m, err := members(ctx, tx, `SELECT id, member FROM scim_users WHERE id = ANY($1)`, usableIDs(ids))
		out = make([]state.SCIMMember, 0, len(ids))
		for _, id := range ids {
			if v, ok := m[id]; ok {
				out = append(out, v)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read SCIM group members: %w", err)
	}
	return out, nil
}

// members reads the member summaries a query yields, by user id.
func members(ctx context.Context, tx pgx.Tx, query string, args ...any) (map[string]state.SCIMMember, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out := map[string]state.SCIMMember{}
	var (
		id  string
		raw []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
		var m state.SCIMMember
		if err := decodeSCIM(id, raw, &m); err != nil {
			return err
		}
		out[id] = m
		return nil
	})
	return out, err
}
