// Package demo is Sprout's built-in demo workload: a small shop of four services (frontend → checkout →
// payment, with a database and an order queue consumed by fulfillment) instrumented with the OpenTelemetry Go
// SDK the way the seed's app is. Every service has its own TracerProvider, MeterProvider and LoggerProvider and
// its own resource (service.name=...), and exports traces, metrics and logs over OTLP gRPC; a Prometheus
// client_golang registry serves /metrics for the Collector's prometheus receiver to scrape, as the seed's app does.
//
// The workload simulates requests rather than serving them: each request's timeline (latencies drawn from
// lognormal distributions, ~3 % errors, an occasional slow path) is planned first and then emitted with explicit
// timestamps that end at the moment of emission, so no span lies in the future and nothing sleeps.
//
// The package knows nothing of the Collector or of Sprout's stores; it only speaks OTLP and Prometheus text, so
// it can point at any OTLP endpoint.
package demo

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// Config is what the demo workload needs. The zero value plus Defaults() runs against localhost:4317.
type Config struct {
	// Endpoint is the OTLP gRPC endpoint, host:port or http://host:port (the OTEL_EXPORTER_OTLP_ENDPOINT form).
	Endpoint string
	// MetricsAddr is where the Prometheus /metrics endpoint listens (the seed's app uses port 8080).
	// Empty disables it.
	MetricsAddr string
	// Rate is the mean number of frontend requests per second (Poisson arrivals).
	Rate float64
	// ResourceAttributes are extra resource attributes for every service, in OTEL_RESOURCE_ATTRIBUTES form
	// (k=v,k2=v2, values percent-encoded). A service.name here is ignored: each service names itself.
	ResourceAttributes string
	// MetricInterval is the OTLP metric export interval.
	MetricInterval time.Duration
	// BatchTimeout is how long spans and log records wait in the batch processors before export.
	BatchTimeout time.Duration
	// Seed makes the random choices reproducible; 0 picks a time-based seed.
	Seed int64
	// ShutdownTimeout bounds the final flush when Run ends.
	ShutdownTimeout time.Duration
}

// Defaults fills the zero fields with the values `sprout demo` uses.
func (c *Config) Defaults() {
	if c.Endpoint == "" {
		c.Endpoint = "localhost:4317"
	}
	if c.Rate == 0 {
		c.Rate = 5
	}
	if c.MetricInterval == 0 {
		c.MetricInterval = 10 * time.Second
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if _, err := grpcTarget(c.Endpoint); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("metrics address: %q is not host:port: %w", c.MetricsAddr, err)
		}
	}
	if c.Rate <= 0 || c.Rate > 10000 {
		return fmt.Errorf("rate: %v requests/s is outside (0, 10000]", c.Rate)
	}
	if c.MetricInterval <= 0 {
		return errors.New("metric interval: must be positive")
	}
	if c.BatchTimeout <= 0 {
		return errors.New("batch timeout: must be positive")
	}
	if _, err := ParseResourceAttributes(c.ResourceAttributes); err != nil {
		return fmt.Errorf("resource attributes: %w", err)
	}
	return nil
}

// grpcTarget turns an OTEL_EXPORTER_OTLP_ENDPOINT-style value into the host:port a gRPC client dials.
func grpcTarget(endpoint string) (string, error) {
	if endpoint == "" {
		return "", errors.New("must be set, e.g. localhost:4317")
	}
	hostport := endpoint
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return "", fmt.Errorf("%q is not a URL: %w", endpoint, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", fmt.Errorf("%q: scheme must be http or https", endpoint)
		}
		hostport = u.Host
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", endpoint, err)
	}
	return hostport, nil
}

// ParseResourceAttributes parses the OTEL_RESOURCE_ATTRIBUTES format: comma-separated key=value pairs whose
// values may be percent-encoded. Empty input gives no attributes.
func ParseResourceAttributes(s string) ([]attribute.KeyValue, error) {
	var kvs []attribute.KeyValue
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", pair)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", k, err)
		}
		kvs = append(kvs, attribute.String(k, dv))
	}
	return kvs, nil
}
