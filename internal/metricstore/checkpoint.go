package metricstore

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/sprout-otel/sprout/internal/querylimit"
)

// checkpointQuerier gives PromQL's engine, whose loops Sprout cannot reach, a Checkpoint per series: the engine
// asks for a series' iterator as it starts computing over it, so a long query hands its processor over between
// series (see querylimit.Processors).
type checkpointQuerier struct{ storage.Querier }

func (q checkpointQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return checkpointSeriesSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), ctx: ctx}
}

// selectUnchecked selects without the per-series Checkpoint, for a reader that looks at its context itself.
func (q checkpointQuerier) selectUnchecked(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

type checkpointSeriesSet struct {
	storage.SeriesSet
	ctx context.Context
}

func (s checkpointSeriesSet) At() storage.Series {
	return checkpointSeries{Series: s.SeriesSet.At(), ctx: s.ctx}
}

type checkpointSeries struct {
	storage.Series
	ctx context.Context
}

func (s checkpointSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	// Its only error is the context's, which the engine checks itself between steps.
	_ = querylimit.Checkpoint(s.ctx)
	return s.Series.Iterator(it)
}
