package keylock

import "testing"

// TestRWMap: shared locks of one key coexist, an exclusive lock excludes both kinds, keys are apart.
func TestRWMap(t *testing.T) {
	var k RWMap
	r1 := k.RLock("b")
	r2 := k.RLock("b") // a second reader of the same key gets in at once
	if k.mutex("b").TryLock() {
		t.Fatal("an exclusive lock was granted while readers held the key")
	}
	w := k.Lock("other") // another key is independent
	r1()
	r2()
	if !k.mutex("b").TryLock() {
		t.Fatal("the key stayed locked after its readers left")
	}
	k.mutex("b").Unlock()
	unlock := k.Lock("b")
	if k.mutex("b").TryRLock() {
		t.Fatal("a shared lock was granted while a writer held the key")
	}
	unlock()
	w()
}
