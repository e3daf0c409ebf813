// Package keylock provides a set of mutexes by key, for work that must not run twice at once on one
// team or one bucket.
package keylock

import "sync"

// Map serializes work per key. Its zero value is ready to use.
type Map struct{ m sync.Map } // key -> *sync.Mutex

// Lock locks key and returns its unlock.
func (k *Map) Lock(key string) (unlock func()) {
	v, _ := k.m.LoadOrStore(key, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// RWMap is Map with shared locks beside the exclusive ones: work that only reads may run
// alongside other reading work on the same key, never alongside a writer. Its zero value is ready to use.
type RWMap struct{ m sync.Map } // key -> *sync.RWMutex

func (k *RWMap) mutex(key string) *sync.RWMutex {
	v, _ := k.m.LoadOrStore(key, &sync.RWMutex{})
	return v.(*sync.RWMutex)
}

// Lock locks key exclusively and returns its unlock.
func (k *RWMap) Lock(key string) (unlock func()) {
	mu := k.mutex(key)
	mu.Lock()
	return mu.Unlock
}

// RLock locks key shared and returns its unlock.
func (k *RWMap) RLock(key string) (unlock func()) {
	mu := k.mutex(key)
	mu.RLock()
	return mu.RUnlock
}
