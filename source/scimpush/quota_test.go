package scimpush

import (
	"fmt"
	"testing"
	"time"
)

func TestQuota(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	q := NewQuota(func() time.Time { return now })
	type step struct {
		after time.Duration // since the previous step
		team  string
		want  bool
	}
	steps := []step{
		{0, "a", true},
		{time.Minute, "b", true},
		{time.Minute, "c", false},     // two an hour
		{time.Minute, "a", true},      // taken already: free
		{57 * time.Minute, "c", true}, // "a" was taken an hour ago: its slot is free
		{0, "d", false},
		{2 * time.Minute, "d", true}, // and now "b"'s
	}
	for i, s := range steps {
		now = now.Add(s.after)
		if got := q.Take(s.team, 2); got != s.want {
			t.Errorf("step %d: Take(%q) = %v, want %v", i, s.team, got, s.want)
		}
	}
	// A burst of distinct names past the quota keeps nothing more than the quota.
	for i := range 1000 {
		q.Take(fmt.Sprint("burst-", i), 2)
	}
	if len(q.taken) > 2 {
		t.Errorf("%d names remembered, want at most 2", len(q.taken))
	}
	if NewQuota(nil).Take("x", 0) {
		t.Error("a quota of 0 took a team")
	}
}
