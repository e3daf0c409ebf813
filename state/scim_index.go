package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// The SCIM buckets (schema version 2). Index buckets are written in the same transaction as the
// records they index; migrateSCIM rebuilds them all from the records.
var (
	bucketSCIMUsers         = []byte("scim_users")          // id -> SCIMUser
	bucketSCIMGroups        = []byte("scim_groups")         // id -> live SCIMGroup
	bucketSCIMDeletedGroups = []byte("scim_groups_deleted") // id -> deleted SCIMGroup, until purged
	bucketSCIMUserNames     = []byte("scim_user_names")     // []byte(FoldSCIMName(userName)) -> user id
	bucketSCIMGroupNames    = []byte("scim_group_names")    // []byte(FoldSCIMName(displayName)) -> live group id
	bucketSCIMUserExt       = []byte("scim_user_ext")       // externalId 0 id -> ""
	bucketSCIMGroupExt      = []byte("scim_group_ext")      // externalId 0 id -> "" (live groups)
	bucketSCIMSummaries     = []byte("scim_user_summaries") // user id -> scimSummary
	bucketSCIMMemberOf      = []byte("scim_member_of")      // user id 0 live group id -> ""
	bucketSCIMCounts        = []byte("scim_counts")         // keyUsers, keyGroups -> uint64
)

var (
	keyUsers  = []byte("users")
	keyGroups = []byte("groups") // live ones
)

// scimBuckets lists every SCIM bucket, with where scimTx keeps it.
func (s *scimTx) buckets() []struct {
	name []byte
	dst  **bolt.Bucket
} {
	return []struct {
		name []byte
		dst  **bolt.Bucket
	}{
		{bucketSCIMUsers, &s.users.Bucket}, {bucketSCIMGroups, &s.groups.Bucket}, {bucketSCIMDeletedGroups, &s.deleted.Bucket},
		{bucketSCIMUserNames, &s.userNames}, {bucketSCIMGroupNames, &s.groupNames}, {bucketSCIMUserExt, &s.userExt},
		{bucketSCIMGroupExt, &s.groupExt}, {bucketSCIMSummaries, &s.summaries}, {bucketSCIMMemberOf, &s.memberOf},
		{bucketSCIMCounts, &s.counts},
	}
}

// scimTx holds the SCIM buckets of one transaction; in a read transaction any may be nil.
type scimTx struct {
	users, groups, deleted                                                records
	userNames, groupNames, userExt, groupExt, summaries, memberOf, counts *bolt.Bucket
}

// records is a bucket of JSON records by id; its zero value (no bucket yet) is empty.
type records struct{ *bolt.Bucket }

func (r records) get(id string) []byte {
	if r.Bucket == nil || id == "" {
		return nil
	}
	return r.Get([]byte(id))
}

// unchanged says whether the record is still the encoding an update was prepared from.
func (r records) unchanged(id string, before []byte) bool {
	return before != nil && bytes.Equal(r.get(id), before)
}

func scimRead(tx *bolt.Tx) scimTx {
	var s scimTx
	for _, b := range s.buckets() {
		*b.dst = tx.Bucket(b.name)
	}
	return s
}

func scimWrite(tx *bolt.Tx) (scimTx, error) {
	var s scimTx
	for _, b := range s.buckets() {
		bk, err := tx.CreateBucketIfNotExists(b.name)
		if err != nil {
			return scimTx{}, fmt.Errorf("create bucket %s: %w", b.name, err)
		}
		*b.dst = bk
	}
	return s, nil
}

func (s scimTx) count(key []byte) int {
	if s.counts == nil {
		return 0
	}
	if v := s.counts.Get(key); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (s scimTx) addCount(key []byte, delta int) {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(max(s.count(key)+delta, 0)))
	s.counts.Put(key, v[:]) // only fails on a read-only transaction or an empty key
}

func (s scimTx) idTaken(id string) bool {
	return s.users.get(id) != nil || s.groups.get(id) != nil || s.deleted.get(id) != nil
}

// claim moves id's entry in a uniqueness index from old to name, failing if another id holds name.
func (s scimTx) claim(index *bolt.Bucket, id, old, name string) error {
	if name == "" {
		return ErrSCIMInvalid
	}
	key := []byte(FoldSCIMName(name))
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
	key := []byte(FoldSCIMName(name))
	if string(index.Get(key)) != id {
		return nil
	}
	return index.Delete(key)
}

// pairKey is a key of a two-part index: a 0 byte separates the parts, so a prefix scan of a + 0
// finds every b (a part that itself holds a 0 gives false candidates, which readers re-check).
func pairKey(a, b string) []byte { return []byte(a + "\x00" + b) }

// moveExt moves id's entry in an externalId index from old to ext.
func moveExt(index *bolt.Bucket, id, old, ext string) error {
	if old == ext {
		return nil
	}
	if old != "" {
		if err := index.Delete(pairKey(old, id)); err != nil {
			return err
		}
	}
	if ext == "" {
		return nil
	}
	return index.Put(pairKey(ext, id), nil)
}

// prefixed yields the second parts of the keys of b under a + 0.
func prefixed(b *bolt.Bucket, a string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if b == nil {
			return
		}
		p := pairKey(a, "")
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			if !yield(string(k[len(p):])) {
				return
			}
		}
	}
}

// scimSummary is what a group's member list shows of a user: kept apart from the user, so that
// resolving members never decodes users' attributes.
type scimSummary struct {
	UserName    string `json:"u"`
	DisplayName string `json:"d,omitempty"`
	Email       string `json:"e,omitempty"`
	Active      bool   `json:"a,omitempty"`
}

// putUser stores a user (raw is its encoding) with its summary and externalId entry; prev is the
// user as it was (nil for a new one). The userName index is the caller's.
func (s scimTx) putUser(u SCIMUser, prev *SCIMUser, raw []byte) error {
	old := ""
	if prev != nil {
		old = prev.ExternalID
	}
	if err := moveExt(s.userExt, u.ID, old, u.ExternalID); err != nil {
		return err
	}
	sum, err := json.Marshal(scimSummary{UserName: u.UserName, DisplayName: displayName(u.Attributes), Email: u.Email, Active: u.Active})
	if err != nil {
		return fmt.Errorf("encode %s: %w", u.ID, err)
	}
	if err := s.summaries.Put([]byte(u.ID), sum); err != nil {
		return err
	}
	return s.users.Put([]byte(u.ID), raw)
}

// dropUser deletes a user with its summary and externalId entry.
func (s scimTx) dropUser(u SCIMUser) error {
	if err := moveExt(s.userExt, u.ID, u.ExternalID, ""); err != nil {
		return err
	}
	if err := s.summaries.Delete([]byte(u.ID)); err != nil {
		return err
	}
	return s.users.Delete([]byte(u.ID))
}

// groupsOf returns the live groups a user is a member of.
func (s scimTx) groupsOf(userID string) []string {
	var out []string
	for gid := range prefixed(s.memberOf, userID) {
		out = append(out, gid)
	}
	return out
}

// setMembers records in the member-of index that a live group went from members old to members
// now (both sorted).
func (s scimTx) setMembers(groupID string, old, now []string) error {
	added, removed := DiffSCIMIDs(old, now)
	for _, id := range removed {
		if err := s.memberOf.Delete(pairKey(id, groupID)); err != nil {
			return err
		}
	}
	for _, id := range added {
		if err := s.memberOf.Put(pairKey(id, groupID), nil); err != nil {
			return err
		}
	}
	return nil
}

// DiffSCIMIDs returns what now has that old lacks, and the reverse, in one pass over both.
func DiffSCIMIDs(old, now []string) (added, removed []string) {
	i, j := 0, 0
	for i < len(old) || j < len(now) {
		switch {
		case j == len(now) || (i < len(old) && old[i] < now[j]):
			removed = append(removed, old[i])
			i++
		case i == len(old) || now[j] < old[i]:
			added = append(added, now[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return added, removed
}

// resolve reads the summaries of member ids; ids that name no user are skipped. A state file not
// yet migrated (read-only) has no summaries: the users themselves are read.
func (s scimTx) resolve(d *DB, ids []string) []SCIMMember {
	out := make([]SCIMMember, 0, len(ids))
	for _, id := range ids {
		if s.summaries == nil {
			var u SCIMUser
			if d.decode(id, s.users.get(id), &u) == nil {
				out = append(out, u.Member())
			}
			continue
		}
		var m scimSummary
		if raw := s.summaries.Get([]byte(id)); raw != nil && json.Unmarshal(raw, &m) == nil {
			out = append(out, SCIMMember{ID: id, UserName: m.UserName, DisplayName: m.DisplayName, Email: m.Email, Active: m.Active})
		}
	}
	return out
}

// candidates yields the records an index lookup may match, by id and encoding, and how many there
// are in all when that is known without reading them (-1 otherwise).
func (s scimTx) candidates(b records, by SCIMIndex, value string, countKey []byte) (iter.Seq2[string, []byte], int) {
	byID := func(ids iter.Seq[string]) iter.Seq2[string, []byte] {
		return func(yield func(string, []byte) bool) {
			for id := range ids {
				if raw := b.get(id); raw != nil && !yield(id, raw) {
					return
				}
			}
		}
	}
	one := func(id string) iter.Seq[string] { return func(yield func(string) bool) { yield(id) } }
	switch by {
	case SCIMByID:
		return byID(one(string(value))), -1
	case SCIMByUserName, SCIMByDisplayName:
		index := s.userNames
		if by == SCIMByDisplayName {
			index = s.groupNames
		}
		if index == nil {
			return byID(func(func(string) bool) {}), 0
		}
		return byID(one(string(index.Get([]byte(FoldSCIMName(LookupSCIMName(value))))))), -1
	case SCIMByExternalID:
		index := s.userExt
		if b.Bucket == s.groups.Bucket {
			index = s.groupExt
		}
		return byID(prefixed(index, string(value))), -1
	}
	return func(yield func(string, []byte) bool) {
		if b.Bucket == nil {
			return
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !yield(string(k), v) {
				return
			}
		}
	}, s.count(countKey)
}

// LookupSCIMName is a name to look up as stored: normalised, or as it is when it cannot be (a name
// the schema-2 migration kept as it was).
func LookupSCIMName(value string) string {
	if name, err := NormalizeSCIMName(value); err == nil {
		return name
	}
	return value
}

// userHas re-checks a candidate of an index lookup: an index key may stand for more than one value.
func (s scimTx) userHas(u SCIMUser, by SCIMIndex, value string) bool {
	switch by {
	case SCIMByUserName:
		return strings.EqualFold(u.UserName, LookupSCIMName(value))
	case SCIMByExternalID:
		return u.ExternalID == value
	}
	return true
}

func (s scimTx) groupHas(g SCIMGroup, by SCIMIndex, value string) bool {
	switch by {
	case SCIMByDisplayName:
		return strings.EqualFold(g.DisplayName, LookupSCIMName(value))
	case SCIMByExternalID:
		return g.ExternalID == value
	}
	return true
}

// listPage walks the candidates and decodes only what it must: with neither Keep nor an index to
// re-check and a known total, just the page; otherwise each candidate in turn, keeping the page.
// It stops when ctx ends (the client went away).
func listPage[T any](ctx context.Context, d *DB, q SCIMList[T], cands iter.Seq2[string, []byte], known int, has func(T) bool) ([]T, int, error) {
	start, count := max(q.Start, 0), max(q.Count, 0)
	var page []T
	decodeAll := q.Keep != nil || known < 0
	total := 0
	for id, raw := range cands {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		inPage := total >= start && total-start < count
		if !decodeAll && !inPage {
			total++
			continue
		}
		var v T
		if err := d.decode(id, raw, &v); err != nil {
			return nil, 0, err
		}
		if !has(v) || (q.Keep != nil && !q.Keep(v)) {
			continue
		}
		if inPage {
			page = append(page, v)
		}
		total++
	}
	if !decodeAll {
		total = known
	}
	return page, total, nil
}

// decode decodes a record, counting the work for the tests' bounds; nil raw is ErrSCIMNotFound.
func (d *DB) decode(id string, raw []byte, v any) error {
	if raw == nil {
		return ErrSCIMNotFound
	}
	d.hooks.decoded.Add(1)
	d.hooks.decodedBytes.Add(int64(len(raw)))
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", id, err)
	}
	return nil
}

// EncodeSCIMUser encodes a user to store, refusing one over the size limit.
func EncodeSCIMUser(u SCIMUser, lim SCIMLimits) ([]byte, error) {
	raw, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", u.ID, err)
	}
	if len(raw) > lim.MaxUserBytes {
		return nil, &SCIMLimitError{What: "bytes of one user", Limit: lim.MaxUserBytes}
	}
	return raw, nil
}

// encodesTo says whether v encodes to stored, i.e. an update changed nothing.
func encodesTo(v any, stored []byte) (bool, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	return bytes.Equal(raw, stored), nil
}

// scimHooks count the work SCIM calls do, which the tests bound.
type scimHooks struct {
	writing      atomic.Int32 // write transactions running a SCIM closure now
	decoded      atomic.Int64 // records decoded
	decodedBytes atomic.Int64
}

// maxStale is how often an update prepared outside the write transaction is tried again when the
// record changed meanwhile. Updates of one record in this process are serialised (idLocks), so
// only a user deletion removing a member can make a group update stale.
const maxStale = 8

// idLocks serialise the updates of one record (by id) without one lock for all; a lock lives
// while someone holds or waits for it.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	sync.Mutex
	users int
}

func (l *idLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*idLock{}
	}
	k := l.m[id]
	if k == nil {
		k = &idLock{}
		l.m[id] = k
	}
	k.users++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.users--; k.users == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// SortedSCIMIDs sorts and dedupes ids, dropping empty ones.
func SortedSCIMIDs(ids []string) []string {
	out := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" })
	slices.Sort(out)
	return slices.Compact(out)
}
