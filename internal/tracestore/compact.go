package tracestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/traceql"
)

// Compact runs one retention and compaction pass over every tenant.
func (s *Store) Compact(ctx context.Context) error {
	var errs []error
	for _, in := range s.instances() {
		if err := in.applyRetention(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: retention: %w", in.tenant, err))
		}
		if err := in.compact(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: compaction: %w", in.tenant, err))
		}
	}
	return errors.Join(errs...)
}

// applyRetention deletes blocks whose newest span is older than block_retention.
func (in *instance) applyRetention(ctx context.Context) error {
	ret := in.s.cfg.Compaction.BlockRetention
	if ret <= 0 {
		return nil
	}
	cutoff := uint64(in.s.now().Add(-ret).UnixNano())
	var expired []*block
	in.mu.Lock()
	kept := in.blocks[:0]
	for _, b := range in.blocks {
		if b.meta.EndUnixNano < cutoff {
			expired = append(expired, b)
		} else {
			kept = append(kept, b)
		}
	}
	for i := len(kept); i < len(in.blocks); i++ {
		in.blocks[i] = nil
	}
	in.blocks = kept
	in.s.m.blocks.Set(float64(len(in.blocks)))
	in.mu.Unlock()
	var errs []error
	for _, b := range expired {
		if err := in.deleteBlock(ctx, b); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteBlock removes meta.json first, so that a block half deleted is already invisible to every reader.
func (in *instance) deleteBlock(ctx context.Context, b *block) error {
	prefix := in.blockPrefix(b.meta.ULID)
	for _, f := range []string{metaFile, dataFile, indexFile, bloomFile} {
		if err := in.s.bkt.Delete(ctx, prefix+f); err != nil && !in.s.bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete block %s/%s: %w", b.meta.ULID, f, err)
		}
	}
	in.s.m.deleted.Inc()
	return nil
}

// compact merges small blocks (each under compaction.max_block_bytes) once at least min_input_blocks of them
// exist, oldest first, into one block of at most max_block_bytes, removing duplicate spans. The new block is
// uploaded before the inputs are deleted; a crash in between leaves duplicates, which queries and the next
// compaction remove.
func (in *instance) compact(ctx context.Context) error {
	in.s.flushMu.Lock()
	defer in.s.flushMu.Unlock()
	max := in.s.cfg.Compaction.MaxBlockBytes
	var inputs []*block
	var total int64
	for _, b := range in.blockList() {
		if b.meta.Size >= max {
			continue
		}
		if total+b.meta.Size > max && len(inputs) >= 2 {
			break
		}
		inputs = append(inputs, b)
		total += b.meta.Size
	}
	if len(inputs) < in.s.cfg.Compaction.MinInputBlocks {
		return nil
	}
	start := time.Now()
	var spans []traceql.Span
	level := 0
	for _, b := range inputs {
		if b.meta.Level > level {
			level = b.meta.Level
		}
		err := in.scanBlock(ctx, b, func(_ pcommon.TraceID, s []traceql.Span) bool {
			spans = append(spans, s...)
			return true
		})
		if err != nil {
			return err
		}
	}
	nb, err := in.writeBlock(ctx, spans, level+1)
	if err != nil {
		return err
	}
	gone := map[*block]bool{}
	for _, b := range inputs {
		gone[b] = true
	}
	in.mu.Lock()
	kept := in.blocks[:0]
	for _, b := range in.blocks {
		if !gone[b] {
			kept = append(kept, b)
		}
	}
	in.blocks = kept
	in.addBlockLocked(nb)
	in.mu.Unlock()
	for _, b := range inputs {
		if err := in.deleteBlock(ctx, b); err != nil {
			return err
		}
	}
	in.s.m.compactions.Inc()
	in.s.logger.Info("Compacted trace blocks", zap.String("tenant", in.tenant), zap.Int("inputs", len(inputs)),
		zap.Int("spans_in", len(spans)), zap.Int("spans_out", nb.meta.Spans), zap.String("block", nb.meta.ULID),
		zap.Duration("took", time.Since(start)))
	return nil
}
