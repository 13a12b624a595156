// Package logstoreext is the `sprout_logs` extension, which owns Sprout's log store (internal/logstore) and
// mounts its Loki-compatible API on the `sprout_api` port, and the `sprout_logs` exporter, which writes a
// pipeline's logs into it. The store itself knows nothing of the Collector; this package only bridges.
package logstoreext

import (
	"fmt"
	"path/filepath"

	"go.opentelemetry.io/collector/component"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logstore"
)

// Config is the `sprout_logs` extension's configuration.
type Config struct {
	logstore.Config `mapstructure:",squash"`
	// Storage is where chunks and the index go; by default a filesystem bucket under data_dir/bucket.
	Storage StorageConfig `mapstructure:"storage"`
	// API is the sprout_api extension whose port serves the Loki API.
	API component.ID `mapstructure:"api"`
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	st := c.BucketConfig()
	if err := st.Validate(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// StorageConfig is a bucket.Config whose filesystem directory may be left empty (it defaults under data_dir);
// it is a distinct type so that the Collector does not validate it before that default is applied.
type StorageConfig bucket.Config

// BucketConfig is the bucket the store writes to: storage, with the filesystem directory defaulted under data_dir.
func (c *Config) BucketConfig() bucket.Config {
	b := bucket.Config(c.Storage)
	if (b.Backend == "" || b.Backend == bucket.BackendFilesystem) && b.Filesystem.Dir == "" {
		b.Filesystem.Dir = filepath.Join(c.DataDir, "bucket")
	}
	return b
}
