package state

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// migrateSCIM brings the SCIM records of a schema-1 file to schema 2, in the opening transaction:
// userNames and displayNames are normalised (NormalizeSCIMName), deleted groups move to their own
// bucket without members, and every index is rebuilt from the records. Nothing is lost: a name
// that cannot be normalised, or whose normalised form another record already has, is kept as it
// was (still unique, as it was before) and reported in the log, for the IdP admin to rename.
func (d *DB) migrateSCIM(tx *bolt.Tx) error {
	var (
		users  []SCIMUser
		groups []SCIMGroup
	)
	for _, b := range []struct {
		name []byte
		fn   func(raw []byte) error
	}{
		{bucketSCIMUsers, func(raw []byte) error {
			var u SCIMUser
			users = append(users, u)
			return json.Unmarshal(raw, &users[len(users)-1])
		}},
		{bucketSCIMGroups, func(raw []byte) error {
			var g SCIMGroup
			groups = append(groups, g)
			return json.Unmarshal(raw, &groups[len(groups)-1])
		}},
	} {
		if bk := tx.Bucket(b.name); bk != nil {
			if err := bk.ForEach(func(k, raw []byte) error {
				if err := b.fn(raw); err != nil {
					return fmt.Errorf("decode %s: %w", k, err)
				}
				return nil
			}); err != nil {
				return err
			}
		}
	}
	if users == nil && groups == nil {
		return nil
	}
	var s scimTx
	for _, b := range s.buckets() {
		if err := tx.DeleteBucket(b.name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("drop bucket %s: %w", b.name, err)
		}
	}
	s, err := scimWrite(tx)
	if err != nil {
		return err
	}

	userNames := claimAll(d, s.userNames, "userName", users, func(u SCIMUser) (string, string) { return u.ID, u.UserName })
	for _, u := range users {
		u.UserName = userNames[u.ID]
		if _, ok := u.Attributes["userName"].(string); ok {
			u.Attributes["userName"] = u.UserName
		}
		raw, err := encode(u)
		if err != nil {
			return err
		}
		if err := s.putUser(u, nil, raw); err != nil {
			return err
		}
	}
	s.addCount(keyUsers, len(users))

	var live []SCIMGroup
	for _, g := range groups {
		if !g.Deleted {
			live = append(live, g)
			continue
		}
		g.MemberIDs = nil
		raw, err := encode(g)
		if err != nil {
			return err
		}
		if err := s.deleted.Put([]byte(g.ID), raw); err != nil {
			return err
		}
	}
	groupNames := claimAll(d, s.groupNames, "displayName", live, func(g SCIMGroup) (string, string) { return g.ID, g.DisplayName })
	for _, g := range live {
		g.DisplayName = groupNames[g.ID]
		var known []string
		for _, id := range SortedSCIMIDs(g.MemberIDs) {
			if s.users.get(id) != nil {
				known = append(known, id)
			}
		}
		g.MemberIDs = known
		raw, err := encode(g)
		if err != nil {
			return err
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
	}
	s.addCount(keyGroups, len(live))
	d.log.Info("state migrated: SCIM names normalised and indexes rebuilt", "users", len(users), "groups", len(groups), "schemaVersion", SchemaVersion)
	return nil
}

// claimAll fills a uniqueness index from records and returns the name each record keeps, by id.
// Names already normalised claim first (they were unique before, so they still are); the others
// take their normalised form if it is free, else keep their name as it was.
func claimAll[T any](d *DB, index *bolt.Bucket, attr string, recs []T, name func(T) (id, name string)) map[string]string {
	out := make(map[string]string, len(recs))
	claim := func(id, n string) bool {
		if index.Get([]byte(FoldSCIMName(n))) != nil {
			return false
		}
		out[id] = n
		return index.Put([]byte(FoldSCIMName(n)), []byte(id)) == nil
	}
	var rest []T
	for _, r := range recs {
		id, n := name(r)
		if norm, err := NormalizeSCIMName(n); err != nil || norm != n || !claim(id, n) {
			rest = append(rest, r)
		}
	}
	for _, r := range rest {
		id, n := name(r)
		norm, err := NormalizeSCIMName(n)
		switch {
		case err == nil && claim(id, norm):
		case claim(id, n):
			reason := "its normalised form is another record's"
			if err != nil {
				reason = err.Error()
			}
			d.log.Warn("SCIM "+attr+" kept as it was: rename it in the identity provider", "id", id, attr, n, "reason", reason)
		default:
			out[id] = n
			d.log.Warn("SCIM "+attr+" collides with another record's: both kept, this one cannot be looked up by name; rename it in the identity provider", "id", id, attr, n)
		}
	}
	return out
}
