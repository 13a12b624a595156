package metricstoreext

import (
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/confmap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/storebridge"
	"github.com/sprout-otel/sprout/internal/metricstore"
)

// Config is the `sprout_metrics` extension's configuration: the metrics store's options and the API server
// its HTTP API is mounted on.
type Config struct {
	metricstore.Config `mapstructure:",squash"`

	// API is the `sprout_api` extension to mount the Prometheus API on.
	API component.ID `mapstructure:"api"`
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.API.Type() != apiserver.Type {
		return fmt.Errorf("api: %q is not a %s extension", c.API, apiserver.Type)
	}
	return nil
}

func createDefaultConfig() component.Config {
	return &Config{Config: metricstore.DefaultConfig(), API: component.NewID(apiserver.Type)}
}

// ExporterConfig is the `sprout_metrics` exporter's configuration.
type ExporterConfig struct {
	// Store (`store`) is the `sprout_metrics` extension to write into; `metrics_store`, its first spelling,
	// still works and is logged as deprecated at start.
	storebridge.ExporterConfig `mapstructure:",squash"`

	// ResourceToTelemetryConversion promotes every resource attribute to a label, as the option of the same
	// name in the Collector's prometheusremotewrite exporter (the seed's setting).
	ResourceToTelemetryConversion ResourceToTelemetryConfig `mapstructure:"resource_to_telemetry_conversion"`

	// BackOffConfig retries writes refused for the ingestion rate; bad data is never retried.
	configretry.BackOffConfig `mapstructure:"retry_on_failure"`
}

// Unmarshal reads the configuration, taking metrics_store as the deprecated spelling of store.
func (c *ExporterConfig) Unmarshal(conf *confmap.Conf) error {
	return c.UnmarshalAlias(conf, "metrics_store", c)
}

// ResourceToTelemetryConfig is the seed's `resource_to_telemetry_conversion` block.
type ResourceToTelemetryConfig struct {
	Enabled bool `mapstructure:"enabled"`
}

func createDefaultExporterConfig() component.Config {
	return &ExporterConfig{
		ExporterConfig: storebridge.NewExporterConfig(Type),
		BackOffConfig:  configretry.NewDefaultBackOffConfig(),
	}
}
