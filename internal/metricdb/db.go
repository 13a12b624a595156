// Package metricdb is one tenant's time-series database around Sprout's own in-memory head
// (internal/metrichead): it writes the head out as Prometheus blocks with Prometheus' compactor, compacts blocks
// into larger ranges, applies retention and tombstones, and answers queries from the head and the blocks merged.
// Blocks stay Prometheus' format on purpose, so Prometheus, Mimir and Thanos tools read them.
//
// It owns the blocks in its directory; it does not own the head (the caller makes it, replays the write-ahead log
// into it and closes it) nor the write-ahead log. The metric store opens one per tenant.
package metricdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

// Suffixes of block directories being written or deleted; Prometheus' DB uses the same, so a directory either
// writes is cleaned up by the other.
const (
	tmpForDeletion = ".tmp-for-deletion"
	tmpForCreation = ".tmp-for-creation"
	tmpLegacy      = ".tmp"
)

// DB is a tenant's head and blocks.
type DB struct {
	dir       string
	logger    *slog.Logger
	opts      Options
	head      *metrichead.Head
	compactor *tsdb.LeveledCompactor
	chunkPool chunkenc.Pool
	cancel    context.CancelFunc // stops a compaction under way at Close
	metrics   *dbMetrics

	// cmtx serializes what changes the block set: compaction, reloads, deletes, tombstone cleaning, snapshots.
	cmtx sync.Mutex
	// mtx guards blocks. Queriers hold it (read) while they open their block readers, so a block is closed
	// only after the readers opened on it registered, and Block.Close waits for them.
	mtx    sync.RWMutex
	blocks []*tsdb.Block // by MinTime
	// cleaned are blocks a tombstone cleaning replaced (or emptied); the next reload deletes them. Prometheus
	// marks them in their in-memory meta, which is not ours to write. Guarded by cmtx.
	cleaned map[ulid.ULID]struct{}
	closed  bool // guarded by cmtx
}

type dbMetrics struct {
	reloads, reloadsFailed, compactionsFailed, timeRetentions, headCompactions prometheus.Counter
	blocksBytes                                                                prometheus.Gauge
}

// Open opens the blocks in dir around head, which the caller made with o.HeadOptions() and filled from the
// write-ahead log. Like Prometheus' DB it removes directories left by an interrupted block write or delete,
// skips a block whose meta.json cannot be read, deletes blocks a compacted block replaced, and fails on a block
// that cannot be opened unless a compacted block replaced it. Samples in the head older than the newest block's
// end are dropped: that block holds them.
func Open(dir string, logger *slog.Logger, reg prometheus.Registerer, head *metrichead.Head, o Options) (*DB, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("metric db options: %w", err)
	}
	if head == nil {
		return nil, errors.New("metric db: no head")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("metric db: make %s: %w", dir, err)
	}
	if err := removeTmpDirs(logger, dir); err != nil {
		return nil, fmt.Errorf("metric db: remove unfinished block directories: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db := &DB{dir: dir, logger: logger, opts: o, head: head, chunkPool: chunkenc.NewPool(), cancel: cancel,
		cleaned: map[ulid.ULID]struct{}{}}
	var err error
	db.compactor, err = tsdb.NewLeveledCompactorWithOptions(ctx, reg, logger, o.blockRanges(), db.chunkPool,
		tsdb.LeveledCompactorOptions{EnableOverlappingCompaction: true})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("metric db: compactor: %w", err)
	}
	db.metrics = newDBMetrics(db, reg)
	db.cmtx.Lock()
	err = db.reloadBlocks()
	db.cmtx.Unlock()
	if err != nil {
		cancel()
		db.closeBlocks()
		return nil, fmt.Errorf("metric db: open blocks in %s: %w", dir, err)
	}
	if maxt, ok := db.blocksMaxTime(); ok {
		if err := head.Truncate(maxt); err != nil {
			cancel()
			db.closeBlocks()
			return nil, fmt.Errorf("metric db: truncate head at the newest block: %w", err)
		}
	}
	return db, nil
}

func newDBMetrics(db *DB, reg prometheus.Registerer) *dbMetrics {
	f := promauto.With(reg)
	m := &dbMetrics{
		reloads: f.NewCounter(prometheus.CounterOpts{Name: "prometheus_tsdb_reloads_total",
			Help: "Number of times the database reloaded block data from disk."}),
		reloadsFailed: f.NewCounter(prometheus.CounterOpts{Name: "prometheus_tsdb_reloads_failures_total",
			Help: "Number of times the database failed to reloadBlocks block data from disk."}),
		compactionsFailed: f.NewCounter(prometheus.CounterOpts{Name: "prometheus_tsdb_compactions_failed_total",
			Help: "Total number of compactions that failed for the partition."}),
		timeRetentions: f.NewCounter(prometheus.CounterOpts{Name: "prometheus_tsdb_time_retentions_total",
			Help: "The number of times that blocks were deleted because the maximum time limit was exceeded."}),
		headCompactions: f.NewCounter(prometheus.CounterOpts{Name: "prometheus_tsdb_head_truncations_total",
			Help: "Total number of head truncations attempted."}),
		blocksBytes: f.NewGauge(prometheus.GaugeOpts{Name: "prometheus_tsdb_storage_blocks_bytes",
			Help: "The number of bytes that are currently used for local storage by all blocks."}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "prometheus_tsdb_blocks_loaded", Help: "Number of currently loaded data blocks"},
		func() float64 { return float64(len(db.Blocks())) })
	// The head's own figures, under the names Prometheus' head exports them by, so dashboards of Prometheus'
	// TSDB read them.
	h := db.head
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "prometheus_tsdb_head_series", Help: "Total number of series in the head block."},
		func() float64 { return float64(h.NumSeries()) })
	f.NewCounterFunc(prometheus.CounterOpts{Name: "prometheus_tsdb_head_samples_appended_total", Help: "Total number of appended samples."},
		func() float64 { return float64(h.NumSamples()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "prometheus_tsdb_head_min_time", Help: "Minimum time bound of the head block."},
		func() float64 { return float64(h.MinTime()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "prometheus_tsdb_head_max_time", Help: "Maximum timestamp of the head block."},
		func() float64 { return float64(h.MaxTime()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sprout_tsdb_head_out_of_order_samples", Help: "Out-of-order samples the head holds, not yet written out as blocks."},
		func() float64 { return float64(h.OOOSamples()) })
	return m
}

// removeTmpDirs removes block directories left half written or half deleted.
func removeTmpDirs(logger *slog.Logger, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !isTmpDir(e) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		logger.Info("Removed an unfinished block directory", "dir", p)
	}
	return nil
}

func isTmpDir(e fs.DirEntry) bool {
	if !e.IsDir() {
		return false
	}
	name := e.Name()
	ext := filepath.Ext(name)
	if ext != tmpForDeletion && ext != tmpForCreation && ext != tmpLegacy {
		return false
	}
	_, err := ulid.ParseStrict(strings.TrimSuffix(name, ext))
	return err == nil
}

// readMeta reads a block directory's meta.json.
func readMeta(dir string) (tsdb.BlockMeta, error) {
	var m tsdb.BlockMeta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode %s: %w", filepath.Join(dir, "meta.json"), err)
	}
	if m.Version != 1 {
		return m, fmt.Errorf("%s: unexpected meta file version %d", dir, m.Version)
	}
	return m, nil
}

// reloadBlocks opens the blocks in the directory that are not open yet, swaps the block set, and closes and
// deletes the blocks that are replaced by a compacted block, beyond retention, or cleaned of tombstones. The
// caller holds cmtx.
func (db *DB) reloadBlocks() (err error) {
	db.metrics.reloads.Inc()
	defer func() {
		if err != nil {
			db.metrics.reloadsFailed.Inc()
		}
	}()
	entries, err := os.ReadDir(db.dir)
	if err != nil {
		return fmt.Errorf("list blocks: %w", err)
	}
	db.mtx.RLock()
	open := map[ulid.ULID]*tsdb.Block{}
	for _, b := range db.blocks {
		open[b.Meta().ULID] = b
	}
	db.mtx.RUnlock()

	var loadable []*tsdb.Block
	corrupted := map[ulid.ULID]error{}
	for _, e := range entries {
		id, perr := ulid.ParseStrict(e.Name())
		if !e.IsDir() || perr != nil {
			continue
		}
		bdir := filepath.Join(db.dir, e.Name())
		meta, err := readMeta(bdir)
		if err != nil {
			db.logger.Error("Failed to read meta.json for a block during reload. Skipping", "dir", bdir, "err", err)
			continue
		}
		if b, ok := open[meta.ULID]; ok {
			loadable = append(loadable, b)
			continue
		}
		b, err := tsdb.OpenBlock(db.logger, bdir, db.chunkPool, nil)
		if err != nil {
			corrupted[id] = err
			continue
		}
		loadable = append(loadable, b)
	}

	deletable := map[ulid.ULID]*tsdb.Block{}
	var toDelete map[ulid.ULID]struct{}
	if db.opts.BlocksToDelete != nil {
		toDelete = db.opts.BlocksToDelete(slices.Clone(loadable))
	} else {
		toDelete = db.defaultBlocksToDelete(slices.Clone(loadable))
	}
	if toDelete == nil {
		toDelete = map[ulid.ULID]struct{}{}
	}
	for id := range db.cleaned {
		toDelete[id] = struct{}{}
	}
	for _, b := range loadable {
		if _, ok := toDelete[b.Meta().ULID]; ok {
			deletable[b.Meta().ULID] = b
		}
		// Parents of a loaded block go whether or not they are open: a crash between writing a compacted block
		// and deleting its parents is finished here.
		for _, p := range b.Meta().Compaction.Parents {
			delete(corrupted, p.ULID)
			if _, ok := deletable[p.ULID]; !ok {
				deletable[p.ULID] = nil
			}
		}
	}
	if len(corrupted) > 0 {
		for _, b := range loadable {
			if _, wasOpen := open[b.Meta().ULID]; !wasOpen {
				b.Close()
			}
		}
		var errs []error
		for id, err := range corrupted {
			errs = append(errs, fmt.Errorf("corrupted block %s: %w", id, err))
		}
		return errors.Join(errs...)
	}

	var toLoad []*tsdb.Block
	var size int64
	for _, b := range loadable {
		if _, ok := deletable[b.Meta().ULID]; ok {
			deletable[b.Meta().ULID] = b
			continue
		}
		toLoad = append(toLoad, b)
		size += b.Size()
	}
	slices.SortFunc(toLoad, func(a, b *tsdb.Block) int {
		switch am, bm := a.Meta().MinTime, b.Meta().MinTime; {
		case am < bm:
			return -1
		case am > bm:
			return 1
		}
		return 0
	})
	db.metrics.blocksBytes.Set(float64(size))

	db.mtx.Lock()
	old := db.blocks
	db.blocks = toLoad
	db.mtx.Unlock()

	for _, b := range old {
		if _, ok := deletable[b.Meta().ULID]; ok {
			deletable[b.Meta().ULID] = b
		}
	}
	return db.deleteBlocks(deletable)
}

// defaultBlocksToDelete is Prometheus' choice: blocks marked deletable by a compaction that left them empty, and
// blocks beyond time retention.
func (db *DB) defaultBlocksToDelete(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
	del := map[ulid.ULID]struct{}{}
	for _, b := range blocks {
		if b.Meta().Compaction.Deletable {
			del[b.Meta().ULID] = struct{}{}
		}
	}
	for id := range db.beyondTimeRetention(blocks) {
		del[id] = struct{}{}
	}
	return del
}

// beyondTimeRetention is the blocks whose end is RetentionDuration or more before the newest block's end, as
// Prometheus' BeyondTimeRetention chooses them (the newest block itself always stays).
func (db *DB) beyondTimeRetention(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
	ret := db.opts.RetentionDuration.Milliseconds()
	if len(blocks) == 0 || ret == 0 {
		return nil
	}
	slices.SortFunc(blocks, func(a, b *tsdb.Block) int {
		switch am, bm := a.Meta().MaxTime, b.Meta().MaxTime; {
		case am > bm:
			return -1
		case am < bm:
			return 1
		}
		return 0
	})
	del := map[ulid.ULID]struct{}{}
	for i, b := range blocks {
		if i > 0 && blocks[0].Meta().MaxTime-b.Meta().MaxTime >= ret {
			for _, d := range blocks[i:] {
				del[d.Meta().ULID] = struct{}{}
			}
			db.metrics.timeRetentions.Inc()
			break
		}
	}
	return del
}

// deleteBlocks closes the open ones among blocks, which waits for their readers, and removes their directories,
// renaming each first so that a crash leaves no half-deleted block that looks whole.
func (db *DB) deleteBlocks(blocks map[ulid.ULID]*tsdb.Block) error {
	for id, b := range blocks {
		if b != nil {
			if err := b.Close(); err != nil {
				db.logger.Warn("Closing block failed", "block", id, "err", err)
			}
		}
		delete(db.cleaned, id)
		dir := filepath.Join(db.dir, id.String())
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("stat block %s: %w", id, err)
		}
		tmp := dir + tmpForDeletion
		if err := os.Rename(dir, tmp); err != nil {
			return fmt.Errorf("rename obsolete block %s for deletion: %w", id, err)
		}
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("delete obsolete block %s: %w", id, err)
		}
		db.logger.Info("Deleted obsolete block", "block", id)
	}
	return nil
}

// blocksMaxTime is the newest block's end.
func (db *DB) blocksMaxTime() (int64, bool) {
	maxt, ok := int64(math.MinInt64), false
	for _, b := range db.Blocks() {
		if m := b.Meta(); !m.Compaction.FromOutOfOrder() && m.MaxTime > maxt {
			maxt, ok = m.MaxTime, true
		}
	}
	return maxt, ok
}

// Run compacts and applies retention every CompactInterval until ctx ends, and writes out-of-order samples out
// as soon as the head holds OOOFlushSamples of them (checked every second, so that a fast backfill does not
// wait a compaction interval in memory). A failed round is logged and tried again next round.
func (db *DB) Run(ctx context.Context) {
	t := time.NewTicker(db.opts.CompactInterval)
	defer t.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err = db.Compact(ctx)
		case <-poll.C:
			if n := db.opts.OOOFlushSamples; n > 0 && db.head.OOOSamples() >= n {
				err = db.FlushOOO()
			}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			db.logger.Error("Compaction failed", "err", err)
		}
	}
}

// FlushOOO writes the head's out-of-order samples out as blocks now.
func (db *DB) FlushOOO() error {
	db.cmtx.Lock()
	defer db.cmtx.Unlock()
	if db.closed {
		return errors.New("metric db: closed")
	}
	if err := db.compactOOO(); err != nil {
		db.metrics.compactionsFailed.Inc()
		return err
	}
	return nil
}

// headCompactable is Prometheus' rule: the head spans more than one and a half block ranges, so the oldest range
// is half a range behind the newest sample and no longer written.
func (db *DB) headCompactable() bool {
	mint, maxt := db.head.MinTime(), db.head.MaxTime()
	if mint > maxt {
		return false
	}
	return maxt-mint > db.opts.MinBlockDuration.Milliseconds()/2*3
}

// rangeEnd is the end of the block range holding t.
func rangeEnd(t, width int64) int64 {
	start := t - t%width
	if t%width < 0 {
		start -= width
	}
	return start + width
}

// Compact writes the head's complete block ranges out as blocks and truncates the head behind them, then
// compacts blocks into larger ranges and applies retention, as Prometheus' DB does. It waits for queriers open on
// the parts of the head it truncates and on the blocks it deletes.
func (db *DB) Compact(ctx context.Context) (err error) {
	db.cmtx.Lock()
	defer db.cmtx.Unlock()
	if db.closed {
		return errors.New("metric db: closed")
	}
	defer func() {
		if err != nil && !errors.Is(err, context.Canceled) {
			db.metrics.compactionsFailed.Inc()
		}
	}()
	if err := db.reloadBlocks(); err != nil {
		return fmt.Errorf("reload blocks: %w", err)
	}
	compacted := false
	for db.headCompactable() {
		if err := ctx.Err(); err != nil {
			return err
		}
		mint := db.head.MinTime()
		maxt := rangeEnd(mint, db.opts.MinBlockDuration.Milliseconds())
		if err := db.compactHead(mint, maxt); err != nil {
			return err
		}
		compacted = true
	}
	// Out-of-order samples go out after each head compaction, as in Prometheus, or when there are many.
	if n := db.head.OOOSamples(); n > 0 && (compacted || (db.opts.OOOFlushSamples > 0 && n >= db.opts.OOOFlushSamples)) {
		if err := db.compactOOO(); err != nil {
			return err
		}
	}
	return db.compactBlocks(ctx)
}

// compactOOO writes the head's out-of-order samples out as blocks, one per block range they reach, marked out of
// order; the planner then compacts them with the blocks they overlap. The caller holds cmtx.
func (db *DB) compactOOO() error {
	mint, maxt, ok, err := db.head.BeginOOOFlush()
	if err != nil || !ok {
		return err
	}
	width := db.opts.MinBlockDuration.Milliseconds()
	meta := &tsdb.BlockMeta{}
	meta.Compaction.SetOutOfOrder()
	var ids []ulid.ULID
	for start := rangeEnd(mint, width) - width; start <= maxt; start += width {
		got, err := db.compactor.Write(db.dir, db.head.OOOFlushRange(start, start+width-1), start, start+width, meta)
		if err != nil {
			return errors.Join(fmt.Errorf("write out-of-order block [%d, %d): %w", start, start+width, err), db.removeBlocks(ids))
		}
		ids = append(ids, got...)
	}
	if err := db.reloadBlocks(); err != nil {
		return errors.Join(fmt.Errorf("reload blocks after writing out-of-order blocks: %w", err), db.removeBlocks(ids))
	}
	if err := db.head.EndOOOFlush(); err != nil {
		return fmt.Errorf("end out-of-order flush: %w", err)
	}
	return nil
}

// removeBlocks removes the directories of blocks written but not loaded.
func (db *DB) removeBlocks(ids []ulid.ULID) error {
	var errs []error
	for _, id := range ids {
		if err := os.RemoveAll(filepath.Join(db.dir, id.String())); err != nil {
			errs = append(errs, fmt.Errorf("remove block %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// compactHead writes the head's samples in [mint, maxt) as a block, adds it to the block set and truncates the
// head at maxt. The caller holds cmtx.
func (db *DB) compactHead(mint, maxt int64) error {
	db.metrics.headCompactions.Inc()
	// New appends to the range are refused (AppendableMinValidTime); those already holding samples in it land
	// before the block is written.
	db.head.WaitForAppendersOverlapping(maxt)
	// Block ranges are half-open and chunk ranges closed: the head is read up to maxt-1.
	ids, err := db.compactor.Write(db.dir, db.head.Range(mint, maxt-1), mint, maxt, nil)
	if err != nil {
		return fmt.Errorf("write head block [%d, %d): %w", mint, maxt, err)
	}
	if err := db.reloadBlocks(); err != nil {
		errs := []error{fmt.Errorf("reload blocks after writing the head block: %w", err)}
		for _, id := range ids {
			if rerr := os.RemoveAll(filepath.Join(db.dir, id.String())); rerr != nil {
				errs = append(errs, fmt.Errorf("remove head block %s after a failed reload: %w", id, rerr))
			}
		}
		return errors.Join(errs...)
	}
	if err := db.head.Truncate(maxt); err != nil {
		return fmt.Errorf("truncate head at %d: %w", maxt, err)
	}
	return nil
}

// compactBlocks compacts blocks as the compactor plans until there is nothing to do. It stops early when the
// head has a block range to write, which comes first. The caller holds cmtx.
func (db *DB) compactBlocks(ctx context.Context) error {
	for {
		if db.headCompactable() {
			db.logger.Warn("Stopping block compaction to write the head first")
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		plan, err := db.compactor.Plan(db.dir)
		if err != nil {
			return fmt.Errorf("plan compaction: %w", err)
		}
		if len(plan) == 0 {
			return nil
		}
		ids, err := db.compactor.Compact(db.dir, plan, db.Blocks())
		if err != nil {
			return fmt.Errorf("compact %s: %w", plan, err)
		}
		if err := db.reloadBlocks(); err != nil {
			errs := []error{fmt.Errorf("reload blocks after compaction: %w", err)}
			for _, id := range ids {
				if rerr := os.RemoveAll(filepath.Join(db.dir, id.String())); rerr != nil {
					errs = append(errs, fmt.Errorf("remove compacted block %s after a failed reload: %w", id, rerr))
				}
			}
			return errors.Join(errs...)
		}
	}
}

// Blocks are the open blocks by MinTime. The slice is not changed afterwards; a reload makes a new one.
func (db *DB) Blocks() []*tsdb.Block {
	db.mtx.RLock()
	defer db.mtx.RUnlock()
	return db.blocks
}

// BlockMetas are the open blocks' metas by MinTime.
func (db *DB) BlockMetas() []tsdb.BlockMeta {
	blocks := db.Blocks()
	out := make([]tsdb.BlockMeta, 0, len(blocks))
	for _, b := range blocks {
		out = append(out, b.Meta())
	}
	return out
}

// Head is the DB's head.
func (db *DB) Head() *metrichead.Head { return db.head }

// Dir is the DB's directory.
func (db *DB) Dir() string { return db.dir }

// StartTime is the oldest block's start, or the head's oldest sample when there is no block.
func (db *DB) StartTime() (int64, error) {
	db.mtx.RLock()
	defer db.mtx.RUnlock()
	if len(db.blocks) > 0 {
		return db.blocks[0].Meta().MinTime, nil
	}
	return db.head.MinTime(), nil
}

// Querier reads [mint, maxt] from the head and the blocks that overlap it, merged; a series in both (a head
// range written out but not yet truncated) is deduplicated.
func (db *DB) Querier(mint, maxt int64) (storage.Querier, error) {
	qs, err := openQueriers(db, mint, maxt, db.head.Querier, db.head.OOOQuerier, tsdb.NewBlockQuerier)
	if err != nil {
		return nil, err
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// ChunkQuerier is Querier's chunk form; overlapping chunks of a series are merged into new ones.
func (db *DB) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	qs, err := openQueriers(db, mint, maxt, db.head.ChunkQuerier, db.head.OOOChunkQuerier, tsdb.NewBlockChunkQuerier)
	if err != nil {
		return nil, err
	}
	return storage.NewMergeChunkQuerier(qs, nil, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)), nil
}

// openQueriers opens a querier of the head (when the range reaches it) and of each block overlapping [mint,
// maxt], under the block set's lock, so that a block deleted after it is still read to the end (Block.Close
// waits for its readers). On an error the ones opened are closed.
func openQueriers[Q interface{ Close() error }](db *DB, mint, maxt int64, head, ooo func(int64, int64) (Q, error),
	block func(tsdb.BlockReader, int64, int64) (Q, error),
) (qs []Q, err error) {
	defer func() {
		if err != nil {
			for _, q := range qs {
				_ = q.Close()
			}
		}
	}()
	db.mtx.RLock()
	defer db.mtx.RUnlock()
	if maxt >= db.head.MinTime() {
		q, err := head(mint, maxt)
		if err != nil {
			return qs, fmt.Errorf("open head querier: %w", err)
		}
		qs = append(qs, q)
	}
	if db.head.OOOSamples() > 0 {
		q, err := ooo(mint, maxt)
		if err != nil {
			return qs, fmt.Errorf("open out-of-order querier: %w", err)
		}
		qs = append(qs, q)
	}
	for _, b := range db.blocks {
		if !b.OverlapsClosedInterval(mint, maxt) {
			continue
		}
		q, err := block(b, mint, maxt)
		if err != nil {
			return qs, fmt.Errorf("open querier for block %s: %w", b.Meta().ULID, err)
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// Delete marks the samples in [mint, maxt] of the series matching ms as deleted, in the blocks (their tombstone
// files) and in the head. Each block and the head is changed on its own: an error can leave some changed.
func (db *DB) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	db.cmtx.Lock()
	defer db.cmtx.Unlock()
	db.mtx.RLock()
	defer db.mtx.RUnlock()
	for _, b := range db.blocks {
		if !b.OverlapsClosedInterval(mint, maxt) {
			continue
		}
		if err := b.Delete(ctx, mint, maxt, ms...); err != nil {
			return fmt.Errorf("delete from block %s: %w", b.Meta().ULID, err)
		}
	}
	if err := db.head.Delete(ctx, mint, maxt, ms...); err != nil {
		return fmt.Errorf("delete from head: %w", err)
	}
	return nil
}

// CleanTombstones rewrites each block that has tombstones without the deleted samples and deletes the old one
// (once its readers are done).
func (db *DB) CleanTombstones() error {
	db.cmtx.Lock()
	defer db.cmtx.Unlock()
	for again := true; again; {
		again = false
		for _, b := range db.Blocks() {
			ids, replaced, err := b.CleanTombstones(db.dir, db.compactor)
			if err != nil {
				return fmt.Errorf("clean tombstones of block %s: %w", b.Meta().ULID, err)
			}
			if !replaced {
				continue
			}
			// The new block names the old as its parent, but when every sample was deleted there is no new
			// block to say so.
			db.cleaned[b.Meta().ULID] = struct{}{}
			if err := db.reloadBlocks(); err != nil {
				for _, id := range ids {
					if rerr := os.RemoveAll(filepath.Join(db.dir, id.String())); rerr != nil {
						db.logger.Error("Removing a cleaned block after a failed reload failed", "block", id, "err", rerr)
					}
				}
				return fmt.Errorf("reload blocks after cleaning tombstones: %w", err)
			}
			again = true // the block set changed
			break
		}
	}
	return nil
}

// Snapshot writes the DB into dir as Prometheus blocks: hard links to the blocks and, withHead, the head written
// as one more block.
func (db *DB) Snapshot(dir string, withHead bool) error {
	if filepath.Clean(dir) == filepath.Clean(db.dir) {
		return errors.New("metric db snapshot: cannot snapshot into the db's own directory")
	}
	if _, err := ulid.ParseStrict(filepath.Base(dir)); err == nil {
		return errors.New("metric db snapshot: the directory's name must not be a block id")
	}
	db.cmtx.Lock()
	defer db.cmtx.Unlock()
	db.mtx.RLock()
	defer db.mtx.RUnlock()
	for _, b := range db.blocks {
		if err := b.Snapshot(dir); err != nil {
			return fmt.Errorf("metric db snapshot: block %s: %w", b.Meta().ULID, err)
		}
	}
	if !withHead {
		return nil
	}
	mint, maxt := db.head.MinTime(), db.head.MaxTime()
	if mint > maxt {
		return nil
	}
	if _, err := db.compactor.Write(dir, db.head.Range(mint, maxt), mint, maxt+1, nil); err != nil {
		return fmt.Errorf("metric db snapshot: head block: %w", err)
	}
	return nil
}

// Close stops a compaction under way, waits for it, and closes the blocks, which waits for their readers. The
// head is the caller's to close.
func (db *DB) Close() error {
	db.cancel()
	db.cmtx.Lock()
	defer db.cmtx.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	return db.closeBlocks()
}

func (db *DB) closeBlocks() error {
	db.mtx.Lock()
	defer db.mtx.Unlock()
	var errs []error
	for _, b := range db.blocks {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close block %s: %w", b.Meta().ULID, err))
		}
	}
	db.blocks = nil
	return errors.Join(errs...)
}
