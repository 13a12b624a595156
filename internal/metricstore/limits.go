package metricstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// limitErr is a write refused by a per-tenant limit: r is refusal.OverLimit for data that will never be
// accepted, refusal.RateLimited for the rate. The message names the configuration key, so the operator knows
// what to raise.
func limitErr(limit string, r refusal.Reason, format string, args ...any) *refusal.Error {
	return refusal.New(r, limit, format, args...)
}

// limiter enforces the tenant's limits. Series and label limits are checked when the head is about to create
// a series (tsdb's SeriesLifecycleCallback), so existing series cost nothing; the rate is checked per commit.
type limiter struct {
	cfg     Limits
	t       *Tenant
	rate    *rate.Limiter
	enforce atomic.Bool
}

func newLimiter(cfg Limits, t *Tenant) *limiter {
	l := &limiter{cfg: cfg, t: t}
	if cfg.IngestionRate > 0 {
		l.rate = rate.NewLimiter(rate.Limit(cfg.IngestionRate), max(cfg.IngestionBurstSize, 1))
	}
	return l
}

// PreCreation implements tsdb.SeriesLifecycleCallback.
func (l *limiter) PreCreation(ls labels.Labels) error {
	if !l.enforce.Load() {
		return nil
	}
	if n := l.cfg.MaxLabelNamesPerSeries; n > 0 && ls.Len() > n {
		return limitErr("max_label_names_per_series", refusal.OverLimit,
			"received a series whose number of labels exceeds the limit (actual: %d, limit: %d) series: '%s'", ls.Len(), n, truncate(ls.String(), 200))
	}
	var err error
	ls.Range(func(lb labels.Label) {
		if err != nil {
			return
		}
		if n := l.cfg.MaxLabelNameLength; n > 0 && len(lb.Name) > n {
			err = limitErr("max_label_name_length", refusal.OverLimit,
				"received a series whose label name length exceeds the limit, label: '%s' series: '%s'", truncate(lb.Name, 200), truncate(ls.String(), 200))
		}
		if n := l.cfg.MaxLabelValueLength; n > 0 && len(lb.Value) > n {
			err = limitErr("max_label_value_length", refusal.OverLimit,
				"received a series whose label value length of %d exceeds the limit of %d, label: '%s', value: '%s' (truncated) series: '%s'", len(lb.Value), n, lb.Name, truncate(lb.Value, 200), truncate(ls.String(), 200))
		}
	})
	if err != nil {
		return err
	}
	if n := l.cfg.MaxGlobalSeriesPerUser; n > 0 && l.t.head != nil && l.t.head.NumSeries() >= uint64(n) {
		return limitErr("max_global_series_per_user", refusal.OverLimit,
			"per-user series limit of %d exceeded, series %s was refused", n, truncate(ls.String(), 200))
	}
	return nil
}

// PostCreation implements tsdb.SeriesLifecycleCallback.
func (*limiter) PostCreation(labels.Labels) {}

// PostDeletion implements tsdb.SeriesLifecycleCallback: series left the head, so the remote write reference
// cache forgets what it knows (it refills from the next requests).
func (l *limiter) PostDeletion(map[chunks.HeadSeriesRef]labels.Labels) {
	if l.t != nil && l.t.refs != nil {
		l.t.refs.reset()
	}
}

// allow takes n samples from the tenant's ingestion budget.
func (l *limiter) allow(n int) error {
	if l.rate == nil || n == 0 {
		return nil
	}
	if !l.rate.AllowN(time.Now(), n) {
		return limitErr("ingestion_rate", refusal.RateLimited,
			"the request has been rejected because the tenant exceeded the ingestion rate limit, set to %g items/s with a maximum allowed burst of %d; this request had %d samples",
			l.cfg.IngestionRate, l.cfg.IngestionBurstSize, n)
	}
	return nil
}

// exhausted refuses a write before it is decoded when the tenant's rate bucket holds less than one token: the
// request would be refused after decoding anyway, and under overload it is the decoding of requests bound to be
// refused that takes the CPU the admitted ones need.
func (l *limiter) exhausted() *refusal.Error {
	if l.rate == nil || !l.enforce.Load() || l.rate.TokensAt(time.Now()) >= 1 {
		return nil
	}
	return limitErr("ingestion_rate", refusal.RateLimited,
		"the request has been rejected because the tenant exceeded the ingestion rate limit, set to %g items/s with a maximum allowed burst of %d; refused before decoding, the tenant's burst is used up",
		l.cfg.IngestionRate, l.cfg.IngestionBurstSize)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// refusalNote carries the refusal of one HTTP write through Prometheus' remote-write and OTLP handlers (which
// answer 500 for errors they do not know) back to Sprout's handler, which answers the refusal instead.
type refusalNote struct {
	mu  sync.Mutex
	err *refusal.Error
}

type refusalKey struct{}

func withRefusal(ctx context.Context) (context.Context, *refusalNote) {
	r := &refusalNote{}
	return context.WithValue(ctx, refusalKey{}, r), r
}

func noteRefusal(ctx context.Context, err error) {
	ref, ok := refusal.As(err)
	if !ok {
		return
	}
	if r, ok := ctx.Value(refusalKey{}).(*refusalNote); ok {
		r.mu.Lock()
		if r.err == nil {
			r.err = ref
		}
		r.mu.Unlock()
	}
}

func (r *refusalNote) get() *refusal.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// admitCommit checks a commit of n samples against the tenant's rate limit and the disk's free space.
func (t *Tenant) admitCommit(n int) error {
	if n == 0 {
		return nil // nothing to write (a rule that produced no sample)
	}
	if err := t.store.disk.Check(); err != nil {
		return err
	}
	return t.limits.allow(n)
}

// limitedAppender is the tenant's storage.Appender: it counts samples for the rate limit, records metadata,
// notes limit refusals, and wakes the remote-write queues after a commit.
type limitedAppender struct {
	storage.Appender
	t   *Tenant
	ctx context.Context
	n   int
}

func (a *limitedAppender) Append(ref storage.SeriesRef, l labels.Labels, ts int64, v float64) (storage.SeriesRef, error) {
	r, err := a.Appender.Append(ref, l, ts, v)
	if err != nil {
		noteRefusal(a.ctx, err)
		return r, err
	}
	a.n++
	return r, nil
}

func (a *limitedAppender) AppendHistogram(ref storage.SeriesRef, l labels.Labels, ts int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	r, err := a.Appender.AppendHistogram(ref, l, ts, h, fh)
	if err != nil {
		noteRefusal(a.ctx, err)
		return r, err
	}
	a.n++
	return r, nil
}

func (a *limitedAppender) AppendExemplar(ref storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	return a.Appender.AppendExemplar(ref, l, e)
}

func (a *limitedAppender) UpdateMetadata(ref storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	// The head keeps m in the series: give it the metadata store's copy, never the request's bytes.
	return a.Appender.UpdateMetadata(ref, l, a.t.meta.intern(l.Get(labels.MetricName), m))
}

func (a *limitedAppender) Commit() error {
	if err := a.t.admitCommit(a.n); err != nil {
		noteRefusal(a.ctx, err)
		_ = a.Appender.Rollback()
		return err
	}
	if err := a.Appender.Commit(); err != nil {
		return err
	}
	if a.t.remote != nil && a.n > 0 {
		a.t.remote.Notify()
	}
	if err := a.t.meta.save(); err != nil {
		a.t.store.logger.Warn("metric metadata", zap.String("tenant", a.t.id), zap.Error(err))
	}
	return nil
}

// limitedAppenderV2 is limitedAppender for storage.AppenderV2 (OTLP and the ruler's newer paths).
type limitedAppenderV2 struct {
	storage.AppenderV2
	t   *Tenant
	ctx context.Context
	n   int
}

func (a *limitedAppenderV2) Append(ref storage.SeriesRef, ls labels.Labels, st, ts int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if !opts.Metadata.IsEmpty() {
		name := opts.MetricFamilyName
		if name == "" {
			name = ls.Get(labels.MetricName)
		}
		opts.Metadata = a.t.meta.intern(name, opts.Metadata)
	}
	r, err := a.AppenderV2.Append(ref, ls, st, ts, v, h, fh, opts)
	if err != nil {
		var partial *storage.AppendPartialError
		if !errors.As(err, &partial) {
			noteRefusal(a.ctx, err)
			return r, err
		}
		// Only exemplars or metadata failed; the sample is in (as Prometheus' OTLP path treats it).
	}
	a.n++
	return r, nil
}

func (a *limitedAppenderV2) Commit() error {
	if err := a.t.admitCommit(a.n); err != nil {
		noteRefusal(a.ctx, err)
		_ = a.AppenderV2.Rollback()
		return err
	}
	if err := a.AppenderV2.Commit(); err != nil {
		return err
	}
	if a.t.remote != nil && a.n > 0 {
		a.t.remote.Notify()
	}
	if err := a.t.meta.save(); err != nil {
		a.t.store.logger.Warn("metric metadata", zap.String("tenant", a.t.id), zap.Error(err))
	}
	return nil
}
