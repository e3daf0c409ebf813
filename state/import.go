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
