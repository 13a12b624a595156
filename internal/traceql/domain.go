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
		for _, v := range d.Names {
			if c.Name = v; maybe(&c) {
				return true
			}
		}
		return false
	case ColService:
		for _, v := range d.Services {
			if c.Service = v; maybe(&c) {
				return true
			}
		}
		return false
	case ColKind:
		for _, v := range d.Kinds {
			if c.Kind = v; maybe(&c) {
				return true
			}
		}
		return false
	case ColStatus:
		for _, v := range d.Statuses {
			if c.Status = v; maybe(&c) {
				return true
			}
		}
		return false
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
