package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SCIM resources pushed by an identity provider into the agent's own SCIM endpoint. Each live group
// is a desired W&B team. The buckets are created by the first SCIM write, so state files that never
// saw a SCIM push are unchanged. Every lookup an endpoint makes is an index read kept in the same
// transaction as the record (scim_index.go), and lists decode only the page they return, so a
// SQL backend can serve the same API with indexes and LIMIT/OFFSET.

var (
	// ErrSCIMNotFound: no user or live group has that id.
	ErrSCIMNotFound = errors.New("no such SCIM resource")
	// ErrSCIMConflict: the userName or group displayName is taken (compared case-insensitively).
	ErrSCIMConflict = errors.New("SCIM attribute value is already in use")
	// ErrSCIMInvalid: a user without userName or a group without displayName, or a name with a
	// control or bidirectional-formatting character.
	ErrSCIMInvalid = errors.New("SCIM resource has a missing or invalid name")
	// ErrSCIMBusy: the record kept changing under an update; nothing was written, try again.
	ErrSCIMBusy = errors.New("SCIM resource changed concurrently too often")
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
	// Deleted marks a group the IdP deleted. The record (name and id, no members) stays until the
	// daemon has applied its removal policy (PurgeDeletedSCIMGroups); SCIM clients no longer see it
	// and its displayName is free.
	Deleted bool `json:"deleted,omitempty"`

	Version  uint64    `json:"version"`
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`

	// Members resolves MemberIDs; only SCIMGroups fills it (SCIMMembers resolves on demand).
	Members []SCIMMember `json:"-"`
}

// SCIMMember is one member of a group, resolved from its user's summary.
type SCIMMember struct {
	ID          string
	UserName    string
	DisplayName string // the user's displayName attribute, "" when it has none
	Email       string
	Active      bool
}

// SCIMIndex names an attribute the store looks resources up by. userName and displayName compare
// as the uniqueness index does (normalised, case-folded); id and externalId exactly.
type SCIMIndex string

const (
	SCIMByID          SCIMIndex = "id"
	SCIMByUserName    SCIMIndex = "userName"    // users
	SCIMByDisplayName SCIMIndex = "displayName" // groups
	SCIMByExternalID  SCIMIndex = "externalId"
)

// SCIMList asks for one page of users or live groups, in id order.
type SCIMList[T any] struct {
	// By and Value narrow the candidates through an index; By "" lists every resource.
	By    SCIMIndex
	Value string
	// Keep, when set, tests each candidate, decoded one at a time; the total then counts the
	// candidates it keeps. Without it the total comes from the index or the stored count, and only
	// the page is decoded.
	Keep  func(T) bool
	Start int // 0-based offset into the matches
	Count int // most resources returned
}

// CreateSCIMUser stores a new user under a new id.
func (d *DB) CreateSCIMUser(ctx context.Context, u SCIMUser) (SCIMUser, error) {
	if err := CheckSCIMName(u.UserName); err != nil {
		return SCIMUser{}, fmt.Errorf("create SCIM user: userName: %w", err)
	}
	now := d.now().UTC()
	u.Version, u.Created, u.Modified = 1, now, now
	lim := d.SCIMLimits()
	id, err := NewSCIMID()
	if err != nil {
		return SCIMUser{}, fmt.Errorf("create SCIM user: %w", err)
	}
	u.ID = id
	raw, err := EncodeSCIMUser(u, lim)
	if err != nil {
		return SCIMUser{}, fmt.Errorf("create SCIM user: %w", err)
	}
	err = d.batch(func(tx *bolt.Tx) error {
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		if s.count(keyUsers) >= lim.MaxUsers {
			return &SCIMLimitError{What: "users", Limit: lim.MaxUsers}
		}
		if s.idTaken(u.ID) {
			return fmt.Errorf("generated id %s is taken", u.ID)
		}
		if err := s.claim(s.userNames, u.ID, "", u.UserName); err != nil {
			return fmt.Errorf("userName %q: %w", u.UserName, err)
		}
		s.addCount(keyUsers, 1)
		return s.putUser(u, nil, raw)
	})
	if err != nil {
		return SCIMUser{}, fmt.Errorf("create SCIM user: %w", err)
	}
	return u, nil
}

// SCIMUser returns one user, or ErrSCIMNotFound.
func (d *DB) SCIMUser(ctx context.Context, id string) (SCIMUser, error) {
	u, _, err := d.readUser(id)
	if err != nil {
		return SCIMUser{}, fmt.Errorf("read SCIM user %q: %w", id, err)
	}
	return u, nil
}

// readUser returns a user and its stored encoding, which an update compares to see whether the
// user changed since (the encoding carries the version).
func (d *DB) readUser(id string) (u SCIMUser, raw []byte, err error) {
	err = d.db.View(func(tx *bolt.Tx) error {
		raw = clone(scimRead(tx).users.get(id))
		return d.decode(id, raw, &u)
	})
	return u, raw, err
}

// SCIMUsers returns every user, in id order. It decodes every user: lists use ListSCIMUsers.
func (d *DB) SCIMUsers(ctx context.Context) ([]SCIMUser, error) {
	out, _, err := d.ListSCIMUsers(ctx, SCIMList[SCIMUser]{Keep: func(SCIMUser) bool { return true }, Count: int(^uint(0) >> 1)})
	return out, err
}

// ListSCIMUsers returns one page of users and how many match in all.
func (d *DB) ListSCIMUsers(ctx context.Context, q SCIMList[SCIMUser]) ([]SCIMUser, int, error) {
	var (
		page  []SCIMUser
		total int
	)
	err := d.db.View(func(tx *bolt.Tx) error {
		s := scimRead(tx)
		cands, known := s.candidates(s.users, q.By, q.Value, keyUsers)
		var err error
		page, total, err = listPage(ctx, d, q, cands, known, func(u SCIMUser) bool { return s.userHas(u, q.By, q.Value) })
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list SCIM users: %w", err)
	}
	return page, total, nil
}

// UpdateSCIMUser applies fn to the user and stores the result; an error from fn stores nothing. fn
// runs outside any write transaction on a copy read just before (so parsing and merging never block
// other writers), and the result is stored only if the user has not changed since, else fn runs
// again on the new user. It returns the live groups the user belongs to when the write changed
// something (their resolved members changed with it).
func (d *DB) UpdateSCIMUser(ctx context.Context, id string, fn func(*SCIMUser) error) (SCIMUser, []string, error) {
	defer d.locks.lock(id)()
	lim := d.SCIMLimits()
	for range maxStale {
		cur, before, err := d.readUser(id)
		if err != nil {
			return SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: %w", id, err)
		}
		old, ext := cur.UserName, cur.ExternalID
		version, created, modified := cur.Version, cur.Created, cur.Modified
		if err := fn(&cur); err != nil {
			return SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: %w", id, err)
		}
		next := cur
		next.ID, next.Version, next.Created, next.Modified = id, version, created, modified
		if same, err := encodesTo(next, before); err != nil || same {
			return next, nil, err // nothing changed: no write
		}
		if err := CheckSCIMName(next.UserName); err != nil {
			return SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: userName: %w", id, err)
		}
		next.Version++
		next.Modified = d.now().UTC()
		raw, err := EncodeSCIMUser(next, lim)
		if err != nil {
			return SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: %w", id, err)
		}
		var (
			stale  bool
			groups []string
		)
		err = d.batch(func(tx *bolt.Tx) error {
			stale, groups = false, nil
			s, err := scimWrite(tx)
			if err != nil {
				return err
			}
			if stale = !s.users.unchanged(id, before); stale {
				return nil
			}
			if err := s.claim(s.userNames, id, old, next.UserName); err != nil {
				return fmt.Errorf("userName %q: %w", next.UserName, err)
			}
			if err := s.putUser(next, &SCIMUser{ID: id, ExternalID: ext}, raw); err != nil {
				return err
			}
			groups = s.groupsOf(id)
			return nil
		})
		switch {
		case err != nil:
			return SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: %w", id, err)
		case !stale:
			return next, groups, nil
		}
	}
	return SCIMUser{}, nil, fmt.Errorf("update SCIM user %q: %w", id, ErrSCIMBusy)
}

// DeleteSCIMUser removes the user and its memberships in one transaction, once check (say, an
// If-Match; nil accepts any) accepts the current user. It returns the live groups the user left.
func (d *DB) DeleteSCIMUser(ctx context.Context, id string, check func(SCIMUser) error) ([]string, error) {
	defer d.locks.lock(id)()
	var left []string
	err := d.batch(func(tx *bolt.Tx) error {
		left = nil
		s, err := scimWrite(tx)
		if err != nil {
			return err
		}
		var u SCIMUser
		if err := d.decode(id, s.users.get(id), &u); err != nil {
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
		if err := s.dropUser(u); err != nil {
			return err
		}
		s.addCount(keyUsers, -1)
		s.addCount(keyUserDeletes, 1)
		left = s.groupsOf(id)
		for _, gid := range left {
			if err := s.leave(d, gid, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete SCIM user %q: %w", id, err)
	}
	return left, nil
}

// batch runs a write through bbolt's Batch, which commits concurrent writes together (one fsync
// for many): fn may run more than once and must set its results afresh each time. It returns once
// the transaction is on disk.
func (d *DB) batch(fn func(*bolt.Tx) error) error {
	return d.db.Batch(func(tx *bolt.Tx) error {
		d.hooks.writing.Add(1)
		defer d.hooks.writing.Add(-1)
		return fn(tx)
	})
}

// NewSCIMID is a new random resource id (128 bits, hex).
func NewSCIMID() (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(raw[:]), nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
