// Package uiext is the `sprout_ui` extension: it serves the embedded web UI (package web) on the sprout_api
// port under /ui/, with / leading to it, and tells the page where the Tempo, Prometheus and Loki APIs are
// through /ui/config.json. It owns the UI's HTTP behaviour (content types, caching, SPA fallback, security
// headers) and nothing else: it must not proxy or answer any query API.
package uiext

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/web"
)

type uiExtension struct {
	cfg    *Config
	logger *zap.Logger
}

// Start mounts the UI on the API server.
func (e *uiExtension) Start(_ context.Context, host component.Host) error {
	srv, err := apiserver.FromHost(host, e.cfg.API)
	if err != nil {
		e.logger.Warn("UI not served: no API server", zap.Error(err))
		return nil
	}
	h, err := NewHandler(web.Dist(), e.cfg)
	if err != nil {
		return err
	}
	h.Register(srv.Handle)
	e.logger.Info("Sprout UI mounted", zap.String("path", "/ui/"))
	return nil
}

// Shutdown implements component.Component; the API server owns the listener.
func (e *uiExtension) Shutdown(context.Context) error { return nil }
