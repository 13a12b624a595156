package traceql

// Column names a plain column the trace store keeps per span (see Columns).
type Column uint8

// The plain columns, as bits of a ColumnSet.
const (
	ColName Column = 1 << iota
	ColService
	ColDuration
	ColKind
	ColStatus
)

// ColumnSet is a set of Columns.
type ColumnSet = Column

// Domain describes which column values occur in a group of spans (a block, a row group). A column whose
// Known bit is unset may take any value. Sets list every value that occurs; the duration is a closed range.
type Domain struct {
	Known       ColumnSet
	Names       []string
	Services    []string // "" stands for spans without a string service.name
	Kinds       []int32
	Statuses    []int32
	MinDuration int64
	MaxDuration int64
}

// Uses is the set of columns the prefilter reads.
func (p *Prefilter) Uses() ColumnSet {
	var s ColumnSet
	for _, e := range p.preds {
		s |= exprColumns(e)
	}
	return s
}

func exprColumns(e FieldExpr) ColumnSet {
	switch x := e.(type) {
	case *Attribute:
		switch x.Intrinsic {
		case IntrinsicName:
			return ColName
		case IntrinsicKind:
			return ColKind
		case IntrinsicStatus:
			return ColStatus
		case IntrinsicDuration:
			return ColDuration
		}
		if isServiceAttr(x) {
			return ColService
		}
	case *UnaryExpr:
		return exprColumns(x.E)
	case *BinaryExpr:
		return exprColumns(x.L) | exprColumns(x.R)
	}
	return 0
}

// MaybeIn says whether some span of a group with domain d may satisfy predicate i. It splits the predicate into
// its top-level && terms and rules the group out when one term that reads a single known column holds for none
// of the column's values. Anything it cannot decide is "maybe".
func (p *Prefilter) MaybeIn(i int, d *Domain) bool {
	for _, t := range andTerms(p.preds[i], nil) {
		if !termMaybeIn(t, d) {
			return false
		}
	}
	return true
}

func andTerms(e FieldExpr, out []FieldExpr) []FieldExpr {
	if b, ok := e.(*BinaryExpr); ok && b.Op == OpAnd {
		return andTerms(b.R, andTerms(b.L, out))
	}
	return append(out, e)
}

func termMaybeIn(t FieldExpr, d *Domain) bool {
	col := exprColumns(t)
	if col == 0 || col&(col-1) != 0 || d.Known&col == 0 {
		return true // no column, several columns, or an unknown one
	}
	maybe := func(c *Columns) bool {
		v, known := colEval(t, c)
		return !known || truthy(v)
	}
	var c Columns
	switch col {
	case ColName:
		return anyMaybe(d.Names, &c.Name, &c, maybe)
	case ColService:
		return anyMaybe(d.Services, &c.Service, &c, maybe)
	case ColKind:
		return anyMaybe(d.Kinds, &c.Kind, &c, maybe)
	case ColStatus:
		return anyMaybe(d.Statuses, &c.Status, &c, maybe)
	case ColDuration:
		if d.MinDuration > d.MaxDuration {
			return false // no spans
		}
		// Only a plain comparison of duration with a literal is monotone over the range: it holds somewhere in
		// [min, max] exactly when it holds at an end (for =, only a single-point range is decided).
		b, ok := t.(*BinaryExpr)
		if !ok || !isDurationVsStatic(b) {
			return true
		}
		switch b.Op {
		case OpGt, OpGte, OpLt, OpLte, OpNeq:
		case OpEq:
			if d.MinDuration != d.MaxDuration {
				return true
			}
		default:
			return true
		}
		c.Duration = d.MinDuration
		if maybe(&c) {
			return true
		}
		c.Duration = d.MaxDuration
		return maybe(&c)
	}
	return true
}

// anyMaybe sets field (a field of c) to each value in turn and says whether the term may hold for one of them.
func anyMaybe[T any](values []T, field *T, c *Columns, maybe func(*Columns) bool) bool {
	for _, v := range values {
		if *field = v; maybe(c) {
			return true
		}
	}
	return false
}

func isDurationVsStatic(b *BinaryExpr) bool {
	isDur := func(e FieldExpr) bool {
		a, ok := e.(*Attribute)
		return ok && a.Intrinsic == IntrinsicDuration
	}
	isStatic := func(e FieldExpr) bool {
		_, ok := e.(*StaticExpr)
		return ok
	}
	return (isDur(b.L) && isStatic(b.R)) || (isStatic(b.L) && isDur(b.R))
}

// Matcher applies a prefilter to many rows of columns. The terms of a predicate that do not read the duration
// are evaluated once per distinct (name, service, kind, status) and remembered; the duration terms run per row.
// A Matcher is not safe for concurrent use.
type Matcher struct {
	p     *Prefilter
	dur   [][]FieldExpr // per predicate: its && terms that read the duration
	other [][]FieldExpr // per predicate: the rest
	memo  map[memoKey]uint64
	// fast[i] holds the duration terms of predicate i as plain comparisons (duration op literal duration),
	// when all of them have that form; nil otherwise.
	fast [][]durCmp
}

// durCmp is duration Op N, with the duration on the left.
type durCmp struct {
	op Op
	n  int64
}

func (d durCmp) holds(v int64) bool {
	switch d.op {
	case OpEq:
		return v == d.n
	case OpNeq:
		return v != d.n
	case OpGt:
		return v > d.n
	case OpGte:
		return v >= d.n
	case OpLt:
		return v < d.n
	case OpLte:
		return v <= d.n
	}
	return true
}

var flipped = map[Op]Op{OpEq: OpEq, OpNeq: OpNeq, OpGt: OpLt, OpGte: OpLte, OpLt: OpGt, OpLte: OpGte}

// asDurCmp recognises duration op <duration literal> (either way round).
func asDurCmp(t FieldExpr) (durCmp, bool) {
	b, ok := t.(*BinaryExpr)
	if !ok || !isDurationVsStatic(b) {
		return durCmp{}, false
	}
	if _, cmp := flipped[b.Op]; !cmp {
		return durCmp{}, false
	}
	op, l := b.Op, b.R
	if _, static := b.L.(*StaticExpr); static {
		op, l = flipped[b.Op], b.L
	}
	v := l.(*StaticExpr).V
	if op == "" || v.Type != TypeDuration {
		return durCmp{}, false
	}
	return durCmp{op: op, n: v.N}, true
}

type memoKey struct {
	name, service string
	kind, status  int32
}

// maxMemo bounds the remembered column tuples; past it the memo is cleared.
const maxMemo = 1 << 16

// NewMatcher prepares p for row-by-row use.
func (p *Prefilter) NewMatcher() *Matcher {
	m := &Matcher{p: p, dur: make([][]FieldExpr, len(p.preds)), other: make([][]FieldExpr, len(p.preds)), memo: map[memoKey]uint64{},
		fast: make([][]durCmp, len(p.preds))}
	for i, e := range p.preds {
		for _, t := range andTerms(e, nil) {
			if exprColumns(t)&ColDuration != 0 {
				m.dur[i] = append(m.dur[i], t)
			} else {
				m.other[i] = append(m.other[i], t)
			}
		}
		for _, t := range m.dur[i] {
			dc, ok := asDurCmp(t)
			if !ok {
				m.fast[i] = nil
				break
			}
			m.fast[i] = append(m.fast[i], dc)
		}
	}
	return m
}

func termsMaybe(terms []FieldExpr, c *Columns) bool {
	for _, t := range terms {
		if v, known := colEval(t, c); known && !truthy(v) {
			return false
		}
	}
	return true
}

// Mask returns the predicates among want (a bit set; at most 64 predicates) that a span with columns c may
// satisfy. It gives the same answer as Maybe for each predicate.
func (m *Matcher) Mask(c *Columns, want uint64) uint64 {
	k := memoKey{c.Name, c.Service, c.Kind, c.Status}
	base, ok := m.memo[k]
	if !ok {
		base = m.Static(c)
		if len(m.memo) >= maxMemo {
			clear(m.memo)
		}
		m.memo[k] = base
	}
	return m.Refine(c, base&want)
}

// Static returns the predicates whose terms that do not read the duration may hold for c (c.Duration is not
// looked at). Callers that know when name, service, kind and status repeat can remember it.
func (m *Matcher) Static(c *Columns) uint64 {
	var base uint64
	for i := range m.other {
		if termsMaybe(m.other[i], c) {
			base |= 1 << i
		}
	}
	return base
}

// ReadsDuration says whether some predicate has a term that reads the duration (else Refine is the identity).
func (m *Matcher) ReadsDuration() bool {
	for _, d := range m.dur {
		if len(d) > 0 {
			return true
		}
	}
	return false
}

// Refine clears from bits the predicates whose duration terms fail for c.
func (m *Matcher) Refine(c *Columns, bits uint64) uint64 {
	for i := range m.dur {
		if bits&(1<<i) == 0 || len(m.dur[i]) == 0 {
			continue
		}
		if f := m.fast[i]; f != nil {
			for _, dc := range f {
				if !dc.holds(c.Duration) {
					bits &^= 1 << i
					break
				}
			}
		} else if !termsMaybe(m.dur[i], c) {
			bits &^= 1 << i
		}
	}
	return bits
}
