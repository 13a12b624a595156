package tracestoreext

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/storebridge"
	"github.com/sprout-otel/sprout/internal/tracestore"
	"github.com/sprout-otel/sprout/internal/tracestore/tempopb"
)

// Extension is the running `sprout_traces` extension.
type Extension struct {
	cfg   *Config
	set   extension.Settings
	store storebridge.Holder[*tracestore.Store]
}

// Holder is the extension's store, for the sprout_traces exporter.
func (e *Extension) Holder() *storebridge.Holder[*tracestore.Store] { return &e.store }

// Store returns the open store, or nil before Start and after Shutdown.
func (e *Extension) Store() *tracestore.Store { return e.store.Get() }

// Start opens the store (replaying the WAL) and mounts Tempo's HTTP and gRPC APIs.
func (e *Extension) Start(ctx context.Context, host component.Host) error {
	st, srv, err := e.store.Start(host, e.cfg.API, e.set.Logger, "traces", func(*apiserver.Server) (*tracestore.Store, error) {
		return tracestore.Open(ctx, e.cfg.Config, tracestore.Options{Logger: e.set.Logger})
	})
	if err != nil {
		return fmt.Errorf("sprout_traces: %w", err)
	}
	if srv == nil {
		return nil
	}
	for _, c := range st.Collectors() {
		if err := srv.Registerer().Register(c); err != nil {
			e.set.Logger.Warn("Registering a trace store metric failed", zap.Error(err))
		}
	}
	api := &tracestore.API{Store: st, Tenant: srv.Tenant, Version: srv.BuildInfo().Version}
	api.Register(srv)
	srv.RegisterService(&tempopb.ServiceDesc, &tracestore.GRPCAPI{Store: st, Tenant: srv.TenantFromContext})
	return nil
}

// Shutdown flushes (flush_all_on_shutdown) and closes the store.
func (e *Extension) Shutdown(ctx context.Context) error {
	return e.store.Shutdown(func(st *tracestore.Store) error { return st.Close(ctx) })
}
