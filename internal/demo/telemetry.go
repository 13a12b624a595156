package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

const instrumentationScope = "github.com/sprout-otel/sprout/internal/demo"

// exportTimeout bounds one export attempt, so that shutdown against an unreachable endpoint ends in time.
const exportTimeout = 5 * time.Second // also capped by the shutdown deadline's context

// service is one instrumented demo service: its own providers, resource, and instruments, exactly as a separate
// process instrumented with the SDK would have.
type service struct {
	name string

	tp *sdktrace.TracerProvider
	mp *sdkmetric.MeterProvider
	lp *sdklog.LoggerProvider

	tracer trace.Tracer
	logger otellog.Logger

	serverDuration metric.Float64Histogram // http.server.request.duration
	clientDuration metric.Float64Histogram // http.client.request.duration
	dbDuration     metric.Float64Histogram // db.client.operation.duration
	orders         metric.Int64Counter     // demo.orders
	messages       metric.Int64Counter     // messaging.client.consumed.messages / sent.messages
}

// durationBuckets are the semantic conventions' advisory buckets for HTTP durations, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

func newService(ctx context.Context, name string, extra []attribute.KeyValue, conn *grpc.ClientConn, cfg Config) (*service, error) {
	attrs := []attribute.KeyValue{
		attribute.String("service.name", name),
		attribute.String("service.namespace", "sprout-demo"),
		attribute.String("service.version", "1.0.0"),
		attribute.String("deployment.environment.name", "demo"),
	}
	for _, kv := range extra {
		if kv.Key != "service.name" {
			attrs = append(attrs, kv)
		}
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("resource for %s: %w", name, err)
	}

	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(conn), otlptracegrpc.WithTimeout(exportTimeout))
	if err != nil {
		return nil, fmt.Errorf("trace exporter for %s: %w", name, err)
	}
	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithGRPCConn(conn), otlpmetricgrpc.WithTimeout(exportTimeout))
	if err != nil {
		return nil, fmt.Errorf("metric exporter for %s: %w", name, err)
	}
	lexp, err := otlploggrpc.New(ctx, otlploggrpc.WithGRPCConn(conn), otlploggrpc.WithTimeout(exportTimeout))
	if err != nil {
		return nil, fmt.Errorf("log exporter for %s: %w", name, err)
	}

	s := &service{name: name}
	s.tp = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(texp, sdktrace.WithBatchTimeout(cfg.BatchTimeout)),
	)
	s.mp = sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(cfg.MetricInterval))),
	)
	s.lp = sdklog.NewLoggerProvider(
		sdklog.WithResource(res),
		sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp, sdklog.WithExportInterval(cfg.BatchTimeout))),
	)
	s.tracer = s.tp.Tracer(instrumentationScope)
	s.logger = s.lp.Logger(instrumentationScope)

	meter := s.mp.Meter(instrumentationScope)
	var errs []error
	var e error
	s.serverDuration, e = meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	errs = append(errs, e)
	s.clientDuration, e = meter.Float64Histogram("http.client.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP client requests."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	errs = append(errs, e)
	s.dbDuration, e = meter.Float64Histogram("db.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of database client operations."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	errs = append(errs, e)
	s.orders, e = meter.Int64Counter("demo.orders", metric.WithUnit("{order}"), metric.WithDescription("Orders placed, by outcome."))
	errs = append(errs, e)
	s.messages, e = meter.Int64Counter("messaging.client.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages sent or consumed, by operation."))
	errs = append(errs, e)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("instruments for %s: %w", name, err)
	}
	return s, nil
}

// shutdown flushes and stops all three providers; each gets the same deadline.
func (s *service) shutdown(ctx context.Context) error {
	return errors.Join(s.tp.Shutdown(ctx), s.mp.Shutdown(ctx), s.lp.Shutdown(ctx))
}
