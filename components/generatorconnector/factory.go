// Package generatorconnector is the `sprout_generator` connector: it sits at the end of a traces pipeline and
// at the start of a metrics pipeline, turns every span it is given into Tempo's span metrics and service graph
// metrics (internal/generator), and hands the cumulative metrics to the metrics pipeline every flush_interval,
// one ConsumeMetrics call per tenant with the tenant in the context.
package generatorconnector

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/generator"
)

// Type is the connector's type name in configuration.
var Type = component.MustNewType("sprout_generator")

// NewFactory returns the connector factory.
func NewFactory() connector.Factory {
	return connector.NewFactory(Type, createDefaultConfig,
		connector.WithTracesToMetrics(createTracesToMetrics, component.StabilityLevelAlpha))
}

func createDefaultConfig() component.Config {
	cfg := generator.DefaultConfig()
	cfg.WAL.Dir = "./data/generator"
	return &Config{Config: cfg, API: component.NewID(apiserver.Type)}
}

func createTracesToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Traces, error) {
	return newConnector(set, cfg.(*Config), next), nil
}
