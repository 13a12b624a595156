package uiext

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/sprout-otel/sprout/components/apiserver"
)

// Type is the extension's name in configuration.
var Type = component.MustNewType("sprout_ui")

// NewFactory returns the factory of the `sprout_ui` extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, create, component.StabilityLevelAlpha)
}

func createDefaultConfig() component.Config {
	return &Config{API: component.NewID(apiserver.Type), Tempo: defaultDataSource(), Prometheus: defaultDataSource(), Loki: defaultDataSource(), Alertmanager: defaultDataSource()}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return &uiExtension{cfg: cfg.(*Config), logger: set.Logger}, nil
}
