package scimpush

import (
	"sync"
	"time"
)

// Quota bounds the new teams SCIM pushes may ask for: at most a number of new team names in any
// hour, so that a client (or a stolen token) cannot have buckets and W&B teams made without end.
// The daemon keeps one across configuration reloads; a restart starts it afresh.
type Quota struct {
	mu    sync.Mutex
	now   func() time.Time
	taken map[string]time.Time // team name -> when it was taken, in the last hour
}

// NewQuota returns an empty quota; now is time.Now if nil.
func NewQuota(now func() time.Time) *Quota {
	if now == nil {
		now = time.Now
	}
	return &Quota{now: now, taken: map[string]time.Time{}}
}

// Take reports whether team may become a new team now with perHour new names an hour, and counts it
// if so. A name taken in the last hour is taken again at no cost (an IdP retrying, a rename back).
func (q *Quota) Take(team string, perHour int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for name, at := range q.taken {
		if now.Sub(at) >= time.Hour {
			delete(q.taken, name)
		}
	}
	if _, ok := q.taken[team]; ok {
		return true
	}
	if len(q.taken) >= perHour {
		return false
	}
	q.taken[team] = now
	return true
}
