package tracestore

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestPageCodecRoundTrip: pages compressed with the small-window codec decode with parquet-go's own zstd codec
// (what readers use), including pages larger than the window.
func TestPageCodecRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	random := make([]byte, 3*pageWindow)
	rnd.Read(random)
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"empty", nil},
		{"small", []byte("span span span span")},
		{"page", bytes.Repeat([]byte("operation-3 GET 200 "), 256<<10/20)},
		{"larger than the window", append(append([]byte(nil), random...), random[:pageWindow]...)},
	} {
		enc, err := pageCodec.Encode(nil, tc.src)
		if err != nil {
			t.Fatalf("%s: encode: %v", tc.name, err)
		}
		dec, err := parquet.Zstd.Decode(nil, enc)
		if err != nil {
			t.Fatalf("%s: decode: %v", tc.name, err)
		}
		if !bytes.Equal(dec, tc.src) {
			t.Errorf("%s: round trip changed %d bytes into %d", tc.name, len(tc.src), len(dec))
		}
	}
}
