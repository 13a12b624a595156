package logstore

import (
	"bytes"
	"io"
	"sync"
)

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	b := bytes.NewBuffer(buf)
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

// bufPool recycles scratch buffers. ingestBufs holds push bodies, their snappy-decoded form and WAL records;
// chunkBufs holds raw chunk payloads (about chunk_target_size each); headBufs the scratch of sealing head blocks. Each of them is dead once its push or chunk
// is done (decoders copy what they keep), and allocating them anew each time was most of ingest's garbage,
// which the GC's headroom doubles in RSS. Two pools, so that small pushes do not hold chunk-sized buffers.
type bufPool struct {
	p sync.Pool
	// max keeps rare huge buffers (a 100 MB push) out of the pool.
	max int
}

var (
	ingestBufs = &bufPool{max: 4 << 20}
	chunkBufs  = &bufPool{max: 16 << 20}
	headBufs   = &bufPool{max: 4 << 20} // sealing head blocks
	// payloadBufs hold the payloads of chunks read by counting queries (chunk_target_size of lines and their
	// metadata, about 2 MiB).
	payloadBufs = &bufPool{max: 16 << 20}
)

func (bp *bufPool) get() []byte {
	if p, ok := bp.p.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

func (bp *bufPool) put(b []byte) {
	if cap(b) == 0 || cap(b) > bp.max {
		return
	}
	b = b[:0]
	bp.p.Put(&b)
}
