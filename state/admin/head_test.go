package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/state"
)

// countingStore counts the reads of the state.
type countingStore struct {
	Store
	reads atomic.Int64
}

func (c *countingStore) Backup(ctx context.Context, w io.Writer) (int64, error) {
	c.reads.Add(1)
	return c.Store.Backup(ctx, w)
}

func (c *countingStore) Export(ctx context.Context, w io.Writer) error {
	c.reads.Add(1)
	return c.Store.Export(ctx, w)
}

// Every admin answer says no-store; HEAD reads nothing (issue 14: HEAD on the backup ran a full
// backup); /admin/status serves the daemon's status as JSON.
func TestAdminHeadAndCaching(t *testing.T) {
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := &countingStore{Store: db}
	mux := http.NewServeMux()
	Mount(mux, config.NewSecret(adminToken), store, func() any { return map[string]string{"ready": "no", "reason": "reconcile failing: W&B answered 503"} },
		slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tests := []struct {
		method, path, auth string
		status             int
		reads              int64
		body               map[string]string
	}{
		{"HEAD", BackupPath, adminToken, 200, 0, nil},
		{"HEAD", ExportPath, adminToken, 200, 0, nil},
		{"HEAD", BackupPath, "wrong-token-0123456789", 401, 0, nil},
		{"GET", BackupPath, "wrong-token-0123456789", 401, 0, nil},
		{"GET", ExportPath, adminToken, 200, 1, nil},
		{"GET", BackupPath, adminToken, 200, 1, nil},
		{"GET", StatusPath, adminToken, 200, 0, map[string]string{"ready": "no", "reason": "reconcile failing: W&B answered 503"}},
		{"GET", StatusPath, "", 401, 0, nil},
	}
	for _, tt := range tests {
		before := store.reads.Load()
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", "Bearer "+tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: %d, Cache-Control %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		if n := store.reads.Load() - before; n != tt.reads {
			t.Errorf("%s %s read the state %d times, want %d", tt.method, tt.path, n, tt.reads)
		}
		if tt.body != nil {
			var got map[string]string
			if err := json.Unmarshal(body.Bytes(), &got); err != nil || !maps.Equal(got, tt.body) {
				t.Errorf("%s %s: body %s, want %v", tt.method, tt.path, body.String(), tt.body)
			}
		}
	}
}
