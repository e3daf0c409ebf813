package pgstate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/byob-agent/byob-agent/state"
)

// CreateSCIMGroup stores a new group under a new id. Member ids that name no user are dropped.
func (s *Store) CreateSCIMGroup(ctx context.Context, g state.SCIMGroup) (state.SCIMGroup, error) {
	if err := state.CheckSCIMName(g.DisplayName); err != nil {
		return state.SCIMGroup{}, fmt.Errorf("create SCIM group: displayName: %w", err)
	}
	lim := s.SCIMLimits()
	now := s.now().UTC()
	g.Deleted, g.Members = false, nil
	g.Version, g.Created, g.Modified = 1, now, now
	id, err := state.NewSCIMID()
	if err != nil {
		return state.SCIMGroup{}, fmt.Errorf("create SCIM group: %w", err)
	}
	g.ID = id
	asked := state.SortedSCIMIDs(g.MemberIDs)
	var out state.SCIMGroup
	err = s.scimWrite(ctx, func(tx pgx.Tx) (bool, error) {
		next := g
		var err error
		if next.MemberIDs, err = knownUsers(ctx, tx, asked); err != nil {
			return false, err
		}
		if len(next.MemberIDs) > lim.MaxMembers {
			return false, &state.SCIMLimitError{What: "members of one group", Limit: lim.MaxMembers}
		}
		if err := take(ctx, tx, "groups", lim.MaxGroups); err != nil {
			return false, err
		}
		if err := s.putGroup(ctx, tx, next, true); err != nil {
			return false, err
		}
		out = next
		return true, addMembers(ctx, tx, next.ID, next.MemberIDs)
	})
	if err != nil {
		return state.SCIMGroup{}, fmt.Errorf("create SCIM group: %w", err)
	}
	return out, nil
}

// knownUsers keeps the ids (sorted) that name a user, and locks those users against deletion (FOR
// KEY SHARE) until the transaction ends, so that they are still there when it commits.
func knownUsers(ctx context.Context, tx pgx.Tx, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	known, err := column(ctx, tx, `SELECT id FROM scim_users WHERE id = ANY($1) ORDER BY id COLLATE "C" FOR KEY SHARE`, usableIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("look up members: %w", err)
	}
	return known, nil
}

func addMembers(ctx context.Context, tx pgx.Tx, groupID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO scim_members (user_id, group_id) SELECT unnest($1::text[]), $2`, ids, groupID)
	return err
}

// putGroup inserts or updates a group with its name key and externalId (none once deleted).
func (s *Store) putGroup(ctx context.Context, tx pgx.Tx, g state.SCIMGroup, insert bool) error {
	raw, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode %s: %w", g.ID, err)
	}
	var key, ext []byte
	if !g.Deleted {
		key, ext = []byte(state.FoldSCIMName(g.DisplayName)), nullable(g.ExternalID)
	}
	q := `UPDATE scim_groups SET name_key = $2, external_id = $3, deleted = $4, modified_ns = $5, data = $6, epoch = $7, updated_at = now() WHERE id = $1`
	if insert {
		q = `INSERT INTO scim_groups (id, name_key, external_id, deleted, modified_ns, data, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	}
	_, err = tx.Exec(ctx, q, g.ID, key, ext, g.Deleted, g.Modified.UnixNano(), raw, s.epoch(ctx))
	return conflict(err, "displayName", g.DisplayName)
}

// SCIMGroup returns one group, deleted or not, or ErrSCIMNotFound. Members is not resolved.
func (s *Store) SCIMGroup(ctx context.Context, id string) (state.SCIMGroup, error) {
	var g state.SCIMGroup
	if err := getOne(ctx, s.pool, `SELECT data FROM scim_groups WHERE id = $1`, id, &g); err != nil {
		return state.SCIMGroup{}, fmt.Errorf("read SCIM group %q: %w", id, err)
	}
	return g, nil
}

// SCIMGroups returns every group in id order, deleted ones included (Deleted set, no members), the
// live ones with their members resolved, all from one snapshot: the daemon's view of pushed teams.
func (s *Store) SCIMGroups(ctx context.Context) ([]state.SCIMGroup, error) {
	var out []state.SCIMGroup
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT id, data FROM scim_groups ORDER BY id COLLATE "C"`)
		if err != nil {
			return err
		}
		if err := eachRecord(rows, func(g state.SCIMGroup) { out = append(out, g) }); err != nil {
			return err
		}
		m, err := members(ctx, tx, `SELECT id, member FROM scim_users WHERE id IN (SELECT user_id FROM scim_members)`)
		if err != nil {
			return err
		}
		for i, g := range out {
			if g.Deleted {
				continue
			}
			out[i].Members = make([]state.SCIMMember, 0, len(g.MemberIDs))
			for _, id := range g.MemberIDs {
				if v, ok := m[id]; ok {
					out[i].Members = append(out[i].Members, v)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read SCIM groups: %w", err)
	}
	return out, nil
}

// ListSCIMGroups returns one page of live groups (members not resolved) and how many match in all.
func (s *Store) ListSCIMGroups(ctx context.Context, q state.SCIMList[state.SCIMGroup]) ([]state.SCIMGroup, int, error) {
	page, total, err := listPage(ctx, s, "scim_groups", "groups", q, func(g state.SCIMGroup) bool {
		switch q.By {
		case state.SCIMByDisplayName:
			return strings.EqualFold(g.DisplayName, state.LookupSCIMName(q.Value))
		case state.SCIMByExternalID:
			return g.ExternalID == q.Value
		}
		return true
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list SCIM groups: %w", err)
	}
	return page, total, nil
}

// UpdateSCIMGroup applies fn to a live group and stores the result; an error from fn stores
// nothing. Setting Deleted deletes the group (see state.SCIMGroup.Deleted). Members is not resolved.
func (s *Store) UpdateSCIMGroup(ctx context.Context, id string, fn func(*state.SCIMGroup) error) (state.SCIMGroup, error) {
	lim := s.SCIMLimits()
	var out state.SCIMGroup
	err := s.scimWrite(ctx, func(tx pgx.Tx) (bool, error) {
		var cur state.SCIMGroup
		if err := getOne(ctx, tx, `SELECT data FROM scim_groups WHERE id = $1 FOR UPDATE`, id, &cur); err != nil {
			return false, err
		}
		if cur.Deleted {
			return false, state.ErrSCIMNotFound
		}
		old, oldName, oldExt := slices.Clone(cur.MemberIDs), cur.DisplayName, cur.ExternalID
		version, created, modified := cur.Version, cur.Created, cur.Modified
		if err := fn(&cur); err != nil {
			return false, err
		}
		next := cur
		next.ID, next.Version, next.Created, next.Modified, next.Members = id, version, created, modified, nil
		next.MemberIDs = state.SortedSCIMIDs(next.MemberIDs)
		if added, _ := state.DiffSCIMIDs(old, next.MemberIDs); len(added) > 0 {
			known, err := knownUsers(ctx, tx, added)
			if err != nil {
				return false, err
			}
			gone, _ := state.DiffSCIMIDs(known, added) // the added ids that name no user
			next.MemberIDs = slices.DeleteFunc(next.MemberIDs, func(id string) bool { _, ok := slices.BinarySearch(gone, id); return ok })
		}
		if next.Deleted {
			next.MemberIDs = nil
		}
		if next.DisplayName == oldName && next.ExternalID == oldExt && !next.Deleted && slices.Equal(next.MemberIDs, old) {
			out = next
			return false, nil // nothing changed: no write
		}
		if len(next.MemberIDs) > max(lim.MaxMembers, len(old)) {
			return false, &state.SCIMLimitError{What: "members of one group", Limit: lim.MaxMembers}
		}
		if !next.Deleted {
			if err := state.CheckSCIMName(next.DisplayName); err != nil {
				return false, fmt.Errorf("displayName: %w", err)
			}
		}
		next.Version++
		next.Modified = s.now().UTC()
		if err := s.putGroup(ctx, tx, next, false); err != nil {
			return false, err
		}
		added, removed := state.DiffSCIMIDs(old, next.MemberIDs)
		if len(removed) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM scim_members WHERE group_id = $1 AND user_id = ANY($2)`, id, removed); err != nil {
				return false, err
			}
		}
		if err := addMembers(ctx, tx, id, added); err != nil {
			return false, err
		}
		if next.Deleted {
			if err := release(ctx, tx, "groups"); err != nil {
				return false, err
			}
		}
		out = next
		return true, nil
	})
	if err != nil {
		return state.SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, err)
	}
	return out, nil
}

// leave removes a deleted user from a live group, inside the deleting transaction.
func (s *Store) leave(ctx context.Context, tx pgx.Tx, groupID, userID string) error {
	var g state.SCIMGroup
	if err := getOne(ctx, tx, `SELECT data FROM scim_groups WHERE id = $1 FOR UPDATE`, groupID, &g); err != nil {
		return fmt.Errorf("group %s: %w", groupID, err)
	}
	if i, found := slices.BinarySearch(g.MemberIDs, userID); found {
		g.MemberIDs = slices.Delete(g.MemberIDs, i, i+1)
	}
	g.Version++
	g.Modified = s.now().UTC()
	return s.putGroup(ctx, tx, g, false)
}

// PurgeDeletedSCIMGroups forgets deleted groups once the daemon has applied its removal policy to
// them: those deleted before the given time, only the given ids if any. It returns how many it forgot.
func (s *Store) PurgeDeletedSCIMGroups(ctx context.Context, before time.Time, ids ...string) (int, error) {
	// UnixNano is undefined outside about 1678..2262: clamp, which keeps the comparison.
	var ns int64
	switch {
	case before.Before(time.Unix(0, math.MinInt64)):
		return 0, nil
	case before.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	default:
		ns = before.UnixNano()
	}
	var only []string
	if len(ids) > 0 {
		only = usableIDs(ids)
		if len(only) == 0 {
			return 0, nil
		}
	}
	n := 0
	err := s.write(ctx, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM scim_groups WHERE deleted AND modified_ns < $1 AND ($2::text[] IS NULL OR id = ANY($2))`, ns, only)
		n = int(tag.RowsAffected())
		return err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("purge deleted SCIM groups: %w", err)
	}
	return n, nil
}
