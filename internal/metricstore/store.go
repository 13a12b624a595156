// Package metricstore is Sprout's metrics store: the role Prometheus and Mimir play in the seed. It keeps one
// Prometheus TSDB (head, WAL, local compaction, exemplars, native histograms) per tenant, answers Prometheus'
// HTTP API with Prometheus' own implementation, takes remote write 1.0/2.0 and OTLP pushes, ships completed
// blocks to the bucket layer and queries them back, forwards samples with Prometheus' remote-write queue, and
// enforces per-tenant limits named as Mimir names them.
//
// It is built on github.com/prometheus/prometheus (tsdb, promql, storage/remote, web/api/v1) rather than a
// rewrite. It owns files under its data directory and keys under its tenant prefixes in the bucket; it must not
// know about the Collector (components/metricstoreext bridges it) nor open ports of its own.
package metricstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// Options are the store's collaborators.
type Options struct {
	Logger *zap.Logger
	// Registerer receives the store's and every tenant TSDB's metrics (tenant metrics carry a `tenant` label).
	Registerer prometheus.Registerer
	// Gatherer is what /api/v1/status/self_metrics reports; may be nil.
	Gatherer prometheus.Gatherer
	// Version is Sprout's version, reported in /api/v1/status/buildinfo.
	Version string
	// Bucket overrides the bucket built from the configuration (tests).
	Bucket bucket.Bucket
}

// RulesRetrieverFunc returns the rules of a tenant, for /api/v1/rules and /api/v1/alerts.
type RulesRetrieverFunc func(ctx context.Context, tenant string) v1.RulesRetriever

// AlertmanagerRetrieverFunc returns the Alertmanagers a tenant's alerts go to, for /api/v1/alertmanagers.
type AlertmanagerRetrieverFunc func(ctx context.Context, tenant string) v1.AlertmanagerRetriever

// Store is the running metrics store.
type Store struct {
	cfg     Config
	logger  *zap.Logger
	slog    *slog.Logger
	reg     prometheus.Registerer
	gath    prometheus.Gatherer
	version string
	engine  *promql.Engine
	// queryEngine is what the Prometheus API runs queries on: engine, with aggregations sharded.
	queryEngine *shardedEngine
	// resultsCache holds range query answers for every tenant's API (nil: frontend.cache_results off).
	resultsCache *resultsCache
	queries      *querylimit.Limiter
	bkt          bucket.Bucket
	ownBkt       bool
	rw           []*config.RemoteWriteConfig
	otlp         config.OTLPConfig
	otlpR2T      config.OTLPConfig

	mu         sync.Mutex
	tenants    map[string]*Tenant
	maxTenants atomic.Int64 // max_tenants of sprout_api; 0: no limit
	closed     bool

	// disk refuses writes while data_dir's filesystem is nearly full.
	disk *diskguard.Guard

	rules atomic.Pointer[RulesRetrieverFunc]
	// features are the Mimir features /api/v1/status/buildinfo reports (see buildinfo.go); nil: none.
	features atomic.Pointer[map[string]string]
	ams      atomic.Pointer[AlertmanagerRetrieverFunc]

	// rwInvalid counts remote write 1.0 samples skipped for invalid labels, per tenant.
	rwInvalid *prometheus.CounterVec
	// tenantLoadFailures counts tenants whose TSDB could not be opened at start (the others start).
	tenantLoadFailures *prometheus.CounterVec

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open validates cfg, opens the bucket and every tenant already on disk (replaying their WALs), and starts the
// shipping and retention loops.
func Open(ctx context.Context, cfg Config, opts Options) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	rw, err := cfg.remoteWriteConfigs()
	if err != nil {
		return nil, err
	}
	otlpCfg, _ := cfg.otlpConfig(false)
	otlpR2T, _ := cfg.otlpConfig(true)
	s := &Store{
		cfg:     cfg,
		logger:  opts.Logger,
		slog:    slog.New(zapslog.NewHandler(opts.Logger.Core())),
		reg:     opts.Registerer,
		gath:    opts.Gatherer,
		version: opts.Version,
		rw:      rw,
		otlp:    otlpCfg,
		otlpR2T: otlpR2T,
		tenants: map[string]*Tenant{},
		disk:    diskguard.New("metric store", cfg.DataDir, cfg.MinFreeDiskBytes),
		stop:    make(chan struct{}),
		rwInvalid: promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "sprout_metrics_remote_write_invalid_labels_samples_total",
			Help: "Remote write 1.0 samples skipped because their series had no metric name, invalid UTF-8 or a label name twice.",
		}, []string{"tenant"}),
		tenantLoadFailures: promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "sprout_metrics_tenant_load_failures_total",
			Help: "Tenants whose TSDB could not be opened at start; every other tenant started, and the tenant is retried on its next request.",
		}, []string{"tenant"}),
	}
	engineOpts := promql.EngineOpts{
		Logger:               s.slog.With("component", "query engine"),
		Reg:                  opts.Registerer,
		MaxSamples:           maxOr(cfg.Limits.MaxFetchedSamples, math.MaxInt),
		Timeout:              durationOr(cfg.Limits.QueryTimeout, 24*time.Hour),
		LookbackDelta:        cfg.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// Per-step statistics are computed only for a query that asks for them (stats=all), over its own
		// steps, which max_points_per_series bounds; subqueries keep per-step arrays whatever this says, which
		// is why their points are checked before evaluation (see Tenant.admitQuery).
		EnablePerStepStats:       true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	}
	s.engine = promql.NewEngine(engineOpts)
	// The shards of a query run at once, so each holds at most its share of max_fetched_samples; a shard
	// over its share makes the query run unsharded, where the engine judges it against the whole limit.
	shards := cfg.queryShards()
	legOpts := engineOpts
	legOpts.Reg = nil
	legOpts.MaxSamples = max(1, engineOpts.MaxSamples/max(1, shards))
	s.queryEngine = newShardedEngine(s.engine, promql.NewEngine(legOpts), legOpts.MaxSamples, shards, cfg.LookbackDelta)
	s.queryEngine.maxSamples = engineOpts.MaxSamples
	if cfg.Frontend.CacheResults {
		s.resultsCache = newResultsCache(cfg.Frontend.ResultsCache.MaxSizeBytes, opts.Registerer)
	}
	s.queries = querylimit.New(cfg.Limits.queryLimits())
	s.queryEngine.procs = s.queries.Processors()
	if err := opts.Registerer.Register(s.queries.Collector("metrics")); err != nil {
		s.logger.Warn("Cannot register the query limiter's metrics", zap.Error(err))
	}
	if cfg.IsolationEnabled {
		s.logger.Warn("isolation_enabled is not honoured: the head has no append isolation, so a query running during a commit may see part of it, as with isolation_enabled: false")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("metrics store: create data_dir: %w", err)
	}
	if cfg.Storage.Enabled {
		if opts.Bucket != nil {
			s.bkt = opts.Bucket
		} else {
			bc := cfg.Storage.Config
			if bc.Backend == "" || bc.Backend == bucket.BackendFilesystem {
				bc.Backend = bucket.BackendFilesystem
				bc.Filesystem.Dir = cfg.bucketDir()
			}
			b, err := bucket.New(ctx, bc, opts.Logger)
			if err != nil {
				return nil, fmt.Errorf("metrics store: %w", err)
			}
			s.bkt, s.ownBkt = b, true
		}
	}
	// Open the tenants already on disk, so that their WALs replay now (not on the first query) and their
	// unshipped blocks and remote-write queues resume.
	entries, err := os.ReadDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("metrics store: read data_dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || tenant.Validate(e.Name()) != nil {
			continue // the store's own directories (.bucket, .cache, .compact) start with a dot; tenants never do
		}
		if _, err := s.open(ctx, e.Name(), false); err != nil {
			// One tenant's unreadable TSDB must not keep the others from starting: logged, and retried on
			// that tenant's next request.
			s.tenantLoadFailures.WithLabelValues(e.Name()).Inc()
			s.logger.Error("Metrics store: tenant not opened at start; its data stays where it is", zap.String("tenant", e.Name()), zap.Error(err))
		}
	}
	if s.bkt != nil {
		s.wg.Add(1)
		go s.bucketLoop()
	}
	return s, nil
}

// Engine is the PromQL engine every tenant's queries run on.
func (s *Store) Engine() *promql.Engine { return s.engine }

// QueryLimiter admits the store's queries; a process-wide governor installs its gate on it (SetGate).
func (s *Store) QueryLimiter() *querylimit.Limiter { return s.queries }

// PromQLBudget is the points budget of the store's queries, which the ruler checks uploaded rules against.
func (s *Store) PromQLBudget() querylimit.PromQLBudget { return s.cfg.Limits.promQLBudget() }

// Bucket is the bucket blocks are shipped to, or nil when shipping is off.
func (s *Store) Bucket() bucket.Bucket { return s.bkt }

// SetRulesRetriever makes /api/v1/rules and /api/v1/alerts answer from f (see Routes).
func (s *Store) SetRulesRetriever(f RulesRetrieverFunc) { s.rules.Store(&f) }

// SetAlertmanagerRetriever makes /api/v1/alertmanagers answer from f.
func (s *Store) SetAlertmanagerRetriever(f AlertmanagerRetrieverFunc) { s.ams.Store(&f) }

// HasRulesRetriever reports whether SetRulesRetriever was called.
func (s *Store) HasRulesRetriever() bool { return s.rules.Load() != nil }

// Tenant returns the tenant's store, opening (and creating) it on first use. A malformed id, or a new tenant
// beyond max_tenants, is a *tenant.Error (HTTP 400).
func (s *Store) Tenant(ctx context.Context, id string) (*Tenant, error) {
	return s.open(ctx, id, true)
}

// SetMaxTenants sets the number of tenants beyond which a request naming a new one is refused (0: no limit).
func (s *Store) SetMaxTenants(n int) { s.maxTenants.Store(int64(n)) }

func (s *Store) open(ctx context.Context, id string, limited bool) (*Tenant, error) {
	if err := tenant.Validate(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("metrics store is closed")
	}
	if t, ok := s.tenants[id]; ok {
		return t, nil
	}
	if limited {
		if err := tenant.CheckCount(id, len(s.tenants), int(s.maxTenants.Load()), "metrics store"); err != nil {
			return nil, err
		}
	}
	t, err := openTenant(ctx, s, id)
	if err != nil {
		return nil, fmt.Errorf("open metrics tenant %s: %w", id, err)
	}
	s.tenants[id] = t
	return t, nil
}

// Tenants lists the open tenants, sorted.
func (s *Store) Tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.tenants))
	for id := range s.tenants {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *Store) tenantList() []*Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t)
	}
	return out
}

// bucketLoop ships completed blocks and applies bucket retention until Close.
func (s *Store) bucketLoop() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background()) // cancelled by Close, to stop a long compaction
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	ship := time.NewTicker(s.cfg.Storage.ShipInterval)
	defer ship.Stop()
	syncT := time.NewTicker(s.cfg.Storage.SyncInterval)
	defer syncT.Stop()
	compactC := make(<-chan time.Time)
	if len(s.cfg.Storage.CompactorBlockRanges) > 0 {
		compact := time.NewTicker(s.cfg.Storage.CompactionInterval)
		defer compact.Stop()
		compactC = compact.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-ship.C:
			for _, t := range s.tenantList() {
				if _, err := t.Ship(context.Background()); err != nil {
					s.logger.Warn("ship blocks", zap.String("tenant", t.id), zap.Error(err))
				}
			}
		case <-syncT.C:
			for _, t := range s.tenantList() {
				if err := t.SyncBucket(context.Background()); err != nil {
					s.logger.Warn("sync bucket blocks", zap.String("tenant", t.id), zap.Error(err))
				}
			}
		case <-compactC:
			for _, t := range s.tenantList() {
				if _, err := t.CompactBucket(ctx); err != nil {
					s.logger.Warn("compact bucket blocks", zap.String("tenant", t.id), zap.Error(err))
				}
			}
		}
	}
}

// Close stops the loops, ships what is complete, and closes every tenant. Data in the heads stays in the WALs.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	tenants := make([]*Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		tenants = append(tenants, t)
	}
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	var errs []error
	for _, t := range tenants {
		if s.bkt != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := t.Ship(ctx); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: ship: %w", t.id, err))
			}
			cancel()
		}
		if err := t.close(); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.id, err))
		}
	}
	if s.ownBkt && s.bkt != nil {
		errs = append(errs, s.bkt.Close())
	}
	return errors.Join(errs...)
}

func (s *Store) tenantDir(id string) string { return filepath.Join(s.cfg.DataDir, id) }
func (s *Store) cacheDir(id string) string  { return filepath.Join(s.cfg.DataDir, ".cache", id) }

func maxOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func durationOr(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
