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
