package metricdb

import (
	"fmt"
	"time"

	"github.com/prometheus/prometheus/tsdb"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

// Options shape a DB. The names and defaults are Prometheus' TSDB's.
type Options struct {
	// RetentionDuration is how long blocks are kept, measured back from the newest block's end; 0 keeps them
	// forever.
	RetentionDuration time.Duration
	// MinBlockDuration is the head's block range: the span of each block written from the head, and the head's
	// chunk range (metrichead.Options.ChunkRange).
	MinBlockDuration time.Duration
	// MaxBlockDuration caps the ranges blocks are compacted into: MinBlockDuration × 3^n, as Prometheus plans.
	MaxBlockDuration time.Duration
	// SamplesPerChunk is when the head closes a chunk.
	SamplesPerChunk int
	// CompactInterval is how often Run compacts and applies retention (Prometheus: every minute).
	CompactInterval time.Duration
	// BlocksToDelete, when set, replaces the default choice of blocks to delete on every reload (those marked
	// deletable, and those beyond RetentionDuration), as tsdb.Options.BlocksToDelete does. Parents of compacted
	// blocks are deleted whatever it says.
	BlocksToDelete tsdb.BlocksToDeleteFunc
	// OutOfOrderTimeWindow accepts samples this much older than the head's newest that cannot go in order;
	// they are written out as blocks of their own at each head compaction (metrichead's ooo.go). 0 refuses them.
	OutOfOrderTimeWindow time.Duration
	// OOOFlushSamples also writes out-of-order samples out when the head holds this many, so that a backfill
	// without new in-order samples does not grow the head without bound (Prometheus maps them to disk instead).
	OOOFlushSamples int64
}

// DefaultOptions are Prometheus' defaults: 15 days of 2-hour blocks compacted up to a tenth of the retention.
func DefaultOptions() Options {
	return Options{
		RetentionDuration: 15 * 24 * time.Hour,
		MinBlockDuration:  2 * time.Hour,
		MaxBlockDuration:  36 * time.Hour,
		SamplesPerChunk:   metrichead.DefaultOptions().SamplesPerChunk,
		CompactInterval:   time.Minute,
		OOOFlushSamples:   1 << 20,
	}
}

// Validate checks the options, naming the bad field.
func (o Options) Validate() error {
	switch {
	case o.RetentionDuration < 0:
		return fmt.Errorf("retention_duration must not be negative, got %s", o.RetentionDuration)
	case o.MinBlockDuration < time.Millisecond:
		return fmt.Errorf("min_block_duration must be at least 1ms, got %s", o.MinBlockDuration)
	case o.MinBlockDuration%time.Millisecond != 0:
		return fmt.Errorf("min_block_duration must be whole milliseconds, got %s", o.MinBlockDuration)
	case o.MaxBlockDuration < o.MinBlockDuration:
		return fmt.Errorf("max_block_duration %s is shorter than min_block_duration %s", o.MaxBlockDuration, o.MinBlockDuration)
	case o.CompactInterval <= 0:
		return fmt.Errorf("compact_interval must be positive, got %s", o.CompactInterval)
	case o.OutOfOrderTimeWindow < 0 || o.OutOfOrderTimeWindow%time.Millisecond != 0:
		return fmt.Errorf("out_of_order_time_window must be whole milliseconds, not negative, got %s", o.OutOfOrderTimeWindow)
	case o.OOOFlushSamples < 0:
		return fmt.Errorf("ooo_flush_samples must not be negative, got %d", o.OOOFlushSamples)
	}
	if err := o.HeadOptions().Validate(); err != nil {
		return fmt.Errorf("samples_per_chunk: %w", err)
	}
	return nil
}

// HeadOptions are the options of the head a DB with these options is given.
func (o Options) HeadOptions() metrichead.Options {
	return metrichead.Options{ChunkRange: o.MinBlockDuration.Milliseconds(), SamplesPerChunk: o.SamplesPerChunk,
		OutOfOrderTimeWindow: o.OutOfOrderTimeWindow.Milliseconds()}
}

// blockRanges are the ranges the compactor plans with: MinBlockDuration × 3^n up to MaxBlockDuration, as
// Prometheus' DB computes them.
func (o Options) blockRanges() []int64 {
	rngs := tsdb.ExponentialBlockRanges(o.MinBlockDuration.Milliseconds(), 10, 3)
	for i, r := range rngs {
		if r > o.MaxBlockDuration.Milliseconds() {
			return rngs[:i]
		}
	}
	return rngs
}
