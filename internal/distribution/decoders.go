package distribution

import (
	"io"
	_ "unsafe" // go:linkname

	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"google.golang.org/grpc/encoding"

	"github.com/sprout-otel/sprout/internal/zstdbound"
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
		confighttpDecoders["zstd"] = zstdbound.NewBody
	}
	encoding.RegisterCompressor(zstdbound.Compressor{})
}
