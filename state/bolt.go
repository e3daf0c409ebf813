package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"sync/atomic"
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
	log  *slog.Logger

	limits atomic.Pointer[SCIMLimits]
	locks  idLocks
	hooks  scimHooks
}

// Options tune Open.
type Options struct {
	ReadOnly    bool
	LockTimeout time.Duration // how long to wait for another process's lock; default 1s
	// Logger reports what a schema migration found (SCIM names that collide once normalised);
	// default slog.Default().
	Logger *slog.Logger
}

// ErrLocked means another process has the state file open.
var ErrLocked = errors.New("state file is in use by another byob-agent process")

// DamagedError is a state file that is not a whole bbolt file of this agent's layout.
type DamagedError struct {
	Path string
	Err  error // what is wrong
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("open state %s: state file is damaged: %v; restore the last copy made by `byob-agent state backup` to this path, "+
		"or rebuild from a `byob-agent state export` (JSON); keep the damaged file for inspection", e.Path, e.Err)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// Open opens the state file at path, creating it if it does not exist, checks that it is whole
// (see check) and that its schema version is one this build understands.
func Open(path string, o Options) (*DB, error) {
	if o.LockTimeout == 0 {
		o.LockTimeout = time.Second
	}
	switch fi, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist) && !o.ReadOnly: // a new state: nothing to check
	case err != nil:
		return nil, fmt.Errorf("open state %s: %w", path, err)
	case fi.Size() == 0:
		// bbolt takes an empty file for a new one. A state that became empty was lost, and starting
		// afresh would forget which bucket every team has.
		return nil, &DamagedError{path, errors.New("the file is empty (if byob-agent never finished starting with it, delete it to begin an empty state)")}
	default:
		if err := checkFile(path, o.LockTimeout); err != nil {
			return nil, err
		}
	}
	d, err := open(path, o)
	if err != nil {
		return nil, err
	}
	if d.log = o.Logger; d.log == nil {
		d.log = slog.Default()
	}
	if err := d.init(o.ReadOnly); err != nil {
		d.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return d, nil
}

// checkFile opens the file read-only and checks it whole. It comes before any writable open: bbolt
// opened writable reads the free-page list at once and can panic on a damaged one, leaving the file
// mapped and locked. A damaged file is thus never written.
func checkFile(path string, lockTimeout time.Duration) error {
	d, err := open(path, Options{ReadOnly: true, LockTimeout: lockTimeout})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := guard(d.check); err != nil {
		return &DamagedError{path, err}
	}
	return nil
}

// open opens the file with bbolt.
func open(path string, o Options) (*DB, error) {
	var bdb *bolt.DB
	err := guard(func() (err error) {
		bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout, ReadOnly: o.ReadOnly})
		return err
	})
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open state %s: %w", path, ErrLocked)
	case errors.As(err, &pathErr): // the file could not be opened at all
		return nil, fmt.Errorf("open state %s: %w", path, err)
	case err != nil:
		return nil, &DamagedError{path, err}
	}
	return &DB{db: bdb, path: path, now: time.Now, log: slog.Default()}, nil
}

// guard runs fn, turning a panic into an error. bbolt reads the file through a memory map: a page
// number from a damaged file can point past the end of the file, and SetPanicOnFault (which exists
// for memory-mapped files) turns that fault into a panic instead of a crash.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading it failed: %v", r)
		}
	}()
	return fn()
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
		if v := meta.Get(keySchema); v != nil && string(v) != strconv.Itoa(SchemaVersion) {
			if err := d.migrateSCIM(tx); err != nil {
				return fmt.Errorf("migrate the SCIM records to schema version %d: %w", SchemaVersion, err)
			}
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
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

// CountByStatus counts the records by Record.Status, reading only the fields the status comes from:
// the byob_teams metric asks at every scrape, and decoding every whole record costs more.
func (d *DB) CountByStatus(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	err := d.db.View(func(tx *bolt.Tx) error {
		b := teams(tx)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var s struct {
				Phase     Phase  `json:"phase"`
				LastError string `json:"lastError"`
				Conflict  string `json:"conflict"`
				Orphaned  bool   `json:"orphaned"`
			}
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decode state of team %q: %w", k, err)
			}
			r := Record{Phase: s.Phase, LastError: s.LastError, Conflict: s.Conflict, Orphaned: s.Orphaned}
			counts[r.Status()]++
			return nil
		})
	})
	return counts, err
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

// MarkRegistered records that the operator registered the bucket of team name with W&B. Registration
// is per bucket, so every team on that bucket is marked, in one transaction; it returns them. A team
// whose bucket is not ready yet is an error.
func (d *DB) MarkRegistered(ctx context.Context, name string) ([]Record, error) {
	var marked []Record
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := teams(tx)
		v := b.Get([]byte(name))
		if v == nil {
			return fmt.Errorf("team %q: %w", name, ErrNotFound)
		}
		var target Record
		if err := decode(name, v, &target); err != nil {
			return err
		}
		if target.Phase == PhaseDesired || target.Storage.Bucket == "" {
			return fmt.Errorf("team %q: its bucket is not ready yet; run `byob-agent sync` first", name)
		}
		// bbolt forbids changing a bucket while ForEach walks it: collect, then write.
		if err := b.ForEach(func(k, v []byte) error {
			var r Record
			if err := decode(string(k), v, &r); err != nil {
				return err
			}
			if r.Storage.BucketID() == target.Storage.BucketID() {
				marked = append(marked, r)
			}
			return nil
		}); err != nil {
			return err
		}
		now := d.now().UTC()
		for i := range marked {
			marked[i].Registered, marked[i].UpdatedAt = true, now
			out, err := json.Marshal(marked[i])
			if err != nil {
				return fmt.Errorf("encode team %q: %w", marked[i].Name, err)
			}
			if err := b.Put([]byte(marked[i].Name), out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return marked, nil
}
