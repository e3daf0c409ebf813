package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Secrets of the benchmark's daemon; fresh for every run would buy nothing on 127.0.0.1.
const (
	scimToken = "bench-scim-token-0123456789"
	// webhookSecret is whsec_ + base64 of webhookKey, as Standard Webhooks senders show it.
	webhookKey = "bench-webhook-key"
)

var webhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte(webhookKey))

// daemon is a running `byob-agent run`.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited
	peakMB float64       // VmHWM at the last memory reading
	base   string        // http://127.0.0.1:port
	http   *http.Client
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startDaemon runs the agent's daemon on cfg and waits until it is ready (its first full reconcile
// succeeded). Its logs go to daemon.log beside cfg.
func (w *world) startDaemon(ctx context.Context, cfg string, port int, profileDir string) (*daemon, error) {
	logf, err := os.Create(filepath.Join(filepath.Dir(cfg), "daemon.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(w.agentBin, "run", "--log-level", "warn", "--config", cfg)
	cmd.Dir = filepath.Dir(cfg)
	var extra []string
	if profileDir != "" {
		extra = append(extra, "BYOB_AGENT_MEMPROFILE="+filepath.Join(profileDir, "daemon-heap.pprof"))
	}
	cmd.Env = w.env(extra...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	d := &daemon{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	exited := make(chan struct{})
	d.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		res, err := d.http.Get(d.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("the daemon exited before it was ready; see %s", logf.Name())
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("the daemon was not ready within 5 minutes; see %s", logf.Name())
		}
	}
}

// stop sends SIGTERM and waits (the daemon writes its heap profile as it exits).
func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.exited:
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// memory reads the daemon's resident memory from /proc/PID/status (Linux): VmRSS, and its anonymous
// (heap, stacks) and file-backed (the mapped state file, the binary) parts, in MB; the peak (VmHWM)
// goes to d.peakMB.
func (d *daemon) memory() (rss, anon, file float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read the daemon's resident memory: %w", err)
	}
	defer f.Close()
	var peak float64
	fields := map[string]*float64{"VmRSS:": &rss, "RssAnon:": &anon, "RssFile:": &file, "VmHWM:": &peak}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), "\t")
		dst, ok := fields[name]
		if !ok {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
		if err != nil {
			return 0, 0, 0, fmt.Errorf("parse %s %q: %w", name, rest, err)
		}
		*dst = float64(kb) / 1024
	}
	if rss == 0 {
		return 0, 0, 0, errors.New("no VmRSS in /proc/PID/status")
	}
	d.peakMB = peak
	return rss, anon, file, sc.Err()
}

// mappedMB is the resident memory of each file the daemon has mapped, by base name (Linux smaps).
func (d *daemon) mappedMB() (map[string]float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", d.cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("read the daemon's mappings: %w", err)
	}
	defer f.Close()
	out := map[string]float64{}
	var current string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 6 && strings.Contains(fields[0], "-"): // a mapping's header: range perms offset dev inode path
			current = filepath.Base(fields[5])
		case len(fields) == 3 && fields[0] == "Rss:":
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				return nil, fmt.Errorf("parse smaps line %q: %w", sc.Text(), err)
			}
			out[current] += float64(kb) / 1024
		case len(fields) >= 1 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			current = "" // an anonymous mapping
		}
	}
	return out, sc.Err()
}

// scim sends one SCIM request and decodes the answer into out (when not nil). want 0 accepts any 2xx.
func (d *daemon) scim(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+"/scim/v2"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+scimToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	res, err := d.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if ok := res.StatusCode == want || want == 0 && res.StatusCode/100 == 2; !ok {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, tail(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
	}
	return nil
}

type scimResource struct {
	ID string `json:"id"`
}

func userBody(name string) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name, "active": true,
		"emails": []map[string]any{{"value": name, "primary": true}}}
}

func groupBody(name string) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": name, "members": []any{}}
}

func addMemberBody(userID string) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "add", "path": "members", "value": []map[string]string{{"value": userID}}}}}
}

// pushUsers creates n users through SCIM, 16 requests at a time, and returns their ids and names.
func (d *daemon) pushUsers(ctx context.Context, n int) (ids, names []string, err error) {
	names = make([]string, n)
	ids = make([]string, n)
	idx := make([]int, n)
	for i := range names {
		names[i], idx[i] = fmt.Sprintf("user%05d@bench.example", i), i
	}
	err = forEach(ctx, idx, 16, func(ctx context.Context, i int) error {
		var r scimResource
		if err := d.scim(ctx, http.MethodPost, "/Users", userBody(names[i]), http.StatusCreated, &r); err != nil {
			return err
		}
		ids[i] = r.ID
		return nil
	})
	return ids, names, err
}

// timed runs fn for every item on n goroutines and returns each call's latency and the total time.
func timed[T any](ctx context.Context, items []T, n int, fn func(context.Context, T) error) ([]time.Duration, time.Duration, error) {
	var mu sync.Mutex
	lat := make([]time.Duration, 0, len(items))
	start := time.Now()
	err := forEach(ctx, items, n, func(ctx context.Context, it T) error {
		t := time.Now()
		if err := fn(ctx, it); err != nil {
			return err
		}
		d := time.Since(t)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		return nil
	})
	return lat, time.Since(start), err
}

// percentileMS is the q-quantile of lat (nearest rank), in milliseconds.
func percentileMS(lat []time.Duration, q float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return float64(s[min(max(i, 0), len(s)-1)]) / float64(time.Millisecond)
}

// pushToTeam pushes a new group and measures until the emulator (polled directly, not through the
// delaying proxy) has the W&B team.
func (w *world) pushToTeam(ctx context.Context, d *daemon, name string) (time.Duration, error) {
	start := time.Now()
	if err := d.scim(ctx, http.MethodPost, "/Groups", groupBody("wandb-"+name), http.StatusCreated, nil); err != nil {
		return 0, err
	}
	q := url.Values{"filter": {fmt.Sprintf("displayName eq %q", name)}}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.emuURL+"/scim/Groups?"+q.Encode(), nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+w.apiKey)
		res, err := d.http.Do(req)
		if err != nil {
			return 0, fmt.Errorf("poll the emulator for team %s: %w", name, err)
		}
		var list struct {
			TotalResults int `json:"totalResults"`
		}
		err = json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("poll the emulator for team %s: %w", name, err)
		}
		if list.TotalResults > 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > 2*time.Minute {
			return 0, fmt.Errorf("team %s did not appear in W&B within 2 minutes of its SCIM push", name)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// fullReconcile asks for a reconcile of everything with a signed Standard Webhooks request and waits
// until the daemon has finished one more full reconcile than before.
func (d *daemon) fullReconcile(ctx context.Context) error {
	before, err := d.fullReconciles(ctx)
	if err != nil {
		return err
	}
	id, ts, body := "msg_bench_full", strconv.FormatInt(time.Now().Unix(), 10), "{}"
	mac := hmac.New(sha256.New, []byte(webhookKey))
	mac.Write([]byte(id + "." + ts + "." + body))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/webhooks/generic", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	res, err := d.http.Do(req)
	if err != nil {
		return fmt.Errorf("send the generic webhook: %w", err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("generic webhook: status %d", res.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		n, err := d.fullReconciles(ctx)
		if err != nil {
			return err
		}
		if n > before {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("no full reconcile finished within 5 minutes of the webhook")
}

// fullReconciles sums byob_reconciles_total{kind="all"} from /metrics.
func (d *daemon) fullReconciles(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	res, err := d.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read the daemon's metrics: %w", err)
	}
	defer res.Body.Close()
	var total float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "byob_reconciles_total{") || !strings.Contains(line, `kind="all"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("parse metric line %q: %w", line, err)
		}
		total += v
	}
	return total, sc.Err()
}

// daemonResults are the daemon's figures.
type daemonResults struct {
	patchRPS, patchP99, filterP99, rssMB, hookP50 float64
}

// measureDaemon runs the daemon on cfg (a converged state of many teams) and measures the SCIM
// endpoint, a push until the W&B team exists, and resident memory after a full reconcile.
func (w *world) measureDaemon(ctx context.Context, cfg string, port int, s sizes, profileDir string, say sayFunc) (daemonResults, error) {
	var r daemonResults
	d, err := w.startDaemon(ctx, cfg, port, profileDir)
	if err != nil {
		return r, err
	}
	defer d.stop()

	// A push until its team exists, one at a time so each has the daemon to itself.
	var hook []time.Duration
	for i := range s.hookSamples {
		lat, err := w.pushToTeam(ctx, d, fmt.Sprintf("hook%03d", i))
		if err != nil {
			return r, err
		}
		hook = append(hook, lat)
	}
	r.hookP50 = percentileMS(hook, 0.5)
	say("  push to team: p50 %.0f ms", r.hookP50)

	t := time.Now()
	ids, names, err := d.pushUsers(ctx, s.users)
	if err != nil {
		return r, err
	}
	say("  %d users pushed in %.1f s", s.users, time.Since(t).Seconds())
	// userName eq lookups, as an IdP makes before creating a user; one at a time: latency, not queueing.
	lookups := make([]string, s.lookups)
	for i := range lookups {
		lookups[i] = names[(i*7919)%len(names)]
	}
	lat, _, err := timed(ctx, lookups, 1, func(ctx context.Context, name string) error {
		var list struct {
			TotalResults int `json:"totalResults"`
		}
		q := url.Values{"filter": {fmt.Sprintf("userName eq %q", name)}}
		if err := d.scim(ctx, http.MethodGet, "/Users?"+q.Encode(), nil, http.StatusOK, &list); err != nil {
			return err
		}
		if list.TotalResults != 1 {
			return fmt.Errorf("userName eq %q found %d users, want 1", name, list.TotalResults)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.filterP99 = percentileMS(lat, 0.99)
	say("  userName eq: p50 %.1f ms, p99 %.1f ms", percentileMS(lat, 0.5), r.filterP99)

	// Group-member PATCHes at concurrency 16, spread over 16 groups (which are teams the daemon provisions meanwhile).
	groups := make([]string, 16)
	for i := range groups {
		var g scimResource
		if err := d.scim(ctx, http.MethodPost, "/Groups", groupBody(fmt.Sprintf("wandb-patch%02d", i)), http.StatusCreated, &g); err != nil {
			return r, err
		}
		groups[i] = g.ID
	}
	patches := make([]int, s.patches)
	for i := range patches {
		patches[i] = i
	}
	lat, total, err := timed(ctx, patches, 16, func(ctx context.Context, i int) error {
		return d.scim(ctx, http.MethodPatch, "/Groups/"+groups[i%len(groups)], addMemberBody(ids[i%len(ids)]), 0, nil)
	})
	if err != nil {
		return r, err
	}
	r.patchRPS = float64(len(patches)) / total.Seconds()
	r.patchP99 = percentileMS(lat, 0.99)
	say("  PATCH: %.0f/s, p50 %.1f ms, p99 %.1f ms", r.patchRPS, percentileMS(lat, 0.5), r.patchP99)

	if err := d.fullReconcile(ctx); err != nil {
		return r, err
	}
	var anon, file float64
	if r.rssMB, anon, file, err = d.memory(); err != nil {
		return r, err
	}
	maps, err := d.mappedMB()
	if err != nil {
		return r, err
	}
	var stateMB float64
	if fi, err := os.Stat(filepath.Join(filepath.Dir(cfg), "state.db")); err == nil {
		stateMB = float64(fi.Size()) / (1 << 20)
	}
	say("  resident %.1f MB (peak %.1f): anonymous %.1f, file-backed %.1f (the state file %.1f of its %.1f, the binary %.1f)",
		r.rssMB, d.peakMB, anon, file, maps["state.db"], stateMB, maps["byob-agent"])
	return r, nil
}
