package generator

import (
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

	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// On-disk layout of <wal.dir>:
//
//	checkpoint        the whole state as of a point in time, and the sequence number of the log that follows it
//	wal-<seq>.log     records accepted since that checkpoint: batches of span facts and ticks, in apply order
//
// A record is framed as [uint32 length][uint32 CRC-32C of the payload][payload]. Opening the generator loads
// the checkpoint and replays wal-<seq>.log through the same apply/tick code the live process ran, so the
// state after a crash is the state at the last acknowledged batch. A torn record at the tail (a crash in the
// middle of a write) is cut off: it was never acknowledged.

const (
	checkpointName  = "checkpoint"
	checkpointMagic = "SPGENCP2"
	// checkpointMagicV1 is the first format (integer bucket counts, no native buckets, no edge dimensions);
	// it is still read.
	checkpointMagicV1 = "SPGENCP1"
	frameHeader       = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type wal struct {
	dir  string
	seq  uint64
	f    *os.File
	size int64
	sync bool
	buf  []byte
}

func walName(seq uint64) string { return fmt.Sprintf("wal-%020d.log", seq) }

// appendRecord writes one framed record and, with sync "always", fsyncs it. On a failed write it cuts the
// file back so that the log never holds a torn record in the middle.
func (w *wal) appendRecord(payload []byte) error {
	w.buf = w.buf[:0]
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(payload)))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, crc32.Checksum(payload, castagnoli))
	w.buf = append(w.buf, payload...)
	if _, err := w.f.Write(w.buf); err != nil {
		_ = w.f.Truncate(w.size)
		_, _ = w.f.Seek(w.size, io.SeekStart)
		return fmt.Errorf("append generator wal: %w", err)
	}
	if w.sync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("sync generator wal: %w", err)
		}
	}
	w.size += int64(len(w.buf))
	return nil
}

func (w *wal) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// readRecords returns the intact records of a log file and the offset where they end.
func readRecords(path string) (records [][]byte, end int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	off := 0
	for off+frameHeader <= len(data) {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n > len(data)-off-frameHeader {
			break
		}
		p := data[off+frameHeader : off+frameHeader+n]
		if crc32.Checksum(p, castagnoli) != sum {
			break
		}
		records = append(records, p)
		off += frameHeader + n
	}
	return records, int64(off), nil
}

// walTail tells damage from a torn tail after readRecords stopped at end: a torn tail is an incomplete last
// record; a record that is complete but was not accepted failed its checksum.
func walTail(path string, end int64) (corrupt bool, dropped int64) {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) <= end {
		return false, 0
	}
	rest := data[end:]
	dropped = int64(len(rest))
	if len(rest) < frameHeader {
		return false, dropped
	}
	n := int(binary.LittleEndian.Uint32(rest))
	return n <= len(rest)-frameHeader, dropped
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openWAL loads the checkpoint, replays the log into g and leaves the log open for appending.
// Called from New with g.mu not yet shared.
func (g *Generator) openWAL() error {
	dir := g.cfg.WAL.Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create generator wal dir: %w", err)
	}
	var seq uint64
	cp, err := os.ReadFile(filepath.Join(dir, checkpointName))
	switch {
	case err == nil:
		if seq, err = g.decodeCheckpoint(cp); err != nil {
			return fmt.Errorf("load generator checkpoint %s: %w", filepath.Join(dir, checkpointName), err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("read generator checkpoint: %w", err)
	}

	path := filepath.Join(dir, walName(seq))
	records, end, err := readRecords(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read generator wal: %w", err)
	}
	if corrupt, dropped := walTail(path, end); corrupt {
		g.logger.Error("generator wal: a complete record fails its checksum; the span-metric updates after it are lost and the file is cut there",
			zap.String("file", path), zap.Int64("offset", end), zap.Int64("bytes_dropped", dropped), zap.Int("records_replayed", len(records)))
	} else if dropped > 0 {
		g.logger.Warn("generator wal: cutting a torn last record (the write in progress when the process stopped)",
			zap.String("file", path), zap.Int64("offset", end), zap.Int64("bytes_dropped", dropped))
	}
	replayed := 0
	for i, r := range records {
		b, now, err := decodeRecord(r)
		if err != nil {
			// The CRC matched, so this is not a torn write but a record this version cannot read: stop here
			// rather than apply a log out of order.
			g.logger.Warn("generator wal: undecodable record, ignoring it and the rest of the log",
				zap.String("file", path), zap.Int("record", i), zap.Error(err))
			break
		}
		if b != nil {
			g.apply(b)
		} else {
			g.tick(now)
		}
		replayed++
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open generator wal: %w", err)
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return fmt.Errorf("cut torn tail of generator wal: %w", err)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek generator wal: %w", err)
	}
	g.wal = &wal{dir: dir, seq: seq, f: f, size: end, sync: g.cfg.WAL.Sync == SyncAlways}
	removeOtherLogs(dir, seq, g.logger)
	// A tenant id an earlier release accepted and the stores now refuse (".hidden") would be flushed and
	// refused downstream at every flush: its state goes.
	for id, t := range g.tenants {
		if err := tenant.Validate(id); err != nil {
			g.active -= len(t.series)
			delete(g.tenants, id)
			g.logger.Warn("generator: dropped the state of a tenant whose id is not valid", zap.String("tenant", id), zap.Error(err))
		}
	}
	// Restored series were emitted before the restart, so their zero point is already stored; emitting it
	// again would land before samples the metrics store already has.
	for _, t := range g.tenants {
		for _, s := range t.series {
			s.emitted = true
		}
	}
	if replayed > 0 || len(cp) > 0 {
		g.logger.Info("generator state restored", zap.Int("replayed_records", replayed),
			zap.Int("active_series", g.active))
	}
	return nil
}

func removeOtherLogs(dir string, keep uint64, logger *zap.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "wal-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "wal-"), ".log"), 10, 64)
		if err != nil || n == keep {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			logger.Warn("generator wal: cannot remove old log", zap.String("file", name), zap.Error(err))
		}
	}
}

// checkpointLocked writes the whole state and starts a new, empty log. Order matters for crash safety: the new
// log exists before the checkpoint that names it, and the old log goes only after the checkpoint is durable.
func (g *Generator) checkpointLocked() error {
	w := g.wal
	next := w.seq + 1
	newPath := filepath.Join(w.dir, walName(next))
	nf, err := os.OpenFile(newPath, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("create generator wal: %w", err)
	}
	e := &encoder{b: make([]byte, 0, 64+g.active*64)}
	g.encodeCheckpoint(e, next)
	tmp := filepath.Join(w.dir, checkpointName+".tmp")
	if err := writeFileSync(tmp, e.b); err != nil {
		nf.Close()
		return fmt.Errorf("write generator checkpoint: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, checkpointName)); err != nil {
		nf.Close()
		return fmt.Errorf("install generator checkpoint: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		nf.Close()
		return fmt.Errorf("sync generator wal dir: %w", err)
	}
	old := filepath.Join(w.dir, walName(w.seq))
	_ = w.f.Close()
	w.f, w.seq, w.size = nf, next, 0
	_ = os.Remove(old)
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (g *Generator) encodeCheckpoint(e *encoder, seq uint64) {
	e.raw([]byte(checkpointMagic))
	e.uvarint(seq)
	ids := make([]string, 0, len(g.tenants))
	for id := range g.tenants {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		ts := g.tenants[id]
		e.str(id)
		e.uvarint(uint64(len(ts.series)))
		for _, s := range ts.series {
			e.byte1(s.metric)
			e.pairs(s.labels)
			e.varint(s.start)
			e.varint(s.updated)
			e.f64(s.value)
			e.uvarint(uint64(len(s.counts)))
			for _, c := range s.counts {
				e.f64(c)
			}
			e.f64(s.sum)
			e.f64(s.count)
			e.varint(int64(s.nScale))
			e.f64(s.nZero)
			e.varint(int64(s.nOffset))
			e.uvarint(uint64(len(s.nCounts)))
			for _, c := range s.nCounts {
				e.f64(c)
			}
			e.boolean(s.emitted)
		}
		keys := make([]edgeKey, 0, len(ts.edges))
		for k := range ts.edges {
			keys = append(keys, k)
		}
		e.uvarint(uint64(len(keys)))
		for _, k := range keys {
			ed := ts.edges[k]
			e.raw(k.trace[:])
			e.raw(k.span[:])
			e.varint(ed.created)
			e.str(ed.client)
			e.str(ed.server)
			e.varint(ed.clientDur)
			e.varint(ed.serverDur)
			e.boolean(ed.failed)
			e.boolean(ed.messaging)
			e.str(ed.peer)
			e.boolean(ed.hasClient)
			e.boolean(ed.hasServer)
			e.boolean(ed.serverSeen)
			e.raw(ed.traceID[:])
			e.raw(ed.spanID[:])
			e.boolean(ed.serverLast)
			e.varint(ed.clientEnd)
			e.varint(ed.serverStart)
			e.strs(ed.cdims)
			e.strs(ed.sdims)
			e.f64(ed.mult)
			e.str(ed.virtual)
		}
	}
}

func (g *Generator) decodeCheckpoint(p []byte) (uint64, error) {
	v1 := len(p) >= len(checkpointMagicV1) && string(p[:len(checkpointMagicV1)]) == checkpointMagicV1
	if !v1 && (len(p) < len(checkpointMagic) || string(p[:len(checkpointMagic)]) != checkpointMagic) {
		return 0, errors.New("not a generator checkpoint (bad magic)")
	}
	d := &decoder{b: p[len(checkpointMagic):]}
	seq := d.uvarint()
	nt := d.length(2)
	for range nt {
		id := d.str()
		ts := newTenantState()
		ns := d.length(8)
		for range ns {
			s := &series{}
			s.metric = d.byte1()
			s.labels = d.pairs()
			s.start = d.varint()
			s.updated = d.varint()
			s.value = d.f64()
			if nc := d.length(1); nc > 0 {
				s.counts = make([]float64, nc)
				for i := range s.counts {
					if v1 {
						s.counts[i] = float64(d.uvarint())
					} else {
						s.counts[i] = d.f64()
					}
				}
			}
			s.sum = d.f64()
			if v1 {
				s.count = float64(d.uvarint())
				s.nScale = g.nativeScale
				s.emitted = true
			} else {
				s.count = d.f64()
				s.nScale = int32(d.varint())
				s.nZero = d.f64()
				s.nOffset = int32(d.varint())
				if nn := d.length(8); nn > 0 {
					s.nCounts = make([]float64, nn)
					for i := range s.nCounts {
						s.nCounts[i] = d.f64()
					}
				}
				s.emitted = d.boolean()
			}
			if d.err != nil {
				break
			}
			if int(s.metric) >= numMetrics {
				return 0, fmt.Errorf("series of unknown metric %d", s.metric)
			}
			if metricKinds[s.metric] == kindHistogram && len(s.counts) != len(g.buckets[s.metric])+1 {
				// Buckets changed in the config: the old counts cannot be mapped, start this series afresh.
				continue
			}
			ts.series[string(appendSeriesKey(nil, int(s.metric), s.labels))] = s
		}
		ne := d.length(24)
		for range ne {
			var k edgeKey
			ed := &edge{}
			d.raw(k.trace[:])
			d.raw(k.span[:])
			ed.created = d.varint()
			ed.client = d.str()
			ed.server = d.str()
			ed.clientDur = d.varint()
			ed.serverDur = d.varint()
			ed.failed = d.boolean()
			ed.messaging = d.boolean()
			ed.peer = d.str()
			ed.hasClient = d.boolean()
			ed.hasServer = d.boolean()
			ed.serverSeen = d.boolean()
			d.raw(ed.traceID[:])
			d.raw(ed.spanID[:])
			ed.mult = 1
			if !v1 {
				ed.serverLast = d.boolean()
				ed.clientEnd = d.varint()
				ed.serverStart = d.varint()
				ed.cdims = d.strs()
				ed.sdims = d.strs()
				ed.mult = d.f64()
				ed.virtual = d.str()
			}
			ts.edges[k] = ed
		}
		if d.err != nil {
			return 0, d.err
		}
		g.tenants[id] = ts
		g.active += len(ts.series)
		g.relink(ts)
	}
	if d.err != nil {
		return 0, d.err
	}
	return seq, nil
}

// appendSeriesKey appends the map key of a series: metric id, then name\xfe value\xff per label.
func appendSeriesKey(buf []byte, m int, labels []labelPair) []byte {
	buf = append(buf, byte(m))
	for _, p := range labels {
		buf = append(buf, p.name...)
		buf = append(buf, 0xfe)
		buf = append(buf, p.value...)
		buf = append(buf, 0xff)
	}
	return buf
}
