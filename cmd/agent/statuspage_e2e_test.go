package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/byob-agent/byob-agent/state"
)

const (
	viewerToken = "viewer-token-for-tests-0123456789"
	pageAdmin   = "admin-token-for-tests-0123456789"
	// brokenSecret is the wrong S3 secret of the profile whose bucket cannot be made; it must not
	// show on the page either.
	brokenSecret = "wrong-s3-secret-for-the-page-test"
)

// writeStatusPageConfig is the daemon config with the status page's tokens and a second profile whose
// credentials S3 refuses, with a team in it: that team fails at ensure_bucket.
func (e *e2e) writeStatusPageConfig(port int) {
	e.writeDaemonConfig(port)
	b, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "  shutdownTimeout: 3s\n",
		"  shutdownTimeout: 3s\n  viewerTokens: [\"${TEST_VIEWER_TOKEN}\"]\n  adminToken: ${TEST_ADMIN_TOKEN}\n", 1)
	cfg = strings.Replace(cfg, "profiles:\n", `profiles:
  denied:
    provider: s3-compatible
    region: `+backends.Region+`
    endpoint: `+backends.Endpoint+`
    credentials: {accessKeyId: `+backends.AccessKey+`, secretAccessKey: "${TEST_BROKEN_SECRET}"}
    bucket: "`+e.prefix+`-{{ .Team }}"
`, 1)
	cfg += "  - {name: " + e.team("broken") + ", profile: denied}\ndefaultProfile: onprem\n"
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// exportState reads the state through the daemon's admin endpoint (the daemon holds the file).
func (d *daemonProc) exportState(t *testing.T) map[string]state.Record {
	t.Helper()
	code, body := d.do(t, http.MethodGet, "/admin/state/export", "Bearer "+pageAdmin, "")
	if code != http.StatusOK {
		t.Fatalf("export: %d %s", code, body)
	}
	var out struct{ Teams []state.Record }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	recs := map[string]state.Record{}
	for _, r := range out.Teams {
		recs[r.Name] = r
	}
	return recs
}

func statusOf(r state.Record) string { return r.Status() }

// chromium finds Debian's Chromium; `make tools` installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: `make tools` installs Debian's chromium package (apt-get install -y chromium)")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile and no network of its own.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser under a context without deadline
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestStatusPageInBrowser logs in with a real browser, filters to the failed teams, opens the one
// there, and checks the page against the state: status, error, history. No secret is in the HTML and
// the page sends its Content-Security-Policy.
func TestStatusPageInBrowser(t *testing.T) {
	e := newE2E(t)
	port := freePort(t)
	e.writeStatusPageConfig(port)
	d := e.startDaemonEnv(port, "TEST_VIEWER_TOKEN="+viewerToken, "TEST_ADMIN_TOKEN="+pageAdmin, "TEST_BROKEN_SECRET="+brokenSecret)
	broken, good := e.team("broken"), e.team("yaml")
	var recs map[string]state.Record
	waitFor(t, "the broken team to fail and the good one to be in sync", func() bool {
		recs = d.exportState(t)
		return statusOf(recs[broken]) == "failed" && len(recs[broken].History) > 0 && statusOf(recs[good]) == "in_sync"
	})

	// The good team's creation is in its history, with the steps it took.
	if h := recs[good].History; len(h) == 0 || h[0].Outcome != "created" || !slices.ContainsFunc(h[0].Steps, func(s state.StepResult) bool { return s.Step == "create_team" && s.Error == "" }) {
		t.Errorf("history of %s: %+v", good, h)
	}

	ctx := newBrowser(t)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) []string {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[[]string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}

	// / sends an anonymous visitor to the login form; a wrong token is refused there.
	run("open the page", chromedp.Navigate(d.base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	run("log in with a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "not-the-viewer-token-0123"), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	resp, err := chromedp.RunResponse(ctx,
		chromedp.SendKeys(chromedp.ID("token"), viewerToken), chromedp.Click(chromedp.ID("login")))
	if err != nil {
		t.Fatalf("log in: %v", err)
	}
	if resp.Status != http.StatusOK || !strings.HasSuffix(resp.URL, "/status/") {
		t.Fatalf("after login: %d %s", resp.Status, resp.URL)
	}
	csp, _ := resp.Headers["Content-Security-Policy"].(string)
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if all := eval(`[...document.querySelectorAll("tr[data-team]")].map(e => e.dataset.team)`); !slices.Contains(all, broken) || !slices.Contains(all, good) {
		t.Errorf("teams listed: %v", all)
	}
	if backends := eval(`[...document.querySelectorAll("#backends td:first-child")].map(e => e.textContent)`); !slices.Contains(backends, "wandb") || !slices.Contains(backends, "s3") {
		t.Errorf("backends shown: %v", backends)
	}
	if bars := eval(`[...document.querySelectorAll("#chart rect")].map(e => e.getAttribute("class"))`); len(bars) == 0 {
		t.Error("the chart has no bar")
	}

	// Filter to the failed teams.
	if _, err := chromedp.RunResponse(ctx, chromedp.SetValue(chromedp.ID("filter-status"), "failed"), chromedp.Click(chromedp.ID("filter-apply"))); err != nil {
		t.Fatalf("filter: %v", err)
	}
	var wantFailed []string
	for name, r := range recs {
		if statusOf(r) == "failed" {
			wantFailed = append(wantFailed, name)
		}
	}
	if got := eval(`[...document.querySelectorAll("tr[data-team]")].map(e => e.dataset.team)`); !slices.Equal(got, wantFailed) {
		t.Errorf("failed teams shown %v, state has %v", got, wantFailed)
	}

	// Open the failed team and compare with the state.
	if resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`tr[data-team="`+broken+`"] a.team-link`))); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("open the team: %v %v", err, resp)
	}
	recs = d.exportState(t)
	rec := recs[broken]
	text := func(sel string) string {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := chromedp.Run(c, chromedp.TextContent(chromedp.ID(sel)))
		if err != nil {
			t.Fatalf("read #%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	if got := text("team-status"); got != rec.Status() {
		t.Errorf("status %q, state %q", got, rec.Status())
	}
	if got := text("team-error"); got != rec.LastError || !strings.Contains(got, "ensure bucket") && !strings.Contains(got, "bucket") {
		t.Errorf("error %q, state %q", got, rec.LastError)
	}
	if got := text("team-phase"); got != string(rec.Phase) {
		t.Errorf("phase %q, state %q", got, rec.Phase)
	}
	events := eval(`[...document.querySelectorAll("#history li.event")].map(e => e.className)`)
	if len(events) != len(rec.History) || len(events) == 0 || events[0] != "event outcome-"+rec.History[len(rec.History)-1].Outcome {
		t.Errorf("history shown %v, state has %d events ending %+v", events, len(rec.History), rec.History[len(rec.History)-1])
	}
	steps := eval(`[...document.querySelectorAll("#history li.event:first-child li.step")].map(e => e.textContent)`)
	if len(steps) == 0 || !strings.Contains(steps[len(steps)-1], "ensure_bucket") || !strings.Contains(steps[len(steps)-1], "failed") {
		t.Errorf("steps of the latest event: %q", steps)
	}
	if got := text("doctor"); !strings.Contains(got, "does not run") {
		t.Errorf("doctor section %q", got)
	}

	// No secret in the HTML of any page seen.
	for _, path := range []string{"/status/", "/status/teams/" + broken, "/status/teams/" + good} {
		run("open "+path, chromedp.Navigate(d.base+path), chromedp.WaitVisible(chromedp.ID("health")))
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		html, err := chromedp.Run(c, chromedp.OuterHTML(chromedp.CSS("html")))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range append(testSecrets(), viewerToken, pageAdmin, brokenSecret) {
			if strings.Contains(html, s) {
				t.Errorf("%s shows a secret (%d characters)", path, len(s))
			}
		}
	}

	run("open the failed team for the screenshot", chromedp.Navigate(d.base+"/status/teams/"+broken), chromedp.WaitVisible(chromedp.ID("history")))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "status-page.png")
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	if len(shot) < 10_000 || !bytes.HasPrefix(shot, []byte("\x89PNG")) {
		t.Errorf("screenshot of %d bytes", len(shot))
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	if dir := os.Getenv("BYOB_SCREENSHOT_DIR"); dir != "" { // keeps a copy past the test's cleanup
		os.WriteFile(filepath.Join(dir, "status-page.png"), shot, 0o644)
	}
}
