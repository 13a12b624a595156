package distribution

import (
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/httpprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// Settings is how every Sprout entry point builds its Collector: the `sprout` command (where --config replaces
// uris), `sprout demo`, and tests that validate or run a config in-process. One function, so that a config that
// passes a test is read exactly as the binary reads it. With no uris the embedded all-in-one config is used.
func Settings(version string, uris ...string) otelcol.CollectorSettings {
	if len(uris) == 0 {
		uris = []string{DefaultConfigURI}
	}
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "sprout",
			Description: "Sprout: traces, metrics and logs in one binary, built on the OpenTelemetry Collector",
			Version:     version,
		},
		Factories: Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs: uris,
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					httpprovider.NewFactory(),
					yamlprovider.NewFactory(),
					NewEmbeddedProviderFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
}
