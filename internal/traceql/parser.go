package traceql

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// MaxQueryLength bounds the query text the parser accepts.
const MaxQueryLength = 64 << 10

// maxDepth bounds nesting, so that a hostile query cannot exhaust the stack.
const maxDepth = 200

type parser struct {
	toks    []token
	i       int
	depth   int
	attrs   []Attribute
	filters []*SpansetFilter // every spanset filter, for Query.ShownIntrinsics
	seen    map[string]bool
}

// Parse parses a TraceQL query. Errors are *ParseError values with the position they refer to.
func Parse(src string) (*Query, error) {
	if len(src) > MaxQueryLength {
		return nil, &ParseError{Pos: Pos{1, 1}, Msg: fmt.Sprintf("query is %d bytes long, the limit is %d", len(src), MaxQueryLength)}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, seen: map[string]bool{}}
	if p.peek().kind == tEOF {
		// An empty query matches every trace, as Tempo's search does with no q.
		return &Query{Text: src, Root: &Pipeline{Stages: []Stage{&SpansetStage{E: &SpansetFilter{}}}}}, nil
	}
	pl, err := p.parsePipeline()
	if err != nil {
		return nil, err
	}
	q := &Query{Text: src, Root: pl}
	for i, st := range pl.Stages {
		if m, ok := st.(*MetricsStage); ok {
			if i != len(pl.Stages)-1 {
				return nil, &ParseError{Pos: Pos{1, 1}, Msg: m.Fn + "() must be the last stage of the pipeline"}
			}
			q.Metrics = m
		}
	}
	if q.Metrics != nil {
		if q.Second, err = p.parseSecondStages(); err != nil {
			return nil, err
		}
	}
	for p.peek().kind == tIdent && p.peek().text == "with" {
		hs, err := p.parseHints()
		if err != nil {
			return nil, err
		}
		q.Hints = append(q.Hints, hs...)
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t, "unexpected %s", t)
	}
	q.attrs, q.filters = p.attrs, p.filters
	if _, ok := pl.Stages[0].(*SpansetStage); !ok {
		return nil, &ParseError{Pos: Pos{1, 1}, Msg: "a query must start with a spanset filter such as { }"}
	}
	return q, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekN(n int) token {
	if p.i+n >= len(p.toks) {
		return p.toks[len(p.toks)-1]
	}
	return p.toks[p.i+n]
}
func (p *parser) advance() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(s string) bool { t := p.peek(); return t.kind == tOp && t.text == s }

func (p *parser) errAt(t token, format string, args ...any) error {
	return &ParseError{Pos: t.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) expect(s string) (token, error) {
	t := p.peek()
	if t.kind != tOp || t.text != s {
		return t, p.errAt(t, "expected '%s', found %s", s, t)
	}
	return p.advance(), nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(p.peek(), "query is nested too deeply (limit %d)", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parsePipeline() (*Pipeline, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	pl := &Pipeline{}
	first, err := p.parseSpansetExpr()
	if err != nil {
		return nil, err
	}
	pl.Stages = append(pl.Stages, &SpansetStage{E: first})
	for p.isOp("|") {
		p.advance()
		st, err := p.parseStage()
		if err != nil {
			return nil, err
		}
		pl.Stages = append(pl.Stages, st)
		if _, ok := st.(*MetricsStage); ok {
			break // what follows belongs to the metrics query: topk, bottomk, filters
		}
	}
	return pl, nil
}

var metricsFns = map[string]bool{"rate": true, "count_over_time": true, "quantile_over_time": true,
	"min_over_time": true, "max_over_time": true, "avg_over_time": true, "sum_over_time": true,
	"histogram_over_time": true, "compare": true}

var aggregateFns = map[string]bool{"count": true, "avg": true, "min": true, "max": true, "sum": true}

func (p *parser) parseStage() (Stage, error) {
	t := p.peek()
	switch {
	case t.kind == tOp && t.text == "{":
		e, err := p.parseSpansetExpr()
		if err != nil {
			return nil, err
		}
		return &SpansetStage{E: e}, nil
	case t.kind == tOp && t.text == "(":
		// A parenthesised spanset expression, or a parenthesised scalar filter.
		if n := p.peekN(1); n.kind == tOp && (n.text == "{" || n.text == "(") {
			e, err := p.parseSpansetExpr()
			if err != nil {
				return nil, err
			}
			return &SpansetStage{E: e}, nil
		}
		return p.parseScalarFilter()
	case t.kind == tIdent && t.text == "select":
		p.advance()
		attrs, err := p.parseAttributeList()
		if err != nil {
			return nil, err
		}
		return &SelectStage{Attrs: attrs}, nil
	case t.kind == tIdent && t.text == "by":
		p.advance()
		if _, err := p.expect("("); err != nil {
			return nil, err
		}
		start := p.i
		e, err := p.parseFieldExpr()
		if err != nil {
			return nil, err
		}
		text := p.textBetween(start, p.i)
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		return &ByStage{E: e, Text: text}, nil
	case t.kind == tIdent && t.text == "coalesce":
		p.advance()
		if _, err := p.expect("("); err != nil {
			return nil, err
		}
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		return &CoalesceStage{}, nil
	case t.kind == tIdent && metricsFns[t.text]:
		return p.parseMetrics()
	case t.kind == tIdent && (t.text == "topk" || t.text == "bottomk"):
		return nil, p.errAt(t, "%s() must follow a metrics function, e.g. { } | rate() by (name) | %s(5)", t.text, t.text)
	case t.kind == tIdent && aggregateFns[t.text], t.kind == tInt, t.kind == tFloat, t.kind == tDuration:
		return p.parseScalarFilter()
	}
	return nil, p.errAt(t, "expected a spanset filter, an aggregate, select(), by(), coalesce() or a metrics function, found %s", t)
}

func (p *parser) textBetween(a, b int) string {
	var parts []string
	for _, t := range p.toks[a:b] {
		switch t.kind {
		case tString:
			parts = append(parts, fmt.Sprintf("%q", t.text))
		case tAttr, tIntrinsic:
			parts = append(parts, t.String())
		default:
			parts = append(parts, t.text)
		}
	}
	return strings.Join(parts, " ")
}

func (p *parser) parseMetrics() (Stage, error) {
	t := p.advance()
	m := &MetricsStage{Fn: t.text}
	if _, err := p.expect("("); err != nil {
		return nil, err
	}
	switch m.Fn {
	case "rate", "count_over_time":
	case "compare":
		if err := p.parseCompareArgs(m); err != nil {
			return nil, err
		}
	default:
		a, err := p.parseAttribute()
		if err != nil {
			return nil, err
		}
		m.Attr = &a
		if m.Fn == "quantile_over_time" {
			for p.isOp(",") {
				p.advance()
				q := p.advance()
				var v float64
				switch q.kind {
				case tFloat:
					v = q.f
				case tInt:
					v = float64(q.i)
				case tAttr:
					// .99 lexes as an unscoped attribute; here it is the quantile 0.99, as in Tempo's examples.
					f, err := strconv.ParseFloat("0."+q.text, 64)
					if q.scope != "" || err != nil || strings.ContainsAny(q.text, "eE+-_") {
						return nil, p.errAt(q, "expected a quantile between 0 and 1, found %s", q)
					}
					v = f
				default:
					return nil, p.errAt(q, "expected a quantile between 0 and 1, found %s", q)
				}
				if v < 0 || v > 1 {
					return nil, p.errAt(q, "quantile %v is not between 0 and 1", v)
				}
				m.Quantiles = append(m.Quantiles, v)
			}
			if len(m.Quantiles) == 0 {
				return nil, p.errAt(p.peek(), "quantile_over_time needs at least one quantile, e.g. quantile_over_time(duration, .99)")
			}
		}
	}
	if _, err := p.expect(")"); err != nil {
		return nil, err
	}
	if p.peek().kind == tIdent && p.peek().text == "by" {
		if m.Fn == "compare" {
			return nil, p.errAt(p.peek(), "compare() takes no by(...): it breaks down every attribute")
		}
		p.advance()
		by, err := p.parseAttributeList()
		if err != nil {
			return nil, err
		}
		m.By = by
	}
	return m, nil
}

// parseAttribute parses an attribute or intrinsic reference (for select, by, metrics).
// parseAttributeList parses "(a, b, ...)": one attribute or more.
func (p *parser) parseAttributeList() ([]Attribute, error) {
	if _, err := p.expect("("); err != nil {
		return nil, err
	}
	var attrs []Attribute
	for {
		a, err := p.parseAttribute()
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
		if !p.isOp(",") {
			break
		}
		p.advance()
	}
	if _, err := p.expect(")"); err != nil {
		return nil, err
	}
	return attrs, nil
}

func (p *parser) parseAttribute() (Attribute, error) {
	t := p.peek()
	e, err := p.parsePrimary()
	if err != nil {
		return Attribute{}, err
	}
	a, ok := e.(*Attribute)
	if !ok {
		return Attribute{}, p.errAt(t, "expected an attribute or intrinsic, found %s", t)
	}
	return *a, nil
}

// Operator levels parsed by leftAssoc, from the operator's text to its Op.
var (
	spansetOrOps  = map[string]Op{"||": OpOr}
	spansetAndOps = map[string]Op{"&&": OpAnd}
	orOps         = map[string]Op{"||": OpOr}
	andOps        = map[string]Op{"&&": OpAnd}
	addOps        = map[string]Op{"+": OpAdd, "-": OpSub}
	mulOps        = map[string]Op{"*": OpMul, "/": OpDiv, "%": OpMod}
	scalarMulOps  = map[string]Op{"*": OpMul, "/": OpDiv}
)

// leftAssoc parses operand (op operand)* for the operators of one precedence level, joining left to right.
func leftAssoc[E any](p *parser, ops map[string]Op, operand func() (E, error), join func(op Op, l, r E) E) (E, error) {
	var zero E
	l, err := operand()
	if err != nil {
		return zero, err
	}
	for {
		t := p.peek()
		op, ok := ops[t.text]
		if t.kind != tOp || !ok {
			return l, nil
		}
		p.advance()
		r, err := operand()
		if err != nil {
			return zero, err
		}
		l = join(op, l, r)
	}
}

func joinSpanset(op Op, l, r SpansetExpr) SpansetExpr { return &SpansetOp{Op: op, L: l, R: r} }
func joinField(op Op, l, r FieldExpr) FieldExpr       { return &BinaryExpr{Op: op, L: l, R: r} }
func joinScalar(op Op, l, r ScalarExpr) ScalarExpr    { return &ScalarBinary{Op: op, L: l, R: r} }

// Spanset expressions: || lowest, then &&, then structural operators.
func (p *parser) parseSpansetExpr() (SpansetExpr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	return leftAssoc(p, spansetOrOps, p.parseSpansetAnd, joinSpanset)
}

func (p *parser) parseSpansetAnd() (SpansetExpr, error) {
	return leftAssoc(p, spansetAndOps, p.parseSpansetStructural, joinSpanset)
}

var structuralOps = map[string]Op{">": OpChild, ">>": OpDesc, "<": OpParent, "<<": OpAnc, "~": OpSibling,
	"!>": OpNChild, "!>>": OpNDesc, "!<": OpNParent, "!<<": OpNAnc, "!~": OpNSib,
	"&>": OpUChild, "&>>": OpUDesc, "&<": OpUParent, "&<<": OpUAnc, "&~": OpUSib}

func (p *parser) parseSpansetStructural() (SpansetExpr, error) {
	return leftAssoc(p, structuralOps, p.parseSpansetPrimary, joinSpanset)
}

func (p *parser) parseSpansetPrimary() (SpansetExpr, error) {
	t := p.peek()
	if t.kind == tOp && t.text == "(" {
		p.advance()
		pl, err := p.parsePipeline()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		if len(pl.Stages) == 1 {
			return pl.Stages[0].(*SpansetStage).E, nil
		}
		return pl, nil
	}
	if t.kind != tOp || t.text != "{" {
		return nil, p.errAt(t, "expected '{' to start a spanset filter, found %s", t)
	}
	p.advance()
	if p.isOp("}") {
		p.advance()
		return &SpansetFilter{}, nil
	}
	e, err := p.parseFieldExpr()
	if err != nil {
		return nil, err
	}
	if _, err := p.expect("}"); err != nil {
		return nil, err
	}
	if err := checkBoolean(e, t); err != nil {
		return nil, err
	}
	f := &SpansetFilter{Expr: e}
	p.filters = append(p.filters, f)
	return f, nil
}

// checkBoolean rejects filters that cannot be true or false, such as { 1 + 1 } or { "x" }.
func checkBoolean(e FieldExpr, at token) error {
	switch x := e.(type) {
	case *StaticExpr:
		if x.V.Type != TypeBool {
			return &ParseError{Pos: at.pos, Msg: fmt.Sprintf("a spanset filter must be a condition, %s is a %s", x.V, x.V.Type)}
		}
	case *BinaryExpr:
		switch x.Op {
		case OpAdd, OpSub, OpMul, OpDiv, OpMod, OpPow:
			return &ParseError{Pos: at.pos, Msg: "a spanset filter must be a condition, not arithmetic"}
		}
	}
	return nil
}

// Field expressions, lowest precedence first: || && comparison + - * / % ^ unary primary.
func (p *parser) parseFieldExpr() (FieldExpr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	return p.parseOr()
}

func (p *parser) parseOr() (FieldExpr, error) {
	return leftAssoc(p, orOps, p.parseAnd, joinField)
}

func (p *parser) parseAnd() (FieldExpr, error) {
	return leftAssoc(p, andOps, p.parseCmp, joinField)
}

var cmpOps = map[string]Op{"=": OpEq, "!=": OpNeq, ">": OpGt, ">=": OpGte, "<": OpLt, "<=": OpLte, "=~": OpRe, "!~": OpNre}

func (p *parser) parseCmp() (FieldExpr, error) {
	l, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	op, ok := cmpOps[t.text]
	if t.kind != tOp || !ok {
		return l, nil
	}
	p.advance()
	rt := p.peek()
	r, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	b := &BinaryExpr{Op: op, L: l, R: r}
	if op == OpRe || op == OpNre {
		s, ok := r.(*StaticExpr)
		if !ok || s.V.Type != TypeString {
			return nil, p.errAt(rt, "the right side of %s must be a string (a regular expression)", op)
		}
		re, err := regexp.Compile("^(?:" + s.V.S + ")$")
		if err != nil {
			return nil, p.errAt(rt, "invalid regular expression %q: %v", s.V.S, err)
		}
		b.re = re
	}
	if err := checkTypes(b, t); err != nil {
		return nil, err
	}
	return b, nil
}

// checkTypes rejects comparisons between literals of incompatible types and intrinsics against wrong literals,
// e.g. { status = 200 } or { duration > "x" }.
func checkTypes(b *BinaryExpr, at token) error {
	ls, lok := b.L.(*StaticExpr)
	rs, rok := b.R.(*StaticExpr)
	if lok && rok && ls.V.Type != TypeNil && rs.V.Type != TypeNil {
		if _, ok := compare(ls.V, rs.V); !ok && ls.V.Type != rs.V.Type {
			return &ParseError{Pos: at.pos, Msg: fmt.Sprintf("cannot compare %s with %s", ls.V.Type, rs.V.Type)}
		}
	}
	attr, aok := b.L.(*Attribute)
	if aok && rok && attr.Intrinsic != IntrinsicNone && rs.V.Type == TypeNil && b.Op == OpEq {
		// Tempo's validation, with its text.
		return &ParseError{Pos: at.pos, Validation: true, Msg: attr.Text + "=nil is not valid because intrinsics cannot be nil"}
	}
	if !aok || !rok || attr.Intrinsic == IntrinsicNone || rs.V.Type == TypeNil {
		return nil
	}
	want := intrinsicType(attr.Intrinsic)
	got := rs.V.Type
	if b.Op == OpRe || b.Op == OpNre {
		if want != TypeString {
			return &ParseError{Pos: at.pos, Msg: fmt.Sprintf("%s is a %s and cannot be matched with a regular expression", attr.Text, want)}
		}
		return nil
	}
	if want == got || (want == TypeDuration && got == TypeInt) {
		return nil
	}
	return &ParseError{Pos: at.pos, Msg: fmt.Sprintf("cannot compare %s (%s) with %s (%s)", attr.Text, want, rs.V, got)}
}

func intrinsicType(i Intrinsic) Type {
	switch i {
	case IntrinsicStatus:
		return TypeStatus
	case IntrinsicKind:
		return TypeKind
	case IntrinsicDuration, IntrinsicTraceDuration, IntrinsicEventTimeSinceStart:
		return TypeDuration
	case IntrinsicNestedSetLeft, IntrinsicNestedSetRight, IntrinsicNestedSetParent, IntrinsicChildCount:
		return TypeInt
	}
	return TypeString
}

func (p *parser) parseAdd() (FieldExpr, error) {
	return leftAssoc(p, addOps, p.parseMul, joinField)
}

func (p *parser) parseMul() (FieldExpr, error) {
	return leftAssoc(p, mulOps, p.parsePow, joinField)
}

func (p *parser) parsePow() (FieldExpr, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if p.isOp("^") {
		p.advance()
		r, err := p.parsePow()
		if err != nil {
			return nil, err
		}
		return &BinaryExpr{Op: OpPow, L: l, R: r}, nil
	}
	return l, nil
}

func (p *parser) parseUnary() (FieldExpr, error) {
	if p.isOp("!") || p.isOp("-") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		t := p.advance()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if t.text == "-" {
			if s, ok := e.(*StaticExpr); ok {
				switch s.V.Type {
				case TypeInt, TypeDuration:
					s.V.N = -s.V.N
					return s, nil
				case TypeFloat:
					s.V.F = -s.V.F
					return s, nil
				}
				return nil, p.errAt(t, "cannot negate a %s", s.V.Type)
			}
			return &UnaryExpr{Op: OpNeg, E: e}, nil
		}
		return &UnaryExpr{Op: OpNot, E: e}, nil
	}
	return p.parsePrimary()
}

var keywordStatics = map[string]Static{
	"true": NewBool(true), "false": NewBool(false), "nil": {},
	"ok": NewStatus(ptrace.StatusCodeOk), "error": NewStatus(ptrace.StatusCodeError), "unset": NewStatus(ptrace.StatusCodeUnset),
	"server": NewKind(ptrace.SpanKindServer), "client": NewKind(ptrace.SpanKindClient),
	"producer": NewKind(ptrace.SpanKindProducer), "consumer": NewKind(ptrace.SpanKindConsumer),
	"internal": NewKind(ptrace.SpanKindInternal), "unspecified": NewKind(ptrace.SpanKindUnspecified),
}

var scopeNames = map[string]AttrScope{"": ScopeAny, "span": ScopeSpan, "resource": ScopeResource, "event": ScopeEvent,
	"link": ScopeLink, "instrumentation": ScopeInstrumentation, "parent": ScopeParent}

// closeParen parses what follows an opening parenthesis: inner, then ")".
func closeParen[E any](p *parser, inner func() (E, error)) (E, error) {
	var zero E
	e, err := inner()
	if err != nil {
		return zero, err
	}
	if _, err := p.expect(")"); err != nil {
		return zero, err
	}
	return e, nil
}

// numberLiteral is the value of an int, float or duration token.
func numberLiteral(t token) (Static, bool) {
	switch t.kind {
	case tInt:
		return NewInt(t.i), true
	case tFloat:
		return NewFloat(t.f), true
	case tDuration:
		return Static{Type: TypeDuration, N: t.i}, true
	}
	return Static{}, false
}

func (p *parser) parsePrimary() (FieldExpr, error) {
	t := p.advance()
	if v, ok := numberLiteral(t); ok {
		return &StaticExpr{V: v}, nil
	}
	switch t.kind {
	case tString:
		return &StaticExpr{V: NewString(t.text)}, nil
	case tAttr:
		a := &Attribute{Scope: scopeNames[t.scope], Name: t.text, Text: t.String()}
		p.noteAttr(*a)
		return a, nil
	case tIntrinsic:
		in, ok := scopedIntrinsics[t.scope+":"+t.text]
		if !ok {
			return nil, p.errAt(t, "unknown intrinsic %s:%s", t.scope, t.text)
		}
		return &Attribute{Intrinsic: in, Name: t.scope + ":" + t.text, Text: t.scope + ":" + t.text}, nil
	case tIdent:
		if v, ok := keywordStatics[t.text]; ok {
			return &StaticExpr{V: v}, nil
		}
		if in, ok := intrinsicNames[t.text]; ok {
			return &Attribute{Intrinsic: in, Name: t.text, Text: t.text}, nil
		}
		return nil, p.errAt(t, "unknown identifier %q: attributes need a scope, e.g. .%s, span.%s or resource.%s", t.text, t.text, t.text, t.text)
	case tOp:
		if t.text == "(" {
			return closeParen(p, p.parseFieldExpr)
		}
	}
	return nil, p.errAt(t, "expected a value, attribute or intrinsic, found %s", t)
}

func (p *parser) noteAttr(a Attribute) {
	if !p.seen[a.Text] {
		p.seen[a.Text] = true
		p.attrs = append(p.attrs, a)
	}
}

// Scalar filters: scalar (op scalar) with arithmetic.
func (p *parser) parseScalarFilter() (Stage, error) {
	l, err := p.parseScalarAdd()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	op, ok := cmpOps[t.text]
	if t.kind != tOp || !ok || op == OpRe || op == OpNre {
		return nil, p.errAt(t, "expected a comparison after the aggregate, e.g. count() > 1, found %s", t)
	}
	p.advance()
	r, err := p.parseScalarAdd()
	if err != nil {
		return nil, err
	}
	return &ScalarFilter{Op: op, L: l, R: r}, nil
}

func (p *parser) parseScalarAdd() (ScalarExpr, error) {
	return leftAssoc(p, addOps, p.parseScalarMul, joinScalar)
}

func (p *parser) parseScalarMul() (ScalarExpr, error) {
	return leftAssoc(p, scalarMulOps, p.parseScalarPrimary, joinScalar)
}

func (p *parser) parseScalarPrimary() (ScalarExpr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	t := p.advance()
	if v, ok := numberLiteral(t); ok {
		return &ScalarStatic{V: v}, nil
	}
	switch t.kind {
	case tOp:
		if t.text == "(" {
			return closeParen(p, p.parseScalarAdd)
		}
		if t.text == "-" {
			e, err := p.parseScalarPrimary()
			if err != nil {
				return nil, err
			}
			return &ScalarBinary{Op: OpSub, L: &ScalarStatic{V: NewInt(0)}, R: e}, nil
		}
	case tIdent:
		if aggregateFns[t.text] {
			if _, err := p.expect("("); err != nil {
				return nil, err
			}
			a := &Aggregate{Fn: t.text}
			if t.text == "count" {
				if _, err := p.expect(")"); err != nil {
					return nil, err
				}
				return a, nil
			}
			if p.isOp(")") {
				return nil, p.errAt(p.peek(), "%s() needs an argument, e.g. %s(duration)", t.text, t.text)
			}
			e, err := p.parseFieldExpr()
			if err != nil {
				return nil, err
			}
			a.E = e
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return a, nil
		}
	}
	return nil, p.errAt(t, "expected an aggregate such as count() or avg(duration), or a number, found %s", t)
}

// parseCompareArgs parses compare's arguments after "(": a spanset filter, then optionally the number of values
// per attribute, then optionally the selection's start and end in Unix nanoseconds (both or neither).
func (p *parser) parseCompareArgs(m *MetricsStage) error {
	m.TopN = 10
	t := p.peek()
	if !p.isOp("{") {
		return p.errAt(t, "compare() takes a spanset filter first, e.g. compare({ status = error }), found %s", t)
	}
	e, err := p.parseSpansetPrimary()
	if err != nil {
		return err
	}
	f, ok := e.(*SpansetFilter)
	if !ok {
		return p.errAt(t, "compare() takes one spanset filter { ... }")
	}
	m.Compare = f
	var ints []int64
	for p.isOp(",") {
		p.advance()
		n := p.advance()
		if n.kind != tInt {
			return p.errAt(n, "expected an integer argument of compare(), found %s", n)
		}
		ints = append(ints, n.i)
	}
	switch len(ints) {
	case 0:
	case 1, 3:
		if ints[0] <= 0 {
			return p.errAt(t, "compare(): the number of values per attribute must be positive, got %d", ints[0])
		}
		m.TopN = int(min(ints[0], 1<<20))
		if len(ints) == 3 {
			m.CompareStart, m.CompareEnd = ints[1], ints[2]
		}
	default:
		return p.errAt(p.peek(), "compare() takes a filter, a filter and a count, or a filter, a count, a start and an end; got %d numbers", len(ints))
	}
	return nil
}

// parseSecondStages parses what may follow a metrics function: | topk(n), | bottomk(n) and comparisons with
// a literal (rate() > 5).
func (p *parser) parseSecondStages() ([]SecondStage, error) {
	var out []SecondStage
	for {
		t := p.peek()
		if t.kind == tOp && t.text == "|" {
			p.advance()
			fn := p.advance()
			if fn.kind != tIdent || (fn.text != "topk" && fn.text != "bottomk") {
				return nil, p.errAt(fn, "after a metrics function only topk(n) or bottomk(n) may follow, found %s", fn)
			}
			if _, err := p.expect("("); err != nil {
				return nil, err
			}
			n := p.advance()
			if n.kind != tInt || n.i <= 0 {
				return nil, p.errAt(n, "%s() takes a positive integer, found %s", fn.text, n)
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			out = append(out, SecondStage{Fn: fn.text, K: int(min(n.i, 1<<20))})
			continue
		}
		op, ok := cmpOps[t.text]
		if t.kind != tOp || !ok || op == OpRe || op == OpNre {
			return out, nil
		}
		p.advance()
		neg := false
		if p.isOp("-") {
			p.advance()
			neg = true
		}
		n := p.advance()
		v, ok := numberLiteral(n)
		if !ok {
			return nil, p.errAt(n, "expected a number after %s, found %s", op, n)
		}
		f := v.Float()
		if v.Type == TypeDuration {
			f /= 1e9
		}
		if neg {
			f = -f
		}
		out = append(out, SecondStage{Fn: "filter", Op: op, Value: f})
	}
}

// parseHints parses with(name = value, ...). Values are literals: numbers, durations, strings, true/false.
func (p *parser) parseHints() ([]Hint, error) {
	p.advance() // with
	if _, err := p.expect("("); err != nil {
		return nil, err
	}
	var out []Hint
	for {
		n := p.advance()
		if n.kind != tIdent {
			return nil, p.errAt(n, "expected a hint name, found %s", n)
		}
		if _, err := p.expect("="); err != nil {
			return nil, err
		}
		neg := false
		if p.isOp("-") {
			p.advance()
			neg = true
		}
		vt := p.advance()
		v, ok := numberLiteral(vt)
		switch {
		case ok:
			if neg {
				v.N, v.F = -v.N, -v.F
			}
		case vt.kind == tAttr && vt.scope == "" && isDigits(vt.text):
			// .1 lexes as an unscoped attribute; as a hint value it is the number 0.1 (with(sample=.1))
			f, _ := strconv.ParseFloat("0."+vt.text, 64)
			if neg {
				f = -f
			}
			v = NewFloat(f)
		case neg:
			return nil, p.errAt(vt, "expected a number after '-', found %s", vt)
		case vt.kind == tString:
			v = NewString(vt.text)
		case vt.kind == tIdent:
			kv, isKw := keywordStatics[vt.text]
			if !isKw {
				return nil, p.errAt(vt, "expected a literal as the value of hint %s, found %s", n.text, vt)
			}
			v = kv
		default:
			return nil, p.errAt(vt, "expected a literal as the value of hint %s, found %s", n.text, vt)
		}
		out = append(out, Hint{Name: n.text, Value: v, Pos: n.pos})
		if p.isOp(",") {
			p.advance()
			continue
		}
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		return out, nil
	}
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
