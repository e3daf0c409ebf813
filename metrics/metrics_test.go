package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTransportAndHandler(t *testing.T) {
	m := New()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer backend.Close()
	client := &http.Client{Transport: m.Transport("wandb", nil)}
	for _, p := range []string{"/ok", "/ok", "/missing"} {
		resp, err := client.Get(backend.URL + p + "?token=secret-in-url")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := (&http.Client{Transport: m.Transport("s3", nil)}).Get("http://127.0.0.1:1/unreachable"); err == nil {
		t.Fatal("want a connection error")
	}
	m.QueueDepth.Set(3)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`byob_api_requests_total{code="2xx",target="wandb"} 2`,
		`byob_api_requests_total{code="4xx",target="wandb"} 1`,
		`byob_api_requests_total{code="error",target="s3"} 1`,
		`byob_api_request_duration_seconds_count{target="wandb"} 3`,
		`byob_queue_depth 3`,
		`byob_wandb_last_success_timestamp_seconds`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(body), "secret-in-url") {
		t.Error("a URL reached the metrics")
	}
}

func TestSeriesExistFromTheStart(t *testing.T) {
	m := New()
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	tests := []struct {
		name    string
		do      func()
		want    []string
		notWant []string
	}{
		{
			name: "new",
			do:   func() {},
			want: []string{`byob_teams{status="failed"} 0`, `byob_teams{status="conflict"} 0`,
				`byob_reconciles_total{kind="all",result="error"} 0`, `byob_config_reloads_total{result="error",trigger="file"} 0`,
				`byob_api_requests_total{code="error",target="wandb"} 0`, `byob_ready 0`, `byob_config_last_reload_success 0`},
		},
		{
			name: "two failed teams",
			do: func() {
				m.CountTeams(func() (map[string]int, error) { return map[string]int{"failed": 2, "in_sync": 1}, nil })
			},
			want:    []string{`byob_teams{status="failed"} 2`, `byob_teams{status="in_sync"} 1`, `byob_teams{status="conflict"} 0`},
			notWant: []string{`byob_teams{status="failed"} 0`},
		},
		{
			name:    "none failed any more",
			do:      func() { m.CountTeams(func() (map[string]int, error) { return map[string]int{"in_sync": 3}, nil }) },
			want:    []string{`byob_teams{status="failed"} 0`, `byob_teams{status="in_sync"} 3`},
			notWant: []string{`byob_teams{status="failed"} 2`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.do()
			body := scrape()
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("metrics lack %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("metrics still have %q", w)
				}
			}
		})
	}
}

func TestTeamsAreCountedAtScrape(t *testing.T) {
	tests := map[string]struct {
		count func() (map[string]int, error)
		want  []string // lines the scrape must have
		code  int
	}{
		"no count set": {want: []string{"go_goroutines"}, code: http.StatusOK},
		"counts": {
			count: func() (map[string]int, error) { return map[string]int{"in_sync": 2, "failed": 1}, nil },
			want:  []string{`byob_teams{status="in_sync"} 2`, `byob_teams{status="failed"} 1`}, code: http.StatusOK,
		},
		"state unreadable": {
			count: func() (map[string]int, error) { return nil, errors.New("state closed") },
			want:  []string{"count teams: state closed"}, code: http.StatusInternalServerError,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			m := New()
			calls := 0
			if tt.count != nil {
				m.CountTeams(func() (map[string]int, error) { calls++; return tt.count() })
			}
			for range 2 {
				rec := httptest.NewRecorder()
				m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				body, _ := io.ReadAll(rec.Body)
				if rec.Code != tt.code {
					t.Errorf("status %d, want %d", rec.Code, tt.code)
				}
				for _, w := range tt.want {
					if !strings.Contains(string(body), w) {
						t.Errorf("metrics lack %q:\n%s", w, body)
					}
				}
			}
			if tt.count != nil && calls != 2 {
				t.Errorf("counted %d times in 2 scrapes, want 2", calls)
			}
		})
	}
}
