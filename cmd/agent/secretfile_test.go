package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFileReplacing writes through an exclusive temporary file and a rename: the result is 0600 whatever
// was there, no symlink is followed (the one at the path is refused, its target unchanged), and
// nothing is left behind on failure.
func TestWriteSecretFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, root, path string) // root holds target, and the directory of path
		err     string
	}{
		{"new file", func(*testing.T, string, string) {}, ""},
		{"world-readable file replaced", func(t *testing.T, _, path string) {
			if err := os.WriteFile(path, []byte("old value, longer than the new one\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"symlink to another file", func(t *testing.T, root, path string) {
			if err := os.Symlink(filepath.Join(root, "target"), path); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"dangling symlink", func(t *testing.T, root, path string) {
			if err := os.Symlink(filepath.Join(root, "nowhere"), path); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"directory missing", func(t *testing.T, _, path string) {
			if err := os.Remove(filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
		}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			target := filepath.Join(root, "target")
			if err := os.WriteFile(target, []byte("unrelated\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "out")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "stores")
			tt.prepare(t, root, path)
			err := writeFileReplacing(path, "s3://key:secret@bucket\n", 0o600)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "secret@") {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(target); string(b) != "unrelated\n" {
				t.Errorf("the symlink's target was written: %q", b)
			}
			if _, err := os.Stat(filepath.Join(root, "nowhere")); !os.IsNotExist(err) {
				t.Errorf("a dangling symlink's target was created: %v", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 1 {
				t.Errorf("left behind: %v", entries)
			}
			if tt.err != "" {
				return
			}
			st, err := os.Lstat(path)
			if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
				t.Fatalf("result %v, %v; want a regular file of mode 0600", st, err)
			}
			if b, _ := os.ReadFile(path); string(b) != "s3://key:secret@bucket\n" {
				t.Errorf("content %q", b)
			}
		})
	}
}
