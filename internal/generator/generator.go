// Package generator derives Tempo's span metrics and service graph metrics from spans.
//
// It owns the cumulative state of those metrics (series, pending service-graph edges), its bound
// (max_active_series, max_items, staleness) and its durability (a WAL of accepted batches plus periodic
// checkpoints, see wal.go). It emits cumulative OTLP metrics whose names and labels, after the standard
// OTLP-to-Prometheus translation, are exactly Tempo's. It must not know where the metrics go: the Collector
// connector in components/generatorconnector hands them to the next pipeline.
package generator

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/diskguard"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/wal"
)

// Generator is safe for concurrent use.
type Generator struct {
	cfg    Config
	logger *zap.Logger

	spanMetrics, serviceGraphs, targetInfo bool
	// attrDims are the attribute names the facts carry values of: span-metrics and service-graph dimensions.
	attrDims []string
	// dimLabels are the span-metrics dimension labels; smDimIdx[d] indexes attrDims.
	dimLabels []string
	smDimIdx  []int
	sgDims    []sgDim
	buckets   [numMetrics][]float64
	// classic and native say which histogram forms are emitted; nativeScale is a new series' scale.
	classic, native bool
	nativeScale     int32

	mu        sync.Mutex
	tenants   map[string]*tenantState
	active    int
	refused   uint64
	wal       *wal.Log // nil when durability is off
	disk      *diskguard.Guard
	lastCkpt  int64
	closed    bool
	freeEdges []*edge // completed edges for reuse
	scratch   []labelPair
	keyBuf    []byte
	encodeBuf encoder
}

// Stats are the generator's own gauges and counters, for its /metrics.
type Stats struct {
	ActiveSeries   int
	RefusedSeries  uint64
	PendingEdges   int
	WALSizeBytes   int64
	TenantsTracked int
}

// TenantMetrics is one tenant's cumulative metrics at an emission.
type TenantMetrics struct {
	Tenant  string
	Metrics pmetric.Metrics
}

// New builds a generator and, when cfg.WAL.Dir is set, restores the state its WAL holds.
func New(cfg Config, logger *zap.Logger) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	g := &Generator{
		cfg:           cfg,
		logger:        logger,
		spanMetrics:   cfg.enabled(ProcessorSpanMetrics),
		serviceGraphs: cfg.enabled(ProcessorServiceGraphs),
		tenants:       map[string]*tenantState{},
	}
	g.targetInfo = g.spanMetrics && cfg.SpanMetrics.EnableTargetInfo
	attrIdx := func(name string) int {
		if i := slices.Index(g.attrDims, name); i >= 0 {
			return i
		}
		g.attrDims = append(g.attrDims, name)
		return len(g.attrDims) - 1
	}
	if g.spanMetrics {
		for _, d := range cfg.SpanMetrics.Dimensions {
			g.dimLabels = append(g.dimLabels, dimensionLabel(d, intrinsicLabels))
			g.smDimIdx = append(g.smDimIdx, attrIdx(d))
		}
	}
	if g.serviceGraphs {
		for _, d := range cfg.ServiceGraphs.Dimensions {
			g.sgDims = append(g.sgDims, sgDim{
				idx:         attrIdx(d),
				label:       SanitizeLabelName(d),
				clientLabel: SanitizeLabelName("client_" + d),
				serverLabel: SanitizeLabelName("server_" + d),
			})
		}
	}
	g.buckets[mLatency] = cfg.SpanMetrics.HistogramBuckets
	g.buckets[mSGServer] = cfg.ServiceGraphs.HistogramBuckets
	g.buckets[mSGClient] = cfg.ServiceGraphs.HistogramBuckets
	g.buckets[mSGMessaging] = cfg.ServiceGraphs.HistogramBuckets
	g.classic = hasClassic(cfg.GenerateNativeHistograms)
	g.native = hasNative(cfg.GenerateNativeHistograms)
	if g.native {
		g.nativeScale = nativeScaleFor(cfg.NativeHistogramBucketFactor)
	}
	if cfg.WAL.Dir != "" {
		g.disk = diskguard.New("span-metrics generator", cfg.WAL.Dir, cfg.WAL.MinFreeDiskBytes)
		if err := g.openWAL(); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// sgDim is one service-graph dimension: its attribute's index in attrDims and its labels.
type sgDim struct {
	idx                             int
	label, clientLabel, serverLabel string
}

// ErrClosed is returned by Consume after Close.
var ErrClosed = errors.New("generator is closed")

// Consume accepts one batch of spans of a tenant at time now. When it returns nil the batch is in the WAL
// (fsynced under fsync "always") and in the state; when it returns an error the batch was not applied.
func (g *Generator) Consume(tenantID string, now time.Time, td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil
	}
	if err := tenant.Validate(tenantID); err != nil {
		return err
	}
	b := g.extract(tenantID, now.UnixNano(), td)
	defer releaseBatch(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.tenants[tenantID] == nil {
		if err := tenant.CheckCount(tenantID, len(g.tenants), g.cfg.MaxTenants, "span-metrics generator"); err != nil {
			return err
		}
	}
	if g.wal != nil {
		if err := g.disk.Check(); err != nil {
			return err
		}
		g.encodeBuf.b = g.encodeBuf.b[:0]
		encodeBatch(&g.encodeBuf, b)
		if _, err := g.wal.Append(g.encodeBuf.b); err != nil {
			return fmt.Errorf("append generator wal: %w", err)
		}
	}
	g.apply(b)
	return nil
}

// Tick expires service-graph edges that waited longer than wait, drops stale series, and checkpoints the
// state when the checkpoint interval has passed. The connector calls it every second or so.
func (g *Generator) Tick(now time.Time) error {
	ns := now.UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.wal != nil {
		g.encodeBuf.b = g.encodeBuf.b[:0]
		encodeTick(&g.encodeBuf, ns)
		if _, err := g.wal.Append(g.encodeBuf.b); err != nil {
			return fmt.Errorf("append generator wal: %w", err)
		}
	}
	g.tick(ns)
	if g.wal != nil {
		if g.lastCkpt == 0 {
			g.lastCkpt = ns
		}
		if ns-g.lastCkpt >= int64(g.cfg.WAL.CheckpointInterval) {
			if err := g.checkpointLocked(); err != nil {
				return err
			}
			g.lastCkpt = ns
		}
	}
	return nil
}

// Checkpoint writes the state and truncates the log now.
func (g *Generator) Checkpoint() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wal == nil || g.closed {
		return nil
	}
	return g.checkpointLocked()
}

// Close checkpoints and closes the WAL. Consume and Tick fail afterwards.
func (g *Generator) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	if g.wal == nil {
		return nil
	}
	err := g.checkpointLocked()
	return errors.Join(err, g.wal.Close())
}

// Stats reads the generator's own figures.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Stats{ActiveSeries: g.active, RefusedSeries: g.refused, TenantsTracked: len(g.tenants)}
	for _, ts := range g.tenants {
		s.PendingEdges += len(ts.edges)
	}
	if g.wal != nil {
		s.WALSizeBytes = g.wal.Size()
	}
	return s
}

// Collect returns every tenant's cumulative metrics as of now, with an empty resource so that the OTLP
// translation adds no job/instance labels, and the exemplars recorded since the previous Collect.
func (g *Generator) Collect(now time.Time) []TenantMetrics {
	ts := pcommon.NewTimestampFromTime(now)
	g.mu.Lock()
	defer g.mu.Unlock()
	ids := make([]string, 0, len(g.tenants))
	for id, t := range g.tenants {
		if len(t.series) > 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := make([]TenantMetrics, 0, len(ids))
	for _, id := range ids {
		out = append(out, TenantMetrics{Tenant: id, Metrics: g.emit(g.tenants[id], ts)})
	}
	return out
}

func (g *Generator) emit(t *tenantState, now pcommon.Timestamp) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	var byMetric [numMetrics][]*series
	for _, s := range t.series {
		byMetric[s.metric] = append(byMetric[s.metric], s)
	}
	for m := range numMetrics {
		list := byMetric[m]
		if len(list) == 0 {
			continue
		}
		met := sm.Metrics().AppendEmpty()
		met.SetName(metricNames[m])
		switch metricKinds[m] {
		case kindCounter:
			sum := met.SetEmptySum()
			sum.SetIsMonotonic(true)
			sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			dps := sum.DataPoints()
			dps.EnsureCapacity(len(list))
			for _, s := range list {
				if !s.emitted {
					s.emitted = true
					zero := dps.AppendEmpty()
					putLabels(zero.Attributes(), s.labels)
					zero.SetStartTimestamp(pcommon.Timestamp(s.start))
					zero.SetTimestamp(zeroAt(s, now))
					zero.SetDoubleValue(0)
				}
				dp := dps.AppendEmpty()
				putLabels(dp.Attributes(), s.labels)
				dp.SetStartTimestamp(pcommon.Timestamp(s.start))
				dp.SetTimestamp(now)
				dp.SetDoubleValue(s.value)
			}
		case kindGauge:
			dps := met.SetEmptyGauge().DataPoints()
			dps.EnsureCapacity(len(list))
			for _, s := range list {
				dp := dps.AppendEmpty()
				putLabels(dp.Attributes(), s.labels)
				dp.SetTimestamp(now)
				dp.SetDoubleValue(s.value)
			}
		case kindHistogram:
			if g.classic {
				g.emitClassic(met, m, list, now)
			}
			if g.native {
				if g.classic {
					met = sm.Metrics().AppendEmpty()
					met.SetName(metricNames[m])
				}
				g.emitNative(met, list, now, !g.classic)
			}
			for _, s := range list {
				s.emitted = true
				s.exs = s.exs[:0]
			}
		}
	}
	return md
}

func (g *Generator) emitClassic(met pmetric.Metric, m int, list []*series, now pcommon.Timestamp) {
	h := met.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dps := h.DataPoints()
	dps.EnsureCapacity(len(list))
	counts := make([]uint64, len(g.buckets[m])+1)
	for _, s := range list {
		if !s.emitted {
			zero := dps.AppendEmpty()
			putLabels(zero.Attributes(), s.labels)
			zero.SetStartTimestamp(pcommon.Timestamp(s.start))
			zero.SetTimestamp(zeroAt(s, now))
			zero.ExplicitBounds().FromRaw(g.buckets[m])
			zero.BucketCounts().FromRaw(make([]uint64, len(s.counts)))
		}
		dp := dps.AppendEmpty()
		putLabels(dp.Attributes(), s.labels)
		dp.SetStartTimestamp(pcommon.Timestamp(s.start))
		dp.SetTimestamp(now)
		dp.ExplicitBounds().FromRaw(g.buckets[m])
		total := roundCounts(counts, s.counts)
		dp.BucketCounts().FromRaw(counts)
		dp.SetSum(s.sum)
		dp.SetCount(total)
		g.putExemplars(dp.Exemplars(), s.exs)
	}
}

func (g *Generator) emitNative(met pmetric.Metric, list []*series, now pcommon.Timestamp, withExemplars bool) {
	h := met.SetEmptyExponentialHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dps := h.DataPoints()
	dps.EnsureCapacity(len(list))
	for _, s := range list {
		if !s.emitted {
			zero := dps.AppendEmpty()
			putLabels(zero.Attributes(), s.labels)
			zero.SetStartTimestamp(pcommon.Timestamp(s.start))
			zero.SetTimestamp(zeroAt(s, now))
			zero.SetScale(s.nScale)
		}
		dp := dps.AppendEmpty()
		putLabels(dp.Attributes(), s.labels)
		dp.SetStartTimestamp(pcommon.Timestamp(s.start))
		dp.SetTimestamp(now)
		dp.SetScale(s.nScale)
		zc := roundCounts(make([]uint64, 1), []float64{s.nZero})
		dp.SetZeroCount(zc)
		counts := make([]uint64, len(s.nCounts))
		total := roundCounts(counts, s.nCounts)
		dp.Positive().SetOffset(s.nOffset)
		dp.Positive().BucketCounts().FromRaw(counts)
		dp.SetCount(zc + total)
		dp.SetSum(s.sum)
		if withExemplars {
			g.putExemplars(dp.Exemplars(), s.exs)
		}
	}
}

func (g *Generator) putExemplars(dst pmetric.ExemplarSlice, exs []exemplar) {
	extra := g.cfg.TraceIDLabelName
	if extra == "trace_id" {
		extra = ""
	}
	for i := range exs {
		e := &exs[i]
		ex := dst.AppendEmpty()
		ex.SetDoubleValue(e.value)
		ex.SetTimestamp(pcommon.Timestamp(e.ts))
		ex.SetTraceID(e.traceID)
		ex.SetSpanID(e.spanID)
		if extra != "" {
			ex.FilteredAttributes().PutStr(extra, hex.EncodeToString(e.traceID[:]))
		}
	}
}

// zeroAt is when a new series' zero point sits: at its creation, or a millisecond before this emission for
// a series created in it (an edge completed by expiry), so that it always precedes the value.
func zeroAt(s *series, now pcommon.Timestamp) pcommon.Timestamp {
	if start := pcommon.Timestamp(s.start); start < now-pcommon.Timestamp(time.Millisecond) {
		return start
	}
	return now - pcommon.Timestamp(time.Millisecond)
}

func putLabels(m pcommon.Map, labels []labelPair) {
	m.EnsureCapacity(len(labels))
	for _, l := range labels {
		m.PutStr(l.name, l.value)
	}
}

func (g *Generator) String() string {
	return fmt.Sprintf("generator(processors=%v)", g.cfg.Processors)
}
