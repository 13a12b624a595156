package distribution

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/sprout-otel/sprout/examples/configs"
)

// fuzzProvider serves the fuzzer's bytes as the config at `fuzz:config`.
type fuzzProvider struct{ data []byte }

func (p fuzzProvider) Retrieve(context.Context, string, confmap.WatcherFunc) (*confmap.Retrieved, error) {
	return confmap.NewRetrievedFromYAML(p.data)
}
func (fuzzProvider) Scheme() string                 { return "fuzz" }
func (fuzzProvider) Shutdown(context.Context) error { return nil }

// checkConfig reads data as `sprout validate` does (confmap resolution with env, yaml and the embedded configs,
// unmarshal of every component, validation of every component and of the pipelines), and then unmarshals and
// validates each Sprout component's section on its own, so that Sprout's configs are exercised even when the
// file as a whole fails earlier. It must never panic; errors are the expected outcome for most inputs.
func checkConfig(t *testing.T, factories otelcol.Factories, data []byte) (wholeErr error) {
	t.Helper()
	ctx := context.Background()
	provider, err := otelcol.NewConfigProvider(otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
		URIs: []string{"fuzz:config"},
		ProviderFactories: []confmap.ProviderFactory{
			confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider { return fuzzProvider{data} }),
			envprovider.NewFactory(), yamlprovider.NewFactory(), NewEmbeddedProviderFactory(),
		},
		DefaultScheme: "env",
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := provider.Get(ctx, factories)
	if err == nil {
		err = confmap.Validate(cfg)
	}
	wholeErr = err

	// Each Sprout component alone.
	ret, err := confmap.NewRetrievedFromYAML(data)
	if err != nil {
		return wholeErr
	}
	raw, err := ret.AsRaw()
	if err != nil {
		return wholeErr
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return wholeErr
	}
	kinds := map[string]func(component.Type) (component.Factory, bool){
		"extensions": func(t component.Type) (component.Factory, bool) { f, ok := factories.Extensions[t]; return f, ok },
		"exporters":  func(t component.Type) (component.Factory, bool) { f, ok := factories.Exporters[t]; return f, ok },
		"connectors": func(t component.Type) (component.Factory, bool) { f, ok := factories.Connectors[t]; return f, ok },
		"receivers":  func(t component.Type) (component.Factory, bool) { f, ok := factories.Receivers[t]; return f, ok },
		"processors": func(t component.Type) (component.Factory, bool) { f, ok := factories.Processors[t]; return f, ok },
	}
	for kind, lookup := range kinds {
		section, ok := top[kind].(map[string]any)
		if !ok {
			continue
		}
		for key, body := range section {
			var id component.ID
			if id.UnmarshalText([]byte(key)) != nil || !strings.HasPrefix(id.Type().String(), "sprout_") {
				continue
			}
			f, ok := lookup(id.Type())
			if !ok {
				continue
			}
			ccfg := f.CreateDefaultConfig()
			m, _ := body.(map[string]any)
			if err := confmap.NewFromStringMap(m).Unmarshal(ccfg); err != nil {
				continue
			}
			_ = confmap.Validate(ccfg)
		}
	}
	return wholeErr
}

// FuzzConfig feeds YAML through the distribution's config resolution and every Sprout component's Unmarshal and
// Validate. The corpus in testdata/fuzz/FuzzConfig holds the embedded example configs and the seed's configs
// (the seed's Collector config and, as hostile YAML, its Tempo, Mimir and Prometheus configs).
func FuzzConfig(f *testing.F) {
	for _, n := range EmbeddedConfigs() {
		b, err := configs.FS.ReadFile(n + ".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("extensions:\n  sprout_api:\n    endpoint: nonsense\n"))
	f.Add([]byte("extensions:\n  sprout_traces:\n    data_dir: ''\n    max_live_bytes: -1\n"))
	factories, err := Components()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkConfig(t, factories, data)
	})
}

// TestConfigErrorsAreClear checks what FuzzConfig cannot: that a broken config is refused with an error naming
// the component and the field.
func TestConfigErrorsAreClear(t *testing.T) {
	factories, err := Components()
	if err != nil {
		t.Fatal(err)
	}
	base := "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"not a map", "- a\n- b\n", "cannot be used as a Conf"},
		{"api endpoint", base + "extensions:\n  sprout_api:\n    endpoint: nonsense\n", "sprout_api"},
		{"tenant_auth without multitenancy", base + "extensions:\n  sprout_api:\n    tenant_auth:\n      user_is_tenant: true\n", "multitenancy_enabled"},
		{"unknown field", base + "extensions:\n  sprout_api:\n    no_such_field: 1\n", "no_such_field"},
		{"wrong type", base + "extensions:\n  sprout_api:\n    multitenancy_enabled: [1]\n", "multitenancy_enabled"},
		{"env default", base + "extensions:\n  sprout_api:\n    endpoint: ${env:SPROUT_FUZZ_UNSET:-nonsense}\n", "nonsense"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkConfig(t, factories, []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
	for _, n := range EmbeddedConfigs() {
		b, _ := configs.FS.ReadFile(n + ".yaml")
		if err := checkConfig(t, factories, b); err != nil {
			t.Errorf("embedded %s: %v", n, err)
		}
	}
}
