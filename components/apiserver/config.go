package apiserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"

	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// Config is the `sprout_api` extension's configuration.
type Config struct {
	// ServerConfig is the Collector's standard HTTP server block: endpoint, TLS, CORS, auth, limits.
	confighttp.ServerConfig `mapstructure:",squash"`

	// MultitenancyEnabled makes every query and write name its tenant in X-Scope-OrgID.
	MultitenancyEnabled bool `mapstructure:"multitenancy_enabled"`

	// TenantAuth ties authenticated users to tenants (needs multitenancy_enabled and auth.authenticator). It is
	// read by every store's HTTP API and by every store exporter, so the OTLP receivers' authenticators are held
	// to it too.
	TenantAuth TenantAuthConfig `mapstructure:"tenant_auth"`

	// MaxTenants bounds the number of tenants each store (traces, metrics, logs, the generator, the ruler's
	// Alertmanagers) holds: a write, query or rule that would create one more is refused (gRPC
	// ResourceExhausted without retry info, HTTP 400) with a message naming this key. Tenants already on disk
	// always open. 0 means no limit. Only multi-tenant mode can have more than one tenant.
	MaxTenants int `mapstructure:"max_tenants"`

	// ShutdownTimeout bounds how long in-flight requests may run once shutdown starts.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`

	// Memory is the process's memory budgets, which every ingest path, store exporter and query consults.
	Memory memguard.Config `mapstructure:"memory"`

	// StreamOverHTTPEnabled serves the stores' gRPC services (Tempo's streaming query API) on this port, over
	// plaintext HTTP/2 next to HTTP/1.1, as Tempo's key of the same name does.
	StreamOverHTTPEnabled bool `mapstructure:"stream_over_http_enabled"`
	// GRPCServerMaxRecvMsgSize and GRPCServerMaxSendMsgSize bound one gRPC message, in bytes (Tempo's keys).
	GRPCServerMaxRecvMsgSize int `mapstructure:"grpc_server_max_recv_msg_size"`
	GRPCServerMaxSendMsgSize int `mapstructure:"grpc_server_max_send_msg_size"`
	// GRPCServerMaxConcurrentStreams bounds the HTTP/2 streams (calls, and HTTP/2 requests) one connection may
	// have open at once.
	GRPCServerMaxConcurrentStreams uint32 `mapstructure:"grpc_server_max_concurrent_streams"`
}

// TenantAuthConfig says which tenants an authenticated user may act as. A request whose X-Scope-OrgID names
// another tenant is refused with 403; with exactly one tenant allowed, the header may be left out.
type TenantAuthConfig struct {
	// UserIsTenant: the authenticated user name is the tenant id (as hosted Mimir, Loki and Tempo gateways do).
	UserIsTenant bool `mapstructure:"user_is_tenant"`
	// Users maps a user name to the tenants it may act as.
	Users map[string][]string `mapstructure:"users"`
	// Admins are the users who see every tenant's series on /metrics; any other user sees only the series of
	// the tenants it may act as (and those labelled by no tenant).
	Admins []string `mapstructure:"admins"`
}

// Policy is the tenant policy this configuration describes.
func (c *Config) Policy() tenant.Policy {
	return tenant.Policy{Multitenancy: c.MultitenancyEnabled, UserIsTenant: c.TenantAuth.UserIsTenant, Users: c.TenantAuth.Users, MaxTenants: c.MaxTenants}
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if c.NetAddr.Endpoint == "" {
		return errors.New("endpoint: must be set, e.g. 0.0.0.0:3200")
	}
	if _, _, err := net.SplitHostPort(c.NetAddr.Endpoint); err != nil {
		return fmt.Errorf("endpoint: %q is not host:port: %w", c.NetAddr.Endpoint, err)
	}
	if c.MaxTenants < 0 {
		return errors.New("max_tenants: must not be negative (0 means no limit)")
	}
	if len(c.TenantAuth.Admins) > 0 && !c.TenantAuth.UserIsTenant && len(c.TenantAuth.Users) == 0 {
		return errors.New("tenant_auth.admins: needs tenant_auth.user_is_tenant or tenant_auth.users (without them every user sees every tenant)")
	}
	for i, a := range c.TenantAuth.Admins {
		if a == "" {
			return fmt.Errorf("tenant_auth.admins[%d]: a user name is empty", i)
		}
	}
	if c.TenantAuth.UserIsTenant || len(c.TenantAuth.Users) > 0 {
		if !c.MultitenancyEnabled {
			return errors.New("tenant_auth: needs multitenancy_enabled: true (with it off every request is the single tenant)")
		}
		if !c.Auth.HasValue() {
			return errors.New("tenant_auth: needs auth.authenticator (e.g. basicauth/server): without credentials there is no user to tie to a tenant")
		}
		for user, tenants := range c.TenantAuth.Users {
			if user == "" {
				return errors.New("tenant_auth.users: a user name is empty")
			}
			if len(tenants) == 0 {
				return fmt.Errorf("tenant_auth.users.%s: lists no tenant", user)
			}
			for _, t := range tenants {
				if err := tenant.Validate(t); err != nil {
					return fmt.Errorf("tenant_auth.users.%s: %w", user, err)
				}
			}
		}
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("shutdown_timeout: must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read_timeout", c.ReadTimeout}, {"read_header_timeout", c.ReadHeaderTimeout}, {"write_timeout", c.WriteTimeout}, {"idle_timeout", c.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s: must not be negative (0 turns it off)", d.name)
		}
	}
	if c.StreamOverHTTPEnabled {
		if c.GRPCServerMaxRecvMsgSize <= 0 {
			return errors.New("grpc_server_max_recv_msg_size: must be positive (bytes)")
		}
		if c.GRPCServerMaxSendMsgSize <= 0 {
			return errors.New("grpc_server_max_send_msg_size: must be positive (bytes)")
		}
		if c.GRPCServerMaxConcurrentStreams == 0 {
			return errors.New("grpc_server_max_concurrent_streams: must be positive")
		}
	}
	return c.Memory.Validate()
}
