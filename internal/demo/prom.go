package demo

import (
	"context"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

// promMetrics is the demo's Prometheus client library side: what the seed's app exposes on :8080/metrics for
// the Collector's prometheus receiver. It has its own registry so that tests and an in-process Sprout do not share
// the global one.
type promMetrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	queueWait prometheus.Histogram
}

func newPromMetrics() *promMetrics {
	m := &promMetrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "demo_http_requests_total",
			Help: "HTTP requests served by the demo services.",
		}, []string{"service", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "demo_http_request_duration_seconds",
			Help:    "HTTP request latency of the demo services.",
			Buckets: durationBuckets,
		}, []string{"service", "route"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "demo_queue_wait_seconds",
			Help:    "Time orders wait in the queue before fulfillment consumes them.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.queueWait,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe counts a served request; the latency carries the span's trace id as an exemplar (OpenMetrics format).
func (m *promMetrics) observe(ctx context.Context, svc, route string, code int64, sec float64) {
	m.requests.WithLabelValues(svc, route, strconv.FormatInt(code, 10)).Inc()
	h := m.duration.WithLabelValues(svc, route)
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		h.(prometheus.ExemplarObserver).ObserveWithExemplar(sec, prometheus.Labels{"trace_id": sc.TraceID().String()})
		return
	}
	h.Observe(sec)
}

func (m *promMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}
