//go:build !linux

package wal

import "os"

// datasync is File.Sync where fdatasync(2) is not available.
func datasync(f *os.File) error { return f.Sync() }
