package state

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Import stores records and cursors as they are, timestamps included, into a state that has no team
// and no cursor yet, in one transaction: the receiving end of Copy.
func (d *DB) Import(ctx context.Context, recs []Record, cursors map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := teams(tx)
		cb, err := tx.CreateBucketIfNotExists(bucketCursors)
		if err != nil {
			return err
		}
		if n, c := b.Stats().KeyN, cb.Stats().KeyN; n+c > 0 {
			return fmt.Errorf("it already holds %d teams and %d cursors: import only into a new state", n, c)
		}
		for _, r := range recs {
			v, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode team %q: %w", r.Name, err)
			}
			if err := b.Put([]byte(r.Name), v); err != nil {
				return fmt.Errorf("store team %q: %w", r.Name, err)
			}
		}
		for name, v := range cursors {
			if err := cb.Put([]byte(name), []byte(v)); err != nil {
				return fmt.Errorf("store cursor %q: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import into state %s: %w", d.path, err)
	}
	return nil
}

// ImportSCIM stores users and groups as they are (ids, versions, times; deleted groups too) with
// their indexes, into a state that has no SCIM user or group yet, in one transaction: the receiving
// end of CopySCIM. A name taken twice or a member that names no user is refused.
func (d *DB) ImportSCIM(ctx context.Context, users []SCIMUser, groups []SCIMGroup) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		if n := s.users.Stats().KeyN + s.groups.Stats().KeyN + s.deleted.Stats().KeyN; n > 0 {
			return fmt.Errorf("it already holds %d SCIM users and groups: import only into a new state", n)
		}
		for _, u := range users {
			raw, err := encode(u)
			if err != nil {
				return err
			}
			if err := s.claim(s.userNames, u.ID, "", u.UserName); err != nil {
				return fmt.Errorf("user %s: userName %q: %w", u.ID, u.UserName, err)
			}
			if err := s.putUser(u, nil, raw); err != nil {
				return err
			}
		}
		s.addCount(keyUsers, len(users))
		live := 0
		for _, g := range groups {
			g.Members = nil
			raw, err := encode(g)
			if err != nil {
				return err
			}
			if g.Deleted {
				if err := s.deleted.Put([]byte(g.ID), raw); err != nil {
					return err
				}
				continue
			}
			for _, id := range g.MemberIDs {
				if s.users.get(id) == nil {
					return fmt.Errorf("group %s: member %s names no user", g.ID, id)
				}
			}
			if err := s.claim(s.groupNames, g.ID, "", g.DisplayName); err != nil {
				return fmt.Errorf("group %s: displayName %q: %w", g.ID, g.DisplayName, err)
			}
			if err := moveExt(s.groupExt, g.ID, "", g.ExternalID); err != nil {
				return err
			}
			if err := s.setMembers(g.ID, nil, g.MemberIDs); err != nil {
				return err
			}
			if err := s.groups.Put([]byte(g.ID), raw); err != nil {
				return err
			}
			live++
		}
		s.addCount(keyGroups, live)
		return nil
	})
	if err != nil {
		return fmt.Errorf("import SCIM users and groups into state %s: %w", d.path, err)
	}
	return nil
}
