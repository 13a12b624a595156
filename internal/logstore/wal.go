package logstore

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

// The WAL is a directory of numbered segment files and at most one checkpoint. A record is
// [u32 length][u32 crc32c(payload)][payload]. A checkpoint N holds every head line that was not yet in a chunk
// when segment N was started; replay reads checkpoint N, then segments N, N+1, ...

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type wal struct {
	dir    string
	cfg    WALConfig
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	seq    int
	size   int64
	synced uint64 // bytes written and fsynced, counted across segments
	writ   uint64 // bytes written
	syncMu sync.Mutex
	stop   chan struct{}
	done   chan struct{}
}

func segName(n int) string        { return fmt.Sprintf("%08d.wal", n) }
func checkpointName(n int) string { return fmt.Sprintf("checkpoint.%08d", n) }

// openWAL opens the WAL in dir; its new segment numbers at least minSeg.
func openWAL(dir string, cfg WALConfig, minSeg int) (*wal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create WAL dir: %w", err)
	}
	w := &wal{dir: dir, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	segs, _, err := w.listing()
	if err != nil {
		return nil, err
	}
	next := 1
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if next < minSeg {
		next = minSeg
	}
	if err := w.openSegment(next); err != nil {
		return nil, err
	}
	if cfg.Fsync == FsyncInterval {
		go w.syncLoop()
	} else {
		close(w.done)
	}
	return w, nil
}

func (w *wal) listing() (segs []int, checkpoint int, err error) {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, 0, fmt.Errorf("read WAL dir: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, ".wal"):
			if i, err := strconv.Atoi(strings.TrimSuffix(n, ".wal")); err == nil {
				segs = append(segs, i)
			}
		case strings.HasPrefix(n, "checkpoint.") && !strings.HasSuffix(n, ".tmp"):
			if i, err := strconv.Atoi(strings.TrimPrefix(n, "checkpoint.")); err == nil && i > checkpoint {
				checkpoint = i
			}
		}
	}
	sort.Ints(segs)
	return segs, checkpoint, nil
}

func (w *wal) openSegment(n int) error {
	f, err := os.OpenFile(filepath.Join(w.dir, segName(n)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open WAL segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		_ = f.Close()
		return err
	}
	w.f, w.seq, w.size = f, n, 0
	if w.w == nil {
		w.w = bufio.NewWriterSize(f, 1<<20)
	} else {
		w.w.Reset(f)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// append writes one record and, per the fsync policy, makes it durable before returning.
func (w *wal) append(payload []byte) error {
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(payload, castagnoli))
	w.mu.Lock()
	if w.f == nil {
		w.mu.Unlock()
		return errors.New("WAL is closed")
	}
	if w.cfg.SegmentSize > 0 && w.size > w.cfg.SegmentSize {
		if err := w.rotateLocked(); err != nil {
			w.mu.Unlock()
			return err
		}
	}
	_, _ = w.w.Write(hdr[:])
	_, _ = w.w.Write(payload)
	// The write reaches the kernel before we answer: this survives kill -9 of the process.
	if err := w.w.Flush(); err != nil {
		// A full disk (or any write error) may leave part of the record in the file, and bufio keeps the error
		// for every later write. Cut the file back to the last whole record and reset the buffer, so that the
		// WAL takes writes again once there is space and replay never stops at this record.
		w.recoverLocked()
		w.mu.Unlock()
		return fmt.Errorf("write WAL: %w", err)
	}
	n := uint64(len(payload) + 8)
	w.size += int64(n)
	w.writ += n
	mine := w.writ
	f := w.f
	w.mu.Unlock()
	if w.cfg.Fsync == FsyncAlways {
		return w.syncUpTo(mine, f)
	}
	return nil
}

// recoverLocked undoes a failed append: it truncates the segment to its last whole record, or, if that fails,
// moves on to a new segment (the partial record then ends the old one, with nothing acknowledged after it).
func (w *wal) recoverLocked() {
	w.w.Reset(w.f)
	if err := w.f.Truncate(w.size); err == nil {
		return
	}
	old := w.f
	if err := w.openSegment(w.seq + 1); err == nil {
		_ = old.Close()
	}
}

// syncUpTo fsyncs unless another caller's fsync already covered offset: concurrent pushes share one fsync.
func (w *wal) syncUpTo(off uint64, f *os.File) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced >= off {
		return nil
	}
	w.mu.Lock()
	target := w.writ
	cur := w.f
	w.mu.Unlock()
	if cur != f {
		// The segment was rotated; rotation fsyncs the old file.
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("fsync WAL: %w", err)
		}
	}
	if err := cur.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("fsync WAL: %w", err)
	}
	w.synced = target
	return nil
}

func (w *wal) syncLoop() {
	defer close(w.done)
	t := time.NewTicker(w.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			if w.f != nil {
				_ = w.f.Sync()
			}
			w.mu.Unlock()
		}
	}
}

func (w *wal) rotateLocked() error {
	if err := w.w.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	old := w.f
	if err := w.openSegment(w.seq + 1); err != nil {
		return err
	}
	return old.Close()
}

// rotate starts a new segment and returns its number.
func (w *wal) rotate() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.rotateLocked(); err != nil {
		return 0, err
	}
	return w.seq, nil
}

// writeCheckpoint atomically writes checkpoint n from records, then removes segments before n and older
// checkpoints.
func (w *wal) writeCheckpoint(n int, records [][]byte) error {
	tmp := filepath.Join(w.dir, checkpointName(n)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create checkpoint: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	for _, p := range records {
		var hdr [8]byte
		binary.LittleEndian.PutUint32(hdr[:4], uint32(len(p)))
		binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(p, castagnoli))
		_, _ = bw.Write(hdr[:])
		_, _ = bw.Write(p)
	}
	if err := bw.Flush(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("fsync checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, checkpointName(n))); err != nil {
		return fmt.Errorf("rename checkpoint: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		return err
	}
	segs, _, err := w.listing()
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s < n {
			_ = os.Remove(filepath.Join(w.dir, segName(s)))
		}
	}
	ents, _ := os.ReadDir(w.dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "checkpoint.") && e.Name() != checkpointName(n) {
			_ = os.RemoveAll(filepath.Join(w.dir, e.Name()))
		}
	}
	return nil
}

// replay calls fn with every record of the latest checkpoint and the segments after it, and the record's
// position: the segment number, or for the checkpoint its number (its records predate that segment). A torn tail (from a
// crash mid-write) ends that segment's replay; it is not an error. A complete record that fails its checksum is
// damage on disk: it also ends that file's replay (the next files still replay) and is returned in damaged, for
// the store to report.
func (w *wal) replay(fn func(pos int, b []byte) error) (records int, damaged []string, err error) {
	segs, cp, err := w.listing()
	if err != nil {
		return 0, nil, err
	}
	type file struct {
		name string
		pos  int
	}
	files := []file{}
	if cp > 0 {
		files = append(files, file{checkpointName(cp), cp})
	}
	for _, s := range segs {
		if s >= cp && s != w.seq {
			files = append(files, file{segName(s), s})
		}
	}
	for _, f := range files {
		name := f.name
		p := filepath.Join(w.dir, name)
		pos := f.pos
		n, end, corrupt, err := replayFile(p, func(b []byte) error { return fn(pos, b) })
		records += n
		if err != nil {
			return records, damaged, fmt.Errorf("replay %s: %w", name, err)
		}
		if corrupt {
			var lost int64
			if fi, err := os.Stat(p); err == nil {
				lost = fi.Size() - end
			}
			damaged = append(damaged, fmt.Sprintf("%s: record at offset %d fails its checksum, %d bytes after it not replayed", p, end, lost))
		}
	}
	return records, damaged, nil
}

// replayFile returns the records replayed, the offset where replay stopped, and whether it stopped at a
// complete but corrupt record (rather than at the end or at a torn last record).
func replayFile(path string, fn func([]byte) error) (n int, end int64, corrupt bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	var size int64 = -1
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return n, end, false, nil
		}
		l := binary.LittleEndian.Uint32(hdr[:4])
		if l > 1<<30 {
			return n, end, true, nil
		}
		if size >= 0 && int64(l) > size-end-8 {
			return n, end, false, nil // runs past the end of the file: a torn tail; do not allocate for it
		}
		buf := make([]byte, l)
		if _, err := io.ReadFull(r, buf); err != nil {
			return n, end, false, nil
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return n, end, true, nil
		}
		if err := fn(buf); err != nil {
			return n, end, false, err
		}
		n++
		end += 8 + int64(l)
	}
}

func (w *wal) close() error {
	w.mu.Lock()
	if w.f == nil {
		w.mu.Unlock()
		return nil
	}
	err := w.w.Flush()
	if e := w.f.Sync(); err == nil {
		err = e
	}
	if e := w.f.Close(); err == nil {
		err = e
	}
	w.f = nil
	w.mu.Unlock()
	select {
	case <-w.done:
	default:
		close(w.stop)
		<-w.done
	}
	return err
}
