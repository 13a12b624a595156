package metricstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
)

// bucketBlocks is the tenant's view of its blocks in the bucket. Blocks whose data is no longer on local disk
// (local retention is shorter than bucket retention) are downloaded on first query into the cache directory and
// opened with tsdb.OpenBlock; queries merge them with the TSDB as secondary sources. It also applies the
// bucket retention (compactor_blocks_retention_period).
type bucketBlocks struct {
	t     *Tenant
	cache string

	compactMu sync.Mutex // serialises CompactBucket
	// swap is held for reading from choosing a query's blocks until they are open, and for writing while the
	// compactor replaces blocks, so that a query never picks a block that is deleted before it opens it.
	swap sync.RWMutex

	mu      sync.Mutex
	synced  bool
	metas   map[ulid.ULID]tsdb.BlockMeta // complete blocks not marked for deletion
	marked  map[ulid.ULID]struct{}       // blocks with a deletion mark, not deleted yet
	partial map[ulid.ULID]struct{}       // block directories without meta.json
	open    map[ulid.ULID]*tsdb.Block
	bad     map[ulid.ULID]error // downloaded blocks that failed to read in full; not downloaded again

	// compactSources counts where the compactor found its source blocks: "local", "cache" or "bucket"
	// (guarded by compactMu).
	compactSources map[string]int
}

func newBucketBlocks(t *Tenant) *bucketBlocks {
	return &bucketBlocks{t: t, cache: t.store.cacheDir(t.id), metas: map[ulid.ULID]tsdb.BlockMeta{},
		marked: map[ulid.ULID]struct{}{}, partial: map[ulid.ULID]struct{}{}, open: map[ulid.ULID]*tsdb.Block{},
		bad: map[ulid.ULID]error{}, compactSources: map[string]int{}}
}

func (bb *bucketBlocks) addShipped(m tsdb.BlockMeta) {
	bb.mu.Lock()
	bb.metas[m.ULID] = m
	bb.mu.Unlock()
}

// SyncBucket lists the tenant's blocks in the bucket and deletes those past the bucket retention.
func (t *Tenant) SyncBucket(ctx context.Context) error {
	if t.blocks == nil {
		return nil
	}
	return t.blocks.sync(ctx, true)
}

// sync refreshes the list of bucket blocks and, with applyRetention, deletes the expired ones. Queries list
// without deleting; only the retention loop (SyncBucket) deletes.
func (bb *bucketBlocks) sync(ctx context.Context, applyRetention bool) error {
	bkt := bb.t.store.bkt
	found := map[ulid.ULID]tsdb.BlockMeta{}
	marked := map[ulid.ULID]struct{}{}
	partial := map[ulid.ULID]struct{}{}
	bb.mu.Lock()
	known := make(map[ulid.ULID]tsdb.BlockMeta, len(bb.metas))
	for k, v := range bb.metas {
		known[k] = v
	}
	bb.mu.Unlock()
	err := bkt.Iter(ctx, bb.t.id+"/", func(name string) error {
		id, err := ulid.Parse(strings.TrimSuffix(strings.TrimPrefix(name, bb.t.id+"/"), "/"))
		if err != nil {
			return nil // not a block
		}
		if m, ok := known[id]; ok {
			found[id] = m
			return nil
		}
		b, err := bucket.ReadAll(ctx, bkt, bucket.Join(bb.t.id, id.String(), "meta.json"))
		if bkt.IsObjNotFoundErr(err) {
			partial[id] = struct{}{} // upload in progress or interrupted, or deletion half done
			return nil
		}
		if err != nil {
			return fmt.Errorf("read meta.json of %s: %w", id, err)
		}
		var m tsdb.BlockMeta
		if err := json.Unmarshal(b, &m); err != nil {
			bb.t.store.logger.Warn("skip bucket block with bad meta.json", zap.String("tenant", bb.t.id), zap.Stringer("block", id), zap.Error(err))
			return nil
		}
		if ok, err := bkt.Exists(ctx, bucket.Join(bb.t.id, id.String(), deletionMarkFile)); err != nil {
			return fmt.Errorf("look for the deletion mark of %s: %w", id, err)
		} else if ok {
			marked[id] = struct{}{}
			return nil
		}
		found[id] = m
		return nil
	})
	if err != nil {
		return fmt.Errorf("list bucket blocks: %w", err)
	}
	var expired []ulid.ULID
	if ret := bb.t.store.cfg.Storage.CompactorBlocksRetentionPeriod; ret > 0 && applyRetention {
		cutoff := time.Now().Add(-ret).UnixMilli()
		for id, m := range found {
			if m.MaxTime < cutoff {
				expired = append(expired, id)
				delete(found, id)
			}
		}
	}
	bb.mu.Lock()
	bb.metas, bb.marked, bb.partial, bb.synced = found, marked, partial, true
	var toClose []*tsdb.Block
	for _, id := range expired {
		if b, ok := bb.open[id]; ok {
			toClose = append(toClose, b)
			delete(bb.open, id)
		}
	}
	bb.mu.Unlock()
	var errs []error
	for _, b := range toClose {
		errs = append(errs, b.Close())
	}
	for _, id := range expired {
		_ = os.RemoveAll(filepath.Join(bb.cache, id.String()))
		if err := deleteBlock(ctx, bkt, bb.t.id, id); err != nil {
			errs = append(errs, fmt.Errorf("delete expired block %s: %w", id, err))
			continue
		}
		bb.t.store.logger.Info("deleted block past retention", zap.String("tenant", bb.t.id), zap.Stringer("block", id))
	}
	return errors.Join(errs...)
}

// deleteBlock removes meta.json first, so that a half-deleted block is never read as complete.
func deleteBlock(ctx context.Context, bkt bucket.Bucket, tenantID string, id ulid.ULID) error {
	prefix := bucket.Join(tenantID, id.String())
	if err := bkt.Delete(ctx, prefix+"/meta.json"); err != nil && !bkt.IsObjNotFoundErr(err) {
		return err
	}
	var keys []string
	if err := bkt.Iter(ctx, prefix+"/", func(name string) error {
		keys = append(keys, name)
		return nil
	}, objstoreRecursive()); err != nil {
		return err
	}
	for _, k := range keys {
		if err := bkt.Delete(ctx, k); err != nil && !bkt.IsObjNotFoundErr(err) {
			return err
		}
	}
	return nil
}

// candidates returns the bucket blocks overlapping [mint, maxt] whose data is not on local disk.
func (bb *bucketBlocks) candidates(mint, maxt int64) []tsdb.BlockMeta {
	bb.mu.Lock()
	synced := bb.synced
	bb.mu.Unlock()
	if !synced {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := bb.sync(ctx, false); err != nil {
			bb.t.store.logger.Warn("sync bucket blocks", zap.String("tenant", bb.t.id), zap.Error(err))
		}
		cancel()
	}
	local := map[ulid.ULID]struct{}{}
	for _, b := range bb.t.db.Blocks() {
		m := b.Meta()
		local[m.ULID] = struct{}{}
		for _, s := range m.Compaction.Sources {
			local[s] = struct{}{}
		}
	}
	bb.mu.Lock()
	var inRange []tsdb.BlockMeta
	for _, m := range bb.metas {
		if m.MinTime > maxt || m.MaxTime <= mint {
			continue
		}
		inRange = append(inRange, m)
	}
	bb.mu.Unlock()
	// A block whose sources another block holds is what an interrupted compaction left: read the merged one.
	sup := supersededBlocks(inRange)
	var out []tsdb.BlockMeta
	for _, m := range inRange {
		if _, ok := sup[m.ULID]; ok {
			continue
		}
		srcs := m.Compaction.Sources
		if len(srcs) == 0 {
			srcs = append(srcs, m.ULID)
		}
		all := true
		for _, s := range srcs {
			if _, ok := local[s]; !ok {
				all = false
				break
			}
		}
		if !all {
			out = append(out, m)
		}
	}
	return out
}

func (bb *bucketBlocks) queriers(mint, maxt int64) []storage.Querier {
	bb.swap.RLock()
	defer bb.swap.RUnlock()
	var out []storage.Querier
	for _, m := range bb.candidates(mint, maxt) {
		b, err := bb.openBlock(m.ULID)
		if err == nil {
			var q storage.Querier
			if q, err = tsdb.NewBlockQuerier(b, mint, maxt); err == nil {
				out = append(out, q)
				continue
			}
		}
		bb.t.store.logger.Warn("bucket block left out of query", zap.String("tenant", bb.t.id), zap.Stringer("block", m.ULID), zap.Error(err))
	}
	return out
}

func (bb *bucketBlocks) chunkQueriers(mint, maxt int64) []storage.ChunkQuerier {
	bb.swap.RLock()
	defer bb.swap.RUnlock()
	var out []storage.ChunkQuerier
	for _, m := range bb.candidates(mint, maxt) {
		b, err := bb.openBlock(m.ULID)
		if err == nil {
			var q storage.ChunkQuerier
			if q, err = tsdb.NewBlockChunkQuerier(b, mint, maxt); err == nil {
				out = append(out, q)
				continue
			}
		}
		bb.t.store.logger.Warn("bucket block left out of query", zap.String("tenant", bb.t.id), zap.Stringer("block", m.ULID), zap.Error(err))
	}
	return out
}

// openBlock returns the block from the cache, downloading it first if needed.
func (bb *bucketBlocks) openBlock(id ulid.ULID) (*tsdb.Block, error) {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if b, ok := bb.open[id]; ok {
		return b, nil
	}
	if err, ok := bb.bad[id]; ok {
		return nil, err
	}
	dir := filepath.Join(bb.cache, id.String())
	b, err := tsdb.OpenBlock(bb.t.store.slog, dir, nil, nil)
	if err != nil {
		_ = os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err = downloadBlock(ctx, bb.t.store.bkt, bb.t.id, id, dir)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("download block %s: %w", id, err)
		}
		if b, err = tsdb.OpenBlock(bb.t.store.slog, dir, nil, nil); err == nil {
			if err = verifyBlock(context.Background(), b); err != nil {
				_ = b.Close()
			}
		}
		if err != nil {
			// Reported once; every query then skips the block instead of failing on its checksum.
			err = fmt.Errorf("bucket block %s is unreadable: %w", id, err)
			bb.bad[id] = err
			_ = os.RemoveAll(dir)
			bb.t.store.logger.Error("Metrics block in the bucket is unreadable; queries skip it", zap.String("tenant", bb.t.id), zap.Stringer("block", id), zap.Error(err))
			return nil, err
		}
	}
	bb.open[id] = b
	return b, nil
}

func downloadBlock(ctx context.Context, bkt bucket.Bucket, tenantID string, id ulid.ULID, dir string) error {
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	prefix := bucket.Join(tenantID, id.String()) + "/"
	var keys []string
	if err := bkt.Iter(ctx, prefix, func(name string) error {
		keys = append(keys, name)
		return nil
	}, objstoreRecursive()); err != nil {
		return err
	}
	for _, k := range keys {
		dst := filepath.Join(tmp, filepath.FromSlash(strings.TrimPrefix(k, prefix)))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := downloadFile(ctx, bkt, k, dst); err != nil {
			_ = os.RemoveAll(tmp)
			return err
		}
	}
	return os.Rename(tmp, dir)
}

func downloadFile(ctx context.Context, bkt bucket.Bucket, key, dst string) error {
	r, err := bkt.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func (bb *bucketBlocks) minTime() (int64, bool) {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	var mt int64
	ok := false
	for _, m := range bb.metas {
		if !ok || m.MinTime < mt {
			mt, ok = m.MinTime, true
		}
	}
	return mt, ok
}

func (bb *bucketBlocks) close() error {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	var errs []error
	for id, b := range bb.open {
		errs = append(errs, b.Close())
		delete(bb.open, id)
	}
	return errors.Join(errs...)
}

func objstoreRecursive() objstore.IterOption { return objstore.WithRecursiveIter() }
