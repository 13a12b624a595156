package traceql

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Op is an operator of the language.
type Op string

// Operators.
const (
	OpEq      Op = "="
	OpNeq     Op = "!="
	OpGt      Op = ">"
	OpGte     Op = ">="
	OpLt      Op = "<"
	OpLte     Op = "<="
	OpRe      Op = "=~"
	OpNre     Op = "!~"
	OpAnd     Op = "&&"
	OpOr      Op = "||"
	OpNot     Op = "!"
	OpNeg     Op = "neg"
	OpAdd     Op = "+"
	OpSub     Op = "-"
	OpMul     Op = "*"
	OpDiv     Op = "/"
	OpMod     Op = "%"
	OpPow     Op = "^"
	OpChild   Op = ">"  // spanset: right spans whose parent is on the left
	OpDesc    Op = ">>" // spanset: right spans with an ancestor on the left
	OpParent  Op = "<"  // spanset: right spans that are the parent of a left span
	OpAnc     Op = "<<" // spanset: right spans that are an ancestor of a left span
	OpSibling Op = "~"  // spanset: right spans with a sibling on the left
	OpNChild  Op = "!>" // negated structural operators
	OpNDesc   Op = "!>>"
	OpNParent Op = "!<"
	OpNAnc    Op = "!<<"
	OpNSib    Op = "!~"
	// Union structural operators: the spans of both sides that stand in the relation, e.g. {a} &>> {b} keeps
	// every a that has a b below it and every b that has an a above it.
	OpUChild  Op = "&>"
	OpUDesc   Op = "&>>"
	OpUParent Op = "&<"
	OpUAnc    Op = "&<<"
	OpUSib    Op = "&~"
)

// Intrinsic is a built-in span or trace field.
type Intrinsic uint8

// Intrinsics.
const (
	IntrinsicNone Intrinsic = iota
	IntrinsicName
	IntrinsicStatus
	IntrinsicStatusMessage
	IntrinsicKind
	IntrinsicDuration
	IntrinsicRootName
	IntrinsicRootServiceName
	IntrinsicTraceDuration
	IntrinsicSpanID
	IntrinsicTraceID
	IntrinsicParentID
	IntrinsicEventName
	IntrinsicInstrumentationName
	IntrinsicInstrumentationVersion
	IntrinsicNestedSetLeft   // the span's left bound in the trace's nested set numbering
	IntrinsicNestedSetRight  // its right bound
	IntrinsicNestedSetParent // the parent's left bound; -1 for a root span
	IntrinsicChildCount      // how many spans have this span as parent
	IntrinsicEventTimeSinceStart
	IntrinsicLinkSpanID
	IntrinsicLinkTraceID
)

var intrinsicNames = map[string]Intrinsic{
	"name": IntrinsicName, "status": IntrinsicStatus, "statusMessage": IntrinsicStatusMessage,
	"kind": IntrinsicKind, "duration": IntrinsicDuration, "rootName": IntrinsicRootName,
	"rootServiceName": IntrinsicRootServiceName, "traceDuration": IntrinsicTraceDuration,
	"nestedSetLeft": IntrinsicNestedSetLeft, "nestedSetRight": IntrinsicNestedSetRight,
	"nestedSetParent": IntrinsicNestedSetParent,
}

// scope:name forms.
var scopedIntrinsics = map[string]Intrinsic{
	"span:name": IntrinsicName, "span:status": IntrinsicStatus, "span:statusMessage": IntrinsicStatusMessage,
	"span:kind": IntrinsicKind, "span:duration": IntrinsicDuration, "span:id": IntrinsicSpanID,
	"span:parentID": IntrinsicParentID, "trace:rootName": IntrinsicRootName,
	"trace:rootService": IntrinsicRootServiceName, "trace:duration": IntrinsicTraceDuration,
	"trace:id": IntrinsicTraceID, "event:name": IntrinsicEventName,
	"instrumentation:name": IntrinsicInstrumentationName, "instrumentation:version": IntrinsicInstrumentationVersion,
	"span:childCount": IntrinsicChildCount, "event:timeSinceStart": IntrinsicEventTimeSinceStart,
	"link:spanID": IntrinsicLinkSpanID, "link:traceID": IntrinsicLinkTraceID,
}

// IntrinsicTags are the intrinsic names offered by the tags API: Tempo 3's list.
var IntrinsicTags = []string{"duration", "event:name", "event:timeSinceStart", "instrumentation:name",
	"instrumentation:version", "kind", "link:spanID", "link:traceID", "name", "rootName", "rootServiceName",
	"span:duration", "span:id", "span:kind", "span:name", "span:parentID", "span:status", "span:statusMessage",
	"status", "statusMessage", "trace:duration", "trace:id", "trace:rootName", "trace:rootService", "traceDuration"}

// LookupIntrinsic resolves an intrinsic written bare ("name") or scoped ("span:name").
func LookupIntrinsic(s string) (Intrinsic, bool) {
	if i, ok := intrinsicNames[s]; ok {
		return i, true
	}
	i, ok := scopedIntrinsics[s]
	return i, ok
}

// AttrScope is where an attribute is looked up.
type AttrScope uint8

// Attribute scopes.
const (
	ScopeAny AttrScope = iota // .foo: span first, then resource
	ScopeSpan
	ScopeResource
	ScopeEvent
	ScopeLink
	ScopeInstrumentation
	ScopeParent // parent.foo is parsed; it is not supported by the evaluator and never matches
)

// Attribute is an attribute reference or an intrinsic.
type Attribute struct {
	Scope     AttrScope
	Name      string
	Intrinsic Intrinsic
	Text      string // as written in the query
}

// FieldExpr is an expression evaluated against one span.
type FieldExpr interface{ fieldExpr() }

// BinaryExpr is a binary operation on span fields.
type BinaryExpr struct {
	Op   Op
	L, R FieldExpr
	re   *regexp.Regexp // compiled when R is a static string and Op is =~ or !~
}

// UnaryExpr is ! or unary minus.
type UnaryExpr struct {
	Op Op
	E  FieldExpr
}

// StaticExpr is a literal.
type StaticExpr struct{ V Static }

func (*BinaryExpr) fieldExpr() {}
func (*UnaryExpr) fieldExpr()  {}
func (*StaticExpr) fieldExpr() {}
func (*Attribute) fieldExpr()  {}

// SpansetExpr produces spansets from input spansets.
type SpansetExpr interface{ spansetExpr() }

// SpansetFilter is { expr }.
type SpansetFilter struct{ Expr FieldExpr }

// SpansetOp combines two spanset expressions with a logical or structural operator.
type SpansetOp struct {
	Op   Op
	L, R SpansetExpr
}

// Pipeline is a sequence of stages separated by |.
type Pipeline struct{ Stages []Stage }

func (*SpansetFilter) spansetExpr() {}
func (*SpansetOp) spansetExpr()     {}
func (*Pipeline) spansetExpr()      {}

// Stage is one element of a pipeline.
type Stage interface{ stage() }

// SpansetStage is a spanset expression used as a pipeline stage.
type SpansetStage struct{ E SpansetExpr }

// ScalarFilter keeps the spansets for which L op R holds, e.g. count() > 2.
type ScalarFilter struct {
	Op   Op
	L, R ScalarExpr
}

// SelectStage is select(a, b, ...).
type SelectStage struct{ Attrs []Attribute }

// ByStage is by(expr): it splits each spanset by the value of expr.
type ByStage struct {
	E    FieldExpr
	Text string
}

// CoalesceStage is coalesce(): it merges all spansets of a trace into one.
type CoalesceStage struct{}

// MetricsStage is a TraceQL metrics function, only valid as the last stage.
type MetricsStage struct {
	Fn        string // rate, count_over_time, quantile_over_time, histogram_over_time, min/max/avg/sum_over_time, compare
	Attr      *Attribute
	Quantiles []float64
	By        []Attribute
	// Compare is compare()'s selection: spans that match it (and start within (CompareStart, CompareEnd] when
	// both are set, in Unix nanoseconds) are the selection, the rest the baseline. TopN caps the values shown
	// per attribute (10 by default, as Tempo).
	Compare                  *SpansetFilter
	TopN                     int
	CompareStart, CompareEnd int64
}

// SecondStage is a function over a metrics query's series: topk(n) or bottomk(n) keep the n series with the
// largest or smallest values at each step; a filter (rate() > 5) keeps the samples for which it holds.
type SecondStage struct {
	Fn    string // topk, bottomk or filter
	K     int
	Op    Op      // filter: the comparison
	Value float64 // filter: the literal (durations in seconds)
}

// Hint is one name=value of a with(...) clause.
type Hint struct {
	Name  string
	Value Static
	Pos   Pos
}

func (*SpansetStage) stage()  {}
func (*ScalarFilter) stage()  {}
func (*SelectStage) stage()   {}
func (*ByStage) stage()       {}
func (*CoalesceStage) stage() {}
func (*MetricsStage) stage()  {}

// ScalarExpr is an expression over a spanset: an aggregate, a literal or arithmetic on them.
type ScalarExpr interface{ scalarExpr() }

// Aggregate is count(), avg(x), min(x), max(x), sum(x).
type Aggregate struct {
	Fn string
	E  FieldExpr
}

// ScalarStatic is a literal in a scalar expression.
type ScalarStatic struct{ V Static }

// ScalarBinary is arithmetic between scalar expressions.
type ScalarBinary struct {
	Op   Op
	L, R ScalarExpr
}

func (*Aggregate) scalarExpr()    {}
func (*ScalarStatic) scalarExpr() {}
func (*ScalarBinary) scalarExpr() {}

// Query is a parsed TraceQL query.
type Query struct {
	Text    string
	Root    *Pipeline
	Metrics *MetricsStage // non-nil for a metrics query
	Second  []SecondStage // topk/bottomk/filters after the metrics function, in order
	Hints   []Hint        // with(...) after the query, in order
	attrs   []Attribute
	filters []*SpansetFilter
}

// Hint returns the last value given for a with(...) hint.
func (q *Query) Hint(name string) (Static, bool) {
	for i := len(q.Hints) - 1; i >= 0; i-- {
		if q.Hints[i].Name == name {
			return q.Hints[i].Value, true
		}
	}
	return Static{}, false
}

// HintBool is a boolean hint; absent or of another type gives false.
func (q *Query) HintBool(name string) bool {
	v, ok := q.Hint(name)
	return ok && v.Type == TypeBool && v.B
}

// HintInt is an integer hint.
func (q *Query) HintInt(name string) (int64, bool) {
	v, ok := q.Hint(name)
	if !ok || v.Type != TypeInt {
		return 0, false
	}
	return v.N, true
}

// Attributes returns the non-intrinsic attributes the query's conditions refer to, in the order written; the
// search API returns them with each matched span, as Tempo does.
func (q *Query) Attributes() []Attribute { return q.attrs }

// intrinsicLabels are the names Tempo gives an intrinsic wherever it names one in an answer (a metrics series'
// by() label): the scoped forms span:name, trace:rootName, ... are written as the bare name where one exists.
var intrinsicLabels = map[Intrinsic]string{
	IntrinsicName: "name", IntrinsicStatus: "status", IntrinsicStatusMessage: "statusMessage", IntrinsicKind: "kind",
	IntrinsicDuration: "duration", IntrinsicRootName: "rootName", IntrinsicRootServiceName: "rootServiceName",
	IntrinsicTraceDuration: "traceDuration", IntrinsicSpanID: "span:id", IntrinsicTraceID: "trace:id",
	IntrinsicParentID: "span:parentID", IntrinsicEventName: "event:name",
	IntrinsicInstrumentationName: "instrumentation:name", IntrinsicInstrumentationVersion: "instrumentation:version",
	IntrinsicNestedSetLeft: "nestedSetLeft", IntrinsicNestedSetRight: "nestedSetRight",
	IntrinsicNestedSetParent: "nestedSetParent", IntrinsicChildCount: "span:childCount",
	IntrinsicEventTimeSinceStart: "event:timeSinceStart", IntrinsicLinkSpanID: "link:spanID",
	IntrinsicLinkTraceID: "link:traceID",
}

// LabelName is the name of the attribute in an answer: an intrinsic by its canonical name (by(span:name) makes
// series labelled name, as Tempo's do), an attribute as written, its name in quotes when it holds a character
// that cannot stand in a bare attribute name (span."a b").
func (a *Attribute) LabelName() string {
	if n, ok := intrinsicLabels[a.Intrinsic]; ok && a.Intrinsic != IntrinsicNone {
		return n
	}
	if !needsQuotes(a.Name) {
		return a.Text
	}
	return strings.TrimSuffix(strings.TrimSuffix(a.Text, `"`+a.Name+`"`), a.Name) + strconv.Quote(a.Name)
}

// needsQuotes says whether an attribute name holds a character that cannot stand in a bare name, so that
// answers write it quoted (span."a b"), as Tempo does.
func needsQuotes(name string) bool {
	return strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune("{}()=~!<>&|^,", r) })
}
