package scimpush

import (
	"context"
	"slices"
	"testing"

	"github.com/byob-agent/byob-agent/state"
)

type store []state.SCIMGroup

func (s store) SCIMGroups(context.Context) ([]state.SCIMGroup, error) { return s, nil }

func TestRead(t *testing.T) {
	s := New(store{
		{ID: "1", DisplayName: "wandb-ml", Members: []state.SCIMMember{
			{UserName: "Ada@X.io", Active: true}, {Email: "bob@x.io", UserName: "bob", Active: true},
			{Email: "cy@x.io", Active: false}, {UserName: "no-email", Active: true}}},
		{ID: "2", DisplayName: "wandb-gone", Deleted: true},
	})
	live, names, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[0].ID != "1" || !slices.Equal(live[0].Members, []string{"ada@x.io", "bob@x.io"}) {
		t.Errorf("live groups %+v: want group 1 with its active members' emails", live)
	}
	if names["1"] != "wandb-ml" || names["2"] != "wandb-gone" {
		t.Errorf("names %v: want every group, deleted ones too", names)
	}
	if _, found, _ := s.Group(t.Context(), "2"); found {
		t.Error("a deleted group was found")
	}
}
