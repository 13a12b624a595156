package tracestore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The WAL is a directory of segment files named <seq>.wal. A segment is a sequence of records:
//
//	uint32 little-endian payload length | uint32 little-endian CRC-32C of the payload | payload
//
// A payload is an OTLP ExportTraceServiceRequest (TracesData) in protobuf. A record is appended with one write(2)
// before the batch is acknowledged. At replay a short record ends the segment: it can only be the tail
// being written when the process died, and that batch was never acknowledged. A complete record with a bad CRC
// is damage on disk: it also ends the segment's replay (later segments still replay), and is logged as an error
// that names the segment, the offset and how many bytes were not replayed.

const (
	walHeaderSize = 8
	// maxRecordSize rejects absurd lengths at replay (a corrupt header) before allocating.
	maxRecordSize = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type wal struct {
	dir      string
	policy   string
	segBytes int64

	mu      sync.Mutex
	f       *os.File
	seq     uint64
	size    int64
	created time.Time
	dirty   bool
	buf     []byte
	failed  error // set when a write failed and the segment could not be repaired
}

func segName(seq uint64) string { return fmt.Sprintf("%016d.wal", seq) }

// listSegments returns the sequence numbers of the segments in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".wal")
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// Segment tails found at replay.
const (
	tailClean   = ""
	tailTorn    = "torn"    // an incomplete last record: the write in progress when the process died, never acknowledged
	tailCorrupt = "corrupt" // a complete record whose CRC does not match, or an absurd length: damage on disk
)

// replaySegment calls fn for every intact record of a segment. It returns the number of records, the offset
// where replay stopped and how the segment ended: cleanly, in a torn last record, or in a corrupt one (whose
// bytes from end on are not replayed).
func replaySegment(path string, fn func(payload []byte) error) (n int, end int64, tail string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, tailClean, err
	}
	defer f.Close()
	var fileSize int64 = -1
	if fi, err := f.Stat(); err == nil {
		fileSize = fi.Size()
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [walHeaderSize]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return n, end, tailClean, nil
			}
			return n, end, tailTorn, nil
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if size > maxRecordSize {
			return n, end, tailCorrupt, nil
		}
		if fileSize >= 0 && int64(size) > fileSize-end-walHeaderSize {
			return n, end, tailTorn, nil // runs past the end of the file; do not allocate for it
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(r, payload); err != nil {
			return n, end, tailTorn, nil
		}
		if crc32.Checksum(payload, crcTable) != sum {
			return n, end, tailCorrupt, nil
		}
		if err := fn(payload); err != nil {
			return n, end, tailClean, err
		}
		n++
		end += walHeaderSize + int64(size)
	}
}

// openWAL starts a new segment after the existing ones.
func openWAL(dir, policy string, segBytes int64, nextSeq uint64) (*wal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create WAL directory: %w", err)
	}
	w := &wal{dir: dir, policy: policy, segBytes: segBytes, seq: nextSeq}
	if err := w.openSegment(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *wal) openSegment() error {
	f, err := os.OpenFile(filepath.Join(w.dir, segName(w.seq)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open WAL segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	w.f, w.size, w.created = f, st.Size(), time.Now()
	// Make the new file's directory entry durable, so that a synced record is not in a file that vanishes.
	if w.policy != SyncNone {
		syncDir(w.dir)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Append writes one record and returns the segment it went to. When it returns nil the record is in the OS
// (and on disk, with the always policy).
func (w *wal) Append(payload []byte) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return 0, w.failed
	}
	if w.size > 0 && w.size+int64(len(payload)) > w.segBytes {
		if err := w.rotateLocked(); err != nil {
			return 0, err
		}
	}
	need := walHeaderSize + len(payload)
	if cap(w.buf) < need {
		w.buf = make([]byte, need)
	}
	buf := w.buf[:need]
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(payload, crcTable))
	copy(buf[walHeaderSize:], payload)
	if len(w.buf) > 4<<20 {
		w.buf = nil // do not pin a huge buffer
	}
	if _, err := w.f.Write(buf); err != nil {
		// A partial record (disk full) would end replay of this segment early; cut it off so the WAL stays readable.
		if terr := w.f.Truncate(w.size); terr != nil {
			w.failed = fmt.Errorf("WAL segment %s is damaged after a failed write (%v) and could not be repaired: %w", segName(w.seq), err, terr)
		}
		return 0, fmt.Errorf("write WAL: %w", err)
	}
	w.size += int64(need)
	switch w.policy {
	case SyncAlways:
		if err := w.f.Sync(); err != nil {
			return 0, fmt.Errorf("fsync WAL: %w", err)
		}
	case SyncBatch:
		w.dirty = true
	}
	return w.seq, nil
}

// Sync fsyncs the current segment if it has unsynced records (the batch policy's timer calls it).
func (w *wal) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.dirty || w.f == nil {
		return nil
	}
	w.dirty = false
	return w.f.Sync()
}

// Rotate closes the current segment (if it holds records) and starts the next; it returns the current sequence.
func (w *wal) Rotate() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size == 0 {
		return w.seq, nil
	}
	return w.seq, w.rotateLocked()
}

func (w *wal) rotateLocked() error {
	if w.policy != SyncNone {
		_ = w.f.Sync()
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close WAL segment: %w", err)
	}
	w.seq++
	w.dirty = false
	return w.openSegment()
}

// Current returns the sequence number of the segment being written.
func (w *wal) Current() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// Remove deletes a finished segment whose records are all in blocks.
func (w *wal) Remove(seq uint64) error {
	err := os.Remove(filepath.Join(w.dir, segName(seq)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Close syncs (unless the policy is none) and closes the current segment; an empty segment is removed.
func (w *wal) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	if w.policy != SyncNone {
		_ = w.f.Sync()
	}
	err := w.f.Close()
	if w.size == 0 {
		_ = os.Remove(filepath.Join(w.dir, segName(w.seq)))
	}
	w.f = nil
	return err
}
