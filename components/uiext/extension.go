// Package uiext is the `sprout_ui` extension: it serves the embedded web UI (package web) on the sprout_api
// port under /ui/, with / leading to it, and tells the page where the Tempo, Prometheus and Loki APIs are
// through /ui/config.json. It owns the UI's HTTP behaviour (content types, caching, SPA fallback, security
// headers) and the same-origin proxy to remote Tempo, Prometheus/Mimir and Loki clusters (/ui/proxy/<name>/),
// which passes on only the read APIs the page uses. It must not answer any query API itself.
package uiext

import (
	"context"
	"net"

	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/web"
)

type uiExtension struct {
	cfg    *Config
	logger *zap.Logger
	srv    *apiserver.Server // nil when there is no API server to mount on
}

// Start mounts the UI on the API server.
func (e *uiExtension) Start(ctx context.Context, host component.Host) error {
	srv, err := apiserver.FromHost(host, e.cfg.API)
	if err != nil {
		e.logger.Warn("UI not served: no API server", zap.Error(err))
		return nil
	}
	h, err := NewHandler(web.Dist(), e.cfg)
	if err != nil {
		return err
	}
	proxies, err := newProxies(ctx, e.cfg, apiserver.QueryGate(host))
	if err != nil {
		return err
	}
	h.Register(srv)
	registerProxies(srv, proxies)
	for _, p := range proxies {
		e.logger.Info("UI data source proxied", zap.String("data_source", p.name), zap.String("url", p.base.String()),
			zap.String("path", p.prefix()+"/"))
	}
	e.srv = srv
	e.logger.Info("Sprout UI mounted", zap.String("path", "/ui/"))
	return nil
}

// Ready implements extensioncapabilities.PipelineWatcher. The API server may start listening after this
// extension has started (extensions start in dependency order), so the address is known only once everything
// runs: it is logged and announced here.
func (e *uiExtension) Ready() error {
	if e.srv == nil {
		return nil
	}
	url := uiURL(e.srv.Addr())
	if url == "" {
		return nil
	}
	e.logger.Info("Sprout UI is at "+url, zap.String("url", url))
	if Announce != nil {
		Announce(url)
	}
	return nil
}

// NotReady implements extensioncapabilities.PipelineWatcher.
func (e *uiExtension) NotReady() error { return nil }

// Announce, when set, is called with the UI's address once it is served: cmd/sprout sets it to print the
// address for the person who started the binary (the JSON logs are for machines).
var Announce func(url string)

// uiURL is the address a browser on this machine opens for a listener address: loopback and unspecified
// hosts read as "localhost". Empty when the server is not listening.
func uiURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/ui/"
}

// Shutdown implements component.Component; the API server owns the listener.
func (e *uiExtension) Shutdown(context.Context) error { return nil }
