package metricstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
)

// Bucket-side compaction (Mimir's compactor role). Blocks shipped at block_duration are merged in the bucket
// into the larger compactor_block_ranges (12h, then 24h by default), per tenant, with Prometheus' own
// LeveledCompactor; overlapping blocks are merged vertically, which deduplicates identical samples.
//
// The order of steps makes a crash at any point safe:
//  1. the sources are copied into a scratch directory (hard links when the block is on local disk, in the TSDB
//     directory or the query cache; downloaded otherwise) and merged there (a crash leaves the bucket untouched);
//  2. the merged block is uploaded, meta.json last (a crash before meta.json leaves a partial block that no
//     query reads; it is removed by a later pass once it is older than partialBlockAge);
//  3. a deletion-mark.json is uploaded into each source block (from then on no query reads the source);
//  4. the sources are deleted, meta.json first.
//
// A crash between 2 and 3 leaves the merged block and its sources both complete: queries skip a block whose
// sources are all contained in another complete block (and merging would deduplicate anyway), and the next
// pass marks and deletes it. Marked blocks left by a crash between 3 and 4 are deleted by the next pass.
// Data is therefore deleted only once a complete block holding it is in the bucket, and never served twice.

// deletionMarkFile marks a bucket block for deletion (the name and fields Mimir and Thanos use).
const deletionMarkFile = "deletion-mark.json"

type deletionMark struct {
	ID           ulid.ULID `json:"id"`
	DeletionTime int64     `json:"deletion_time"`
	Version      int       `json:"version"`
}

// compactionFault, when set (tests), is called after each step of a compaction; an error stops the
// compaction there, as a crash would.
var compactionFault func(step string) error

func compactionStep(step string) error {
	if compactionFault == nil {
		return nil
	}
	return compactionFault(step)
}

// partialBlockAge is how old (by its ULID) a block directory without meta.json must be before the compactor
// deletes it as the leftover of an interrupted upload.
const partialBlockAge = 2 * time.Hour

// planBucketCompaction returns the next group of bucket blocks to merge, or nil. For each range, smallest
// first, the timeline is cut into windows aligned to the range; the blocks lying wholly inside one window
// are merged when there are at least two of them and either the window is complete (a newer block exists
// past its end) or some of them overlap (to deduplicate them without waiting). The oldest such window wins.
func planBucketCompaction(metas []tsdb.BlockMeta, ranges []int64) []tsdb.BlockMeta {
	if len(metas) < 2 {
		return nil
	}
	var newest int64
	for i, m := range metas {
		if i == 0 || m.MaxTime > newest {
			newest = m.MaxTime
		}
	}
	for _, r := range ranges {
		windows := map[int64][]tsdb.BlockMeta{}
		for _, m := range metas {
			start := floorDiv(m.MinTime, r) * r
			if m.MaxTime > start+r || m.MaxTime-m.MinTime >= r && !overlapsAny(m, metas) {
				continue // does not fit the window, or is already of this size
			}
			windows[start] = append(windows[start], m)
		}
		starts := make([]int64, 0, len(windows))
		for s, ms := range windows {
			if len(ms) >= 2 {
				starts = append(starts, s)
			}
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		for _, s := range starts {
			group := windows[s]
			if s+r <= newest || hasOverlap(group) {
				sort.Slice(group, func(i, j int) bool {
					if group[i].MinTime != group[j].MinTime {
						return group[i].MinTime < group[j].MinTime
					}
					return group[i].ULID.Compare(group[j].ULID) < 0
				})
				return group
			}
		}
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func overlaps(a, b tsdb.BlockMeta) bool { return a.MinTime < b.MaxTime && b.MinTime < a.MaxTime }

func overlapsAny(m tsdb.BlockMeta, metas []tsdb.BlockMeta) bool {
	for _, o := range metas {
		if o.ULID != m.ULID && overlaps(m, o) {
			return true
		}
	}
	return false
}

func hasOverlap(ms []tsdb.BlockMeta) bool {
	for i := range ms {
		for j := i + 1; j < len(ms); j++ {
			if overlaps(ms[i], ms[j]) {
				return true
			}
		}
	}
	return false
}

// supersededBlocks returns the blocks whose sources are all contained in another block: what a compaction
// interrupted before it deleted its sources leaves behind. Of two blocks with the same sources the one with
// the greater ULID (the newer) stays.
func supersededBlocks(metas []tsdb.BlockMeta) map[ulid.ULID]struct{} {
	srcs := make([]map[ulid.ULID]struct{}, len(metas))
	for i, m := range metas {
		srcs[i] = map[ulid.ULID]struct{}{}
		for _, s := range blockSources(m) {
			srcs[i][s] = struct{}{}
		}
	}
	out := map[ulid.ULID]struct{}{}
	for i, x := range metas {
		for j, y := range metas {
			if i == j || len(srcs[i]) > len(srcs[j]) {
				continue
			}
			if len(srcs[i]) == len(srcs[j]) && y.ULID.Compare(x.ULID) < 0 {
				continue
			}
			all := true
			for s := range srcs[i] {
				if _, ok := srcs[j][s]; !ok {
					all = false
					break
				}
			}
			if all {
				out[x.ULID] = struct{}{}
				break
			}
		}
	}
	return out
}

func blockSources(m tsdb.BlockMeta) []ulid.ULID {
	if len(m.Compaction.Sources) == 0 {
		return []ulid.ULID{m.ULID}
	}
	return m.Compaction.Sources
}

// CompactBucket merges the tenant's bucket blocks into compactor_block_ranges, deletes what earlier passes
// left (marked, superseded and partial blocks) and returns how many merged blocks it uploaded.
func (t *Tenant) CompactBucket(ctx context.Context) (int, error) {
	if t.blocks == nil || len(t.store.cfg.Storage.CompactorBlockRanges) == 0 {
		return 0, nil
	}
	bb := t.blocks
	bb.compactMu.Lock()
	defer bb.compactMu.Unlock()
	if err := bb.sync(ctx, false); err != nil {
		return 0, err
	}
	if err := bb.cleanup(ctx); err != nil {
		return 0, err
	}
	ranges := make([]int64, len(t.store.cfg.Storage.CompactorBlockRanges))
	for i, r := range t.store.cfg.Storage.CompactorBlockRanges {
		ranges[i] = r.Milliseconds()
	}
	scratch := filepath.Join(t.store.cfg.DataDir, ".compact", t.id)
	defer os.RemoveAll(scratch)
	n := 0
	for {
		group := planBucketCompaction(bb.liveMetas(), ranges)
		if group == nil {
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := bb.compactGroup(ctx, scratch, group, ranges); err != nil {
			return n, err
		}
		n++
	}
}

// linkLocalBlock makes dst a copy of block id from local disk, when the block is there: in the tenant's TSDB
// directory (blocks this node shipped) or in the query cache (blocks downloaded for queries). Files are hard
// links, so the copy stays whole even if the TSDB or the cache deletes its block meanwhile. It returns where
// the block came from ("local", "cache"), or "" when it must be downloaded.
func (bb *bucketBlocks) linkLocalBlock(id ulid.ULID, dst string) string {
	for _, c := range []struct{ name, dir string }{
		{"local", filepath.Join(bb.t.dir, id.String())},
		{"cache", filepath.Join(bb.cache, id.String())},
	} {
		if _, err := os.Stat(filepath.Join(c.dir, "meta.json")); err != nil {
			continue
		}
		tmp := dst + ".tmp"
		_ = os.RemoveAll(tmp)
		err := filepath.WalkDir(c.dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(c.dir, path)
			if err != nil {
				return err
			}
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(tmp, rel), 0o755)
			}
			return os.Link(path, filepath.Join(tmp, rel))
		})
		if err == nil {
			// meta.json is checked again in the copy: a block deleted while it was walked is incomplete.
			if _, err = os.Stat(filepath.Join(tmp, "meta.json")); err == nil {
				err = os.Rename(tmp, dst)
			}
		}
		if err == nil {
			return c.name
		}
		_ = os.RemoveAll(tmp)
		bb.t.store.logger.Debug("local copy of a block not usable for compaction; downloading it", zap.String("tenant", bb.t.id), zap.Stringer("block", id), zap.Error(err))
	}
	return ""
}

// compactGroup merges one group: download, compact, upload, mark, delete.
func (bb *bucketBlocks) compactGroup(ctx context.Context, scratch string, group []tsdb.BlockMeta, ranges []int64) error {
	t := bb.t
	bkt := t.store.bkt
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	dirs := make([]string, 0, len(group))
	ids := make([]string, 0, len(group))
	for _, m := range group {
		dir := filepath.Join(scratch, "src", m.ULID.String())
		if src := bb.linkLocalBlock(m.ULID, dir); src != "" {
			bb.compactSources[src]++
		} else if err := downloadBlock(ctx, bkt, t.id, m.ULID, dir); err != nil {
			return fmt.Errorf("download block %s for compaction: %w", m.ULID, err)
		} else {
			bb.compactSources["bucket"]++
		}
		dirs = append(dirs, dir)
		ids = append(ids, m.ULID.String())
	}
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, t.store.slog.With("tenant", t.id, "component", "bucket compactor"), ranges, nil, tsdb.LeveledCompactorOptions{EnableOverlappingCompaction: true})
	if err != nil {
		return err
	}
	out := filepath.Join(scratch, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	newIDs, err := comp.Compact(out, dirs, nil)
	if err != nil {
		return fmt.Errorf("compact blocks %s: %w", strings.Join(ids, ","), err)
	}
	var merged *tsdb.BlockMeta
	if len(newIDs) == 1 { // none when every sample was deleted: the sources are simply removed
		dir := filepath.Join(out, newIDs[0].String())
		b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
		if err != nil {
			return err
		}
		merged = new(tsdb.BlockMeta)
		if err := json.Unmarshal(b, merged); err != nil {
			return err
		}
		if err := uploadBlock(ctx, bkt, t.id, dir, merged.ULID); err != nil {
			return fmt.Errorf("upload compacted block %s: %w", merged.ULID, err)
		}
	}
	if err := compactionStep("uploaded"); err != nil {
		return err
	}
	victims := make([]ulid.ULID, len(group))
	for i, m := range group {
		victims[i] = m.ULID
	}
	if err := bb.retire(ctx, merged, victims); err != nil {
		return err
	}
	t.store.logger.Info("compacted bucket blocks", zap.String("tenant", t.id), zap.Strings("sources", ids),
		zap.Stringer("block", ulidOrZero(merged)))
	return nil
}

func ulidOrZero(m *tsdb.BlockMeta) ulid.ULID {
	if m == nil {
		return ulid.ULID{}
	}
	return m.ULID
}

// retire makes merged (if any) visible to queries in place of victims, then marks and deletes the victims.
func (bb *bucketBlocks) retire(ctx context.Context, merged *tsdb.BlockMeta, victims []ulid.ULID) error {
	bkt := bb.t.store.bkt
	for _, id := range victims {
		mark, _ := json.Marshal(deletionMark{ID: id, DeletionTime: time.Now().Unix(), Version: 1})
		if err := bkt.Upload(ctx, bucket.Join(bb.t.id, id.String(), deletionMarkFile), bytes.NewReader(mark)); err != nil {
			return fmt.Errorf("mark block %s for deletion: %w", id, err)
		}
	}
	if err := compactionStep("marked"); err != nil {
		return err
	}
	bb.swap.Lock()
	bb.mu.Lock()
	if merged != nil {
		bb.metas[merged.ULID] = *merged
	}
	var toClose []*tsdb.Block
	for _, id := range victims {
		delete(bb.metas, id)
		bb.marked[id] = struct{}{}
		if b, ok := bb.open[id]; ok {
			toClose = append(toClose, b)
			delete(bb.open, id)
		}
	}
	bb.mu.Unlock()
	bb.swap.Unlock()
	var errs []error
	for _, b := range toClose {
		errs = append(errs, b.Close()) // waits for queries still reading it
	}
	for _, id := range victims {
		_ = os.RemoveAll(filepath.Join(bb.cache, id.String()))
		if err := deleteBlock(ctx, bkt, bb.t.id, id); err != nil {
			errs = append(errs, fmt.Errorf("delete compacted block %s: %w", id, err))
			continue
		}
		bb.mu.Lock()
		delete(bb.marked, id)
		bb.mu.Unlock()
	}
	return errors.Join(errs...)
}

// cleanup deletes marked blocks, blocks superseded by a merged block, and old partial uploads.
func (bb *bucketBlocks) cleanup(ctx context.Context) error {
	bb.mu.Lock()
	marked := make([]ulid.ULID, 0, len(bb.marked))
	for id := range bb.marked {
		marked = append(marked, id)
	}
	partial := make([]ulid.ULID, 0, len(bb.partial))
	for id := range bb.partial {
		partial = append(partial, id)
	}
	bb.mu.Unlock()
	var errs []error
	for _, id := range marked {
		if err := deleteBlock(ctx, bb.t.store.bkt, bb.t.id, id); err != nil {
			errs = append(errs, fmt.Errorf("delete marked block %s: %w", id, err))
			continue
		}
		bb.mu.Lock()
		delete(bb.marked, id)
		bb.mu.Unlock()
	}
	for _, id := range partial {
		if time.Since(ulid.Time(id.Time())) < partialBlockAge {
			continue
		}
		if err := deleteBlock(ctx, bb.t.store.bkt, bb.t.id, id); err != nil {
			errs = append(errs, fmt.Errorf("delete partial block %s: %w", id, err))
			continue
		}
		bb.t.store.logger.Info("deleted partial bucket block", zap.String("tenant", bb.t.id), zap.Stringer("block", id))
	}
	sup := supersededBlocks(bb.liveMetas())
	if len(sup) > 0 {
		victims := make([]ulid.ULID, 0, len(sup))
		for id := range sup {
			victims = append(victims, id)
		}
		errs = append(errs, bb.retire(ctx, nil, victims))
	}
	return errors.Join(errs...)
}

// liveMetas are the complete, unmarked bucket blocks.
func (bb *bucketBlocks) liveMetas() []tsdb.BlockMeta {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	out := make([]tsdb.BlockMeta, 0, len(bb.metas))
	for _, m := range bb.metas {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ULID.Compare(out[j].ULID) < 0 })
	return out
}
