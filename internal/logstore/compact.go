package logstore

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/logql"
)

// Compact applies retention, merges runs of small chunks of a stream into chunks near the target size, and
// consolidates each tenant's index into one file.
func (s *Store) Compact(ctx context.Context) error {
	var errs error
	for _, tid := range s.TenantIDs() {
		if err := s.compactTenant(ctx, tid); err != nil {
			errs = errors.Join(errs, fmt.Errorf("tenant %s: %w", tid, err))
		}
	}
	return errs
}

func (s *Store) compactTenant(ctx context.Context, tid string) error {
	td := s.tenantIfExists(tid)
	if td == nil {
		return nil
	}
	oldFiles, err := s.indexFiles(ctx, tid)
	if err != nil {
		return err
	}
	var cutoff int64
	if s.cfg.Retention > 0 {
		cutoff = s.now().Add(-s.cfg.Retention).UnixNano()
	}
	var deleteKeys []string
	var live []*chunkMeta
	td.mu.RLock()
	var streams []*stream
	for _, sts := range td.streams {
		streams = append(streams, sts...)
	}
	td.mu.RUnlock()
	for _, st := range streams {
		st.mu.Lock()
		chunks := append([]*chunkMeta(nil), st.chunks...)
		st.mu.Unlock()
		var keep []*chunkMeta
		for _, c := range chunks {
			if cutoff != 0 && c.MaxT < cutoff {
				deleteKeys = append(deleteKeys, c.Key)
				s.m.retentionDrops.Inc()
				continue
			}
			keep = append(keep, c)
		}
		merged, dropped, err := s.mergeSmall(ctx, tid, st, keep)
		if err != nil {
			s.logger.Warn("Chunk merge failed; keeping the small chunks", zap.Error(err))
			merged, dropped = keep, nil
		}
		deleteKeys = append(deleteKeys, dropped...)
		// Swap in the new list, keeping chunks flushed meanwhile.
		st.mu.Lock()
		known := map[string]bool{}
		for _, c := range chunks {
			known[c.Key] = true
		}
		for _, c := range st.chunks {
			if !known[c.Key] {
				merged = append(merged, c)
			}
		}
		sort.Slice(merged, func(i, j int) bool { return merged[i].MinT < merged[j].MinT })
		st.chunks = merged
		live = append(live, merged...)
		st.mu.Unlock()
	}
	if len(oldFiles) <= 1 && len(deleteKeys) == 0 {
		return nil
	}
	if err := s.writeIndex(ctx, tid, live); err != nil {
		return err
	}
	for _, f := range oldFiles {
		if err := s.bkt.Delete(ctx, f); err != nil && !s.bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete old index %s: %w", f, err)
		}
	}
	for _, k := range deleteKeys {
		s.cache.drop(k)
		if err := s.bkt.Delete(ctx, k); err != nil && !s.bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete chunk %s: %w", k, err)
		}
	}
	return nil
}

// mergeSmall rewrites runs of chunks smaller than a quarter of the target into fewer chunks.
func (s *Store) mergeSmall(ctx context.Context, tid string, st *stream, chunks []*chunkMeta) (out []*chunkMeta, dropped []string, err error) {
	small := s.cfg.ChunkTargetSize / 4
	var run []*chunkMeta
	flushRun := func() error {
		if len(run) < 2 {
			out = append(out, run...)
			run = nil
			return nil
		}
		var es []logql.Entry
		seg := 0
		// An entry that lies in two of the chunks (see dedup) is written once: in one merged chunk the query
		// could no longer tell the copies from two lines pushed alike.
		dd := newDedup(run, nil)
		for ci, c := range run {
			seg = max(seg, c.WALSeg)
			part, err := s.loadChunk(ctx, c)
			if err != nil {
				return err
			}
			for _, e := range part {
				if !dd.seen(e, ci) {
					es = append(es, e)
				}
			}
		}
		sort.SliceStable(es, func(i, j int) bool { return es[i].Timestamp < es[j].Timestamp })
		metas, err := s.writeChunks(ctx, tid, st, es)
		if err != nil {
			return err
		}
		for _, c := range metas {
			c.WALSeg = seg
		}
		out = append(out, metas...)
		for _, c := range run {
			dropped = append(dropped, c.Key)
		}
		run = nil
		return nil
	}
	runBytes := 0
	for _, c := range chunks {
		if c.Bytes < small && runBytes+c.Bytes <= s.cfg.ChunkTargetSize {
			run = append(run, c)
			runBytes += c.Bytes
			continue
		}
		if err := flushRun(); err != nil {
			return nil, nil, err
		}
		runBytes = 0
		if c.Bytes < small {
			run = append(run, c)
			runBytes = c.Bytes
		} else {
			out = append(out, c)
		}
	}
	if err := flushRun(); err != nil {
		return nil, nil, err
	}
	return out, dropped, nil
}
