package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a copy of the state file to w from one read transaction: the copy is the state as it
// was when Backup started, consistent while writers go on. It returns the bytes written. A copy is
// restored by putting it in the state file's place while no agent runs.
func (d *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := d.db.View(func(tx *bolt.Tx) (err error) {
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if cerr := ctx.Err(); err != nil && cerr != nil {
		err = cerr // bbolt wraps write errors with %s, losing what they were
	}
	if err != nil {
		return n, fmt.Errorf("back up state %s: %w", d.path, err)
	}
	return n, nil
}

// ctxWriter stops a long copy when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// WriteCopy saves a copy of a state file at path. write puts the bytes of one (DB.Backup's, or a
// download of them) into a new file beside path, mode 0600; that file is synced, opened as Open opens
// a state file (which checks it whole), and only then renamed to path, so path is never a partial
// copy. It returns the number of teams in the copy.
func WriteCopy(ctx context.Context, path string, write func(io.Writer) error) (teams int, err error) {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("write state copy %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("write state copy %s: %w", path, err)
		}
	}()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if teams, err = countTeams(ctx, tmp); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, err
	}
	return teams, syncDir(filepath.Dir(path))
}

func countTeams(ctx context.Context, path string) (int, error) {
	db, err := Open(path, Options{ReadOnly: true})
	if de := (*DamagedError)(nil); errors.As(err, &de) {
		return 0, fmt.Errorf("the copy is not a whole state file: %w", de.Err)
	}
	if err != nil {
		return 0, err
	}
	defer db.Close()
	recs, err := db.List(ctx)
	return len(recs), err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
