package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// This file holds flushing: cutting heads into chunks, uploading them, and checkpointing the WAL behind them.

// Flush cuts heads that are due (all of them when force is set) into chunks in the bucket, writes their index,
// and checkpoints the WAL so that it only holds what is not yet in the bucket.
func (s *Store) Flush(ctx context.Context, force bool) error { return s.flush(ctx, force, false) }

// flush is Flush. An early flush (a head reached the chunk size, or all heads are over MaxHeadBytes) cuts heads
// of half the target size too, so that streams growing together are cut together; under memory pressure a
// quarter.
//
// The WAL checkpoint rewrites every head into a new file and fsyncs it and the directory, and it takes pushes'
// fsyncs' turn on the disk: written at every 30 s tick it stalled pushes for 10-20 ms each time, to save nothing
// when little was written. So a flush checkpoints only when forced, under memory pressure, or once the WAL
// since the last checkpoint holds max_head_bytes (which bounds both the WAL on disk and the replay after a
// crash); otherwise the cut streams' records are skipped on replay by their chunks' WALSeg. A flush with nothing
// due and no checkpoint to write does not rotate the WAL, so pushes are not held off at all.
func (s *Store) flush(ctx context.Context, force, early bool) error {
	pressure := early && s.cfg.MaxHeadBytes > 0 && s.headBytes.Load() > int64(s.cfg.MaxHeadBytes)
	minCut := s.cfg.ChunkTargetSize
	switch {
	case pressure:
		minCut = s.cfg.ChunkTargetSize / 4
	case early:
		minCut = s.cfg.ChunkTargetSize / 2
	}
	wantCheckpoint := force || pressure || s.cfg.MaxHeadBytes <= 0 && !early ||
		s.cfg.MaxHeadBytes > 0 && s.walBytes.Load() >= int64(s.cfg.MaxHeadBytes)
	if !wantCheckpoint && !s.sealAndCheckDue(minCut) {
		return nil
	}
	s.ingestMu.Lock()
	next, err := s.wal.Rotate()
	seg := int(next)
	// Pushes are held off: what the WAL took so far is before seg, which a checkpoint here would cover.
	walBefore := s.walBytes.Swap(0)
	type marked struct {
		td *tenantDB
		st *stream
	}
	var all []marked
	s.mu.RLock()
	for _, td := range s.tenants {
		td.mu.RLock()
		for _, sts := range td.streams {
			for _, st := range sts {
				st.mu.Lock()
				st.seal()
				st.mark = len(st.blocks)
				st.mu.Unlock()
				all = append(all, marked{td, st})
			}
		}
		td.mu.RUnlock()
	}
	s.mu.RUnlock()
	s.ingestMu.Unlock()
	checkpointed := false
	defer func() {
		if !checkpointed {
			s.walBytes.Add(walBefore)
		}
	}()
	if err != nil {
		return fmt.Errorf("rotate WAL: %w", err)
	}
	now := s.now()
	newMetas := map[string][]*chunkMeta{}
	var flushErr error
	for _, m := range all {
		st := m.st
		st.mu.Lock()
		due := st.mark > 0 && (force || st.headBytes >= minCut || now.Sub(st.headFirst) >= s.cfg.MaxChunkAge || now.Sub(st.lastAppend) >= s.cfg.ChunkIdlePeriod)
		var blocks []headBlock
		if due {
			// Pushes only append beyond the mark, and a cut replaces st.blocks: the marked blocks can be read
			// without the lock.
			blocks = st.blocks[:st.mark:st.mark]
		}
		st.mu.Unlock()
		if !due {
			continue
		}
		metas, err := s.cutBlocks(ctx, m.td.id, st, blocks)
		if err != nil {
			s.m.flushFailures.Inc()
			flushErr = errors.Join(flushErr, err)
			continue
		}
		for _, c := range metas {
			c.WALSeg = seg
		}
		newMetas[m.td.id] = append(newMetas[m.td.id], metas...)
		st.mu.Lock()
		st.blocks = append([]headBlock(nil), st.blocks[st.mark:]...)
		s.headBytes.Add(-int64(st.headBytes))
		st.headBytes, st.headLen = st.tailBytes, len(st.tail)
		for _, b := range st.blocks {
			st.headBytes += b.lineBytes
			st.headLen += b.n
		}
		s.headBytes.Add(int64(st.headBytes))
		st.headFirst = now
		st.mark = 0
		st.chunks = append(st.chunks, metas...)
		st.mu.Unlock()
	}
	for tid, metas := range newMetas {
		if err := s.writeIndex(ctx, tid, metas); err != nil {
			// Without an index the chunks are invisible after a restart: keep the WAL as it is.
			return errors.Join(flushErr, err)
		}
	}
	if s.afterIndexHook != nil {
		if err := s.afterIndexHook(); err != nil {
			return errors.Join(flushErr, err)
		}
	}
	if !wantCheckpoint {
		for _, m := range all {
			m.st.mu.Lock()
			m.st.mark = 0
			m.st.mu.Unlock()
		}
		return flushErr
	}
	// Checkpoint: what was in the heads before the rotation and is still not in a chunk. Each sealed block
	// becomes one record, made from its compressed bytes when the checkpoint file reaches it: decoding every
	// head into entries and holding their records until the file was written cost about twice the heads' line
	// bytes at once, the largest transient of ingest.
	type cpStream struct {
		tenant string
		lbs    labels.Labels
		blocks []headBlock
	}
	var cps []cpStream
	for _, m := range all {
		st := m.st
		st.mu.Lock()
		if st.mark > 0 {
			// Sealed blocks never change and a cut replaces st.blocks: the marked ones can be read unlocked.
			cps = append(cps, cpStream{m.td.id, st.lbs, st.blocks[:st.mark:st.mark]})
		}
		st.mark = 0
		st.mu.Unlock()
	}
	var rec []byte
	si, bi := 0, 0
	nextRec := func() ([]byte, error) {
		for si < len(cps) && bi == len(cps[si].blocks) {
			si, bi = si+1, 0
		}
		if si == len(cps) {
			return nil, nil
		}
		c := &cps[si]
		var err error
		rec, err = appendBlockRecord(rec[:0], c.tenant, c.lbs, &c.blocks[bi])
		bi++
		return rec, err
	}
	if err := s.wal.CheckpointFrom(next, nextRec); err != nil {
		return errors.Join(flushErr, err)
	}
	checkpointed = true
	return flushErr
}

// sealAndCheckDue seals every stream's open tail into a block (as each flush does) and reports whether any
// head is due for a cut at minCut, by age or by idleness. It holds each stream's lock only, not ingestMu.
func (s *Store) sealAndCheckDue(minCut int) bool {
	now := s.now()
	due := false
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, td := range s.tenants {
		td.mu.RLock()
		for _, sts := range td.streams {
			for _, st := range sts {
				st.mu.Lock()
				st.seal()
				due = due || len(st.blocks) > 0 && (st.headBytes >= minCut || now.Sub(st.headFirst) >= s.cfg.MaxChunkAge || now.Sub(st.lastAppend) >= s.cfg.ChunkIdlePeriod)
				st.mu.Unlock()
			}
		}
		td.mu.RUnlock()
	}
	return due
}

var chunkSeq struct {
	sync.Mutex
	n uint64
}

func nextSeq() uint64 {
	chunkSeq.Lock()
	defer chunkSeq.Unlock()
	chunkSeq.n++
	return chunkSeq.n
}

// cutBlocks writes a head's marked blocks as chunks, re-encoding them as chunk payloads without building
// entries and their metadata.
func (s *Store) cutBlocks(ctx context.Context, tenantID string, st *stream, blocks []headBlock) ([]*chunkMeta, error) {
	parts, err := blocksToChunks(st.lbs, blocks, s.cfg.ChunkTargetSize)
	if err != nil {
		return nil, err
	}
	var metas []*chunkMeta
	for _, p := range parts {
		data := compressChunk(p.raw)
		chunkBufs.put(p.raw)
		m, err := s.uploadChunk(ctx, tenantID, st.lbs, st.fp, data, p)
		if err != nil {
			return nil, err
		}
		metas = append(metas, m)
	}
	return metas, nil
}

// writeChunks encodes es (sorted) into chunks of about the target size and uploads them.
func (s *Store) writeChunks(ctx context.Context, tenantID string, st *stream, es []logql.Entry) ([]*chunkMeta, error) {
	var metas []*chunkMeta
	for len(es) > 0 {
		n, size := 0, 0
		for n < len(es) && (n == 0 || size+len(es[n].Line) <= s.cfg.ChunkTargetSize) {
			size += len(es[n].Line)
			n++
		}
		part := es[:n]
		es = es[n:]
		m, err := s.writeChunk(ctx, tenantID, st.lbs, st.fp, part)
		if err != nil {
			return nil, err
		}
		metas = append(metas, m)
	}
	return metas, nil
}

func (s *Store) writeChunk(ctx context.Context, tenantID string, lbs labels.Labels, fp uint64, es []logql.Entry) (*chunkMeta, error) {
	data := encodeChunk(lbs, es)
	traces := map[string]struct{}{}
	lineBytes := 0
	for _, e := range es {
		lineBytes += len(e.Line)
		if t := e.Metadata.Get("trace_id"); t != "" {
			traces[t] = struct{}{}
		}
	}
	return s.uploadChunk(ctx, tenantID, lbs, fp, data, rawChunk{minT: es[0].Timestamp, maxT: es[len(es)-1].Timestamp, n: len(es), lineBytes: lineBytes, traces: traces,
		spans: spansOf(len(es), func(i int) int64 { return es[i].Timestamp })})
}

// uploadChunk uploads a compressed chunk and returns its index entry.
func (s *Store) uploadChunk(ctx context.Context, tenantID string, lbs labels.Labels, fp uint64, data []byte, c rawChunk) (*chunkMeta, error) {
	traces, lineBytes := c.traces, c.lineBytes
	bl := newBloom(len(traces))
	for t := range traces {
		bl.add(t)
	}
	key := fmt.Sprintf("%s/chunks/%016x/%d-%d-%d-%d", tenantID, fp, c.minT, c.maxT, time.Now().UnixNano(), nextSeq())
	if err := s.bkt.Upload(ctx, key, bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("upload chunk %s: %w", key, err)
	}
	s.m.chunksFlushed.Inc()
	s.m.chunkBytes.Add(float64(len(data)))
	return &chunkMeta{Stream: lbs, Key: key, MinT: c.minT, MaxT: c.maxT, Entries: c.n, Bytes: lineBytes, Size: len(data), Bloom: bl, Spans: c.spans}, nil
}
