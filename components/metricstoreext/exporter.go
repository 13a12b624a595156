package metricstoreext

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/storebridge"
	"github.com/sprout-otel/sprout/internal/metricstore"
)

// metricsExporter writes pipeline metrics into the `sprout_metrics` extension's store, into the tenant named by
// the request's X-Scope-OrgID metadata. A nil return means the batch is in the tenant's WAL.
type metricsExporter struct {
	x   *storebridge.Exporter[*metricstore.Store]
	cfg *ExporterConfig
}

func newMetricsExporter(cfg *ExporterConfig, logger *zap.Logger) *metricsExporter {
	return &metricsExporter{x: storebridge.NewExporter[*metricstore.Store](cfg.ExporterConfig, logger), cfg: cfg}
}

func (e *metricsExporter) write(st *metricstore.Store, ctx context.Context, tenantID string, md pmetric.Metrics) error {
	t, err := st.Tenant(ctx, tenantID)
	if err != nil {
		return err
	}
	// Refused for the ingestion rate, the batch is retried by retry_on_failure first; what reaches the client is
	// RESOURCE_EXHAUSTED with RetryInfo.
	return t.AppendOTLP(ctx, md, e.cfg.ResourceToTelemetryConversion.Enabled)
}
