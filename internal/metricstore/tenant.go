package metricstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/regexp"
	"github.com/oklog/ulid/v2"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	promremote "github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/metricdb"
	"github.com/sprout-otel/sprout/internal/metrichead"
)

// Tenant is one tenant's metrics: its head and local blocks (metricdb), the blocks it has in the bucket, its remote-write queues and its
// instance of Prometheus' HTTP API. It implements storage.Storage: queries span the head, local blocks and
// bucket blocks; appends go through the tenant's limits into the WAL (and so to remote write).
type Tenant struct {
	id     string
	store  *Store
	dir    string
	db     *metricdb.DB
	head   *metrichead.Head
	walMin int // the write-ahead log's first and last segments, all replayed before the tenant opens
	walMax int
	stop   context.CancelFunc // stops db.Run
	runWG  sync.WaitGroup

	limits  *limiter
	remote  *promremote.Storage // nil without remote_write
	sink    storage.Storage     // db, or a fanout of db and remote
	blocks  *bucketBlocks       // nil without a bucket
	shipper *shipper            // nil without a bucket
	meta    *metadataStore
	refs    *refCache // remote write 1.0 series by their wire labels

	rwRefusedLog atomic.Int64 // unix ns of the last "request refused" log line

	// Prometheus' API routes, without their CORS (serverOwnsCORS), built at the first request that needs them
	// (apiRouter): making Prometheus' API renders its OpenAPI documents, about 0.1 s of CPU, which a tenant
	// that is only written to never needs.
	apiOnce sync.Once
	apiReg  prometheus.Registerer
	router  http.Handler
}

var _ storage.Storage = (*Tenant)(nil)

func openTenant(_ context.Context, s *Store, id string) (*Tenant, error) {
	dir := s.tenantDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"tenant": id}, s.reg)
	logger := s.slog.With("tenant", id)
	meta, err := newMetadataStore(filepath.Join(dir, metadataFile))
	if err != nil {
		s.logger.Warn("metric metadata not restored; it is rebuilt by new pushes", zap.String("tenant", id), zap.Error(err))
	}
	t := &Tenant{id: id, store: s, dir: dir, meta: meta, refs: newRefCache()}
	t.limits = newLimiter(s.cfg.Limits, t)

	dbOpts := metricdb.DefaultOptions()
	dbOpts.RetentionDuration = s.cfg.Retention
	dbOpts.MinBlockDuration = s.cfg.BlockDuration
	dbOpts.MaxBlockDuration = max(s.cfg.BlockDuration, s.cfg.Retention/10)
	// The head has no append isolation: isolation_enabled is not honoured (a query may see part of a commit, as
	// with it off, the default).
	dbOpts.OutOfOrderTimeWindow = s.cfg.OutOfOrderTimeWindow
	if s.bkt != nil {
		if t.shipper, err = newShipper(t); err != nil {
			return nil, err
		}
		t.blocks = newBucketBlocks(t)
		// Keep blocks whose data is not in the bucket yet, whatever local retention says.
		dbOpts.BlocksToDelete = t.blocksToDelete
	}
	quarantineCorruptBlocks(context.Background(), dir, logger, s.logger, id)
	if err := t.openDB(dir, dbOpts, logger, reg); err != nil {
		return nil, err
	}
	t.sink = t.db
	t.limits.enforce.Store(true) // after WAL replay: replayed series were accepted once already.

	if len(s.rw) > 0 {
		rs := promremote.NewStorage(logger.With("component", "remote"), reg, t.db.StartTime, dir, time.Minute, noScrapeManager{}, false)
		cfg := &config.Config{
			GlobalConfig:       config.DefaultGlobalConfig,
			RemoteWriteConfigs: s.rw,
		}
		cfg.GlobalConfig.ExternalLabels = labels.FromMap(s.cfg.ExternalLabels)
		if err := rs.ApplyConfig(cfg); err != nil {
			_ = t.closeDB()
			return nil, fmt.Errorf("remote_write: %w", err)
		}
		t.remote = rs
		t.sink = storage.NewFanout(logger, t.db, rs)
	}
	t.apiReg = reg
	return t, nil
}

// openDB replays the write-ahead log (Prometheus' format, in dir/wal where Prometheus' DB keeps it, so a data
// directory Prometheus' DB wrote opens with its samples and Prometheus' remote-write watcher reads it) into a new
// head, opens the blocks around it and starts their compaction and retention.
func (t *Tenant) openDB(dir string, dbOpts metricdb.Options, logger *slog.Logger, reg prometheus.Registerer) error {
	s := t.store
	walDir := filepath.Join(dir, "wal")
	headOpts := dbOpts.HeadOptions()
	headOpts.ChunksDir = filepath.Join(dir, "head_chunks")
	headOpts.SeriesCallback = t.limits
	headOpts.MaxExemplars = s.cfg.MaxExemplars
	// Prometheus' head mapped its full chunks here; this head rebuilds its own from the log.
	if err := os.RemoveAll(filepath.Join(dir, "chunks_head")); err != nil {
		return fmt.Errorf("remove chunks_head: %w", err)
	}
	// The head keeps no sample the newest block holds: those are not replayed into memory.
	minValid, err := newestBlockEnd(dir)
	if err != nil {
		return err
	}
	head, rst, err := metrichead.Open(walDir, headOpts, metrichead.WALOptions{Compression: compression.Snappy,
		OOODir: filepath.Join(dir, wlog.WblDirName)},
		minValid, logger.With("component", "head"), reg)
	if err != nil {
		return fmt.Errorf("open head of %s: %w", dir, err)
	}
	if rst.Repaired || rst.RewroteRefs || rst.Invalid > 0 || rst.UnknownRefs > 0 {
		logger.Info("Write-ahead log replayed", "series", rst.Series, "samples", rst.Samples, "out_of_order_samples", rst.OOOSamples,
			"unknown_refs", rst.UnknownRefs, "invalid", rst.Invalid, "repaired", rst.Repaired, "rewrote_refs", rst.RewroteRefs)
	}
	if first, last, err := wlog.Segments(walDir); err == nil {
		t.walMin, t.walMax = first, last
	}
	db, err := metricdb.Open(dir, logger.With("component", "tsdb"), reg, head, dbOpts)
	if err != nil {
		return errors.Join(fmt.Errorf("open blocks of %s: %w", dir, err), head.Close())
	}
	t.db, t.head = db, head
	ctx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	t.runWG.Add(1)
	go func() {
		defer t.runWG.Done()
		db.Run(ctx)
	}()
	return nil
}

// closeDB stops compaction, waits for it, then closes the blocks and the head.
func (t *Tenant) closeDB() error {
	t.stop()
	t.runWG.Wait()
	return errors.Join(t.db.Close(), t.head.Close())
}

// newestBlockEnd is the end of the newest block in dir, or math.MinInt64 without one; a directory whose
// meta.json does not read is left to metricdb.Open, which skips it.
func newestBlockEnd(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list blocks of %s: %w", dir, err)
	}
	end := int64(math.MinInt64)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := ulid.ParseStrict(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue
		}
		var m tsdb.BlockMeta
		if json.Unmarshal(b, &m) != nil || m.Compaction.FromOutOfOrder() {
			continue
		}
		end = max(end, m.MaxTime)
	}
	return end, nil
}

// ID is the tenant's id.
func (t *Tenant) ID() string { return t.id }

// DB is the tenant's head and local blocks, for tests and tools.
func (t *Tenant) DB() *metricdb.DB { return t.db }

// Querier implements storage.Queryable over the head, the local blocks and the bucket blocks.
// Its series pass the query's Checkpoint as the engine starts reading each (see querylimit.Processors).
func (t *Tenant) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := t.db.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	if t.blocks != nil {
		if bq := t.blocks.queriers(mint, maxt); len(bq) > 0 {
			q = storage.NewMergeQuerier([]storage.Querier{q}, bq, storage.ChainedSeriesMerge)
		}
	}
	return checkpointQuerier{q}, nil
}

// ChunkQuerier implements storage.ChunkQueryable over the head, the local blocks and the bucket blocks.
func (t *Tenant) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := t.db.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	if t.blocks == nil {
		return q, nil
	}
	bq := t.blocks.chunkQueriers(mint, maxt)
	if len(bq) == 0 {
		return q, nil
	}
	return storage.NewMergeChunkQuerier([]storage.ChunkQuerier{q}, bq, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)), nil
}

// ExemplarQuerier implements storage.ExemplarQueryable (exemplars live in memory, as in Prometheus).
func (t *Tenant) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return t.db.ExemplarQuerier(ctx)
}

// Appender implements storage.Appendable: appends are checked against the tenant's limits and go to the WAL
// on Commit (and from there to remote write).
func (t *Tenant) Appender(ctx context.Context) storage.Appender {
	t.store.queries.Processors().Ingesting()
	return &limitedAppender{Appender: t.sink.Appender(ctx), t: t, ctx: ctx}
}

// AppenderV2 implements storage.AppendableV2.
func (t *Tenant) AppenderV2(ctx context.Context) storage.AppenderV2 {
	t.store.queries.Processors().Ingesting()
	return &limitedAppenderV2{AppenderV2: t.sink.AppenderV2(ctx), t: t, ctx: ctx}
}

// StartTime implements storage.Storage: the oldest timestamp, including the bucket.
func (t *Tenant) StartTime() (int64, error) {
	st, err := t.db.StartTime()
	if err != nil {
		return 0, err
	}
	if t.blocks != nil {
		if bt, ok := t.blocks.minTime(); ok && bt < st {
			st = bt
		}
	}
	return st, nil
}

// Close implements storage.Storage; it does nothing, as the Store owns the tenant's lifetime.
func (t *Tenant) Close() error { return nil }

func (t *Tenant) close() error {
	var errs []error
	if t.remote != nil {
		errs = append(errs, t.remote.Close())
	}
	if t.blocks != nil {
		errs = append(errs, t.blocks.close())
	}
	errs = append(errs, t.meta.save())
	errs = append(errs, t.closeDB())
	return errors.Join(errs...)
}

// apiRouter returns Prometheus' API routes, making them at the first call.
func (t *Tenant) apiRouter() http.Handler {
	t.apiOnce.Do(t.buildAPI)
	return t.router
}

func (t *Tenant) buildAPI() {
	s, reg := t.store, t.apiReg
	configFunc := func() config.Config {
		c := config.DefaultConfig
		c.OTLPConfig = s.otlp
		return c
	}
	start := time.Now()
	api := v1.NewAPI(
		s.tenantEngine(t.id),
		t, t, t, t,
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		func(ctx context.Context) v1.AlertmanagerRetriever {
			if f := s.ams.Load(); f != nil {
				return (*f)(ctx, t.id)
			}
			return noAlertmanagers{}
		},
		configFunc,
		map[string]string{},
		v1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		adminStats{t},
		t.dir,
		false, // admin APIs
		false, // search APIs
		0,
		s.slog.With("tenant", t.id, "component", "api"),
		func(ctx context.Context) v1.RulesRetriever {
			if f := s.rules.Load(); f != nil {
				return (*f)(ctx, t.id)
			}
			return noRules{}
		},
		50_000_000, 10, 1<<20, // remote read: sample limit, concurrency, frame size (Prometheus' defaults)
		false,
		// Prometheus answers CORS itself for the origins this matches; Sprout leaves CORS to sprout_api's
		// cors.allowed_origins, the same for every store, so this matches no origin (and serverOwnsCORS drops
		// the headers Prometheus sets anyway).
		regexp.MustCompile("^$"),
		func() (v1.RuntimeInfo, error) {
			return v1.RuntimeInfo{
				StartTime: start, ServerTime: time.Now(), ReloadConfigSuccess: true, LastConfigTime: start,
				GoroutineCount: runtime.NumGoroutine(), GOMAXPROCS: runtime.GOMAXPROCS(0),
				StorageRetention: s.cfg.Retention.String(),
			}, nil
		},
		&v1.PrometheusVersion{Version: PrometheusVersion, Revision: "sprout", Branch: s.version, GoVersion: runtime.Version()},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		s.gath,
		reg,
		nil,
		false, // remote write is Sprout's own receiver (remotewrite.go); /api/v1/write never reaches this API
		remote.MessageTypes{remote.WriteV1MessageType, remote.WriteV2MessageType},
		true, false, false, // OTLP receiver; no delta conversion
		false,
		s.cfg.LookbackDelta,
		false,
		true, // keep remote write 2.0 metadata
		nil,
		nil,
		// The OpenAPI document is not served; building the full one costs ~0.3 s per tenant.
		v1.OpenAPIOptions{IncludePaths: []string{"/sprout-no-openapi"}},
		nil,
	)
	router := route.New()
	api.Register(router.WithPrefix("/api/v1"))
	t.router = serverOwnsCORS(router)
}

// PrometheusVersion is the Prometheus release whose libraries Sprout's metrics store runs on; it is what
// /api/v1/status/buildinfo reports as "version", so that clients enable the features that release has.
const PrometheusVersion = "3.13.2"

type noTargets struct{}

func (noTargets) ScrapePools() []string                       { return []string{} }
func (noTargets) TargetsActive() map[string][]*scrape.Target  { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDroppedCounts() map[string]int        { return map[string]int{} }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("no scrape pools in Sprout")
}

type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

type noScrapeManager struct{}

func (noScrapeManager) Get() (*scrape.Manager, error) {
	return nil, errors.New("sprout has no scrape manager: metadata comes with remote write 2.0")
}

// adminStats adapts the tenant's DB to what /api/v1/status/tsdb needs.
type adminStats struct{ t *Tenant }

func (a adminStats) CleanTombstones() error { return a.t.db.CleanTombstones() }
func (a adminStats) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	return a.t.db.Delete(ctx, mint, maxt, ms...)
}
func (a adminStats) Snapshot(dir string, withHead bool) error { return a.t.db.Snapshot(dir, withHead) }
func (a adminStats) Stats(name string, limit int) (*tsdb.Stats, error) {
	return a.t.head.Stats(name, limit), nil
}
func (a adminStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{Min: a.t.walMin, Max: a.t.walMax, Current: a.t.walMax}, nil
}
func (a adminStats) BlockMetas() ([]tsdb.BlockMeta, error) { return a.t.db.BlockMetas(), nil }
