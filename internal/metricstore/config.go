package metricstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v2"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/querylimit"
)

// Config is the metrics store's configuration. Field names follow Prometheus' flags and Mimir's limits where
// there is an equivalent, so that operators can carry their knowledge over.
type Config struct {
	// DataDir holds one Prometheus TSDB per tenant under <data_dir>/<tenant>/ and a cache of blocks read back
	// from the bucket under <data_dir>/.cache/.
	DataDir string `mapstructure:"data_dir"`
	// MinFreeDiskBytes refuses writes (503, retryable) while data_dir's filesystem has less free: the TSDB's WAL
	// must not meet a full disk mid-record (see internal/diskguard). 0 turns the check off.
	MinFreeDiskBytes int64 `mapstructure:"min_free_disk_bytes"`
	// Retention is how long blocks stay on local disk (Prometheus' storage.tsdb.retention.time). With shipping
	// on, older data is still queried from the bucket.
	Retention time.Duration `mapstructure:"retention"`
	// BlockDuration is the head block span (Prometheus' storage.tsdb.min-block-duration), 2h by default.
	BlockDuration time.Duration `mapstructure:"block_duration"`
	// OutOfOrderTimeWindow accepts samples this much older than a series' newest sample.
	OutOfOrderTimeWindow time.Duration `mapstructure:"out_of_order_time_window"`
	// MaxExemplars is the size of each tenant's in-memory exemplar ring (Prometheus' storage.exemplars.max-exemplars).
	MaxExemplars int64 `mapstructure:"max_exemplars"`
	// IsolationEnabled is Mimir's blocks_storage.tsdb.isolation_enabled. It is not honoured: Sprout's head
	// (metrichead) has no append isolation, as Mimir and Cortex run by default, so a query running during a
	// commit may see part of it; setting it logs a warning at start. Samples, blocks and the WAL are the same
	// either way.
	IsolationEnabled bool `mapstructure:"isolation_enabled"`
	// LookbackDelta is PromQL's staleness window.
	LookbackDelta time.Duration `mapstructure:"lookback_delta"`
	// QueryShards is how many series shards an aggregation query is evaluated over in parallel (see
	// shard.go); 0 picks GOMAXPROCS, 1 turns sharding off (a streamed leg still runs, as one shard).
	QueryShards int `mapstructure:"query_shards"`
	// Frontend is the query-frontend in front of the Prometheus API: results cache and step alignment of
	// range queries (see resultscache.go).
	Frontend FrontendConfig `mapstructure:"frontend"`

	// Storage is the bucket completed blocks are shipped to (Mimir's blocks_storage).
	Storage StorageConfig `mapstructure:"storage"`

	// Limits are per-tenant limits in Mimir's terms.
	Limits Limits `mapstructure:"limits"`

	// OTLP configures how OTLP metrics (pushed to /otlp/v1/metrics) are translated; the keys are Prometheus'
	// `otlp:` configuration block.
	OTLP OTLPConfig `mapstructure:"otlp"`

	// RemoteWrite forwards ingested samples to other Prometheus-compatible stores. Each entry is a Prometheus
	// `remote_write` entry, with the same keys (url, headers, basic_auth, write_relabel_configs, queue_config,
	// protobuf_message, send_exemplars, send_native_histograms, ...).
	RemoteWrite []map[string]any `mapstructure:"remote_write"`
	// ExternalLabels are added to forwarded samples, as Prometheus' global.external_labels.
	ExternalLabels map[string]string `mapstructure:"external_labels"`
}

// StorageConfig is the bucket layer plus Mimir's compactor retention.
type StorageConfig struct {
	// Enabled ships completed blocks to the bucket and queries them back. On by default.
	Enabled       bool `mapstructure:"enabled"`
	bucket.Config `mapstructure:",squash"`
	// CompactorBlocksRetentionPeriod deletes bucket blocks whose newest sample is older than this (Mimir's
	// compactor_blocks_retention_period). 0 keeps blocks forever.
	CompactorBlocksRetentionPeriod time.Duration `mapstructure:"compactor_blocks_retention_period"`
	// CompactorBlockRanges are the block spans the compactor merges shipped blocks into, smallest first (Mimir's
	// block_ranges after the first, 2h, level); each a multiple of block_duration and of the one before. Empty
	// turns bucket compaction off.
	CompactorBlockRanges []time.Duration `mapstructure:"compactor_block_ranges"`
	// CompactionInterval is how often the compactor looks for blocks to merge (Mimir's compaction_interval).
	CompactionInterval time.Duration `mapstructure:"compaction_interval"`
	// ShipInterval is how often completed local blocks are looked for and uploaded.
	ShipInterval time.Duration `mapstructure:"ship_interval"`
	// SyncInterval is how often the list of bucket blocks is refreshed and retention is applied.
	SyncInterval time.Duration `mapstructure:"sync_interval"`
}

// Limits are Mimir's per-tenant limits of the same names. A zero value disables a limit.
type Limits struct {
	MaxGlobalSeriesPerUser int     `mapstructure:"max_global_series_per_user"`
	IngestionRate          float64 `mapstructure:"ingestion_rate"`
	IngestionBurstSize     int     `mapstructure:"ingestion_burst_size"`
	MaxLabelNamesPerSeries int     `mapstructure:"max_label_names_per_series"`
	MaxLabelNameLength     int     `mapstructure:"max_label_name_length"`
	MaxLabelValueLength    int     `mapstructure:"max_label_value_length"`
	// MaxFetchedSamples bounds the samples one query may hold in memory (Prometheus' query.max-samples).
	MaxFetchedSamples int `mapstructure:"max_fetched_samples"`
	// QueryTimeout bounds a query's evaluation (Prometheus' query.timeout).
	QueryTimeout time.Duration `mapstructure:"query_timeout"`
	// MaxConcurrent is how many queries run at once over all tenants (Prometheus' query.max-concurrency);
	// the others wait in a short queue.
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// MaxConcurrentPerTenant is how many queries of one tenant run at once (0: max_concurrent).
	MaxConcurrentPerTenant int `mapstructure:"max_concurrent_per_tenant"`
	// MaxOutstandingPerTenant is how many queries of one tenant may wait for a slot; more are refused (429).
	MaxOutstandingPerTenant int `mapstructure:"max_outstanding_per_tenant"`
	// MaxQueueWait is how long a query waits for a slot before it is refused (429 or 503, with Retry-After).
	MaxQueueWait time.Duration `mapstructure:"max_queue_wait"`
	// MaxPointsPerSeries bounds a range query's steps, (end-start)/step (Prometheus' API: 11,000).
	MaxPointsPerSeries int `mapstructure:"max_points_per_series"`
	// MaxSubqueryPointsPerSeries bounds the points each subquery computes per series (its span over its step,
	// nested subqueries adding their ranges), checked before evaluation and when a rule is uploaded.
	MaxSubqueryPointsPerSeries int `mapstructure:"max_subquery_points_per_series"`
	// MaxCacheFreshness: range query steps newer than now minus this are never taken from or put in the
	// results cache (Mimir's max_cache_freshness).
	MaxCacheFreshness time.Duration `mapstructure:"max_cache_freshness"`
	// ResultsCacheTTL is how long cached steps are kept (Mimir's results_cache_ttl).
	ResultsCacheTTL time.Duration `mapstructure:"results_cache_ttl"`
	// ResultsCacheTTLForOutOfOrderTimeWindow is how long cached steps inside out_of_order_time_window are
	// kept (Mimir's results_cache_ttl_for_out_of_order_time_window).
	ResultsCacheTTLForOutOfOrderTimeWindow time.Duration `mapstructure:"results_cache_ttl_for_out_of_order_time_window"`
}

// queryLimits is the admission part of the limits (see internal/querylimit).
func (l Limits) queryLimits() querylimit.Config {
	return querylimit.Config{
		QueryTimeout:            durationOr(l.QueryTimeout, 24*time.Hour),
		MaxConcurrent:           l.MaxConcurrent,
		MaxConcurrentPerTenant:  l.MaxConcurrentPerTenant,
		MaxOutstandingPerTenant: l.MaxOutstandingPerTenant,
		MaxQueueWait:            l.MaxQueueWait,
	}
}

// promQLBudget is the points part of the limits.
func (l Limits) promQLBudget() querylimit.PromQLBudget {
	return querylimit.PromQLBudget{MaxPoints: l.MaxPointsPerSeries, MaxSubqueryPoints: l.MaxSubqueryPointsPerSeries, SubqueryStep: time.Minute}
}

// OTLPConfig mirrors the keys of Prometheus' `otlp:` configuration block that matter to Sprout.
type OTLPConfig struct {
	PromoteAllResourceAttributes      bool     `mapstructure:"promote_all_resource_attributes"`
	PromoteResourceAttributes         []string `mapstructure:"promote_resource_attributes"`
	IgnoreResourceAttributes          []string `mapstructure:"ignore_resource_attributes"`
	TranslationStrategy               string   `mapstructure:"translation_strategy"`
	KeepIdentifyingResourceAttributes bool     `mapstructure:"keep_identifying_resource_attributes"`
	ConvertHistogramsToNHCB           bool     `mapstructure:"convert_histograms_to_nhcb"`
	PromoteScopeMetadata              bool     `mapstructure:"promote_scope_metadata"`
}

// DefaultConfig returns the laptop defaults: data under ./data/metrics, blocks shipped to a filesystem bucket
// under ./data/metrics-bucket, 30 days in the bucket (the seed's Mimir setting), one day on local disk.
func DefaultConfig() Config {
	return Config{
		DataDir:          "./data/metrics",
		MinFreeDiskBytes: diskguard.DefaultMinFreeBytes,
		Retention:        24 * time.Hour,
		BlockDuration:    2 * time.Hour,
		MaxExemplars:     100000,
		LookbackDelta:    5 * time.Minute,
		Storage: StorageConfig{
			Enabled:                        true,
			Config:                         bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: "./data/metrics-bucket"}},
			CompactorBlocksRetentionPeriod: 30 * 24 * time.Hour,
			CompactorBlockRanges:           []time.Duration{12 * time.Hour, 24 * time.Hour},
			CompactionInterval:             time.Hour,
			ShipInterval:                   time.Minute,
			SyncInterval:                   5 * time.Minute,
		},
		Frontend: FrontendConfig{
			// Off, as in Mimir: a cached step ignores samples that arrive more than max_cache_freshness late
			// (a sender's backlog after an outage, out-of-order writes), and the store answers from its TSDB
			// unless told otherwise.
			CacheResults:           false,
			SplitQueriesByInterval: 24 * time.Hour,
			ResultsCache:           ResultsCacheConfig{MaxSizeBytes: 128 << 20},
		},
		Limits: DefaultLimits(),
	}
}

// DefaultLimits are generous for one node: Mimir's names, but sized so a single Sprout does not refuse the
// load a single Prometheus would take.
func DefaultLimits() Limits {
	return Limits{
		MaxGlobalSeriesPerUser: 1_000_000,
		IngestionRate:          1_000_000,
		IngestionBurstSize:     2_000_000,
		MaxLabelNamesPerSeries: 30,
		MaxLabelNameLength:     1024,
		MaxLabelValueLength:    2048,
		MaxFetchedSamples:      50_000_000,
		QueryTimeout:           2 * time.Minute,
		// Prometheus' query.max-concurrency; a tenant may use half, so one tenant cannot hold every slot.
		MaxConcurrent:              20,
		MaxConcurrentPerTenant:     10,
		MaxOutstandingPerTenant:    100,
		MaxQueueWait:               10 * time.Second,
		MaxPointsPerSeries:         querylimit.DefaultMaxPointsPerSeries,
		MaxSubqueryPointsPerSeries: querylimit.DefaultMaxSubqueryPointsPerSeries,
		// Mimir's defaults.
		MaxCacheFreshness:                      10 * time.Minute,
		ResultsCacheTTL:                        7 * 24 * time.Hour,
		ResultsCacheTTLForOutOfOrderTimeWindow: 10 * time.Minute,
	}
}

// maxQueryShards bounds query_shards: every shard is a goroutine and an engine query per sharded query.
const maxQueryShards = 256

// queryShards is query_shards with 0 resolved.
func (c *Config) queryShards() int {
	if c.QueryShards == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return c.QueryShards
}

// bucketDir is the default filesystem bucket location when none is configured.
func (c *Config) bucketDir() string {
	if c.Storage.Filesystem.Dir != "" {
		return c.Storage.Filesystem.Dir
	}
	return filepath.Join(c.DataDir, ".bucket")
}

// Validate names the first field that is wrong.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must be set")
	}
	if c.MinFreeDiskBytes < 0 {
		return errors.New("min_free_disk_bytes: must not be negative")
	}
	if c.BlockDuration < time.Minute {
		return fmt.Errorf("block_duration: %s is too short (minimum 1m)", c.BlockDuration)
	}
	if c.Retention < 0 {
		return errors.New("retention: must not be negative")
	}
	if c.OutOfOrderTimeWindow < 0 {
		return errors.New("out_of_order_time_window: must not be negative")
	}
	if c.MaxExemplars < 0 {
		return errors.New("max_exemplars: must not be negative")
	}
	if c.LookbackDelta < 0 {
		return errors.New("lookback_delta: must not be negative")
	}
	if c.QueryShards < 0 || c.QueryShards > maxQueryShards {
		return fmt.Errorf("query_shards: %d is out of range (0 for GOMAXPROCS, 1 for off, at most %d)", c.QueryShards, maxQueryShards)
	}
	if err := c.Frontend.validate(); err != nil {
		return fmt.Errorf("frontend.%w", err)
	}
	if c.Storage.Enabled {
		bc := c.Storage.Config
		if bc.Backend == "" || bc.Backend == bucket.BackendFilesystem {
			bc.Filesystem.Dir = c.bucketDir()
		}
		if err := bc.Validate(); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		if c.Storage.CompactorBlocksRetentionPeriod < 0 {
			return errors.New("storage.compactor_blocks_retention_period: must not be negative")
		}
		if c.Storage.CompactorBlocksRetentionPeriod > 0 && c.Storage.CompactorBlocksRetentionPeriod < c.BlockDuration {
			return fmt.Errorf("storage.compactor_blocks_retention_period: %s is shorter than block_duration %s", c.Storage.CompactorBlocksRetentionPeriod, c.BlockDuration)
		}
		if c.Storage.ShipInterval <= 0 {
			return errors.New("storage.ship_interval: must be positive")
		}
		if c.Storage.SyncInterval <= 0 {
			return errors.New("storage.sync_interval: must be positive")
		}
		prev := c.BlockDuration
		for i, r := range c.Storage.CompactorBlockRanges {
			if r <= prev || r%prev != 0 {
				return fmt.Errorf("storage.compactor_block_ranges[%d]: %s must be greater than and a multiple of %s", i, r, prev)
			}
			prev = r
		}
		if len(c.Storage.CompactorBlockRanges) > 0 && c.Storage.CompactionInterval <= 0 {
			return errors.New("storage.compaction_interval: must be positive")
		}
	}
	if err := c.Limits.validate(); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	if _, err := c.otlpConfig(false); err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	if _, err := c.remoteWriteConfigs(); err != nil {
		return err
	}
	return nil
}

func (l *Limits) validate() error {
	switch {
	case l.MaxGlobalSeriesPerUser < 0:
		return errors.New("max_global_series_per_user: must not be negative")
	case l.IngestionRate < 0:
		return errors.New("ingestion_rate: must not be negative")
	case l.IngestionBurstSize < 0:
		return errors.New("ingestion_burst_size: must not be negative")
	case l.IngestionRate > 0 && float64(l.IngestionBurstSize) < l.IngestionRate/10:
		return fmt.Errorf("ingestion_burst_size: %d is too small for ingestion_rate %g (use at least a tenth of the rate)", l.IngestionBurstSize, l.IngestionRate)
	case l.MaxLabelNamesPerSeries < 0, l.MaxLabelNameLength < 0, l.MaxLabelValueLength < 0:
		return errors.New("max_label_*: must not be negative")
	case l.MaxFetchedSamples < 0:
		return errors.New("max_fetched_samples: must not be negative")
	case l.QueryTimeout < 0:
		return errors.New("query_timeout: must not be negative")
	case l.MaxPointsPerSeries <= 0:
		return errors.New("max_points_per_series: must be positive")
	case l.MaxSubqueryPointsPerSeries <= 0:
		return errors.New("max_subquery_points_per_series: must be positive")
	}
	if l.MaxCacheFreshness < 0 {
		return errors.New("max_cache_freshness: must not be negative")
	}
	if l.ResultsCacheTTL < 0 {
		return errors.New("results_cache_ttl: must not be negative")
	}
	if l.ResultsCacheTTLForOutOfOrderTimeWindow < 0 {
		return errors.New("results_cache_ttl_for_out_of_order_time_window: must not be negative")
	}
	return l.queryLimits().Validate("")
}

// otlpConfig converts the OTLP block to Prometheus' type by way of YAML, so that Prometheus' own validation
// (and its defaults, such as the translation strategy) apply.
func (c *Config) otlpConfig(resourceToTelemetry bool) (config.OTLPConfig, error) {
	m := map[string]any{
		"promote_all_resource_attributes":      c.OTLP.PromoteAllResourceAttributes || resourceToTelemetry,
		"keep_identifying_resource_attributes": c.OTLP.KeepIdentifyingResourceAttributes,
		"convert_histograms_to_nhcb":           c.OTLP.ConvertHistogramsToNHCB,
		"promote_scope_metadata":               c.OTLP.PromoteScopeMetadata,
	}
	if len(c.OTLP.PromoteResourceAttributes) > 0 && !resourceToTelemetry {
		m["promote_resource_attributes"] = c.OTLP.PromoteResourceAttributes
	}
	if len(c.OTLP.IgnoreResourceAttributes) > 0 {
		m["ignore_resource_attributes"] = c.OTLP.IgnoreResourceAttributes
	}
	if c.OTLP.TranslationStrategy != "" {
		m["translation_strategy"] = c.OTLP.TranslationStrategy
	}
	var out config.OTLPConfig
	b, err := yaml.Marshal(m)
	if err != nil {
		return out, err
	}
	if err := yaml.UnmarshalStrict(b, &out); err != nil {
		return out, err
	}
	return out, nil
}

// remoteWriteConfigs parses the remote_write entries with Prometheus' own config types (through YAML), so every
// option Prometheus documents for remote_write works here with the same meaning.
func (c *Config) remoteWriteConfigs() ([]*config.RemoteWriteConfig, error) {
	out := make([]*config.RemoteWriteConfig, 0, len(c.RemoteWrite))
	for i, raw := range c.RemoteWrite {
		b, err := yaml.Marshal(raw)
		if err != nil {
			return nil, fmt.Errorf("remote_write[%d]: %w", i, err)
		}
		var rw config.RemoteWriteConfig
		if err := yaml.UnmarshalStrict(b, &rw); err != nil {
			return nil, fmt.Errorf("remote_write[%d]: %w", i, err)
		}
		if rw.URL == nil {
			return nil, fmt.Errorf("remote_write[%d].url: must be set", i)
		}
		for j, rc := range rw.WriteRelabelConfigs {
			if err := rc.Validate(model.UTF8Validation); err != nil {
				return nil, fmt.Errorf("remote_write[%d].write_relabel_configs[%d]: %w", i, j, err)
			}
		}
		if rw.Name == "" {
			rw.Name = fmt.Sprintf("sprout-%d", i)
		}
		out = append(out, &rw)
	}
	return out, nil
}

func (f FrontendConfig) validate() error {
	if f.SplitQueriesByInterval < 0 || (f.CacheResults && f.SplitQueriesByInterval == 0) {
		return fmt.Errorf("split_queries_by_interval: %s must be positive with cache_results on", f.SplitQueriesByInterval)
	}
	if f.SplitQueriesByInterval%time.Millisecond != 0 {
		return fmt.Errorf("split_queries_by_interval: %s is not a whole number of milliseconds", f.SplitQueriesByInterval)
	}
	if f.ResultsCache.MaxSizeBytes < 0 || (f.CacheResults && f.ResultsCache.MaxSizeBytes == 0) {
		return fmt.Errorf("results_cache.max_size_bytes: %d must be positive with cache_results on", f.ResultsCache.MaxSizeBytes)
	}
	return nil
}

// cacheLimits are the results cache's limits for the store's tenants.
func (c *Config) cacheLimits() CacheLimits {
	return CacheLimits{
		MaxCacheFreshness:                      c.Limits.MaxCacheFreshness,
		ResultsCacheTTL:                        c.Limits.ResultsCacheTTL,
		ResultsCacheTTLForOutOfOrderTimeWindow: c.Limits.ResultsCacheTTLForOutOfOrderTimeWindow,
		OutOfOrderTimeWindow:                   c.OutOfOrderTimeWindow,
	}
}
