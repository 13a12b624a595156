// Package metrichead is Sprout's in-memory head for float samples: the recent data of one tenant's metrics,
// kept smaller per series than Prometheus' head (see docs/metrics.md) and read by Prometheus' own TSDB code. A
// head answers as a tsdb.BlockReader, so the TSDB's block querier serves PromQL from it and its compactor writes
// it out as a Prometheus block, the format Mimir and Thanos read.
package metrichead

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/tombstones"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// Options shape a head.
type Options struct {
	// ChunkRange is the block range in milliseconds: no chunk crosses a multiple of it, so each chunk lands in
	// one block.
	ChunkRange int64
	// SamplesPerChunk is when an open chunk is closed (Prometheus' default is 120).
	SamplesPerChunk int
	// SeriesCallback, when set, is asked before a series is made (its error refuses the series: a limit) and told
	// after one is made or collected, as Prometheus' head does with the same interface.
	SeriesCallback tsdb.SeriesLifecycleCallback
	// MaxExemplars is how many exemplars the head keeps (Prometheus' circular storage); 0 keeps none.
	MaxExemplars int64
	// OutOfOrderTimeWindow, in milliseconds, accepts a sample this much older than the head's newest sample
	// that cannot go in order (ooo.go); 0 refuses such samples, as Prometheus' default does.
	OutOfOrderTimeWindow int64
	// ChunksDir, when set, is where full pages of closed chunks are written and memory-mapped from. Its
	// contents are scratch: Open clears it and the write-ahead log rebuilds them.
	ChunksDir string
}

// DefaultOptions are Prometheus' defaults: 2-hour blocks, 120 samples a chunk.
func DefaultOptions() Options {
	return Options{ChunkRange: 2 * 60 * 60 * 1000, SamplesPerChunk: 120}
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.ChunkRange <= 0 {
		return fmt.Errorf("chunk range must be positive, got %d", o.ChunkRange)
	}
	if o.SamplesPerChunk < 2 || o.SamplesPerChunk > math.MaxUint16 {
		return fmt.Errorf("samples per chunk must be between 2 and %d, got %d", math.MaxUint16, o.SamplesPerChunk)
	}
	if o.OutOfOrderTimeWindow < 0 {
		return fmt.Errorf("out-of-order time window must not be negative, got %d", o.OutOfOrderTimeWindow)
	}
	return nil
}

const (
	seriesPage  = 4096 // series are allocated in pages of this many, so a *series stays valid
	lockStripes = 1024 // a series' samples are guarded by one of these locks, chosen by its ref
)

// series is one series' labels and samples: 96 bytes plus its open chunk's bytes.
type series struct {
	labels    uint64     // arena address of the encoded label set
	chunk     []byte     // open chunk (XOR), nil when none
	st        xorState   // appender state of chunk; st.t is the newest timestamp whether or not chunk is open
	chunkMinT int64      // first timestamp of chunk
	closed    []chunkRef // closed chunks, ascending in time
}

// kill marks a collected series dead and drops its samples; the caller holds mu and the series' lock. The
// labels word is written last and atomically: get and LabelsMatch read it without either lock.
func (s *series) kill() {
	s.chunk, s.st, s.chunkMinT, s.closed = nil, xorState{}, 0, nil
	atomic.StoreUint64(&s.labels, deadLabels)
}

// chunkRef is a closed chunk: its time range and where its bytes are in the chunk pages.
type chunkRef struct {
	minT, maxT int64
	addr       uint64
}

// Head holds recent float samples in memory.
type Head struct {
	opts Options

	mu         sync.RWMutex // guards the registry's writes: pages, count, byHash, dupHash, lbls, post
	pages      [][]series
	count      atomic.Uint32 // refs 1..count were handed out; stored under mu after the series is made
	view       atomic.Pointer[registryView]
	live       int     // series not collected
	seriesLive []int32 // live series per page of pages
	labelLive  []int32 // live label sets per arena page
	byHash     map[uint64]uint32
	dupHash    map[uint64][]uint32 // further series whose labels hash like byHash's
	lbls       arena
	post       postings
	scratch    []byte
	locks      [lockStripes]sync.Mutex // a series' samples; taken after mu, never before
	chunks     chunkPages
	hists      histograms
	exemplars  tsdb.ExemplarStorage // nil without exemplars
	meta       metaTable
	metaIDs    [][]uint32 // metadata id of each series, page by page beside pages
	minT       atomic.Int64
	maxT       atomic.Int64
	minValid   atomic.Int64 // samples before it are out of bounds: their block was written
	samples    atomic.Uint64
	dropped    atomic.Uint64             // samples a commit dropped (made invalid by a concurrent commit)
	tombs      *tombstones.MemTombstones // deleted intervals by series ref (tombstones.go)
	ooo        oooState                  // out-of-order samples (ooo.go)

	wal    *wlog.WL // nil for a head without a log (New)
	logger *slog.Logger

	appMu     sync.Mutex // guards appenders
	appDone   *sync.Cond // signalled when an appender commits or rolls back
	appenders map[*Appender]struct{}

	truncMu sync.Mutex // one truncation at a time
	readMu  sync.Mutex // guards readers
	readEnd *sync.Cond // signalled when a reader closes
	readers map[*RangeHead]int
}

// registryView is the registry as the lock-free readers (get, LabelsMatch) see it: its pages as of the last page
// added or freed. Every sample's append and reference check reads the registry, from every core, and a read
// lock there was a cache line the cores took turns to write. A view with a new page is published before count
// covers a series in it, so a reader that loads count and then the view finds every series up to count.
type registryView struct {
	series [][]series
	labels [][]byte // the label arena's pages, each sliced to its capacity
}

// publishView stores the registry's pages as the readers' view; the caller holds mu.
func (h *Head) publishView() {
	v := &registryView{series: slices.Clone(h.pages), labels: make([][]byte, len(h.lbls.pages))}
	for i, p := range h.lbls.pages {
		v.labels[i] = p[:cap(p)]
	}
	h.view.Store(v)
}

// acquire and release count the open index and chunk readers of a range, so that truncation waits for readers
// that may still look at what it drops.
// A range's first reader starts the range at the truncation point when a truncation raised it since the range
// was made: what is before is being dropped (a block holds it). Waiting for the drop instead could wait for a
// reader the same caller holds open, which the truncation waits for in turn.
func (h *Head) acquire(r *RangeHead) {
	h.readMu.Lock()
	if h.readers[r] == 0 {
		r.mint = max(r.mint, h.minValid.Load())
	}
	h.readers[r]++
	h.readMu.Unlock()
}

func (h *Head) release(r *RangeHead) {
	h.readMu.Lock()
	if h.readers[r]--; h.readers[r] <= 0 {
		delete(h.readers, r)
	}
	h.readEnd.Broadcast()
	h.readMu.Unlock()
}

// waitReaders returns when no open reader's range starts before mint; the caller holds readMu.
func (h *Head) waitReaders(mint int64) {
	for {
		waiting := false
		for r := range h.readers {
			if r.mint < mint {
				waiting = true
				break
			}
		}
		if !waiting {
			return
		}
		h.readEnd.Wait()
	}
}

// New makes an empty head.
func New(o Options) (*Head, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("metric head options: %w", err)
	}
	h := &Head{opts: o, byHash: map[uint64]uint32{}, dupHash: map[uint64][]uint32{}, post: newPostings(),
		readers: map[*RangeHead]int{}, logger: slog.New(slog.DiscardHandler),
		tombs: tombstones.NewMemTombstones()}
	h.readEnd = sync.NewCond(&h.readMu)
	h.appenders = map[*Appender]struct{}{}
	var err error
	if h.exemplars, err = newExemplars(o); err != nil {
		return nil, fmt.Errorf("metric head: exemplar storage: %w", err)
	}
	h.appDone = sync.NewCond(&h.appMu)
	h.minT.Store(math.MaxInt64)
	h.maxT.Store(math.MinInt64)
	h.minValid.Store(math.MinInt64)
	h.view.Store(&registryView{})
	if o.ChunksDir != "" {
		if err := os.RemoveAll(o.ChunksDir); err != nil {
			return nil, fmt.Errorf("metric head: clear chunks directory: %w", err)
		}
		if err := os.MkdirAll(o.ChunksDir, 0o755); err != nil {
			return nil, fmt.Errorf("metric head: chunks directory: %w", err)
		}
		h.chunks.dir = o.ChunksDir
	}
	return h, nil
}

// AppendableMinValidTime is the oldest timestamp an Appender accepts: not before the last truncation point, and
// not more than half a block range behind the newest sample, as in Prometheus' head. Writing a block of a range
// that old does not race with new appends, only with appenders already holding samples in it
// (WaitForAppendersOverlapping).
func (h *Head) AppendableMinValidTime() int64 {
	mv := h.minValid.Load()
	mt := h.maxT.Load()
	if mt == math.MinInt64 || mt < math.MinInt64+h.opts.ChunkRange/2 {
		return mv
	}
	return max(mv, mt-h.opts.ChunkRange/2)
}

// WaitForAppendersOverlapping returns when no appender holds an uncommitted sample before maxt.
func (h *Head) WaitForAppendersOverlapping(maxt int64) {
	h.appMu.Lock()
	defer h.appMu.Unlock()
	for {
		overlapping := false
		for a := range h.appenders {
			if a.mint < maxt {
				overlapping = true
				break
			}
		}
		if !overlapping {
			return
		}
		h.appDone.Wait()
	}
}

// MinTime and MaxTime bound the samples in the head; MinTime > MaxTime when it holds none.
func (h *Head) MinTime() int64 { return h.minT.Load() }
func (h *Head) MaxTime() int64 { return h.maxT.Load() }

// NumSeries is how many series the head has.
func (h *Head) NumSeries() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return uint64(h.live)
}

// NumSamples is how many samples were appended since the head was made.
func (h *Head) NumSamples() uint64 { return h.samples.Load() }

// deadLabels marks a series removed by garbage collection; its ref is not handed out again.
const deadLabels = ^uint64(0)

// seriesAt returns series ref, nil when its page was freed; the caller holds mu and knows ref ≤ count.
// Reading a series' labels without mu (get, LabelsMatch) is atomic, as are their writes.
func (h *Head) seriesAt(ref uint32) *series {
	i := ref - 1
	p := h.pages[i/seriesPage]
	if p == nil {
		return nil
	}
	return &p[i%seriesPage]
}

// get returns the live series ref or nil, without a lock. A series collected after get is seen dead
// (labels == deadLabels) under its lock.
func (h *Head) get(ref uint32) *series {
	if s := h.viewSeries(ref); s != nil && atomic.LoadUint64(&s.labels) != deadLabels {
		return s
	}
	return nil
}

// viewSeries returns series ref from the readers' view, nil when there is none or its page was freed.
func (h *Head) viewSeries(ref uint32) *series {
	if ref == 0 || ref > h.count.Load() {
		return nil
	}
	p := h.view.Load().series[(ref-1)/seriesPage]
	if p == nil {
		return nil
	}
	return &p[(ref-1)%seriesPage]
}

// Lookup returns the ref of the series with these labels, or 0.
func (h *Head) Lookup(lset labels.Labels) uint32 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.lookupLocked(lset.Hash(), lset)
}

func (h *Head) lookupLocked(hash uint64, lset labels.Labels) uint32 {
	ref, ok := h.byHash[hash]
	if !ok {
		return 0
	}
	if equalLabels(h.lbls.get(h.seriesAt(ref).labels), lset) {
		return ref
	}
	for _, r := range h.dupHash[hash] {
		if equalLabels(h.lbls.get(h.seriesAt(r).labels), lset) {
			return r
		}
	}
	return 0
}

// GetOrCreate returns the ref of the series with lset, creating it when new. lset must be sorted, without
// empty values or repeated names (the callers validate it first).
func (h *Head) GetOrCreate(lset labels.Labels) (ref uint32, created bool, err error) {
	hash := lset.Hash()
	h.mu.RLock()
	ref = h.lookupLocked(hash, lset)
	h.mu.RUnlock()
	if ref != 0 {
		return ref, false, nil
	}
	// Asked outside the registry's lock: a callback may read the head (a limit counts its series).
	if cb := h.opts.SeriesCallback; cb != nil {
		if err := cb.PreCreation(lset); err != nil {
			return 0, false, err
		}
	}
	h.mu.Lock()
	if ref = h.lookupLocked(hash, lset); ref != 0 {
		h.mu.Unlock()
		return ref, false, nil
	}
	if h.count.Load() == math.MaxUint32-1 {
		h.mu.Unlock()
		return 0, false, errors.New("metric head: series refs exhausted")
	}
	ref = h.createLocked(hash, lset)
	h.mu.Unlock()
	if cb := h.opts.SeriesCallback; cb != nil {
		cb.PostCreation(lset)
	}
	return ref, true, nil
}

func (h *Head) createLocked(hash uint64, lset labels.Labels) uint32 {
	ref := h.count.Load() + 1
	grown := false
	if int(ref-1)/seriesPage == len(h.pages) {
		h.pages = append(h.pages, make([]series, seriesPage))
		h.metaIDs = append(h.metaIDs, make([]uint32, seriesPage))
		grown = true
	}
	h.scratch = encodeLabels(h.scratch[:0], lset)
	labelPages := len(h.lbls.pages)
	addr := h.lbls.put(h.scratch)
	if grown || len(h.lbls.pages) != labelPages {
		h.publishView()
	}
	atomic.StoreUint64(&h.seriesAt(ref).labels, addr)
	h.count.Store(ref)
	h.live++
	if page := int(ref-1) / seriesPage; page == len(h.seriesLive) {
		h.seriesLive = append(h.seriesLive, 0)
	}
	h.seriesLive[(ref-1)/seriesPage]++
	page, _ := splitAddr(addr)
	for len(h.labelLive) <= page {
		h.labelLive = append(h.labelLive, 0)
	}
	h.labelLive[page]++
	if _, ok := h.byHash[hash]; ok {
		h.dupHash[hash] = append(h.dupHash[hash], ref)
	} else {
		h.byHash[hash] = ref
	}
	rangeLabels(h.lbls.get(addr), func(n, v string) bool { h.post.add(n, v, ref); return true })
	return ref
}

// Append adds sample (t, v) to series ref, in order only (WAL replay: the write-behind log brings back the
// samples that went out of order). A sample at the newest timestamp with the same value is accepted and not
// stored again, as Prometheus does; errors are storage's own (out of order, duplicate, out of bounds).
func (h *Head) Append(ref uint32, t int64, v float64) error {
	_, err := h.appendFloat(ref, t, v, replayInOrder)
	return err
}

// appendFloat is Append as p says; ooo reports a sample that went to the out-of-order samples (ooo.go).
func (h *Head) appendFloat(ref uint32, t int64, v float64, p placement) (ooo bool, err error) {
	s := h.get(ref)
	if s == nil {
		return false, fmt.Errorf("metric head: series %d: %w", ref, storage.ErrNotFound)
	}
	lock := &h.locks[ref%lockStripes]
	lock.Lock()
	if p != replayInOrder && s.st.pending > 0 {
		s.st.pending--
	}
	if s.labels == deadLabels {
		lock.Unlock()
		return false, fmt.Errorf("metric head: series %d: %w", ref, storage.ErrNotFound)
	}
	if p == commitOOO {
		err := h.insertOOO(ref, oooSample{t: t, v: v})
		lock.Unlock()
		return err == nil, err
	}
	var dup bool
	if t < h.minValid.Load() {
		err = storage.ErrOutOfBounds
	} else {
		dup, err = h.appendable(ref, s, t, v)
	}
	if err != nil && p == commitInOrder && h.oooAllowed(t, err) {
		// Made out of order by a concurrent commit, or by a block written meanwhile.
		err = h.insertOOO(ref, oooSample{t: t, v: v})
		lock.Unlock()
		return err == nil, err
	}
	if dup || err != nil {
		lock.Unlock()
		return false, err
	}
	if s.st.hasHist { // a float after histograms: their chunk ends, so the series' chunks do not overlap
		if hs := h.hists.get(ref); hs != nil && hs.chunk != nil {
			h.closeHistChunk(hs)
		}
	}
	if s.chunk != nil && (chunkSamples(s.chunk) >= h.opts.SamplesPerChunk || t >= h.rangeEnd(s.chunkMinT)) {
		h.closeChunk(s)
	}
	if s.chunk == nil {
		s.chunk = newChunk(32)
		s.chunkMinT = t
		s.st.free = 0
	}
	s.chunk = xorAppend(s.chunk, &s.st, t, v)
	lock.Unlock()

	h.samples.Add(1)
	for mt := h.minT.Load(); t < mt && !h.minT.CompareAndSwap(mt, t); mt = h.minT.Load() {
	}
	for mt := h.maxT.Load(); t > mt && !h.maxT.CompareAndSwap(mt, t); mt = h.maxT.Load() {
	}
	return false, nil
}

// eachSeries calls fn for every live series in ref order, holding the series' lock; series made meanwhile may
// be left out.
func (h *Head) eachSeries(fn func(ref uint32, s *series)) {
	n := h.count.Load()
	for ref := uint32(1); ref <= n; ref++ {
		s := h.get(ref)
		if s == nil {
			continue
		}
		lock := &h.locks[ref%lockStripes]
		lock.Lock()
		fn(ref, s)
		lock.Unlock()
	}
}

// rangeEnd is the end of the block range t falls in.
func (h *Head) rangeEnd(t int64) int64 {
	r := h.opts.ChunkRange
	start := t - t%r
	if t%r < 0 {
		start -= r
	}
	return start + r
}

// closeChunk moves s's open chunk to the chunk pages; the caller holds s's lock.
func (h *Head) closeChunk(s *series) {
	addr := h.chunks.put(s.chunk, s.st.t)
	s.closed = append(s.closed, chunkRef{minT: s.chunkMinT, maxT: s.st.t, addr: addr})
	s.chunk = nil
}

// Truncate drops the samples before mint, which a block now holds, and refuses samples before it from then on;
// series left without samples are collected (gc.go). It waits for open readers whose range starts before mint.
// Series stay registered (their refs stay valid) even when they hold no samples.
func (h *Head) Truncate(mint int64) error {
	h.truncMu.Lock()
	defer h.truncMu.Unlock()
	h.readMu.Lock()
	if mint > h.minValid.Load() {
		h.minValid.Store(mint)
	}
	h.waitReaders(mint)
	h.readMu.Unlock()
	newMin := int64(math.MaxInt64)
	h.eachSeries(func(ref uint32, s *series) {
		i := 0
		for i < len(s.closed) && s.closed[i].maxT < mint {
			i++
		}
		if i > 0 {
			s.closed = append(s.closed[:0:0], s.closed[i:]...)
		}
		if s.chunk != nil && s.st.t < mint {
			s.chunk = nil
		}
		switch {
		case len(s.closed) > 0:
			newMin = min(newMin, s.closed[0].minT)
		case s.chunk != nil:
			newMin = min(newMin, s.chunkMinT)
		}
		if s.st.hasHist {
			if hs := h.hists.get(ref); hs != nil {
				if t, ok := hs.truncate(mint); ok {
					newMin = min(newMin, t)
				}
			}
		}
	})
	if newMin == math.MaxInt64 {
		h.maxT.Store(math.MinInt64)
	} else {
		newMin = max(newMin, h.minValid.Load()) // an open chunk may start earlier; a block holds that part
	}
	h.minT.Store(newMin)
	h.chunks.dropBefore(mint)
	omin, _ := h.oooBounds()
	h.tombs.TruncateBefore(min(mint, omin)) // deletes still apply to out-of-order samples not flushed yet
	h.collect()
	if h.wal != nil {
		if err := h.truncateWAL(mint); err != nil {
			return fmt.Errorf("metric head: truncate write-ahead log: %w", err)
		}
	}
	return nil
}

// chunkPages holds closed chunks end to end in pages; a page is dropped once every chunk in it ends before a
// truncation point. With a directory, a full page is written to a file there and memory-mapped, so closed
// chunks cost page cache rather than heap (Prometheus' head maps its full chunks too); the files are scratch,
// rebuilt from the write-ahead log at start. Readers hold the bytes they were given only while their reader is
// open, and truncation waits for those readers, so a page is unmapped only when no one reads it.
type chunkPages struct {
	mu     sync.RWMutex
	a      arena
	maxT   []int64 // newest sample of each page
	mapped []bool
	first  int    // pages before it were dropped
	dir    string // "" keeps every page in memory
	err    error  // the first failure to seal a page; pages stay in memory after it
}

func (c *chunkPages) put(b []byte, maxT int64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.a.pages)
	addr := c.a.put(b)
	page, _ := splitAddr(addr)
	for len(c.maxT) <= page {
		c.maxT = append(c.maxT, math.MinInt64)
		c.mapped = append(c.mapped, false)
	}
	c.maxT[page] = max(c.maxT[page], maxT)
	if len(c.a.pages) > n && n > 0 && c.dir != "" && c.err == nil {
		c.err = c.seal(n - 1)
	}
	return addr
}

// seal writes page i to its file and maps it in place of the heap copy.
func (c *chunkPages) seal(i int) error {
	p := c.a.pages[i]
	if p == nil || len(p) == 0 {
		return nil
	}
	name := filepath.Join(c.dir, fmt.Sprintf("%08d", i))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("metric head: seal chunk page: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(p); err != nil {
		os.Remove(name)
		return fmt.Errorf("metric head: seal chunk page: %w", err)
	}
	m, err := mapFile(f, len(p))
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("metric head: seal chunk page: %w", err)
	}
	c.a.pages[i] = m
	c.mapped[i] = true
	return nil
}

// release drops page i, unmapping and removing its file when it has one; the caller holds mu.
func (c *chunkPages) release(i int) {
	if c.mapped[i] {
		unmap(c.a.pages[i])
		os.Remove(filepath.Join(c.dir, fmt.Sprintf("%08d", i)))
		c.mapped[i] = false
	}
	c.a.pages[i] = nil
}

// close releases every page.
func (c *chunkPages) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := c.first; i < len(c.a.pages); i++ {
		if c.a.pages[i] != nil {
			c.release(i)
		}
	}
}

// get returns a closed chunk's bytes, or false when its page was dropped since its ref was read.
func (c *chunkPages) get(addr uint64) ([]byte, bool) {
	c.mu.RLock() // every query reading closed chunks comes here: readers do not wait for each other
	defer c.mu.RUnlock()
	if page, _ := splitAddr(addr); page >= len(c.a.pages) || c.a.pages[page] == nil {
		return nil, false
	}
	return c.a.get(addr), true
}

// dropBefore releases the pages, other than the one being written, whose chunks all end before mint.
func (c *chunkPages) dropBefore(mint int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := len(c.a.pages) - 1
	for i := c.first; i < last; i++ {
		if c.a.pages[i] != nil && c.maxT[i] < mint {
			c.release(i)
		}
	}
	for c.first < last && c.a.pages[c.first] == nil {
		c.first++
	}
}
