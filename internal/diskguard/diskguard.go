// Package diskguard refuses a store's writes while the filesystem that holds its data is nearly full, before a
// write-ahead log meets ENOSPC. Sprout's own WAL cuts a failed write back, but the metric store's (Prometheus'
// TSDB) can leave a record half written, and its repair at the next start drops everything after it: samples
// acknowledged before and after the disk filled would be lost. A refusal instead is retryable (HTTP 503, gRPC
// Unavailable) and clears when space is freed, as VictoriaMetrics' minimum free disk space does.
package diskguard

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// DefaultMinFreeBytes is the free space below which writes are refused: room for every write in flight and for
// the stores' background work (a flushed block, a checkpoint) to finish.
const DefaultMinFreeBytes = 64 << 20

// RetryAfter is the wait asked of a refused client: freeing disk space is an operator's act, not a moment's.
const RetryAfter = 10 * time.Second

// Guard checks the free space of one directory's filesystem. A nil Guard, or one with MinFree 0, allows every
// write.
type Guard struct {
	what    string
	dir     string
	minFree int64
	// free returns the bytes available to this process on dir's filesystem; now is the clock. Variables for
	// tests.
	free func(dir string) (int64, error)
	now  func() time.Time
	// plentyAt is when statfs last said at least twice the minimum was free (unix nanoseconds); 0 when the
	// last figure was lower or failed.
	plentyAt atomic.Int64
}

// Recheck is how long a figure of at least twice the minimum free is used before statfs(2) is asked again.
// A write path checks every request, thousands a second, and a statfs each was 2 % of the CPU of a metrics
// push; to go from twice the minimum (128 MiB by default) to below it within this time takes writes faster
// than a gigabyte a second. Nearer the minimum every check asks.
const Recheck = 100 * time.Millisecond

// New returns a guard for the store named what (for the message) with its data in dir.
func New(what, dir string, minFree int64) *Guard {
	return &Guard{what: what, dir: dir, minFree: minFree, free: freeBytes, now: time.Now}
}

// Check returns a *refusal.Error when dir's filesystem has less than the minimum free. It costs at most one
// statfs(2); a failed statfs allows the write (the WAL's own error then says what happened).
func (g *Guard) Check() error {
	if g == nil || g.minFree <= 0 {
		return nil
	}
	now := g.now().UnixNano()
	if at := g.plentyAt.Load(); at != 0 && now-at < int64(Recheck) && now >= at {
		return nil
	}
	free, err := g.free(g.dir)
	if err == nil && free >= 2*g.minFree {
		g.plentyAt.Store(now)
	} else {
		g.plentyAt.Store(0)
	}
	if err != nil || free >= g.minFree {
		return nil
	}
	return &refusal.Error{
		Reason:     refusal.Overloaded,
		Limit:      "min_free_disk_bytes",
		RetryAfter: RetryAfter,
		Msg: fmt.Sprintf("%s: disk nearly full: %d bytes free, below min_free_disk_bytes (%d); writes are refused until space is freed on the filesystem of %s",
			g.what, free, g.minFree, g.dir),
	}
}
