package queuekey

import (
	"slices"
	"testing"
)

// The keys' text is what webhooks, the SCIM endpoint and the schedule enqueue and the controller reads.
func TestKeys(t *testing.T) {
	if All != "all" || Team("ml") != "team:ml" || Group("okta", "00g1") != "group:okta:00g1" {
		t.Errorf("keys: %q %q %q", All, Team("ml"), Group("okta", "00g1"))
	}
	if name, ok := Team("ml").Team(); !ok || name != "ml" {
		t.Errorf("Team().Team() = %q, %v", name, ok)
	}
	if src, id, ok := Group("graph", "a-b").Group(); !ok || src != "graph" || id != "a-b" {
		t.Errorf("Group().Group() = %q, %q, %v", src, id, ok)
	}
	for k, kind := range map[Key]string{All: "all", Team("x"): "team", Group("scim", "1"): "group"} {
		if k.Kind() != kind {
			t.Errorf("%q.Kind() = %q, want %q", k, k.Kind(), kind)
		}
	}
	if _, ok := All.Team(); ok {
		t.Error("All names a team")
	}
	if _, _, ok := Key("group:okta").Group(); ok {
		t.Error("a group key without an id names a group")
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		add  []Key
		want []Key
	}{
		{nil, nil},
		{[]Key{Group("okta", "b"), Team("x"), Group("okta", "b")}, []Key{Group("okta", "b"), Team("x")}},
		{[]Key{Team("x"), All, Team("y")}, []Key{All}},
	}
	for _, tt := range tests {
		var s Set
		for _, k := range tt.add {
			s.Add(k)
		}
		if got := s.List(); !slices.Equal(got, tt.want) {
			t.Errorf("Add(%v): List() = %v, want %v", tt.add, got, tt.want)
		}
	}
}
