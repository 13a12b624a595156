package generator

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// TestWALTail tells a torn last record from a complete record that failed its checksum.
func TestWALTail(t *testing.T) {
	rec := func(p string) []byte {
		b := make([]byte, frameHeader, frameHeader+len(p))
		binary.LittleEndian.PutUint32(b[0:], uint32(len(p)))
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), castagnoli))
		return append(b, p...)
	}
	one, two := rec("first record"), rec("second record")
	whole := append(append([]byte{}, one...), two...)
	flipped := append([]byte{}, whole...)
	flipped[len(one)+frameHeader+2] ^= 0xff
	for _, tc := range []struct {
		name    string
		data    []byte
		corrupt bool
		dropped int64
	}{
		{"clean", whole, false, 0},
		{"torn", whole[:len(whole)-3], false, int64(len(two) - 3)},
		{"corrupt", flipped, true, int64(len(two))},
	} {
		p := filepath.Join(t.TempDir(), "wal.log")
		if err := os.WriteFile(p, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, end, err := readRecords(p)
		if err != nil {
			t.Fatal(err)
		}
		corrupt, dropped := walTail(p, end)
		if corrupt != tc.corrupt || dropped != tc.dropped {
			t.Errorf("%s: corrupt=%v dropped=%d, want %v %d", tc.name, corrupt, dropped, tc.corrupt, tc.dropped)
		}
	}
}
