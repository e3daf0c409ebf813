package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// limitedServer serves a counting handler through the daemon's listener and server settings, at most
// max connections at once; full receives a value each time a connection has to wait.
func limitedServer(t *testing.T, max int) (addr string, served *atomic.Int64, full chan struct{}) {
	t.Helper()
	full = make(chan struct{}, 100)
	ln, err := listen("127.0.0.1:0", max, func() { full <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	served = &atomic.Int64{}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		fmt.Fprintln(w, "ok")
	}), slog.New(slog.DiscardHandler))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), served, full
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFull waits for the listener to report that it is full: an event, not a duration (the timeout
// only ends a test whose limiter never fills).
func waitFull(t *testing.T, full chan struct{}) {
	t.Helper()
	select {
	case <-full:
	case <-time.After(30 * time.Second):
		t.Fatal("the listener never reported being full: connections are not capped")
	}
}

// Slow clients holding unfinished headers (issue 14: 100 of them took 160 MB) get at most max
// connections; the others wait unread until one closes, and only then are served.
func TestListenerCapsConnections(t *testing.T) {
	for _, max := range []int{1, 3} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			addr, served, full := limitedServer(t, max)
			slow := make([]net.Conn, max)
			for i := range slow {
				slow[i] = dial(t, addr)
				if _, err := io.WriteString(slow[i], "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "+strings.Repeat("a", 1000)); err != nil {
					t.Fatal(err)
				}
			}
			// The server accepted max connections and waits for a slot to take the next.
			waitFull(t, full)
			extra := make([]net.Conn, 3)
			for i := range extra {
				extra[i] = dial(t, addr)
				if _, err := io.WriteString(extra[i], "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
			}
			if n := served.Load(); n != 0 {
				t.Fatalf("%d requests served while %d slow connections held every slot", n, max)
			}
			// One slow connection going frees one slot: the waiting requests get it one after the other
			// (each answer closes its connection), while the other slow connections keep theirs.
			slow[0].Close()
			for i, c := range extra {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("request %d after a slot freed: %v", i, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("request %d: %d", i, resp.StatusCode)
				}
			}
			if n := served.Load(); n != int64(len(extra)) {
				t.Errorf("%d requests served, want %d", n, len(extra))
			}
		})
	}
}

// Headers over maxHeaderBytes (Go's default is 1 MiB) are refused with 431; headers under it are served.
func TestListenerCapsHeaders(t *testing.T) {
	addr, served, _ := limitedServer(t, 4)
	tests := []struct {
		size int
		want int
	}{
		{maxHeaderBytes / 2, http.StatusOK},
		// net/http allows 4096 bytes of slack over MaxHeaderBytes.
		{maxHeaderBytes + 8<<10, http.StatusRequestHeaderFieldsTooLarge},
		{1 << 20, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		c := dial(t, addr)
		go io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "+strings.Repeat("a", tt.size)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%d bytes of headers: %v", tt.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%d bytes of headers: %d, want %d", tt.size, resp.StatusCode, tt.want)
		}
	}
	if n := served.Load(); n != 1 {
		t.Errorf("%d requests reached the handler, want 1", n)
	}
	if s := newHTTPServer(nil, slog.New(slog.DiscardHandler)); s.MaxHeaderBytes > 64<<10 || s.ReadHeaderTimeout != 5*time.Second {
		t.Errorf("server MaxHeaderBytes %d, ReadHeaderTimeout %s", s.MaxHeaderBytes, s.ReadHeaderTimeout)
	}
}
