package traceql

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Eval runs the query over one trace and returns the spansets it produces; an empty result means the trace does
// not match. Metrics stages are ignored here (see Query.Metrics); Eval returns the spansets they would consume.
func (q *Query) Eval(t *Trace) []Spanset {
	all := make([]*Span, len(t.Spans))
	for i := range t.Spans {
		all[i] = &t.Spans[i]
	}
	in := []Spanset{{Spans: all}}
	return evalPipeline(q.Root, t, in)
}

func evalPipeline(pl *Pipeline, t *Trace, in []Spanset) []Spanset {
	cur := in
	for _, st := range pl.Stages {
		if len(cur) == 0 {
			return nil
		}
		switch s := st.(type) {
		case *SpansetStage:
			cur = evalSpanset(s.E, t, cur)
		case *ScalarFilter:
			out := cur[:0:0]
			for _, ss := range cur {
				l := evalScalar(s.L, t, ss)
				r := evalScalar(s.R, t, ss)
				if cmpHolds(s.Op, l, r) {
					ss.Scalar, ss.ScalarName = l, aggName(s.L)
					if isAgg(s.R) && !isAgg(s.L) {
						ss.Scalar, ss.ScalarName = r, aggName(s.R)
					}
					out = append(out, ss)
				}
			}
			cur = out
		case *SelectStage:
			for i := range cur {
				cur[i].Select = append(append([]Attribute(nil), cur[i].Select...), s.Attrs...)
			}
		case *ByStage:
			var out []Spanset
			for _, ss := range cur {
				groups := map[string]int{}
				for _, sp := range ss.Spans {
					v := evalField(s.E, t, sp)
					k := v.key()
					gi, ok := groups[k]
					if !ok {
						gi = len(out)
						groups[k] = gi
						gb := append(append([]GroupValue(nil), ss.GroupBy...), GroupValue{Name: s.Text, Value: v})
						out = append(out, Spanset{GroupBy: gb, Select: ss.Select})
					}
					out[gi].Spans = append(out[gi].Spans, sp)
				}
			}
			cur = out
		case *CoalesceStage:
			merged := Spanset{}
			for _, ss := range cur {
				merged.Spans = union(merged.Spans, ss.Spans)
				merged.Select = append(merged.Select, ss.Select...)
			}
			cur = []Spanset{merged}
		case *MetricsStage:
			// evaluated by the caller over the spansets
		}
	}
	return cur
}

func isAgg(e ScalarExpr) bool { _, ok := e.(*Aggregate); return ok }

func evalSpanset(e SpansetExpr, t *Trace, in []Spanset) []Spanset {
	switch x := e.(type) {
	case *SpansetFilter:
		var out []Spanset
		for _, ss := range in {
			var kept []*Span
			for _, sp := range ss.Spans {
				if x.Expr == nil || truthy(evalField(x.Expr, t, sp)) {
					kept = append(kept, sp)
				}
			}
			if len(kept) > 0 {
				out = append(out, Spanset{Spans: kept, GroupBy: ss.GroupBy, Select: ss.Select, Scalar: ss.Scalar})
			}
		}
		return out
	case *Pipeline:
		return evalPipeline(x, t, in)
	case *SpansetOp:
		var out []Spanset
		for _, ss := range in {
			one := []Spanset{ss}
			l := evalSpanset(x.L, t, one)
			r := evalSpanset(x.R, t, one)
			switch x.Op {
			case OpAnd:
				if len(l) > 0 && len(r) > 0 {
					out = append(out, Spanset{Spans: union(flatten(l), flatten(r)), GroupBy: ss.GroupBy, Select: mergeSelect(l, r)})
				}
			case OpOr:
				if len(l) > 0 || len(r) > 0 {
					out = append(out, Spanset{Spans: union(flatten(l), flatten(r)), GroupBy: ss.GroupBy, Select: mergeSelect(l, r)})
				}
			default:
				if len(r) == 0 {
					continue
				}
				var got []*Span
				if base, ok := unionBase[x.Op]; ok {
					// both sides: the right spans in the relation, and the left spans they are related to
					lf, rf := flatten(l), flatten(r)
					right := structural(base, t, lf, rf)
					got = union(structural(inverse[base], t, right, lf), right)
				} else {
					got = structural(x.Op, t, flatten(l), flatten(r))
				}
				if len(got) > 0 {
					out = append(out, Spanset{Spans: got, GroupBy: ss.GroupBy, Select: mergeSelect(l, r)})
				}
			}
		}
		return out
	}
	return nil
}

func mergeSelect(l, r []Spanset) []Attribute {
	var out []Attribute
	for _, s := range l {
		out = append(out, s.Select...)
	}
	for _, s := range r {
		out = append(out, s.Select...)
	}
	return out
}

func flatten(ss []Spanset) []*Span {
	if len(ss) == 1 {
		return ss[0].Spans
	}
	var out []*Span
	for _, s := range ss {
		out = union(out, s.Spans)
	}
	return out
}

// union merges two span lists without duplicates, in trace order.
func union(a, b []*Span) []*Span {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	seen := make(map[int32]bool, len(a)+len(b))
	out := make([]*Span, 0, len(a)+len(b))
	for _, s := range a {
		if !seen[s.index] {
			seen[s.index] = true
			out = append(out, s)
		}
	}
	for _, s := range b {
		if !seen[s.index] {
			seen[s.index] = true
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out
}

// unionBase maps a union structural operator to the plain one; inverse maps a relation to its converse.
var (
	unionBase = map[Op]Op{OpUChild: OpChild, OpUDesc: OpDesc, OpUParent: OpParent, OpUAnc: OpAnc, OpUSib: OpSibling}
	inverse   = map[Op]Op{OpChild: OpParent, OpParent: OpChild, OpDesc: OpAnc, OpAnc: OpDesc, OpSibling: OpSibling}
)

// structural returns the spans of r that stand in relation op to some span of l. As in Tempo, relations hold
// only within the tree reachable from the trace's root spans (a span whose parent was never received, and its
// descendants, stand in none), and root spans are siblings of one another.
func structural(op Op, t *Trace, l, r []*Span) []*Span {
	t.nestedSets()
	attached := func(s *Span) bool { return s.nsLeft > 0 }
	inL := make(map[int32]bool, len(l))
	var rootsInL int
	for _, s := range l {
		if !attached(s) {
			continue
		}
		inL[s.index] = true
		if s.nsParent == -1 {
			rootsInL++
		}
	}
	l = attachedOnly(l, attached)
	// For < and <<: the set of parents / ancestors of spans in l.
	var parentsOfL, ancestorsOfL, parentsWithLChild map[int32]bool
	switch op {
	case OpParent, OpNParent:
		parentsOfL = map[int32]bool{}
		for _, s := range l {
			if s.parent >= 0 {
				parentsOfL[s.parent] = true
			}
		}
	case OpAnc, OpNAnc:
		ancestorsOfL = map[int32]bool{}
		for _, s := range l {
			for p, n := s.parent, 0; p >= 0 && n < len(t.Spans); p, n = t.Spans[p].parent, n+1 {
				if ancestorsOfL[p] {
					break
				}
				ancestorsOfL[p] = true
			}
		}
	case OpSibling, OpNSib:
		parentsWithLChild = map[int32]bool{}
		for _, s := range l {
			if s.parent >= 0 {
				parentsWithLChild[s.parent] = true
			}
		}
	}
	var out []*Span
	for _, s := range r {
		var hit bool
		switch {
		case !attached(s):
		case (op == OpSibling || op == OpNSib) && s.nsParent == -1:
			// roots are siblings: another root in l
			hit = rootsInL > 1 || (rootsInL == 1 && !inL[s.index])
		default:
			hit = related(op, t, s, inL, parentsOfL, ancestorsOfL, parentsWithLChild, l)
		}
		switch op {
		case OpNChild, OpNDesc, OpNParent, OpNAnc, OpNSib:
			hit = !hit
		}
		if hit {
			out = append(out, s)
		}
	}
	return out
}

func attachedOnly(ss []*Span, attached func(*Span) bool) []*Span {
	for i, s := range ss {
		if !attached(s) {
			out := append([]*Span(nil), ss[:i]...)
			for _, s := range ss[i+1:] {
				if attached(s) {
					out = append(out, s)
				}
			}
			return out
		}
	}
	return ss
}

// related reports whether s (attached to the tree) stands in relation op to a span of l.
func related(op Op, t *Trace, s *Span, inL, parentsOfL, ancestorsOfL, parentsWithLChild map[int32]bool, l []*Span) bool {
	var hit bool
	{
		switch op {
		case OpChild, OpNChild:
			hit = s.parent >= 0 && inL[s.parent]
		case OpDesc, OpNDesc:
			for p, n := s.parent, 0; p >= 0 && n < len(t.Spans); p, n = t.Spans[p].parent, n+1 {
				if inL[p] {
					hit = true
					break
				}
			}
		case OpParent, OpNParent:
			hit = parentsOfL[s.index]
		case OpAnc, OpNAnc:
			hit = ancestorsOfL[s.index]
		case OpSibling, OpNSib:
			if s.parent >= 0 && parentsWithLChild[s.parent] {
				// a sibling is another span under the same parent
				for _, o := range l {
					if o.parent == s.parent && o.index != s.index {
						hit = true
						break
					}
				}
			}
		}
	}
	return hit
}

func truthy(v Static) bool { return v.Type == TypeBool && v.B }

// Field returns the value of an attribute or intrinsic of s (nil when absent).
func Field(a *Attribute, t *Trace, s *Span) Static {
	if a.Intrinsic != IntrinsicNone {
		return intrinsic(a.Intrinsic, t, s)
	}
	switch a.Scope {
	case ScopeSpan:
		return lookup(s.Span.Attributes(), a.Name)
	case ScopeResource:
		return lookup(s.Resource.Attrs, a.Name)
	case ScopeAny:
		if v := lookup(s.Span.Attributes(), a.Name); v.Type != TypeNil {
			return v
		}
		return lookup(s.Resource.Attrs, a.Name)
	case ScopeInstrumentation:
		return lookup(s.Scope.Attributes(), a.Name)
	case ScopeEvent:
		evs := s.Span.Events()
		for i := 0; i < evs.Len(); i++ {
			if v := lookup(evs.At(i).Attributes(), a.Name); v.Type != TypeNil {
				return v
			}
		}
	case ScopeLink:
		ls := s.Span.Links()
		for i := 0; i < ls.Len(); i++ {
			if v := lookup(ls.At(i).Attributes(), a.Name); v.Type != TypeNil {
				return v
			}
		}
	case ScopeParent:
		if p := t.Parent(s); p != nil {
			if v := lookup(p.Span.Attributes(), a.Name); v.Type != TypeNil {
				return v
			}
			return lookup(p.Resource.Attrs, a.Name)
		}
	}
	return Static{}
}

func lookup(m pcommon.Map, k string) Static {
	v, ok := m.Get(k)
	if !ok {
		return Static{}
	}
	return FromPdata(v)
}

func intrinsic(in Intrinsic, t *Trace, s *Span) Static {
	switch in {
	case IntrinsicName:
		return NewString(s.Span.Name())
	case IntrinsicStatus:
		return Static{Type: TypeStatus, N: int64(s.Span.Status().Code())}
	case IntrinsicStatusMessage:
		return NewString(s.Span.Status().Message())
	case IntrinsicKind:
		return Static{Type: TypeKind, N: int64(s.Span.Kind())}
	case IntrinsicDuration:
		return Static{Type: TypeDuration, N: int64(s.DurationNanos())}
	case IntrinsicRootName:
		return NewString(t.RootName)
	case IntrinsicRootServiceName:
		return NewString(t.RootServiceName)
	case IntrinsicTraceDuration:
		return Static{Type: TypeDuration, N: int64(t.DurationNanos())}
	case IntrinsicSpanID:
		return NewString(s.Span.SpanID().String())
	case IntrinsicParentID:
		return NewString(s.Span.ParentSpanID().String())
	case IntrinsicTraceID:
		return NewString(t.ID.String())
	case IntrinsicEventName:
		if s.Span.Events().Len() > 0 {
			return NewString(s.Span.Events().At(0).Name())
		}
	case IntrinsicInstrumentationName:
		return NewString(s.Scope.Name())
	case IntrinsicInstrumentationVersion:
		return NewString(s.Scope.Version())
	case IntrinsicNestedSetLeft:
		t.nestedSets()
		return NewInt(int64(s.nsLeft))
	case IntrinsicNestedSetRight:
		t.nestedSets()
		return NewInt(int64(s.nsRight))
	case IntrinsicNestedSetParent:
		t.nestedSets()
		return NewInt(int64(s.nsParent))
	case IntrinsicChildCount:
		return NewInt(int64(s.children))
	case IntrinsicEventTimeSinceStart, IntrinsicLinkSpanID, IntrinsicLinkTraceID:
		// outside a comparison (select, by): the first event's or link's value
		if vs, _ := multiValues(&Attribute{Intrinsic: in}, t, s); len(vs) > 0 {
			return vs[0]
		}
	}
	return Static{}
}

func evalField(e FieldExpr, t *Trace, s *Span) Static {
	switch x := e.(type) {
	case *StaticExpr:
		return x.V
	case *Attribute:
		return Field(x, t, s)
	case *UnaryExpr:
		v := evalField(x.E, t, s)
		switch x.Op {
		case OpNot:
			if v.Type == TypeBool {
				return NewBool(!v.B)
			}
		case OpNeg:
			switch v.Type {
			case TypeInt, TypeDuration:
				v.N = -v.N
				return v
			case TypeFloat:
				v.F = -v.F
				return v
			}
		}
		return Static{}
	case *BinaryExpr:
		switch x.Op {
		case OpAnd:
			l := evalField(x.L, t, s)
			if !truthy(l) {
				return NewBool(false)
			}
			return NewBool(truthy(evalField(x.R, t, s)))
		case OpOr:
			if truthy(evalField(x.L, t, s)) {
				return NewBool(true)
			}
			return NewBool(truthy(evalField(x.R, t, s)))
		}
		if _, cmp := cmpOps[string(x.Op)]; !cmp {
			return compareValues(x, evalField(x.L, t, s), evalField(x.R, t, s))
		}
		if a, ok := absentTest(x); ok {
			return NewBool(lacksOnOne(a, s))
		}
		if vs, ok := multiValues(x.L, t, s); ok {
			// an event or link field holds one value per event (link): the comparison holds if it holds for one
			for _, v := range vs {
				if truthy(compareValues(x, v, evalField(x.R, t, s))) {
					return NewBool(true)
				}
			}
			return NewBool(false)
		}
		return compareValues(x, evalField(x.L, t, s), evalField(x.R, t, s))
	}
	return Static{}
}

// compareValues applies a comparison, regex match or arithmetic of x to its evaluated sides.
func compareValues(x *BinaryExpr, l, r Static) Static {
	switch x.Op {
	case OpRe, OpNre:
		if l.Type == TypeNil {
			return NewBool(false)
		}
		str := l.S
		if l.Type != TypeString {
			str = l.String()
		}
		m := x.re != nil && x.re.MatchString(str)
		if x.Op == OpNre {
			m = !m
		}
		return NewBool(m)
	case OpAdd, OpSub, OpMul, OpDiv, OpMod, OpPow:
		return arith(x.Op, l, r)
	}
	return NewBool(cmpHolds(x.Op, l, r))
}

// absentTest returns the attribute of `event.x = nil` or `link.x = nil`.
func absentTest(x *BinaryExpr) (*Attribute, bool) {
	a, ok := x.L.(*Attribute)
	r, rok := x.R.(*StaticExpr)
	if !ok || !rok || x.Op != OpEq || r.V.Type != TypeNil || a.Intrinsic != IntrinsicNone ||
		(a.Scope != ScopeEvent && a.Scope != ScopeLink) {
		return nil, false
	}
	return a, true
}

// lacksOnOne is `event.x = nil` (`link.x = nil`) as Tempo 3 answers it: true when one of the span's events
// (links) has attributes and x is not among them. Tempo tests the condition on each event's attribute rows,
// so an event without any attribute, or a span without events, does not match, and a span matches when one
// event lacks x even if another has it. (Tempo's docs describe "the attribute does not exist"; its answers,
// which Sprout keeps to, are these: docs/traces.md has the evidence.)
func lacksOnOne(a *Attribute, s *Span) bool {
	if a.Scope == ScopeEvent {
		evs := s.Span.Events()
		for i := 0; i < evs.Len(); i++ {
			if m := evs.At(i).Attributes(); m.Len() > 0 {
				if _, has := m.Get(a.Name); !has {
					return true
				}
			}
		}
		return false
	}
	ls := s.Span.Links()
	for i := 0; i < ls.Len(); i++ {
		if m := ls.At(i).Attributes(); m.Len() > 0 {
			if _, has := m.Get(a.Name); !has {
				return true
			}
		}
	}
	return false
}

// multiValues gives every value of an event or link field of s (one per event or link that has it), when e is
// such a field; ok is false for anything else.
func multiValues(e FieldExpr, t *Trace, s *Span) ([]Static, bool) {
	a, ok := e.(*Attribute)
	if !ok {
		return nil, false
	}
	switch {
	case a.Intrinsic == IntrinsicEventName, a.Intrinsic == IntrinsicEventTimeSinceStart, a.Intrinsic == IntrinsicLinkSpanID,
		a.Intrinsic == IntrinsicLinkTraceID, a.Intrinsic == IntrinsicNone && (a.Scope == ScopeEvent || a.Scope == ScopeLink):
	default:
		return nil, false
	}
	evs, links := s.Span.Events(), s.Span.Links()
	var out []Static
	switch {
	case a.Intrinsic == IntrinsicEventName:
		for i := 0; i < evs.Len(); i++ {
			out = append(out, NewString(evs.At(i).Name()))
		}
	case a.Intrinsic == IntrinsicEventTimeSinceStart:
		st := s.Span.StartTimestamp()
		for i := 0; i < evs.Len(); i++ {
			out = append(out, Static{Type: TypeDuration, N: int64(evs.At(i).Timestamp()) - int64(st)})
		}
	case a.Intrinsic == IntrinsicLinkSpanID:
		for i := 0; i < links.Len(); i++ {
			out = append(out, NewString(links.At(i).SpanID().String()))
		}
	case a.Intrinsic == IntrinsicLinkTraceID:
		for i := 0; i < links.Len(); i++ {
			out = append(out, NewString(links.At(i).TraceID().String()))
		}
	case a.Intrinsic == IntrinsicNone && a.Scope == ScopeEvent:
		for i := 0; i < evs.Len(); i++ {
			if v := lookup(evs.At(i).Attributes(), a.Name); v.Type != TypeNil {
				out = append(out, v)
			}
		}
	case a.Intrinsic == IntrinsicNone && a.Scope == ScopeLink:
		for i := 0; i < links.Len(); i++ {
			if v := lookup(links.At(i).Attributes(), a.Name); v.Type != TypeNil {
				out = append(out, v)
			}
		}
	default:
		return nil, false
	}
	if len(out) == 0 {
		out = []Static{{}} // absent: compares as nil
	}
	return out, true
}

// cmpHolds applies a comparison. Comparing with nil tests presence: x = nil is true when x is absent, x != nil
// when it is present. Any other comparison with an absent or mismatched value is false.
func cmpHolds(op Op, l, r Static) bool {
	if r.Type == TypeNil || l.Type == TypeNil {
		if r.Type != TypeNil && l.Type == TypeNil {
			// an absent attribute matches no comparison with a value, not even !=
			return false
		}
		switch op {
		case OpEq:
			return l.Type == TypeNil
		case OpNeq:
			return l.Type != TypeNil
		}
		return false
	}
	c, ok := compare(l, r)
	if !ok {
		return false
	}
	switch op {
	case OpEq:
		return c == 0
	case OpNeq:
		return c != 0
	case OpGt:
		return c > 0
	case OpGte:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLte:
		return c <= 0
	}
	return false
}

// aggName is how an aggregate is named in search results: count(), avg(duration), ...; "" for anything else.
func aggName(e ScalarExpr) string {
	a, ok := e.(*Aggregate)
	if !ok {
		return ""
	}
	arg := ""
	if at, ok := a.E.(*Attribute); ok {
		arg = at.Text
	}
	return a.Fn + "(" + arg + ")"
}

func arith(op Op, l, r Static) Static {
	if !l.Type.numeric() || !r.Type.numeric() {
		if op == OpAdd && l.Type == TypeString && r.Type == TypeString {
			return NewString(l.S + r.S)
		}
		return Static{}
	}
	typ := TypeInt
	if l.Type == TypeDuration || r.Type == TypeDuration {
		typ = TypeDuration
	}
	if l.Type == TypeFloat || r.Type == TypeFloat || op == OpPow {
		f, ok := arithOp(op, l.Float(), r.Float(), math.Mod, math.Pow)
		if !ok {
			return Static{}
		}
		if typ == TypeDuration {
			return Static{Type: TypeDuration, N: int64(f)}
		}
		return NewFloat(f)
	}
	n, ok := arithOp(op, l.N, r.N, func(a, b int64) int64 { return a % b }, nil)
	if !ok {
		return Static{}
	}
	return Static{Type: typ, N: n}
}

// arithOp applies + - * / % (and ^ when pow is given) to two numbers; division by zero gives no value.
func arithOp[T int64 | float64](op Op, a, b T, mod, pow func(T, T) T) (T, bool) {
	switch op {
	case OpAdd:
		return a + b, true
	case OpSub:
		return a - b, true
	case OpMul:
		return a * b, true
	case OpDiv, OpMod:
		if b == 0 {
			return 0, false
		}
		if op == OpDiv {
			return a / b, true
		}
		return mod(a, b), true
	case OpPow:
		if pow != nil {
			return pow(a, b), true
		}
	}
	return 0, true
}

func evalScalar(e ScalarExpr, t *Trace, ss Spanset) Static {
	switch x := e.(type) {
	case *ScalarStatic:
		return x.V
	case *ScalarBinary:
		return arith(x.Op, evalScalar(x.L, t, ss), evalScalar(x.R, t, ss))
	case *Aggregate:
		if x.Fn == "count" {
			return NewInt(int64(len(ss.Spans)))
		}
		var (
			n     int
			sum   float64
			best  Static
			isDur bool
			isInt = true
		)
		for _, sp := range ss.Spans {
			v := evalField(x.E, t, sp)
			if !v.Type.numeric() {
				continue
			}
			isDur = v.Type == TypeDuration
			if v.Type == TypeFloat {
				isInt = false
			}
			f := v.Float()
			sum += f
			switch x.Fn {
			case "min":
				if n == 0 || f < best.Float() {
					best = v
				}
			case "max":
				if n == 0 || f > best.Float() {
					best = v
				}
			}
			n++
		}
		if n == 0 {
			return Static{}
		}
		switch x.Fn {
		case "min", "max":
			return best
		case "sum":
			if isDur {
				return Static{Type: TypeDuration, N: int64(sum)}
			}
			if isInt {
				return NewInt(int64(sum))
			}
			return NewFloat(sum)
		case "avg":
			avg := sum / float64(n)
			if isDur {
				return Static{Type: TypeDuration, N: int64(avg)}
			}
			return NewFloat(avg)
		}
	}
	return Static{}
}

// AttributeName is how an attribute is named in results: the key for attributes, the intrinsic's name otherwise.
func (a Attribute) AttributeName() string {
	if a.Intrinsic != IntrinsicNone {
		return strings.TrimPrefix(strings.TrimPrefix(a.Name, "span:"), "trace:")
	}
	return a.Name
}

// Matches says whether span s of trace t satisfies the filter (an empty filter matches every span).
func (f *SpansetFilter) Matches(t *Trace, s *Span) bool {
	return f.Expr == nil || truthy(evalField(f.Expr, t, s))
}

// EachAttribute calls fn with every attribute of s under the name TraceQL gives it, for breakdowns over all
// attributes such as compare(): the intrinsics name, kind, status, statusMessage (also when empty), rootName and
// rootServiceName (when the trace has a root), instrumentation:name and instrumentation:version (when set), then
// span.x, resource.x and instrumentation.x (scope attributes), names that cannot stand bare in quotes
// (span."a b"), as Tempo's compare() lists them. Durations and ids are left out: their cardinality makes
// no useful breakdown.
func EachAttribute(t *Trace, s *Span, fn func(name string, v Static)) {
	fn("name", NewString(s.Span.Name()))
	fn("kind", intrinsic(IntrinsicKind, t, s))
	fn("status", intrinsic(IntrinsicStatus, t, s))
	fn("statusMessage", NewString(s.Span.Status().Message()))
	if t.Root != nil {
		fn("rootName", NewString(t.RootName))
		fn("rootServiceName", NewString(t.RootServiceName))
	}
	if n := s.Scope.Name(); n != "" {
		fn("instrumentation:name", NewString(n))
	}
	if v := s.Scope.Version(); v != "" {
		fn("instrumentation:version", NewString(v))
	}
	each := func(prefix string, m pcommon.Map) {
		m.Range(func(k string, v pcommon.Value) bool {
			if st := FromPdata(v); st.Type != TypeNil && st.Type != TypeDuration {
				if needsQuotes(k) {
					k = strconv.Quote(k)
				}
				fn(prefix+k, st)
			}
			return true
		})
	}
	each("span.", s.Span.Attributes())
	each("resource.", s.Resource.Attrs)
	each("instrumentation.", s.Scope.Attributes())
}

// ShownIntrinsics returns the span-level intrinsics (status, statusMessage, kind, nestedSet*, span:childCount)
// that the search API shows with span s, as Tempo does: those read by the spanset filters of the query that s
// itself satisfies, in the order written. Name and duration are fields of every span in the answer, and
// trace-level intrinsics are not shown.
func (q *Query) ShownIntrinsics(t *Trace, s *Span) []Attribute {
	var out []Attribute
	seen := map[Intrinsic]bool{}
	for _, f := range q.filters {
		if f.Expr == nil || !f.Matches(t, s) {
			continue
		}
		walkField(f.Expr, func(a *Attribute) {
			switch a.Intrinsic {
			case IntrinsicStatus, IntrinsicStatusMessage, IntrinsicKind, IntrinsicNestedSetLeft, IntrinsicNestedSetRight,
				IntrinsicNestedSetParent, IntrinsicChildCount:
				if !seen[a.Intrinsic] {
					seen[a.Intrinsic] = true
					out = append(out, *a)
				}
			}
		})
	}
	return out
}

func walkField(e FieldExpr, fn func(*Attribute)) {
	switch x := e.(type) {
	case *Attribute:
		fn(x)
	case *UnaryExpr:
		walkField(x.E, fn)
	case *BinaryExpr:
		walkField(x.L, fn)
		walkField(x.R, fn)
	}
}
