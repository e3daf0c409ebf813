package state

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	bolt "go.etcd.io/bbolt"
)

// SCIM resources pushed by an identity provider into the agent's own SCIM endpoint. Each live group
// is a desired W&B team. The buckets are created by the first SCIM write, so state files that never
// saw a SCIM push are unchanged.
var (
	bucketSCIMUsers      = []byte("scim_users")
	bucketSCIMGroups     = []byte("scim_groups")
	bucketSCIMUserNames  = []byte("scim_user_names")  // foldKey(userName) -> user id
	bucketSCIMGroupNames = []byte("scim_group_names") // foldKey(displayName) -> id of the live group
)

var (
	// ErrSCIMNotFound: no user or live group has that id.
	ErrSCIMNotFound = errors.New("no such SCIM resource")
	// ErrSCIMConflict: the userName or group displayName is taken (compared case-insensitively).
	ErrSCIMConflict = errors.New("SCIM attribute value is already in use")
	// ErrSCIMInvalid: a user without userName or a group without displayName.
	ErrSCIMInvalid = errors.New("SCIM resource lacks a required attribute")
)

// SCIMUser is a user the IdP pushed.
type SCIMUser struct {
	ID string `json:"id"`
	// Attributes is the user as the IdP last wrote it: SCIM attribute name -> value, extension
	// attributes under their schema URN. It never holds a password.
	Attributes map[string]any `json:"attributes,omitempty"`

	// The writer derives these from Attributes: the uniqueness index and group members use them.
	UserName   string `json:"userName"`
	ExternalID string `json:"externalId,omitempty"`
	Email      string `json:"email,omitempty"`
	Active     bool   `json:"active"`

	Version  uint64    `json:"version"` // bumped by every write that changes something
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`
}

// SCIMGroup is a group the IdP pushed.
type SCIMGroup struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	ExternalID  string `json:"externalId,omitempty"`
	// MemberIDs are SCIMUser ids, sorted, each naming an existing user: ids that name no user are
	// dropped when the group is written, and a deleted user leaves every group.
	MemberIDs []string `json:"memberIds,omitempty"`
	// Deleted marks a group the IdP deleted. The record stays so the daemon can apply its removal
	// policy (the W&B team is kept); SCIM clients no longer see it and its displayName is free.
	Deleted bool `json:"deleted,omitempty"`

	Version  uint64    `json:"version"`
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`

	// Members resolves MemberIDs on every read; it is not stored.
	Members []SCIMMember `json:"-"`
}

// SCIMMember is one member of a group, resolved from its user.
type SCIMMember struct {
	ID          string
	UserName    string
	DisplayName string // the user's displayName attribute, "" when it has none
	Email       string
	Active      bool
}

// CreateSCIMUser stores a new user under a new id.
func (d *DB) CreateSCIMUser(ctx context.Context, u SCIMUser) (SCIMUser, error) {
	err := d.db.Update(func(tx *bolt.Tx) error {
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		if u.ID, err = newSCIMID(s.users); err != nil {
			return err
		}
		if err := s.claim(s.userNames, u.ID, "", u.UserName); err != nil {
			return fmt.Errorf("userName %q: %w", u.UserName, err)
		}
		u.Version, u.Created, u.Modified = 1, d.now().UTC(), d.now().UTC()
		return putJSON(s.users, u.ID, u)
	})
	if err != nil {
		return SCIMUser{}, fmt.Errorf("create SCIM user: %w", err)
	}
	return u, nil
}

// SCIMUser returns one user, or ErrSCIMNotFound.
func (d *DB) SCIMUser(ctx context.Context, id string) (SCIMUser, error) {
	var u SCIMUser
	err := d.db.View(func(tx *bolt.Tx) error { return getJSON(scimRead(tx).users, id, &u) })
	if err != nil {
		return SCIMUser{}, fmt.Errorf("read SCIM user %q: %w", id, err)
	}
	return u, nil
}

// SCIMUsers returns every user, in id order.
func (d *DB) SCIMUsers(ctx context.Context) ([]SCIMUser, error) {
	var out []SCIMUser
	err := d.db.View(func(tx *bolt.Tx) error {
		return forEachJSON(scimRead(tx).users, func(u SCIMUser) { out = append(out, u) })
	})
	if err != nil {
		return nil, fmt.Errorf("read SCIM users: %w", err)
	}
	return out, nil
}

// UpdateSCIMUser applies fn to the user and stores the result, all in one transaction; an error
// from fn stores nothing. It also returns the live groups the user belongs to when the write
// changed something (their resolved members changed with it).
func (d *DB) UpdateSCIMUser(ctx context.Context, id string, fn func(*SCIMUser) error) (SCIMUser, []string, error) {
	var (
		out    SCIMUser
		groups []string
	)
	err := d.db.Update(func(tx *bolt.Tx) error {
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		if err := getJSON(s.users, id, &out); err != nil {
			return err
		}
		old, version, created := out.UserName, out.Version, out.Created
		before, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if err := fn(&out); err != nil {
			return err
		}
		out.ID, out.Version, out.Created = id, version, created
		if after, err := json.Marshal(out); err != nil || bytes.Equal(before, after) {
			return err // nothing changed: no write
		}
		if err := s.claim(s.userNames, id, old, out.UserName); err != nil {
			return fmt.Errorf("userName %q: %w", out.UserName, err)
		}
		out.Version++
		out.Modified = d.now().UTC()
		if err := putJSON(s.users, id, out); err != nil {
			return err
		}
		return forEachJSON(s.groups, func(g SCIMGroup) {
			if !g.Deleted && slices.Contains(g.MemberIDs, id) {
				groups = append(groups, g.ID)
			}
		})
	})
	if err != nil {
		return SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: %w", id, err)
	}
	return out, groups, nil
}

// DeleteSCIMUser removes the user and its memberships in one transaction, once check (say, an
// If-Match; nil accepts any) accepts the current user. It returns the live groups the user left.
func (d *DB) DeleteSCIMUser(ctx context.Context, id string, check func(SCIMUser) error) ([]string, error) {
	var left []string
	err := d.db.Update(func(tx *bolt.Tx) error {
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		var u SCIMUser
		if err := getJSON(s.users, id, &u); err != nil {
			return err
		}
		if check != nil {
			if err := check(u); err != nil {
				return err
			}
		}
		if err := s.release(s.userNames, id, u.UserName); err != nil {
			return err
		}
		if err := s.users.Delete([]byte(id)); err != nil {
			return err
		}
		var changed []SCIMGroup
		if err := forEachJSON(s.groups, func(g SCIMGroup) {
			if i := slices.Index(g.MemberIDs, id); i >= 0 {
				g.MemberIDs = slices.Delete(g.MemberIDs, i, i+1)
				changed = append(changed, g)
			}
		}); err != nil {
			return err
		}
		for _, g := range changed {
			g.Version++
			g.Modified = d.now().UTC()
			if err := putJSON(s.groups, g.ID, g); err != nil {
				return err
			}
			if !g.Deleted {
				left = append(left, g.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete SCIM user %q: %w", id, err)
	}
	return left, nil
}

// CreateSCIMGroup stores a new group under a new id.
func (d *DB) CreateSCIMGroup(ctx context.Context, g SCIMGroup) (SCIMGroup, error) {
	err := d.db.Update(func(tx *bolt.Tx) error {
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		if g.ID, err = newSCIMID(s.groups); err != nil {
			return err
		}
		if err := s.claim(s.groupNames, g.ID, "", g.DisplayName); err != nil {
			return fmt.Errorf("displayName %q: %w", g.DisplayName, err)
		}
		g.Deleted = false
		g.MemberIDs = s.knownUsers(g.MemberIDs)
		g.Version, g.Created, g.Modified = 1, d.now().UTC(), d.now().UTC()
		if err := putJSON(s.groups, g.ID, g); err != nil {
			return err
		}
		g.Members = s.resolve(g.MemberIDs)
		return nil
	})
	if err != nil {
		return SCIMGroup{}, fmt.Errorf("create SCIM group: %w", err)
	}
	return g, nil
}

// SCIMGroup returns one group, deleted or not, or ErrSCIMNotFound.
func (d *DB) SCIMGroup(ctx context.Context, id string) (SCIMGroup, error) {
	var g SCIMGroup
	err := d.db.View(func(tx *bolt.Tx) error {
		s := scimRead(tx)
		if err := getJSON(s.groups, id, &g); err != nil {
			return err
		}
		g.Members = s.resolve(g.MemberIDs)
		return nil
	})
	if err != nil {
		return SCIMGroup{}, fmt.Errorf("read SCIM group %q: %w", id, err)
	}
	return g, nil
}

// SCIMGroups returns every group in id order, deleted ones included (Deleted set), with their
// members resolved, all read in one transaction. This is the daemon's view of the pushed teams.
func (d *DB) SCIMGroups(ctx context.Context) ([]SCIMGroup, error) {
	var out []SCIMGroup
	err := d.db.View(func(tx *bolt.Tx) error {
		s := scimRead(tx)
		return forEachJSON(s.groups, func(g SCIMGroup) {
			g.Members = s.resolve(g.MemberIDs)
			out = append(out, g)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read SCIM groups: %w", err)
	}
	return out, nil
}

// UpdateSCIMGroup applies fn to a live group and stores the result, all in one transaction; an
// error from fn stores nothing. Setting Deleted deletes the group (see SCIMGroup.Deleted).
func (d *DB) UpdateSCIMGroup(ctx context.Context, id string, fn func(*SCIMGroup) error) (SCIMGroup, error) {
	var g SCIMGroup
	err := d.db.Update(func(tx *bolt.Tx) error {
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		if err := getJSON(s.groups, id, &g); err != nil {
			return err
		}
		if g.Deleted {
			return ErrSCIMNotFound
		}
		old, version, created := g.DisplayName, g.Version, g.Created
		before, err := json.Marshal(g)
		if err != nil {
			return err
		}
		if err := fn(&g); err != nil {
			return err
		}
		g.ID, g.Version, g.Created = id, version, created
		g.MemberIDs = s.knownUsers(g.MemberIDs)
		defer func() { g.Members = s.resolve(g.MemberIDs) }()
		if after, err := json.Marshal(g); err != nil || bytes.Equal(before, after) {
			return err // nothing changed: no write
		}
		if g.Deleted {
			err = s.release(s.groupNames, id, old)
		} else {
			err = s.claim(s.groupNames, id, old, g.DisplayName)
		}
		if err != nil {
			return fmt.Errorf("displayName %q: %w", g.DisplayName, err)
		}
		g.Version++
		g.Modified = d.now().UTC()
		return putJSON(s.groups, id, g)
	})
	if err != nil {
		return SCIMGroup{}, fmt.Errorf("update SCIM group %q: %w", id, err)
	}
	return g, nil
}

// scimTx holds the SCIM buckets of one transaction; in a read transaction any may be nil.
type scimTx struct{ users, groups, userNames, groupNames *bolt.Bucket }

func scimRead(tx *bolt.Tx) scimTx {
	return scimTx{tx.Bucket(bucketSCIMUsers), tx.Bucket(bucketSCIMGroups), tx.Bucket(bucketSCIMUserNames), tx.Bucket(bucketSCIMGroupNames)}
}

func scimWrite(tx *bolt.Tx) (scimTx, error) {
	var s scimTx
	for _, b := range []struct {
		name []byte
		dst  **bolt.Bucket
	}{{bucketSCIMUsers, &s.users}, {bucketSCIMGroups, &s.groups}, {bucketSCIMUserNames, &s.userNames}, {bucketSCIMGroupNames, &s.groupNames}} {
		bk, err := tx.CreateBucketIfNotExists(b.name)
		if err != nil {
			return scimTx{}, fmt.Errorf("create bucket %s: %w", b.name, err)
		}
		*b.dst = bk
	}
	return s, nil
}

// claim moves id's entry in a uniqueness index from old to name, failing if another id holds name.
func (s scimTx) claim(index *bolt.Bucket, id, old, name string) error {
	if name == "" {
		return ErrSCIMInvalid
	}
	key := foldKey(name)
	if owner := index.Get(key); owner != nil && string(owner) != id {
		return ErrSCIMConflict
	}
	if err := s.release(index, id, old); err != nil {
		return err
	}
	return index.Put(key, []byte(id))
}

// release drops name from a uniqueness index if id holds it.
func (s scimTx) release(index *bolt.Bucket, id, name string) error {
	if name == "" {
		return nil
	}
	key := foldKey(name)
	if string(index.Get(key)) != id {
		return nil
	}
	return index.Delete(key)
}

// knownUsers sorts and dedupes ids and drops those that name no user, so one stale id never
// rejects a whole member list.
func (s scimTx) knownUsers(ids []string) []string {
	var out []string
	for _, id := range ids {
		if id != "" && s.users.Get([]byte(id)) != nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (s scimTx) resolve(ids []string) []SCIMMember {
	var out []SCIMMember
	for _, id := range ids {
		var u SCIMUser
		if getJSON(s.users, id, &u) != nil {
			continue
		}
		out = append(out, SCIMMember{ID: u.ID, UserName: u.UserName, DisplayName: displayName(u.Attributes), Email: u.Email, Active: u.Active})
	}
	return out
}

// displayName is a user's displayName attribute (SCIM attribute names are case-insensitive, RFC 7643
// section 2.1), or "".
func displayName(attrs map[string]any) string {
	for k, v := range attrs {
		if s, ok := v.(string); ok && strings.EqualFold(k, "displayName") {
			return s
		}
	}
	return ""
}

// foldKey maps every rune to the smallest rune of its case-folding orbit, so two names get the
// same key exactly when strings.EqualFold says they are equal: the uniqueness check and the SCIM
// filter `userName eq` (which uses EqualFold) then agree on every name.
func foldKey(s string) []byte {
	return []byte(strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s))
}

func newSCIMID(b *bolt.Bucket) (string, error) {
	for {
		var raw [16]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", fmt.Errorf("generate id: %w", err)
		}
		if id := hex.EncodeToString(raw[:]); b.Get([]byte(id)) == nil {
			return id, nil
		}
	}
}

func getJSON(b *bolt.Bucket, id string, v any) error {
	var raw []byte
	if b != nil && id != "" {
		raw = b.Get([]byte(id))
	}
	if raw == nil {
		return ErrSCIMNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", id, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, id string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", id, err)
	}
	return b.Put([]byte(id), raw)
}

func forEachJSON[T any](b *bolt.Bucket, fn func(T)) error {
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s: %w", k, err)
		}
		fn(v)
		return nil
	})
}
