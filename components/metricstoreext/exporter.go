package metricstoreext

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/backpressure"
	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/metricstore"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// metricsExporter writes pipeline metrics into the `sprout_metrics` extension's store, into the tenant named by
// the request's X-Scope-OrgID metadata. A nil return means the batch is in the tenant's WAL.
type metricsExporter struct {
	cfg     *ExporterConfig
	logger  *zap.Logger
	ext     *Extension
	tenants tenant.Policy
	gov     *memguard.Governor
}

func (e *metricsExporter) start(_ context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[e.cfg.MetricsStore]
	if !ok {
		return fmt.Errorf("metrics_store: extension %q is not configured: add it under extensions and service.extensions", e.cfg.MetricsStore)
	}
	se, ok := ext.(*Extension)
	if !ok {
		return fmt.Errorf("metrics_store: extension %q is not a %s extension", e.cfg.MetricsStore, Type)
	}
	e.ext = se
	e.tenants = apiserver.TenantPolicy(host)
	e.gov = apiserver.MemoryGovernor(host)
	return nil
}

func (e *metricsExporter) push(ctx context.Context, md pmetric.Metrics) error {
	store := e.ext.Store()
	if store == nil {
		return errNotStarted
	}
	tid, err := e.tenants.FromPipeline(ctx)
	if err != nil {
		return err // Unauthenticated / PermissionDenied: the OTLP receiver answers 401 / 403
	}
	// The process's memory governor sees the three signals at once: past its ingest limit, the batch is
	// refused as retryable (RESOURCE_EXHAUSTED with RetryInfo; HTTP 429 with Retry-After).
	if err := e.gov.Check(memguard.Ingest); err != nil {
		return backpressure.Error(err)
	}
	t, err := store.Tenant(ctx, tid)
	if err != nil {
		return consumererror.NewPermanent(err)
	}
	if err := t.AppendOTLP(ctx, md, e.cfg.ResourceToTelemetryConversion.Enabled); err != nil {
		if metricstore.IsPermanent(err) {
			return consumererror.NewPermanent(err)
		}
		var le *metricstore.LimitError
		if errors.As(err, &le) && le.Status == http.StatusTooManyRequests {
			// Retried by retry_on_failure first; what reaches the client is RESOURCE_EXHAUSTED with RetryInfo.
			return backpressure.Error(err)
		}
		return err
	}
	return nil
}
