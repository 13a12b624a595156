package tracestore

import (
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/sprout-otel/sprout/internal/traceql"
)

// maxStatValues bounds the span names and service names a block's meta.json lists; past it the list is dropped
// and the column counts as unknown for pruning.
const maxStatValues = 1000

// colStats summarises a block's plain columns in meta.json.
type colStats struct {
	Names        []string `json:"names,omitempty"`
	ManyNames    bool     `json:"manyNames,omitempty"`
	Services     []string `json:"services,omitempty"`
	ManyServices bool     `json:"manyServices,omitempty"`
	Kinds        []int32  `json:"kinds"`
	Statuses     []int32  `json:"statuses"`
	MinDuration  int64    `json:"minDurationNano"`
	MaxDuration  int64    `json:"maxDurationNano"`
}

type statsBuilder struct {
	names, services map[string]struct{}
	manyN, manyS    bool
	kinds, statuses uint64 // bit sets of small values
	otherKS         bool   // a kind or status outside 0..63
	minD, maxD      int64
	n               int
}

func newStatsBuilder() *statsBuilder {
	return &statsBuilder{names: map[string]struct{}{}, services: map[string]struct{}{}}
}

func addCapped(set map[string]struct{}, many *bool, v string) {
	if *many {
		return
	}
	if _, ok := set[v]; ok {
		return
	}
	if len(set) >= maxStatValues {
		*many = true
		clear(set)
		return
	}
	// A copy: live span names point into their WAL record, which the set (kept in a block's meta) would pin.
	set[strings.Clone(v)] = struct{}{}
}

func (b *statsBuilder) add(r *spanRow) {
	b.addCols(r.Name, r.Service, r.Kind, r.StatusCode, r.Duration)
}

func (b *statsBuilder) addCols(name, service string, kind, status int32, duration int64) {
	addCapped(b.names, &b.manyN, name)
	addCapped(b.services, &b.manyS, service)
	if kind >= 0 && kind < 64 && status >= 0 && status < 64 {
		b.kinds |= 1 << kind
		b.statuses |= 1 << status
	} else {
		b.otherKS = true
	}
	if b.n == 0 || duration < b.minD {
		b.minD = duration
	}
	if b.n == 0 || duration > b.maxD {
		b.maxD = duration
	}
	b.n++
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func bitsToList(set uint64) []int32 {
	out := []int32{}
	for i := int32(0); i < 64; i++ {
		if set&(1<<i) != 0 {
			out = append(out, i)
		}
	}
	return out
}

func (b *statsBuilder) result() *colStats {
	if b.otherKS {
		return nil // out-of-range enums: no summary rather than a wrong one
	}
	return &colStats{Names: sortedKeys(b.names), ManyNames: b.manyN, Services: sortedKeys(b.services), ManyServices: b.manyS,
		Kinds: bitsToList(b.kinds), Statuses: bitsToList(b.statuses), MinDuration: b.minD, MaxDuration: b.maxD}
}

// domain is the block's column domain for pruning (nothing known for blocks without a summary).
func (c *colStats) domain() *traceql.Domain {
	d := &traceql.Domain{}
	if c == nil {
		return d
	}
	d.Known = traceql.ColDuration | traceql.ColKind | traceql.ColStatus
	d.Kinds, d.Statuses, d.MinDuration, d.MaxDuration = c.Kinds, c.Statuses, c.MinDuration, c.MaxDuration
	if !c.ManyNames {
		d.Known |= traceql.ColName
		d.Names = c.Names
	}
	if !c.ManyServices {
		d.Known |= traceql.ColService
		d.Services = c.Services
	}
	return d
}

// maybeMask has bit i set when some span in domain d may satisfy predicate i of pf.
func maybeMask(pf *traceql.Prefilter, d *traceql.Domain) uint64 {
	var m uint64
	for i := 0; i < pf.Len(); i++ {
		if pf.MaybeIn(i, d) {
			m |= 1 << i
		}
	}
	return m
}

// blockMaybe says whether the block may hold a trace that passes the prefilter, from meta.json alone.
func blockMaybe(pf *traceql.Prefilter, b *block) bool {
	if pf == nil || pf.Len() > 64 || b.meta.Columns == nil {
		return true
	}
	return maybeMask(pf, b.meta.Columns.domain()) == uint64(1)<<pf.Len()-1
}

// rowGroupDomain reads the domain of the used columns of a row group from its column chunk statistics and,
// for the string columns, its dictionaries (cols: name, service_name, duration_nano, kind, status_code).
func rowGroupDomain(rg parquet.RowGroup, cols [5]int, uses traceql.ColumnSet) (*traceql.Domain, error) {
	d := &traceql.Domain{}
	chunks := rg.ColumnChunks()
	bounds := func(col int) (parquet.Value, parquet.Value, bool) {
		fc, ok := chunks[col].(*parquet.FileColumnChunk)
		if !ok {
			return parquet.Value{}, parquet.Value{}, false
		}
		lo, hi, ok := fc.Bounds()
		return lo, hi, ok && !lo.IsNull() && !hi.IsNull()
	}
	enum := func(col int) ([]int32, bool) {
		lo, hi, ok := bounds(col)
		if !ok || hi.Int32()-lo.Int32() > 64 {
			return nil, false
		}
		var out []int32
		for v := lo.Int32(); v <= hi.Int32(); v++ {
			out = append(out, v)
		}
		return out, true
	}
	dict := func(col int) ([]string, bool, error) {
		fp, ok := chunks[col].Pages().(*parquet.FilePages)
		if !ok {
			return nil, false, nil
		}
		defer fp.Close()
		dc, err := fp.ReadDictionary()
		if err != nil || dc == nil {
			return nil, false, err
		}
		out := make([]string, dc.Len())
		for i := range out {
			out[i] = string(dc.Index(int32(i)).ByteArray())
		}
		return out, true, nil
	}
	if uses&traceql.ColDuration != 0 {
		if lo, hi, ok := bounds(cols[2]); ok {
			d.Known |= traceql.ColDuration
			d.MinDuration, d.MaxDuration = lo.Int64(), hi.Int64()
		}
	}
	if uses&traceql.ColKind != 0 {
		if v, ok := enum(cols[3]); ok {
			d.Known |= traceql.ColKind
			d.Kinds = v
		}
	}
	if uses&traceql.ColStatus != 0 {
		if v, ok := enum(cols[4]); ok {
			d.Known |= traceql.ColStatus
			d.Statuses = v
		}
	}
	if uses&traceql.ColName != 0 {
		v, ok, err := dict(cols[0])
		if err != nil {
			return nil, err
		}
		if ok {
			d.Known |= traceql.ColName
			d.Names = v
		}
	}
	if uses&traceql.ColService != 0 {
		v, ok, err := dict(cols[1])
		if err != nil {
			return nil, err
		}
		if ok {
			d.Known |= traceql.ColService
			d.Services = v
		}
	}
	return d, nil
}

// memMaybe says whether any trace in memory may pass the prefilter, from the domain of every span that entered
// memory since it was last empty (a superset of what is there now, so it never rules out a match).
func memMaybe(pf *traceql.Prefilter, d *traceql.Domain) bool {
	if pf == nil || pf.Len() > 64 || d == nil {
		return true
	}
	return maybeMask(pf, d) == uint64(1)<<pf.Len()-1
}
