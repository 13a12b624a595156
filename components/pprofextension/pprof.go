// Package pprofextension is the `pprof` extension: Go's net/http/pprof on its own port.
//
// The Collector contrib module of the same name is not available at the version line Sprout is pinned to, so
// Sprout ships this one with the same configuration keys (endpoint, block_profile_fraction,
// mutex_profile_fraction, save_to_file), and a config written for the contrib extension works unchanged as long
// as it listens on loopback. Profiles show memory contents (heap, goroutine stacks with arguments, the command
// line), so an endpoint other hosts can reach needs `auth` (any server authenticator: basicauth,
// bearertokenauth); the extension refuses to start without it.
package pprofextension

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.uber.org/zap"
)

// Type is the extension's name in configuration.
var Type = component.MustNewType("pprof")

// Config mirrors the contrib pprof extension.
type Config struct {
	Endpoint             string `mapstructure:"endpoint"`
	BlockProfileFraction int    `mapstructure:"block_profile_fraction"`
	MutexProfileFraction int    `mapstructure:"mutex_profile_fraction"`
	// SaveToFile writes a CPU profile of the whole run to this file, stopped at shutdown.
	SaveToFile string `mapstructure:"save_to_file"`
	// Auth names a server authenticator extension that every request must pass (401 otherwise). Required when
	// the endpoint is not a loopback address.
	Auth *configauth.Config `mapstructure:"auth"`
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Endpoint)
	if err != nil {
		return fmt.Errorf("endpoint: %q is not host:port: %w", c.Endpoint, err)
	}
	if c.Auth == nil && !isLoopback(host) {
		return fmt.Errorf("endpoint: %q can be reached from other hosts and profiles expose the process's memory: set auth.authenticator (e.g. basicauth/server or bearertokenauth/server) or listen on localhost", c.Endpoint)
	}
	if c.Auth != nil && c.Auth.AuthenticatorID.String() == "" {
		return errors.New("auth.authenticator: must name a server authenticator extension")
	}
	if c.BlockProfileFraction < 0 || c.MutexProfileFraction < 0 {
		return errors.New("block_profile_fraction and mutex_profile_fraction: must not be negative")
	}
	return nil
}

// NewFactory returns the `pprof` extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, func() component.Config { return &Config{Endpoint: "localhost:1777"} },
		func(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			return &pprofExt{cfg: cfg.(*Config), logger: set.Logger}, nil
		}, component.StabilityLevelBeta)
}

type pprofExt struct {
	cfg    *Config
	logger *zap.Logger
	srv    *http.Server
	file   *os.File
}

// isLoopback reports whether host only accepts connections from this machine: localhost or a loopback IP.
// An empty host, 0.0.0.0 and [::] listen on every interface.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// requireAuth answers 401 to a request the authenticator refuses.
func requireAuth(h http.Handler, auth extensionauth.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := auth.Authenticate(r.Context(), r.Header)
		if err != nil {
			http.Error(w, "pprof: "+err.Error(), http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (p *pprofExt) Start(ctx context.Context, host component.Host) error {
	var auth extensionauth.Server
	if p.cfg.Auth != nil {
		a, err := p.cfg.Auth.GetServerAuthenticator(ctx, host.GetExtensions())
		if err != nil {
			return fmt.Errorf("pprof: auth: %w", err)
		}
		auth = a
	}
	ln, err := net.Listen("tcp", p.cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("pprof: listen on %s: %w", p.cfg.Endpoint, err)
	}
	runtime.SetBlockProfileRate(p.cfg.BlockProfileFraction)
	runtime.SetMutexProfileFraction(p.cfg.MutexProfileFraction)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	var h http.Handler = mux
	if auth != nil {
		h = requireAuth(mux, auth)
	}
	p.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.logger.Error("pprof server stopped", zap.Error(err))
		}
	}()
	if p.cfg.SaveToFile != "" {
		f, err := os.Create(p.cfg.SaveToFile)
		if err != nil {
			return fmt.Errorf("pprof: save_to_file: %w", err)
		}
		p.file = f
		if err := rpprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("pprof: start CPU profile: %w", err)
		}
	}
	return nil
}

func (p *pprofExt) Shutdown(ctx context.Context) error {
	if p.file != nil {
		rpprof.StopCPUProfile()
		_ = p.file.Close()
	}
	if p.srv == nil {
		return nil
	}
	return p.srv.Shutdown(ctx)
}
