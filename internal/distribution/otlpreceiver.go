package distribution

import (
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
)

// OTLP HTTP timeouts Sprout's `otlp` receiver has when a config does not set them. Upstream's receiver has
// none at all: a header or a body sent one byte every few seconds holds its connection and goroutine for as
// long as the client likes. Mimir's and Loki's HTTP servers default to a 30 s read timeout; an OTLP export is
// one small request, and the SDKs' own export timeout is 10 s.
const (
	otlpReadHeaderTimeout = 10 * time.Second
	otlpReadTimeout       = 30 * time.Second
	otlpWriteTimeout      = 30 * time.Second
	otlpIdleTimeout       = time.Minute
	// gRPC has no read timeout for a message: a client that trickles one holds its stream for as long as the
	// connection lives. Connections are therefore aged out (GOAWAY, then closed after the grace), which SDK
	// exporters handle by reconnecting; an RPC still being received after the grace ends with the connection.
	otlpGRPCMaxConnectionAge      = 5 * time.Minute
	otlpGRPCMaxConnectionAgeGrace = 30 * time.Second
)

// otlpReceiverFactory is the Collector's OTLP receiver with slow-client timeouts in its default config.
// Defaults are what a user's config is unmarshalled over, so every config gets them unless it sets its own
// (`read_timeout: 0` turns one off again), including configs written for the upstream Collector.
type otlpReceiverFactory struct{ receiver.Factory }

func newOTLPReceiverFactory() receiver.Factory { return otlpReceiverFactory{otlpreceiver.NewFactory()} }

func (f otlpReceiverFactory) CreateDefaultConfig() component.Config {
	cfg := f.Factory.CreateDefaultConfig().(*otlpreceiver.Config)
	// GetOrInsertDefault turns the default into a value; Default wraps it again, so that an `otlp` receiver
	// without `http:` still has no HTTP server.
	http := *cfg.Protocols.HTTP.GetOrInsertDefault()
	http.ServerConfig.ReadHeaderTimeout = otlpReadHeaderTimeout
	http.ServerConfig.ReadTimeout = otlpReadTimeout
	http.ServerConfig.WriteTimeout = otlpWriteTimeout
	http.ServerConfig.IdleTimeout = otlpIdleTimeout
	cfg.Protocols.HTTP = configoptional.Default(http)
	grpc := *cfg.Protocols.GRPC.GetOrInsertDefault()
	ka := grpc.Keepalive.GetOrInsertDefault()
	sp := ka.ServerParameters.GetOrInsertDefault()
	sp.MaxConnectionAge = otlpGRPCMaxConnectionAge
	sp.MaxConnectionAgeGrace = otlpGRPCMaxConnectionAgeGrace
	cfg.Protocols.GRPC = configoptional.Default(grpc)
	return cfg
}
