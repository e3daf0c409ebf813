package pgstate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/statetest"
	"github.com/byob-agent/byob-agent/team"
)

// TestCopyBetweenBackends: a bbolt state copied into PostgreSQL and back into a new bbolt file is the
// same state, record for record and cursor for cursor.
func TestCopyBetweenBackends(t *testing.T) {
	ctx := t.Context()
	openBolt := func(name string) *state.DB {
		d, err := state.Open(filepath.Join(t.TempDir(), name), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	src := openBolt("src.db")
	for i := range 50 {
		if _, err := src.Update(ctx, fmt.Sprintf("team-%03d", i), func(r *state.Record) error {
			r.Phase, r.Profile = state.PhaseInSync, "aws"
			r.Storage = team.Storage{Provider: team.ProviderAWS, Bucket: fmt.Sprintf("wandb-%03d", i), Region: "us-east-1"}
			r.MemberUsers = map[string]string{"a@x": "u1", "b@x": "u2"}
			r.LastVerified = time.Now()
			if i%7 == 0 {
				r.Intent = &state.Intent{Op: state.OpEnsureBucket, Target: r.Storage.Bucket, Started: time.Now()}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"graph/delta", "okta/logs"} {
		if err := src.SetCursor(ctx, c, "position of "+c); err != nil {
			t.Fatal(err)
		}
	}
	statetest.Fill(t, src)
	pg := open(t)
	if n, err := state.CopySCIM(ctx, pg, src); err != nil || n != (state.Copied{Users: 6, Groups: 3}) {
		t.Fatalf("SCIM bbolt -> PostgreSQL: %+v, %v", n, err)
	}
	if n, err := state.Copy(ctx, pg, src); err != nil || n != (state.Copied{Teams: 50, Cursors: 2}) {
		t.Fatalf("bbolt -> PostgreSQL: %+v, %v", n, err)
	}
	back := openBolt("back.db")
	if n, err := state.CopySCIM(ctx, back, pg); err != nil || n != (state.Copied{Users: 6, Groups: 3}) {
		t.Fatalf("SCIM PostgreSQL -> bbolt: %+v, %v", n, err)
	}
	if n, err := state.Copy(ctx, back, pg); err != nil || n != (state.Copied{Teams: 50, Cursors: 2}) {
		t.Fatalf("PostgreSQL -> bbolt: %+v, %v", n, err)
	}
	var a, b bytes.Buffer
	if err := src.Export(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if err := back.Export(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatal("the state copied to PostgreSQL and back differs from the original")
	}
	if a, b := scimJSON(t, src), scimJSON(t, back); a != b {
		t.Fatalf("the SCIM store copied to PostgreSQL and back differs from the original:\n%s\n%s", a, b)
	}
}

// scimJSON is every SCIM user and group of a store (members resolved) as JSON.
func scimJSON(t *testing.T, s statetest.SCIMStore) string {
	users, err := s.SCIMUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	groups, err := s.SCIMGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type withMembers struct {
		state.SCIMGroup
		Members []state.SCIMMember
	}
	var gs []withMembers
	for _, g := range groups {
		gs = append(gs, withMembers{g, g.Members})
	}
	raw, err := json.Marshal([]any{users, gs})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
