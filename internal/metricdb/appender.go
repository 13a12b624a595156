package metricdb

import (
	"context"
	"errors"
	"math"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

// The DB's appenders are Prometheus' storage.Appender and storage.AppenderV2 over the head's appender, so the
// metric store's ingest paths (remote write, OTLP, the ruler, the generator) append as they do to Prometheus'
// DB. Series refs are the head's (32 bits); a ref the head did not hand out is treated as unknown, and the
// labels find or make the series, as with Prometheus' head.

var (
	_ storage.Appender   = (*appenderV1)(nil)
	_ storage.AppenderV2 = (*appenderV2)(nil)
)

// Appender returns a storage.Appender of the DB.
func (db *DB) Appender(context.Context) storage.Appender { return &appenderV1{a: db.head.Appender()} }

// AppenderV2 returns a storage.AppenderV2 of the DB. A sample's start timestamp is not stored (Prometheus' DB
// does not either unless its zero-sample injection is on).
func (db *DB) AppenderV2(context.Context) storage.AppenderV2 {
	return &appenderV2{a: db.head.Appender()}
}

// headRef narrows a storage ref to the head's; 0 (unknown) when it does not fit.
func headRef(ref storage.SeriesRef) uint32 {
	if ref > math.MaxUint32 {
		return 0
	}
	return uint32(ref)
}

type appenderV1 struct {
	a *metrichead.Appender
}

func (a *appenderV1) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	r, err := a.a.Append(headRef(ref), l, t, v)
	return storage.SeriesRef(r), err
}

// SetOptions has nothing to set: the head refuses every out-of-order sample.
func (a *appenderV1) SetOptions(*storage.AppendOptions) {}

func (a *appenderV1) AppendExemplar(ref storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	r, err := a.a.AppendExemplar(headRef(ref), l, e)
	return storage.SeriesRef(r), err
}

func (a *appenderV1) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	r, err := a.a.AppendHistogram(headRef(ref), l, t, h, fh)
	return storage.SeriesRef(r), err
}

func (a *appenderV1) UpdateMetadata(ref storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	r, err := a.a.UpdateMetadata(headRef(ref), l, m)
	return storage.SeriesRef(r), err
}

// AppendSTZeroSample adds a zero at the start timestamp st of a counter, before its sample at t, with the
// answers of Prometheus' head: refused when st is not before t, and as out of order when the series already
// holds later samples (after the first, every call for a counter's life is refused so).
func (a *appenderV1) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	if st >= t {
		return 0, storage.ErrSTNewerThanSample
	}
	r, err := a.a.AppendSTZero(headRef(ref), l, st)
	return storage.SeriesRef(r), err
}

// AppendHistogramSTZeroSample is AppendSTZeroSample for histograms: an empty histogram of the same schema,
// marked as a counter reset.
func (a *appenderV1) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if st >= t {
		return 0, storage.ErrSTNewerThanSample
	}
	var (
		r   uint32
		err error
	)
	switch {
	case h != nil:
		zero := &histogram.Histogram{CounterResetHint: histogram.CounterReset, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, CustomValues: h.CustomValues}
		r, err = a.a.AppendHistogramSTZero(headRef(ref), l, st, zero, nil)
	case fh != nil:
		zero := &histogram.FloatHistogram{CounterResetHint: histogram.CounterReset, Schema: fh.Schema, ZeroThreshold: fh.ZeroThreshold, CustomValues: fh.CustomValues}
		r, err = a.a.AppendHistogramSTZero(headRef(ref), l, st, nil, zero)
	default:
		return 0, errors.New("metric db: a histogram start-time zero sample needs a histogram")
	}
	return storage.SeriesRef(r), stError(err)
}

// stError maps the head's out-of-order refusal of a histogram zero sample to the start-time error Prometheus'
// appender returns for it.
func stError(err error) error {
	if errors.Is(err, storage.ErrOutOfOrderSample) {
		return storage.ErrOutOfOrderST
	}
	return err
}

func (a *appenderV1) Commit() error   { return a.a.Commit() }
func (a *appenderV1) Rollback() error { return a.a.Rollback() }

type appenderV2 struct {
	a *metrichead.Appender
}

// Append adds one sample (v, h or fh) and what comes with it: exemplars (their refusals, other than
// duplicates, come back as an AppendPartialError beside an appended sample) and metadata (logged when it
// changed). A stale marker carries neither, as in Prometheus' head.
func (a *appenderV2) Append(ref storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	var (
		r     uint32
		err   error
		stale bool
	)
	switch {
	case fh != nil:
		stale = value.IsStaleNaN(fh.Sum)
		r, err = a.a.AppendHistogram(headRef(ref), ls, t, nil, fh)
	case h != nil:
		stale = value.IsStaleNaN(h.Sum)
		r, err = a.a.AppendHistogram(headRef(ref), ls, t, h, nil)
	default:
		stale = value.IsStaleNaN(v)
		r, err = a.a.Append(headRef(ref), ls, t, v)
	}
	if err != nil {
		return 0, err
	}
	if stale {
		return storage.SeriesRef(r), nil
	}
	var partial *storage.AppendPartialError
	for _, e := range opts.Exemplars {
		if _, err := a.a.AppendExemplar(r, labels.EmptyLabels(), e); err != nil && !errors.Is(err, storage.ErrDuplicateExemplar) {
			if partial == nil {
				partial = &storage.AppendPartialError{}
			}
			partial.ExemplarErrors = append(partial.ExemplarErrors, err)
		}
	}
	if !opts.Metadata.IsEmpty() {
		if _, err := a.a.UpdateMetadata(r, ls, opts.Metadata); err != nil {
			return storage.SeriesRef(r), err
		}
	}
	return storage.SeriesRef(r), partial.ToError()
}

func (a *appenderV2) Commit() error   { return a.a.Commit() }
func (a *appenderV2) Rollback() error { return a.a.Rollback() }

// ExemplarQuerier reads the head's exemplars (blocks hold none, as in Prometheus); none when the head keeps
// none.
func (db *DB) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	if ex := db.head.Exemplars(); ex != nil {
		return ex.ExemplarQuerier(ctx)
	}
	return noExemplars{}, nil
}

type noExemplars struct{}

func (noExemplars) Select(int64, int64, ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return nil, nil
}
