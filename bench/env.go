package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
)

// world is what every measurement runs against: SeaweedFS (started by testenv, with local-kms), the
// W&B emulator as a process of its own, a delaying proxy in front of each, and the agent binary.
type world struct {
	dir      string // temporary: binaries, configs, states
	agentBin string
	s3       *testenv.S3Env
	emu      *exec.Cmd
	emuURL   string // the emulator itself, without delay: seeding and polling
	apiKey   string
	s3Proxy  *delayProxy // what the agent's storage requests go through
	emuProxy *delayProxy // what the agent's W&B requests go through
	// pg, with -state postgres, holds the agent's state: a database of its own for each configuration
	// (the state file is still used to seed the converged teams, then migrated with `state migrate`).
	pg *testenv.PostgresEnv
}

// startWorld builds the agent and the emulator into a temporary directory and starts the backends.
func startWorld(ctx context.Context, delay time.Duration, logs io.Writer) (_ *world, err error) {
	dir, err := os.MkdirTemp("", "byob-bench-")
	if err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	w := &world{dir: dir, apiKey: "bench-" + rand.Text()}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.close())
		}
	}()
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	w.agentBin = filepath.Join(dir, "byob-agent")
	emuBin := filepath.Join(dir, "wandb-emulator")
	for bin, pkg := range map[string]string{w.agentBin: "./cmd/agent", emuBin: "./cmd/wandb-emulator"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if w.s3, err = testenv.StartS3(startCtx, testenv.S3Options{Dir: filepath.Join(dir, "backends"), Logs: logs}); err != nil {
		return nil, fmt.Errorf("start SeaweedFS and local-kms: %w", err)
	}
	// The emulator checks a new team's bucket as W&B does, through testenv's own (undelayed) proxy:
	// those are W&B's requests, not the agent's.
	if err := w.startEmulator(startCtx, emuBin, logs); err != nil {
		return nil, err
	}
	if w.s3Proxy, err = startDelayProxy(w.s3.DirectEndpoint(), delay); err != nil {
		return nil, err
	}
	if w.emuProxy, err = startDelayProxy(w.emuURL, delay); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *world) startEmulator(ctx context.Context, bin string, logs io.Writer) error {
	cmd := exec.Command(bin, "-api-key", w.apiKey, "-s3-endpoint", w.s3.Endpoint, "-s3-region", w.s3.Region,
		"-s3-access-key", w.s3.AccessKey, "-s3-secret-key", w.s3.SecretKey)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the W&B emulator: %w", err)
	}
	w.emu = cmd
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		base, ok := strings.CutPrefix(l, "listening on ")
		if !ok {
			return fmt.Errorf("the W&B emulator announced %q, want \"listening on URL\"", l)
		}
		w.emuURL = strings.TrimSuffix(base, "/scim")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the W&B emulator: %w", ctx.Err())
	}
}

func (w *world) close() error {
	var errs []error
	for _, p := range []*delayProxy{w.s3Proxy, w.emuProxy} {
		if p != nil {
			errs = append(errs, p.srv.Close())
		}
	}
	if w.emu != nil && w.emu.Process != nil {
		_ = w.emu.Process.Signal(os.Interrupt)
		_ = w.emu.Wait()
	}
	if w.s3 != nil {
		errs = append(errs, w.s3.Close())
	}
	if w.pg != nil {
		errs = append(errs, w.pg.Close())
	}
	errs = append(errs, os.RemoveAll(w.dir))
	return errors.Join(errs...)
}

// counts is what the delaying proxies saw.
type counts struct{ S3, S3Mutations, WandB, WandBMutations int64 }

func (c counts) requests() int64  { return c.S3 + c.WandB }
func (c counts) mutations() int64 { return c.S3Mutations + c.WandBMutations }

func (w *world) counts() counts {
	return counts{w.s3Proxy.total.Load(), w.s3Proxy.mutations.Load(), w.emuProxy.total.Load(), w.emuProxy.mutations.Load()}
}

func (w *world) resetCounts() {
	for _, p := range []*delayProxy{w.s3Proxy, w.emuProxy} {
		p.total.Store(0)
		p.mutations.Store(0)
	}
}

// setDelay sets the latency both proxies add to every request.
func (w *world) setDelay(d time.Duration) {
	w.s3Proxy.delay.Store(int64(d))
	w.emuProxy.delay.Store(int64(d))
}

// delayProxy forwards every request to one backend after a fixed delay (the round trip to a cloud
// API, which 127.0.0.1 lacks), counting requests and mutations (every method but GET, HEAD, OPTIONS).
type delayProxy struct {
	url              string
	srv              *http.Server
	delay            atomic.Int64 // nanoseconds
	total, mutations atomic.Int64
}

func startDelayProxy(target string, delay time.Duration) (*delayProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse proxy target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the proxy to %s: %w", target, err)
	}
	p := &delayProxy{url: "http://" + ln.Addr().String()}
	p.delay.Store(int64(delay))
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // SigV4 signs the Host header
		},
		ErrorLog: log.New(io.Discard, "", 0),
		// Many idle connections: the agent runs up to 32 teams at once.
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute},
	}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		p.total.Add(1)
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			p.mutations.Add(1)
		}
		if d := time.Duration(p.delay.Load()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		rp.ServeHTTP(rw, r)
	})}
	go p.srv.Serve(ln) // returns ErrServerClosed after Close
	return p, nil
}

// childrenCPU is the CPU time (user + system) the bench process's children have used so far: the
// backends (SeaweedFS, local-kms, the emulator) and a running agent. Linux only; 0 elsewhere.
func childrenCPU() time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	var ticks int64
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) in parentheses: state ppid ... utime stime.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 || f[1] != strconv.Itoa(self) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

// selfCPU is the CPU time of the bench process itself (the delaying proxies, the seeding).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
