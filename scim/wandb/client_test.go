package wandb

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "s3cr3t-api-key-do-not-leak"

// sleepRecorder replaces Client.sleep so tests neither wait nor race on timing.
type sleepRecorder struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.sleeps = append(r.sleeps, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *sleepRecorder) got() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.sleeps...)
}

// newTestServer serves h on 127.0.0.1 and returns a client for it whose sleeps are recorded.
func newTestServer(t *testing.T, h http.HandlerFunc, mod func(*Options)) (*Client, *sleepRecorder) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	o := Options{BaseURL: srv.URL + "/scim", Auth: AuthBearer, APIKey: testKey, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Second}
	if mod != nil {
		mod(&o)
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	rec := &sleepRecorder{}
	c.sleep = rec.sleep
	return c, rec
}

func writeSCIM(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func scimError(w http.ResponseWriter, status int, detail string) {
	writeSCIM(w, status, map[string]any{"schemas": []string{SchemaError}, "status": strconv.Itoa(status), "detail": detail})
}

func TestNewClientRejectsBadOptions(t *testing.T) {
	ok := Options{BaseURL: "https://api.wandb.ai/scim/v2", Auth: AuthBearer, APIKey: "k"}
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"relative URL", func(o *Options) { o.BaseURL = "/scim" }, "absolute"},
		{"ftp URL", func(o *Options) { o.BaseURL = "ftp://h/scim" }, "absolute"},
		{"credentials in URL", func(o *Options) { o.BaseURL = "https://u:" + testKey + "@h/scim" }, "credentials"},
		{"query in URL", func(o *Options) { o.BaseURL = "https://h/scim?x=1" }, "query"},
		{"no key", func(o *Options) { o.APIKey = "" }, "API key is empty"},
		{"unknown mode", func(o *Options) { o.Auth = "token" }, "unknown auth mode"},
		{"basic-user without user", func(o *Options) { o.Auth = AuthBasicUser }, "needs a username"},
		{"backoff inverted", func(o *Options) { o.MinBackoff, o.MaxBackoff = time.Minute, time.Second }, "min backoff"},
		{"unknown deployment", func(o *Options) { o.Deployment = "saas" }, "unknown deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mod(&o)
			_, err := NewClient(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient error = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatalf("error leaks the API key: %v", err)
			}
		})
	}
}

func TestAuthAndHeaders(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		mode AuthMode
		user string
		want string
	}{
		{AuthBearer, "", "Bearer " + testKey},
		{AuthBasicUser, "admin", basic("admin:" + testKey)},
		{AuthBasicServiceAccount, "", basic(":" + testKey)},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			var got http.Header
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Clone()
				writeSCIM(w, 200, map[string]any{"id": "R3JvdXA6MQ==", "displayName": "a"})
			}, func(o *Options) { o.Auth, o.Username, o.UserAgent = tt.mode, tt.user, "test-agent/1" })
			if _, err := c.GetGroup(t.Context(), "R3JvdXA6MQ=="); err != nil {
				t.Fatal(err)
			}
			for h, want := range map[string]string{
				"Authorization": tt.want,
				"Content-Type":  "application/scim+json",
				"Accept":        "application/scim+json, application/json",
				"User-Agent":    "test-agent/1",
			} {
				if got.Get(h) != want {
					t.Errorf("%s = %q, want %q", h, got.Get(h), want)
				}
			}
		})
	}
}

// pagingServer serves n groups. cap limits a page below the count asked for; ignorePaging always
// serves from the start; noTotal leaves totalResults out.
func pagingServer(n, cap int, ignorePaging, noTotal bool, requests *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
		count, _ := strconv.Atoi(r.URL.Query().Get("count"))
		if ignorePaging || start < 1 {
			start = 1
		}
		if cap > 0 && count > cap {
			count = cap
		}
		res := []map[string]any{}
		for i := start; i <= n && len(res) < count; i++ {
			res = append(res, map[string]any{"id": fmt.Sprintf("g%d", i), "displayName": fmt.Sprintf("team-%d", i), "members": nil})
		}
		body := map[string]any{"schemas": []string{SchemaListResponse}, "itemsPerPage": len(res), "startIndex": start, "Resources": res}
		if !noTotal {
			body["totalResults"] = n
		}
		writeSCIM(w, 200, body)
	}
}

func TestListGroupsPaging(t *testing.T) {
	tests := []struct {
		name         string
		n, cap       int
		ignorePaging bool
		noTotal      bool
		wantGroups   int // -1: a *PartialListError
		wantRequests int32
	}{
		{"empty", 0, 0, false, false, 0, 1},
		{"one short page", 3, 0, false, false, 3, 1},
		{"5000 teams in one request", 5000, 0, false, false, 5000, 1},
		{"three pages", 2500, 1000, false, false, 2500, 3},
		{"server caps pages, totalResults drives", 250, 100, false, false, 250, 3},
		{"no totalResults, an empty page ends", 1500, 1000, false, true, 1500, 3},
		{"no totalResults, full last page then empty page", 2000, 1000, false, true, 2000, 3},
		{"server ignores paging", 2500, 1000, true, false, -1, 2},
		{"server ignores paging, no totalResults", 2500, 1000, true, true, -1, 2},
		{"server ignores paging, all on one page", 800, 1000, true, false, 800, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			c, _ := newTestServer(t, pagingServer(tt.n, tt.cap, tt.ignorePaging, tt.noTotal, &reqs), nil)
			groups, err := c.ListGroups(t.Context())
			if tt.wantGroups < 0 {
				var pe *PartialListError
				if !errors.As(err, &pe) || groups != nil || reqs.Load() != tt.wantRequests {
					t.Fatalf("got %d groups, error %v after %d requests; want a PartialListError after %d", len(groups), err, reqs.Load(), tt.wantRequests)
				}
				if !strings.Contains(err.Error(), "1000 of") || !strings.Contains(err.Error(), "repeated 1000 team(s)") {
					t.Errorf("message %q does not say how much was listed and why it stopped", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(groups) != tt.wantGroups || reqs.Load() != tt.wantRequests {
				t.Fatalf("got %d groups in %d requests, want %d in %d", len(groups), reqs.Load(), tt.wantGroups, tt.wantRequests)
			}
			for i, g := range groups {
				if g.ID != fmt.Sprintf("g%d", i+1) {
					t.Fatalf("group %d has id %q: order or duplicates wrong", i, g.ID)
				}
			}
		})
	}
}

func TestFindGroup(t *testing.T) {
	tests := []struct {
		name       string
		find       string
		wantFilter string
		serve      []map[string]any
		wantID     string // "" means nil
	}{
		{"found", "ml-team", `displayName eq "ml-team"`, []map[string]any{{"id": "a", "displayName": "ml-team"}}, "a"},
		{"none", "ml-team", `displayName eq "ml-team"`, []map[string]any{}, ""},
		{"quotes and backslashes escaped", `we"ird\name`, `displayName eq "we\"ird\\name"`, []map[string]any{{"id": "q", "displayName": `we"ird\name`}}, "q"},
		{"server ignores filter: exact match picked", "b", `displayName eq "b"`, []map[string]any{{"id": "1", "displayName": "a"}, {"id": "2", "displayName": "b"}}, "2"},
		{"server ignores filter: no match", "c", `displayName eq "c"`, []map[string]any{{"id": "1", "displayName": "a"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotFilter, gotRawQuery string
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				gotFilter, gotRawQuery = r.URL.Query().Get("filter"), r.URL.RawQuery
				writeSCIM(w, 200, map[string]any{"schemas": []string{SchemaListResponse}, "totalResults": len(tt.serve), "Resources": tt.serve})
			}, nil)
			g, err := c.FindGroup(t.Context(), tt.find)
			if err != nil {
				t.Fatal(err)
			}
			if gotFilter != tt.wantFilter {
				t.Errorf("filter = %q, want %q", gotFilter, tt.wantFilter)
			}
			if strings.ContainsAny(gotRawQuery, ` "+`) || !strings.Contains(gotRawQuery, "displayName%20eq%20") {
				t.Errorf("query %q is not URL-encoded as W&B shows it (spaces as %%20)", gotRawQuery)
			}
			switch {
			case tt.wantID == "" && g != nil:
				t.Fatalf("got %+v, want nil", g)
			case tt.wantID != "" && (g == nil || g.ID != tt.wantID):
				t.Fatalf("got %+v, want id %q", g, tt.wantID)
			}
		})
	}
}

func TestGetGroup(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		status   int
		wantPath string
		wantNil  bool
		wantErr  error
	}{
		{"found", "R3JvdXA6MQ==", 200, "/scim/Groups/R3JvdXA6MQ==", false, nil},
		{"slash in id is escaped", "a/b+c", 200, "/scim/Groups/a%2Fb+c", false, nil},
		{"404 is nil, nil", "gone", 404, "/scim/Groups/gone", true, nil},
		{"403 is an error", "x", 403, "/scim/Groups/x", true, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath string
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				gotPath = r.URL.EscapedPath()
				if tt.status != 200 {
					scimError(w, tt.status, "nope")
					return
				}
				writeSCIM(w, 200, map[string]any{"id": tt.id, "displayName": "t"})
			}, nil)
			g, err := c.GetGroup(t.Context(), tt.id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if (g == nil) != tt.wantNil || (g != nil && g.ID != tt.id) {
				t.Fatalf("group = %+v, want nil=%v", g, tt.wantNil)
			}
			if gotPath != tt.wantPath {
				t.Fatalf("path = %q, want %q", gotPath, tt.wantPath)
			}
		})
	}
}

func TestCreateGroup(t *testing.T) {
	var body map[string]any
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/scim/Groups" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		writeSCIM(w, 201, map[string]any{"id": "R3JvdXA6Nw==", "displayName": body["displayName"], "members": nil})
	}, nil)
	g, err := c.CreateGroup(t.Context(), NewGroup{DisplayName: "ml", StorageBucket: &StorageBucket{Name: "b", Provider: "AWS", KMSKeyID: "arn:k"}})
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != "R3JvdXA6Nw==" || g.DisplayName != "ml" || g.Members != nil {
		t.Fatalf("got %+v", g)
	}
	want := `{"displayName":"ml","members":[],"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"storageBucket":{"kmsKeyId":"arn:k","name":"b","provider":"AWS"}}`
	if got, _ := json.Marshal(body); string(got) != want {
		t.Fatalf("request body\n got %s\nwant %s", got, want)
	}
}

func TestCreateGroupStatuses(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int // one per request; the last repeats
		wantErr      error
		wantAttempts int
		wantRequests int32
		mayHave      bool // EarlierAttemptMayHaveApplied
	}{
		{"409 is ErrConflict", []int{409}, ErrConflict, 1, 1, false},
		{"lost response then 409: retried, ErrConflict", []int{500, 409}, ErrConflict, 2, 2, true},
		{"throttled then 409: nothing of ours was applied", []int{429, 409}, ErrConflict, 2, 2, false},
		{"throttled, 503, then 409", []int{429, 503, 409}, ErrConflict, 3, 3, true},
		{"400 is not retried", []int{400}, ErrBadRequest, 1, 1, false},
		{"429 then 201", []int{429, 201}, nil, 0, 2, false},
		{"200 is not 201", []int{200}, nil, 0, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				n := int(reqs.Add(1))
				st := tt.statuses[min(n, len(tt.statuses))-1]
				if st >= 300 {
					scimError(w, st, "team already exists")
					return
				}
				writeSCIM(w, st, map[string]any{"id": "x", "displayName": "t"})
			}, nil)
			_, err := c.CreateGroup(t.Context(), NewGroup{DisplayName: "t"})
			if reqs.Load() != tt.wantRequests {
				t.Fatalf("%d requests, want %d", reqs.Load(), tt.wantRequests)
			}
			if tt.name == "200 is not 201" {
				if err == nil || !strings.Contains(err.Error(), "want 201") {
					t.Fatalf("err = %v, want a complaint about the status", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var ae *APIError
			if tt.wantErr != nil && (!errors.As(err, &ae) || ae.Attempts != tt.wantAttempts || ae.Method != "POST" || ae.Path != "/Groups" || ae.EarlierAttemptMayHaveApplied != tt.mayHave) {
				t.Fatalf("APIError = %+v, want %d attempts on POST /Groups, EarlierAttemptMayHaveApplied %v", ae, tt.wantAttempts, tt.mayHave)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name         string
		maxRetries   int
		statuses     []int
		retryAfter   string
		wantErr      error
		wantRequests int32
		checkSleeps  func([]time.Duration) bool
	}{
		{"429 with Retry-After seconds", 0, []int{429, 429, 200}, "2", nil, 3,
			func(s []time.Duration) bool { return len(s) == 2 && s[0] == 2*time.Second && s[1] == 2*time.Second }},
		{"503 with Retry-After date", 0, []int{503, 200}, date, nil, 2,
			func(s []time.Duration) bool { return len(s) == 1 && s[0] > time.Second && s[0] <= 3*time.Second }},
		{"Retry-After beyond MaxBackoff: no wait, surfaced", 0, []int{429}, "60", ErrRateLimited, 1,
			func(s []time.Duration) bool { return len(s) == 0 }},
		{"502 without Retry-After: jittered backoff within bounds", 0, []int{502, 502, 502, 200}, "", nil, 4,
			func(s []time.Duration) bool {
				return len(s) == 3 && s[0] <= time.Millisecond && s[1] <= 2*time.Millisecond && s[2] <= 4*time.Millisecond
			}},
		{"retries exhausted", 2, []int{500}, "", ErrServer, 3, func(s []time.Duration) bool { return len(s) == 2 }},
		{"negative MaxRetries: never retry", -1, []int{500}, "", ErrServer, 1, func(s []time.Duration) bool { return len(s) == 0 }},
		{"400 not retried", 0, []int{400}, "1", ErrBadRequest, 1, func(s []time.Duration) bool { return len(s) == 0 }},
		{"401 not retried", 0, []int{401}, "", ErrUnauthorized, 1, func(s []time.Duration) bool { return len(s) == 0 }},
		{"404 on list not retried", 0, []int{404}, "", ErrNotFound, 1, func(s []time.Duration) bool { return len(s) == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			c, rec := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				n := int(reqs.Add(1))
				st := tt.statuses[min(n, len(tt.statuses))-1]
				if st != 200 {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					scimError(w, st, "try later")
					return
				}
				writeSCIM(w, 200, map[string]any{"totalResults": 0, "Resources": []any{}})
			}, func(o *Options) { o.MaxRetries = tt.maxRetries })
			_, err := c.ListGroups(t.Context())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if reqs.Load() != tt.wantRequests {
				t.Fatalf("%d requests, want %d", reqs.Load(), tt.wantRequests)
			}
			if s := rec.got(); !tt.checkSleeps(s) {
				t.Fatalf("unexpected sleeps %v", s)
			}
		})
	}
}

func TestRetryAfterSurfacedOnAPIError(t *testing.T) {
	c, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		scimError(w, 429, "slow down")
	}, nil)
	_, err := c.GetGroup(t.Context(), "x")
	var ae *APIError
	if !errors.As(err, &ae) || ae.RetryAfter != 2*time.Minute || ae.StatusCode != 429 {
		t.Fatalf("err = %v, want 429 APIError with RetryAfter 2m", err)
	}
}

func TestTransportFailuresRetried(t *testing.T) {
	tests := []struct {
		name string
		fail func(w http.ResponseWriter, r *http.Request)
	}{
		{"per-attempt timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
		{"connection dropped", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
		{"body cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, `{"id":`)
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			c, rec := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				if reqs.Add(1) == 1 {
					tt.fail(w, r)
					return
				}
				writeSCIM(w, 200, map[string]any{"id": "x", "displayName": "t"})
			}, func(o *Options) { o.Timeout = 100 * time.Millisecond })
			g, err := c.GetGroup(t.Context(), "x")
			if err != nil || g == nil {
				t.Fatalf("got %v, %v; want the group after a retry", g, err)
			}
			if reqs.Load() != 2 || len(rec.got()) != 1 {
				t.Fatalf("%d requests, %d sleeps; want 2 and 1", reqs.Load(), len(rec.got()))
			}
		})
	}
}

func TestContextCancellationStopsRetries(t *testing.T) {
	var reqs atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		scimError(w, 503, "down")
	}))
	defer srv.Close()
	// Real sleeps here: cancellation must interrupt the wait between attempts.
	c, err := NewClient(Options{BaseURL: srv.URL, Auth: AuthBearer, APIKey: testKey, MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second, MaxRetries: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.ListGroups(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrServer) {
		t.Fatalf("err = %v, want both the last 503 and context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second || reqs.Load() > 2 {
		t.Fatalf("took %v and %d requests after cancel", d, reqs.Load())
	}
}

func TestAPIKeyNeverInErrors(t *testing.T) {
	echo := []struct {
		name string
		h    http.HandlerFunc
	}{
		{"SCIM detail echoes the header", func(w http.ResponseWriter, r *http.Request) {
			scimError(w, 401, "bad credentials: "+r.Header.Get("Authorization"))
		}},
		{"plain body echoes the header", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(403)
			_, _ = io.WriteString(w, strings.Repeat("x", maxDetail-10)+r.Header.Get("Authorization"))
		}},
		{"scimType echoes the key", func(w http.ResponseWriter, r *http.Request) {
			writeSCIM(w, 400, map[string]any{"status": 400, "scimType": testKey, "detail": "d"})
		}},
	}
	for _, mode := range []AuthMode{AuthBearer, AuthBasicUser, AuthBasicServiceAccount} {
		for _, tt := range echo {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				c, _ := newTestServer(t, tt.h, func(o *Options) { o.Auth, o.Username = mode, "admin" })
				_, err := c.CreateGroup(t.Context(), NewGroup{DisplayName: "t"})
				if err == nil {
					t.Fatal("want an error")
				}
				msg := err.Error()
				for _, secret := range []string{testKey, testKey[:12], base64.StdEncoding.EncodeToString([]byte("admin:" + testKey))[:16], base64.StdEncoding.EncodeToString([]byte(":" + testKey))[:16]} {
					if strings.Contains(msg, secret) {
						t.Fatalf("error leaks a secret: %s", msg)
					}
				}
			})
		}
	}
}

func TestDecodeQuirks(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Group
	}{
		{"capitalised member keys", `{"id":"g","displayName":"t","members":[{"Value":"u1","Ref":"","Type":"","Display":"dev-user1"}]}`,
			Group{ID: "g", DisplayName: "t", Members: []Member{{Value: "u1", Display: "dev-user1"}}}},
		{"lowercase member keys", `{"id":"g","displayName":"t","members":[{"value":"u1","display":"d"}]}`,
			Group{ID: "g", DisplayName: "t", Members: []Member{{Value: "u1", Display: "d"}}}},
		{"members null", `{"id":"g","displayName":"t","members":null}`, Group{ID: "g", DisplayName: "t"}},
		{"members absent, extra fields", `{"schemas":["x"],"id":"g","displayName":"t","meta":{"resourceType":"Group"},"storageBucket":{}}`, Group{ID: "g", DisplayName: "t"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeGroup([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := decodeGroup([]byte(`{"displayName":"t"}`)); err == nil {
		t.Error("a group without id must not decode")
	}
}

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantType   string
		wantDetail string
	}{
		{"status as string", `{"schemas":["` + SchemaError + `"],"status":"409","detail":"team already exists"}`, "", "team already exists"},
		{"status as number", `{"status":409,"scimType":"uniqueness","detail":"dup"}`, "uniqueness", "dup"},
		{"status only", `{"status":"409"}`, "", ""},
		{"not SCIM: raw text kept", `<html>bad gateway</html>`, "", "<html>bad gateway</html>"},
		{"JSON but not SCIM: raw text kept", `{"message":"nope"}`, "", `{"message":"nope"}`},
		{"long raw body truncated", strings.Repeat("é", 400), "", strings.Repeat("é", maxDetail/2) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAPIError("POST", "/Groups", 409, []byte(tt.body), []string{testKey})
			if e.SCIMType != tt.wantType || e.Detail != tt.wantDetail {
				t.Fatalf("got type %q detail %q, want %q %q", e.SCIMType, e.Detail, tt.wantType, tt.wantDetail)
			}
			if !errors.Is(e, ErrConflict) || errors.Is(e, ErrNotFound) {
				t.Fatal("409 must be ErrConflict and only that")
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	c, err := NewClient(Options{BaseURL: "https://api.wandb.test/scim", Auth: AuthBearer, APIKey: testKey, MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 80; attempt++ {
		ceil := min(30*time.Second, 500*time.Millisecond<<min(attempt-1, 10))
		for range 50 {
			if d := c.policy.Backoff(attempt); d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", attempt, d, ceil)
			}
		}
	}
}

func TestQuoteFilterValue(t *testing.T) {
	tests := map[string]string{
		"plain":     `"plain"`,
		`a"b`:       `"a\"b"`,
		`a\b`:       `"a\\b"`,
		"<&>":       `"<&>"`,
		"tab\there": `"tab\there"`,
	}
	for in, want := range tests {
		if got := quoteFilterValue(in); got != want {
			t.Errorf("quoteFilterValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzDecodeGroup(f *testing.F) {
	for _, s := range []string{
		`{"id":"g","displayName":"t","members":[{"Value":"u","Display":"d"}]}`,
		`{"id":"g","displayName":"t","members":null}`,
		`{"id":"g","members":[{"value":"u"},{"VALUE":"v"}]}`,
		`null`, `[]`, `{"id":1}`, `{"id":"g","members":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := decodeGroup(data)
		if err != nil {
			return
		}
		if g.ID == "" {
			t.Fatal("decoded a group without id")
		}
		// What we decode must survive a round trip unchanged.
		again, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		g2, err := decodeGroup(again)
		if err != nil || fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", g2) {
			t.Fatalf("round trip changed %#v into %#v (%v)", g, g2, err)
		}
	})
}

func FuzzErrorBody(f *testing.F) {
	for _, s := range []string{`{"status":"400","detail":"x"}`, `{"status":400}`, `<html>`, `{"detail":"` + testKey + `"}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := newAPIError("GET", "/Groups", 500, data, []string{testKey})
		if strings.Contains(e.Error(), testKey) {
			t.Fatalf("secret in %q", e.Error())
		}
		if !errors.Is(e, ErrServer) {
			t.Fatal("500 must be ErrServer")
		}
	})
}
