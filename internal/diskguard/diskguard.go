// Package diskguard refuses a store's writes while the filesystem that holds its data is nearly full, before a
// write-ahead log meets ENOSPC. Sprout's own WAL cuts a failed write back, but the metric store's (Prometheus'
// TSDB) can leave a record half written, and its repair at the next start drops everything after it: samples
// acknowledged before and after the disk filled would be lost. A refusal instead is retryable (HTTP 503, gRPC
// Unavailable) and clears when space is freed, as VictoriaMetrics' minimum free disk space does.
package diskguard

import (
	"fmt"
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
	// free returns the bytes available to this process on dir's filesystem; a variable for tests.
	free func(dir string) (int64, error)
}

// New returns a guard for the store named what (for the message) with its data in dir.
func New(what, dir string, minFree int64) *Guard {
	return &Guard{what: what, dir: dir, minFree: minFree, free: freeBytes}
}

// Check returns a *refusal.Error when dir's filesystem has less than the minimum free. It costs one statfs(2);
// a failed statfs allows the write (the WAL's own error then says what happened).
func (g *Guard) Check() error {
	if g == nil || g.minFree <= 0 {
		return nil
	}
	free, err := g.free(g.dir)
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
