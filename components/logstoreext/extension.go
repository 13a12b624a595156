package logstoreext

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/backpressure"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logstore"
	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// Extension is the running `sprout_logs` extension.
type Extension struct {
	cfg   *Config
	set   extension.Settings
	bkt   bucket.Bucket
	store *logstore.Store
}

func newExtension(cfg *Config, set extension.Settings) *Extension {
	return &Extension{cfg: cfg, set: set}
}

// Start opens the store (index load, WAL replay) and mounts the Loki API on the sprout_api port.
func (e *Extension) Start(ctx context.Context, host component.Host) error {
	srv, err := apiserver.FromHost(host, e.cfg.API)
	if err != nil {
		e.set.Logger.Warn("Log store runs without its HTTP API", zap.Error(err))
		srv = nil
	}
	bkt, err := bucket.New(ctx, e.cfg.bucketConfig(), e.set.Logger)
	if err != nil {
		return fmt.Errorf("sprout_logs: %w", err)
	}
	opts := logstore.Options{Logger: e.set.Logger}
	if srv != nil {
		opts.Registerer = srv.Registerer()
	}
	st, err := logstore.Open(ctx, e.cfg.Config, bkt, opts)
	if err != nil {
		_ = bkt.Close()
		return fmt.Errorf("sprout_logs: %w", err)
	}
	st.SetMaxTenants(apiserver.TenantPolicy(host).MaxTenants)
	st.QueryLimiter().SetGate(apiserver.QueryGate(host))
	e.bkt, e.store = bkt, st
	st.Start()
	if srv != nil {
		api := &logstore.API{Store: st, Tenant: srv.Tenant, OriginAllowed: srv.OriginAllowed, Version: e.set.BuildInfo.Version}
		api.Register(srv)
		srv.AddReadinessCheck("logs", func() error { return nil })
	}
	return nil
}

// Shutdown flushes every head to the bucket and closes the WAL.
func (e *Extension) Shutdown(ctx context.Context) error {
	if e.store == nil {
		return nil
	}
	err := e.store.Close(ctx)
	if e.bkt != nil {
		err = errors.Join(err, e.bkt.Close())
	}
	return err
}

// Store is the log store, for the exporter and other components.
func (e *Extension) Store() *logstore.Store { return e.store }

type logsExporter struct {
	cfg     *ExporterConfig
	logger  *zap.Logger
	ext     *Extension
	tenants tenant.Policy
	gov     *memguard.Governor
}

func (x *logsExporter) start(_ context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[x.cfg.Store]
	if !ok {
		return fmt.Errorf("sprout_logs exporter: extension %q is not configured: add it under extensions and service.extensions", x.cfg.Store)
	}
	e, ok := ext.(*Extension)
	if !ok {
		return fmt.Errorf("sprout_logs exporter: extension %q is not a sprout_logs extension", x.cfg.Store)
	}
	x.ext = e
	x.tenants = apiserver.TenantPolicy(host)
	x.gov = apiserver.MemoryGovernor(host)
	return nil
}

func (x *logsExporter) push(ctx context.Context, ld plog.Logs) error {
	st := x.ext.Store()
	if st == nil {
		return errors.New("sprout_logs store is not started")
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
	err = st.Push(ctx, tid, logstore.OTLPToStreams(ld, time.Now()))
	var pe *logstore.PushError
	if errors.As(err, &pe) {
		if pe.Retryable {
			// Nothing was stored; the rate limit may clear: RESOURCE_EXHAUSTED with RetryInfo (HTTP 429, Retry-After).
			return backpressure.Error(err)
		}
		return consumererror.NewPermanent(err)
	}
	return err
}
