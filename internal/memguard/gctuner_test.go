package memguard

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live int64
		want int
	}{
		{0, MaxGCPercent},
		{40 << 20, MaxGCPercent},   // a small heap keeps Go's default
		{GCHeadroom, MaxGCPercent}, // up to the headroom itself
		{2 * GCHeadroom, 50},       // then the garbage stays about GCHeadroom
		{200 << 20, 32},
		{400 << 20, MinGCPercent}, // the metric head at 1M series
		{1 << 30, MinGCPercent},   // never below the floor
		{100 << 30, MinGCPercent},
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

// TestRetuneAfterCollections: each collection re-tunes GOGC from the live heap then.
func TestRetuneAfterCollections(t *testing.T) {
	prev := debug.SetGCPercent(100)
	gen := gcGen.Add(1)
	defer func() { gcGen.Add(1); debug.SetGCPercent(prev); gcPercent.Store(0) }()
	var live atomic.Int64
	live.Store(512 << 20)
	retune(gen, live.Load)
	if got := debug.SetGCPercent(MaxGCPercent); got != MinGCPercent {
		t.Fatalf("GOGC %d for a 512 MiB live heap, want %d", got, MinGCPercent)
	}
	live.Store(64 << 20)
	for deadline := time.Now().Add(10 * time.Second); gcPercent.Load() != MaxGCPercent; {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d after collections with a 64 MiB live heap", gcPercent.Load())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // finalizers run on their own goroutine
	}
}
