package logstoreext

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/storebridge"
	"github.com/sprout-otel/sprout/internal/logstore"
)

// Type is the name of both the extension and the exporter.
var Type = component.MustNewType("sprout_logs")

// NewFactory returns the `sprout_logs` extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, createExtension, component.StabilityLevelAlpha)
}

func createDefaultConfig() component.Config {
	return &Config{Config: logstore.DefaultConfig(), API: component.NewID(apiserver.Type)}
}

func createExtension(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set), nil
}

// NewExporterFactory returns the `sprout_logs` exporter factory.
func NewExporterFactory() exporter.Factory {
	return exporter.NewFactory(Type, func() component.Config { c := storebridge.NewExporterConfig(Type); return &c },
		exporter.WithLogs(createLogsExporter, component.StabilityLevelAlpha))
}

func createLogsExporter(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	x := storebridge.NewExporter[*logstore.Store](*cfg.(*storebridge.ExporterConfig), set.Logger)
	push := storebridge.Consume(x, func(st *logstore.Store, ctx context.Context, tenantID string, ld plog.Logs) error {
		return st.Push(ctx, tenantID, logstore.OTLPToStreams(ld, time.Now()))
	})
	return exporterhelper.NewLogs(ctx, set, cfg, push,
		exporterhelper.WithStart(x.Start),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
	)
}
