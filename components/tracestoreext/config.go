package tracestoreext

import (
	"errors"
	"path/filepath"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/sprout-otel/sprout/internal/tracestore"
)

// Config is the `sprout_traces` extension's configuration: the trace store's, plus the API server to mount on.
type Config struct {
	tracestore.Config `mapstructure:",squash"`
	// API is the sprout_api extension that serves the Tempo HTTP API.
	API component.ID `mapstructure:"api"`
}

// Unmarshal keeps the block directory under data_dir (<data_dir>/blocks) when only data_dir is configured.
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	derived := filepath.Join(c.DataDir, "blocks")
	if err := conf.Unmarshal(c); err != nil {
		return err
	}
	if d := c.Storage.Filesystem.Dir; d == "" || d == derived {
		c.Storage.Filesystem.Dir = filepath.Join(c.DataDir, "blocks")
	}
	return nil
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.API.Type().String() == "" {
		return errors.New("api: must name a sprout_api extension")
	}
	return nil
}
