package okta

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/oktafake"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// memCursors is a CursorStore in memory.
type memCursors struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *memCursors) Cursor(_ context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name], nil
}

func (c *memCursors) SetCursor(_ context.Context, name, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[name] = value
	return nil
}

// poll runs one poll and returns the keys it enqueued.
func poll(t *testing.T, p *LogPoller) ([]queuekey.Key, int, error) {
	t.Helper()
	var keys []queuekey.Key
	n, err := p.Poll(t.Context(), func(k queuekey.Key) { keys = append(keys, k) })
	return keys, n, err
}

func group(id string) queuekey.Key { return queuekey.Group(SourceKey, id) }

// logRequests counts the fake's System Log requests.
func logRequests(f *oktafake.Server) []string {
	var out []string
	for _, r := range f.Requests() {
		if strings.HasPrefix(r, "/api/v1/logs?") {
			out = append(out, r)
		}
	}
	return out
}

// TestLogPoll: a first poll starts from now (the seeding events of newEnv, ten minutes old, are not
// read), later polls turn the events since the cursor into the keys the event hook would enqueue, each
// once, and a poll without new events enqueues nothing.
func TestLogPoll(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *oktafake.Server)
		want   []queuekey.Key
		events int
	}{
		{name: "nothing happened", change: func(*oktafake.Server) {}},
		{name: "memberships", change: func(f *oktafake.Server) {
			f.AddMember("00g004", "00u1")
			f.RemoveMember("00g001", "00u2")
			f.AddLogEvent("user.session.start", oktafake.Target{ID: "00u1", Type: "User"}) // filtered out by Okta
			f.AddMember("00g004", "00u2")
		}, want: []queuekey.Key{group("00g004"), group("00g001")}, events: 3},
		{name: "group lifecycle", change: func(f *oktafake.Server) {
			f.AddGroup(oktafake.Group{ID: "00g009", Name: "wandb-new"})
			f.AddGroup(oktafake.Group{ID: "00g001", Name: "wandb-ml-renamed"})
			f.RemoveGroup("00g003")
		}, want: []queuekey.Key{group("00g009"), group("00g001"), group("00g003")}, events: 3},
		{name: "a deactivation asks for everything", change: func(f *oktafake.Server) {
			f.AddMember("00g004", "00u1")
			f.AddUser(oktafake.User{ID: "00u2", Login: "bob", Email: "bob@example.com", Status: "DEPROVISIONED"})
		}, want: []queuekey.Key{queuekey.All}, events: 2},
		{name: "a membership event without a group target", change: func(f *oktafake.Server) {
			f.AddLogEvent("group.user_membership.add", oktafake.Target{ID: "00u1", Type: "User"})
		}, want: []queuekey.Key{queuekey.All}, events: 1},
	}
	for _, a := range []auth{ssws, oauth} {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t)
				e.fake.AddClient("0oalogs", &testKey().PublicKey, "", "okta.groups.read", "okta.logs.read")
				e.clock.Advance(10 * time.Minute)
				store := &memCursors{}
				p := e.source(t, a, func(o *Options) {
					if o.ClientID != "" {
						o.ClientID, o.KeyID = "0oalogs", ""
					}
				}).LogPoller(store)
				if keys, n, err := poll(t, p); err != nil || len(keys) != 0 || n != 0 {
					t.Fatalf("first poll: keys %v, %d events, err %v; want nothing from before now", keys, n, err)
				}
				first, _ := store.Cursor(t.Context(), CursorName)
				if first == "" {
					t.Fatal("the first poll stored no cursor")
				}
				tt.change(e.fake)
				keys, n, err := poll(t, p)
				if err != nil || !slices.Equal(keys, tt.want) || n != tt.events {
					t.Fatalf("keys %v, %d events, err %v; want %v, %d events", keys, n, err, tt.want, tt.events)
				}
				if keys, n, err := poll(t, p); err != nil || len(keys) != 0 || n != 0 {
					t.Errorf("poll after catching up: keys %v, %d events, err %v; want nothing", keys, n, err)
				}
				if next, _ := store.Cursor(t.Context(), CursorName); tt.events > 0 && next == first {
					t.Error("the cursor did not move past the events")
				}
			})
		}
	}
}

// TestLogPollRestart: a new poller (a restarted daemon) resumes from the stored cursor: it repeats no
// event, and reads what happened while it was down.
func TestLogPollRestart(t *testing.T) {
	e := newEnv(t)
	store := &memCursors{}
	if _, _, err := poll(t, e.source(t, ssws, nil).LogPoller(store)); err != nil {
		t.Fatal(err)
	}
	e.fake.AddMember("00g004", "00u1")
	if keys, _, err := poll(t, e.source(t, ssws, nil).LogPoller(store)); err != nil || !slices.Equal(keys, []queuekey.Key{group("00g004")}) {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	e.fake.RemoveMember("00g001", "00u1")
	p := e.source(t, ssws, nil).LogPoller(store)
	if keys, _, err := poll(t, p); err != nil || !slices.Equal(keys, []queuekey.Key{group("00g001")}) {
		t.Fatalf("after a restart: keys %v, err %v; want only the new event's group", keys, err)
	}
	reqs := logRequests(e.fake)
	if last := reqs[len(reqs)-1]; !strings.Contains(last, "after=") || strings.Contains(last, "since=") {
		t.Errorf("the restarted poller asked %s, want the stored next link", last)
	}
}

// TestLogPollPages: events over several pages are all read, with one request per page and one for the
// empty page that ends the poll.
func TestLogPollPages(t *testing.T) {
	e := newEnv(t)
	e.fake.SetPageSize(2)
	store := &memCursors{}
	p := e.source(t, ssws, nil).LogPoller(store)
	e.clock.Advance(10 * time.Minute)
	if _, _, err := poll(t, p); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"00g002", "00g003", "00g004", "00g002"} { // 00u1 is in none of them
		e.fake.AddMember(g, "00u1")
		e.fake.RemoveMember(g, "00u1")
	}
	before := len(logRequests(e.fake))
	keys, n, err := poll(t, p)
	if err != nil || n != 8 || !slices.Equal(keys, []queuekey.Key{group("00g002"), group("00g003"), group("00g004")}) {
		t.Fatalf("keys %v, %d events, err %v", keys, n, err)
	}
	// 8 events: 4 full pages, and the empty one that ends the poll.
	if got := len(logRequests(e.fake)) - before; got != 5 {
		t.Errorf("%d requests, want 5", got)
	}
}

// TestLogPollErrors: what the catch-up says when it cannot run, and that the group reads go on.
func TestLogPollErrors(t *testing.T) {
	tests := []struct {
		name  string
		auth  auth
		setup func(e *env)
		want  []string
	}{
		{name: "okta.logs.read not granted", auth: oauth, setup: func(e *env) {
			e.fake.AddClient(clientID, &testKey().PublicKey, keyID, "okta.groups.read")
		}, want: []string{"catch-up is off", "invalid_scope", "requests only the scope okta.logs.read: grant it"}},
		{name: "service app without an admin role", auth: oauth, setup: func(e *env) {
			e.fake.AddClient(clientID, &testKey().PublicKey, keyID, "okta.groups.read", "okta.logs.read")
			e.fake.SetAdminRole(clientID, false)
		}, want: []string{"catch-up is off", "HTTP 403", "an admin role that can read it"}},
		{name: "next link to another host", auth: ssws, setup: func(e *env) {
			e.fake.SetLinkBase("https://collector.example.net")
		}, want: []string{`refusing okta's next link to "https://collector.example.net"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(e)
			store := &memCursors{}
			s := e.source(t, tt.auth, nil)
			keys, _, err := poll(t, s.LogPoller(store))
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
			if c, _ := store.Cursor(t.Context(), CursorName); c != "" || len(keys) != 0 {
				t.Errorf("a failed poll stored cursor %q, enqueued %v", c, keys)
			}
			if tt.name == "okta.logs.read not granted" {
				if _, err := s.Groups(t.Context()); err != nil {
					t.Errorf("groups without okta.logs.read: %v", err)
				}
			}
		})
	}
}

// TestLogPollUnusableCursor: a stored cursor that cannot be followed (another org, another filter, a
// position Okta refuses) is replaced by a poll from now, and everything is reconciled for what it
// would have said.
func TestLogPollUnusableCursor(t *testing.T) {
	filter := strings.ReplaceAll(eventFilter(), " ", "+")
	tests := map[string]string{ // stored cursors; ORG stands for the fake org's URL
		"another org":      "https://other.okta.com/api/v1/logs?after=x",
		"another filter":   `ORG/api/v1/logs?filter=eventType+eq+%22user.session.start%22&after=x`,
		"a bounded query":  "ORG/api/v1/logs?since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z",
		"refused by Okta":  "ORG/api/v1/logs?sortOrder=ASCENDING&after=unknown&filter=" + filter,
		"not the logs API": "ORG/api/v1/groups",
	}
	for name, stored := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			stored = strings.Replace(stored, "ORG", e.fake.URL, 1)
			store := &memCursors{m: map[string]string{CursorName: stored}}
			keys, _, err := poll(t, e.source(t, ssws, nil).LogPoller(store))
			if err != nil || !slices.Equal(keys, []queuekey.Key{queuekey.All}) {
				t.Fatalf("keys %v, err %v; want everything", keys, err)
			}
			if c, _ := store.Cursor(t.Context(), CursorName); c == stored || !strings.HasPrefix(c, e.fake.URL+"/api/v1/logs?") {
				t.Errorf("cursor %q, want a fresh one", c)
			}
			asked := slices.ContainsFunc(logRequests(e.fake), func(r string) bool { return strings.Contains(r, "after=unknown") })
			if asked != (name == "refused by Okta") {
				t.Errorf("asked Okta for the stored position: %v", asked)
			}
		})
	}
}

func TestEventKey(t *testing.T) {
	ug := LogTarget{ID: "00g1", Type: "UserGroup"}
	user := LogTarget{ID: "00u1", Type: "User"}
	tests := []struct {
		event LogEvent
		want  queuekey.Key
		ok    bool
	}{
		{LogEvent{EventType: "group.user_membership.add", Target: []LogTarget{user, ug}}, group("00g1"), true},
		{LogEvent{EventType: "group.user_membership.remove", Target: []LogTarget{ug, user}}, group("00g1"), true},
		{LogEvent{EventType: "group.lifecycle.delete", Target: []LogTarget{ug}}, group("00g1"), true},
		{LogEvent{EventType: "group.profile.update", Target: []LogTarget{{ID: "00g/../x", Type: "UserGroup"}}}, queuekey.All, true},
		{LogEvent{EventType: "group.lifecycle.create"}, queuekey.All, true},
		{LogEvent{EventType: "user.lifecycle.deactivate", Target: []LogTarget{user}}, queuekey.All, true},
		{LogEvent{EventType: "user.lifecycle.reactivate", Target: []LogTarget{user}}, queuekey.All, true},
		{LogEvent{EventType: "user.lifecycle.suspend", Target: []LogTarget{user}}, "", false},
		{LogEvent{EventType: "user.session.start", Target: []LogTarget{ug}}, "", false},
	}
	for _, tt := range tests {
		if got, ok := EventKey(tt.event); got != tt.want || ok != tt.ok {
			t.Errorf("EventKey(%+v) = %q, %v; want %q, %v", tt.event, got, ok, tt.want, tt.ok)
		}
	}
	for _, typ := range EventTypes() {
		if _, ok := EventKey(LogEvent{EventType: typ}); !ok || !strings.Contains(eventFilter(), `eventType eq "`+typ+`"`) {
			t.Errorf("event type %s: mapped %v, in the filter %v", typ, ok, strings.Contains(eventFilter(), typ))
		}
	}
}

func TestLogPollCursorStoreFails(t *testing.T) {
	e := newEnv(t)
	_, _, err := poll(t, e.source(t, ssws, nil).LogPoller(failingStore{}))
	if err == nil || !strings.Contains(err.Error(), "reading the cursor: disk gone") {
		t.Errorf("err = %v", err)
	}
}

type failingStore struct{}

func (failingStore) Cursor(context.Context, string) (string, error) {
	return "", errors.New("disk gone")
}
func (failingStore) SetCursor(context.Context, string, string) error { return errors.New("disk gone") }
