package tracestore

import (
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// pageWindow is the zstd window of block pages. parquet-go's own zstd codec keeps the library's default 8 MiB
// window, and each pooled encoder then holds a 16 MiB history, although a page is compressed on its own and
// holds about parquet.DefaultPageBufferSize (256 KiB) bytes: a window twice that finds every match a page has
// and costs 1 MiB per encoder. The frames are plain zstd: any reader (parquet-go's codec included) decodes them.
const pageWindow = 512 << 10

// pageCodec is the zstd codec blocks are written with (parquet.Zstd's level and frame options, a small window).
var pageCodec = &zstdPages{}

type zstdPages struct {
	encoders sync.Pool // *zstd.Encoder
}

func (*zstdPages) String() string                            { return "ZSTD" }
func (*zstdPages) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdPages) Encode(dst, src []byte) ([]byte, error) {
	e, _ := c.encoders.Get().(*zstd.Encoder)
	if e == nil {
		var err error
		e, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithWindowSize(pageWindow))
		if err != nil {
			return nil, err
		}
	}
	defer c.encoders.Put(e)
	return e.EncodeAll(src, dst[:0]), nil
}

// Decode is parquet's: reading picks its codec from the file's metadata, not from here.
func (*zstdPages) Decode(dst, src []byte) ([]byte, error) { return parquet.Zstd.Decode(dst, src) }
