package wal

import (
	"testing"
	"time"
)

// BenchmarkAppend appends 4 KiB records from GOMAXPROCS goroutines under each policy (always: group commit).
func BenchmarkAppend(b *testing.B) {
	for _, policy := range []string{FsyncNever, FsyncInterval, FsyncAlways} {
		b.Run(policy, func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{Fsync: policy, FsyncInterval: time.Second, SegmentBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, 4<<10)
			b.SetBytes(int64(len(rec)))
			b.SetParallelism(1)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
