//go:build !linux

package diskguard

import "errors"

// freeBytes is not measured here: the guard allows every write.
func freeBytes(string) (int64, error) {
	return 0, errors.New("free disk space is measured on Linux only")
}
