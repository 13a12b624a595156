package logstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/querylimit"
)

// This file holds the log queries: selecting streams, reading heads and chunks, and the LogQL querier.

// Querier returns a logql.Querier over one tenant's data.
func (s *Store) Querier(tenantID string) logql.Querier { return &querier{s: s, tenant: tenantID} }

// QueryLimiter admits the store's queries; a process-wide governor installs its gate on it (SetGate).
func (s *Store) QueryLimiter() *querylimit.Limiter { return s.queries }

// QueryTimeout bounds one query, the ruler's evaluations included.
func (s *Store) QueryTimeout() time.Duration { return s.cfg.Limits.QueryTimeout }

// MaxQueryLength is the longest time range (plus range selector) a query may cover; 0 does not limit.
func (s *Store) MaxQueryLength() time.Duration { return s.cfg.Limits.MaxQueryLength }

// Engine is the LogQL engine configured with the store's query limits.
func (s *Store) Engine() *logql.Engine { return s.engine }

type querier struct {
	s      *Store
	tenant string
}

// matchStreams returns the tenant's streams that match all matchers, using postings for equality matchers.
func (td *tenantDB) matchStreams(ms []*labels.Matcher) []*stream {
	td.mu.RLock()
	defer td.mu.RUnlock()
	var cand []*stream
	bestSet := false
	for _, m := range ms {
		if m.Type == labels.MatchEqual && m.Value != "" {
			l := td.postings[m.Name][m.Value]
			if !bestSet || len(l) < len(cand) {
				cand, bestSet = l, true
			}
		}
	}
	if !bestSet {
		for _, sts := range td.streams {
			cand = append(cand, sts...)
		}
	}
	out := make([]*stream, 0, len(cand))
	for _, st := range cand {
		ok := true
		for _, m := range ms {
			if !m.Matches(st.lbs.Get(m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].lbs, out[j].lbs) < 0 })
	return out
}

type chunkJob struct {
	st   *stream
	meta *chunkMeta
	res  chan chunkResult
	// count: the chunk's lines are counted into runs (CountLogs), not decoded into entries.
	count *counter
	// done: the result was posted when the job was made (counted from the chunk's stats); no reader runs.
	done bool
}

type chunkResult struct {
	es   []logql.Entry
	runs []countRun // count jobs
	err  error
	// noSlot: the reader gave up before taking a read-ahead slot (the query was cancelled).
	noSlot bool
}

// SelectLogs implements logql.Querier.
func (q *querier) SelectLogs(ctx context.Context, p logql.SelectParams, fn func(labels.Labels, logql.Entry) error) error {
	td := q.s.tenantIfExists(q.tenant)
	if td == nil {
		return nil
	}
	streams := td.matchStreams(p.Matchers)
	if p.Cutoff != nil {
		return q.selectLimited(ctx, p, streams, fn)
	}
	return q.selectAll(ctx, p, streams, nil, fn)
}

// selectAll hands over every entry of streams that p selects, stream by stream in time order, to fn; or, with
// cnt set, counts them for a logql.Counter (fn then receives each entry that must be counted one by one, and
// the counted runs of chunks go to cnt.emit).
func (q *querier) selectAll(ctx context.Context, p logql.SelectParams, streams []*stream, cnt *counter, fn func(labels.Labels, logql.Entry) error) error {
	type streamWork struct {
		st     *stream
		chunks []*chunkMeta
		// The head's snapshot, decoded when the consumer reaches the stream: decoding every stream's head up
		// front held up to max_head_bytes of decoded entries for the whole query.
		blocks []headBlock
		tail   []logql.Entry
		dd     *dedup
	}
	work := make([]streamWork, 0, len(streams))
	var jobs []*chunkJob
	for _, st := range streams {
		w := streamWork{st: st}
		st.mu.Lock()
		for _, c := range st.chunks {
			if c.MinT < p.End && c.MaxT >= p.Start && (p.TraceID == "" || bloom(c.Bloom).has(p.TraceID)) {
				w.chunks = append(w.chunks, c)
			}
		}
		// Blocks and tails are only ever appended to, or replaced by a new slice on seal and flush: a snapshot of
		// the slice headers stays valid without copying. Entries pushed out of order need a sorted copy.
		w.blocks, w.tail = st.blocks[:len(st.blocks):len(st.blocks)], st.tail[:len(st.tail):len(st.tail)]
		st.mu.Unlock()
		// An entry can lie in two of a stream's sources: pushed again after its first copy went to a chunk (a
		// retried push after a restart), or pushed twice with a flush in between, or cut into two chunks from
		// overlapping pushes. As Loki's merge of its sources, entries equal in stream, time, line and metadata
		// are read once. Only where two sources overlap in time can such a pair lie; the entries there are
		// remembered with their source, and one equal to an entry of another source is skipped (a source holds
		// no such pair itself: the push path drops them).
		// Sources are compared by their time spans (see spansOf), not their [minT, maxT]: interleaving senders make
		// those of every chunk cover the others' while no two share a timestamp.
		w.dd = newDedup(w.chunks, headSpans(w.blocks, w.tail))
		for _, c := range w.chunks {
			j := &chunkJob{st: st, meta: c, res: make(chan chunkResult, 1)}
			if cnt != nil && !w.dd.overlaps(c.spans()) {
				// No other source of the stream shares this chunk's time: its lines are counted, not handed over.
				j.count = cnt
				if r, ok := cnt.fromStats(c, &p); ok {
					j.res <- r
					j.done = true
				}
			}
			jobs = append(jobs, j)
		}
		work = append(work, w)
	}
	// Fetch and decode chunks ahead of the consumer, in parallel, keeping the order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// At most GOMAXPROCS+1 chunks are read ahead of the consumer (a slot frees when it takes a result).
	sem := make(chan struct{}, runtime.GOMAXPROCS(0)+1)
	if len(jobs) > 0 {
		go func() {
			for _, j := range jobs {
				if j.done {
					continue
				}
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					j.res <- chunkResult{err: ctx.Err(), noSlot: true}
					continue
				}
				go q.readChunk(ctx, j, &p)
			}
		}()
	}
	ji := 0
	for wi, w := range work {
		// The stream's dedup holds its overlapping entries (and the payloads they point into): let it go with
		// the stream, not with the query.
		work[wi] = streamWork{}
		dd := w.dd
		for ci := range w.chunks {
			j := jobs[ji]
			ji++
			r, _ := querylimit.Receive(ctx, j.res)
			if err := querylimit.Checkpoint(ctx); err != nil && r.err == nil {
				r.err = err
			}
			if !r.noSlot && !j.done {
				<-sem
			}
			if r.err != nil {
				if err := q.chunkError(j, r.err); err != nil {
					return err
				}
				continue
			}
			if j.count != nil {
				if err := cnt.emit(w.st.lbs, r.runs); err != nil {
					return err
				}
				continue
			}
			for _, e := range r.es {
				if e.Timestamp < p.Start || e.Timestamp >= p.End {
					continue
				}
				if p.TraceID != "" && e.Metadata.Get("trace_id") != p.TraceID {
					continue
				}
				if dd.seen(e, ci) {
					continue
				}
				if err := fn(w.st.lbs, e); err != nil {
					return err
				}
			}
		}
		if cnt != nil {
			var err error
			if w.blocks, err = cnt.countHead(w.st.lbs, w.blocks, dd, &p); err != nil {
				return err
			}
		}
		head, err := headEntries(w.blocks, dedupTail(w.tail), &p)
		if err != nil {
			return err
		}
		if !sort.SliceIsSorted(head, func(i, j int) bool { return head[i].Timestamp < head[j].Timestamp }) {
			head = append([]logql.Entry(nil), head...)
			sort.SliceStable(head, func(i, j int) bool { return head[i].Timestamp < head[j].Timestamp })
		}
		var skipped, skippedBytes int64
		for _, e := range head {
			if e.Timestamp < p.Start || e.Timestamp >= p.End || (p.TraceID != "" && e.Metadata.Get("trace_id") != p.TraceID) {
				continue
			}
			if dd.seenAny(e, len(w.chunks)) {
				continue
			}
			if p.LineFilter != nil && !p.LineFilter(e.Line) {
				skipped++
				skippedBytes += int64(len(e.Line))
				continue
			}
			if err := fn(w.st.lbs, e); err != nil {
				return err
			}
		}
		if skipped > 0 && p.Skipped != nil {
			p.Skipped(skipped, skippedBytes)
		}
		if cnt != nil {
			if err := cnt.flush(); err != nil {
				return err
			}
		}
		if err := querylimit.Checkpoint(ctx); err != nil {
			return err
		}
	}
	return nil
}

// selectLimited serves a log query with a limit: heads first, then chunks newest first (Backward) or oldest
// first (Forward), decoded in parallel (at most GOMAXPROCS at a time), stopping at the first chunk wholly
// beyond the engine's cutoff: every later chunk is beyond it too.
func (q *querier) selectLimited(ctx context.Context, p logql.SelectParams, streams []*stream, fn func(labels.Labels, logql.Entry) error) error {
	// beyondT: a source wholly in [minT, maxT] holds no entry the engine would still keep.
	beyondT := func(minT, maxT int64) bool {
		cut, ok := p.Cutoff()
		if !ok {
			return false
		}
		if p.Direction == logql.Forward {
			return minT > cut
		}
		return maxT < cut
	}
	beyond := func(c *chunkMeta) bool { return beyondT(c.MinT, c.MaxT) }
	var jobs []*chunkJob
	var head []logql.Entry
	var order []int
	for _, st := range streams {
		st.mu.Lock()
		for _, c := range st.chunks {
			if c.MinT < p.End && c.MaxT >= p.Start && (p.TraceID == "" || bloom(c.Bloom).has(p.TraceID)) {
				jobs = append(jobs, &chunkJob{st: st, meta: c, res: make(chan chunkResult, 1)})
			}
		}
		blocks, tail := st.blocks[:len(st.blocks):len(st.blocks)], st.tail[:len(st.tail):len(st.tail)]
		st.mu.Unlock()
		// The tail, then the sealed blocks in the query's direction, each skipped once the engine's cutoff lies
		// beyond it: with a limit, a query after a burst of pushes decodes the newest blocks only, not up to
		// max_head_bytes of lines.
		head = filterHead(headInRange(tail, &p, head[:0]), &p)
		for _, e := range head {
			if err := fn(st.lbs, e); err != nil {
				return err
			}
		}
		order = order[:0]
		for i := range blocks {
			order = append(order, i)
		}
		if p.Direction == logql.Forward {
			sort.SliceStable(order, func(i, j int) bool { return blocks[order[i]].minT < blocks[order[j]].minT })
		} else {
			sort.SliceStable(order, func(i, j int) bool { return blocks[order[i]].maxT > blocks[order[j]].maxT })
		}
		for _, i := range order {
			b := &blocks[i]
			if beyondT(b.minT, b.maxT) {
				continue
			}
			sealed, err := headEntries(blocks[i:i+1], nil, &p)
			if err != nil {
				return err
			}
			head = filterHead(append(head[:0], sealed...), &p)
			for _, e := range head {
				if err := fn(st.lbs, e); err != nil {
					return err
				}
			}
		}
	}
	if p.Direction == logql.Forward {
		sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].meta.MinT < jobs[j].meta.MinT })
	} else {
		sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].meta.MaxT > jobs[j].meta.MaxT })
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// At most GOMAXPROCS chunks are read ahead of the consumer: a slot frees when the consumer takes a result,
	// so an early stop wastes little work and decoded chunks never pile up in memory.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	go func() {
		for _, j := range jobs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if beyond(j.meta) {
				return // the consumer stops at this job too
			}
			go q.readChunk(ctx, j, &p)
		}
	}()
	for _, j := range jobs {
		if beyond(j.meta) {
			return nil
		}
		var r chunkResult
		querylimit.Pause(ctx) // the decoders need a processor to make progress
		select {
		case r = <-j.res:
			<-sem
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := querylimit.Checkpoint(ctx); err != nil {
			return err
		}
		if r.err != nil {
			if err := q.chunkError(j, r.err); err != nil {
				return err
			}
			continue
		}
		for _, e := range r.es {
			if err := fn(j.st.lbs, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// headInRange appends to dst the entries of es in p's time range (and with its trace id).
func headInRange(es []logql.Entry, p *logql.SelectParams, dst []logql.Entry) []logql.Entry {
	for _, e := range es {
		if e.Timestamp >= p.Start && e.Timestamp < p.End && (p.TraceID == "" || e.Metadata.Get("trace_id") == p.TraceID) {
			dst = append(dst, e)
		}
	}
	return dst
}

// filterHead drops, in place, the entries that p's line filter rejects, reporting them through p.Skipped, as
// chunk decoding does.
func filterHead(es []logql.Entry, p *logql.SelectParams) []logql.Entry {
	if p.LineFilter == nil {
		return es
	}
	out := es[:0]
	var lines, bytes int64
	for _, e := range es {
		if p.LineFilter(e.Line) {
			out = append(out, e)
			continue
		}
		lines++
		bytes += int64(len(e.Line))
	}
	if lines > 0 && p.Skipped != nil {
		p.Skipped(lines, bytes)
	}
	return out
}

// readChunk fetches and decodes the entries of j's chunk that p selects, and posts them to j.res.
func (q *querier) readChunk(ctx context.Context, j *chunkJob, p *logql.SelectParams) {
	if j.count != nil {
		// Nothing of a counted payload outlives its decoding (runs copy the metadata values they keep), so
		// its buffer is reused: a full count no longer allocates (and clears) every payload it reads.
		raw, buf, err := q.s.loadChunkInto(ctx, j.meta, payloadBufs.get())
		var r chunkResult
		if err == nil {
			err = q.computing(ctx, func() (err error) {
				if r.runs, err = j.count.decode(raw, p); err != nil {
					err = fmt.Errorf("chunk %s: %w: %w", j.meta.Key, errDamagedChunk, err)
				}
				return err
			})
		}
		payloadBufs.put(buf)
		r.err = err
		j.res <- r
		return
	}
	raw, err := q.s.loadChunkRaw(ctx, j.meta)
	var r chunkResult
	if err == nil {
		err = q.computing(ctx, func() (err error) {
			if r.es, err = decodeSelected(raw, p); err != nil {
				err = fmt.Errorf("chunk %s: %w: %w", j.meta.Key, errDamagedChunk, err)
			}
			return err
		})
	}
	r.err = err
	j.res <- r
}

// computing runs a decoder's work on a processor of the queries' share (fetching the chunk did not need one).
func (q *querier) computing(ctx context.Context, work func() error) error {
	_, done, err := querylimit.Enter(ctx, q.s.queries.Processors())
	if err != nil {
		return err
	}
	defer done()
	return work()
}

// chunkError decides what a chunk read error means for a query: nil to skip the chunk (deleted meanwhile, or
// damaged, which is logged once), or the error.
func (q *querier) chunkError(j *chunkJob, err error) error {
	if q.s.bkt != nil && q.s.bkt.IsObjNotFoundErr(errors.Unwrap(err)) {
		return nil // deleted by retention or compaction while we looked
	}
	if errors.Is(err, errDamagedChunk) {
		// One damaged chunk must not fail every query over its stream and time: skip it, say so once.
		if _, seen := q.s.damaged.LoadOrStore(j.meta.Key, struct{}{}); !seen {
			q.s.logger.Error("Log chunk is unreadable; queries skip it", zap.String("chunk", j.meta.Key), zap.Error(err))
		}
		return nil
	}
	return err
}

// errDamagedChunk marks a chunk that was read but does not decode (checksum, compression, format).
var errDamagedChunk = errors.New("damaged chunk")

// loadChunkRaw returns a chunk's decompressed payload. The object comes from the cache or the bucket; it is
// decompressed on every read (see chunkCache).
func (s *Store) loadChunkRaw(ctx context.Context, c *chunkMeta) (payload, error) {
	pl, _, err := s.loadChunkInto(ctx, c, nil)
	return pl, err
}

// loadChunkInto is loadChunkRaw decompressing into dst's storage (see decompressChunkInto); it returns the
// buffer that holds the payload.
func (s *Store) loadChunkInto(ctx context.Context, c *chunkMeta, dst []byte) (payload, []byte, error) {
	b, ok := s.cache.get(c.Key)
	if !ok {
		rc, err := s.bkt.Get(ctx, c.Key)
		if err != nil {
			return payload{}, dst, fmt.Errorf("get chunk %s: %w", c.Key, err)
		}
		b, err = readAll(rc, make([]byte, 0, c.Size))
		rc.Close()
		if err != nil {
			return payload{}, dst, fmt.Errorf("read chunk %s: %w", c.Key, err)
		}
	}
	pl, buf, err := decompressChunkInto(b, dst)
	if err != nil {
		return payload{}, buf, fmt.Errorf("chunk %s: %w: %w", c.Key, errDamagedChunk, err)
	}
	if !ok {
		s.cache.put(c.Key, b)
	}
	return pl, buf, nil
}

// loadChunk returns every entry of a chunk.
func (s *Store) loadChunk(ctx context.Context, c *chunkMeta) ([]logql.Entry, error) {
	raw, err := s.loadChunkRaw(ctx, c)
	if err != nil {
		return nil, err
	}
	return decodeSelected(raw, &logql.SelectParams{Start: math.MinInt64, End: math.MaxInt64})
}

// AppliesLineFilter implements logql.LineFilterer: every path of SelectLogs (chunk decoding and heads) applies
// SelectParams.LineFilter.
func (*querier) AppliesLineFilter() bool { return true }

// dedup finds the entries of a stream that another of its sources (chunks, head) already gave. Its windows are
// the time ranges where two sources overlap, sorted and disjoint; entries outside them cost one comparison.
// Entries inside are remembered by an entryKey, not by their text.
type dedup struct {
	windows [][2]int64 // inclusive
	from    map[entryKey]int
}

// entryKey identifies an entry within its stream: its time and a hash of its line and structured metadata.
// Keeping the text instead cost a copy of every line in an overlap window for the whole of a stream's read:
// when pushes from several senders interleave in a stream, its chunks overlap end to end, and the query held
// a copy of the stream's every line (about 50 MB live per 100k lines of 200 B). Two distinct entries are taken
// for one only when they have the same nanosecond timestamp and their 64-bit hashes, seeded per process,
// collide.
type entryKey struct {
	ts int64
	h  uint64
}

var dedupSeed = maphash.MakeSeed()

// newDedup covers chunks and the head's sources, whose timestamps lie in heads (see headSpans); nil when no two
// of them may share an entry. Its windows are where the spans of two sources meet.
func newDedup(chunks []*chunkMeta, heads [][][2]int64) *dedup {
	var spans [][2]int64
	for _, c := range chunks {
		spans = append(spans, c.spans()...)
	}
	for _, h := range heads {
		spans = append(spans, h...)
	}
	ws := overlapsAmong(spans)
	if len(ws) == 0 {
		return nil
	}
	return &dedup{windows: ws, from: map[entryKey]int{}}
}

// overlapsAmong returns where two of spans meet, as ascending disjoint intervals. The spans of one source are
// disjoint, so any two that meet belong to two sources. spans is sorted in place.
func overlapsAmong(spans [][2]int64) [][2]int64 {
	if len(spans) < 2 {
		return nil
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	var ws [][2]int64
	reach := spans[0][1]
	for _, sp := range spans[1:] {
		if sp[0] <= reach {
			w := [2]int64{sp[0], min(sp[1], reach)}
			if n := len(ws); n > 0 && w[0] <= ws[n-1][1] {
				ws[n-1][1] = max(ws[n-1][1], w[1])
			} else {
				ws = append(ws, w)
			}
		}
		reach = max(reach, sp[1])
	}
	return ws
}

// overlaps reports whether one of spans meets one of d's windows: whether a source's entries there may need
// comparing with another's.
func (d *dedup) overlaps(spans [][2]int64) bool {
	if d == nil {
		return false
	}
	for _, s := range spans {
		i := sort.Search(len(d.windows), func(i int) bool { return d.windows[i][1] >= s[0] })
		if i < len(d.windows) && d.windows[i][0] <= s[1] {
			return true
		}
	}
	return false
}

// seen reports whether e came already from a source other than src, and remembers it otherwise.
func (d *dedup) seen(e logql.Entry, src int) bool { return d.check(e, src, false) }

// seenAny is seen for an entry of the head, whose blocks and tail are one source here: e came already from any
// source, the head included (its blocks hold no repeat, but two of them, or one and the tail, may share one).
func (d *dedup) seenAny(e logql.Entry, src int) bool { return d.check(e, src, true) }

// check remembers e as from src unless it came already: from another source, or from any with anySource.
func (d *dedup) check(e logql.Entry, src int, anySource bool) bool {
	if d == nil {
		return false
	}
	i := sort.Search(len(d.windows), func(i int) bool { return d.windows[i][1] >= e.Timestamp })
	if i == len(d.windows) || d.windows[i][0] > e.Timestamp {
		return false
	}
	k := keyOf(e)
	if s, ok := d.from[k]; ok {
		return anySource || s != src
	}
	d.from[k] = src
	return false
}

func keyOf(e logql.Entry) entryKey {
	var h maphash.Hash
	h.SetSeed(dedupSeed)
	// Each string after its length: ("a", "bc") and ("ab", "c") must not hash alike.
	str := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.WriteString(s)
	}
	str(e.Line)
	e.Metadata.Range(func(l labels.Label) {
		str(l.Name)
		str(l.Value)
	})
	return entryKey{ts: e.Timestamp, h: h.Sum64()}
}
