package generatorconnector

import (
	"go.opentelemetry.io/collector/component"

	"github.com/sprout-otel/sprout/internal/generator"
)

// Config is the `sprout_generator` connector's configuration: the generator's own options at the top level
// (processors, span_metrics, service_graphs, max_active_series, stale_after, flush_interval, wal), plus the API
// extension on whose /metrics the generator reports itself.
type Config struct {
	generator.Config `mapstructure:",squash"`

	// API names the sprout_api extension that serves the generator's own metrics
	// (sprout_generator_active_series, sprout_generator_series_refused_total, ...). If it is absent the
	// generator runs without them.
	API component.ID `mapstructure:"api"`
}

// Validate names the field that is wrong.
func (c *Config) Validate() error { return c.Config.Validate() }
