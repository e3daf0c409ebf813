package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/byob-agent/byob-agent/state"
)

// seedUsers stores n users named user-<i> straight in the store, from a few goroutines (concurrent
// writes share transactions), and returns their ids in order.
func seedUsers(tb testing.TB, db *state.DB, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		fail atomic.Value
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				name := fmt.Sprintf("user-%d", i)
				u, err := db.CreateSCIMUser(context.Background(), state.SCIMUser{UserName: name, Active: true, Email: name + "@example.com",
					Attributes: map[string]any{"userName": name, "emails": []any{map[string]any{"value": name + "@example.com", "primary": true}}}})
				if err != nil {
					fail.Store(err)
					return
				}
				ids[i] = u.ID
			}
		}()
	}
	wg.Wait()
	if err, _ := fail.Load().(error); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// serve sends one request straight to the handler and fails unless it answers want.
func (e *env) serve(tb testing.TB, method, target, body string, want int) {
	req := httptest.NewRequest(method, testBase+target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/scim+json")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != want {
		tb.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body)
	}
}

// BenchmarkSCIMFilterEq is the lookup an IdP makes before creating each user, with 10,000 users
// stored (issue 15's target: p99 <= 5 ms).
func BenchmarkSCIMFilterEq(b *testing.B) {
	e := newEnv(b)
	const n = 10000
	seedUsers(b, e.db, n)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		e.serve(b, "GET", "/Users"+q(fmt.Sprintf(`userName eq "USER-%d"`, i%n)), "", http.StatusOK)
		i += 7919
	}
}

// BenchmarkSCIMPatchMembers is an IdP adding and removing one member of a group of 1,000 members,
// from 16 concurrent clients, each on its own group (issue 15's target: >= 1,000 req/s).
func BenchmarkSCIMPatchMembers(b *testing.B) {
	e := newEnv(b)
	const clients, size = 16, 1000
	ids := seedUsers(b, e.db, size+clients)
	groups := make([]string, clients)
	for c := range clients {
		g, err := e.db.CreateSCIMGroup(context.Background(), state.SCIMGroup{DisplayName: fmt.Sprintf("team-%d", c), MemberIDs: ids[:size]})
		if err != nil {
			b.Fatal(err)
		}
		groups[c] = g.ID
	}
	var client atomic.Int64
	b.SetParallelism(clients / 2) // GOMAXPROCS is 2 on the reference machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := int(client.Add(1)-1) % clients
		add := true
		for pb.Next() {
			kind := "add"
			if !add {
				kind = "remove"
			}
			body := fmt.Sprintf(`{"schemas":[%q],"Operations":[{"op":%q,"path":"members","value":[{"value":%q}]}]}`, patchURN, kind, ids[size+c])
			e.serve(b, "PATCH", "/Groups/"+groups[c]+"?excludedAttributes=members", body, http.StatusOK)
			add = !add
		}
	})
}
