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
