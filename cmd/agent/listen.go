package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// What an unauthenticated client can make a listener hold: at most maxConnections connections, each
// with at most maxHeaderBytes of headers (Go's default is 1 MiB; larger ones get 431), sent within
// readHeaderTimeout.
const (
	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 5 * time.Second
)

// newHTTPServer is the server of every daemon listener.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// listen listens on addr and serves at most max connections at once; onFull is told each time a new
// connection has to wait for one to close.
func listen(addr string, max int, onFull func()) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return newLimitListener(ln, max, onFull), nil
}

// limitListener accepts at most cap(slots) connections at once. Past that Accept waits for one to
// close, so further connections stay in the kernel's backlog, unread: they cost no memory here.
// (golang.org/x/net/netutil.LimitListener does the same but cannot say when it is full, which the
// metric and the test need.)
type limitListener struct {
	net.Listener
	slots  chan struct{}
	onFull func()
	closed chan struct{}
	once   sync.Once
}

func newLimitListener(ln net.Listener, max int, onFull func()) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), onFull: onFull, closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.onFull()
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
}

// Close also ends an Accept waiting for a slot, so that the server's Shutdown returns.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn frees its slot when closed (once, however often Close is called).
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
