package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// writeFileReplacing replaces path with a file holding data, with mode perm. The data goes to a new
// temporary file in the same directory (created exclusively, 0600 until perm is set) that is then
// renamed over path: a reader never sees a partial file, nothing is written through a file someone
// else made, and no symlink is followed. A symlink at path is refused rather than replaced, so a
// link someone set up (or planted) is never silently swapped for a file; so is a directory.
func writeFileReplacing(path, data string, perm os.FileMode) error {
	if fi, err := os.Lstat(path); err == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("write %s: it is a symbolic link; refusing to write through it: remove the link or choose another file", path)
		case fi.IsDir():
			return fmt.Errorf("write %s: it is a directory", path)
		}
	}
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.WriteString(data)
	if err == nil && perm != 0o600 {
		err = f.Chmod(perm)
	}
	err = errors.Join(err, f.Sync())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// rename replaces what is at path, a symlink planted since the check included, never its target.
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
