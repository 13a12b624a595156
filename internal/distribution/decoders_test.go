package distribution

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"google.golang.org/grpc/encoding"

	"github.com/sprout-otel/sprout/internal/zstdbound"
)

// zstdBomb is a complete 10-byte zstd frame that declares a 512 MiB window and holds one byte.
var zstdBomb = []byte{
	0x28, 0xb5, 0x2f, 0xfd, // magic
	0x00,             // frame header: no content size, not single-segment, no checksum, no dictionary
	19 << 3,          // window descriptor: 2^(10+19) = 512 MiB
	0x09, 0x00, 0x00, // block header: last, raw, 1 byte
	'x',
}

// zstdSingleSegmentBomb declares a single-segment frame of 1 GiB content: its window is its content size.
var zstdSingleSegmentBomb = []byte{
	0x28, 0xb5, 0x2f, 0xfd,
	0xa0,                   // frame header: 4-byte content size, single segment
	0x00, 0x00, 0x00, 0x40, // content size 1 GiB
	0x09, 0x00, 0x00, 'x',
}

// TestConfighttpDecoderTable guards the go:linkname into confighttp: if a Collector upgrade renames the map or
// changes how it is filled, this fails before any bomb gets through.
func TestConfighttpDecoderTable(t *testing.T) {
	if confighttpDecoders == nil {
		t.Fatal("confighttp.availableDecoders is nil: the go:linkname no longer reaches the Collector's decoder table")
	}
	for _, enc := range []string{"", "gzip", "zstd", "zlib"} {
		if confighttpDecoders[enc] == nil {
			t.Fatalf("confighttp.availableDecoders has no %q entry: its shape changed", enc)
		}
	}
	if reflect.ValueOf(confighttpDecoders["zstd"]).Pointer() != reflect.ValueOf(zstdbound.NewBody).Pointer() {
		t.Fatal(`confighttp.availableDecoders["zstd"] is not Sprout's bounded decoder`)
	}
	if _, ok := encoding.GetCompressor("zstd").(zstdbound.Compressor); !ok {
		t.Fatalf("gRPC's zstd compressor is %T, not Sprout's bounded one", encoding.GetCompressor("zstd"))
	}
}

// collectorServer is an HTTP server built by confighttp exactly as the OTLP receiver builds its own, whose
// handler reads the whole body.
func collectorServer(t *testing.T) http.Handler {
	t.Helper()
	sc := confighttp.NewDefaultServerConfig()
	srv, err := sc.ToServer(context.Background(), nil, componenttest.NewNopTelemetrySettings(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("", 0)+string(rune('0'+len(b)%10)))
	}))
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler
}

func post(h http.Handler, body []byte) (int, string, uint64) {
	req := httptest.NewRequest(http.MethodPost, "/v1/logs", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "zstd")
	rec := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h.ServeHTTP(rec, req)
	runtime.ReadMemStats(&after)
	return rec.Code, rec.Body.String(), after.TotalAlloc - before.TotalAlloc
}

func TestZstdBombRefused(t *testing.T) {
	h := collectorServer(t)
	big := bytes.Repeat([]byte("sprout "), 12<<20/7) // 12 MiB: more than one window
	enc, _ := zstd.NewWriter(nil)
	legit := enc.EncodeAll(big, nil)
	tooBig := enc.EncodeAll(make([]byte, 30<<20), nil)
	cases := []struct {
		name     string
		body     []byte
		status   int
		maxAlloc uint64
	}{
		{"512 MiB window", zstdBomb, http.StatusBadRequest, 4 << 20},
		{"single segment of 1 GiB", zstdSingleSegmentBomb, http.StatusBadRequest, 4 << 20},
		// The decoded size is bounded by max_request_body_size (20 MiB) as for every content coding.
		// These two read up to 20 MiB into the handler's buffers, and under -race sync.Pool drops decoders at
		// random: the bound only tells a body-sized cost from a runaway one.
		{"30 MiB of zeros", tooBig, http.StatusBadRequest, 160 << 20},
		{"12 MiB body in 8 MiB windows", legit, http.StatusOK, 160 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 3; i++ { // repeated: the pooled decoder must not keep a bomb's buffer
				code, body, alloc := post(h, tc.body)
				if code != tc.status {
					t.Fatalf("status %d (%s), want %d", code, strings.TrimSpace(body), tc.status)
				}
				if alloc > tc.maxAlloc {
					t.Fatalf("the request allocated %d MiB, over %d MiB", alloc>>20, tc.maxAlloc>>20)
				}
			}
		})
	}
}

func TestGRPCZstd(t *testing.T) {
	c := encoding.GetCompressor("zstd")
	var buf bytes.Buffer
	w, err := c.Compress(&buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("span "), 100000)
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r, err := c.Decompress(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round trip: %d bytes, %v", len(got), err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := c.Decompress(bytes.NewReader(zstdBomb))
	if err == nil {
		_, err = io.ReadAll(r)
	}
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("the 512 MiB-window frame decoded")
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
		t.Fatalf("refusing the frame allocated %d MiB", d>>20)
	}
}
