package distribution

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
)

func TestOTLPReceiverTimeouts(t *testing.T) {
	f := newOTLPReceiverFactory()
	cases := []struct {
		name     string
		conf     map[string]any
		http     bool
		read     time.Duration
		header   time.Duration
		idle     time.Duration
		writeOut time.Duration
	}{
		{"http from a user's config gets the defaults", map[string]any{"protocols": map[string]any{"http": map[string]any{"endpoint": "localhost:0"}}},
			true, otlpReadTimeout, otlpReadHeaderTimeout, otlpIdleTimeout, otlpWriteTimeout},
		{"set values win", map[string]any{"protocols": map[string]any{"http": map[string]any{"read_timeout": "0s", "read_header_timeout": "2s"}}},
			true, 0, 2 * time.Second, otlpIdleTimeout, otlpWriteTimeout},
		{"grpc only has no HTTP server", map[string]any{"protocols": map[string]any{"grpc": map[string]any{}}}, false, 0, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
			if err := confmap.NewFromStringMap(tc.conf).Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			if got := cfg.Protocols.HTTP.HasValue(); got != tc.http {
				t.Fatalf("HTTP enabled = %v, want %v", got, tc.http)
			}
			if !tc.http {
				return
			}
			sc := cfg.Protocols.HTTP.Get().ServerConfig
			if sc.ReadTimeout != tc.read || sc.ReadHeaderTimeout != tc.header || sc.IdleTimeout != tc.idle || sc.WriteTimeout != tc.writeOut {
				t.Fatalf("timeouts read %v header %v idle %v write %v", sc.ReadTimeout, sc.ReadHeaderTimeout, sc.IdleTimeout, sc.WriteTimeout)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if f.Type().String() != "otlp" {
		t.Fatalf("type %s", f.Type())
	}
}
