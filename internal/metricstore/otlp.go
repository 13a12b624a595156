package metricstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// maxAheadTime is how far in the future a pushed sample may be, as in Prometheus' receivers.
const maxAheadTime = 10 * time.Minute

// AppendOTLP writes OTLP metrics into the tenant, translated to Prometheus series with Prometheus' own OTLP
// translator and settings (the same path as Prometheus' /api/v1/otlp/v1/metrics). resourceToTelemetry promotes
// every resource attribute to a label, as the Collector's prometheusremotewrite exporter option of that name.
// Either the whole batch is committed to the WAL or none of it is; data refused by a limit or by the TSDB is a
// *refusal.Error.
func (t *Tenant) AppendOTLP(ctx context.Context, md pmetric.Metrics, resourceToTelemetry bool) (err error) {
	cfg := t.store.otlp
	if resourceToTelemetry {
		cfg = t.store.otlpR2T
	}
	app := &futureCapAppender{AppenderV2: t.AppenderV2(ctx), maxTime: timestamp.FromTime(time.Now().Add(maxAheadTime))}
	conv := otlptranslator.NewPrometheusConverter(app)
	annots, err := conv.FromMetrics(ctx, md, otlptranslator.Settings{
		AddMetricSuffixes:                    cfg.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:                            !cfg.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes:            otlptranslator.NewPromoteResourceAttributes(cfg),
		KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
		LookbackDelta:                        t.store.cfg.LookbackDelta,
		LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
	})
	if ws, _ := annots.AsStrings("", 0, 0); len(ws) > 0 {
		t.store.logger.Debug("OTLP translation warnings", zap.String("tenant", t.id), zap.Strings("warnings", ws))
	}
	if err != nil {
		_ = app.Rollback()
		return sampleRefusal(err)
	}
	return sampleRefusal(app.Commit())
}

// sampleRefusal makes the TSDB's refusals of samples (out of order, out of bounds, duplicate, too old, an
// invalid histogram) refusal.Invalid: the data itself is wrong, and sending it again cannot succeed. Refusals
// by a limit are refusals already; any other error is left as it is (retryable).
func sampleRefusal(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := refusal.As(err); ok {
		return err
	}
	if isSampleRefusal(err) {
		return &refusal.Error{Reason: refusal.Invalid, Err: err}
	}
	return err
}

func isHistogramError(err error) bool {
	var he histogram.Error
	return errors.As(err, &he)
}

// futureCapAppender refuses samples too far in the future and reduces exponential histograms beyond the
// highest schema, as Prometheus' OTLP receiver does before appending.
type futureCapAppender struct {
	storage.AppenderV2
	maxTime int64
}

func (a *futureCapAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, ts int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if ts > a.maxTime {
		return 0, fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)
	}
	if h != nil && histogram.IsExponentialSchemaReserved(h.Schema) && h.Schema > histogram.ExponentialSchemaMax {
		if err := h.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
			return 0, err
		}
	}
	if fh != nil && histogram.IsExponentialSchemaReserved(fh.Schema) && fh.Schema > histogram.ExponentialSchemaMax {
		if err := fh.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
			return 0, err
		}
	}
	return a.AppenderV2.Append(ref, ls, st, ts, v, h, fh, opts)
}
