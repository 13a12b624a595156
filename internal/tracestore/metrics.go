package tracestore

import "github.com/prometheus/client_golang/prometheus"

type storeMetrics struct {
	spansIn       prometheus.Counter
	walBytes      prometheus.Counter
	walErrors     prometheus.Counter
	refused       *prometheus.CounterVec
	liveTraces    prometheus.Gauge
	liveBytes     prometheus.Gauge
	blocks        prometheus.Gauge
	blocksWritten prometheus.Counter
	blockBytes    prometheus.Counter
	compactions   prometheus.Counter
	deleted       prometheus.Counter

	searchBlocksSkipped    prometheus.Counter
	searchRowGroupsSkipped prometheus.Counter

	tenantLoadFailures *prometheus.CounterVec
}

func newStoreMetrics() *storeMetrics {
	return &storeMetrics{
		spansIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_spans_received_total", Help: "Spans written to the trace WAL."}),
		walBytes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_wal_bytes_total", Help: "Bytes appended to the trace WAL."}),
		walErrors:     prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_wal_errors_total", Help: "Failed WAL appends (the batch was refused)."}),
		refused:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sprout_traces_spans_refused_total", Help: "Spans refused by a limit."}, []string{"limit"}),
		liveTraces:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "sprout_traces_live_traces", Help: "Traces receiving spans in memory (last tenant updated)."}),
		liveBytes:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "sprout_traces_live_bytes", Help: "Span bytes in memory, live and waiting for a block (last tenant updated)."}),
		blocks:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "sprout_traces_blocks", Help: "Blocks in the bucket (last tenant updated)."}),
		blocksWritten: prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_blocks_written_total", Help: "Blocks written, by flushes and compactions."}),
		blockBytes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_block_bytes_written_total", Help: "Parquet bytes written to the bucket."}),
		compactions:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_compactions_total", Help: "Compactions that merged blocks."}),
		deleted:       prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_blocks_deleted_total", Help: "Blocks deleted by retention or after compaction."}),
		searchBlocksSkipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_search_blocks_skipped_total",
			Help: "Blocks a search skipped by their meta.json column summary, without opening them."}),
		searchRowGroupsSkipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "sprout_traces_search_row_groups_skipped_total",
			Help: "Row groups a search skipped by their column statistics and dictionaries."}),
		tenantLoadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sprout_traces_tenant_load_failures_total",
			Help: "Tenants the trace store could not open at start (logged; the others started)."}, []string{"tenant"}),
	}
}

// Collectors returns the store's metrics for registration.
func (s *Store) Collectors() []prometheus.Collector {
	m := s.m
	return []prometheus.Collector{m.spansIn, m.walBytes, m.walErrors, m.refused, m.liveTraces, m.liveBytes, m.blocks, m.blocksWritten, m.blockBytes, m.compactions, m.deleted,
		m.searchBlocksSkipped, m.searchRowGroupsSkipped, m.tenantLoadFailures, s.queries.Collector("traces")}
}
