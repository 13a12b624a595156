// Package logstore is Sprout's log store, in Loki's role: per-tenant streams of log lines with structured
// metadata, a write-ahead log that makes every acknowledged push survive a crash, in-memory head chunks,
// compressed chunks and their index (label postings and a trace-id index) in object storage, retention and
// compaction, and a Loki-compatible HTTP API (push, query, labels, series, tail, index stats).
//
// It owns the on-disk and in-bucket formats. It must not know about the Collector: components/logstoreext
// bridges pipelines and the API port to it.
package logstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/wal"
)

// Config configures a Store.
type Config struct {
	// DataDir holds the WAL; chunks go to the bucket.
	DataDir string `mapstructure:"data_dir"`
	// MinFreeDiskBytes refuses pushes (503, retryable) while data_dir's filesystem has less free, so that every
	// store refuses alike before any WAL meets a full disk (see internal/diskguard). 0 turns the check off.
	MinFreeDiskBytes int64 `mapstructure:"min_free_disk_bytes"`

	WAL WALConfig `mapstructure:"wal"`

	// ChunkTargetSize is the uncompressed size at which a stream's head is cut into a chunk.
	ChunkTargetSize int `mapstructure:"chunk_target_size"`
	// MaxChunkAge cuts a head once its oldest line has waited this long.
	MaxChunkAge time.Duration `mapstructure:"max_chunk_age"`
	// ChunkIdlePeriod cuts a head that has received nothing for this long.
	ChunkIdlePeriod time.Duration `mapstructure:"chunk_idle_period"`
	// FlushCheckPeriod is how often heads are checked for cutting and the WAL is checkpointed.
	FlushCheckPeriod time.Duration `mapstructure:"flush_check_period"`
	// Retention deletes chunks whose newest line is older than this; 0 keeps everything.
	Retention time.Duration `mapstructure:"retention_period"`
	// CompactionInterval is how often small chunks of a stream are merged and the index is consolidated.
	CompactionInterval time.Duration `mapstructure:"compaction_interval"`
	// MaxHeadBytes requests an early flush when the heads of all streams hold more line bytes than this.
	MaxHeadBytes int `mapstructure:"max_head_bytes"`
	// ChunkCacheSize bounds the chunk objects of a remote bucket (S3) kept in memory, in compressed bytes; 0
	// keeps none. A filesystem bucket's chunks are left to the kernel's page cache.
	ChunkCacheSize int `mapstructure:"chunk_cache_size"`

	Limits Limits `mapstructure:"limits"`
}

// WALConfig configures the write-ahead log.
type WALConfig struct {
	// Policy is wal.fsync (always (default), interval, never) and wal.fsync_interval.
	wal.Policy `mapstructure:",squash"`
	// SegmentBytes starts a new WAL segment file once the current one is this large (the trace store's key).
	SegmentBytes int64 `mapstructure:"segment_bytes"`
	// SegmentSize is the deprecated name of SegmentBytes, as the log store spelled it before the stores shared
	// one WAL; set, it wins over segment_bytes, with a warning at start (see segmentBytes).
	SegmentSize int64 `mapstructure:"segment_size"`
}

// segmentBytes is the segment size to use: segment_bytes, or the deprecated segment_size when that is set, with
// the warning to log for it.
func (c WALConfig) segmentBytes() (size int64, key, warning string) {
	if c.SegmentSize != 0 {
		return c.SegmentSize, "wal.segment_size", fmt.Sprintf("wal.segment_size is deprecated and will be removed: write wal.segment_bytes: %d", c.SegmentSize)
	}
	return c.SegmentBytes, "wal.segment_bytes", ""
}

// Limits are per-tenant ingestion limits, named as Loki's limits_config.
type Limits struct {
	IngestionRateMB         float64       `mapstructure:"ingestion_rate_mb"`
	IngestionBurstSizeMB    float64       `mapstructure:"ingestion_burst_size_mb"`
	MaxLineSize             int           `mapstructure:"max_line_size"`
	MaxLineSizeTruncate     bool          `mapstructure:"max_line_size_truncate"`
	MaxGlobalStreamsPerUser int           `mapstructure:"max_global_streams_per_user"`
	RejectOldSamples        bool          `mapstructure:"reject_old_samples"`
	RejectOldSamplesMaxAge  time.Duration `mapstructure:"reject_old_samples_max_age"`
	CreationGracePeriod     time.Duration `mapstructure:"creation_grace_period"`
	MaxLabelNamesPerSeries  int           `mapstructure:"max_label_names_per_series"`
	MaxLabelNameLength      int           `mapstructure:"max_label_name_length"`
	MaxLabelValueLength     int           `mapstructure:"max_label_value_length"`
	MaxEntriesLimitPerQuery int           `mapstructure:"max_entries_limit_per_query"`
	MaxQuerySeries          int           `mapstructure:"max_query_series"`
	// MaxQueryLength refuses a query whose time range, plus its longest range selector, is longer (Loki's
	// max_query_length); 0 does not limit.
	MaxQueryLength time.Duration `mapstructure:"max_query_length"`
	// MaxQueryBytesRead stops a query once it has read this many bytes of lines (Loki's max_query_bytes_read);
	// 0 does not limit.
	MaxQueryBytesRead int64 `mapstructure:"max_query_bytes_read"`
	// MaxFetchedSamples bounds the samples (one per matching line, 16 bytes each) a metric query holds in memory
	// (as the metrics store's max_fetched_samples, Prometheus' query.max-samples); 0 does not limit.
	MaxFetchedSamples int64 `mapstructure:"max_fetched_samples"`
	// Config is the query admission (query_timeout, max_concurrent (Loki's querier max_concurrent),
	// max_concurrent_per_tenant, max_outstanding_per_tenant, max_queue_wait), as every store spells it.
	querylimit.Config `mapstructure:",squash"`
	// MaxConcurrentTailRequests is how many tail WebSockets may be open at once over all tenants (Loki's
	// max_concurrent_tail_requests); one more is refused with 429 before the upgrade. 0 does not limit.
	MaxConcurrentTailRequests int `mapstructure:"max_concurrent_tail_requests"`
	// DiscoverLogLevels adds a detected_level structured-metadata field to every pushed line that has none
	// (Loki 3's discover_log_levels, on by default there too).
	DiscoverLogLevels bool `mapstructure:"discover_log_levels"`
}

// DefaultConfig returns laptop-friendly defaults (Loki's limit defaults, 720h retention).
func DefaultConfig() Config {
	return Config{
		DataDir:            "./data/logs",
		MinFreeDiskBytes:   diskguard.DefaultMinFreeBytes,
		WAL:                WALConfig{Policy: wal.Policy{Fsync: wal.FsyncAlways, FsyncInterval: time.Second}, SegmentBytes: 128 << 20},
		ChunkTargetSize:    1536 << 10,
		MaxChunkAge:        2 * time.Hour,
		ChunkIdlePeriod:    30 * time.Minute,
		FlushCheckPeriod:   30 * time.Second,
		Retention:          720 * time.Hour,
		CompactionInterval: 10 * time.Minute,
		ChunkCacheSize:     64 << 20,
		MaxHeadBytes:       64 << 20,
		Limits:             DefaultLimits(),
	}
}

// DefaultLimits are Loki's defaults.
func DefaultLimits() Limits {
	return Limits{
		IngestionRateMB:         4,
		IngestionBurstSizeMB:    6,
		MaxLineSize:             256 << 10,
		MaxGlobalStreamsPerUser: 5000,
		RejectOldSamples:        true,
		RejectOldSamplesMaxAge:  7 * 24 * time.Hour,
		CreationGracePeriod:     10 * time.Minute,
		MaxLabelNamesPerSeries:  15,
		MaxLabelNameLength:      1024,
		MaxLabelValueLength:     2048,
		MaxEntriesLimitPerQuery: 5000,
		MaxQuerySeries:          500,
		DiscoverLogLevels:       true,
		MaxQueryLength:          721 * time.Hour,
		Config: querylimit.Config{
			QueryTimeout:            time.Minute,
			MaxConcurrent:           8,
			MaxConcurrentPerTenant:  4,
			MaxOutstandingPerTenant: 100,
			MaxQueueWait:            10 * time.Second,
		},
		// Loki's default is 10 per querier; one Sprout is one querier.
		MaxConcurrentTailRequests: 10,
		// 10M samples are 160 MB of points: far more lines than a one-machine store is asked to aggregate in
		// one query, and a bound the memory governor's query share can live with.
		MaxFetchedSamples: 10_000_000,
	}
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must be set")
	}
	if c.MinFreeDiskBytes < 0 {
		return errors.New("min_free_disk_bytes: must not be negative")
	}
	if err := c.WAL.Policy.Validate(); err != nil {
		return err
	}
	if size, key, warning := c.WAL.segmentBytes(); size < 1<<20 {
		if warning != "" {
			return fmt.Errorf("%s: must be at least 1 MiB (%s is deprecated: use wal.segment_bytes)", key, key)
		}
		return fmt.Errorf("%s: must be at least 1 MiB", key)
	}
	if c.ChunkTargetSize < 1024 {
		return fmt.Errorf("chunk_target_size: %d is too small (minimum 1024 bytes)", c.ChunkTargetSize)
	}
	if c.MaxChunkAge <= 0 || c.ChunkIdlePeriod <= 0 || c.FlushCheckPeriod <= 0 {
		return errors.New("max_chunk_age, chunk_idle_period and flush_check_period: must be positive")
	}
	if c.ChunkCacheSize < 0 {
		return errors.New("chunk_cache_size: must not be negative (0 keeps no chunk in memory)")
	}
	if c.Retention < 0 {
		return errors.New("retention_period: must not be negative (0 keeps everything)")
	}
	if c.Limits.MaxLineSize < 0 || c.Limits.MaxGlobalStreamsPerUser < 0 || c.Limits.IngestionRateMB < 0 {
		return errors.New("limits: must not be negative")
	}
	if c.Limits.MaxQueryLength < 0 {
		return errors.New("limits.max_query_length: must not be negative (0 does not limit)")
	}
	if c.Limits.MaxQueryBytesRead < 0 {
		return errors.New("limits.max_query_bytes_read: must not be negative (0 does not limit)")
	}
	if c.Limits.MaxFetchedSamples < 0 {
		return errors.New("limits.max_fetched_samples: must not be negative (0 does not limit)")
	}
	if c.Limits.MaxConcurrentTailRequests < 0 {
		return errors.New("limits.max_concurrent_tail_requests: must not be negative (0 does not limit)")
	}
	return c.Limits.Config.Validate("limits.")
}
