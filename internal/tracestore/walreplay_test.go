package tracestore

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// TestReplaySegmentTails tells a torn last record (a crash mid-write, never acknowledged) from a corrupt
// record in the middle (damage on disk, reported), and says where replay stopped.
func TestReplaySegmentTails(t *testing.T) {
	rec := func(p string) []byte {
		b := make([]byte, walHeaderSize, walHeaderSize+len(p))
		binary.LittleEndian.PutUint32(b[0:], uint32(len(p)))
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), crcTable))
		return append(b, p...)
	}
	one, two, three := rec("first record"), rec("second record"), rec("third record")
	whole := append(append(append([]byte{}, one...), two...), three...)
	flipped := append([]byte{}, whole...)
	flipped[len(one)+walHeaderSize+3] ^= 0xff
	for _, tc := range []struct {
		name string
		data []byte
		n    int
		end  int64
		tail string
	}{
		{"clean", whole, 3, int64(len(whole)), tailClean},
		{"torn tail", whole[:len(whole)-4], 2, int64(len(one) + len(two)), tailTorn},
		{"corrupt middle record", flipped, 1, int64(len(one)), tailCorrupt},
	} {
		p := filepath.Join(t.TempDir(), "1.wal")
		if err := os.WriteFile(p, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		n, end, tail, err := replaySegment(p, func([]byte) error { return nil })
		if err != nil || n != tc.n || end != tc.end || tail != tc.tail {
			t.Errorf("%s: n=%d end=%d tail=%q err=%v, want n=%d end=%d tail=%q", tc.name, n, end, tail, err, tc.n, tc.end, tc.tail)
		}
	}
}

// FuzzReplaySegment feeds arbitrary segment bytes to replay: it must never panic or allocate without bound,
// must stop at the offset it reports, and every record it returns must be one that passes its checksum.
func FuzzReplaySegment(f *testing.F) {
	rec := func(p string) []byte {
		b := make([]byte, walHeaderSize, walHeaderSize+len(p))
		binary.LittleEndian.PutUint32(b[0:], uint32(len(p)))
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), crcTable))
		return append(b, p...)
	}
	f.Add(append(rec("one"), rec("two")...))
	f.Add(rec("torn")[:7])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "1.wal")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var total int64
		n, end, tail, err := replaySegment(p, func(b []byte) error { total += walHeaderSize + int64(len(b)); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if end != total || end > int64(len(data)) || n < 0 {
			t.Fatalf("n=%d end=%d replayed=%d len=%d", n, end, total, len(data))
		}
		if (tail == tailClean) != (end == int64(len(data))) {
			t.Fatalf("tail %q but end=%d of %d", tail, end, len(data))
		}
	})
}
