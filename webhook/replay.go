package webhook

import (
	"container/heap"
	"sync"
)

// replayCache remembers the ids of accepted calls until they expire, in bounded memory.
type replayCache struct {
	mu     sync.Mutex
	max    int
	ids    map[string]struct{}
	byTime expiryHeap // the same ids with the unix second after which each may be forgotten, soonest first
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, ids: map[string]struct{}{}}
}

// add records id until expires and reports whether it was new. Expired ids are forgotten first; if
// the cache is still full, the id closest to expiring goes, as it is the least likely to come back.
func (c *replayCache) add(id string, expires, now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.byTime) > 0 && c.byTime[0].expires < now {
		c.forgetSoonest()
	}
	if _, ok := c.ids[id]; ok {
		return false
	}
	if len(c.byTime) >= c.max {
		c.forgetSoonest()
	}
	c.ids[id] = struct{}{}
	heap.Push(&c.byTime, idExpiry{id, expires})
	return true
}

// forget drops id, so that a retry of a call that could not be taken is accepted.
func (c *replayCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.ids[id]; !ok {
		return
	}
	delete(c.ids, id)
	for i, e := range c.byTime {
		if e.id == id {
			heap.Remove(&c.byTime, i)
			return
		}
	}
}

func (c *replayCache) forgetSoonest() {
	delete(c.ids, heap.Pop(&c.byTime).(idExpiry).id)
}

type idExpiry struct {
	id      string
	expires int64
}

type expiryHeap []idExpiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(idExpiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
