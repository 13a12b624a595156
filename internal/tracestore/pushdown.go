package tracestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// Search pushdown: a query's prefilter (traceql.Prefilter) is checked against the plain columns of a block
// (name, service_name, duration_nano, kind, status_code) before any span is decoded. Only the traces where every
// predicate may hold on some span are read in full, through the trace index, and evaluated.

// liveMaybe applies the prefilter to a trace in memory.
func liveMaybe(pf *traceql.Prefilter, spans []liveSpan) bool {
	if pf == nil {
		return true
	}
	var c traceql.Columns
	for p := 0; p < pf.Len(); p++ {
		ok := false
		for i := range spans {
			sp := &spans[i]
			c = traceql.Columns{Name: sp.name(), Service: sp.res().service, Duration: sp.duration(), Kind: sp.kind, Status: sp.status}
			if pf.Maybe(p, &c) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// colCursor reads one plain column of a row group page by page, as typed slices: dictionary indexes for the
// string columns (so that rows can be told apart by small integers), int64 or int32 values for the others.
type colCursor struct {
	pages parquet.Pages
	page  parquet.Page
	str   bool // a string column: ids index strs
	ids   []int32
	strs  []string
	dict  parquet.Dictionary // whose values strs holds
	own   map[string]int32   // ids of strings of pages that are not dictionary-encoded
	gen   int                // bumped whenever ids change meaning (a new dictionary)
	i64   []int64
	i32   []int32
	pos   int
	n     int
}

func newColCursor(rg parquet.RowGroup, col int, str bool) *colCursor {
	return &colCursor{pages: rg.ColumnChunks()[col].Pages(), str: str}
}

// load makes the next value available, reading pages as needed (io.EOF past the last page).
func (c *colCursor) load() error {
	for c.pos >= c.n {
		if c.page != nil {
			parquet.Release(c.page)
			c.page = nil
		}
		p, err := c.pages.ReadPage()
		if err != nil {
			return err
		}
		c.page, c.pos, c.n = p, 0, int(p.NumValues())
		if err := c.decode(p); err != nil {
			return err
		}
	}
	return nil
}

func (c *colCursor) decode(p parquet.Page) error {
	d := p.Dictionary()
	if c.str {
		if d != nil {
			if d != c.dict {
				c.dict, c.own = d, nil
				c.strs = make([]string, d.Len())
				for i := range c.strs {
					c.strs[i] = string(d.Index(int32(i)).ByteArray())
				}
				c.gen++
			}
			if data := p.Data(); data.Kind() == encoding.Int32 {
				c.ids = data.Int32()
				return nil
			}
		}
		// not dictionary-encoded: give each distinct string an id of our own
		vals, err := readAll(p)
		if err != nil {
			return err
		}
		if c.own == nil {
			c.own, c.strs, c.dict = map[string]int32{}, nil, nil
			c.gen++
		}
		c.ids = make([]int32, len(vals))
		for i, v := range vals {
			id, ok := c.own[string(v.ByteArray())]
			if !ok {
				id = int32(len(c.strs))
				c.strs = append(c.strs, string(v.ByteArray()))
				c.own[c.strs[id]] = id
			}
			c.ids[i] = id
		}
		return nil
	}
	if d == nil {
		switch data := p.Data(); data.Kind() {
		case encoding.Int64:
			c.i64, c.i32 = data.Int64(), nil
			return nil
		case encoding.Int32:
			c.i64, c.i32 = nil, data.Int32()
			return nil
		}
	}
	vals, err := readAll(p)
	if err != nil {
		return err
	}
	c.i64, c.i32 = make([]int64, len(vals)), nil
	for i, v := range vals {
		c.i64[i] = v.Int64()
	}
	return nil
}

func readAll(p parquet.Page) ([]parquet.Value, error) {
	vals := make([]parquet.Value, p.NumValues())
	n, err := p.Values().ReadValues(vals)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return vals[:n], nil
}

func (c *colCursor) int64At() int64 {
	if c.i32 != nil {
		return int64(c.i32[c.pos])
	}
	return c.i64[c.pos]
}

func (c *colCursor) close() {
	if c.page != nil {
		parquet.Release(c.page)
	}
	_ = c.pages.Close()
}

// candidates returns the index entries of the block's traces that pass the prefilter.
func (in *instance) candidates(ctx context.Context, b *block, pf *traceql.Prefilter) ([]indexEntry, error) {
	var out []indexEntry
	err := in.candidatesEach(ctx, b, pf, func(es []indexEntry) bool {
		out = append(out, es...)
		return true
	})
	return out, err
}

// candidatesEach calls emit with the index entries of the block's traces that pass the prefilter, in row (trace
// id) order, as soon as they are decided: after each row group, the traces whose last row it held. emit returns
// false to stop, so a search that has its limit reads no further row group. Row groups are pruned first by their
// column statistics and dictionaries (rowGroupDomain); the rows of the others are read from the columns the
// prefilter uses only.
func (in *instance) candidatesEach(ctx context.Context, b *block, pf *traceql.Prefilter, emit func([]indexEntry) bool) error {
	if err := in.open(ctx, b); err != nil {
		return err
	}
	if pf.Len() > 64 {
		emit(b.index)
		return nil
	}
	schema := b.file.Schema()
	var cols [5]int
	for i, n := range []string{"name", "service_name", "duration_nano", "kind", "status_code"} {
		leaf, ok := schema.Lookup(n)
		if !ok {
			return fmt.Errorf("block %s: no column %s", b.meta.ULID, n)
		}
		cols[i] = leaf.ColumnIndex
	}
	uses := pf.Uses()
	colBits := [5]traceql.ColumnSet{traceql.ColName, traceql.ColService, traceql.ColDuration, traceql.ColKind, traceql.ColStatus}
	all := uint64(1)<<pf.Len() - 1
	sat := make([]uint64, len(b.index))
	m := pf.NewMatcher()
	readsDur := m.ReadsDuration()
	var row int64
	ti := 0
	// next is the first index entry not yet decided; flush emits the candidates among the entries that end
	// before row.
	next := 0
	var batch []indexEntry
	flush := func(row int64) bool {
		batch = batch[:0]
		for ; next < len(b.index) && int64(b.index[next].first)+int64(b.index[next].count) <= row; next++ {
			if sat[next] == all {
				batch = append(batch, b.index[next])
			}
		}
		return len(batch) == 0 || emit(batch)
	}
	for _, rg := range b.file.RowGroups() {
		if err := querylimit.Checkpoint(ctx); err != nil {
			return err
		}
		n := rg.NumRows()
		dom, err := rowGroupDomain(rg, cols, uses)
		if err != nil {
			return fmt.Errorf("block %s: read column statistics: %w", b.meta.ULID, err)
		}
		if mask := maybeMask(pf, dom); mask != all {
			// No trace that lies wholly in this row group can pass. A trace that crosses its edges may still
			// get here what the domain allows.
			end := row + n
			for i := sort.Search(len(b.index), func(i int) bool { return int64(b.index[i].first)+int64(b.index[i].count) > row }); i < len(b.index) && int64(b.index[i].first) < end; i++ {
				if e := b.index[i]; int64(e.first) < row || int64(e.first)+int64(e.count) > end {
					sat[i] |= mask
				}
			}
			in.s.m.searchRowGroupsSkipped.Inc()
			row += n
			continue
		}
		var rs [5]*colCursor
		for i, c := range cols {
			if uses&colBits[i] != 0 {
				rs[i] = newColCursor(rg, c, i < 2)
			}
		}
		// The terms of the predicates that do not read the duration are decided once per distinct (name id,
		// service id, kind, status) of the row group.
		memo := map[[4]int32]uint64{}
		var gens [2]int
		for r := int64(0); r < n && err == nil; r++ {
			for i := range rs {
				if rs[i] != nil {
					if err = rs[i].load(); err != nil {
						break
					}
				}
			}
			if err != nil {
				break
			}
			g := row + r
			for ti < len(b.index) && int64(b.index[ti].first)+int64(b.index[ti].count) <= g {
				ti++
			}
			if ti < len(b.index) && sat[ti] != all {
				var key [4]int32
				for i := 0; i < 2; i++ {
					if rs[i] != nil {
						if rs[i].gen != gens[i] {
							gens[i] = rs[i].gen
							clear(memo)
						}
						key[i] = rs[i].ids[rs[i].pos]
					}
				}
				if rs[3] != nil {
					key[2] = int32(rs[3].int64At())
				}
				if rs[4] != nil {
					key[3] = int32(rs[4].int64At())
				}
				var c traceql.Columns
				if rs[2] != nil {
					c.Duration = rs[2].int64At()
				}
				c.Kind, c.Status = key[2], key[3]
				base, ok := memo[key]
				if !ok || readsDur {
					if rs[0] != nil {
						c.Name = rs[0].strs[key[0]]
					}
					if rs[1] != nil {
						c.Service = rs[1].strs[key[1]]
					}
				}
				if !ok {
					base = m.Static(&c)
					memo[key] = base
				}
				bits := base &^ sat[ti]
				if readsDur && bits != 0 {
					bits = m.Refine(&c, bits)
				}
				sat[ti] |= bits
			}
			for i := range rs {
				if rs[i] != nil {
					rs[i].pos++
				}
			}
		}
		for _, r := range rs {
			if r != nil {
				r.close()
			}
		}
		if err != nil {
			return fmt.Errorf("block %s: read columns: %w", b.meta.ULID, err)
		}
		row += n
		if !flush(row) {
			return nil
		}
	}
	flush(math.MaxInt64)
	return nil
}

// scanCandidates calls fn with every trace of the block that passes the prefilter, in trace id order.
func (in *instance) scanCandidates(ctx context.Context, b *block, pf *traceql.Prefilter, fn func(id pcommon.TraceID, spans []traceql.Span) bool) error {
	if pf == nil {
		return in.scanBlock(ctx, b, fn)
	}
	stopped := false
	var rerr error
	err := in.candidatesEach(ctx, b, pf, func(cands []indexEntry) bool {
		rerr = in.readCandidates(ctx, b, cands, func(id pcommon.TraceID, spans []traceql.Span) bool {
			if !fn(id, spans) {
				stopped = true
			}
			return !stopped
		})
		return rerr == nil && !stopped
	})
	if err != nil {
		return err
	}
	return rerr
}

// readCandidates reads and decodes the given traces of a block, calling fn for each until it returns false.
func (in *instance) readCandidates(ctx context.Context, b *block, cands []indexEntry, fn func(id pcommon.TraceID, spans []traceql.Span) bool) error {
	if len(cands) == 0 {
		return nil
	}
	r := parquet.NewGenericReader[spanRow](b.file)
	defer r.Close()
	dec := newDecoder()
	buf := make([]spanRow, 256)
	for _, e := range cands {
		if err := querylimit.Checkpoint(ctx); err != nil {
			return err
		}
		if err := r.SeekToRow(int64(e.first)); err != nil {
			return fmt.Errorf("block %s: seek: %w", b.meta.ULID, err)
		}
		spans := make([]traceql.Span, 0, e.count)
		for left := int(e.count); left > 0; {
			want := buf
			if left < len(want) {
				want = want[:left]
			}
			n, err := r.Read(want)
			for k := 0; k < n; k++ {
				s, derr := dec.decode(&want[k])
				if derr != nil {
					return fmt.Errorf("block %s: %w", b.meta.ULID, derr)
				}
				spans = append(spans, s)
			}
			left -= n
			if err != nil {
				if errors.Is(err, io.EOF) && left == 0 {
					break
				}
				return fmt.Errorf("block %s: read trace: %w", b.meta.ULID, err)
			}
			if n == 0 {
				return fmt.Errorf("block %s: read trace: no rows", b.meta.ULID)
			}
		}
		if !fn(e.id, spans) {
			return nil
		}
	}
	return nil
}
