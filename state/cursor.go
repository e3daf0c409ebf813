package state

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketCursors holds where an incremental reader left off at a source: Graph's delta link,
// Okta's System Log position. Losing one costs a full read, never data, so a cursor is a hint.
var bucketCursors = []byte("cursors")

// Cursor returns the cursor stored under name, or "" if there is none.
func (d *DB) Cursor(ctx context.Context, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var v string
	err := d.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketCursors); b != nil {
			v = string(b.Get([]byte(name)))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read cursor %q: %w", name, err)
	}
	return v, nil
}

// SetCursor stores value under name; an empty value removes the cursor (the next read is full).
func (d *DB) SetCursor(ctx context.Context, name, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := d.db.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCursors)
		if err != nil {
			return err
		}
		if value == "" {
			return b.Delete([]byte(name))
		}
		return b.Put([]byte(name), []byte(value))
	})
	if err != nil {
		return fmt.Errorf("store cursor %q: %w", name, err)
	}
	return nil
}

// Cursors returns every stored cursor by name.
func (d *DB) Cursors(ctx context.Context) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	err := d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	return out, nil
}
