package state

import (
	"fmt"
	"testing"
	"time"
)

func TestAddEvent(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	verified := func(i int) Event {
		return Event{Time: at(i), Outcome: "verified", Steps: []StepResult{{Step: "check_drift", Time: at(i)}}}
	}
	tests := []struct {
		name     string
		add      []Event
		wantLen  int
		wantLast Event
	}{
		{
			name:     "repeats fold into one event",
			add:      []Event{verified(0), verified(1), verified(2)},
			wantLen:  1,
			wantLast: Event{Time: at(2), Outcome: "verified", Repeats: 2, First: at(0), Steps: []StepResult{{Step: "check_drift", Time: at(2)}}},
		},
		{
			name:     "a different error is a new event",
			add:      []Event{{Time: at(0), Outcome: "failed", Error: "a"}, {Time: at(1), Outcome: "failed", Error: "b"}},
			wantLen:  2,
			wantLast: Event{Time: at(1), Outcome: "failed", Error: "b"},
		},
		{
			name: "a failed step differs from a good one",
			add: []Event{
				{Time: at(0), Outcome: "failed", Steps: []StepResult{{Step: "ensure_bucket", Time: at(0), Error: "x"}}},
				{Time: at(1), Outcome: "failed", Steps: []StepResult{{Step: "ensure_bucket", Time: at(1)}}},
			},
			wantLen:  2,
			wantLast: Event{Time: at(1), Outcome: "failed", Steps: []StepResult{{Step: "ensure_bucket", Time: at(1)}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			for _, e := range tt.add {
				r.AddEvent(e)
			}
			if len(r.History) != tt.wantLen {
				t.Fatalf("len = %d, want %d: %+v", len(r.History), tt.wantLen, r.History)
			}
			if got := fmt.Sprintf("%+v", r.History[len(r.History)-1]); got != fmt.Sprintf("%+v", tt.wantLast) {
				t.Errorf("last = %s\nwant   %+v", got, tt.wantLast)
			}
		})
	}
}

// TestAddEventBounded keeps the newest MaxHistory events.
func TestAddEventBounded(t *testing.T) {
	var r Record
	for i := range MaxHistory + 7 {
		r.AddEvent(Event{Outcome: "repaired", Changes: []string{fmt.Sprint("change ", i)}})
	}
	if len(r.History) != MaxHistory {
		t.Fatalf("len = %d, want %d", len(r.History), MaxHistory)
	}
	if first, last := r.History[0].Changes[0], r.History[MaxHistory-1].Changes[0]; first != "change 7" || last != fmt.Sprint("change ", MaxHistory+6) {
		t.Errorf("kept %q .. %q", first, last)
	}
}

// TestHistoryIsStored survives a round trip through the file.
func TestHistoryIsStored(t *testing.T) {
	db, err := Open(t.TempDir()+"/state.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := Event{Time: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), Outcome: "failed", Error: "ensure bucket: denied",
		Steps: []StepResult{{Step: "ensure_bucket", Time: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), Error: "denied"}}}
	if _, err := db.Update(t.Context(), "ml", func(r *Record) error { r.AddEvent(e); return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(t.Context(), "ml")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 1 || fmt.Sprintf("%+v", got.History[0]) != fmt.Sprintf("%+v", e) {
		t.Errorf("history = %+v", got.History)
	}
}
