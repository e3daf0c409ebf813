package entra

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/graphfake"
)

// cursors is an in-memory CursorStore.
type cursors struct {
	mu   sync.Mutex
	m    map[string]string
	sets int
	err  error
}

func (c *cursors) Cursor(_ context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name], c.err
}

func (c *cursors) SetCursor(_ context.Context, name, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[name] = value
	c.sets++
	return nil
}

func (c *cursors) link() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[DeltaCursor+tenant]
}

// deltaRequests counts the requests to /groups/delta, and those of them that continue a round.
func (e *env) deltaRequests() (all, next int) {
	for _, r := range e.fake.Requests() {
		if strings.HasSuffix(r.Path, "/groups/delta") {
			all++
			if r.Query.Has("$skiptoken") {
				next++
			}
		}
	}
	return all, next
}

// started returns a catch-up with a delta link and a source that has read its groups, as the
// daemon's first catch-up and full read leave them.
func (e *env) started(t *testing.T, edit func(*Options)) (*Source, *Delta, *cursors) {
	t.Helper()
	src := e.source(t, edit)
	st := &cursors{}
	d := NewDelta(src, st)
	ch, err := d.Changed(context.Background())
	if err != nil || !ch.Full || ch.Reason != "no delta link stored yet" || len(ch.Groups) != 0 {
		t.Fatalf("first catch-up = %+v, %v; want Full without a stored link", ch, err)
	}
	if !strings.Contains(st.link(), "/v1.0/groups/delta?") || !strings.Contains(st.link(), "deltatoken") {
		t.Fatalf("stored link %q", st.link())
	}
	if all, _ := e.deltaRequests(); all != 1 {
		t.Errorf("starting took %d delta requests, want 1 ($deltatoken=latest)", all)
	}
	if _, err := src.Groups(context.Background()); err != nil {
		t.Fatal(err)
	}
	return src, d, st
}

// TestDeltaChanges: each change to the tenant maps to the selected groups it concerns.
func TestDeltaChanges(t *testing.T) {
	const gNew = "aaaaaaaa-0000-0000-0000-000000000006"
	steps := []struct {
		name   string
		change func(f *graphfake.Fake)
		want   []string
	}{
		{"nothing", func(*graphfake.Fake) {}, []string{}},
		{"member removed from a selected group", func(f *graphfake.Fake) {
			f.AddGroup(gML, "wandb-ml", "wandb-ml@contoso.com", uAlice, gNested)
		}, []string{gML}},
		{"member added to a nested group", func(f *graphfake.Fake) {
			f.AddGroup(gNested, "contractors", "contractors@contoso.com", uCarol, uAlice, oContact, oDevice, uGrace, uFrank)
		}, []string{gML}},
		{"members of an unselected group", func(f *graphfake.Fake) {
			f.AddGroup(gOther, "other-team", "", uBob, uAlice)
		}, []string{}},
		{"new group", func(f *graphfake.Fake) { f.AddGroup(gNew, "wandb-new", "", uAlice) }, []string{gNew}},
		{"renamed into the filter, and a selected group deleted", func(f *graphfake.Fake) {
			f.AddGroup(gOther, "wandb-other", "", uBob, uAlice)
			f.DeleteGroup(gEmpty)
		}, []string{gEmpty, gOther}},
		{"several at once, over pages", func(f *graphfake.Fake) {
			f.AddGroup(gVision, "wandb-vision", "", uDave)
			f.AddGroup(gNested, "contractors", "", uCarol)
			f.DeleteGroup(gNew)
		}, []string{gML, gVision, gNew}},
	}
	e := newEnv(t)
	src, d, st := e.started(t, nil)
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			before := st.link()
			step.change(e.fake)
			ch, err := d.Changed(context.Background())
			if err != nil || ch.Full {
				t.Fatalf("Changed = %+v, %v", ch, err)
			}
			if !slices.Equal(ch.Groups, step.want) && (len(ch.Groups) != 0 || len(step.want) != 0) {
				t.Errorf("groups %v, want %v", ch.Groups, step.want)
			}
			if st.link() == before {
				t.Error("the delta link was not replaced")
			}
			for _, id := range ch.Groups { // as the daemon does for each group key
				if _, _, err := src.Group(context.Background(), id); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// Pages of two groups (newEnv): the three changed groups of the last step took two pages.
	if _, next := e.deltaRequests(); next < 1 {
		t.Errorf("no delta round continued on an @odata.nextLink")
	}
	for _, r := range e.fake.Requests() {
		if strings.HasSuffix(r.Path, "/groups/delta") && r.Query.Has("$top") {
			t.Errorf("delta request with $top, which Graph does not support on groups: %v", r.Query)
		}
	}
}

// TestDeltaGroupIDs: with GroupIDs, a new group is not selected, a selected one is.
func TestDeltaGroupIDs(t *testing.T) {
	e := newEnv(t)
	_, d, _ := e.started(t, func(o *Options) { o.Filter, o.GroupIDs = "", []string{gVision, gMissing} })
	e.fake.AddGroup("aaaaaaaa-0000-0000-0000-000000000006", "wandb-new", "", uAlice)
	e.fake.AddGroup(gMissing, "created later", "", uAlice)
	e.fake.AddGroup(gML, "wandb-ml", "", uAlice)
	ch, err := d.Changed(context.Background())
	if err != nil || !slices.Equal(ch.Groups, []string{gMissing}) {
		t.Errorf("Changed = %+v, %v; want only the selected group created later", ch, err)
	}
}

// TestDeltaRestart: a link Graph no longer knows, or one for another Graph URL, starts over and asks
// for a full read; the new link then works.
func TestDeltaRestart(t *testing.T) {
	tests := []struct {
		name, reason string
		lose         func(e *env, st *cursors)
	}{
		{"forgotten by graph", "no longer knows", func(e *env, _ *cursors) { e.fake.ExpireDeltaTokens() }},
		{"seven days unused", "syncStateNotFound", func(e *env, _ *cursors) { e.clock.Advance(graphfake.DeltaTokenLifetime + time.Hour) }},
		{"other graph URL", "not under the Graph URL", func(_ *env, st *cursors) {
			st.m[DeltaCursor+tenant] = "https://graph.evil.example/v1.0/groups/delta?$deltatoken=x"
		}},
		{"lost", "no delta link", func(_ *env, st *cursors) { clear(st.m) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			_, d, st := e.started(t, nil)
			tt.lose(e, st)
			e.fake.AddGroup(gML, "wandb-ml", "", uAlice)
			ch, err := d.Changed(context.Background())
			if err != nil || !ch.Full || !strings.Contains(ch.Reason, tt.reason) {
				t.Fatalf("Changed = %+v, %v; want Full because %s", ch, err, tt.reason)
			}
			e.fake.AddGroup(gVision, "wandb-vision", "", uAlice)
			if ch, err := d.Changed(context.Background()); err != nil || ch.Full || !slices.Equal(ch.Groups, []string{gVision}) {
				t.Errorf("after the restart: %+v, %v", ch, err)
			}
		})
	}
}

// TestDeltaForeignLinks: a next or delta link to another host is refused, the token never goes
// there, and the stored link stays.
func TestDeltaForeignLinks(t *testing.T) {
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { foreignHits.Add(1) }))
	defer foreign.Close()
	for _, field := range []string{"@odata.deltaLink", "@odata.nextLink"} {
		t.Run(field, func(t *testing.T) {
			e := newEnv(t)
			_, d, st := e.started(t, nil)
			before := st.link()
			e.fake.AddGroup(gML, "wandb-ml", "", uAlice)
			e.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "/groups/delta") {
					e.fake.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				e.fake.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				// The fake's single page has a deltaLink; point it, or a nextLink instead, elsewhere.
				body = bytes.Replace(body, []byte(`"@odata.deltaLink":"`+e.srv.URL), []byte(`"`+field+`":"`+foreign.URL), 1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			}))
			_, err := d.Changed(context.Background())
			if err == nil || !strings.Contains(err.Error(), "refusing an "+field) {
				t.Errorf("Changed = %v, want the %s refused", err, field)
			}
			if st.link() != before {
				t.Errorf("the stored link changed to %q", st.link())
			}
		})
	}
	if n := foreignHits.Load(); n != 0 {
		t.Errorf("%d requests went to the foreign host", n)
	}
}

// TestDeltaBeforeFirstRead: before the source read its groups, a catch-up keeps the link and names
// nothing (the due full read covers it); after the read, the changes are replayed from the link.
func TestDeltaBeforeFirstRead(t *testing.T) {
	e := newEnv(t)
	_, _, st := e.started(t, nil)
	src := e.source(t, nil) // as after a restart: the link is stored, nothing read yet
	d := NewDelta(src, st)
	before := st.link()
	e.fake.AddGroup(gML, "wandb-ml", "", uAlice)
	if ch, err := d.Changed(context.Background()); err != nil || ch.Full || len(ch.Groups) != 0 || st.link() != before {
		t.Fatalf("before the first read: %+v, %v, link replaced: %v", ch, err, st.link() != before)
	}
	if _, err := src.Groups(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ch, err := d.Changed(context.Background()); err != nil || !slices.Equal(ch.Groups, []string{gML}) {
		t.Errorf("after the first read: %+v, %v", ch, err)
	}
}

// TestDeltaErrors: a missing permission names it; a store that fails is reported.
func TestDeltaErrors(t *testing.T) {
	e := newEnv(t)
	_, d, st := e.started(t, nil)
	e.fake.SetPermissions(graphfake.UserReadAll)
	_, err := d.Changed(context.Background())
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "GroupMember.Read.All") || !strings.Contains(err.Error(), "/groups/delta") {
		t.Errorf("without a group permission: %v", err)
	}
	e.fake.SetPermissions(graphfake.DefaultPermissions...)
	st.err = errors.New("disk full")
	if _, err := d.Changed(context.Background()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("with a failing store: %v", err)
	}
	assertNoSecret(t, st.link())
}

// TestDecodeDeltaPage: a page must end a round or continue it, and list groups by id.
func TestDecodeDeltaPage(t *testing.T) {
	tests := []struct{ name, body, wantErr string }{
		{"next", `{"value":[{"id":"` + gML + `","members@delta":[{"id":"x","@removed":{"reason":"deleted"}}]}],"@odata.nextLink":"n"}`, ""},
		{"delta", `{"value":[],"@odata.deltaLink":"d"}`, ""},
		{"neither", `{"value":[]}`, "neither or both"},
		{"both", `{"value":[],"@odata.nextLink":"n","@odata.deltaLink":"d"}`, "neither or both"},
		{"bad id", `{"value":[{"id":"../x"}],"@odata.deltaLink":"d"}`, "invalid id"},
		{"not json", `<html>`, "decoding"},
	}
	for _, tt := range tests {
		_, err := decodeDeltaPage([]byte(tt.body))
		if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}
