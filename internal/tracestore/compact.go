package tracestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"go.uber.org/zap"
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
		// The blocks both took out of the list, and those that queries held at the last pass.
		if err := in.reap(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: delete blocks: %w", in.tenant, err))
		}
	}
	return errors.Join(errs...)
}

// applyRetention takes the blocks whose newest span is older than block_retention out of the list (reap deletes
// them).
func (in *instance) applyRetention(ctx context.Context) error {
	ret := in.s.cfg.Compaction.BlockRetention
	if ret <= 0 {
		return nil
	}
	cutoff := uint64(in.s.now().Add(-ret).UnixNano())
	expired := map[*block]bool{}
	in.mu.Lock()
	for _, b := range in.blocks {
		if b.meta.EndUnixNano < cutoff {
			expired[b] = true
		}
	}
	in.removeBlocksLocked(expired)
	in.mu.Unlock()
	return nil
}

// deleteBlock removes meta.json first, so that a block half deleted is already invisible to every reader.
func (in *instance) deleteBlock(ctx context.Context, b *block) error {
	prefix := in.blockPrefix(b.meta.ULID)
	for _, f := range []string{metaFile, dataFile, indexFile, bloomFile} {
		if err := in.s.bkt.Delete(ctx, prefix+f); err != nil && !in.s.bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("delete block %s/%s: %w", b.meta.ULID, f, err)
		}
	}
	in.s.cache.drop(prefix + dataFile)
	in.s.m.deleted.Inc()
	return nil
}

// compact merges small blocks (each under compaction.max_block_bytes) once at least min_input_blocks of them
// exist, oldest first, at most max_input_blocks at a time, into blocks of at most max_block_bytes, removing
// duplicate spans. Each new block is uploaded before its inputs are deleted; a crash in between leaves
// duplicates, which queries and the next compaction remove. One pass merges until fewer than min_input_blocks
// small blocks are left, so that a store writing many small blocks (a high rate under memory pressure) does not
// fall behind although each merge is bounded.
func (in *instance) compact(ctx context.Context) error {
	in.s.compactMu.Lock()
	defer in.s.compactMu.Unlock()
	for {
		merged, err := in.compactOnce(ctx)
		if err != nil || !merged {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// compactOnce merges one group of small blocks, if there are enough of them; it says whether it did.
func (in *instance) compactOnce(ctx context.Context) (bool, error) {
	// The inputs are held like a query's, so that retention does not delete them under the merge.
	blocks, release := in.view(nil)
	defer release()
	inputs := in.s.cfg.Compaction.pickInputs(blocks)
	if inputs == nil {
		return false, nil
	}
	start := time.Now()
	nb, spansIn, err := in.mergeBlocks(ctx, inputs)
	if err != nil {
		return false, err
	}
	gone := map[*block]bool{}
	for _, b := range inputs {
		gone[b] = true
	}
	in.mu.Lock()
	in.removeBlocksLocked(gone)
	in.addBlockLocked(nb)
	in.mu.Unlock()
	in.s.m.compactions.Inc()
	in.s.logger.Info("Compacted trace blocks", zap.String("tenant", in.tenant), zap.Int("inputs", len(inputs)),
		zap.Int("spans_in", spansIn), zap.Int("spans_out", nb.meta.Spans), zap.String("block", nb.meta.ULID),
		zap.Duration("took", time.Since(start)))
	return true, nil
}

// mergeCursor reads a block's rows in order, a chunk at a time.
type mergeCursor struct {
	r    *parquet.GenericReader[spanRow]
	buf  []spanRow
	i, n int
	done bool
	err  error
}

func (c *mergeCursor) head() *spanRow {
	for !c.done && c.i >= c.n {
		clear(c.buf)
		n, err := c.r.Read(c.buf)
		c.i, c.n = 0, n
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.err = err
			}
			if n == 0 {
				c.done = true
			}
		}
		if n == 0 && err == nil {
			c.done = true
		}
	}
	if c.done && c.i >= c.n {
		return nil
	}
	return &c.buf[c.i]
}

func cloneRow(r *spanRow) spanRow {
	c := *r
	c.TraceID = bytes.Clone(r.TraceID)
	c.SpanID = bytes.Clone(r.SpanID)
	c.ParentID = bytes.Clone(r.ParentID)
	c.Resource = bytes.Clone(r.Resource)
	c.Scope = bytes.Clone(r.Scope)
	c.Span = bytes.Clone(r.Span)
	c.Name = strings.Clone(r.Name)
	c.Service = strings.Clone(r.Service)
	return c
}

// pickInputs chooses the blocks of the next merge from blocks (sorted oldest first), or nil. Small blocks (under
// max_block_bytes) of the lowest level that has min_input_blocks of them go first, oldest first, so that each
// merge takes blocks of about one size and a span is rewritten about once per level (merging a growing block
// with a few new ones each time would rewrite it at every merge); only when no level has enough are small blocks
// of any level merged, oldest first. A merge takes at most max_input_blocks blocks and stops before its inputs
// exceed max_block_bytes (but takes at least two).
func (c CompactionConfig) pickInputs(blocks []*block) []*block {
	take := func(level int) []*block {
		var inputs []*block
		var total int64
		for _, b := range blocks {
			if b.meta.Size >= c.MaxBlockBytes || (level >= 0 && b.meta.Level != level) {
				continue
			}
			if total+b.meta.Size > c.MaxBlockBytes && len(inputs) >= 2 {
				break
			}
			inputs = append(inputs, b)
			total += b.meta.Size
			if c.MaxInputBlocks > 0 && len(inputs) >= c.MaxInputBlocks {
				break
			}
		}
		if len(inputs) < c.MinInputBlocks {
			return nil
		}
		return inputs
	}
	perLevel := map[int]int{}
	for _, b := range blocks {
		if b.meta.Size < c.MaxBlockBytes {
			perLevel[b.meta.Level]++
		}
	}
	levels := make([]int, 0, len(perLevel))
	for l, n := range perLevel {
		if n >= c.MinInputBlocks {
			levels = append(levels, l)
		}
	}
	sort.Ints(levels)
	for _, l := range levels {
		if inputs := take(l); inputs != nil {
			return inputs
		}
	}
	return take(-1)
}

// compactReadBuffers is what the read buffers of one merge's inputs may hold together (see openParquet).
const compactReadBuffers = 16 << 20

// spanRowColumns is the number of columns of a block (spanRow's fields).
var spanRowColumns = len(parquet.SchemaOf(spanRow{}).Fields())

// mergeBlocks streams the rows of sorted input blocks into one block (a k-way merge by trace id), keeping one
// trace in memory at a time and dropping duplicate spans. It returns the block and the number of input spans.
func (in *instance) mergeBlocks(ctx context.Context, inputs []*block) (*block, int, error) {
	level := 0
	var curs []*mergeCursor
	defer func() {
		for _, c := range curs {
			_ = c.r.Close()
		}
	}()
	// The inputs are read through files of their own, whose read buffers share one budget (a merge holds a
	// buffer per column of every input at once); the blocks' own files keep the buffers queries want.
	bufSize := min(in.s.readBufferSize(), max(compactReadBuffers/(len(inputs)*spanRowColumns), fsReadBuffer))
	for _, b := range inputs {
		if b.meta.Level > level {
			level = b.meta.Level
		}
		f, err := in.openParquet(b, bufSize)
		if err != nil {
			return nil, 0, err
		}
		curs = append(curs, &mergeCursor{r: parquet.NewGenericReader[spanRow](f), buf: make([]spanRow, 256)})
	}
	bw, err := in.newBlockWriter(ctx, level+1)
	if err != nil {
		return nil, 0, err
	}
	defer bw.abort()
	for _, b := range inputs {
		bw.tags.merge(b.meta.Tags)
	}
	spansIn := 0
	var trace []spanRow
	seen := map[string]struct{}{}
	for {
		var min []byte
		for _, c := range curs {
			if h := c.head(); h != nil && (min == nil || bytes.Compare(h.TraceID, min) < 0) {
				min = h.TraceID
			}
			if c.err != nil {
				return nil, 0, fmt.Errorf("compaction: read block: %w", c.err)
			}
		}
		if min == nil {
			break
		}
		min = bytes.Clone(min)
		trace = trace[:0]
		for _, c := range curs {
			for h := c.head(); h != nil && bytes.Equal(h.TraceID, min); h = c.head() {
				trace = append(trace, cloneRow(h))
				c.i++
			}
			if c.err != nil {
				return nil, 0, fmt.Errorf("compaction: read block: %w", c.err)
			}
		}
		spansIn += len(trace)
		sort.SliceStable(trace, func(a, b int) bool { return trace[a].Start < trace[b].Start })
		clear(seen)
		var tid pcommon.TraceID
		copy(tid[:], min)
		for _, r := range trace {
			if _, dup := seen[string(r.SpanID)]; dup {
				continue
			}
			seen[string(r.SpanID)] = struct{}{}
			if err := bw.add(tid, r); err != nil {
				return nil, 0, err
			}
		}
	}
	nb, err := bw.finish()
	return nb, spansIn, err
}
