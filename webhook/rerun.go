package webhook

import "sync"

// rerun runs a function in the background, one run at a time; a trigger during a run makes it run
// once more afterwards rather than concurrently (client-go's workqueue does the same per key, but
// needs a worker that outlives the handler; these runs are rare).
type rerun struct {
	mu             sync.Mutex
	running, again bool
}

// trigger starts fn in the background unless a run is going on, which is then marked to run again.
func (r *rerun) trigger(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		r.again = true
		return
	}
	r.running = true
	go func() {
		for {
			fn()
			r.mu.Lock()
			if !r.again {
				r.running = false
				r.mu.Unlock()
				return
			}
			r.again = false
			r.mu.Unlock()
		}
	}()
}
