package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child gets to exit after SIGTERM before its process group is killed. It is a
// bound for a hung child, not a wait: a persistent backend (Azurite with a data directory) saves its data
// on SIGTERM, and on a loaded machine that took longer than 5 s, so a kill lost it.
const stopGrace = time.Minute

// child is one backend process, started in its own process group so that Close can kill everything it
// spawned, and (on Linux) killed by the kernel if the parent dies first.
type child struct {
	name    string
	cmd     *exec.Cmd
	tail    *tailBuffer
	stopSig syscall.Signal // what stop sends first; SIGTERM unless an option says otherwise
	done    chan struct{}  // closed when the process has exited
	err     error          // exit status; read only after done is closed
}

// childOption adjusts a child before it starts.
type childOption func(*child)

// runAs runs the child as another user (PostgreSQL refuses to run as root).
func runAs(cred *syscall.Credential) childOption {
	return func(c *child) { c.cmd.SysProcAttr.Credential = cred }
}

// stopWith makes stop send sig first: PostgreSQL's SIGTERM ("smart" shutdown) waits for every client
// to disconnect, its SIGINT ("fast") does not.
func stopWith(sig syscall.Signal) childOption {
	return func(c *child) { c.stopSig = sig }
}

// startChild starts bin with args. Its stdout goes to stdout (nil: the logs), its stderr to the logs,
// and both to a short tail kept for error messages.
func startChild(name, bin string, args []string, stdout, logs io.Writer, opts ...childOption) (*child, error) {
	c := &child{name: name, tail: &tailBuffer{max: 4 << 10}, stopSig: syscall.SIGTERM, done: make(chan struct{})}
	if stdout == nil {
		stdout = logs
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout = io.MultiWriter(stdout, c.tail)
	c.cmd.Stderr = io.MultiWriter(logs, c.tail)
	c.cmd.SysProcAttr = childProcAttr()
	for _, o := range opts {
		o(c)
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exitError describes an early exit, with the last output for diagnosis.
func (c *child) exitError() error {
	return fmt.Errorf("%s exited: %v; last output:\n%s", c.name, c.err, c.tail.String())
}

// stop asks the process group to terminate (stopSig), then kills it after stopGrace.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	pgid := -c.cmd.Process.Pid
	_ = syscall.Kill(pgid, c.stopSig)
	select {
	case <-c.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-c.done
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lockedWriter serialises writes: both children's output goroutines share the caller's log writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// firstLine captures the first line written to it, sends it on line, and passes everything after it
// to rest. kmsd announces its address that way.
type firstLine struct {
	rest io.Writer
	line chan string
	buf  []byte
	sent bool
}

func (f *firstLine) Write(p []byte) (int, error) {
	if f.sent {
		return f.rest.Write(p)
	}
	f.buf = append(f.buf, p...)
	i := bytes.IndexByte(f.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	f.line <- string(f.buf[:i])
	f.sent = true
	if _, err := f.rest.Write(f.buf[i+1:]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// waitReady polls probe every interval until it succeeds, the child exits, or ctx ends.
func (c *child) waitReady(ctx context.Context, what string, interval time.Duration, probe func(context.Context) error) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr := probe(callCtx)
		cancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-c.done:
			return c.exitError()
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to answer: %w (last error: %v)", what, ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}
