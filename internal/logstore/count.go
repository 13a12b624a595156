package logstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// This file holds the counting read path (logql.Counter): a range aggregation that only counts lines (or their
// bytes) gets runs of counts instead of entries. A chunk that lies wholly between two window bounds, inside
// the query's time range, in no time another source of its stream shares, with no line filter and no
// structured metadata asked for, is answered from its index entry (entries, line bytes) without being read;
// any other chunk is decompressed, but only its timestamps and lines are walked (and the metadata column when
// the query groups by metadata), and no entry, label set or pipeline run is made per line.
//
// The query's budget sees the same figures either way: every line counted is a line processed and its bytes
// bytes read (the engine adds each run to its stats and checks max_query_bytes_read), lines dropped by the
// line filter go through SelectParams.Skipped as on the entry path, and each folded point counts against
// max_fetched_samples as it does there.

// CountLogs implements logql.Counter.
func (q *querier) CountLogs(ctx context.Context, p logql.SelectParams, c logql.CountParams,
	fn func(stream labels.Labels, meta []string, k int, lines, bytes int64) error) error {
	if p.Cutoff != nil {
		return fmt.Errorf("count logs: a cutoff is for log queries with a limit")
	}
	td := q.s.tenantIfExists(q.tenant)
	if td == nil {
		return nil
	}
	cnt := &counter{bounds: c.Bounds, names: c.MetaNames, fn: fn}
	err := q.selectAll(ctx, p, td.matchStreams(p.Matchers), cnt, cnt.entry)
	if err != nil {
		return err
	}
	return cnt.flush()
}

// countRun is a run of lines of one stream in the same fold interval with the same metadata values.
type countRun struct {
	k            int
	meta         []string
	lines, bytes int64
}

// counter is one CountLogs call: its grouping, and the run it is still adding to.
type counter struct {
	bounds []int64
	names  []string
	fn     func(stream labels.Labels, meta []string, k int, lines, bytes int64) error

	pend       countRun
	pendStream labels.Labels
	havePend   bool
}

// interval is the fold interval of ts: the index of the first bound at or after it.
func (c *counter) interval(ts int64) int {
	k, _ := slices.BinarySearch(c.bounds, ts)
	return k
}

// fromStats counts chunk m from its index entry when that gives the same answer as reading it.
func (c *counter) fromStats(m *chunkMeta, p *logql.SelectParams) (chunkResult, bool) {
	run, ok := c.fromSummary(m.MinT, m.MaxT, m.Entries, m.Bytes, p)
	return chunkResult{runs: []countRun{run}}, ok
}

// fromSummary is the count of n lines of the given bytes between minT and maxT, when that is the answer: no
// line filter, trace id or metadata value asked for, and every line in p's range and in one fold interval.
func (c *counter) fromSummary(minT, maxT int64, n, bytes int, p *logql.SelectParams) (countRun, bool) {
	if len(c.names) > 0 || p.LineFilter != nil || p.TraceID != "" || n <= 0 || minT < p.Start || maxT >= p.End {
		return countRun{}, false
	}
	k := c.interval(minT)
	if c.interval(maxT) != k {
		return countRun{}, false
	}
	return countRun{k: k, lines: int64(n), bytes: int64(bytes)}, true
}

// countHead counts the sealed head blocks of a stream that share no time with its chunks, from their summary
// or by walking them, and returns the others, which go the entry path (with the open tail).
func (c *counter) countHead(stream labels.Labels, blocks []headBlock, dd *dedup, p *logql.SelectParams) ([]headBlock, error) {
	var rest []headBlock
	for i := range blocks {
		b := &blocks[i]
		if b.maxT < p.Start || b.minT >= p.End {
			continue
		}
		if dd.overlaps(b.timeSpans()) {
			rest = append(rest, *b)
			continue
		}
		if run, ok := c.fromSummary(b.minT, b.maxT, b.n, b.lineBytes, p); ok {
			if err := c.add(stream, run.k, nil, run.lines, run.bytes); err != nil {
				return nil, err
			}
			continue
		}
		buf, err := s2.Decode(payloadBufs.get(), b.data)
		if err != nil {
			return nil, fmt.Errorf("decode head block: %w", err)
		}
		runs, err := c.decode(rowPayload(unsafe.String(unsafe.SliceData(buf), len(buf))), p)
		payloadBufs.put(buf)
		if err != nil {
			return nil, fmt.Errorf("decode head block: %w", err)
		}
		if err := c.emit(stream, runs); err != nil {
			return nil, err
		}
	}
	return rest, nil
}

// add adds n lines of b bytes in interval k with metadata values meta to the pending run of stream, handing the
// pending run over first if it cannot take them.
func (c *counter) add(stream labels.Labels, k int, meta []string, n, b int64) error {
	if c.havePend && c.pend.k == k && slices.Equal(c.pend.meta, meta) && labels.Equal(c.pendStream, stream) {
		c.pend.lines += n
		c.pend.bytes += b
		return nil
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.pend = countRun{k: k, meta: slices.Clone(meta), lines: n, bytes: b}
	c.pendStream, c.havePend = stream, true
	return nil
}

// flush hands the pending run over.
func (c *counter) flush() error {
	if !c.havePend {
		return nil
	}
	c.havePend = false
	return c.fn(c.pendStream, c.pend.meta, c.pend.k, c.pend.lines, c.pend.bytes)
}

// emit hands over a chunk's runs.
func (c *counter) emit(stream labels.Labels, runs []countRun) error {
	for _, r := range runs {
		if err := c.add(stream, r.k, r.meta, r.lines, r.bytes); err != nil {
			return err
		}
	}
	return nil
}

// entry counts one entry handed over whole (heads, and chunks whose time another source shares).
func (c *counter) entry(stream labels.Labels, e logql.Entry) error {
	var meta []string
	if len(c.names) > 0 {
		meta = make([]string, len(c.names))
		for i, n := range c.names {
			meta[i] = e.Metadata.Get(n)
		}
	}
	return c.add(stream, c.interval(e.Timestamp), meta, 1, int64(len(e.Line)))
}

// decode counts the lines of a chunk payload that p selects, as decodeSelected would select them.
func (c *counter) decode(pl payload, p *logql.SelectParams) ([]countRun, error) {
	if p.TraceID != "" {
		return c.decodeRows(pl, p)
	}
	// The timestamps and lines are walked with plain offsets (no decoder state in memory, so no write barrier
	// per field); in version 2 the metadata column only when values are asked for. Version 1 (rows, as head
	// blocks keep them) interleaves the three: tsCol, lines and the metadata are then the same string.
	_, r, err := openPayload(pl, nil)
	if err != nil {
		return nil, fmt.Errorf("decode chunk: %w", err)
	}
	tsCol, lines := r.ts.s, r.d.s
	meta := decbuf{s: r.meta.s}
	rows := !pl.cols
	if rows {
		tsCol = lines
	}
	var (
		runs         []countRun
		cur          countRun
		have         bool
		t            int64
		ti, li       int
		k            = -1
		skipLines    int64
		skipBytes    int64
		prevRaw      = "\xff"
		vals         []string
		boundAfterK  int64 // bounds[k], or past the last bound
		boundBeforeK int64 // bounds[k-1], or before the first bound
	)
	walkMeta := false
	if len(c.names) > 0 {
		vals = make([]string, len(c.names))
		for _, n := range c.names {
			// A name that occurs nowhere in the metadata column is on no line: the column need not be walked.
			walkMeta = walkMeta || rows || strings.Contains(meta.s, n)
		}
	}
	for i := 0; i < r.n; i++ {
		if rows {
			li = ti
		}
		d, n := uvarintAt(tsCol, ti)
		if n < 0 {
			return nil, fmt.Errorf("decode chunk: timestamps: %w", errShort)
		}
		ti = n
		t += unzigzag(d)
		if rows {
			li = ti
		}
		l, n := uvarintAt(lines, li)
		if n < 0 || l > uint64(len(lines)-n) {
			return nil, fmt.Errorf("decode chunk: lines: %w", errShort)
		}
		line := lines[n : n+int(l)]
		li = n + int(l)
		var rawMeta string
		switch {
		case rows:
			meta.s = lines[li:]
			rawMeta = meta.skipLabels()
			ti = len(lines) - len(meta.s)
		case walkMeta:
			rawMeta = meta.skipLabels()
		}
		if meta.err != nil {
			return nil, fmt.Errorf("decode chunk: metadata: %w", meta.err)
		}
		if t < p.Start || t >= p.End {
			continue
		}
		if p.LineFilter != nil && !p.LineFilter(line) {
			skipLines++
			skipBytes += int64(len(line))
			continue
		}
		if k < 0 || t > boundAfterK || t <= boundBeforeK {
			k = c.interval(t)
			boundAfterK, boundBeforeK = c.boundAt(k), c.boundAt(k-1)
		}
		changed := false
		if walkMeta && rawMeta != prevRaw {
			prevRaw = rawMeta
			for j, name := range c.names {
				if v := metaValue(rawMeta, name); v != vals[j] {
					vals[j], changed = v, true
				}
			}
		}
		if have && cur.k == k && !changed {
			cur.lines++
			cur.bytes += int64(len(line))
			continue
		}
		if have {
			runs = append(runs, cur)
		}
		cur = countRun{k: k, meta: cloneStrings(vals), lines: 1, bytes: int64(len(line))}
		have = true
	}
	if have {
		runs = append(runs, cur)
	}
	if skipLines > 0 && p.Skipped != nil {
		p.Skipped(skipLines, skipBytes)
	}
	return runs, nil
}

// cloneStrings copies ss and its strings, which may point into a payload buffer that is reused.
func cloneStrings(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Clone(s)
	}
	return out
}

// boundAt is bounds[k], with the ends open: before the first bound and after the last.
func (c *counter) boundAt(k int) int64 {
	switch {
	case k < 0:
		return minInt64
	case k >= len(c.bounds):
		return maxInt64
	}
	return c.bounds[k]
}

const (
	minInt64 = -1 << 63
	maxInt64 = 1<<63 - 1
)

// decodeRows counts through the entry decoder: version 1 payloads, and trace-id lookups.
func (c *counter) decodeRows(pl payload, p *logql.SelectParams) ([]countRun, error) {
	es, err := decodeSelected(pl, p)
	if err != nil {
		return nil, err
	}
	var runs []countRun
	for _, e := range es {
		var meta []string
		if len(c.names) > 0 {
			meta = make([]string, len(c.names))
			for i, n := range c.names {
				meta[i] = e.Metadata.Get(n)
			}
		}
		k := c.interval(e.Timestamp)
		if n := len(runs); n > 0 && runs[n-1].k == k && slices.Equal(runs[n-1].meta, meta) {
			runs[n-1].lines++
			runs[n-1].bytes += int64(len(e.Line))
			continue
		}
		runs = append(runs, countRun{k: k, meta: meta, lines: 1, bytes: int64(len(e.Line))})
	}
	return runs, nil
}

// uvarintAt decodes the uvarint at s[i:] and returns it and the offset after it; the offset is -1 on damaged
// data.
func uvarintAt(s string, i int) (uint64, int) {
	var x uint64
	var shift uint
	for j := i; j < len(s); j++ {
		c := s[j]
		if j-i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, -1
		}
		if c < 0x80 {
			return x | uint64(c)<<shift, j + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, -1
}

func unzigzag(ux uint64) int64 {
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}
