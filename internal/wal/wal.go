// Package wal is the write-ahead log of every Sprout store that acknowledges a write before it is in the
// bucket: the trace store, the log store and the span-metrics generator. It owns the files of one directory:
// numbered segments that records are appended to, and at most one checkpoint that stands for every segment
// before it. It must not know what a record means: stores encode their records, and decode them again in the
// callback of Replay.
//
// On disk:
//
//	<dir>/00000001.wal, 00000002.wal, ...   segments, appended to in order; a new one starts at Rotate or when
//	                                        the current one would grow past Options.SegmentBytes
//	<dir>/checkpoint.00000002               records that stand for everything appended before segment 2
//
// A segment or checkpoint is a sequence of records:
//
//	uint32 little-endian payload length | uint32 little-endian CRC-32C (Castagnoli) of the payload | payload
//
// A record is written with one write(2) before Append returns, so an acknowledged record survives kill -9 of
// the process; the fsync policy (Options.Fsync) says when it also survives a power cut. At replay an
// incomplete last record ends its file: it is the write in progress when the process stopped, never
// acknowledged, and it is cut off (torn-tail repair). A complete record whose checksum fails is damage on disk:
// it ends its file's replay, is reported, and later files still replay.
//
// Earlier releases wrote the same framing under other names (<16 digits>.wal in the trace store); Open renames
// them, so a data directory of an older release replays.
package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Fsync policies. Each says what survives what; every policy writes a record to the operating system before
// Append returns, so every policy survives kill -9 of the process.
const (
	// FsyncAlways fsyncs before Append returns: an acknowledged record survives a power cut. Concurrent
	// appends share one fsync (group commit).
	FsyncAlways = "always"
	// FsyncInterval fsyncs every Options.FsyncInterval: a power cut loses at most that interval.
	FsyncInterval = "interval"
	// FsyncNever leaves flushing to the operating system.
	FsyncNever = "never"
)

const (
	headerSize = 8
	// maxRecord rejects an absurd length (a corrupt header) before anything is allocated for it.
	maxRecord = 1 << 30
	segSuffix = ".wal"
	cpPrefix  = "checkpoint."
	tmpSuffix = ".tmp"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("WAL is closed")

// Options configures a Log.
type Options struct {
	// Fsync is FsyncAlways, FsyncInterval or FsyncNever.
	Fsync string
	// FsyncInterval is the period of FsyncInterval.
	FsyncInterval time.Duration
	// SegmentBytes starts a new segment before a record would take the current one past this size; 0 never
	// does (segments then change only at Rotate).
	SegmentBytes int64
	// FirstSegment is the lowest number a new segment may have. A store whose data names segments (the log
	// store's chunks remember the segment their lines were flushed from) passes the highest it knows, so that a
	// WAL directory removed by hand does not restart numbers below it.
	FirstSegment uint64
	// Logger reports what the log does on its own: fsync failures of the interval policy, files it could not
	// remove. Nil logs nothing.
	Logger *zap.Logger
}

// Log is a write-ahead log in one directory. Its methods are safe for concurrent use.
type Log struct {
	dir    string
	opts   Options
	logger *zap.Logger

	mu      sync.Mutex
	f       *os.File
	seq     uint64
	size    int64
	written uint64 // bytes appended since Open, across segments
	dirty   bool   // appended since the last fsync (interval policy)
	// dirSync is set when a segment was created and the directory not fsynced since: the first fsync after
	// it (of an append under FsyncAlways, the interval's, or Close's) fsyncs the directory first, so a
	// rotation, which the log store makes with pushes held off, does not wait for it.
	dirSync bool
	buf     []byte
	failed  error // a failed write could not be cut off: the log takes no more appends

	syncMu sync.Mutex
	synced uint64 // written as of the last group fsync

	// retiring counts segments rotated out whose fsync and close run in the background (see rotateLocked);
	// retireErr keeps the first of their failures for Close, and unretired the files whose fsync failed.
	retiring  sync.WaitGroup
	retireErr error
	unretired []*os.File

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// SegmentName is the file name of segment seq.
func SegmentName(seq uint64) string { return fmt.Sprintf("%08d%s", seq, segSuffix) }

// CheckpointName is the file name of checkpoint seq.
func CheckpointName(seq uint64) string { return fmt.Sprintf("%s%08d", cpPrefix, seq) }

// Open opens the log in dir (creating it), renames files of earlier releases, and starts a new segment after
// every existing segment and checkpoint. Existing records are read with Replay.
func Open(dir string, o Options) (*Log, error) {
	if err := CheckPolicy(o.Fsync, o.FsyncInterval); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create WAL directory: %w", err)
	}
	l := &Log{dir: dir, opts: o, logger: o.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if l.logger == nil {
		l.logger = zap.NewNop()
	}
	if err := l.tidy(); err != nil {
		return nil, err
	}
	segs, cp, _, err := l.list()
	if err != nil {
		return nil, err
	}
	next := max(o.FirstSegment, cp, 1)
	if len(segs) > 0 {
		next = max(next, segs[len(segs)-1]+1)
	}
	f, err := l.create(next)
	if err != nil {
		return nil, err
	}
	l.f, l.seq = f, next
	if o.Fsync == FsyncInterval {
		go l.syncLoop()
	} else {
		close(l.done)
	}
	return l, nil
}

// tidy renames segments and checkpoints of earlier releases to today's names and removes checkpoints that
// were being written when the process stopped.
func (l *Log) tidy() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("read WAL directory: %w", err)
	}
	renamed := false
	for _, e := range ents {
		name := e.Name()
		var want string
		if seq, ok := parseSegment(name); ok {
			want = SegmentName(seq)
		} else if strings.HasPrefix(name, cpPrefix) && strings.HasSuffix(name, tmpSuffix) {
			if err := os.RemoveAll(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("remove unfinished WAL checkpoint: %w", err)
			}
			continue
		} else if seq, ok := parseCheckpoint(name); ok {
			want = CheckpointName(seq)
		}
		if want == "" || want == name {
			continue
		}
		if err := os.Rename(filepath.Join(l.dir, name), filepath.Join(l.dir, want)); err != nil {
			return fmt.Errorf("rename WAL file %s of an earlier release: %w", name, err)
		}
		renamed = true
	}
	if renamed {
		return syncDir(l.dir)
	}
	return nil
}

func parseSegment(name string) (uint64, bool) { return parseNumber(name, "", segSuffix) }

func parseCheckpoint(name string) (uint64, bool) { return parseNumber(name, cpPrefix, "") }

// parseNumber reads the number between prefix and suffix of a file name.
func parseNumber(name, prefix, suffix string) (uint64, bool) {
	n, ok := strings.CutPrefix(name, prefix)
	if n, ok2 := strings.CutSuffix(n, suffix); ok && ok2 && n != "" {
		seq, err := strconv.ParseUint(n, 10, 64)
		return seq, err == nil
	}
	return 0, false
}

// list returns the segment numbers, ascending, and the newest checkpoint (has is false when there is none).
func (l *Log) list() (segs []uint64, cp uint64, has bool, err error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read WAL directory: %w", err)
	}
	for _, e := range ents {
		if seq, ok := parseSegment(e.Name()); ok {
			segs = append(segs, seq)
		} else if seq, ok := parseCheckpoint(e.Name()); ok && (!has || seq > cp) {
			cp, has = seq, true
		}
	}
	slices.Sort(segs)
	return segs, cp, has, nil
}

// create opens segment seq for appending and, unless the policy is never, makes its directory entry durable:
// a synced record in a file whose name was lost would be lost too.
func (l *Log) create(seq uint64) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(l.dir, SegmentName(seq)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open WAL segment: %w", err)
	}
	l.dirSync = l.opts.Fsync != FsyncNever
	return f, nil
}

// syncDirIfCreated fsyncs the directory when a segment was created since it last was.
func (l *Log) syncDirIfCreated() error {
	l.mu.Lock()
	pending := l.dirSync
	l.dirSync = false
	l.mu.Unlock()
	if !pending {
		return nil
	}
	if err := syncDir(l.dir); err != nil {
		l.mu.Lock()
		l.dirSync = true
		l.mu.Unlock()
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open WAL directory for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync WAL directory: %w", err)
	}
	return nil
}

// Append writes one record and returns the number of the segment it went to. When it returns nil the record
// is in the operating system, and on disk under FsyncAlways. rec may be reused once Append returns.
func (l *Log) Append(rec []byte) (uint64, error) {
	l.mu.Lock()
	if l.f == nil {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	if l.failed != nil {
		l.mu.Unlock()
		return 0, l.failed
	}
	need := headerSize + len(rec)
	if l.opts.SegmentBytes > 0 && l.size > 0 && l.size+int64(need) > l.opts.SegmentBytes {
		if err := l.rotateLocked(); err != nil {
			l.mu.Unlock()
			return 0, err
		}
	}
	if cap(l.buf) < need {
		l.buf = make([]byte, need)
	}
	buf := l.buf[:need]
	putHeader(buf, rec)
	copy(buf[headerSize:], rec)
	if cap(l.buf) > 4<<20 {
		l.buf = nil // do not pin the buffer of one huge record
	}
	if _, err := l.f.Write(buf); err != nil {
		l.recoverLocked(err)
		l.mu.Unlock()
		return 0, fmt.Errorf("write WAL: %w", err)
	}
	l.size += int64(need)
	l.written += uint64(need)
	seq, mine, f := l.seq, l.written, l.f
	l.dirty = true
	l.mu.Unlock()
	if l.opts.Fsync == FsyncAlways {
		if err := l.syncUpTo(mine, f); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// putHeader writes the header of rec into dst[:headerSize].
func putHeader(dst, rec []byte) {
	binary.LittleEndian.PutUint32(dst[0:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(dst[4:8], crc32.Checksum(rec, castagnoli))
}

// recoverLocked undoes a failed write (a full disk may leave part of the record in the file): it cuts the
// segment back to its last whole record, or, if that fails, moves on to a new segment, where the partial record
// ends the old one as a torn tail. If neither works the log refuses further appends.
func (l *Log) recoverLocked(werr error) {
	terr := l.f.Truncate(l.size)
	if terr == nil {
		return
	}
	f, err := l.create(l.seq + 1)
	if err != nil {
		l.failed = fmt.Errorf("WAL segment %s is damaged after a failed write (%v) and could not be cut back (%v) nor replaced: %w",
			SegmentName(l.seq), werr, terr, err)
		return
	}
	_ = l.f.Close()
	l.f, l.seq, l.size = f, l.seq+1, 0
}

// syncUpTo fsyncs unless another caller's fsync already covered off: concurrent appends share one fsync.
func (l *Log) syncUpTo(off uint64, f *os.File) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= off {
		return nil
	}
	if err := l.syncDirIfCreated(); err != nil {
		return err
	}
	l.mu.Lock()
	target, cur := l.written, l.f
	l.mu.Unlock()
	// A rotation since the append fsynced f before closing it: ErrClosed means that was done.
	if cur != f {
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("fsync WAL: %w", err)
		}
	}
	if cur != nil {
		if err := cur.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("fsync WAL: %w", err)
		}
	}
	l.synced = target
	return nil
}

// Sync fsyncs the current segment if records were appended since the last fsync.
func (l *Log) Sync() error {
	l.mu.Lock()
	if !l.dirty || l.f == nil {
		l.mu.Unlock()
		return nil
	}
	l.dirty = false
	f := l.f
	l.mu.Unlock()
	if err := l.syncDirIfCreated(); err != nil {
		l.mu.Lock()
		l.dirty = true
		l.mu.Unlock()
		return err
	}
	// Outside the lock: appends go on during the fsync. A segment closed meanwhile was fsynced by Rotate or Close.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		l.mu.Lock()
		l.dirty = true
		l.mu.Unlock()
		return fmt.Errorf("fsync WAL: %w", err)
	}
	return nil
}

func (l *Log) syncLoop() {
	defer close(l.done)
	t := time.NewTicker(l.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if err := l.Sync(); err != nil {
				l.logger.Error("WAL fsync failed; records of the last interval may not survive a power cut",
					zap.String("dir", l.dir), zap.Error(err))
			}
		}
	}
}

// Rotate starts a new segment and returns its number: every record appended before Rotate is in a segment below
// it, and every record appended after in that segment or later. It starts one even when the current segment is
// empty, so that two rotations never return the same number (the log store tells records flushed at one
// rotation from those of the next by it).
func (l *Log) Rotate() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, ErrClosed
	}
	if err := l.rotateLocked(); err != nil {
		return 0, err
	}
	return l.seq, nil
}

func (l *Log) rotateLocked() error {
	f, err := l.create(l.seq + 1)
	if err != nil {
		return err
	}
	old := l.f
	l.f, l.seq, l.size, l.dirty = f, l.seq+1, 0, false
	// The old segment is fsynced and closed in the background, as Prometheus' WAL does: under l.mu every
	// append would wait for it, and the log store rotates with pushes held off. An append whose record is in
	// it fsyncs it itself (syncUpTo) and takes ErrClosed for "already fsynced": the file is closed only after a
	// successful fsync.
	l.retiring.Add(1)
	go l.retire(old)
	return nil
}

// retire fsyncs (unless the policy is never) and closes a segment rotated out. A failed fsync leaves the file
// open, so that appends of records in it see the error from their own fsync, and stops further appends.
func (l *Log) retire(f *os.File) {
	defer l.retiring.Done()
	if l.opts.Fsync != FsyncNever {
		if err := f.Sync(); err != nil {
			err = fmt.Errorf("fsync WAL segment %s: %w", filepath.Base(f.Name()), err)
			l.logger.Error("WAL fsync of a rotated segment failed; the log takes no more appends", zap.String("dir", l.dir), zap.Error(err))
			l.mu.Lock()
			l.unretired = append(l.unretired, f)
			if l.failed == nil {
				l.failed = err
			}
			if l.retireErr == nil {
				l.retireErr = err
			}
			l.mu.Unlock()
			return
		}
	}
	_ = f.Close()
}

// Current returns the number of the segment being appended to.
func (l *Log) Current() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Size returns the bytes in the current segment.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Segments returns the numbers of the segments on disk, ascending, the current one included.
func (l *Log) Segments() ([]uint64, error) {
	segs, _, _, err := l.list()
	return segs, err
}

// Remove deletes segment seq, whose records the store no longer needs. The current segment is not removed.
func (l *Log) Remove(seq uint64) error {
	if seq == l.Current() {
		return fmt.Errorf("remove WAL segment %s: it is being written", SegmentName(seq))
	}
	if err := os.Remove(filepath.Join(l.dir, SegmentName(seq))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove WAL segment: %w", err)
	}
	return nil
}

// Checkpoint writes checkpoint seq, whose records stand for everything appended before segment seq (seq is what
// Rotate returned), and, once it is durable, deletes the segments before seq and older checkpoints. Replay then
// reads the checkpoint first and the segments from seq on.
func (l *Log) Checkpoint(seq uint64, records [][]byte) error {
	return l.CheckpointFrom(seq, sliceRecords(records))
}

// CheckpointFrom is Checkpoint with the records made one at a time: next returns the next record, or nil when
// there are none left. Each record is written before next is called again (next may reuse its buffer), so a
// store need not hold a copy of everything the checkpoint stands for. An error from next abandons the
// checkpoint: nothing is replaced.
func (l *Log) CheckpointFrom(seq uint64, next func() ([]byte, error)) error {
	if cur := l.Current(); seq > cur {
		return fmt.Errorf("write WAL checkpoint %d: beyond the current segment %d", seq, cur)
	}
	if err := writeCheckpoint(l.dir, seq, next); err != nil {
		return err
	}
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("read WAL directory: %w", err)
	}
	for _, e := range ents {
		s, isSeg := parseSegment(e.Name())
		old, isCP := parseCheckpoint(e.Name())
		if isSeg && s < seq || isCP && old != seq {
			if err := os.Remove(filepath.Join(l.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				l.logger.Warn("Cannot remove a WAL file a checkpoint replaced; the next checkpoint tries again",
					zap.String("dir", l.dir), zap.String("file", e.Name()), zap.Error(err))
			}
		}
	}
	return nil
}

// WriteCheckpoint writes checkpoint seq of the log in dir atomically and durably (a temporary file, fsync, rename,
// directory fsync). Log.Checkpoint calls it; a store migrating files of an earlier release may call it before
// Open.
func WriteCheckpoint(dir string, seq uint64, records [][]byte) error {
	return writeCheckpoint(dir, seq, sliceRecords(records))
}

// sliceRecords hands out records one at a time, for writeCheckpoint.
func sliceRecords(records [][]byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		if len(records) == 0 {
			return nil, nil
		}
		r := records[0]
		records = records[1:]
		if r == nil {
			r = []byte{} // an empty record is a record, not the end
		}
		return r, nil
	}
}

func writeCheckpoint(dir string, seq uint64, next func() ([]byte, error)) error {
	name := CheckpointName(seq)
	tmp := filepath.Join(dir, name+tmpSuffix)
	if err := writeRecords(tmp, next); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write WAL checkpoint: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("install WAL checkpoint: %w", err)
	}
	// The checkpoint must be durable before the segments it replaces go.
	return syncDir(dir)
}

// writeRecords writes the records next makes to a new file at path and fsyncs it.
func writeRecords(path string, next func() ([]byte, error)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var hdr [headerSize]byte
	for {
		r, err := next()
		if err != nil {
			f.Close()
			return err
		}
		if r == nil {
			break
		}
		putHeader(hdr[:], r)
		_, _ = bw.Write(hdr[:])
		_, _ = bw.Write(r)
	}
	err = bw.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops the fsync timer, fsyncs the current segment (unless the policy is never) and closes it; an empty
// segment is removed. Append fails afterwards.
func (l *Log) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.retiring.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.unretired {
		_ = f.Close()
	}
	l.unretired = nil
	if l.f == nil {
		return nil
	}
	err := l.retireErr
	if l.opts.Fsync != FsyncNever {
		if e := l.f.Sync(); e != nil {
			err = fmt.Errorf("fsync WAL: %w", e)
		}
		if l.dirSync {
			if e := syncDir(l.dir); e != nil && err == nil {
				err = e
			}
			l.dirSync = false
		}
	}
	if e := l.f.Close(); e != nil && err == nil {
		err = fmt.Errorf("close WAL: %w", e)
	}
	if l.size == 0 {
		_ = os.Remove(filepath.Join(l.dir, SegmentName(l.seq)))
	}
	l.f = nil
	return err
}

// Position says where a replayed record was.
type Position struct {
	// Segment is the segment number, or for a checkpoint record the checkpoint's number (its records stand for
	// what was appended before that segment).
	Segment uint64
	// Checkpoint is set for the records of the checkpoint.
	Checkpoint bool
}

// Damage is a file whose replay stopped before its end.
type Damage struct {
	File     string
	Offset   int64 // where replay stopped: the first byte not replayed
	Lost     int64 // bytes from Offset to the end of the file
	Replayed int   // records of this file replayed before Offset
}

// Replayed says what Replay read.
type Replayed struct {
	Records int
	// Torn lists files that ended in an incomplete record (the write in progress when the process stopped,
	// never acknowledged); the partial record was cut off.
	Torn []Damage
	// Corrupt lists files with a complete record that fails its checksum: damage on disk. The records from
	// there to the end of that file were not replayed.
	Corrupt []Damage
}

// Replay calls fn with every intact record of the newest checkpoint and of the segments from it on, up to the
// segment Open started, in order. An error from fn stops replay and is returned.
func (l *Log) Replay(fn func(pos Position, rec []byte) error) (Replayed, error) {
	var res Replayed
	segs, cp, has, err := l.list()
	if err != nil {
		return res, err
	}
	cur := l.Current()
	type file struct {
		name string
		pos  Position
	}
	var files []file
	if has {
		files = append(files, file{CheckpointName(cp), Position{Segment: cp, Checkpoint: true}})
	}
	for _, s := range segs {
		if (!has || s >= cp) && s < cur {
			files = append(files, file{SegmentName(s), Position{Segment: s}})
		}
	}
	for _, f := range files {
		p := filepath.Join(l.dir, f.name)
		pos := f.pos
		n, end, tail, err := ReadFile(p, func(rec []byte) error { return fn(pos, rec) })
		res.Records += n
		if err != nil {
			return res, fmt.Errorf("replay %s: %w", p, err)
		}
		if tail == Clean {
			continue
		}
		var lost int64
		if fi, err := os.Stat(p); err == nil {
			lost = fi.Size() - end
		}
		d := Damage{File: p, Offset: end, Lost: lost, Replayed: n}
		if tail == Corrupt {
			res.Corrupt = append(res.Corrupt, d)
			continue
		}
		res.Torn = append(res.Torn, d)
		if err := os.Truncate(p, end); err != nil {
			return res, fmt.Errorf("cut the torn tail of %s: %w", p, err)
		}
	}
	return res, nil
}

// Tail says how a file of records ends.
type Tail int

const (
	// Clean: the file ends after a whole record (or is empty).
	Clean Tail = iota
	// Torn: the last record is incomplete.
	Torn
	// Corrupt: a complete record fails its checksum, or its header is absurd.
	Corrupt
)

// ReadFile calls fn with every intact record of a segment or checkpoint file, in order, each in its own slice
// (fn may keep it). It returns the number of records, the offset where reading stopped and how the file ended
// there. An error from fn stops reading and is returned.
func ReadFile(path string, fn func(rec []byte) error) (n int, end int64, tail Tail, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, Clean, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, Clean, err
	}
	return ReadRecords(bufio.NewReaderSize(f, 1<<20), fi.Size(), fn)
}

// ReadRecords is ReadFile over r, which holds size bytes: a length beyond them is a torn record, for which nothing
// is allocated.
func ReadRecords(r io.Reader, size int64, fn func(rec []byte) error) (n int, end int64, tail Tail, err error) {
	var hdr [headerSize]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return n, end, Clean, nil
			}
			return n, end, Torn, nil
		}
		l := binary.LittleEndian.Uint32(hdr[0:4])
		if l > maxRecord {
			return n, end, Corrupt, nil
		}
		if int64(l) > size-end-headerSize {
			return n, end, Torn, nil // runs past the end of the file: do not allocate for it
		}
		rec := make([]byte, l)
		if _, err := io.ReadFull(r, rec); err != nil {
			return n, end, Torn, nil
		}
		if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return n, end, Corrupt, nil
		}
		if err := fn(rec); err != nil {
			return n, end, Clean, err
		}
		n++
		end += headerSize + int64(l)
	}
}
