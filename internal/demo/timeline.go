package demo

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A timeline is one simulated request planned on a virtual clock (offsets from its start) before any span
// exists. Planning first lets emit place the whole request so that it ends now: no timestamp lies in the future,
// and the workload never sleeps inside a request.
type timeline struct {
	steps []step
}

// opClass says which metric a finished step feeds.
type opClass int

const (
	opInternal opClass = iota
	opHTTP
	opDB
	opMessaging
)

type step struct {
	svc        *service
	name       string
	kind       trace.SpanKind
	class      opClass
	parent     int // index into steps, -1 for the root
	start, end time.Duration
	attrs      []attribute.KeyValue
	err        error
	logs       []logLine
}

type logLine struct {
	at    time.Duration
	sev   otellog.Severity
	body  string
	attrs []otellog.KeyValue
}

// open adds a span that starts at the given offset; close sets its end.
func (tl *timeline) open(parent int, svc *service, name string, kind trace.SpanKind, class opClass, at time.Duration, attrs ...attribute.KeyValue) int {
	tl.steps = append(tl.steps, step{svc: svc, name: name, kind: kind, class: class, parent: parent, start: at, end: at, attrs: attrs})
	return len(tl.steps) - 1
}

func (tl *timeline) close(i int, at time.Duration, attrs ...attribute.KeyValue) {
	tl.steps[i].end = at
	tl.steps[i].attrs = append(tl.steps[i].attrs, attrs...)
}

func (tl *timeline) fail(i int, err error) { tl.steps[i].err = err }

func (tl *timeline) log(i int, at time.Duration, sev otellog.Severity, body string, attrs ...otellog.KeyValue) {
	tl.steps[i].logs = append(tl.steps[i].logs, logLine{at: at, sev: sev, body: body, attrs: attrs})
}

func (tl *timeline) duration() time.Duration {
	var d time.Duration
	for _, s := range tl.steps {
		d = max(d, s.end)
	}
	return d
}

// propagator carries the trace context from a client or producer span to the server or consumer span of the
// next service, the way HTTP headers and message headers carry it between real processes.
var propagator = propagation.TraceContext{}

// emit creates the spans, log records and measurements of a planned request so that it ends at now. Steps are
// in creation order, so a parent always exists before its children.
func (tl *timeline) emit(now time.Time, rec recorder) {
	base := now.Add(-tl.duration())
	ctxs := make([]context.Context, len(tl.steps))
	spans := make([]trace.Span, len(tl.steps))
	for i := range tl.steps {
		s := &tl.steps[i]
		ctx := context.Background()
		if s.parent >= 0 {
			ctx = ctxs[s.parent]
			if tl.steps[s.parent].svc != s.svc {
				carrier := propagation.MapCarrier{}
				propagator.Inject(ctx, carrier)
				ctx = propagator.Extract(context.Background(), carrier)
			}
		}
		ctxs[i], spans[i] = s.svc.tracer.Start(ctx, s.name,
			trace.WithSpanKind(s.kind), trace.WithTimestamp(base.Add(s.start)), trace.WithAttributes(s.attrs...))
	}
	// End children before parents, as instrumented code does, so batches arrive in a natural order.
	for i := len(tl.steps) - 1; i >= 0; i-- {
		s := &tl.steps[i]
		end := base.Add(s.end)
		for _, l := range s.logs {
			var r otellog.Record
			r.SetTimestamp(base.Add(l.at))
			r.SetObservedTimestamp(now)
			r.SetSeverity(l.sev)
			r.SetSeverityText(l.sev.String())
			r.SetBody(otellog.StringValue(l.body))
			r.AddAttributes(l.attrs...)
			s.svc.logger.Emit(ctxs[i], r)
		}
		if s.err != nil {
			spans[i].RecordError(s.err, trace.WithTimestamp(end))
			spans[i].SetStatus(codes.Error, s.err.Error())
		}
		spans[i].End(trace.WithTimestamp(end))
		rec.record(ctxs[i], s)
	}
}

// recorder turns a finished step into measurements; ctx carries the step's span for exemplars.
type recorder interface {
	record(ctx context.Context, s *step)
}
