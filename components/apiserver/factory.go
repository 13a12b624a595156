package apiserver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/confignet"
	"go.opentelemetry.io/collector/extension"

	"github.com/sprout-otel/sprout/internal/memguard"
)

// Type is the extension's name in configuration.
var Type = component.MustNewType("sprout_api")

// DefaultPort is the query, push and UI port (Tempo's default HTTP port).
const DefaultPort = 3200

// NewFactory returns the factory of the `sprout_api` extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, create, component.StabilityLevelAlpha)
}

// DefaultMaxTenants is max_tenants' default. A tenant costs memory before it holds any data: about 18 MB in the
// all-in-one config (measured: 130 invented tenants over OTLP, of which 100 admitted, took RSS from 112 MB to
// 1.9 GB; most of it the metrics store's per-tenant exemplar ring and head). 100 is more tenants than any team
// shares one binary between, and bounds what invented X-Scope-OrgID values can take to about 2 GB; lower it on
// small machines, raise it (or 0: no limit) on large ones.
const DefaultMaxTenants = 100

func createDefaultConfig() component.Config {
	sc := confighttp.NewDefaultServerConfig()
	sc.NetAddr = confignet.AddrConfig{Transport: confignet.TransportTypeTCP, Endpoint: "localhost:3200"}
	// Slow clients are cut (issue 17): a request's header must arrive within 10 s, its body within 30 s of
	// its header (Mimir's and Loki's 30 s read timeout; applied per request, see Server.Start), and its
	// response must be written within 5 min of its header, longer than any store's query_timeout. Tail streams
	// are WebSockets, which no longer count against the write timeout once upgraded.
	sc.ReadHeaderTimeout = 10 * time.Second
	sc.ReadTimeout = 30 * time.Second
	sc.WriteTimeout = 5 * time.Minute
	return &Config{ServerConfig: sc, ShutdownTimeout: 10 * time.Second, MaxTenants: DefaultMaxTenants, Memory: memguard.DefaultConfig(),
		StreamOverHTTPEnabled: true, GRPCServerMaxRecvMsgSize: DefaultGRPCMaxMsgSize, GRPCServerMaxSendMsgSize: DefaultGRPCMaxMsgSize,
		GRPCServerMaxConcurrentStreams: DefaultGRPCMaxConcurrentStreams}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newServer(cfg.(*Config), set), nil
}
