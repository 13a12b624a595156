package wal

import (
	"errors"
	"fmt"
	"time"
)

// Policy is the fsync policy as every store's configuration spells it, under its `wal` key (stores embed it with
// mapstructure's squash). The trace store and the generator called it `sync` (always, batch, none) before they
// shared this log; those keys still work and log a deprecation warning (see Effective).
type Policy struct {
	// Fsync is always, interval or never; see FsyncAlways, FsyncInterval and FsyncNever.
	Fsync string `mapstructure:"fsync"`
	// FsyncInterval is the fsync period of the interval policy.
	FsyncInterval time.Duration `mapstructure:"fsync_interval"`

	// Sync is the deprecated name of Fsync (always, batch = interval, none = never).
	Sync string `mapstructure:"sync"`
	// SyncInterval is the deprecated name of FsyncInterval.
	SyncInterval time.Duration `mapstructure:"sync_interval"`
}

// legacySync maps the values of the deprecated key `sync` to today's policies.
var legacySync = map[string]string{"always": FsyncAlways, "batch": FsyncInterval, "none": FsyncNever}

// Effective returns the policy and interval to use, with the deprecated keys applied over the new ones, and one
// warning for each deprecated key that is set, for the store to log at start.
func (p Policy) Effective() (fsync string, interval time.Duration, warnings []string) {
	fsync, interval = p.Fsync, p.FsyncInterval
	if p.Sync != "" {
		if v, ok := legacySync[p.Sync]; ok {
			fsync = v
		}
		warnings = append(warnings, fmt.Sprintf("wal.sync is deprecated and will be removed: write wal.fsync: %s", fsync))
	}
	if p.SyncInterval != 0 {
		interval = p.SyncInterval
		warnings = append(warnings, fmt.Sprintf("wal.sync_interval is deprecated and will be removed: write wal.fsync_interval: %s", interval))
	}
	return fsync, interval, warnings
}

// Validate checks the policy; its errors name the field under `wal.`.
func (p Policy) Validate() error {
	if p.Sync != "" {
		if _, ok := legacySync[p.Sync]; !ok {
			return fmt.Errorf("wal.sync: %q is not one of always, batch, none (wal.sync is deprecated: use wal.fsync)", p.Sync)
		}
	}
	if p.SyncInterval < 0 {
		return errors.New("wal.sync_interval: must not be negative (wal.sync_interval is deprecated: use wal.fsync_interval)")
	}
	fsync, interval, _ := p.Effective()
	if err := CheckPolicy(fsync, interval); err != nil {
		return fmt.Errorf("wal.%w", err)
	}
	return nil
}

// CheckPolicy checks an fsync policy and its interval; the error names the key (fsync or fsync_interval).
func CheckPolicy(fsync string, interval time.Duration) error {
	switch fsync {
	case FsyncAlways, FsyncNever:
	case FsyncInterval:
		if interval <= 0 {
			return errors.New("fsync_interval: must be positive when fsync is interval")
		}
	default:
		return fmt.Errorf("fsync: %q is not one of %s, %s, %s", fsync, FsyncAlways, FsyncInterval, FsyncNever)
	}
	return nil
}

// Options returns the Options of this policy; the caller adds the rest.
func (p Policy) Options() Options {
	fsync, interval, _ := p.Effective()
	return Options{Fsync: fsync, FsyncInterval: interval}
}
