package generator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/wal"
)

// The generator's durability is a write-ahead log (internal/wal) in <wal.dir>: each record is a batch of span
// facts or a tick, in apply order, and a checkpoint holds the whole state as one record. Opening the generator
// loads the checkpoint and replays the records after it through the same apply/tick code the live process ran,
// so the state after a crash is the state at the last acknowledged batch.
//
// Before the shared WAL the directory held "checkpoint" (the state, in the same encoding) and
// "wal-<seq>.log" (the records after it, in the same framing); openWAL renames them once (migrateLegacy).

const (
	checkpointMagic = "SPGENCP2"
	// checkpointMagicV1 is the first format (integer bucket counts, no native buckets, no edge dimensions);
	// it is still read.
	checkpointMagicV1 = "SPGENCP1"
	// legacyCheckpoint and legacyLog name the files of the release before the shared WAL.
	legacyCheckpoint = "checkpoint"
	legacyLogPrefix  = "wal-"
	legacyLogSuffix  = ".log"
)

// openWAL loads the checkpoint, replays the log into g and leaves the log open for appending.
// Called from New with g.mu not yet shared.
func (g *Generator) openWAL() error {
	dir := g.cfg.WAL.Dir
	_, _, deprecated := g.cfg.WAL.Effective()
	for _, m := range deprecated {
		g.logger.Warn(m)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create generator wal dir: %w", err)
	}
	if err := migrateLegacy(dir); err != nil {
		return err
	}
	opts := g.cfg.WAL.Options()
	opts.Logger = g.logger
	w, err := wal.Open(dir, opts)
	if err != nil {
		return fmt.Errorf("open generator wal: %w", err)
	}
	replayed, restored, stop := 0, false, false
	res, err := w.Replay(func(pos wal.Position, r []byte) error {
		if stop {
			return nil
		}
		if pos.Checkpoint {
			if _, err := g.decodeCheckpoint(r); err != nil {
				return fmt.Errorf("load generator checkpoint %d: %w", pos.Segment, err)
			}
			restored = true
			return nil
		}
		if !g.replayRecord(r, pos.Segment, replayed) {
			stop = true
			return nil
		}
		replayed++
		return nil
	})
	if err != nil {
		_ = w.Close()
		return err
	}
	for _, d := range res.Corrupt {
		if strings.HasPrefix(filepath.Base(d.File), "checkpoint.") {
			_ = w.Close()
			return fmt.Errorf("load generator checkpoint %s: a record fails its checksum at offset %d", d.File, d.Offset)
		}
		g.logger.Error("generator wal: a complete record fails its checksum; the span-metric updates after it in this segment are lost",
			zap.String("file", d.File), zap.Int64("offset", d.Offset), zap.Int64("bytes_dropped", d.Lost), zap.Int("records_replayed", d.Replayed))
	}
	for _, d := range res.Torn {
		g.logger.Warn("generator wal: cut a torn last record (the write in progress when the process stopped)",
			zap.String("file", d.File), zap.Int64("offset", d.Offset), zap.Int64("bytes_dropped", d.Lost))
	}
	g.wal = w
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
	if replayed > 0 || restored {
		g.logger.Info("generator state restored", zap.Int("replayed_records", replayed),
			zap.Int("active_series", g.active))
	}
	return nil
}

// replayRecord applies one logged batch or tick. A record whose checksum matched but that does not decode is
// one this version cannot read: it and the rest of the log are ignored rather than applied out of order.
func (g *Generator) replayRecord(r []byte, segment uint64, i int) bool {
	b, now, err := decodeRecord(r)
	if err != nil {
		g.logger.Warn("generator wal: undecodable record, ignoring it and the rest of the log",
			zap.Uint64("segment", segment), zap.Int("record", i), zap.Error(err))
		return false
	}
	if b != nil {
		g.apply(b)
	} else {
		g.tick(now)
	}
	return true
}

// migrateLegacy turns the files of the release before the shared WAL into the new log's: "checkpoint" (the
// state, followed by log <seq>) becomes checkpoint <seq+1> and "wal-<seq>.log" segment <seq+1>, as the new log
// numbers from 1. Each step can be repeated, so a crash in the middle is finished at the next start.
func migrateLegacy(dir string) error {
	var seq uint64
	cp, err := os.ReadFile(filepath.Join(dir, legacyCheckpoint))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read generator checkpoint: %w", err)
	}
	if err == nil {
		n := 0
		if len(cp) > len(checkpointMagic) {
			seq, n = binary.Uvarint(cp[len(checkpointMagic):])
		}
		if n <= 0 {
			return fmt.Errorf("load generator checkpoint %s: not a generator checkpoint", filepath.Join(dir, legacyCheckpoint))
		}
	}
	logs, err := filepath.Glob(filepath.Join(dir, legacyLogPrefix+"*"+legacyLogSuffix))
	if err != nil {
		return err
	}
	for _, p := range logs {
		if p != filepath.Join(dir, fmt.Sprintf("%s%020d%s", legacyLogPrefix, seq, legacyLogSuffix)) {
			err = os.Remove(p) // a log older than the checkpoint: the earlier release deleted these too
		} else {
			err = os.Rename(p, filepath.Join(dir, wal.SegmentName(seq+1)))
		}
		if err != nil {
			return fmt.Errorf("migrate generator wal %s: %w", p, err)
		}
	}
	if cp == nil {
		return nil
	}
	if err := wal.WriteCheckpoint(dir, seq+1, [][]byte{cp}); err != nil {
		return fmt.Errorf("migrate generator checkpoint: %w", err)
	}
	return os.Remove(filepath.Join(dir, legacyCheckpoint))
}

// checkpointLocked writes the whole state and lets the log before it go: the new segment exists before the
// checkpoint that stands for the ones before it, and those go only once the checkpoint is durable.
func (g *Generator) checkpointLocked() error {
	seq, err := g.wal.Rotate()
	if err != nil {
		return fmt.Errorf("rotate generator wal: %w", err)
	}
	e := &encoder{b: make([]byte, 0, 64+g.active*64)}
	g.encodeCheckpoint(e, seq)
	if err := g.wal.Checkpoint(seq, [][]byte{e.b}); err != nil {
		return fmt.Errorf("write generator checkpoint: %w", err)
	}
	return nil
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
