package generator

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"testing"
	"time"

	promexemplar "github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// t0 is the test clock's origin.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// span is a hand-built span: ids are single bytes to keep the fixtures readable.
type span struct {
	svc    string
	name   string
	kind   ptrace.SpanKind
	id     byte
	parent byte
	dur    time.Duration
	err    bool
	attrs  map[string]string
	res    map[string]string
	// dattrs are double span attributes (sampling ratios); at shifts the span's start after t0; noSvc leaves
	// service.name off the resource.
	dattrs map[string]float64
	at     time.Duration
	noSvc  bool
}

func traceID(b byte) pcommon.TraceID { return pcommon.TraceID{0xaa, 15: b} }
func spanID(b byte) pcommon.SpanID   { return pcommon.SpanID{0xbb, 7: b} }

// buildTraces puts the spans of one trace into one ResourceSpans per service, as SDKs send them.
func buildTraces(trace byte, spans ...span) ptrace.Traces {
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for _, s := range spans {
		ss, ok := bySvc[s.svc]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			if !s.noSvc {
				rs.Resource().Attributes().PutStr("service.name", s.svc)
			}
			for k, v := range s.res {
				rs.Resource().Attributes().PutStr(k, v)
			}
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			bySvc[s.svc] = ss
		}
		sp := ss.AppendEmpty()
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		sp.SetTraceID(traceID(trace))
		sp.SetSpanID(spanID(s.id))
		if s.parent != 0 {
			sp.SetParentSpanID(spanID(s.parent))
		}
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0.Add(s.at)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(s.at + s.dur)))
		for k, v := range s.dattrs {
			sp.Attributes().PutDouble(k, v)
		}
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
			sp.Status().SetMessage("boom")
		}
		for k, v := range s.attrs {
			sp.Attributes().PutStr(k, v)
		}
	}
	return td
}

// promSample is one sample after the OTLP-to-Prometheus translation.
type promSample struct {
	name      string
	ls        labels.Labels
	v         float64
	exemplars []promexemplar.Exemplar
	t         int64                     // timestamp of the newest point
	points    int                       // how many points the series had in this emission
	first     float64                   // the value of its first point
	h         *histogram.FloatHistogram // the newest native histogram point, if the series is one
}

type captureAppender struct{ samples map[string]promSample }

func (a *captureAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram,
	fh *histogram.FloatHistogram, opts storage.AppendV2Options,
) (storage.SeriesRef, error) {
	if h != nil {
		fh = h.ToFloat(nil)
	}
	k := ls.String()
	if prev, dup := a.samples[k]; dup {
		// A series may carry a zero point at its start before its value; anything else is a duplicate.
		if t <= prev.t {
			return 0, fmt.Errorf("duplicate series %s at %d (previous point at %d)", k, t, prev.t)
		}
		prev.v, prev.t, prev.points, prev.h = v, t, prev.points+1, fh
		prev.exemplars = append(prev.exemplars, opts.Exemplars...)
		a.samples[k] = prev
		return 1, nil
	}
	a.samples[k] = promSample{name: ls.Get("__name__"), ls: ls.Copy(), v: v, t: t, points: 1, first: v, h: fh,
		exemplars: append([]promexemplar.Exemplar(nil), opts.Exemplars...)}
	return 1, nil
}
func (a *captureAppender) Commit() error   { return nil }
func (a *captureAppender) Rollback() error { return nil }

// promTranslate runs md through Prometheus' own OTLP translation with the settings of its default
// translation strategy (underscore escaping with suffixes), as the metrics store does. The result is keyed by
// the series' label set in Prometheus' text form, e.g. `traces_spanmetrics_calls_total{service="a", ...}`.
func promTranslate(t testing.TB, md pmetric.Metrics, suffixes bool) map[string]promSample {
	t.Helper()
	app := &captureAppender{samples: map[string]promSample{}}
	c := prometheusremotewrite.NewPrometheusConverter(app)
	_, err := c.FromMetrics(context.Background(), md, promSettings(suffixes))
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	return app.samples
}

// promSettings are the OTLP translation settings of Prometheus' defaults (config.DefaultOTLPConfig), which the
// metrics store uses.
func promSettings(suffixes bool) prometheusremotewrite.Settings {
	return prometheusremotewrite.Settings{
		AddMetricSuffixes:                    suffixes,
		LabelNameUnderscoreSanitization:      true,
		LabelNamePreserveMultipleUnderscores: true,
	}
}

func collectOne(t testing.TB, g *Generator, now time.Time, tenant string) map[string]promSample {
	t.Helper()
	for _, tm := range g.Collect(now) {
		if tm.Tenant == tenant {
			return promTranslate(t, tm.Metrics, true)
		}
	}
	return map[string]promSample{}
}

// ser formats a series the way labels.Labels.String does: sorted labels, __name__ in front.
func ser(name string, kv ...string) string {
	ls := labels.FromStrings(append([]string{"__name__", name}, kv...)...)
	return ls.String()
}

func names(samples map[string]promSample) []string {
	var out []string
	for k := range samples {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func exemplarTraceIDs(s promSample) []string {
	var out []string
	for _, e := range s.exemplars {
		out = append(out, e.Labels.Get("trace_id")+"/"+e.Labels.Get("span_id"))
	}
	return out
}

func hexTrace(b byte) string { id := traceID(b); return hex.EncodeToString(id[:]) }
func hexSpan(b byte) string  { id := spanID(b); return hex.EncodeToString(id[:]) }

func metricNamesOf(samples map[string]promSample) map[string]int {
	out := map[string]int{}
	for k := range samples {
		out[samples[k].name]++
	}
	return out
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.WAL.Dir = ""
	return cfg
}

func mustNew(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}
