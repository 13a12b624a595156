// Package metricstoreext bridges Sprout's metrics store (internal/metricstore) to the Collector: the
// `sprout_metrics` extension owns the store and mounts its Prometheus-compatible API on `sprout_api`, and the
// `sprout_metrics` exporter writes pipeline metrics into it, translated as Prometheus' OTLP receiver does.
package metricstoreext

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/extension"

	"github.com/sprout-otel/sprout/components/storebridge"
)

// Type is the name of both the extension and the exporter in configuration.
var Type = component.MustNewType("sprout_metrics")

// NewFactory returns the factory of the `sprout_metrics` extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, createExtension, component.StabilityLevelAlpha)
}

// NewExporterFactory returns the factory of the `sprout_metrics` exporter.
func NewExporterFactory() exporter.Factory {
	return exporter.NewFactory(Type, createDefaultExporterConfig,
		exporter.WithMetrics(createMetricsExporter, component.StabilityLevelAlpha))
}

func createExtension(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set), nil
}

func createMetricsExporter(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*ExporterConfig)
	e := newMetricsExporter(c, set.Logger)
	return exporterhelper.NewMetrics(ctx, set, cfg, storebridge.Consume(e.x, e.write),
		exporterhelper.WithStart(e.x.Start),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithRetry(c.BackOffConfig),
	)
}
