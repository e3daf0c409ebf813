package state

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyUserDeletes counts user deletions: a group write prepared outside the write transaction
// checked its members against the users of one moment; if a user was deleted since, the members it
// adds are looked up again (and if one is gone, it is prepared again).
var keyUserDeletes = []byte("user_deletes")

// usersStill says whether the users ids named when the deletion count was gen all still exist:
// at once when no user was deleted since, else by looking each up.
func (s scimTx) usersStill(gen int, ids []string) bool {
	if s.count(keyUserDeletes) == gen {
		return true
	}
	return !slices.ContainsFunc(ids, func(id string) bool { return s.users.get(id) == nil })
}

// CreateSCIMGroup stores a new group under a new id. Member ids that name no user are dropped.
func (d *DB) CreateSCIMGroup(ctx context.Context, g SCIMGroup) (SCIMGroup, error) {
	if err := CheckSCIMName(g.DisplayName); err != nil {
		return SCIMGroup{}, fmt.Errorf("create SCIM group: displayName: %w", err)
	}
	lim := d.SCIMLimits()
	now := d.now().UTC()
	g.Deleted, g.Members = false, nil
	g.Version, g.Created, g.Modified = 1, now, now
	for range maxStale {
		var (
			gen int
			err error
		)
		if g.MemberIDs, gen, err = d.knownUsers(SortedSCIMIDs(g.MemberIDs)); err != nil {
			return SCIMGroup{}, fmt.Errorf("create SCIM group: %w", err)
		}
		if len(g.MemberIDs) > lim.MaxMembers {
			return SCIMGroup{}, fmt.Errorf("create SCIM group: %w", &SCIMLimitError{What: "members of one group", Limit: lim.MaxMembers})
		}
		if g.ID, err = NewSCIMID(); err != nil {
			return SCIMGroup{}, fmt.Errorf("create SCIM group: %w", err)
		}
		raw, err := encode(g)
		if err != nil {
			return SCIMGroup{}, fmt.Errorf("create SCIM group: %w", err)
		}
		var stale bool
		err = d.batch(func(tx *bolt.Tx) error {
			s, err := scimWrite(tx)
			if err != nil {
				return err
			}
			if stale = !s.usersStill(gen, g.MemberIDs); stale {
				return nil
			}
			if s.count(keyGroups) >= lim.MaxGroups {
				return &SCIMLimitError{What: "groups", Limit: lim.MaxGroups}
			}
			if s.idTaken(g.ID) {
				return fmt.Errorf("generated id %s is taken", g.ID)
			}
			if err := s.claim(s.groupNames, g.ID, "", g.DisplayName); err != nil {
				return fmt.Errorf("displayName %q: %w", g.DisplayName, err)
			}
			if err := moveExt(s.groupExt, g.ID, "", g.ExternalID); err != nil {
				return err
			}
			if err := s.setMembers(g.ID, nil, g.MemberIDs); err != nil {
				return err
			}
			s.addCount(keyGroups, 1)
			return s.groups.Put([]byte(g.ID), raw)
		})
		switch {
		case err != nil:
			return SCIMGroup{}, fmt.Errorf("create SCIM group: %w", err)
		case !stale:
			return g, nil
		}
	}
	return SCIMGroup{}, fmt.Errorf("create SCIM group: %w", ErrSCIMBusy)
}

// knownUsers keeps the ids (sorted) that name a user, and returns the user-deletion count they were
// checked at.
func (d *DB) knownUsers(ids []string) (known []string, gen int, err error) {
	err = d.db.View(func(tx *bolt.Tx) error {
		s := scimRead(tx)
		gen = s.count(keyUserDeletes)
		known = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return s.users.get(id) == nil })
		return nil
	})
	return known, gen, err
}

// SCIMGroup returns one group, deleted or not, or ErrSCIMNotFound. Members is not resolved
// (SCIMMembers does).
func (d *DB) SCIMGroup(ctx context.Context, id string) (SCIMGroup, error) {
	g, _, _, err := d.readGroup(id)
	if err != nil {
		return SCIMGroup{}, fmt.Errorf("read SCIM group %q: %w", id, err)
	}
	return g, nil
}

// readGroup returns a group, its stored encoding, and the user-deletion count of that moment.
func (d *DB) readGroup(id string) (g SCIMGroup, raw []byte, gen int, err error) {
	err = d.db.View(func(tx *bolt.Tx) error {
		s := scimRead(tx)
		gen = s.count(keyUserDeletes)
		if raw = clone(s.groups.get(id)); raw == nil {
			return d.decode(id, s.deleted.get(id), &g)
		}
		return d.decode(id, raw, &g)
	})
	return g, raw, gen, err
}

// SCIMMembers resolves member ids to what a member list shows; ids that name no user are skipped.
func (d *DB) SCIMMembers(ctx context.Context, ids []string) ([]SCIMMember, error) {
	var out []SCIMMember
	err := d.db.View(func(tx *bolt.Tx) error {
		out = scimRead(tx).resolve(d, ids)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read SCIM group members: %w", err)
	}
	return out, nil
}

// SCIMGroups returns every group in id order, deleted ones included (Deleted set, no members), the
// live ones with their members resolved, all read in one transaction. This is the daemon's view of
// the pushed teams.
func (d *DB) SCIMGroups(ctx context.Context) ([]SCIMGroup, error) {
	var out []SCIMGroup
	err := d.db.View(func(tx *bolt.Tx) error {
		s := scimRead(tx)
		for _, b := range []records{s.groups, s.deleted} {
			if b.Bucket == nil {
				continue
			}
			if err := b.ForEach(func(k, raw []byte) error {
				var g SCIMGroup
				if err := d.decode(string(k), raw, &g); err != nil {
					return err
				}
				if !g.Deleted {
					g.Members = s.resolve(d, g.MemberIDs)
				}
				out = append(out, g)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read SCIM groups: %w", err)
	}
	slices.SortFunc(out, func(a, b SCIMGroup) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ListSCIMGroups returns one page of live groups (members not resolved) and how many match in all.
func (d *DB) ListSCIMGroups(ctx context.Context, q SCIMList[SCIMGroup]) ([]SCIMGroup, int, error) {
	var (
		page  []SCIMGroup
		total int
	)
	err := d.db.View(func(tx *bolt.Tx) error {
		s := scimRead(tx)
		cands, known := s.candidates(s.groups, q.By, q.Value, keyGroups)
		var err error
		page, total, err = listPage(ctx, d, q, cands, known, func(g SCIMGroup) bool { return !g.Deleted && s.groupHas(g, q.By, q.Value) })
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list SCIM groups: %w", err)
	}
	return page, total, nil
}

// UpdateSCIMGroup applies fn to a live group and stores the result; an error from fn stores
// nothing. Setting Deleted deletes the group (see SCIMGroup.Deleted). As UpdateSCIMUser, fn runs
// outside any write transaction, and the write transaction only stores the prepared result after
// checking that neither the group nor the set of users changed since. Members is not resolved.
func (d *DB) UpdateSCIMGroup(ctx context.Context, id string, fn func(*SCIMGroup) error) (SCIMGroup, error) {
	defer d.locks.lock(id)()
	lim := d.SCIMLimits()
	for range maxStale {
		cur, before, gen, err := d.readGroup(id)
		if err == nil && (before == nil || cur.Deleted) {
			err = ErrSCIMNotFound
		}
		if err != nil {
			return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, err)
		}
		old, oldName, oldExt := slices.Clone(cur.MemberIDs), cur.DisplayName, cur.ExternalID
		version, created, modified := cur.Version, cur.Created, cur.Modified
		if err := fn(&cur); err != nil {
			return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, err)
		}
		next := cur
		next.ID, next.Version, next.Created, next.Modified, next.Members = id, version, created, modified, nil
		if next.MemberIDs, err = d.keepKnown(old, SortedSCIMIDs(next.MemberIDs)); err != nil {
			return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, err)
		}
		if next.Deleted {
			next.MemberIDs = nil
		}
		if next.DisplayName == oldName && next.ExternalID == oldExt && !next.Deleted && slices.Equal(next.MemberIDs, old) {
			return next, nil // nothing changed: no write
		}
		if len(next.MemberIDs) > max(lim.MaxMembers, len(old)) {
			return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, &SCIMLimitError{What: "members of one group", Limit: lim.MaxMembers})
		}
		if !next.Deleted {
			if err := CheckSCIMName(next.DisplayName); err != nil {
				return SCIMGroup{}, fmt.Errorf("update SCIM group %q: displayName: %w", id, err)
			}
		}
		next.Version++
		next.Modified = d.now().UTC()
		raw, err := encode(next)
		if err != nil {
			return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, err)
		}
		added, _ := DiffSCIMIDs(old, next.MemberIDs)
		var stale bool
		err = d.batch(func(tx *bolt.Tx) error {
			s, err := scimWrite(tx)
			if err != nil {
				return err
			}
			if stale = !s.groups.unchanged(id, before) || !s.usersStill(gen, added); stale {
				return nil
			}
			return s.storeGroup(next, raw, old, oldName, oldExt)
		})
		switch {
		case err != nil:
			return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, err)
		case !stale:
			return next, nil
		}
	}
	return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, ErrSCIMBusy)
}

// keepKnown drops from now the ids old lacks that name no user: only the added ones are looked up.
func (d *DB) keepKnown(old, now []string) ([]string, error) {
	added, _ := DiffSCIMIDs(old, now)
	if len(added) == 0 {
		return now, nil
	}
	known, _, err := d.knownUsers(added)
	if err != nil || len(known) == len(added) {
		return now, err
	}
	gone := map[string]bool{}
	for _, id := range added {
		gone[id] = true
	}
	for _, id := range known {
		delete(gone, id)
	}
	return slices.DeleteFunc(now, func(id string) bool { return gone[id] }), nil
}

// storeGroup writes a prepared update of a live group (raw is its encoding) with its index entries;
// old, oldName and oldExt are what it had.
func (s scimTx) storeGroup(g SCIMGroup, raw []byte, old []string, oldName, oldExt string) error {
	ext, name := g.ExternalID, g.DisplayName
	if g.Deleted {
		ext, name = "", ""
	}
	if err := moveExt(s.groupExt, g.ID, oldExt, ext); err != nil {
		return err
	}
	if err := s.setMembers(g.ID, old, g.MemberIDs); err != nil {
		return err
	}
	if !g.Deleted {
		if err := s.claim(s.groupNames, g.ID, oldName, name); err != nil {
			return fmt.Errorf("displayName %q: %w", name, err)
		}
		return s.groups.Put([]byte(g.ID), raw)
	}
	if err := s.release(s.groupNames, g.ID, oldName); err != nil {
		return err
	}
	if err := s.groups.Delete([]byte(g.ID)); err != nil {
		return err
	}
	s.addCount(keyGroups, -1)
	return s.deleted.Put([]byte(g.ID), raw)
}

// leave removes a deleted user from a live group, inside the deleting transaction.
func (s scimTx) leave(d *DB, groupID, userID string) error {
	var g SCIMGroup
	if err := d.decode(groupID, s.groups.get(groupID), &g); err != nil {
		return err
	}
	if i, found := slices.BinarySearch(g.MemberIDs, userID); found {
		g.MemberIDs = slices.Delete(g.MemberIDs, i, i+1)
	}
	g.Version++
	g.Modified = d.now().UTC()
	raw, err := encode(g)
	if err != nil {
		return err
	}
	if err := s.memberOf.Delete(pairKey(userID, groupID)); err != nil {
		return err
	}
	return s.groups.Put([]byte(groupID), raw)
}

// PurgeDeletedSCIMGroups forgets deleted groups once the daemon has applied its removal policy to
// them: those deleted before the given time (the start of a reconcile that read them), only the
// given ids if any. It returns how many it forgot.
func (d *DB) PurgeDeletedSCIMGroups(ctx context.Context, before time.Time, ids ...string) (int, error) {
	n := 0
	err := d.batch(func(tx *bolt.Tx) error {
		n = 0
		s := scimRead(tx)
		if s.deleted.Bucket == nil {
			return nil
		}
		var purge [][]byte
		if err := s.deleted.ForEach(func(k, raw []byte) error {
			var g SCIMGroup
			if err := d.decode(string(k), raw, &g); err != nil {
				return err
			}
			if g.Modified.Before(before) && (len(ids) == 0 || slices.Contains(ids, g.ID)) {
				purge = append(purge, k)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range purge {
			if err := s.deleted.Delete(k); err != nil {
				return err
			}
		}
		n = len(purge)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge deleted SCIM groups: %w", err)
	}
	return n, nil
}

func encode(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return raw, nil
}
