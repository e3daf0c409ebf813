// Package workqueue provides the daemon's work queue of reconcile keys: each key queued once, never
// handed to two workers at once, and failed keys requeued with per-key backoff.
package workqueue

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// QueueOptions configures a Queue. Zero values take the defaults.
type QueueOptions struct {
	// BaseDelay and MaxDelay shape AddRateLimited's backoff: BaseDelay*2^(n-1) after n failures,
	// capped at MaxDelay, plus up to 20% jitter (defaults 1s and 5m). The jitter is added after the
	// cap so that keys failing for a long time do not retry in lockstep.
	BaseDelay, MaxDelay time.Duration
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
	// OnDepth, if set, is called with the number of ready keys after every change (metrics). It is
	// called with the queue's lock held, so it must not call back into the queue.
	OnDepth func(n int)
}

// Queue is the daemon's work queue, modelled on client-go's workqueue: a key is queued at most once,
// a key is never handed to two workers at once (a key added while it is being processed is marked
// dirty and queued again by Done), and failed keys come back with per-key exponential backoff.
type Queue struct {
	opts QueueOptions

	mu     sync.Mutex
	ready  []queuekey.Key            // FIFO of keys ready to be handed out
	dirty  map[queuekey.Key]struct{} // keys that need processing: those in ready, and processing keys added again
	active map[queuekey.Key]struct{} // keys held by a worker (between Get and Done)
	// wake is closed to tell blocked Gets that something changed; created only when a Get waits.
	wake     chan struct{}
	shutdown bool

	waiting  waitHeap // delayed keys, earliest first
	byKey    map[queuekey.Key]*waitEntry
	timer    *time.Timer // one timer for the earliest delayed key, so delayed adds start no goroutines
	failures map[queuekey.Key]int
}

// NewQueue returns an empty queue.
func NewQueue(o QueueOptions) *Queue {
	if o.BaseDelay <= 0 {
		o.BaseDelay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Queue{
		opts:     o,
		dirty:    map[queuekey.Key]struct{}{},
		active:   map[queuekey.Key]struct{}{},
		byKey:    map[queuekey.Key]*waitEntry{},
		failures: map[queuekey.Key]int{},
	}
}

// Add queues key unless it is already waiting to be processed. It never blocks.
func (q *Queue) Add(key queuekey.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.add(key)
}

// Enqueue is Add; it lets the queue serve webhook receivers, which only need Enqueue.
func (q *Queue) Enqueue(key queuekey.Key) { q.Add(key) }

// AddAfter queues key once d has passed. If key is already delayed, the earlier time wins.
func (q *Queue) AddAfter(key queuekey.Key, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addAfter(key, d)
}

// AddRateLimited counts a failure of key and queues it after the key's next backoff.
func (q *Queue) AddRateLimited(key queuekey.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.failures[key]++
	q.addAfter(key, q.backoff(q.failures[key]))
}

// Forget resets key's failure count; call it after key was processed successfully.
func (q *Queue) Forget(key queuekey.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// Failures is the number of failures counted for key since it was last forgotten.
func (q *Queue) Failures(key queuekey.Key) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// Get blocks until a key is ready and returns it; the caller must call Done(key) when finished.
// ok is false once ctx is done (even if keys are ready: no new work is taken) or once the queue is
// shut down and nothing is left to process.
func (q *Queue) Get(ctx context.Context) (key queuekey.Key, ok bool) {
	for {
		if ctx.Err() != nil {
			return "", false
		}
		q.mu.Lock()
		q.promote(q.opts.Now())
		if len(q.ready) > 0 {
			key = q.ready[0]
			q.ready[0] = "" // let the backing array drop the string
			q.ready = q.ready[1:]
			q.depth()
			delete(q.dirty, key)
			q.active[key] = struct{}{}
			q.mu.Unlock()
			return key, true
		}
		// A processing key added again before shutdown still has to be handed out after its Done.
		if q.shutdown && len(q.dirty) == 0 {
			q.mu.Unlock()
			return "", false
		}
		if q.wake == nil {
			q.wake = make(chan struct{})
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
	}
}

// Done marks key as no longer being processed; if it was added meanwhile, it is queued again.
func (q *Queue) Done(key queuekey.Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.active, key)
	if _, ok := q.dirty[key]; ok {
		q.push(key)
	}
}

// Len is the number of keys ready to be handed out.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ready)
}

// ShutDown stops accepting keys and drops delayed ones; Get hands out what is left, then ok=false.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	q.waiting, q.byKey = nil, map[queuekey.Key]*waitEntry{}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.broadcast()
}

// add queues key unless it is already dirty; a key being processed is only marked dirty, so Done
// queues it again and no two workers hold it at once.
func (q *Queue) add(key queuekey.Key) {
	if q.shutdown {
		return
	}
	if _, ok := q.dirty[key]; ok {
		return
	}
	q.dirty[key] = struct{}{}
	if _, ok := q.active[key]; ok {
		return
	}
	q.push(key)
}

func (q *Queue) push(key queuekey.Key) {
	q.ready = append(q.ready, key)
	q.depth()
	q.broadcast()
}

func (q *Queue) depth() {
	if q.opts.OnDepth != nil {
		q.opts.OnDepth(len(q.ready))
	}
}

// broadcast wakes every blocked Get; each re-checks the queue under the lock.
func (q *Queue) broadcast() {
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
}

func (q *Queue) addAfter(key queuekey.Key, d time.Duration) {
	if q.shutdown {
		return
	}
	if d <= 0 {
		q.add(key)
		return
	}
	now := q.opts.Now()
	at := now.Add(d)
	switch e, ok := q.byKey[key]; {
	case !ok:
		e = &waitEntry{key: key, at: at}
		heap.Push(&q.waiting, e)
		q.byKey[key] = e
	case at.Before(e.at):
		e.at = at
		heap.Fix(&q.waiting, e.index)
	default:
		return
	}
	q.arm(now)
}

// promote queues every delayed key that is due at now.
func (q *Queue) promote(now time.Time) {
	for len(q.waiting) > 0 && !q.waiting[0].at.After(now) {
		e := heap.Pop(&q.waiting).(*waitEntry)
		delete(q.byKey, e.key)
		q.add(e.key)
	}
}

// arm sets the timer to fire when the earliest delayed key is due.
func (q *Queue) arm(now time.Time) {
	if len(q.waiting) == 0 {
		if q.timer != nil {
			q.timer.Stop()
		}
		return
	}
	d := q.waiting[0].at.Sub(now)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.fire)
		return
	}
	q.timer.Reset(d)
}

func (q *Queue) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	now := q.opts.Now()
	q.promote(now)
	q.arm(now)
}

// backoff is the delay after the nth failure: BaseDelay*2^(n-1) capped at MaxDelay, plus up to 20%.
func (q *Queue) backoff(n int) time.Duration {
	return retry.Policy{Base: q.opts.BaseDelay, Max: q.opts.MaxDelay, Jitter: retry.Fraction(0.2)}.Backoff(n)
}

type waitEntry struct {
	key   queuekey.Key
	at    time.Time
	index int // position in waitHeap, for heap.Fix
}

// waitHeap is a min-heap of delayed keys by due time (container/heap).
type waitHeap []*waitEntry

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waitHeap) Push(x any) {
	e := x.(*waitEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *waitHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
