//go:build unix

package metrichead

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps a sealed chunk page read-only; its pages are the kernel's to drop and read back.
func mapFile(f *os.File, size int) ([]byte, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	return b, nil
}

func unmap(b []byte) error { return syscall.Munmap(b) }
