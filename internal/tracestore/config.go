package tracestore

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/wal"
)

// Config is the trace store's configuration.
type Config struct {
	// DataDir holds the WAL, per tenant: <data_dir>/tenants/<tenant>/wal/ (before: <data_dir>/<tenant>/wal/, moved at start).
	DataDir string    `mapstructure:"data_dir"`
	WAL     WALConfig `mapstructure:"wal"`
	// MinFreeDiskBytes refuses pushes (503, retryable) while data_dir's filesystem has less free, so that every
	// store refuses alike before any WAL meets a full disk (see internal/diskguard). 0 turns the check off.
	MinFreeDiskBytes int64 `mapstructure:"min_free_disk_bytes"`
	// Storage is where blocks go: <tenant>/blocks/<ulid>/ in the bucket. Default: the filesystem under
	// <data_dir>/blocks.
	Storage bucket.Config `mapstructure:"storage"`
	// ReadCacheBytes keeps this many bytes of recently read block ranges in memory when blocks live in an object
	// store (not used for the filesystem backend, where the OS caches pages). 0 disables it.
	ReadCacheBytes int64 `mapstructure:"read_cache_bytes"`

	// TraceIdlePeriod: a trace that received no span for this long is complete and moves to the next block.
	TraceIdlePeriod time.Duration `mapstructure:"trace_idle_period"`
	// MaxBlockDuration bounds how long complete traces wait in memory before their block is written, and how long
	// a trace that keeps receiving spans stays live before it is cut anyway.
	MaxBlockDuration time.Duration `mapstructure:"max_block_duration"`
	// MaxBlockBytes writes a block as soon as this many bytes of complete traces are waiting, and caps the span
	// data of one block written from memory.
	MaxBlockBytes int64 `mapstructure:"max_block_bytes"`
	// FlushInterval is the longest a complete trace waits in memory before its block is written.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// MaxLiveBytes bounds the bytes held in memory by traces (live and waiting for a block). Past a quarter of
	// it waiting traces are written once they fill half a block, and every live trace is cut and written once
	// live traces alone hold that much; past half of it every trace is cut and written; at it, writes are refused
	// with a retryable error (gRPC RESOURCE_EXHAUSTED, HTTP 429) until a block is written. 0 disables the bound.
	MaxLiveBytes int64 `mapstructure:"max_live_bytes"`
	// FlushAllOnShutdown writes every live trace to a block on shutdown (the seed's ingester.flush_all_on_shutdown).
	// Off, live traces stay in the WAL and are replayed at the next start.
	FlushAllOnShutdown bool `mapstructure:"flush_all_on_shutdown"`

	Compaction CompactionConfig `mapstructure:"compaction"`
	Limits     Limits           `mapstructure:"limits"`
}

// WALConfig configures the write-ahead log.
type WALConfig struct {
	// Policy is wal.fsync (always, interval (default), never) and wal.fsync_interval; the keys sync and
	// sync_interval of earlier releases still work.
	wal.Policy `mapstructure:",squash"`
	// SegmentBytes starts a new WAL segment file once the current one is this large.
	SegmentBytes int64 `mapstructure:"segment_bytes"`
}

// CompactionConfig configures block merging and retention.
type CompactionConfig struct {
	// Interval between compaction and retention passes.
	Interval time.Duration `mapstructure:"interval"`
	// BlockRetention deletes blocks whose newest span is older than this (the seed's compactor block_retention).
	BlockRetention time.Duration `mapstructure:"block_retention"`
	// MaxBlockBytes: blocks smaller than this are merged; merging stops once an output block reaches it.
	MaxBlockBytes int64 `mapstructure:"max_block_bytes"`
	// MinInputBlocks is how many small blocks must exist before they are merged.
	MinInputBlocks int `mapstructure:"min_input_blocks"`
	// MaxInputBlocks is how many blocks one merge reads at once (0: as many as max_block_bytes allows). A merge
	// holds a decoded page and a read buffer per column of every input, so this bounds compaction's memory.
	MaxInputBlocks int `mapstructure:"max_input_blocks"`
}

// Limits are the per-tenant limits; every refusal names the limit it hit.
type Limits struct {
	// MaxBytesPerTrace refuses spans that would grow a live trace beyond this size (0 = unlimited).
	MaxBytesPerTrace int64 `mapstructure:"max_bytes_per_trace"`
	// MaxSearchDuration refuses searches whose start..end window is longer (0 = unlimited).
	MaxSearchDuration time.Duration `mapstructure:"max_search_duration"`
	// DefaultSearchLimit is the number of traces a search returns when the request has no limit.
	DefaultSearchLimit int `mapstructure:"default_search_limit"`
	// MaxSearchLimit caps the limit a request may ask for.
	MaxSearchLimit int `mapstructure:"max_search_limit"`
	// IngestionRateLimitBytes is the tenant's sustained write rate in bytes of OTLP per second, as Tempo's
	// override of the same name (0 = unlimited, the default). Writes over it are refused as retryable.
	IngestionRateLimitBytes int64 `mapstructure:"ingestion_rate_limit_bytes"`
	// IngestionBurstSizeBytes is the bucket size of that rate (default: one second of the rate); a batch
	// larger than it can never be accepted and is refused for good.
	IngestionBurstSizeBytes int64 `mapstructure:"ingestion_burst_size_bytes"`
	// MaxSpansPerSpanSet caps the spss a search may ask for (Tempo's max_spans_per_span_set; 0: no cap).
	MaxSpansPerSpanSet int `mapstructure:"max_spans_per_span_set"`
	// MaxPointsPerSeries bounds the steps of a TraceQL metrics query, (end-start)/step.
	MaxPointsPerSeries int `mapstructure:"max_points_per_series"`
	// MaxResponseSeries bounds the series of a TraceQL metrics query (Tempo's metrics max_response_series):
	// each holds a value list per step while the query runs.
	MaxResponseSeries int `mapstructure:"max_response_series"`
	// Config is the query admission (query_timeout, max_concurrent (Tempo's max_concurrent_queries),
	// max_concurrent_per_tenant, max_outstanding_per_tenant, max_queue_wait), as every store spells it.
	querylimit.Config `mapstructure:",squash"`
}

// DefaultConfig returns a configuration that works on a laptop, keeping data under ./data/traces.
func DefaultConfig() Config {
	return Config{
		DataDir:            "./data/traces",
		MinFreeDiskBytes:   diskguard.DefaultMinFreeBytes,
		WAL:                WALConfig{Policy: wal.Policy{Fsync: wal.FsyncInterval, FsyncInterval: time.Second}, SegmentBytes: 128 << 20},
		Storage:            bucket.Config{Backend: bucket.BackendFilesystem},
		ReadCacheBytes:     64 << 20,
		TraceIdlePeriod:    10 * time.Second,
		MaxBlockDuration:   5 * time.Minute,
		MaxBlockBytes:      32 << 20,
		FlushInterval:      15 * time.Second,
		MaxLiveBytes:       192 << 20,
		FlushAllOnShutdown: true,
		Compaction: CompactionConfig{
			Interval:       time.Minute,
			BlockRetention: 720 * time.Hour,
			MaxBlockBytes:  64 << 20,
			MinInputBlocks: 4,
			MaxInputBlocks: 4,
		},
		Limits: Limits{
			MaxBytesPerTrace:   5 << 20,
			MaxSearchDuration:  0,
			DefaultSearchLimit: 20,
			MaxSearchLimit:     10000,
			MaxSpansPerSpanSet: 100,
			MaxPointsPerSeries: querylimit.DefaultMaxPointsPerSeries,
			MaxResponseSeries:  1000,
			Config: querylimit.Config{
				QueryTimeout: 30 * time.Second,
				// Tempo's max_concurrent_queries; a tenant may use half, so one tenant cannot hold every slot.
				MaxConcurrent:           20,
				MaxConcurrentPerTenant:  10,
				MaxOutstandingPerTenant: 100,
				MaxQueueWait:            10 * time.Second,
			},
		},
	}
}

// storage returns the bucket configuration with its default filled in: the filesystem under <data_dir>/blocks.
func (c *Config) storage() bucket.Config {
	b := c.Storage
	if (b.Backend == "" || b.Backend == bucket.BackendFilesystem) && b.Filesystem.Dir == "" {
		b.Filesystem.Dir = filepath.Join(c.DataDir, "blocks")
	}
	return b
}

// Validate names the first field that is wrong.
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
	if c.WAL.SegmentBytes < 1<<20 {
		return errors.New("wal.segment_bytes: must be at least 1 MiB")
	}
	if c.TraceIdlePeriod <= 0 {
		return errors.New("trace_idle_period: must be positive")
	}
	if c.MaxBlockDuration < c.TraceIdlePeriod {
		return errors.New("max_block_duration: must be at least trace_idle_period")
	}
	if c.MaxBlockBytes <= 0 {
		return errors.New("max_block_bytes: must be positive")
	}
	if c.FlushInterval <= 0 {
		return errors.New("flush_interval: must be positive")
	}
	if c.ReadCacheBytes < 0 {
		return errors.New("read_cache_bytes must not be negative")
	}
	if c.MaxLiveBytes < 0 {
		return errors.New("max_live_bytes: must not be negative (0 disables the bound)")
	}
	if c.Compaction.Interval <= 0 {
		return errors.New("compaction.interval: must be positive")
	}
	if c.Compaction.BlockRetention < 0 {
		return errors.New("compaction.block_retention: must not be negative (0 keeps blocks forever)")
	}
	if c.Compaction.MinInputBlocks < 2 {
		return errors.New("compaction.min_input_blocks: must be at least 2")
	}
	if c.Compaction.MaxInputBlocks != 0 && c.Compaction.MaxInputBlocks < c.Compaction.MinInputBlocks {
		return fmt.Errorf("compaction.max_input_blocks: %d is below compaction.min_input_blocks %d (0: no bound)",
			c.Compaction.MaxInputBlocks, c.Compaction.MinInputBlocks)
	}
	if c.Limits.MaxBytesPerTrace < 0 {
		return errors.New("limits.max_bytes_per_trace: must not be negative")
	}
	if c.Limits.IngestionRateLimitBytes < 0 || c.Limits.IngestionBurstSizeBytes < 0 {
		return errors.New("limits.ingestion_rate_limit_bytes, limits.ingestion_burst_size_bytes: must not be negative (0: unlimited)")
	}
	if c.Limits.QueryTimeout <= 0 {
		return errors.New("limits.query_timeout: must be positive")
	}
	if c.Limits.DefaultSearchLimit <= 0 || c.Limits.MaxSearchLimit < c.Limits.DefaultSearchLimit {
		return errors.New("limits.default_search_limit: must be positive and at most limits.max_search_limit")
	}
	if c.Limits.MaxSpansPerSpanSet < 0 {
		return errors.New("limits.max_spans_per_span_set: must not be negative (0: no cap)")
	}
	if c.Limits.MaxPointsPerSeries <= 0 {
		return errors.New("limits.max_points_per_series: must be positive")
	}
	if c.Limits.MaxResponseSeries <= 0 {
		return errors.New("limits.max_response_series: must be positive")
	}
	if err := c.Limits.Config.Validate("limits."); err != nil {
		return err
	}
	st := c.storage()
	if err := st.Validate(); err != nil {
		return fmt.Errorf("storage.%w", err)
	}
	return nil
}
