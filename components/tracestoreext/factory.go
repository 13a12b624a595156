// Package tracestoreext bridges the trace store to the Collector: the `sprout_traces` extension owns the store
// (WAL, blocks, compaction) and mounts Tempo's HTTP API on the sprout_api server; the `sprout_traces` exporter
// writes a traces pipeline into it. It must hold no storage logic of its own: that is internal/tracestore.
package tracestoreext

import (
	"context"
	"path/filepath"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/extension"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/storebridge"
	"github.com/sprout-otel/sprout/internal/tracestore"
)

// Type is the name of both the extension and the exporter.
var Type = component.MustNewType("sprout_traces")

// NewFactory returns the extension's factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, createExtension, component.StabilityLevelAlpha)
}

// NewExporterFactory returns the exporter's factory.
func NewExporterFactory() exporter.Factory {
	return exporter.NewFactory(Type, func() component.Config { c := storebridge.NewExporterConfig(Type); return &c },
		exporter.WithTraces(createExporter, component.StabilityLevelAlpha))
}

func createDefaultConfig() component.Config {
	cfg := &Config{Config: tracestore.DefaultConfig(), API: component.NewID(apiserver.Type)}
	// Set here, not only derived at open: the Collector validates the nested bucket config as it stands.
	cfg.Storage.Filesystem.Dir = filepath.Join(cfg.DataDir, "blocks")
	return cfg
}

func createExtension(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return &Extension{cfg: cfg.(*Config), set: set}, nil
}

func createExporter(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	x := storebridge.NewExporter[*tracestore.Store](*cfg.(*storebridge.ExporterConfig), set.Logger)
	// No sending queue and no retry here: a batch is acknowledged only once it is in the WAL, and errors go back
	// to the receiver (and its client), which retries.
	return exporterhelper.NewTraces(ctx, set, cfg, storebridge.Consume(x, (*tracestore.Store).Push),
		exporterhelper.WithStart(x.Start),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}))
}
