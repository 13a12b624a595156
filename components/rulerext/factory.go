package rulerext

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/ruler"
)

// Type is the extension's name in configuration.
var Type = component.MustNewType("sprout_ruler")

// LogsType is the type of the log store extension LogQL rules are evaluated against.
var LogsType = component.MustNewType("sprout_logs")

// MetricsType is the type of the metrics store extension the ruler evaluates against.
var MetricsType = component.MustNewType("sprout_metrics")

// NewFactory returns the factory of the `sprout_ruler` extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, create, component.StabilityLevelAlpha)
}

func createDefaultConfig() component.Config {
	return &Config{
		API:                   component.NewID(apiserver.Type),
		Metrics:               component.NewID(MetricsType),
		DataDir:               "./data/ruler",
		EvaluationInterval:    time.Minute,
		PollInterval:          time.Minute,
		ResendDelay:           time.Minute,
		ExternalURL:           "http://localhost:3200",
		Storage:               bucket.Config{Backend: bucket.BackendFilesystem},
		LogQL:                 LogQLConfig{Enabled: true, Logs: component.NewID(LogsType)},
		PrometheusPrefixRules: string(ruler.LogQL),
		Alertmanager:          AlertmanagerConfig{Enabled: true, Retention: 120 * time.Hour, ReceiversFirewallBlockPrivateAddresses: true},
	}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newRulerExtension(cfg.(*Config), set), nil
}
