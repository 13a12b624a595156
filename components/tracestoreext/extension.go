package tracestoreext

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/backpressure"
	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/tracestore"
	"github.com/sprout-otel/sprout/internal/tracestore/tempopb"
)

var consumerCapabilities = consumer.Capabilities{MutatesData: false}

// Extension is the running `sprout_traces` extension.
type Extension struct {
	cfg *Config
	set extension.Settings

	mu    sync.RWMutex
	store *tracestore.Store
}

// Store returns the open store, or nil before Start.
func (e *Extension) Store() *tracestore.Store {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.store
}

// Start opens the store (replaying the WAL) and mounts the API.
func (e *Extension) Start(ctx context.Context, host component.Host) error {
	st, err := tracestore.Open(ctx, e.cfg.Config, e.set.Logger)
	if err != nil {
		return fmt.Errorf("sprout_traces: %w", err)
	}
	st.SetMaxTenants(apiserver.TenantPolicy(host).MaxTenants)
	st.QueryLimiter().SetGate(apiserver.QueryGate(host))
	st.Start()
	e.mu.Lock()
	e.store = st
	e.mu.Unlock()
	srv, err := apiserver.FromHost(host, e.cfg.API)
	if err != nil {
		e.set.Logger.Warn("No API server: the trace query API is not served", zap.Error(err))
		return nil
	}
	for _, c := range st.Collectors() {
		if err := srv.Registerer().Register(c); err != nil {
			e.set.Logger.Warn("Registering a trace store metric failed", zap.Error(err))
		}
	}
	srv.AddReadinessCheck("traces", func() error {
		if e.Store() == nil {
			return errors.New("trace store is not open")
		}
		return nil
	})
	api := &tracestore.API{Store: st, Tenant: srv.Tenant, Version: srv.BuildInfo().Version}
	api.Register(srv)
	srv.RegisterService(&tempopb.ServiceDesc, &tracestore.GRPCAPI{Store: st, Tenant: srv.TenantFromContext})
	return nil
}

// Shutdown flushes (flush_all_on_shutdown) and closes the store.
func (e *Extension) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	st := e.store
	e.store = nil
	e.mu.Unlock()
	if st == nil {
		return nil
	}
	return st.Shutdown(ctx)
}

type traceExporter struct {
	cfg     *ExporterConfig
	logger  *zap.Logger
	ext     *Extension
	tenants tenant.Policy
	gov     *memguard.Governor
}

func (x *traceExporter) start(_ context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[x.cfg.Store]
	if !ok {
		return fmt.Errorf("sprout_traces exporter: extension %q is not configured: add it under extensions and service.extensions", x.cfg.Store)
	}
	e, ok := ext.(*Extension)
	if !ok {
		return fmt.Errorf("sprout_traces exporter: extension %q is not a sprout_traces extension", x.cfg.Store)
	}
	x.ext = e
	x.tenants = apiserver.TenantPolicy(host)
	x.gov = apiserver.MemoryGovernor(host)
	return nil
}

func (x *traceExporter) push(ctx context.Context, td ptrace.Traces) error {
	st := x.ext.Store()
	if st == nil {
		return errors.New("sprout_traces: the trace store is not running")
	}
	tid, err := x.tenants.FromPipeline(ctx)
	if err != nil {
		return err // Unauthenticated / PermissionDenied: the OTLP receiver answers 401 / 403
	}
	// The process's memory governor sees the three signals at once: past its ingest limit, the batch is
	// refused as retryable (RESOURCE_EXHAUSTED with RetryInfo; HTTP 429 with Retry-After).
	if err := x.gov.Check(memguard.Ingest); err != nil {
		return backpressure.Error(err)
	}
	err = st.Push(ctx, tid, td)
	if err != nil && errors.Is(err, tracestore.ErrBadData) {
		return consumererror.NewPermanent(err)
	}
	var busy *tracestore.BusyError
	if errors.As(err, &busy) {
		// Retryable: the OTLP receiver answers gRPC RESOURCE_EXHAUSTED / HTTP 429 and the client backs off.
		// The RetryInfo detail becomes Retry-After on OTLP HTTP.
		return backpressure.Error(err)
	}
	return err
}
