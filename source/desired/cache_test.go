package desired

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/source"
)

// stubSource is a source.Source whose answers the test sets.
type stubSource struct {
	groups []source.Group
	err    error
}

func (s *stubSource) Groups(context.Context) ([]source.Group, error) { return s.groups, s.err }

func (s *stubSource) Group(_ context.Context, id string) (source.Group, bool, error) {
	for _, g := range s.groups {
		if g.ID == id {
			return g, true, s.err
		}
	}
	return source.Group{}, false, s.err
}

func TestIdPSourceCache(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	stub := &stubSource{err: errors.New("okta is down")}
	s := &idpSource{key: "okta", team: "okta", src: stub, rule: &config.GroupRule{Prefix: "wandb-"}}

	// Never read: the error stops the reconcile (reconciling without the source would orphan its teams).
	if err := s.refresh(ctx, log); err == nil {
		t.Fatal("first read failed but no error")
	}
	stub.err = nil
	stub.groups = []source.Group{{ID: "g1", Name: "wandb-ml", Members: []string{"ada@example.com"}}, {ID: "g2", Name: "other"}}
	if err := s.refresh(ctx, log); err != nil {
		t.Fatal(err)
	}
	// Down again: the groups read before stay.
	stub.err = errors.New("okta is down")
	if err := s.refresh(ctx, log); err != nil || len(s.groups) != 2 {
		t.Fatalf("refresh with a cache: %v, %d groups", err, len(s.groups))
	}
	stub.err = nil

	// A rename seen by a webhook: the old team is named too, so it gets orphaned.
	stub.groups[0].Name = "wandb-research"
	if err := s.refreshOne(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if got := s.teamNames("g1"); !slices.Equal(got, []string{"research", "ml"}) {
		t.Errorf("team names after a rename: %v", got)
	}
	// Groups outside the rule are not teams.
	if got := s.snapshot(); len(got) != 2 || got[0].ID != "g1" {
		t.Errorf("snapshot = %+v", got)
	}
	// A deleted group: not found on re-read, its team is still named so that it is orphaned.
	stub.groups = stub.groups[1:]
	if err := s.refreshOne(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.groups["g1"]; ok || !slices.Contains(s.teamNames("g1"), "research") {
		t.Errorf("after delete: cached %v, names %v", s.groups, s.teamNames("g1"))
	}
}

// nestingStub is a stubSource whose groups nest: parents maps a group to the selected groups holding it.
type nestingStub struct {
	stubSource
	parents map[string][]string
}

func (s *nestingStub) Containing(id string) []string { return s.parents[id] }

// TestNestedGroupChange: a webhook about a nested group that is not selected re-reads, and names the
// teams of, the selected groups that contain it.
func TestNestedGroupChange(t *testing.T) {
	tests := []struct {
		name      string
		key       string
		wantNames []string
		wantML    []string // wandb-ml's members after the re-read
	}{
		{"nested group re-reads its container", "n1", []string{"ml"}, []string{"ada@example.com", "bob@example.com"}},
		{"selected group nested in another re-reads both", "g2", []string{"vision", "ml"}, []string{"ada@example.com", "bob@example.com"}},
		{"unrelated group re-reads nothing else", "x9", nil, []string{"ada@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			stub := &nestingStub{parents: map[string][]string{"n1": {"g1"}, "g2": {"g1"}}}
			stub.groups = []source.Group{
				{ID: "g1", Name: "wandb-ml", Members: []string{"ada@example.com"}},
				{ID: "g2", Name: "wandb-vision", Members: []string{"ada@example.com"}},
			}
			s := &idpSource{key: "graph", team: "entra", src: stub, rule: &config.GroupRule{Prefix: "wandb-"}}
			if err := s.refresh(ctx, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			// bob joins the nested group: Graph's transitive members of g1 now hold him.
			stub.groups[0].Members = []string{"ada@example.com", "bob@example.com"}
			if err := s.refreshOne(ctx, tt.key); err != nil {
				t.Fatal(err)
			}
			if got := s.groups["g1"].Members; !slices.Equal(got, tt.wantML) {
				t.Errorf("wandb-ml members = %v, want %v", got, tt.wantML)
			}
			if got := s.teamNames(tt.key); !slices.Equal(got, tt.wantNames) {
				t.Errorf("team names of %s = %v, want %v", tt.key, got, tt.wantNames)
			}
		})
	}
}
