package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"key from flag", []string{"-api-key", "k"}, nil, ""},
		{"key from environment", nil, map[string]string{"WANDB_EMULATOR_API_KEY": "k"}, ""},
		{"no key", nil, nil, "API key is required"},
		{"bad flag", []string{"-nope"}, nil, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			out, outW := io.Pipe()
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, tt.args, func(k string) string { return tt.env[k] }, outW, io.Discard)
				outW.Close()
			}()
			if tt.wantErr != "" {
				if err := <-done; err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on http://127.0.0.1:")
			if !ok || !strings.HasSuffix(base, "/scim") {
				t.Fatalf("first line %q", line)
			}
			root := "http://127.0.0.1:" + strings.TrimSuffix(base, "/scim")
			go func() { _, _ = io.Copy(io.Discard, out) }() // drain the rest of stdout

			req, _ := http.NewRequestWithContext(ctx, "POST", root+"/scim/Groups",
				strings.NewReader(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"ml","members":[],"storageBucket":{"name":"b","provider":"MINIO"}}`))
			req.Header.Set("Authorization", "Bearer k")
			req.Header.Set("Content-Type", "application/scim+json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("create: %d", res.StatusCode)
			}

			var groups []map[string]any
			getJSON(t, root+"/_emulator/groups", &groups)
			if len(groups) != 1 || groups[0]["displayName"] != "ml" || groups[0]["storageBucket"].(map[string]any)["provider"] != "MINIO" {
				t.Fatalf("groups %v", groups)
			}
			var counts map[string]int
			getJSON(t, root+"/_emulator/counts", &counts)
			if counts["POST /scim/Groups"] != 1 {
				t.Fatalf("counts %v", counts)
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("shutdown: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no shutdown")
			}
		})
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
