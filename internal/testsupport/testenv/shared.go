package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// Shared is one backend per test binary, started by the first test that needs it (pure tests never
// start it) and closed by Close in TestMain. A failed start fails every test that asks; it never skips.
type Shared[T interface{ Close() error }] struct {
	name    string
	timeout time.Duration
	start   func(context.Context) (T, error)

	once    sync.Once
	v       T
	err     error
	started bool
}

// NewShared describes a backend: its name for messages, how long a start may take, and how to start it.
func NewShared[T interface{ Close() error }](name string, timeout time.Duration, start func(context.Context) (T, error)) *Shared[T] {
	return &Shared[T]{name: name, timeout: timeout, start: start}
}

// Get starts the backend on first use and returns it, or fails t.
func (s *Shared[T]) Get(t interface {
	Helper()
	Fatalf(string, ...any)
}) T {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		s.v, s.err = s.start(ctx)
		s.started = s.err == nil
	})
	if s.err != nil {
		t.Fatalf("start %s: %v", s.name, s.err)
	}
	return s.v
}

// Close stops the backend if a test started it.
func (s *Shared[T]) Close() {
	if s.started {
		if err := s.v.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "stop %s: %v\n", s.name, err)
		}
	}
}
