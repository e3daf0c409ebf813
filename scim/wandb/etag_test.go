package wandb

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
)

// TestMembershipPatchIfMatch pins where the If-Match of a membership PATCH comes from: the ETag header
// of a single-team answer, else meta.version, else nothing (a server without ETags gets unconditional
// PATCHes, and is read once, not before every PATCH).
func TestMembershipPatchIfMatch(t *testing.T) {
	tests := []struct {
		name string
		// header and version are what the fake server answers for the team: the ETag header of
		// single-team answers (GET, PATCH) and meta.version (everywhere, lists included).
		header, version string
		listFirst       bool     // ListGroups before the PATCHes
		want            []string // "METHOD If-Match" of each request after the listing
	}{
		{"header ETag wins over meta.version", `W/"h1"`, `W/"v1"`, false,
			[]string{`GET `, `PATCH W/"h1"`, `PATCH W/"h2"`}},
		{"meta.version when no header", "", `W/"v1"`, false,
			[]string{`GET `, `PATCH W/"v1"`, `PATCH W/"v2"`}},
		{"listed team: its meta.version, no read", "", `W/"v1"`, true,
			[]string{`PATCH W/"v1"`, `PATCH W/"v2"`}},
		{"no ETags at all: one read, then unconditional", "", "", false,
			[]string{`GET `, `PATCH `, `PATCH `}},
		{"listed without version: read for the ETag", `W/"h1"`, "", true,
			[]string{`GET `, `PATCH W/"h1"`, `PATCH W/"h2"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				got     []string
				version = 1
			)
			team := func() map[string]any {
				g := map[string]any{"id": "G1", "displayName": "ml", "members": []map[string]string{{"Value": "U0"}}}
				if tt.version != "" {
					g["meta"] = map[string]any{"version": fmt.Sprintf(`W/"v%d"`, version)}
				}
				return g
			}
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if r.URL.Path == "/scim/Groups" {
					writeSCIM(w, 200, map[string]any{"totalResults": 1, "Resources": []any{team()}})
					return
				}
				got = append(got, r.Method+" "+r.Header.Get("If-Match"))
				if r.Method == http.MethodPatch {
					version++
				}
				if tt.header != "" {
					w.Header().Set("ETag", fmt.Sprintf(`W/"h%d"`, version))
				}
				writeSCIM(w, 200, team())
			}, nil)
			ctx := t.Context()
			if tt.listFirst {
				if _, err := c.ListGroups(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.AddMembers(ctx, "G1", []string{"U1"}); err != nil {
				t.Fatal(err)
			}
			if err := c.RemoveMember(ctx, "G1", "U0"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("requests %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMembershipPatch412 checks the 412 path without the emulator: the refused PATCH is followed by a
// read and a PATCH with the new ETag; other errors are not retried; a team gone on re-read is an error.
func TestMembershipPatch412(t *testing.T) {
	tests := []struct {
		name      string
		answers   []int // status of each PATCH in turn (then 200)
		readGone  bool  // the re-read answers 404
		wantErr   error
		wantCalls []string
	}{
		{"412 then ok", []int{412}, false, nil, []string{`GET `, `PATCH W/"1"`, `GET `, `PATCH W/"2"`}},
		{"400 is not retried", []int{400}, false, ErrBadRequest, []string{`GET `, `PATCH W/"1"`}},
		{"412, team gone", []int{412}, true, ErrNotFound, []string{`GET `, `PATCH W/"1"`, `GET `}},
		{"412 four times", []int{412, 412, 412, 412}, false, ErrPreconditionFailed,
			[]string{`GET `, `PATCH W/"1"`, `GET `, `PATCH W/"2"`, `GET `, `PATCH W/"3"`, `GET `, `PATCH W/"4"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				calls   []string
				patches int
				reads   int
			)
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, r.Method+" "+r.Header.Get("If-Match"))
				if r.Method == http.MethodGet {
					reads++
					if tt.readGone && reads > 1 {
						scimError(w, 404, "gone")
						return
					}
					w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, reads))
					writeSCIM(w, 200, map[string]any{"id": "G1", "displayName": "ml"})
					return
				}
				patches++
				if patches <= len(tt.answers) {
					scimError(w, tt.answers[patches-1], "refused")
					return
				}
				writeSCIM(w, 200, map[string]any{"id": "G1", "displayName": "ml", "members": []map[string]string{{"value": "U1"}}})
			}, nil)
			err := c.AddMembers(t.Context(), "G1", []string{"U1"})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if !reflect.DeepEqual(calls, tt.wantCalls) {
				t.Fatalf("requests %q, want %q", calls, tt.wantCalls)
			}
		})
	}
}

func TestGroupETagDecoding(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"id":"a","meta":{"version":"W/\"3\""}}`, `W/"3"`},
		{`{"id":"a","meta":{"resourceType":"Group"}}`, ""},
		{`{"id":"a","meta":"odd"}`, ""},
		{`{"id":"a","meta":null}`, ""},
		{`{"id":"a"}`, ""},
	}
	for _, tt := range tests {
		var g Group
		if err := json.Unmarshal([]byte(tt.body), &g); err != nil || g.ID != "a" || g.ETag != tt.want {
			t.Errorf("%s: %+v %v, want ETag %q", tt.body, g, err, tt.want)
		}
	}
}
