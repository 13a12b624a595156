package memguard

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
)

// The collector's headroom. Go lets the heap grow to (1 + GOGC/100) times the live heap before it collects:
// with the default GOGC=100, twice the live heap. While the live heap is small that doubling costs little and
// saves collector CPU; once it is large (the metric head holds ~390 MB at 1M active series) it is what sets the
// process's peak memory. So, unless GOGC is set in the environment, Sprout re-tunes GOGC after every collection
// so that the garbage allowed on top of the live heap is about GCHeadroom, between MinGCPercent and
// MaxGCPercent: GOGC=100 up to a 64 MiB live heap (the all-in-one at rest), lower above it, 20 from 320 MiB on.
// At 1M active series that cut the peak RSS while ingesting from 837 to 575 MiB for 15 % more CPU per sample
// (docs/benchmarks.md). GOMEMLIMIT, when set, still caps the heap as a whole.
const (
	GCHeadroom   = 64 << 20
	MinGCPercent = 20
	MaxGCPercent = 100
)

// gcPercentFor is the GOGC for a live heap of live bytes.
func gcPercentFor(live int64) int {
	if live <= 0 {
		return MaxGCPercent
	}
	return int(min(max(100*GCHeadroom/live, MinGCPercent), MaxGCPercent))
}

var (
	gcTuned    atomic.Bool
	gcPercent  atomic.Int32 // the GOGC last set, for tests
	gcGen      atomic.Int64 // a chain of retunes armed under another generation stops (tests)
	gcDecision atomic.Pointer[string]
)

// GCDecision is what TuneGC said, for the log; "" before it ran.
func GCDecision() string {
	if d := gcDecision.Load(); d != nil {
		return *d
	}
	return ""
}

// TuneGC starts re-tuning GOGC after every collection, unless GOGC is set in the environment (getenv). It says
// what it did, for the log.
func TuneGC(getenv func(string) string) string {
	d := fmt.Sprintf("GOGC tuned after each collection to leave about %s of garbage over the live heap (between %d and %d)",
		mib(GCHeadroom), MinGCPercent, MaxGCPercent)
	if v := getenv("GOGC"); v != "" {
		d = fmt.Sprintf("GOGC=%s, as set in the environment", v)
	} else if gcTuned.CompareAndSwap(false, true) {
		retune(gcGen.Load(), readHeapLive)
	}
	gcDecision.Store(&d)
	return d
}

// gcSentinel is an object whose finalizer runs after the collection that finds it unreachable: one per
// collection, each finalizer arming the next. It holds a pointer and is larger than the tiny allocator's
// blocks, whose objects may never be finalized.
type gcSentinel struct {
	_ *int
	_ [16]byte
}

// retune sets GOGC for the live heap now and arms itself for after the next collection.
func retune(gen int64, heapLive func() int64) {
	if gen != gcGen.Load() {
		return
	}
	if p := int32(gcPercentFor(heapLive())); p != gcPercent.Load() {
		debug.SetGCPercent(int(p))
		gcPercent.Store(p)
	}
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) { retune(gen, heapLive) })
}
