package resourcedetectionprocessor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config has the contrib processor's keys that Sprout's detectors need: `detectors`, `override`, `timeout`. A
// config written for the contrib processor with only these keys (the seed's is one) runs unchanged; any other
// key is refused at load by the Collector as an invalid key.
type Config struct {
	// Detectors run in this order; when two set the same attribute, the earlier one wins.
	Detectors []string `mapstructure:"detectors"`
	// Override lets detected attributes replace those the data already carries (the contrib default, true).
	Override bool `mapstructure:"override"`
	// Timeout bounds detection at start, retries included (the contrib default, 5 s).
	Timeout time.Duration `mapstructure:"timeout"`
}

// Detectors Sprout links, in the order the error message lists them.
var linked = []string{envDetector, ecsDetector}

// Validate names the field that is wrong, and for a detector Sprout does not link, which ones it does.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for i, d := range c.Detectors {
		if !slices.Contains(linked, d) {
			return fmt.Errorf("detectors[%d]: detector %q is not linked into Sprout (linked: %s; the other contrib detectors were dropped to keep the binary small, see docs/configuration.md)",
				i, d, strings.Join(linked, ", "))
		}
		if seen[d] {
			return fmt.Errorf("detectors[%d]: detector %q is listed twice", i, d)
		}
		seen[d] = true
	}
	if c.Timeout <= 0 {
		return errors.New("timeout: must be positive")
	}
	return nil
}
