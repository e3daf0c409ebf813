// Package kubevolume writes a directory the way the kubelet projects a ConfigMap or Secret volume, for
// tests of programs that watch such files.
//
// The layout and the order of operations follow kubernetes/kubernetes pkg/volume/util/atomic_writer.go
// (AtomicWriter.Write): the payload goes into a new timestamped directory "..<time>.<random>"; each
// key is a symlink "<key> -> ..data/<key>" made if missing; a symlink "..data_tmp" to the new directory
// is renamed over "..data", which swaps every file at once; then the previous directory is removed.
package kubevolume

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Write projects files (key: content) into dir, replacing what a previous Write put there.
func Write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	dataLink := filepath.Join(dir, "..data")
	old, err := os.Readlink(dataLink)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("read ..data: %v", err)
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	for key, content := range files {
		if err := os.WriteFile(filepath.Join(ts, key), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, key)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", key), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dataLink); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}
