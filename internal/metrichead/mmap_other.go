//go:build !unix

package metrichead

import (
	"io"
	"os"
)

// mapFile reads a sealed chunk page back where memory maps are not available.
func mapFile(f *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	_, err := io.ReadFull(f, b)
	return b, err
}

func unmap([]byte) error { return nil }
