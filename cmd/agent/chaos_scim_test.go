package main

// The IdP of TestChaosDaemonSCIM: goroutines pushing SCIM users, groups and memberships into the
// daemon, and Okta event hooks, while the daemon is killed under them. It remembers every write the
// daemon acknowledged, and checks afterwards that each one is in the state the last run left.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/state"
)

const (
	scimUserURN  = "urn:ietf:params:scim:schemas:core:2.0:User"
	scimGroupURN = "urn:ietf:params:scim:schemas:core:2.0:Group"
	scimPatchURN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// scimPusher pushes into the daemon its test attaches, and waits while none is attached (it is being
// restarted). Names carry sfx, so they are unique to the test.
type scimPusher struct {
	sfx       string
	maxGroups int // acknowledged group creations to stop at

	mu         gosync.Mutex
	target     *pushTarget   // the running daemon; nil while it restarts
	attached   chan struct{} // closed once a daemon is attached
	seq        int
	users      []*pushedUser  // every user whose creation was tried
	groups     []*pushedGroup // every group whose creation was tried
	members    [][2]string    // acknowledged (group id, user id) additions
	acked      map[string]int // acknowledged writes by kind
	rejected   []string       // answers from a running daemon that were neither success nor expected
	hooks      map[string]int // webhook deliveries by outcome
	unanswered int            // writes without an answer (the daemon died under them, or took over 5s)
}

// pushTarget is one run of the daemon. It has a client of its own, so that no request meant for it
// rides on a connection to the run before. Its kill fires as its killAt-th SCIM write has been sent in
// full: counting writes rather than time, a kill cuts a write in flight on any machine.
type pushTarget struct {
	base   string
	client *http.Client
	killAt int    // the write that fires kill
	last   bool   // and not before the chaos is thick enough (scimPusher.thick)
	sent   int    // writes sent in full
	kill   func() // SIGKILLs the daemon
	killed chan struct{}
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

func newSCIMPusher(sfx string, maxGroups int) *scimPusher {
	return &scimPusher{sfx: sfx, maxGroups: maxGroups, attached: make(chan struct{}), acked: map[string]int{}, hooks: map[string]int{}}
}

// attach lets the pushers write to the daemon at base, which kill SIGKILLs once killAt writes have
// been sent to it (and, if last, the chaos is thick enough); the target's killed is closed then.
func (p *scimPusher) attach(base string, killAt int, last bool, kill func()) *pushTarget {
	t := &pushTarget{base: base, client: &http.Client{Timeout: 5 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()},
		killAt: killAt, last: last, kill: kill, killed: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = t
	close(p.attached)
	return t
}

// current waits for an attached daemon; nil when ctx ended first.
func (p *scimPusher) current(ctx context.Context) *pushTarget {
	for {
		p.mu.Lock()
		t, attached := p.target, p.attached
		p.mu.Unlock()
		if t != nil {
			return t
		}
		select {
		case <-attached:
		case <-ctx.Done():
			return nil
		}
	}
}

// sent counts a write sent in full to t, and fires t's kill when its time has come: the pushers then
// wait until the next daemon is attached.
func (p *scimPusher) sent(t *pushTarget) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.target != t { // a write still going to an earlier run
		return
	}
	t.sent++
	if t.sent < t.killAt || t.last && !p.thick() {
		return
	}
	t.kill()
	p.target, p.attached = nil, make(chan struct{})
	close(t.killed)
}

// thick tells whether the acknowledged writes are enough to prove something: a group, a membership
// and a webhook delivery at least. p.mu is held.
func (p *scimPusher) thick() bool {
	return p.acked["group created"] > 0 && p.acked["member added"] > 0 && p.hooks["acknowledged"] > 0
}

// send makes one request to the current daemon, counting it by sent if it is a SCIM write. It returns
// the status (0: no answer) and the body.
func (p *scimPusher) send(ctx context.Context, write bool, method, path, auth, contentType string, body any) (int, []byte) {
	t := p.current(ctx)
	if t == nil {
		return 0, nil
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(fmt.Sprintf("marshal %T: %v", body, err)) // the bodies are maps of plain values
		}
		rd = bytes.NewReader(b)
	}
	if write {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				p.sent(t)
			}
		}})
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", contentType)
	resp, err := t.client.Do(req)
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
	code, resp := p.send(ctx, true, method, "/scim/v2"+path, "Bearer "+scimToken, "application/scim+json", body)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case code == want:
		p.acked[kind]++
		return true, resp
	case ctx.Err() != nil: // the pushers were stopped
	case code == 0:
		p.unanswered++
	default:
		p.rejected = append(p.rejected, fmt.Sprintf("%s %s: %d %s", method, path, code, resp))
	}
	return false, nil
}

// run pushes until ctx ends: users (40%), groups (10%, until maxGroups are acknowledged), memberships
// (30%) and displayName changes of its own users (20%).
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
		canGroup := len(groups) < p.maxGroups
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
		code, _ := p.send(ctx, false, http.MethodPost, "/webhooks/okta", oktaSecret, "application/json", event)
		p.mu.Lock()
		switch {
		case code == http.StatusNoContent:
			p.hooks["acknowledged"]++
		case ctx.Err() != nil: // the pushers were stopped
		case code == 0:
			p.hooks["unanswered"]++
		default:
			p.hooks["rejected"]++
			p.rejected = append(p.rejected, fmt.Sprintf("okta event hook: %d", code))
		}
		p.mu.Unlock()
		time.Sleep(time.Duration(20+rng.IntN(30)) * time.Millisecond)
	}
}

// verify checks every acknowledged write against the state the daemon left at path, and counts what
// is lost and what is duplicated. The daemon must have stopped, and the pushers too: each list is
// then read whole in one transaction and nothing can change it. It returns the display names of the
// live groups.
func (p *scimPusher) verify(t *testing.T, path string, rep *chaosReport) []string {
	t.Helper()
	db, err := state.Open(path, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the state does not open cleanly: %v", err)
	}
	defer db.Close()
	userList, err := db.SCIMUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	groupList, err := db.SCIMGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	users := map[string][]state.SCIMUser{}
	for _, u := range userList {
		users[u.UserName] = append(users[u.UserName], u)
	}
	groups := map[string][]state.SCIMGroup{} // live ones: what SCIM clients see
	for _, g := range groupList {
		if !g.Deleted {
			groups[g.DisplayName] = append(groups[g.DisplayName], g)
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.users {
		got := users[u.userName]
		rep.Duplicates += max(len(got)-1, 0)
		if len(got) > 1 {
			t.Errorf("user %s is there %d times", u.userName, len(got))
		}
		if u.id == "" {
			continue
		}
		if len(got) != 1 || got[0].ID != u.id {
			rep.Lost++
			t.Errorf("acknowledged user %s (%s) is gone: %+v", u.userName, u.id, got)
			continue
		}
		if v, _ := got[0].Attributes["displayName"].(string); !slices.Contains(u.tried[u.acked:], v) {
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
			members[got[0].ID] = got[0].MemberIDs
		}
		if g.id == "" {
			continue
		}
		if len(got) != 1 || got[0].ID != g.id {
			rep.Lost++
			t.Errorf("acknowledged group %s (%s) is gone: %+v", g.displayName, g.id, got)
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
