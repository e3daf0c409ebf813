// Package filewatch tells a program when the files it read have changed, so that it can load them again.
//
// It watches the directories holding the files, never the files themselves: editors that write a new
// file and rename it over the old one, and Kubernetes, which mounts a ConfigMap as symlinks into a
// "..data" directory that it swaps atomically, both replace the file, and a watch on the old inode would
// see nothing more. Events are debounced; then each file is read again and compared with what the program
// last saw, so a touch, an unrelated file or a save without change does not cause a reload.
package filewatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the files must stay quiet before they are compared: long enough for an
// editor's write-and-rename or a ConfigMap swap to finish, short enough to feel immediate.
const DefaultDebounce = 500 * time.Millisecond

// Files maps each file's path to a digest of the content the program loaded.
type Files map[string]string

// Options configures a Watcher.
type Options struct {
	Debounce time.Duration // quiet time after the last event before files are compared; DefaultDebounce if zero
	Logger   *slog.Logger
}

// Watcher watches a set of files; Changes receives a value when one of them changed.
type Watcher struct {
	fsw      *fsnotify.Watcher
	debounce time.Duration
	log      *slog.Logger
	changes  chan struct{}
	stop     context.CancelFunc
	done     chan struct{}

	mu    sync.Mutex
	files Files           // the content the program last saw (or was told about)
	dirs  map[string]bool // directories watched
	names map[string]bool // base names whose events matter
}

// New starts a watcher with no files; Set gives it some.
func New(opts Options) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("start watching files: %w", err)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{fsw: fsw, debounce: opts.Debounce, log: opts.Logger, changes: make(chan struct{}, 1),
		stop: cancel, done: make(chan struct{}), files: Files{}, dirs: map[string]bool{}, names: map[string]bool{}}
	go w.run(ctx)
	return w, nil
}

// Changes receives a value when a watched file's content differs from what Set was told. Changes that
// come while the receiver is busy are folded into one.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// Set replaces the watched files and the content they are compared with: call it with what a load read.
// A file that already differs (changed between the read and this call) is reported at once.
func (w *Watcher) Set(files Files) {
	w.mu.Lock()
	w.files = maps.Clone(files)
	w.rewatch()
	w.mu.Unlock()
	if w.compare() {
		w.signal()
	}
}

func (w *Watcher) signal() {
	select {
	case w.changes <- struct{}{}:
	default:
	}
}

// Close stops watching.
func (w *Watcher) Close() error {
	w.stop()
	<-w.done
	return w.fsw.Close()
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if w.matters(ev.Name) {
				timer.Reset(w.debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			// An overflow drops events: compare anyway.
			w.log.Warn("watching the configuration files", "error", err)
			timer.Reset(w.debounce)
		case <-timer.C:
			if w.compare() {
				w.signal()
			}
		}
	}
}

// matters says whether an event's file may change a watched file: the file itself, or one of the
// "..data" entries of a Kubernetes volume (see k8s.io/kubernetes pkg/volume/util AtomicWriter: the
// files are symlinks through "..data" to a "..<timestamp>" directory, and "..data_tmp" is renamed over
// "..data"). Anything else in the directory (the state database next to the config file, an editor's
// swap file) is ignored, so that it cannot keep postponing the comparison.
func (w *Watcher) matters(path string) bool {
	base := filepath.Base(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.names[base] || strings.HasPrefix(base, "..")
}

// compare reads every file again; it reports whether any differs from what was last seen, which it then
// remembers, so that an invalid file is reported once, not after every later event.
func (w *Watcher) compare() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed := false
	for path, seen := range w.files {
		if now := Digest(os.ReadFile(path)); now != seen {
			w.log.Info("configuration file changed", "file", path)
			w.files[path] = now
			changed = true
		}
	}
	w.rewatch() // a swapped symlink may now point into another directory
	return changed
}

// rewatch watches the directory of each file and, when the file is a symlink, the directory of its
// target (an edit there changes the file too). w.mu is held.
func (w *Watcher) rewatch() {
	dirs, names := map[string]bool{}, map[string]bool{}
	for path := range w.files {
		abs, err := filepath.Abs(path)
		if err != nil {
			continue
		}
		dirs[filepath.Dir(abs)], names[filepath.Base(abs)] = true, true
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			dirs[filepath.Dir(real)], names[filepath.Base(real)] = true, true
		}
	}
	for dir := range w.dirs {
		if !dirs[dir] {
			// A directory that was removed (an old ConfigMap generation) is no longer watched already.
			if err := w.fsw.Remove(dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				w.log.Debug("stop watching a directory", "dir", dir, "error", err)
			}
		}
	}
	for dir := range dirs {
		if w.dirs[dir] {
			continue
		}
		if err := w.fsw.Add(dir); err != nil {
			w.log.Warn("cannot watch a configuration directory: changes there need SIGHUP", "dir", dir, "error", err)
			delete(dirs, dir)
		}
	}
	w.dirs, w.names = dirs, names
}

// Digest identifies the content of a file as read by os.ReadFile; a file that cannot be read has the
// digest of its error kind, so that its coming back counts as a change.
func Digest(data []byte, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case err != nil:
		return "unreadable"
	}
	sum := sha256.Sum256(data)
	return string(sum[:])
}

// Recorder wraps a function that reads files and remembers what each file it read held: pass its
// ReadFile to a loader, then its Files to Set.
type Recorder struct {
	read  func(string) ([]byte, error)
	mu    sync.Mutex
	files Files
}

// NewRecorder records the reads of read.
func NewRecorder(read func(string) ([]byte, error)) *Recorder {
	return &Recorder{read: read, files: Files{}}
}

// ReadFile reads path with the wrapped function and records the outcome.
func (r *Recorder) ReadFile(path string) ([]byte, error) {
	data, err := r.read(path)
	r.mu.Lock()
	r.files[path] = Digest(data, err)
	r.mu.Unlock()
	return data, err
}

// Files are the files read so far.
func (r *Recorder) Files() Files {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.files)
}
