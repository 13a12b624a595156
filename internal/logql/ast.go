package logql

import (
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Expr is any parsed LogQL query.
type Expr interface{ String() string }

// SampleExpr is a LogQL expression that produces numbers (a metric query).
type SampleExpr interface {
	Expr
	sample()
}

// LogSelectorExpr is a stream selector and its pipeline: a log query.
type LogSelectorExpr struct {
	Matchers []*labels.Matcher
	Stages   []Stage
}

func (e *LogSelectorExpr) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range e.Matchers {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Name + m.Type.String() + strconv.Quote(m.Value))
	}
	b.WriteByte('}')
	for _, s := range e.Stages {
		b.WriteByte(' ')
		b.WriteString(s.String())
	}
	return b.String()
}

// Stage is one step of a log pipeline.
type Stage interface{ String() string }

// LineFilter keeps or drops lines by content. Ors are alternatives of the same operator (`|= "a" or "b"`).
type LineFilter struct {
	Op    tokKind // tPipeEq, tNeq, tPipeRe, tNre, tPipePat, tNpat
	Value string
	Ors   []string
	// IP marks the alternatives written ip("…"): IP[0] is Value's, IP[i] is Ors[i-1]'s. Nil when none is.
	IP []bool
	// alts are the alternatives evaluated (see effectiveAlts); res and pats are compiled from them.
	alts []lineAlt
	res  []*regexp.Regexp
	pats []linePattern
}

// lineAlt is one alternative of a line filter. isIP says it was written ip("…"); asIP that it is evaluated as
// an address pattern (ip), or fails the query (ipErr).
type lineAlt struct {
	text       string
	isIP, asIP bool
	ip         *ipPattern
	ipErr      error
}

func (f *LineFilter) String() string {
	s := f.op() + " " + f.quoted(0, f.Value)
	for i, o := range f.Ors {
		s += " or " + f.quoted(i+1, o)
	}
	return s
}

func (f *LineFilter) quoted(i int, v string) string {
	if i < len(f.IP) && f.IP[i] {
		return "ip(" + strconv.Quote(v) + ")"
	}
	return strconv.Quote(v)
}

func (f *LineFilter) op() string { return f.Op.String() }

// ParserStage extracts labels from the line: json, logfmt, regexp, pattern, unpack.
type ParserStage struct {
	Kind   string
	Param  string            // regexp or pattern
	Params []LabelExtraction // json/logfmt label=path list
	Strict bool
	// KeepEmpty keeps logfmt keys with an empty value (Loki drops them unless --keep-empty).
	KeepEmpty bool
	re        *regexp.Regexp
	pat       *pattern
}

// LabelExtraction is `name="path"` (or a bare name) in `| json name="path"`.
type LabelExtraction struct {
	Name string
	Path string
}

func (p *ParserStage) String() string {
	s := "| " + p.Kind
	if p.Strict {
		s += " --strict"
	}
	if p.KeepEmpty {
		s += " --keep-empty"
	}
	if p.Kind == "regexp" || p.Kind == "pattern" {
		s += " " + strconv.Quote(p.Param)
	}
	for i, e := range p.Params {
		if i > 0 {
			s += ","
		}
		s += " " + e.Name + "=" + strconv.Quote(e.Path)
	}
	return s
}

// LabelFilterStage is `| <label filter expression>`.
type LabelFilterStage struct{ Filter LabelFilter }

func (s *LabelFilterStage) String() string { return "| " + s.Filter.String() }

// LabelFilter is a boolean expression over labels.
type LabelFilter interface{ String() string }

// BinaryLabelFilter is `a and b` / `a or b`.
type BinaryLabelFilter struct {
	And         bool
	Left, Right LabelFilter
}

func (f *BinaryLabelFilter) String() string {
	op := " or "
	if f.And {
		op = " and "
	}
	return "(" + f.Left.String() + op + f.Right.String() + ")"
}

// StringLabelFilter is a label matcher: `level="error"`, `path=~"/api.*"`.
type StringLabelFilter struct{ M *labels.Matcher }

func (f *StringLabelFilter) String() string { return f.M.String() }

// Value kinds a numeric label filter compares as.
const (
	kindNumber = iota
	kindDuration
	kindBytes
)

// NumericLabelFilter compares a label as a number, a duration (seconds) or a byte size.
type NumericLabelFilter struct {
	Name  string
	Op    tokKind
	Kind  int
	Value float64
	Raw   string
}

func (f *NumericLabelFilter) String() string { return f.Name + " " + f.Op.String() + " " + f.Raw }

// LineFormatStage rewrites the line with a template.
type LineFormatStage struct {
	Src  string
	tmpl *template.Template
}

func (s *LineFormatStage) String() string { return "| line_format " + strconv.Quote(s.Src) }

// LabelFormatStage renames labels (`dst=src`) or sets them from templates (`dst="{{.src}}"`).
type LabelFormatStage struct{ Items []LabelFmt }

// LabelFmt is one assignment of label_format.
type LabelFmt struct {
	Dst, Src string
	Rename   bool
	tmpl     *template.Template
}

func (s *LabelFormatStage) String() string {
	parts := make([]string, len(s.Items))
	for i, it := range s.Items {
		if it.Rename {
			parts[i] = it.Dst + "=" + it.Src
		} else {
			parts[i] = it.Dst + "=" + strconv.Quote(it.Src)
		}
	}
	return "| label_format " + strings.Join(parts, ", ")
}

// DropKeepStage is `| drop a, b="x"` or `| keep a, b`.
type DropKeepStage struct {
	Keep  bool
	Names []string
	Ms    []*labels.Matcher
}

func (s *DropKeepStage) String() string {
	w := "drop"
	if s.Keep {
		w = "keep"
	}
	parts := append([]string{}, s.Names...)
	for _, m := range s.Ms {
		parts = append(parts, m.String())
	}
	return "| " + w + " " + strings.Join(parts, ", ")
}

// DecolorizeStage strips ANSI colour codes.
type DecolorizeStage struct{}

func (DecolorizeStage) String() string { return "| decolorize" }

// Unwrap names the label whose value a range aggregation uses as the sample.
type Unwrap struct {
	Label string
	Conv  string // "", "bytes", "duration", "duration_seconds"
}

// RangeAggregation is `count_over_time({...} [5m])` and friends.
type RangeAggregation struct {
	Op       string
	Param    float64 // quantile_over_time's φ
	Selector *LogSelectorExpr
	Range    time.Duration
	Offset   time.Duration
	Unwrap   *Unwrap
	Grouping *Grouping
}

func (*RangeAggregation) sample() {}
func (e *RangeAggregation) String() string {
	s := e.Op + "("
	if e.Op == "quantile_over_time" {
		s += strconv.FormatFloat(e.Param, 'g', -1, 64) + ","
	}
	s += e.Selector.String()
	if e.Unwrap != nil {
		s += " | unwrap "
		if e.Unwrap.Conv != "" {
			s += e.Unwrap.Conv + "(" + e.Unwrap.Label + ")"
		} else {
			s += e.Unwrap.Label
		}
	}
	s += "[" + formatDuration(e.Range) + "]"
	if e.Offset != 0 {
		s += " offset " + formatDuration(e.Offset)
	}
	s += ")"
	if e.Grouping != nil {
		s += e.Grouping.String()
	}
	return s
}

// Grouping is `by (a, b)` or `without (a)`.
type Grouping struct {
	Without bool
	Names   []string
}

func (g *Grouping) String() string {
	w := " by"
	if g.Without {
		w = " without"
	}
	return w + " (" + strings.Join(g.Names, ",") + ")"
}

// VectorAggregation is `sum by (x) (...)`, `topk(5, ...)`.
type VectorAggregation struct {
	Op       string
	Param    int
	Grouping *Grouping
	Inner    SampleExpr
}

func (*VectorAggregation) sample() {}
func (e *VectorAggregation) String() string {
	s := e.Op
	if e.Grouping != nil {
		s += e.Grouping.String()
	}
	s += "("
	if e.Op == "topk" || e.Op == "bottomk" {
		s += strconv.Itoa(e.Param) + ","
	}
	return s + e.Inner.String() + ")"
}

// LabelReplaceExpr is label_replace(inner, "dst", "replacement", "src", "regex"): where src's value matches
// the (anchored) regex, dst is set to the replacement with $1… expanded, or removed if that is empty.
type LabelReplaceExpr struct {
	Inner                        SampleExpr
	Dst, Replacement, Src, Regex string
	re                           *regexp.Regexp
}

func (*LabelReplaceExpr) sample() {}
func (e *LabelReplaceExpr) String() string {
	return "label_replace(" + e.Inner.String() + "," + strconv.Quote(e.Dst) + "," + strconv.Quote(e.Replacement) + "," +
		strconv.Quote(e.Src) + "," + strconv.Quote(e.Regex) + ")"
}

// BinaryExpr is `a op b` between sample expressions.
type BinaryExpr struct {
	Op          string
	ReturnBool  bool
	On          bool
	Ignoring    bool
	MatchLabels []string
	// GroupLeft / GroupRight make the matching many-to-one / one-to-many; Include are the labels the result
	// takes from the "one" side (group_left(a, b)).
	GroupLeft, GroupRight bool
	Include               []string
	LHS, RHS              SampleExpr
}

func (*BinaryExpr) sample() {}
func (e *BinaryExpr) String() string {
	op := e.Op
	if e.ReturnBool {
		op += " bool"
	}
	return "(" + e.LHS.String() + " " + op + " " + e.RHS.String() + ")"
}

// LiteralExpr is a number.
type LiteralExpr struct{ Val float64 }

func (*LiteralExpr) sample()          {}
func (e *LiteralExpr) String() string { return strconv.FormatFloat(e.Val, 'g', -1, 64) }

// VectorExpr is `vector(1)`: one series with no labels.
type VectorExpr struct{ Val float64 }

func (*VectorExpr) sample() {}
func (e *VectorExpr) String() string {
	return "vector(" + strconv.FormatFloat(e.Val, 'g', -1, 64) + ")"
}

func formatDuration(d time.Duration) string {
	s := d.String()
	s = strings.Replace(s, "m0s", "m", 1)
	s = strings.Replace(s, "h0m", "h", 1)
	return s
}
