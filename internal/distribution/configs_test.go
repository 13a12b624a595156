package distribution

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func settings(uris ...string) otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.NewDefaultBuildInfo(),
		Factories: Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              uris,
			ProviderFactories: []confmap.ProviderFactory{envprovider.NewFactory(), fileprovider.NewFactory(), yamlprovider.NewFactory(), NewEmbeddedProviderFactory()},
			DefaultScheme:     "env",
		}},
	}
}

// validate runs what `sprout validate` runs.
func validate(t *testing.T, uris ...string) error {
	t.Helper()
	cmd := otelcol.NewCommand(settings())
	args := []string{"validate"}
	for _, u := range uris {
		args = append(args, "--config", u)
	}
	cmd.SetArgs(args)
	cmd.SetOut(new(strings.Builder))
	cmd.SetErr(new(strings.Builder))
	return cmd.ExecuteContext(context.Background())
}

// TestExampleConfigs validates every shipped config: the embedded ones by name and the seed's file as it is.
func TestExampleConfigs(t *testing.T) {
	names := EmbeddedConfigs()
	if len(names) == 0 {
		t.Fatal("no embedded configs")
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			if err := validate(t, EmbeddedScheme+":"+n); err != nil {
				t.Fatalf("sprout:%s: %v", n, err)
			}
		})
	}
	t.Run("seed", func(t *testing.T) {
		p := filepath.Join("..", "..", "..", "shared", "seed", "configs", "otel-collector.yaml")
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		if err := validate(t, p); err != nil {
			t.Fatalf("seed config: %v", err)
		}
	})
}

func TestEmbeddedUnknown(t *testing.T) {
	err := validate(t, "sprout:nope")
	if err == nil || !strings.Contains(err.Error(), "all-in-one") {
		t.Fatalf("want an error listing the embedded configs, got %v", err)
	}
}

// TestBadConfigs checks that each kind of mistake is refused with a message that names it.
func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"invalid yaml", "receivers: [otlp\n", "yaml"},
		{"unknown component", "receivers:\n  nosuch: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [nosuch]\n      exporters: [debug]\n", "nosuch"},
		{"bad endpoint", "extensions:\n  sprout_api:\n    endpoint: nonsense\nreceivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\nservice:\n  extensions: [sprout_api]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n", "endpoint"},
		{"undefined exporter", "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp/tempo]\n", "otlp/tempo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			err := validate(t, p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
}
