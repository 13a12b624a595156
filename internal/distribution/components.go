// Package distribution is the list of Collector components that make up the sprout binary: the upstream
// receivers, processors, exporters and extensions the seed's pipeline needs, and Sprout's own components.
//
// Adding a capability to Sprout means adding its factory here. Nothing else belongs in this package but the
// embedded-config provider that lets `sprout` run with no flags.
package distribution

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/basicauthextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/prometheusreceiver"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/bearertokenauthextension"
	"github.com/sprout-otel/sprout/components/generatorconnector"
	"github.com/sprout-otel/sprout/components/logstoreext"
	"github.com/sprout-otel/sprout/components/metricstoreext"
	"github.com/sprout-otel/sprout/components/pprofextension"
	"github.com/sprout-otel/sprout/components/resourcedetectionprocessor"
	"github.com/sprout-otel/sprout/components/rulerext"
	"github.com/sprout-otel/sprout/components/tracestoreext"
	"github.com/sprout-otel/sprout/components/uiext"
)

// Components returns every factory linked into the binary. Deprecated aliases (`otlp`, `resourcedetection`,
// `prometheusremotewrite`) are registered by otelcol.MakeFactoryMap from the factories themselves, which is
// what lets the seed's collector config run unchanged.
func Components() (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}

	f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		newOTLPReceiverFactory(),
		prometheusreceiver.NewFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		batchprocessor.NewFactory(),
		newMemoryLimiterFactory(),
		resourcedetectionprocessor.NewFactory(),
		resourceprocessor.NewFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		otlpexporter.NewFactory(),
		otlphttpexporter.NewFactory(),
		prometheusremotewriteexporter.NewFactory(),
		debugexporter.NewFactory(),
		tracestoreext.NewExporterFactory(),
		metricstoreext.NewExporterFactory(),
		logstoreext.NewExporterFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](
		healthcheckextension.NewFactory(),
		basicauthextension.NewFactory(),
		bearertokenauthextension.NewFactory(),
		pprofextension.NewFactory(),
		apiserver.NewFactory(),
		tracestoreext.NewFactory(),
		uiext.NewFactory(),
		rulerext.NewFactory(),
		metricstoreext.NewFactory(),
		logstoreext.NewFactory(),
	)
	if err != nil {
		return f, err
	}
	f.Connectors, err = otelcol.MakeFactoryMap[connector.Factory](
		generatorconnector.NewFactory(),
	)
	return f, err
}
