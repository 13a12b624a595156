package tracestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"

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
			c = traceql.Columns{Name: sp.name, Service: sp.res.service, Duration: sp.duration(), Kind: sp.kind, Status: sp.status}
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

// columnReader reads one column of a row group value by value.
type columnReader struct {
	pages parquet.Pages
	page  parquet.Page
	vals  parquet.ValueReader
	buf   []parquet.Value
	i, n  int
}

func newColumnReader(rg parquet.RowGroup, col int) *columnReader {
	return &columnReader{pages: rg.ColumnChunks()[col].Pages(), buf: make([]parquet.Value, 1024)}
}

func (c *columnReader) next() (parquet.Value, error) {
	for c.i >= c.n {
		if c.vals != nil {
			n, err := c.vals.ReadValues(c.buf)
			c.i, c.n = 0, n
			if n > 0 {
				break
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return parquet.Value{}, err
			}
			parquet.Release(c.page)
			c.vals, c.page = nil, nil
		}
		p, err := c.pages.ReadPage()
		if err != nil {
			return parquet.Value{}, err // io.EOF past the last page
		}
		c.page, c.vals = p, p.Values()
	}
	v := c.buf[c.i]
	c.i++
	return v, nil
}

func (c *columnReader) close() {
	if c.page != nil {
		parquet.Release(c.page)
	}
	_ = c.pages.Close()
}

// candidates returns the index entries of the block's traces that pass the prefilter. Row groups are pruned
// first by their column statistics and dictionaries (rowGroupDomain); the rows of the others are read from the
// columns the prefilter uses only.
func (in *instance) candidates(ctx context.Context, b *block, pf *traceql.Prefilter) ([]indexEntry, error) {
	if err := in.open(ctx, b); err != nil {
		return nil, err
	}
	if pf.Len() > 64 {
		return b.index, nil
	}
	schema := b.file.Schema()
	var cols [5]int
	for i, n := range []string{"name", "service_name", "duration_nano", "kind", "status_code"} {
		leaf, ok := schema.Lookup(n)
		if !ok {
			return nil, fmt.Errorf("block %s: no column %s", b.meta.ULID, n)
		}
		cols[i] = leaf.ColumnIndex
	}
	uses := pf.Uses()
	colBits := [5]traceql.ColumnSet{traceql.ColName, traceql.ColService, traceql.ColDuration, traceql.ColKind, traceql.ColStatus}
	all := uint64(1)<<pf.Len() - 1
	sat := make([]uint64, len(b.index))
	intern := map[string]string{}
	str := func(v parquet.Value) string {
		bs := v.ByteArray()
		if s, ok := intern[string(bs)]; ok {
			return s
		}
		s := string(bs)
		intern[s] = s
		return s
	}
	var row int64
	ti := 0
	for _, rg := range b.file.RowGroups() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := rg.NumRows()
		dom, err := rowGroupDomain(rg, cols, uses)
		if err != nil {
			return nil, fmt.Errorf("block %s: read column statistics: %w", b.meta.ULID, err)
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
		var rs [5]*columnReader
		for i, c := range cols {
			if uses&colBits[i] != 0 {
				rs[i] = newColumnReader(rg, c)
			}
		}
		for r := int64(0); r < n && err == nil; r++ {
			var v [5]parquet.Value
			for i := range rs {
				if rs[i] == nil {
					continue
				}
				if v[i], err = rs[i].next(); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
			g := row + r
			for ti < len(b.index) && int64(b.index[ti].first)+int64(b.index[ti].count) <= g {
				ti++
			}
			if ti == len(b.index) || sat[ti] == all {
				continue
			}
			var c traceql.Columns
			if rs[0] != nil {
				c.Name = str(v[0])
			}
			if rs[1] != nil {
				c.Service = str(v[1])
			}
			if rs[2] != nil {
				c.Duration = v[2].Int64()
			}
			if rs[3] != nil {
				c.Kind = v[3].Int32()
			}
			if rs[4] != nil {
				c.Status = v[4].Int32()
			}
			for p := 0; p < pf.Len(); p++ {
				if sat[ti]&(1<<p) == 0 && pf.Maybe(p, &c) {
					sat[ti] |= 1 << p
				}
			}
		}
		for _, r := range rs {
			if r != nil {
				r.close()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("block %s: read columns: %w", b.meta.ULID, err)
		}
		row += n
	}
	var out []indexEntry
	for i, s := range sat {
		if s == all {
			out = append(out, b.index[i])
		}
	}
	return out, nil
}

// scanCandidates calls fn with every trace of the block that passes the prefilter, in trace id order.
func (in *instance) scanCandidates(ctx context.Context, b *block, pf *traceql.Prefilter, fn func(id pcommon.TraceID, spans []traceql.Span) bool) error {
	if pf == nil {
		return in.scanBlock(ctx, b, fn)
	}
	cands, err := in.candidates(ctx, b, pf)
	if err != nil {
		return err
	}
	return in.readCandidates(ctx, b, cands, fn)
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
		if err := ctx.Err(); err != nil {
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
