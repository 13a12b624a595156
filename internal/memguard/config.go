package memguard

import (
	"errors"
	"fmt"
)

// Config is the `memory` section of `sprout_api`: the process's memory budgets. Every budget is a percentage
// of one memory limit, so that the same config fits a 512 MiB task and a 16 GiB one.
type Config struct {
	// LimitMiB is the memory the budgets are percentages of. 0: the Go memory limit (GOMEMLIMIT, which
	// `sprout` sets to 90 % of the container's memory limit when it is not set), else 90 % of the host's memory.
	LimitMiB int64 `mapstructure:"limit_mib"`
	// IngestLimitPercentage: writes are refused (503, gRPC RESOURCE_EXHAUSTED) while the live heap plus the bytes
	// in flight is above this share of the limit. 0 disables the check.
	IngestLimitPercentage int `mapstructure:"ingest_limit_percentage"`
	// QueryLimitPercentage: queries are refused above this share; lower than ingest's, so that queries give way
	// first. 0 disables the check.
	QueryLimitPercentage int `mapstructure:"query_limit_percentage"`
	// IngestInflightPercentage bounds the bytes of push bodies being read and decoded at once (each counted at
	// its wire size plus its decoded size). 0 disables the bound.
	IngestInflightPercentage int `mapstructure:"ingest_inflight_percentage"`
	// QueryInflightPercentage bounds the memory admitted queries may hold at once (by their estimates).
	QueryInflightPercentage int `mapstructure:"query_inflight_percentage"`
}

// DefaultConfig: ingest refused at 80 % of the limit, queries at 70 %; a tenth of the limit for bodies being
// decoded and a twentieth for queries' estimates. With the default GOMEMLIMIT of 90 % of the container, ingest
// gives way at 72 % of the container's memory: before the collector has to work hard, well before a kill.
func DefaultConfig() Config {
	return Config{
		IngestLimitPercentage:    80,
		QueryLimitPercentage:     70,
		IngestInflightPercentage: 10,
		QueryInflightPercentage:  5,
	}
}

// Validate names the field that is wrong.
func (c Config) Validate() error {
	if c.LimitMiB < 0 {
		return errors.New("memory.limit_mib: must not be negative (0 derives it from GOMEMLIMIT or the host's memory)")
	}
	for _, p := range []struct {
		name string
		v    int
	}{
		{"ingest_limit_percentage", c.IngestLimitPercentage},
		{"query_limit_percentage", c.QueryLimitPercentage},
		{"ingest_inflight_percentage", c.IngestInflightPercentage},
		{"query_inflight_percentage", c.QueryInflightPercentage},
	} {
		if p.v < 0 || p.v > 100 {
			return fmt.Errorf("memory.%s: %d is not a percentage between 0 (off) and 100", p.name, p.v)
		}
	}
	if c.QueryLimitPercentage > 0 && c.IngestLimitPercentage > 0 && c.QueryLimitPercentage > c.IngestLimitPercentage {
		return fmt.Errorf("memory.query_limit_percentage: %d is above ingest_limit_percentage %d: queries must give way before ingest",
			c.QueryLimitPercentage, c.IngestLimitPercentage)
	}
	return nil
}

// Budgets are the ingest and query budgets for a memory limit of limit bytes.
func (c Config) Budgets(limit int64) (ingest, query Budget) {
	pct := func(p int) int64 { return limit / 100 * int64(p) }
	return Budget{Heap: pct(c.IngestLimitPercentage), InFlight: pct(c.IngestInflightPercentage)},
		Budget{Heap: pct(c.QueryLimitPercentage), InFlight: pct(c.QueryInflightPercentage)}
}
