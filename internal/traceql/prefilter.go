package traceql

// Columns are the span fields the trace store keeps as plain columns (in blocks and in memory), so that a
// search can rule spans out without decoding them.
type Columns struct {
	Name     string
	Service  string // resource service.name as a string ("" when absent)
	Duration int64
	Kind     int32
	Status   int32
}

// Prefilter is a necessary condition for a trace to match a query, over Columns only: for every predicate some
// span of the trace must possibly satisfy it. A prefilter never rules out a trace the query would match; traces
// it lets through still go through Eval.
type Prefilter struct {
	preds []FieldExpr
}

// Prefilter derives the query's prefilter, or nil when the query gives nothing to prune on.
func (q *Query) Prefilter() *Prefilter {
	preds := needPipeline(q.Root)
	var useful []FieldExpr
	for _, p := range preds {
		if usesColumns(p) {
			useful = append(useful, p)
		}
	}
	if len(useful) == 0 {
		return nil
	}
	return &Prefilter{preds: useful}
}

// Len is the number of predicates.
func (p *Prefilter) Len() int { return len(p.preds) }

// Maybe says whether a span with these columns may satisfy predicate i.
func (p *Prefilter) Maybe(i int, c *Columns) bool {
	v, known := colEval(p.preds[i], c)
	return !known || truthy(v)
}

// needPipeline: every span set a pipeline produces comes out of its first stage.
func needPipeline(pl *Pipeline) []FieldExpr {
	if pl == nil || len(pl.Stages) == 0 {
		return nil
	}
	st, ok := pl.Stages[0].(*SpansetStage)
	if !ok {
		return nil
	}
	return needSpanset(st.E)
}

// needSpanset returns predicates that must each hold for some span when e yields a non-empty result.
func needSpanset(e SpansetExpr) []FieldExpr {
	switch x := e.(type) {
	case *SpansetFilter:
		if x.Expr == nil {
			return nil
		}
		return []FieldExpr{x.Expr}
	case *Pipeline:
		return needPipeline(x)
	case *SpansetOp:
		l, r := needSpanset(x.L), needSpanset(x.R)
		switch x.Op {
		case OpAnd, OpChild, OpDesc, OpParent, OpAnc, OpSibling, OpUChild, OpUDesc, OpUParent, OpUAnc, OpUSib:
			return append(l, r...)
		case OpOr:
			if len(l) == 0 || len(r) == 0 {
				return nil
			}
			return []FieldExpr{&BinaryExpr{Op: OpOr, L: l[0], R: r[0]}}
		default: // negated structural operators: only the right side must match
			return r
		}
	}
	return nil
}

func usesColumns(e FieldExpr) bool {
	switch x := e.(type) {
	case *Attribute:
		return columnAttr(x)
	case *UnaryExpr:
		return usesColumns(x.E)
	case *BinaryExpr:
		return usesColumns(x.L) || usesColumns(x.R)
	}
	return false
}

func isServiceAttr(a *Attribute) bool {
	return a.Intrinsic == IntrinsicNone && a.Scope == ScopeResource && a.Name == "service.name"
}

func columnAttr(a *Attribute) bool {
	switch a.Intrinsic {
	case IntrinsicName, IntrinsicKind, IntrinsicStatus, IntrinsicDuration:
		return true
	}
	return isServiceAttr(a)
}

// colEval evaluates e as evalField would, with known=false where the columns cannot tell.
func colEval(e FieldExpr, c *Columns) (Static, bool) {
	switch x := e.(type) {
	case *StaticExpr:
		return x.V, true
	case *Attribute:
		switch x.Intrinsic {
		case IntrinsicName:
			return NewString(c.Name), true
		case IntrinsicKind:
			return Static{Type: TypeKind, N: int64(c.Kind)}, true
		case IntrinsicStatus:
			return Static{Type: TypeStatus, N: int64(c.Status)}, true
		case IntrinsicDuration:
			return Static{Type: TypeDuration, N: c.Duration}, true
		}
		if isServiceAttr(x) && c.Service != "" {
			return NewString(c.Service), true
		}
		return Static{}, false
	case *UnaryExpr:
		v, ok := colEval(x.E, c)
		if !ok {
			return Static{}, false
		}
		switch x.Op {
		case OpNot:
			if v.Type == TypeBool {
				return NewBool(!v.B), true
			}
		case OpNeg:
			switch v.Type {
			case TypeInt, TypeDuration:
				v.N = -v.N
				return v, true
			case TypeFloat:
				v.F = -v.F
				return v, true
			}
		}
		return Static{}, true
	case *BinaryExpr:
		switch x.Op {
		case OpAnd:
			l, lok := colEval(x.L, c)
			if lok && !truthy(l) {
				return NewBool(false), true
			}
			r, rok := colEval(x.R, c)
			if rok && !truthy(r) {
				return NewBool(false), true
			}
			if lok && rok {
				return NewBool(true), true
			}
			return Static{}, false
		case OpOr:
			l, lok := colEval(x.L, c)
			if lok && truthy(l) {
				return NewBool(true), true
			}
			r, rok := colEval(x.R, c)
			if rok && truthy(r) {
				return NewBool(true), true
			}
			if lok && rok {
				return NewBool(false), true
			}
			return Static{}, false
		}
		l, lok := colEval(x.L, c)
		r, rok := colEval(x.R, c)
		if !lok || !rok {
			return Static{}, false
		}
		// The service column holds the attribute as a string: only compare it with strings.
		if a, ok := x.L.(*Attribute); ok && isServiceAttr(a) && r.Type != TypeString && x.Op != OpRe && x.Op != OpNre {
			return Static{}, false
		}
		if a, ok := x.R.(*Attribute); ok && isServiceAttr(a) && l.Type != TypeString {
			return Static{}, false
		}
		switch x.Op {
		case OpRe, OpNre:
			if x.re == nil {
				return Static{}, false
			}
			str := l.S
			if l.Type != TypeString {
				str = l.String()
			}
			m := x.re.MatchString(str)
			if x.Op == OpNre {
				m = !m
			}
			return NewBool(m), true
		case OpAdd, OpSub, OpMul, OpDiv, OpMod, OpPow:
			return arith(x.Op, l, r), true
		}
		return NewBool(cmpHolds(x.Op, l, r)), true
	}
	return Static{}, false
}
