package distribution

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.opentelemetry.io/collector/confmap"

	"github.com/sprout-otel/sprout/examples/configs"
)

// EmbeddedScheme is the config URI scheme of the configs compiled into the binary: `sprout:all-in-one`,
// `sprout:collector-sidecar`, `sprout:backend`. The default config is `sprout:all-in-one`.
const EmbeddedScheme = "sprout"

// DefaultConfigURI is what runs when no --config flag is given.
const DefaultConfigURI = EmbeddedScheme + ":all-in-one"

// NewEmbeddedProviderFactory serves the example configs embedded in the binary.
func NewEmbeddedProviderFactory() confmap.ProviderFactory {
	return confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider { return embeddedProvider{} })
}

type embeddedProvider struct{}

func (embeddedProvider) Retrieve(_ context.Context, uri string, _ confmap.WatcherFunc) (*confmap.Retrieved, error) {
	name := strings.TrimPrefix(uri, EmbeddedScheme+":")
	b, err := configs.FS.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no embedded config %q; embedded configs are: %s", name, strings.Join(EmbeddedConfigs(), ", "))
	}
	return confmap.NewRetrievedFromYAML(b)
}

func (embeddedProvider) Scheme() string                 { return EmbeddedScheme }
func (embeddedProvider) Shutdown(context.Context) error { return nil }

// EmbeddedConfigs lists the names that `sprout:NAME` accepts.
func EmbeddedConfigs() []string {
	entries, _ := configs.FS.ReadDir(".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
