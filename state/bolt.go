package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta  = []byte("meta")
	bucketTeams = []byte("teams")
	keySchema   = []byte("schema_version")
)

// DB is the bbolt-backed state. It is safe for concurrent use; concurrent updates from many
// workers are coalesced into few disk transactions by bbolt's Batch.
type DB struct {
	db   *bolt.DB
	path string
	now  func() time.Time
}

// Options tune Open.
type Options struct {
	ReadOnly    bool
	LockTimeout time.Duration // how long to wait for another process's lock; default 1s
}

// ErrLocked means another process has the state file open.
var ErrLocked = errors.New("state file is in use by another byob-agent process")

// Open opens (creating if needed) the state file at path and checks its schema version.
func Open(path string, o Options) (*DB, error) {
	if o.LockTimeout == 0 {
		o.LockTimeout = time.Second
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open state %s: %w", path, err)
		}
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout, ReadOnly: o.ReadOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open state %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open state %s: %w (if the file is damaged, restore a backup)", path, err)
	}
	d := &DB{db: bdb, path: path, now: time.Now}
	if err := d.init(o.ReadOnly); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return d, nil
}

func (d *DB) init(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		v, err := strconv.Atoi(string(meta.Get(keySchema)))
		if err != nil {
			return fmt.Errorf("schema version %q is unreadable", meta.Get(keySchema))
		}
		if v > SchemaVersion {
			return fmt.Errorf("state schema version %d is newer than this byob-agent understands (%d): upgrade byob-agent", v, SchemaVersion)
		}
		return nil
	}
	if readOnly {
		return d.db.View(check)
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if meta.Get(keySchema) == nil {
			if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		_, err = tx.CreateBucketIfNotExists(bucketTeams)
		return err
	})
}

// Path is the state file's location.
func (d *DB) Path() string { return d.path }

// Close releases the file and its lock.
func (d *DB) Close() error { return d.db.Close() }

// Get returns the record of one team, or ErrNotFound.
func (d *DB) Get(ctx context.Context, name string) (Record, error) {
	var r Record
	err := d.db.View(func(tx *bolt.Tx) error {
		var v []byte
		if b := teams(tx); b != nil {
			v = b.Get([]byte(name))
		}
		if v == nil {
			return fmt.Errorf("team %q: %w", name, ErrNotFound)
		}
		return decode(name, v, &r)
	})
	return r, err
}

// List returns every record, sorted by team name, read in one transaction.
func (d *DB) List(ctx context.Context) ([]Record, error) {
	var out []Record
	err := d.db.View(func(tx *bolt.Tx) error {
		b := teams(tx)
		if b == nil {
			return nil
		}
		out = make([]Record, 0, b.Stats().KeyN)
		return b.ForEach(func(k, v []byte) error {
			var r Record
			if err := decode(string(k), v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Update applies fn to the team's record (a zero Record with the name set if there is none) and
// stores the result, all in one transaction. Returning an error from fn stores nothing.
// Concurrent calls are batched into shared transactions.
func (d *DB) Update(ctx context.Context, name string, fn func(*Record) error) (Record, error) {
	var out Record
	err := d.db.Batch(func(tx *bolt.Tx) error {
		b := teams(tx)
		r := Record{Name: name}
		if v := b.Get([]byte(name)); v != nil {
			if err := decode(name, v, &r); err != nil {
				return err
			}
		}
		before, _ := json.Marshal(r)
		if err := fn(&r); err != nil {
			return err
		}
		if after, _ := json.Marshal(r); bytes.Equal(before, after) {
			out = r
			return nil // nothing changed: no write
		}
		now := d.now().UTC()
		if r.CreatedAt.IsZero() {
			r.CreatedAt = now
		}
		r.UpdatedAt = now
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode team %q: %w", name, err)
		}
		out = r
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return Record{}, fmt.Errorf("update state of team %q: %w", name, err)
	}
	return out, nil
}

// Export writes every record as indented JSON, with the schema version.
func (d *DB) Export(ctx context.Context, w io.Writer) error {
	recs, err := d.List(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		SchemaVersion int      `json:"schemaVersion"`
		Teams         []Record `json:"teams"`
	}{SchemaVersion, recs})
}

func teams(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketTeams) }

func decode(name string, v []byte, r *Record) error {
	if err := json.Unmarshal(v, r); err != nil {
		return fmt.Errorf("decode state of team %q: %w", name, err)
	}
	return nil
}
