package apiserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
)

// Config is the `sprout_api` extension's configuration.
type Config struct {
	// ServerConfig is the Collector's standard HTTP server block: endpoint, TLS, CORS, auth, limits.
	confighttp.ServerConfig `mapstructure:",squash"`

	// MultitenancyEnabled makes every query and write name its tenant in X-Scope-OrgID.
	MultitenancyEnabled bool `mapstructure:"multitenancy_enabled"`

	// ShutdownTimeout bounds how long in-flight requests may run once shutdown starts.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if c.NetAddr.Endpoint == "" {
		return errors.New("endpoint: must be set, e.g. 0.0.0.0:3200")
	}
	if _, _, err := net.SplitHostPort(c.NetAddr.Endpoint); err != nil {
		return fmt.Errorf("endpoint: %q is not host:port: %w", c.NetAddr.Endpoint, err)
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("shutdown_timeout: must not be negative")
	}
	return nil
}
