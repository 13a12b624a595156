package logstoreext

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/storebridge"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logstore"
)

// Extension is the running `sprout_logs` extension.
type Extension struct {
	cfg   *Config
	set   extension.Settings
	store storebridge.Holder[*logstore.Store]
	bkt   bucket.Bucket // set by Start, closed by Shutdown after the store
}

func newExtension(cfg *Config, set extension.Settings) *Extension {
	return &Extension{cfg: cfg, set: set}
}

// Holder is the extension's store, for the sprout_logs exporter.
func (e *Extension) Holder() *storebridge.Holder[*logstore.Store] { return &e.store }

// Store is the log store, or nil before Start and after Shutdown.
func (e *Extension) Store() *logstore.Store { return e.store.Get() }

// Start opens the store (index load, WAL replay) and mounts the Loki API on the sprout_api port.
func (e *Extension) Start(ctx context.Context, host component.Host) error {
	st, srv, err := e.store.Start(host, e.cfg.API, e.set.Logger, "logs", func(srv *apiserver.Server) (*logstore.Store, error) {
		bkt, err := bucket.New(ctx, e.cfg.BucketConfig(), e.set.Logger)
		if err != nil {
			return nil, err
		}
		opts := logstore.Options{Logger: e.set.Logger}
		if srv != nil {
			opts.Registerer = srv.Registerer()
		}
		st, err := logstore.Open(ctx, e.cfg.Config, bkt, opts)
		if err != nil {
			return nil, errors.Join(err, bkt.Close())
		}
		e.bkt = bkt
		return st, nil
	})
	if err != nil {
		return fmt.Errorf("sprout_logs: %w", err)
	}
	if srv != nil {
		api := &logstore.API{Store: st, Tenant: srv.Tenant, OriginAllowed: srv.OriginAllowed, Version: e.set.BuildInfo.Version}
		api.Register(srv)
	}
	return nil
}

// Shutdown flushes every head to the bucket, closes the WAL, then the bucket.
func (e *Extension) Shutdown(ctx context.Context) error {
	return e.store.Shutdown(func(st *logstore.Store) error {
		return errors.Join(st.Close(ctx), e.bkt.Close())
	})
}
