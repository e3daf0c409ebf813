package wandbemu_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
)

// startWithClient runs the emulator on 127.0.0.1 and returns a wandb.Client for it.
func startWithClient(t *testing.T, o wandbemu.Options, mod func(*wandb.Options)) (*wandbemu.Server, *wandb.Client) {
	t.Helper()
	e := start(t, o)
	co := wandb.Options{BaseURL: e.url + "/scim", Auth: wandb.AuthBearer, APIKey: apiKey, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	if mod != nil {
		mod(&co)
	}
	c, err := wandb.NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	return e.emu, c
}

func TestClientAgainstEmulator(t *testing.T) {
	chk := &fakeChecker{bad: map[string]string{"missing": "no such bucket"}}
	emu, c := startWithClient(t, wandbemu.Options{Checker: chk, MaxPageSize: 3}, nil)
	ctx := t.Context()
	ada := emu.AddUser("ada", "ada@example.com")

	sb := &wandb.StorageBucket{Name: "wandb-ml", Provider: "AWS", KMSKeyID: "arn:aws:kms:us-east-1:1:key/k"}
	ml, err := c.CreateGroup(ctx, wandb.NewGroup{DisplayName: "ml", Members: []wandb.Member{{Value: "ada@example.com"}}, StorageBucket: sb})
	if err != nil {
		t.Fatal(err)
	}
	// Decoded from W&B's capitalised member keys.
	if ml.ID == "" || ml.DisplayName != "ml" || !reflect.DeepEqual(ml.Members, []wandb.Member{{Value: ada, Display: "ada"}}) {
		t.Fatalf("created %+v", ml)
	}
	if g := emu.Groups(); len(g) != 1 || !reflect.DeepEqual(g[0].StorageBucket, sb) {
		t.Fatalf("emulator has %+v", g)
	}

	_, err = c.CreateGroup(ctx, wandb.NewGroup{DisplayName: "ml"})
	var ae *wandb.APIError
	if !errors.Is(err, wandb.ErrConflict) || !errors.As(err, &ae) || ae.Attempts != 1 {
		t.Fatalf("duplicate create: %v, want ErrConflict after one attempt", err)
	}

	_, err = c.CreateGroup(ctx, wandb.NewGroup{DisplayName: "bad", StorageBucket: &wandb.StorageBucket{Name: "missing", Provider: "AWS"}})
	if !errors.Is(err, wandb.ErrBadRequest) {
		t.Fatalf("rejected bucket: %v, want ErrBadRequest", err)
	}
	if g, err := c.FindGroup(ctx, "bad"); err != nil || g != nil {
		t.Fatalf("FindGroup after rejected bucket: %+v, %v; want nil, nil", g, err)
	}

	// Seven teams over pages of three: three list requests.
	for i := range 6 {
		if _, err := c.CreateGroup(ctx, wandb.NewGroup{DisplayName: fmt.Sprintf("team-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	emu.ResetCounts()
	all, err := c.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 || all[0].ID != ml.ID || all[6].DisplayName != "team-5" {
		t.Fatalf("listed %d teams: %+v", len(all), all)
	}
	if n := emu.Counts()["GET /scim/Groups"]; n != 3 {
		t.Fatalf("%d list requests, want 3", n)
	}
	if emu.MutatingCount() != 0 {
		t.Fatal("listing mutated")
	}

	found, err := c.FindGroup(ctx, "team-4")
	if err != nil || found == nil || found.DisplayName != "team-4" || found.Members != nil {
		t.Fatalf("FindGroup: %+v, %v", found, err)
	}
	got, err := c.GetGroup(ctx, found.ID)
	if err != nil || got == nil || got.ID != found.ID {
		t.Fatalf("GetGroup: %+v, %v", got, err)
	}
	if g, err := c.GetGroup(ctx, "R3JvdXA6OTk5"); err != nil || g != nil {
		t.Fatalf("GetGroup unknown: %+v, %v; want nil, nil", g, err)
	}
}

func TestClientListsAllTeams(t *testing.T) {
	const n = 1001
	tests := []struct {
		name        string
		maxPage     int // the server's own cap on a page
		ignoreStart bool
		requests    int
	}{
		{name: "one request when the server gives what is asked", requests: 1},
		{name: "server caps pages", maxPage: 1000, requests: 2},
		{name: "server caps pages and ignores startIndex: refused", maxPage: 1000, ignoreStart: true, requests: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, c := startWithClient(t, wandbemu.Options{MaxPageSize: tt.maxPage, IgnoreStartIndex: tt.ignoreStart}, nil)
			for i := range n {
				if _, err := c.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: fmt.Sprintf("t%04d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			emu.ResetCounts()
			all, err := c.ListGroups(t.Context())
			if tt.ignoreStart {
				var pe *wandb.PartialListError
				if !errors.As(err, &pe) || all != nil || emu.Counts()["GET /scim/Groups"] != tt.requests {
					t.Fatalf("got %d teams, %v, after %d requests; want a PartialListError", len(all), err, emu.Counts()["GET /scim/Groups"])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != n || all[n-1].DisplayName != "t1000" || emu.Counts()["GET /scim/Groups"] != tt.requests {
				t.Fatalf("%d teams in %d requests, want %d in %d", len(all), emu.Counts()["GET /scim/Groups"], n, tt.requests)
			}
		})
	}
}

func TestClientAuthModesAgainstEmulator(t *testing.T) {
	tests := []struct {
		mode    wandb.AuthMode
		user    string
		key     string
		wantErr error
	}{
		{wandb.AuthBearer, "", apiKey, nil},
		{wandb.AuthBasicUser, "admin", apiKey, nil},
		{wandb.AuthBasicServiceAccount, "", apiKey, nil},
		{wandb.AuthBasicUser, "mallory", apiKey, wandb.ErrUnauthorized},
		{wandb.AuthBearer, "", "wrong", wandb.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.mode, tt.user, tt.key), func(t *testing.T) {
			emu, c := startWithClient(t, wandbemu.Options{Username: "admin"}, func(o *wandb.Options) { o.Auth, o.Username, o.APIKey = tt.mode, tt.user, tt.key })
			_, err := c.ListGroups(t.Context())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n := emu.Counts()["GET /scim/Groups"]; n != 1 {
				t.Fatalf("%d requests, want 1 (401 is not retried)", n)
			}
		})
	}
}

// A POST whose response is lost after W&B created the team: the client retries, gets 409, and the
// caller finds the team by name. Exactly one team exists.
func TestClientLostCreateResponse(t *testing.T) {
	tests := []struct {
		name  string
		fault wandbemu.Fault
	}{
		{"500 after create", wandbemu.Fault{Status: 500, AfterApply: true}},
		{"hang after create", wandbemu.Fault{Hang: true, AfterApply: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var posts atomic.Int32
			emu, c := startWithClient(t, wandbemu.Options{Fault: func(r *http.Request) wandbemu.Fault {
				if r.Method == http.MethodPost && posts.Add(1) == 1 {
					return tt.fault
				}
				return wandbemu.Fault{}
			}}, func(o *wandb.Options) { o.Timeout = 300 * time.Millisecond })
			sb := &wandb.StorageBucket{Name: "b", Provider: "MINIO"}
			_, err := c.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: "ml", StorageBucket: sb})
			var ae *wandb.APIError
			if !errors.Is(err, wandb.ErrConflict) || !errors.As(err, &ae) || ae.Attempts != 2 {
				t.Fatalf("err = %v, want ErrConflict on the second attempt", err)
			}
			g, err := c.FindGroup(t.Context(), "ml")
			if err != nil || g == nil {
				t.Fatalf("lookup after conflict: %+v, %v", g, err)
			}
			if teams := emu.Groups(); len(teams) != 1 || teams[0].ID != g.ID || !reflect.DeepEqual(teams[0].StorageBucket, sb) {
				t.Fatalf("emulator has %+v", teams)
			}
			if n := emu.Counts()["POST /scim/Groups"]; n != 2 {
				t.Fatalf("%d POSTs, want 2", n)
			}
		})
	}
}

func TestClientRetriesInjected429(t *testing.T) {
	var gets atomic.Int32
	emu, c := startWithClient(t, wandbemu.Options{Fault: func(r *http.Request) wandbemu.Fault {
		if gets.Add(1) <= 2 {
			return wandbemu.Fault{Status: 429, RetryAfter: "0"}
		}
		return wandbemu.Fault{}
	}}, nil)
	if _, err := c.ListGroups(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := emu.Counts()["GET /scim/Groups"]; n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestClientUsersAndMembersAgainstEmulator(t *testing.T) {
	emu, c := startWithClient(t, wandbemu.Options{}, nil)
	ctx := t.Context()
	ada := emu.AddUser("ada", "ada@example.com")
	if u, err := c.FindUser(ctx, "ADA@example.com"); err != nil || u == nil || u.ID != ada {
		t.Fatalf("FindUser by email: %+v %v", u, err)
	}
	if u, err := c.FindUser(ctx, "nobody@example.com"); err != nil || u != nil {
		t.Fatalf("FindUser of a missing user: %+v %v", u, err)
	}
	bob, err := c.CreateUserInTeams(ctx, "bob@example.com", nil)
	if err != nil || bob.ID == "" {
		t.Fatalf("CreateUser: %+v %v", bob, err)
	}
	g, err := c.CreateGroup(ctx, wandb.NewGroup{DisplayName: "ml"})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{ada, bob.ID}
	for i := range 150 { // more than one chunk
		u, err := c.CreateUserInTeams(ctx, fmt.Sprintf("u%d@example.com", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	emu.ResetCounts()
	if err := c.AddMembers(ctx, g.ID, ids); err != nil {
		t.Fatal(err)
	}
	if n := emu.Counts()["PATCH /scim/Groups/{id}"]; n != 2 {
		t.Errorf("%d PATCH requests for 152 members, want 2", n)
	}
	if err := c.RemoveMember(ctx, g.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := c.GetGroup(ctx, g.ID)
	if len(got.Members) != 151 || slices.ContainsFunc(got.Members, func(m wandb.Member) bool { return m.Value == bob.ID }) {
		t.Errorf("members after remove: %d", len(got.Members))
	}
}

// TestClientTeamRoles: the teamRoles PATCH takes the predefined roles and the organisation's custom
// roles, and refuses a role the organisation does not have.
func TestClientTeamRoles(t *testing.T) {
	emu, c := startWithClient(t, wandbemu.Options{CustomRoles: []string{"ML Reviewer"}}, nil)
	ctx := t.Context()
	ada := emu.AddUser("ada", "ada@example.com")
	if _, err := c.CreateGroup(ctx, wandb.NewGroup{DisplayName: "ml", Members: []wandb.Member{{Value: ada}}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ role, want, err string }{
		{"viewer", "viewer", ""},
		{"ML Reviewer", "ML Reviewer", ""},
		{"ml reviewer", "ML Reviewer", "does not exist"}, // custom names compare as written (inference)
		{"owner", "ML Reviewer", "does not exist"},
	} {
		_, err := c.AssignTeamRole(ctx, ada, "ml", tt.role)
		if (tt.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("SetTeamRole(%q) = %v, want error %q", tt.role, err, tt.err)
		}
		if got := emu.TeamRole(ada, "ml"); got != tt.want {
			t.Errorf("after SetTeamRole(%q) the role is %q, want %q", tt.role, got, tt.want)
		}
	}
}

// TestClientMembershipETags: membership PATCHes carry If-Match with the team's last ETag; when the team
// changes between the client's read and its PATCH, W&B answers 412 and the client re-reads the team,
// drops what is already done and tries again, a bounded number of times.
func TestClientMembershipETags(t *testing.T) {
	type users struct{ ada, bob, carl string }
	tests := []struct {
		name     string
		coldRead bool // the client has seen no answer about the team before the change
		// between changes the team on the n-th PATCH (1-based) before it is served; nil: no change.
		between func(n int, u users) (add, remove []string)
		change  func(ctx context.Context, c *wandb.Client, team string, u users) error
		wantErr error
		members func(u users) []string
		patches int // PATCH requests that arrived
		reads   int // GET /Groups/{id} requests
	}{
		{
			name: "no concurrent change",
			change: func(ctx context.Context, c *wandb.Client, team string, u users) error {
				return c.AddMembers(ctx, team, []string{u.carl})
			},
			members: func(u users) []string { return []string{u.ada, u.carl} },
			patches: 1,
		},
		{
			name:     "never read: the team is read first for its ETag, and present members are not sent",
			coldRead: true,
			change: func(ctx context.Context, c *wandb.Client, team string, u users) error {
				return c.AddMembers(ctx, team, []string{u.ada, u.carl})
			},
			members: func(u users) []string { return []string{u.ada, u.carl} },
			patches: 1, reads: 1,
		},
		{
			name: "add, someone else adds another user first: re-read, retry succeeds",
			between: func(n int, u users) ([]string, []string) {
				if n == 1 {
					return []string{u.bob}, nil
				}
				return nil, nil
			},
			change: func(ctx context.Context, c *wandb.Client, team string, u users) error {
				return c.AddMembers(ctx, team, []string{u.carl})
			},
			members: func(u users) []string { return []string{u.ada, u.bob, u.carl} },
			patches: 2, reads: 1,
		},
		{
			name: "add, someone else adds the same user first: dropped after the re-read",
			between: func(n int, u users) ([]string, []string) {
				if n == 1 {
					return []string{u.carl}, nil
				}
				return nil, nil
			},
			change: func(ctx context.Context, c *wandb.Client, team string, u users) error {
				return c.AddMembers(ctx, team, []string{u.carl})
			},
			members: func(u users) []string { return []string{u.ada, u.carl} },
			patches: 1, reads: 1,
		},
		{
			name: "remove, someone else adds a user first: retry removes only ours",
			between: func(n int, u users) ([]string, []string) {
				if n == 1 {
					return []string{u.bob}, nil
				}
				return nil, nil
			},
			change: func(ctx context.Context, c *wandb.Client, team string, u users) error {
				return c.RemoveMember(ctx, team, u.ada)
			},
			members: func(u users) []string { return []string{u.bob} },
			patches: 2, reads: 1,
		},
		{
			name: "remove, someone else removes the user first: dropped after the re-read",
			between: func(n int, u users) ([]string, []string) {
				if n == 1 {
					return nil, []string{u.ada}
				}
				return nil, nil
			},
			change: func(ctx context.Context, c *wandb.Client, team string, u users) error {
				return c.RemoveMember(ctx, team, u.ada)
			},
			members: func(u users) []string { return nil },
			patches: 1, reads: 1,
		},
		{
			name: "the team changes before every PATCH: gives up with 412 after four",
			between: func(n int, u users) ([]string, []string) {
				if n%2 == 1 {
					return []string{u.bob}, nil
				}
				return nil, []string{u.bob}
			},
			change: func(ctx context.Context, c *wandb.Client, team string, u users) error {
				return c.AddMembers(ctx, team, []string{u.carl})
			},
			wantErr: wandb.ErrPreconditionFailed,
			members: func(u users) []string { return []string{u.ada} }, // bob added and removed twice
			patches: 4, reads: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu      sync.Mutex // guards the fields below, shared with the emulator's handlers
				emuRef  *wandbemu.Server
				u       users
				patches int
				ifMatch []string // If-Match of each PATCH
			)
			var co wandb.Options
			emu, c := startWithClient(t, wandbemu.Options{Fault: func(r *http.Request) wandbemu.Fault {
				if r.Method != http.MethodPatch || !strings.HasPrefix(r.URL.Path, "/scim/Groups/") {
					return wandbemu.Fault{}
				}
				mu.Lock()
				defer mu.Unlock()
				patches++
				ifMatch = append(ifMatch, r.Header.Get("If-Match"))
				if tt.between != nil {
					if add, remove := tt.between(patches, u); add != nil || remove != nil {
						if err := emuRef.ChangeMembers(strings.TrimPrefix(r.URL.Path, "/scim/Groups/"), add, remove); err != nil {
							t.Error(err)
						}
					}
				}
				return wandbemu.Fault{}
			}}, func(o *wandb.Options) { co = *o })
			ctx := t.Context()
			mu.Lock()
			emuRef = emu
			u = users{emu.AddUser("ada", "ada@example.com"), emu.AddUser("bob", "bob@example.com"), emu.AddUser("carl", "carl@example.com")}
			mu.Unlock()
			// The team is made with another client, so c has seen nothing of it.
			other, err := wandb.NewClient(co)
			if err != nil {
				t.Fatal(err)
			}
			g, err := other.CreateGroup(ctx, wandb.NewGroup{DisplayName: "ml", Members: []wandb.Member{{Value: u.ada}}})
			if err != nil {
				t.Fatal(err)
			}
			readETag := ""
			if !tt.coldRead {
				found, err := c.FindGroup(ctx, "ml")
				if err != nil || found == nil || found.ETag == "" {
					t.Fatalf("FindGroup: %+v %v; want the team with an ETag", found, err)
				}
				readETag = found.ETag
			}
			emu.ResetCounts()
			err = tt.change(ctx, c, g.ID, u)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			got := emu.Groups()[0]
			var ids []string
			for _, m := range got.Members {
				ids = append(ids, m.Value)
			}
			if want := tt.members(u); !reflect.DeepEqual(ids, want) {
				t.Fatalf("members %v, want %v", ids, want)
			}
			counts := emu.Counts()
			if counts["PATCH /scim/Groups/{id}"] != tt.patches || counts["GET /scim/Groups/{id}"] != tt.reads {
				t.Fatalf("requests %v, want %d PATCH and %d GET of the team", counts, tt.patches, tt.reads)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, im := range ifMatch {
				if im == "" {
					t.Fatalf("PATCH %d had no If-Match", i+1)
				}
			}
			if readETag != "" && ifMatch[0] != readETag {
				t.Fatalf("first PATCH If-Match %q, want the ETag FindGroup showed, %q", ifMatch[0], readETag)
			}
			if len(ifMatch) > 1 && ifMatch[1] == ifMatch[0] {
				t.Fatalf("the retry sent the refused If-Match %q again", ifMatch[1])
			}
		})
	}
}

// TestClientCreateUserByDeployment: the client's user shape for each deployment is what the emulator
// (after W&B's page) takes there; on Multi-tenant Cloud the plain shape is refused.
func TestClientCreateUserByDeployment(t *testing.T) {
	tests := []struct {
		name             string
		emu, client      string // deployments of the emulator and of the client
		teams            []string
		wantErr          error
		inTeam           bool
		wantRolesCreated map[string]string // User.TeamRoles of the created user
	}{
		{"multi-tenant, in a team", "multi-tenant", wandb.DeploymentMultiTenant, []string{"ml"}, nil, true, map[string]string{"ml": "member"}},
		{"multi-tenant, no team", "multi-tenant", wandb.DeploymentMultiTenant, nil, nil, false, nil},
		{"multi-tenant emulator, client not told", "multi-tenant", "", []string{"ml"}, wandb.ErrBadRequest, false, nil},
		{"dedicated", "dedicated", wandb.DeploymentDedicated, []string{"ml"}, nil, false, nil},
		{"self-managed", "self-managed", wandb.DeploymentSelfManaged, nil, nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, c := startWithClient(t, wandbemu.Options{Deployment: tt.emu}, func(o *wandb.Options) { o.Deployment = tt.client })
			ctx := t.Context()
			g, err := c.CreateGroup(ctx, wandb.NewGroup{DisplayName: "ml"})
			if err != nil {
				t.Fatal(err)
			}
			u, err := c.CreateUserInTeams(ctx, "ada@example.com", tt.teams)
			if tt.wantErr != nil || err != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if !reflect.DeepEqual(u.TeamRoles, tt.wantRolesCreated) {
				t.Fatalf("created user's team roles %v, want %v", u.TeamRoles, tt.wantRolesCreated)
			}
			got := emu.Groups()[0]
			if joined := len(got.Members) == 1 && got.Members[0].Value == u.ID; joined != tt.inTeam {
				t.Fatalf("members %v; want the user in the team: %v", got.Members, tt.inTeam)
			}
			// Whatever creation did, adding the user to the team leaves it there once. On multi-tenant
			// the team changed after the client last saw it: 412, re-read, nothing left to send.
			emu.ResetCounts()
			if err := c.AddMembers(ctx, g.ID, []string{u.ID}); err != nil {
				t.Fatal(err)
			}
			if got := emu.Groups()[0].Members; len(got) != 1 || got[0].Value != u.ID {
				t.Fatalf("members after AddMembers %v", got)
			}
			// One PATCH either way (on multi-tenant the refused one: the retry is dropped), and a read of
			// the team only after a 412.
			wantReads := 0
			if tt.inTeam {
				wantReads = 1
			}
			if n := emu.Counts(); n["PATCH /scim/Groups/{id}"] != 1 || n["GET /scim/Groups/{id}"] != wantReads {
				t.Fatalf("requests %v, want 1 PATCH and %d GET of the team", n, wantReads)
			}
		})
	}
}

// TestClientReadsTeamRoles: AssignTeamRole returns the roles W&B's answer lists; UserTeamRoles re-reads them.
func TestClientReadsTeamRoles(t *testing.T) {
	emu, c := startWithClient(t, wandbemu.Options{}, nil)
	ctx := t.Context()
	ada := emu.AddUser("ada", "ada@example.com")
	for _, name := range []string{"ml", "cv"} {
		if _, err := c.CreateGroup(ctx, wandb.NewGroup{DisplayName: name, Members: []wandb.Member{{Value: ada}}}); err != nil {
			t.Fatal(err)
		}
	}
	if roles, err := c.UserTeamRoles(ctx, ada); err != nil || roles == nil || len(roles) != 0 {
		t.Fatalf("before any role: %v %v; want an empty map", roles, err)
	}
	steps := []struct {
		team, role string
		want       map[string]string
	}{
		{"ml", "admin", map[string]string{"ml": "admin"}},
		{"cv", "viewer", map[string]string{"ml": "admin", "cv": "viewer"}},
		{"ml", "member", map[string]string{"ml": "member", "cv": "viewer"}},
	}
	for _, s := range steps {
		roles, err := c.AssignTeamRole(ctx, ada, s.team, s.role)
		if err != nil || !reflect.DeepEqual(roles, s.want) {
			t.Fatalf("AssignTeamRole(%s, %s) = %v, %v; want %v", s.team, s.role, roles, err, s.want)
		}
		if read, err := c.UserTeamRoles(ctx, ada); err != nil || !reflect.DeepEqual(read, s.want) {
			t.Fatalf("UserTeamRoles after (%s, %s) = %v, %v; want %v", s.team, s.role, read, err, s.want)
		}
	}
	if _, err := c.UserTeamRoles(ctx, "VXNlcjo5OQ=="); !errors.Is(err, wandb.ErrNotFound) {
		t.Fatalf("unknown user: %v, want ErrNotFound", err)
	}
}

// TestClientLostPatchAnswer: W&B applied a membership PATCH but its answer was lost (503 after the
// fact). The client's retry carries the same If-Match, so W&B refuses it with 412 instead of applying
// it again; the re-read shows the change done and nothing more is sent.
func TestClientLostPatchAnswer(t *testing.T) {
	var failed atomic.Bool
	emu, c := startWithClient(t, wandbemu.Options{Fault: func(r *http.Request) wandbemu.Fault {
		if r.Method == http.MethodPatch && failed.CompareAndSwap(false, true) {
			return wandbemu.Fault{Status: http.StatusServiceUnavailable, AfterApply: true}
		}
		return wandbemu.Fault{}
	}}, nil)
	ctx := t.Context()
	ada, bob := emu.AddUser("ada", "ada@example.com"), emu.AddUser("bob", "bob@example.com")
	g, err := c.CreateGroup(ctx, wandb.NewGroup{DisplayName: "ml", Members: []wandb.Member{{Value: ada}}})
	if err != nil {
		t.Fatal(err)
	}
	emu.ResetCounts()
	if err := c.RemoveMember(ctx, g.ID, ada); err != nil {
		t.Fatal(err)
	}
	if err := c.AddMembers(ctx, g.ID, []string{bob}); err != nil {
		t.Fatal(err)
	}
	if got := emu.Groups()[0].Members; len(got) != 1 || got[0].Value != bob {
		t.Fatalf("members %v, want only bob", got)
	}
	// RemoveMember: the applied PATCH, its retry (412), a read. AddMembers: one PATCH with the read's ETag.
	if n := emu.Counts(); n["PATCH /scim/Groups/{id}"] != 3 || n["GET /scim/Groups/{id}"] != 1 {
		t.Fatalf("requests %v, want 3 PATCH and 1 GET of the team", n)
	}
}
