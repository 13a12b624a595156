package zstdbound

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// bomb is a complete 10-byte zstd frame that declares a 512 MiB window and holds one byte.
var bomb = []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 19 << 3, 0x09, 0x00, 0x00, 'x'}

// singleSegmentBomb declares a single-segment frame of 1 GiB content: its window is its content size.
var singleSegmentBomb = []byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0x00, 0x00, 0x00, 0x40, 0x09, 0x00, 0x00, 'x'}

func TestBody(t *testing.T) {
	enc, _ := zstd.NewWriter(nil, zstd.WithWindowSize(MaxWindow))
	payload := bytes.Repeat([]byte("sprout "), 1<<20)
	for _, c := range []struct {
		name    string
		in      []byte
		want    []byte // nil: refused
		maxHeap uint64
	}{
		{"512 MiB window", bomb, nil, 4 << 20},
		{"single segment of 1 GiB", singleSegmentBomb, nil, 4 << 20},
		{"7 MiB at the largest window", enc.EncodeAll(payload, nil), payload, 64 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			rc, err := NewBody(io.NopCloser(bytes.NewReader(c.in)))
			var got []byte
			if err == nil {
				got, err = io.ReadAll(rc)
				_ = rc.Close()
			}
			runtime.ReadMemStats(&after)
			if c.want == nil {
				if err == nil {
					t.Fatalf("decoded %d bytes; want a refusal", len(got))
				}
			} else if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(c.want))
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > c.maxHeap {
				t.Fatalf("allocated %d MiB", d>>20)
			}
		})
	}
}

func FuzzZstdBody(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	f.Add(bomb)
	f.Add(singleSegmentBomb)
	f.Add(enc.EncodeAll([]byte(`{"resourceLogs":[]}`), nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rc, err := NewBody(io.NopCloser(bytes.NewReader(b)))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<20))
		_ = rc.Close()
	})
}
