package state

import (
	"slices"
	"time"
)

// MaxHistory bounds a record's History: the oldest events are dropped first.
const MaxHistory = 50

// Event is one reconcile of a team that did something or failed: the steps it carried out, what it
// changed (drift repairs, member changes) and how it ended. It never holds secrets: errors are the
// reconciler's messages, which name resources, not credentials.
type Event struct {
	Time     time.Time    `json:"time"`
	Outcome  string       `json:"outcome"` // apply.Outcome: created, repaired, verified, failed, ...
	Detail   string       `json:"detail,omitempty"`
	Steps    []StepResult `json:"steps,omitempty"`
	Changes  []string     `json:"changes,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
	Error    string       `json:"error,omitempty"`
	// Repeats counts the later reconciles that ended the same way (same outcome, steps and messages);
	// they are folded into this event, whose Time is then the latest of them, so that a team checked
	// every few minutes does not push its real history out.
	Repeats int       `json:"repeats,omitempty"`
	First   time.Time `json:"first,omitzero"` // when the first of the folded reconciles ran
}

// StepResult is one step of a reconcile and how it ended.
type StepResult struct {
	Step  string    `json:"step"`
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"` // empty when the step succeeded
}

// AddEvent appends e to the record's history, folding it into the last event when it repeats it,
// and drops the oldest events beyond MaxHistory.
func (r *Record) AddEvent(e Event) {
	if n := len(r.History); n > 0 && sameEvent(r.History[n-1], e) {
		last := &r.History[n-1]
		if last.First.IsZero() {
			last.First = last.Time
		}
		last.Time, last.Steps = e.Time, e.Steps
		last.Repeats++
		return
	}
	r.History = append(r.History, e)
	if over := len(r.History) - MaxHistory; over > 0 {
		r.History = slices.Delete(r.History, 0, over)
	}
}

// sameEvent compares two events but for their times.
func sameEvent(a, b Event) bool {
	if a.Outcome != b.Outcome || a.Detail != b.Detail || a.Error != b.Error ||
		!slices.Equal(a.Changes, b.Changes) || !slices.Equal(a.Warnings, b.Warnings) || len(a.Steps) != len(b.Steps) {
		return false
	}
	for i := range a.Steps {
		if a.Steps[i].Step != b.Steps[i].Step || a.Steps[i].Error != b.Steps[i].Error {
			return false
		}
	}
	return true
}
