package logstore

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// TestReplayFileTails tells a torn last record (a crash mid-write) from a corrupt record in the middle (damage
// on disk, which the store reports).
func TestReplayFileTails(t *testing.T) {
	rec := func(p string) []byte {
		b := make([]byte, 8, 8+len(p))
		binary.LittleEndian.PutUint32(b[0:], uint32(len(p)))
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), castagnoli))
		return append(b, p...)
	}
	one, two, three := rec("first record"), rec("second record"), rec("third record")
	whole := append(append(append([]byte{}, one...), two...), three...)
	flipped := append([]byte{}, whole...)
	flipped[len(one)+8+3] ^= 0xff
	for _, tc := range []struct {
		name    string
		data    []byte
		n       int
		end     int64
		corrupt bool
	}{
		{"clean", whole, 3, int64(len(whole)), false},
		{"torn tail", whole[:len(whole)-4], 2, int64(len(one) + len(two)), false},
		{"corrupt middle record", flipped, 1, int64(len(one)), true},
	} {
		p := filepath.Join(t.TempDir(), "00000001.wal")
		if err := os.WriteFile(p, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		n, end, corrupt, err := replayFile(p, func([]byte) error { return nil })
		if err != nil || n != tc.n || end != tc.end || corrupt != tc.corrupt {
			t.Errorf("%s: n=%d end=%d corrupt=%v err=%v, want n=%d end=%d corrupt=%v", tc.name, n, end, corrupt, err, tc.n, tc.end, tc.corrupt)
		}
	}
}
