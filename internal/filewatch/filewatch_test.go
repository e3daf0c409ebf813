package filewatch

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/kubevolume"
)

// wait returns once the watcher reports a change; the deadline only bounds a failing test.
func wait(t *testing.T, w *Watcher, what string) {
	t.Helper()
	select {
	case <-w.Changes():
	case <-time.After(20 * time.Second):
		t.Fatalf("no change reported after %s", what)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// load reads the files as a program would and tells the watcher what it saw.
func load(t *testing.T, w *Watcher, paths ...string) map[string]string {
	t.Helper()
	r := NewRecorder(os.ReadFile)
	got := map[string]string{}
	for _, p := range paths {
		b, err := r.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got[p] = string(b)
	}
	w.Set(r.Files())
	return got
}

// replace writes path atomically (a new file renamed over it), so the watcher never reads a half-written
// file: the tests that assert what a comparison finds depend on that.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := New(Options{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestWatcherSeesReplacedFiles(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) []string // the files the program reads
		change func(t *testing.T, dir string, files []string)
		want   string // the new content of the first file
	}{
		{
			name: "edit in place",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "config.yaml")
				write(t, p, "v1")
				return []string{p}
			},
			change: func(t *testing.T, _ string, files []string) { write(t, files[0], "v2") },
			want:   "v2",
		},
		{
			name: "new file renamed over",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "config.yaml")
				write(t, p, "v1")
				return []string{p}
			},
			change: func(t *testing.T, dir string, files []string) {
				tmp := filepath.Join(dir, ".config.yaml.swp")
				write(t, tmp, "v2")
				if err := os.Rename(tmp, files[0]); err != nil {
					t.Fatal(err)
				}
			},
			want: "v2",
		},
		{
			name: "removed then written again",
			setup: func(t *testing.T, dir string) []string {
				p := filepath.Join(dir, "teams.yaml")
				write(t, p, "v1")
				return []string{p}
			},
			change: func(t *testing.T, _ string, files []string) {
				if err := os.Remove(files[0]); err != nil {
					t.Fatal(err)
				}
				write(t, files[0], "v2")
			},
			want: "v2",
		},
		{
			name: "ConfigMap ..data symlink swapped",
			setup: func(t *testing.T, dir string) []string {
				kubevolume.Write(t, dir, map[string]string{"config.yaml": "v1", "teams.yaml": "t1"})
				return []string{filepath.Join(dir, "teams.yaml"), filepath.Join(dir, "config.yaml")}
			},
			change: func(t *testing.T, dir string, _ []string) {
				kubevolume.Write(t, dir, map[string]string{"config.yaml": "v1", "teams.yaml": "t2"})
			},
			want: "t2",
		},
		{
			name: "second file in another directory",
			setup: func(t *testing.T, dir string) []string {
				cfg := filepath.Join(dir, "config.yaml")
				write(t, cfg, "v1")
				sub := filepath.Join(dir, "teams")
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				teams := filepath.Join(sub, "teams.yaml")
				write(t, teams, "t1")
				return []string{teams, cfg}
			},
			change: func(t *testing.T, _ string, files []string) { write(t, files[0], "t2") },
			want:   "t2",
		},
		{
			name: "symlink to a file elsewhere, target edited",
			setup: func(t *testing.T, dir string) []string {
				real := filepath.Join(t.TempDir(), "real.yaml")
				write(t, real, "v1")
				link := filepath.Join(dir, "config.yaml")
				if err := os.Symlink(real, link); err != nil {
					t.Fatal(err)
				}
				return []string{link}
			},
			change: func(t *testing.T, _ string, files []string) {
				real, err := filepath.EvalSymlinks(files[0])
				if err != nil {
					t.Fatal(err)
				}
				write(t, real, "v2")
			},
			want: "v2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := tt.setup(t, dir)
			w := newWatcher(t)
			load(t, w, files...)
			tt.change(t, dir, files)
			wait(t, w, tt.name)
			if got := load(t, w, files...)[files[0]]; got != tt.want {
				t.Errorf("after the change %s holds %q, want %q", files[0], got, tt.want)
			}
			// Twice: the watch survives the replacement (a watch on the old file would not).
			if tt.name == "ConfigMap ..data symlink swapped" {
				kubevolume.Write(t, dir, map[string]string{"config.yaml": "v1", "teams.yaml": "t3"})
			} else {
				tt.change(t, dir, files)
				write(t, files[0], "v3")
			}
			wait(t, w, tt.name+" a second time")
		})
	}
}

func TestWatcherComparesContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	write(t, p, "v1")
	w := newWatcher(t)
	load(t, w, p)

	// Rewritten with the same bytes, or another file in the directory: nothing to reload.
	replace(t, p, "v1")
	write(t, filepath.Join(dir, "state.db"), "x")
	if w.compare() {
		t.Error("a rewrite with the same content counts as a change")
	}

	// An invalid file is reported once; the program keeps its configuration and is not asked again
	// until the file changes once more.
	replace(t, p, "invalid: [")
	wait(t, w, "an invalid edit")
	if w.compare() {
		t.Error("the same invalid content is reported a second time")
	}
	write(t, p, "v2")
	wait(t, w, "the fix of the invalid edit")
}

func TestSetReportsAChangeMadeBeforeIt(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	write(t, p, "v1")
	r := NewRecorder(os.ReadFile)
	if _, err := r.ReadFile(p); err != nil {
		t.Fatal(err)
	}
	write(t, p, "v2") // between the load and the watch: no event will come for it
	w := newWatcher(t)
	w.Set(r.Files())
	wait(t, w, "Set with content that already changed")
}

func TestSetMovesTheWatch(t *testing.T) {
	dir := t.TempDir()
	oldTeams, newTeams := filepath.Join(dir, "old", "teams.yaml"), filepath.Join(dir, "new", "teams.yaml")
	for _, p := range []string{oldTeams, newTeams} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, p, "t1")
	}
	w := newWatcher(t)
	load(t, w, oldTeams)
	load(t, w, newTeams) // the configuration now names another teams file
	w.mu.Lock()
	dirs := w.dirs
	w.mu.Unlock()
	if len(dirs) != 1 || !dirs[filepath.Dir(newTeams)] {
		t.Errorf("watching %v, want only %s", dirs, filepath.Dir(newTeams))
	}
	write(t, oldTeams, "t2")
	if w.compare() {
		t.Error("a change to the teams file no longer named counts")
	}
	write(t, newTeams, "t2")
	wait(t, w, "an edit of the new teams file")
}

func TestDigest(t *testing.T) {
	if Digest([]byte("a"), nil) == Digest([]byte("b"), nil) {
		t.Error("different content, same digest")
	}
	if Digest(os.ReadFile(filepath.Join(t.TempDir(), "none"))) != "missing" {
		t.Error("a missing file is not told apart")
	}
}
