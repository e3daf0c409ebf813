package state

import (
	"context"
	"maps"
	"strings"
	"testing"
)

// memStore is a copy target whose read-back can be made to differ from what it was given.
type memStore struct {
	recs    []Record
	cursors map[string]string
	alter   func([]Record, map[string]string) // damages what List and Cursors return
}

func (m *memStore) List(context.Context) ([]Record, error) {
	out := append([]Record(nil), m.recs...)
	if m.alter != nil {
		m.alter(out, maps.Clone(m.cursors))
	}
	return out, nil
}

func (m *memStore) Cursors(ctx context.Context) (map[string]string, error) {
	c := maps.Clone(m.cursors)
	if m.alter != nil {
		m.alter(nil, c)
	}
	return c, nil
}

func (m *memStore) Import(_ context.Context, recs []Record, cursors map[string]string) error {
	m.recs, m.cursors = recs, cursors
	return nil
}

// TestCopyVerifies: a copy that reads back different from the source is an error naming what differs.
func TestCopyVerifies(t *testing.T) {
	src := &memStore{recs: []Record{{Name: "a", Phase: PhaseInSync}, {Name: "b"}}, cursors: map[string]string{"c": "1"}}
	tests := []struct {
		name  string
		alter func([]Record, map[string]string)
		want  string // error text; "" no error
	}{
		{"same", nil, ""},
		{"record changed", func(r []Record, _ map[string]string) {
			if r != nil {
				r[1].Attempts = 1
			}
		}, `team "b" differs`},
		{"cursor changed", func(_ []Record, c map[string]string) { c["c"] = "2" }, "cursors differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Copy(t.Context(), &memStore{alter: tt.alter}, src)
			switch {
			case tt.want == "" && (err != nil || n != Copied{Teams: 2, Cursors: 1}):
				t.Errorf("Copy = %+v, %v", n, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Copy error %v, want %q", err, tt.want)
			}
		})
	}
}
