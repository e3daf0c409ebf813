package main

// The IdP of TestChaosDaemonSCIM: goroutines pushing SCIM users, groups and memberships into the
// daemon, and Okta event hooks, while the daemon is killed under them. It remembers every write the
// daemon acknowledged, and checks afterwards that each one is there.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	scimUserURN  = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimGroupURN = "urn:ietf:params:scim:schemas:core:2.0:Group"
	scimPatchURN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// scimPusher pushes into the daemon at base. Names carry sfx, so they are unique to the test.
type scimPusher struct {
	base, sfx string
	maxGroups int
	client    *http.Client
	inFlight  atomic.Int32 // SCIM writes sent and not yet answered

	mu         gosync.Mutex
	seq        int
	users      []*pushedUser  // every user whose creation was tried
	groups     []*pushedGroup // every group whose creation was tried
	members    [][2]string    // acknowledged (group id, user id) additions
	acked      map[string]int // acknowledged writes by kind
	rejected   []string       // answers from a running daemon that were neither success nor expected
	hooks      map[string]int // webhook deliveries by outcome
	unanswered int            // writes without an answer (the daemon died or was down)
}

// pushedUser is a user as pushed: its displayName is replaced by PATCHes only from the goroutine that
// created it, so the values tried are in order and the last one applied is tried[acked] or later.
type pushedUser struct {
	owner    int
	id       string // "" unless the creation was acknowledged
	userName string
	tried    []string
	acked    int // index in tried of the last acknowledged value; -1: none
}

type pushedGroup struct {
	id, displayName string // id is "" unless the creation was acknowledged
}

func newSCIMPusher(base, sfx string, maxGroups int) *scimPusher {
	return &scimPusher{base: base, sfx: sfx, maxGroups: maxGroups, client: &http.Client{Timeout: 5 * time.Second},
		acked: map[string]int{}, hooks: map[string]int{}}
}

// send makes one request. It returns the status (0: no answer) and the body.
func (p *scimPusher) send(ctx context.Context, method, path, auth, contentType string, body any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(fmt.Sprintf("marshal %T: %v", body, err)) // the bodies are maps of plain values
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", contentType)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, b
}

// write sends one SCIM write and tells whether the daemon acknowledged it with want.
func (p *scimPusher) write(ctx context.Context, kind, method, path string, body any, want int) (bool, []byte) {
	p.inFlight.Add(1)
	code, resp := p.send(ctx, method, "/scim/v2"+path, "Bearer "+scimToken, "application/scim+json", body)
	p.inFlight.Add(-1)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case code == want:
		p.acked[kind]++
		return true, resp
	case code == 0:
		p.unanswered++
	case ctx.Err() == nil:
		p.rejected = append(p.rejected, fmt.Sprintf("%s %s: %d %s", method, path, code, resp))
	}
	return false, nil
}

// run pushes until ctx ends: users (40%), groups (10%, up to maxGroups), memberships (30%) and
// displayName changes of its own users (20%).
func (p *scimPusher) run(ctx context.Context, w int, rng *rand.Rand) {
	for ctx.Err() == nil {
		p.mu.Lock()
		p.seq++
		seq := p.seq
		var own []*pushedUser
		var users []*pushedUser
		for _, u := range p.users {
			if u.id != "" {
				users = append(users, u)
				if u.owner == w {
					own = append(own, u)
				}
			}
		}
		groups := slices.DeleteFunc(slices.Clone(p.groups), func(g *pushedGroup) bool { return g.id == "" })
		canGroup := len(p.groups) < p.maxGroups
		p.mu.Unlock()

		switch op := rng.IntN(10); {
		case op < 4 || len(users) == 0:
			p.createUser(ctx, w, seq)
		case op < 5 && canGroup:
			p.createGroup(ctx, seq)
		case op < 8 && len(groups) > 0:
			p.addMember(ctx, groups[rng.IntN(len(groups))], users[rng.IntN(len(users))])
		case len(own) > 0:
			p.renameUser(ctx, own[rng.IntN(len(own))], seq)
		default:
			p.createUser(ctx, w, seq)
		}
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
	}
}

func (p *scimPusher) createUser(ctx context.Context, w, seq int) {
	u := &pushedUser{owner: w, userName: fmt.Sprintf("u%d-%s@example.com", seq, p.sfx), tried: []string{"v0"}, acked: -1}
	p.mu.Lock()
	p.users = append(p.users, u)
	p.mu.Unlock()
	ok, body := p.write(ctx, "user created", http.MethodPost, "/Users", map[string]any{
		"schemas": []string{scimUserURN}, "userName": u.userName, "displayName": "v0", "active": true}, http.StatusCreated)
	if id := jsonID(body); ok && id != "" {
		p.mu.Lock()
		u.id, u.acked = id, 0
		p.mu.Unlock()
	}
}

func (p *scimPusher) createGroup(ctx context.Context, seq int) {
	g := &pushedGroup{displayName: fmt.Sprintf("wandb-g%d-%s", seq, p.sfx)}
	p.mu.Lock()
	p.groups = append(p.groups, g)
	p.mu.Unlock()
	ok, body := p.write(ctx, "group created", http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{scimGroupURN}, "displayName": g.displayName, "members": []any{}}, http.StatusCreated)
	if id := jsonID(body); ok && id != "" {
		p.mu.Lock()
		g.id = id
		p.mu.Unlock()
	}
}

func (p *scimPusher) addMember(ctx context.Context, g *pushedGroup, u *pushedUser) {
	ok, _ := p.write(ctx, "member added", http.MethodPatch, "/Groups/"+g.id, patchOp("add", "members", []map[string]string{{"value": u.id}}), http.StatusOK)
	if ok {
		p.mu.Lock()
		p.members = append(p.members, [2]string{g.id, u.id})
		p.mu.Unlock()
	}
}

func (p *scimPusher) renameUser(ctx context.Context, u *pushedUser, seq int) {
	v := fmt.Sprintf("v%d", seq)
	p.mu.Lock()
	u.tried = append(u.tried, v)
	i := len(u.tried) - 1
	p.mu.Unlock()
	if ok, _ := p.write(ctx, "user renamed", http.MethodPatch, "/Users/"+u.id, patchOp("replace", "displayName", v), http.StatusOK); ok {
		p.mu.Lock()
		u.acked = i
		p.mu.Unlock()
	}
}

func patchOp(op, path string, value any) map[string]any {
	return map[string]any{"schemas": []string{scimPatchURN}, "Operations": []map[string]any{{"op": op, "path": path, "value": value}}}
}

// jsonID is the "id" of a SCIM resource in body, or "".
func jsonID(body []byte) string {
	var r struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &r) != nil {
		return ""
	}
	return r.ID
}

// hooks sends Okta membership events until ctx ends, counting them by outcome.
func (p *scimPusher) oktaHooks(ctx context.Context, rng *rand.Rand) {
	for i := 0; ctx.Err() == nil; i++ {
		event := map[string]any{"eventType": "com.okta.event_hook", "eventId": fmt.Sprint(i), "data": map[string]any{"events": []any{map[string]any{
			"uuid": fmt.Sprintf("e%d-%s", i, p.sfx), "published": time.Now().UTC().Format(time.RFC3339), "eventType": "group.user_membership.add",
			"target": []any{map[string]string{"id": "00u1", "type": "User"}, map[string]string{"id": "00g1", "type": "UserGroup", "displayName": "wandb-x"}},
		}}}}
		code, _ := p.send(ctx, http.MethodPost, "/webhooks/okta", oktaSecret, "application/json", event)
		p.mu.Lock()
		switch {
		case code == http.StatusNoContent:
			p.hooks["acknowledged"]++
		case code == 0:
			p.hooks["unanswered"]++
		case ctx.Err() == nil:
			p.hooks["rejected"]++
			p.rejected = append(p.rejected, fmt.Sprintf("okta event hook: %d", code))
		}
		p.mu.Unlock()
		time.Sleep(time.Duration(20+rng.IntN(30)) * time.Millisecond)
	}
}

// listSCIM reads every page of a SCIM list.
func listSCIM(t *testing.T, d *daemonProc, path string) []map[string]any {
	t.Helper()
	var all []map[string]any
	for start := 1; ; {
		code, body := d.do(t, http.MethodGet, fmt.Sprintf("/scim/v2%s?startIndex=%d&count=100", path, start), "Bearer "+scimToken, "")
		var page struct {
			TotalResults int              `json:"totalResults"`
			Resources    []map[string]any `json:"Resources"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil {
			t.Fatalf("list %s from %d: %d %s", path, start, code, body)
		}
		all = append(all, page.Resources...)
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			return all
		}
	}
}

// verify checks every acknowledged write against the daemon's SCIM endpoint and counts what is lost
// and what is duplicated. It returns the display names of the live groups.
func (p *scimPusher) verify(t *testing.T, d *daemonProc, rep *chaosReport) []string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	byName := func(path, attr string) map[string][]map[string]any {
		out := map[string][]map[string]any{}
		for _, r := range listSCIM(t, d, path) {
			name, _ := r[attr].(string)
			out[name] = append(out[name], r)
		}
		return out
	}
	users, groups := byName("/Users", "userName"), byName("/Groups", "displayName")
	for _, u := range p.users {
		got := users[u.userName]
		rep.Duplicates += max(len(got)-1, 0)
		if len(got) > 1 {
			t.Errorf("user %s is there %d times", u.userName, len(got))
		}
		if u.id == "" {
			continue
		}
		if len(got) != 1 || got[0]["id"] != u.id {
			rep.Lost++
			t.Errorf("acknowledged user %s (%s) is gone: %v", u.userName, u.id, got)
			continue
		}
		if v, _ := got[0]["displayName"].(string); !slices.Contains(u.tried[u.acked:], v) {
			rep.Lost++
			t.Errorf("user %s has displayName %q; acknowledged %q, tried after it %v", u.userName, v, u.tried[u.acked], u.tried[u.acked+1:])
		}
	}
	members := map[string][]string{} // group id -> member ids
	var live []string
	for _, g := range p.groups {
		got := groups[g.displayName]
		rep.Duplicates += max(len(got)-1, 0)
		if len(got) > 1 {
			t.Errorf("group %s is there %d times", g.displayName, len(got))
		}
		if len(got) == 1 {
			live = append(live, g.displayName)
			id, _ := got[0]["id"].(string)
			for _, m := range asList(got[0]["members"]) {
				v, _ := m["value"].(string)
				members[id] = append(members[id], v)
			}
		}
		if g.id == "" {
			continue
		}
		if len(got) != 1 || got[0]["id"] != g.id {
			rep.Lost++
			t.Errorf("acknowledged group %s (%s) is gone: %v", g.displayName, g.id, got)
		}
	}
	for _, m := range p.members {
		if !slices.Contains(members[m[0]], m[1]) {
			rep.Lost++
			t.Errorf("acknowledged membership of user %s in group %s is gone", m[1], m[0])
		}
	}
	for _, n := range p.acked {
		rep.Acknowledged += n
	}
	for _, r := range p.rejected {
		t.Errorf("the running daemon refused a valid request: %s", r)
	}
	return live
}

// asList reads a JSON array of objects decoded into any.
func asList(v any) []map[string]any {
	var out []map[string]any
	items, _ := v.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// ackedGroups returns the display names of the groups whose creation was acknowledged.
func (p *scimPusher) ackedGroups() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, g := range p.groups {
		if g.id != "" {
			out = append(out, g.displayName)
		}
	}
	return out
}

// summary is the counts of writes and hooks for the log.
func (p *scimPusher) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("acknowledged %v, unanswered %d, webhooks %v", p.acked, p.unanswered, p.hooks)
}

// teamOf is the team a pushed group becomes under the daemon config's "wandb-" prefix rule.
func teamOf(group string) string { return strings.TrimPrefix(group, "wandb-") }
