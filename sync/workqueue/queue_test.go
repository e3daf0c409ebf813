package workqueue

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// Webhook receivers only need Enqueue.
var _ interface{ Enqueue(queuekey.Key) } = (*Queue)(nil)

// fakeClock is a settable clock for QueueOptions.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// dueIn is how long until the delayed key is due, per the queue's clock; ok=false if it is not delayed.
func dueIn(q *Queue, key queuekey.Key) (time.Duration, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.byKey[key]
	if !ok {
		return 0, false
	}
	return e.at.Sub(q.opts.Now()), true
}

// mustGet takes the next key, failing the test if none comes within a second.
func mustGet(t *testing.T, q *Queue) queuekey.Key {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	key, ok := q.Get(ctx)
	if !ok {
		t.Fatal("Get: no key")
	}
	return key
}

// assertEmpty checks that Get hands out nothing for a short while.
func assertEmpty(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if key, ok := q.Get(ctx); ok {
		t.Fatalf("Get = %q, want nothing", key)
	}
}

func TestQueueCoalesces(t *testing.T) {
	q := NewQueue(QueueOptions{})
	for range 3 {
		q.Add("a")
	}
	q.Enqueue("a")
	if got := q.Len(); got != 1 {
		t.Fatalf("Len = %d, want 1", got)
	}
	if got := mustGet(t, q); got != "a" {
		t.Fatalf("Get = %q, want a", got)
	}
	assertEmpty(t, q)
}

func TestQueueDirtyWhileProcessing(t *testing.T) {
	q := NewQueue(QueueOptions{})
	q.Add("a")
	q.Add("b")
	if got := mustGet(t, q); got != "a" {
		t.Fatalf("Get = %q, want a", got)
	}
	q.Add("a")
	q.Add("a")
	// a is being processed: a second worker must get b, then nothing, until a is done.
	if got := mustGet(t, q); got != "b" {
		t.Fatalf("Get = %q, want b", got)
	}
	assertEmpty(t, q)
	q.Done("a")
	if got := q.Len(); got != 1 {
		t.Fatalf("Len after Done = %d, want 1", got)
	}
	if got := mustGet(t, q); got != "a" {
		t.Fatalf("Get = %q, want a again", got)
	}
	q.Done("a")
	q.Done("b")
	assertEmpty(t, q)
}

func TestQueueNeverTwoWorkersOnOneKey(t *testing.T) {
	const workers, adds, keys = 8, 10_000, 50
	q := NewQueue(QueueOptions{})
	var inFlight, processed [keys]atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				key, ok := q.Get(t.Context())
				if !ok {
					return
				}
				var i int
				if _, err := fmt.Sscanf(string(key), "k%d", &i); err != nil {
					t.Errorf("unexpected key %q", key)
					q.Done(key)
					continue
				}
				if !inFlight[i].CompareAndSwap(false, true) {
					t.Errorf("key %s handed to two workers", key)
				}
				processed[i].Store(true)
				time.Sleep(time.Duration(i%3) * time.Microsecond)
				inFlight[i].Store(false)
				q.Done(key)
			}
		})
	}
	var producers sync.WaitGroup
	for p := range 4 {
		producers.Go(func() {
			for i := p; i < adds; i += 4 {
				q.Add(queuekey.Key(fmt.Sprintf("k%d", i%keys)))
			}
		})
	}
	producers.Wait()
	q.ShutDown()
	wg.Wait()
	for i := range processed {
		if !processed[i].Load() {
			t.Errorf("k%d never processed", i)
		}
	}
}

func TestQueueAddAfter(t *testing.T) {
	type add struct {
		key queuekey.Key
		d   time.Duration
	}
	tests := []struct {
		name string
		adds []add
		want []queuekey.Key
	}{
		{"ordered by due time", []add{{"b", 2 * time.Second}, {"a", time.Second}, {"c", 3 * time.Second}}, []queuekey.Key{"a", "b", "c"}},
		{"a later add keeps the earlier time", []add{{"a", time.Second}, {"b", 2 * time.Second}, {"a", 5 * time.Second}}, []queuekey.Key{"a", "b"}},
		{"an earlier add moves the key up", []add{{"a", 5 * time.Second}, {"b", 2 * time.Second}, {"a", time.Second}}, []queuekey.Key{"a", "b"}},
		{"no delay is Add", []add{{"b", time.Second}, {"a", 0}, {"c", -time.Second}}, []queuekey.Key{"a", "c", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			q := NewQueue(QueueOptions{Now: clock.Now})
			defer q.ShutDown()
			for _, a := range tt.adds {
				q.AddAfter(a.key, a.d)
			}
			clock.Advance(10 * time.Second)
			var got []queuekey.Key
			for range tt.want {
				key := mustGet(t, q)
				got = append(got, key)
				q.Done(key)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Get order = %v, want %v", got, tt.want)
			}
			assertEmpty(t, q)
		})
	}
}

func TestQueueAddAfterNotBeforeDue(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{Now: clock.Now})
	defer q.ShutDown()
	q.AddAfter("a", time.Minute)
	clock.Advance(59 * time.Second)
	assertEmpty(t, q)
	clock.Advance(time.Second)
	if got := mustGet(t, q); got != "a" {
		t.Fatalf("Get = %q, want a", got)
	}
}

// The timer, not a Get's own check, makes a delayed key ready on the real clock.
func TestQueueAddAfterRealClock(t *testing.T) {
	var depth atomic.Int64
	q := NewQueue(QueueOptions{OnDepth: func(n int) { depth.Store(int64(n)) }})
	defer q.ShutDown()
	q.AddAfter("a", 10*time.Millisecond)
	deadline := time.Now().Add(time.Second)
	for depth.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("delayed key never became ready")
		}
		time.Sleep(time.Millisecond)
	}
	if got := mustGet(t, q); got != "a" {
		t.Fatalf("Get = %q, want a", got)
	}
}

func TestQueueBackoff(t *testing.T) {
	clock := newFakeClock()
	q := NewQueue(QueueOptions{BaseDelay: time.Second, MaxDelay: 10 * time.Second, Now: clock.Now})
	defer q.ShutDown()
	// Failures 1..7: doubling from BaseDelay, then capped at MaxDelay; each plus up to 20%.
	for n, want := range []time.Duration{1, 2, 4, 8, 10, 10, 10} {
		want *= time.Second
		q.AddRateLimited("a")
		if got := q.Failures("a"); got != n+1 {
			t.Fatalf("Failures = %d, want %d", got, n+1)
		}
		got, ok := dueIn(q, "a")
		if !ok || got < want || got > want+want/5 {
			t.Fatalf("failure %d: delay %v (delayed %v), want in [%v, %v]", n+1, got, ok, want, want+want/5)
		}
		clock.Advance(got)
		q.Done(mustGet(t, q))
	}
	q.Forget("a")
	if got := q.Failures("a"); got != 0 {
		t.Fatalf("Failures after Forget = %d, want 0", got)
	}
	q.AddRateLimited("a")
	if got, _ := dueIn(q, "a"); got < time.Second || got > 1200*time.Millisecond {
		t.Fatalf("delay after Forget = %v, want in [1s, 1.2s]", got)
	}
}

func TestQueueBackoffBounds(t *testing.T) {
	tests := []struct {
		name     string
		opts     QueueOptions
		failures int
		want     time.Duration
	}{
		{"defaults first", QueueOptions{}, 1, time.Second},
		{"defaults capped", QueueOptions{}, 20, 5 * time.Minute},
		{"no overflow", QueueOptions{BaseDelay: time.Hour, MaxDelay: 24 * time.Hour}, 1000, 24 * time.Hour},
		{"base above cap", QueueOptions{BaseDelay: time.Hour, MaxDelay: time.Minute}, 1, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue(tt.opts)
			for range 100 { // jitter is random: sample it
				if got := q.backoff(tt.failures); got < tt.want || got > tt.want+tt.want/5 {
					t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tt.failures, got, tt.want, tt.want+tt.want/5)
				}
			}
		})
	}
}

func TestQueueShutDownDrains(t *testing.T) {
	q := NewQueue(QueueOptions{})
	q.Add("a")
	q.Add("b")
	q.Add("c")
	if got := mustGet(t, q); got != "a" {
		t.Fatalf("Get = %q, want a", got)
	}
	q.Add("a") // dirty while processing: still owed after ShutDown
	q.AddAfter("d", time.Millisecond)
	q.ShutDown()
	q.Add("e")
	q.AddAfter("f", time.Millisecond)
	q.AddRateLimited("g")

	var got []queuekey.Key
	for range 2 {
		k := mustGet(t, q)
		got = append(got, k)
		q.Done(k)
	}
	// a is still owed: Get waits for its Done instead of reporting the queue drained.
	next := make(chan queuekey.Key)
	go func() {
		k, _ := q.Get(t.Context())
		next <- k
	}()
	select {
	case k := <-next:
		t.Fatalf("Get = %q before a was done", k)
	case <-time.After(20 * time.Millisecond):
	}
	q.Done("a")
	got = append(got, <-next)
	q.Done("a")
	if want := []queuekey.Key{"b", "c", "a"}; !slices.Equal(got, want) {
		t.Fatalf("drained %v, want %v", got, want)
	}
	if k, ok := q.Get(t.Context()); ok {
		t.Fatalf("Get after drain = %q, want ok=false", k)
	}
}

func TestQueueShutDownWakesGet(t *testing.T) {
	q := NewQueue(QueueOptions{})
	done := make(chan bool)
	go func() {
		_, ok := q.Get(t.Context())
		done <- ok
	}()
	time.Sleep(10 * time.Millisecond)
	q.ShutDown()
	if <-done {
		t.Fatal("Get on a shut down, empty queue: ok=true")
	}
}

func TestQueueGetHonoursContext(t *testing.T) {
	t.Run("deadline while waiting", func(t *testing.T) {
		q := NewQueue(QueueOptions{})
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, ok := q.Get(ctx); ok {
			t.Fatal("Get on an empty queue: ok=true")
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Get returned after %v", took)
		}
	})
	t.Run("cancelled takes no new key", func(t *testing.T) {
		q := NewQueue(QueueOptions{})
		q.Add("a")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if key, ok := q.Get(ctx); ok {
			t.Fatalf("Get with a cancelled context = %q", key)
		}
		if got := q.Len(); got != 1 {
			t.Fatalf("Len = %d, want the key still queued", got)
		}
	})
}

func TestQueueOnDepth(t *testing.T) {
	var mu sync.Mutex
	var depths []int
	q := NewQueue(QueueOptions{OnDepth: func(n int) {
		mu.Lock()
		defer mu.Unlock()
		depths = append(depths, n)
	}})
	q.Add("a")
	q.Add("b")
	q.Add("a") // coalesced: no change
	a := mustGet(t, q)
	q.Add("a") // dirty while processing: not queued yet
	q.Done(a)
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, 2, 1, 2}; !slices.Equal(depths, want) {
		t.Fatalf("OnDepth calls = %v, want %v", depths, want)
	}
}

func BenchmarkQueueAddGet(b *testing.B) {
	q := NewQueue(QueueOptions{})
	keys := make([]queuekey.Key, 64)
	for i := range keys {
		keys[i] = queuekey.Key(fmt.Sprintf("team:%d", i))
	}
	ctx := b.Context()
	i := 0
	for b.Loop() {
		q.Add(keys[i%len(keys)])
		q.Add(keys[i%len(keys)])
		key, _ := q.Get(ctx)
		q.Done(key)
		i++
	}
}
