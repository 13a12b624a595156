package distribution

import (
	"io"
	"sync"
	_ "unsafe" // go:linkname

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"google.golang.org/grpc/encoding"
)

// Every HTTP server in the binary (the OTLP receiver's, sprout_api's, and those of configs users bring) decodes
// "Content-Encoding: zstd" with the Collector's confighttp decoder, and every gRPC server "grpc-encoding: zstd"
// with configgrpc's. At v0.158 / v1.64 both accept any window a frame declares, up to 512 MiB (and a
// single-segment frame's content size, up to 64 GiB): a 10-byte frame made the server allocate 465 MB, and the
// decoder went back to a pool holding it. HTTP's zstd content coding (RFC 9659) limits Window_Size to 8 MB, so
// Sprout's decoders refuse larger windows; the decoded size stays bounded by max_request_body_size (confighttp
// reads the decoded body through a MaxBytesReader) and by max_recv_msg_size_mib (gRPC).
//
// Why replace the decoders in the Collector's tables rather than configure them: the OTLP receiver builds its
// server itself (ToServer with no WithDecoder option), the middlewares a config may name run after
// decompression, and `compression_algorithms` can only drop zstd, which would refuse clients that use it. The
// gRPC table is public (encoding.RegisterCompressor, last registration wins). The HTTP table is confighttp's
// unexported availableDecoders map, reached with a go:linkname pull; ToServer copies its entries when a
// server is built, so replacing the entry at init reaches every server. TestZstdBombRefused fails loudly if a
// Collector upgrade renames the map or changes its shape (the linker fails first if the symbol is gone).

// zstdMaxWindow is RFC 9659's limit on the window of the zstd content coding.
const zstdMaxWindow = 8 << 20

//go:linkname confighttpDecoders go.opentelemetry.io/collector/config/confighttp.availableDecoders
var confighttpDecoders map[string]func(body io.ReadCloser) (io.ReadCloser, error)

// The blank uses keep both packages (and so their init functions, which fill the tables replaced here)
// initialised before this package's init.
var (
	_ = confighttp.NewDefaultServerConfig
	_ = configgrpc.NewDefaultServerConfig
)

func init() {
	if confighttpDecoders != nil {
		confighttpDecoders["zstd"] = newZstdBody
	}
	encoding.RegisterCompressor(zstdCompressor{})
}

var zstdOptions = []zstd.DOption{
	// One goroutine per request: asynchronous decoding buys nothing for a request body.
	zstd.WithDecoderConcurrency(1),
	zstd.WithDecoderMaxWindow(zstdMaxWindow),
	// Also bounds the window a single-segment frame takes from its content size.
	zstd.WithDecoderMaxMemory(zstdMaxWindow),
	zstd.WithDecoderLowmem(true),
}

// zstdDecoders recycles decoders, whose window buffers are now at most zstdMaxWindow.
var zstdDecoders sync.Pool

func getZstd(r io.Reader) (*zstd.Decoder, error) {
	if d, ok := zstdDecoders.Get().(*zstd.Decoder); ok {
		if err := d.Reset(r); err != nil {
			zstdDecoders.Put(d)
			return nil, err
		}
		return d, nil
	}
	return zstd.NewReader(r, zstdOptions...)
}

func putZstd(d *zstd.Decoder) {
	if d.Reset(nil) == nil {
		zstdDecoders.Put(d)
	}
}

// zstdBody is a request body decoded from zstd; Close returns its decoder to the pool.
type zstdBody struct {
	d    *zstd.Decoder
	orig io.ReadCloser
}

func newZstdBody(body io.ReadCloser) (io.ReadCloser, error) {
	d, err := getZstd(body)
	if err != nil {
		return nil, err
	}
	return &zstdBody{d: d, orig: body}, nil
}

func (z *zstdBody) Read(p []byte) (int, error) {
	if z.d == nil {
		return 0, zstd.ErrDecoderClosed
	}
	return z.d.Read(p)
}

func (z *zstdBody) Close() error {
	if z.d != nil {
		putZstd(z.d)
		z.d = nil
	}
	return z.orig.Close()
}

// zstdCompressor is gRPC's "zstd" codec with the bounded decoder. Compression (for Sprout's gRPC clients) uses
// a small window, as configgrpc's does.
type zstdCompressor struct{}

var zstdEncoders sync.Pool

func (zstdCompressor) Name() string { return "zstd" }

func (zstdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	if e, ok := zstdEncoders.Get().(*zstd.Encoder); ok {
		e.Reset(w)
		return &zstdWriter{e: e}, nil
	}
	e, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(512<<10))
	if err != nil {
		return nil, err
	}
	return &zstdWriter{e: e}, nil
}

type zstdWriter struct{ e *zstd.Encoder }

func (z *zstdWriter) Write(p []byte) (int, error) { return z.e.Write(p) }

func (z *zstdWriter) Close() error {
	err := z.e.Close()
	z.e.Reset(nil)
	zstdEncoders.Put(z.e)
	return err
}

func (zstdCompressor) Decompress(r io.Reader) (io.Reader, error) {
	d, err := getZstd(r)
	if err != nil {
		return nil, err
	}
	return &zstdMessage{d: d}, nil
}

// zstdMessage is one gRPC message being decoded. gRPC reads it to EOF (or to its size limit) and drops it
// without a Close, so the decoder goes back to the pool at EOF or on an error.
type zstdMessage struct{ d *zstd.Decoder }

func (z *zstdMessage) Read(p []byte) (int, error) {
	if z.d == nil {
		return 0, io.EOF
	}
	n, err := z.d.Read(p)
	if err != nil {
		putZstd(z.d)
		z.d = nil
	}
	return n, err
}
