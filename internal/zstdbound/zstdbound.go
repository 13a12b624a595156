// Package zstdbound is a zstd decoder for request bodies and gRPC messages whose window is held to RFC 9659's
// 8 MiB, pooled. The Collector's HTTP and gRPC servers (v0.158 / v1.64) accept any window a frame declares, up
// to 512 MiB (a 10-byte frame made a server allocate 465 MB); the distribution installs these decoders in their
// place. It must not know the Collector: it only decodes.
package zstdbound

import (
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxWindow is RFC 9659's limit on the window of the zstd content coding.
const MaxWindow = 8 << 20

var zstdOptions = []zstd.DOption{
	// One goroutine per request: asynchronous decoding buys nothing for a request body.
	zstd.WithDecoderConcurrency(1),
	zstd.WithDecoderMaxWindow(MaxWindow),
	// Also bounds the window a single-segment frame takes from its content size.
	zstd.WithDecoderMaxMemory(MaxWindow),
	zstd.WithDecoderLowmem(true),
}

// zstdDecoders recycles decoders, whose window buffers are now at most MaxWindow.
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

func NewBody(body io.ReadCloser) (io.ReadCloser, error) {
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

// Compressor is gRPC's "zstd" codec with the bounded decoder. Compression (for Sprout's gRPC clients) uses
// a small window, as configgrpc's does.
type Compressor struct{}

var zstdEncoders sync.Pool

func (Compressor) Name() string { return "zstd" }

func (Compressor) Compress(w io.Writer) (io.WriteCloser, error) {
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

func (Compressor) Decompress(r io.Reader) (io.Reader, error) {
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
