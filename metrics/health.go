package metrics

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// healthWindow is how many of a target's latest requests its error rate is taken over.
const healthWindow = 100

// TargetHealth is how the requests to one external API have gone lately, for the status page.
type TargetHealth struct {
	Target      string
	Requests    int64     // since start
	LastSuccess time.Time // zero if none yet
	LastError   time.Time // zero if none yet
	// ErrorRate is the share of failures among the latest Window requests (at most healthWindow). A
	// failure is a request that got no answer or a 5xx: a 4xx is an answer the agent acts on (a bucket
	// that does not exist yet, a team that exists already).
	ErrorRate float64
	Window    int
}

// health tracks, per target, the outcomes the transport sees; Prometheus has the totals, this keeps
// what a page shows without querying Prometheus.
type health struct {
	mu      sync.Mutex
	targets map[string]*targetState
}

type targetState struct {
	TargetHealth
	recent [healthWindow]bool // ring of outcomes, true for a failure
	next   int
}

func (h *health) observe(target string, failed bool, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.targets == nil {
		h.targets = map[string]*targetState{}
	}
	s := h.targets[target]
	if s == nil {
		s = &targetState{TargetHealth: TargetHealth{Target: target}}
		h.targets[target] = s
	}
	s.Requests++
	if failed {
		s.LastError = at
	} else {
		s.LastSuccess = at
	}
	s.recent[s.next] = failed
	s.next = (s.next + 1) % healthWindow
}

// Health returns the health of every target that was sent a request, sorted by target.
func (m *Metrics) Health() []TargetHealth {
	m.health.mu.Lock()
	defer m.health.mu.Unlock()
	out := make([]TargetHealth, 0, len(m.health.targets))
	for _, s := range m.health.targets {
		th := s.TargetHealth
		th.Window = int(min(s.Requests, healthWindow))
		failed := 0
		for _, f := range s.recent[:th.Window] {
			if f {
				failed++
			}
		}
		th.ErrorRate = float64(failed) / float64(th.Window)
		out = append(out, th)
	}
	slices.SortFunc(out, func(a, b TargetHealth) int { return cmp.Compare(a.Target, b.Target) })
	return out
}
