package logql

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// MaxQueryLength bounds the input the parser accepts.
const MaxQueryLength = 128 << 10

type parser struct {
	toks []token
	pos  int
}

// ParseExpr parses a LogQL query: a log query (*LogSelectorExpr) or a metric query (SampleExpr).
func ParseExpr(input string) (Expr, error) {
	if len(input) > MaxQueryLength {
		return nil, &ParseError{Msg: fmt.Sprintf("query is %d bytes long, the limit is %d", len(input), MaxQueryLength)}
	}
	toks, err := lex(input)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	e, err := p.parseExpr(0)
	if err != nil {
		return nil, nameUnsupported(toks, err)
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, nameUnsupported(toks, p.unexpected(t, ""))
	}
	if err := checkStages(e); err != nil {
		return nil, err
	}
	return e, nil
}

// ParseSampleExpr parses a metric query.
func ParseSampleExpr(input string) (SampleExpr, error) {
	e, err := ParseExpr(input)
	if err != nil {
		return nil, err
	}
	s, ok := e.(SampleExpr)
	if !ok {
		return nil, &ParseError{Msg: "a metric query is required, got a log query"}
	}
	return s, nil
}

// ParseLogSelector parses a log query.
func ParseLogSelector(input string) (*LogSelectorExpr, error) {
	e, err := ParseExpr(input)
	if err != nil {
		return nil, err
	}
	s, ok := e.(*LogSelectorExpr)
	if !ok {
		return nil, &ParseError{Msg: "a log query is required, got a metric query"}
	}
	return s, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) unexpected(t token, expecting string) error {
	msg := "syntax error: unexpected " + t.describe()
	if expecting != "" {
		msg += ", expecting " + expecting
	}
	return &ParseError{Msg: msg, Line: t.line, Col: t.col}
}

func (p *parser) errAt(t token, format string, args ...any) error {
	return &ParseError{Msg: fmt.Sprintf(format, args...), Line: t.line, Col: t.col}
}

func (p *parser) expect(k tokKind) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, p.unexpected(t, k.String())
	}
	return t, nil
}

func (p *parser) isIdent(s string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == s
}

// Binary operator precedence, lowest first.
func binPrec(t token) (string, int) {
	switch t.kind {
	case tIdent:
		switch t.text {
		case "or":
			return "or", 1
		case "and", "unless":
			return t.text, 2
		}
	case tEqEq:
		return "==", 3
	case tNeq:
		return "!=", 3
	case tGt:
		return ">", 3
	case tGte:
		return ">=", 3
	case tLt:
		return "<", 3
	case tLte:
		return "<=", 3
	case tAdd:
		return "+", 4
	case tSub:
		return "-", 4
	case tMul:
		return "*", 5
	case tDiv:
		return "/", 5
	case tMod:
		return "%", 5
	case tPow:
		return "^", 6
	}
	return "", 0
}

func (p *parser) parseExpr(minPrec int) (Expr, error) {
	lhs, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		opTok := p.peek()
		op, prec := binPrec(opTok)
		if prec == 0 || prec <= minPrec {
			return lhs, nil
		}
		p.next()
		be := &BinaryExpr{Op: op}
		if p.isIdent("bool") {
			p.next()
			be.ReturnBool = true
		}
		if p.isIdent("on") || p.isIdent("ignoring") {
			be.On = p.next().text == "on"
			be.Ignoring = !be.On
			names, err := p.parseLabelList()
			if err != nil {
				return nil, err
			}
			be.MatchLabels = names
			if p.isIdent("group_left") || p.isIdent("group_right") {
				g := p.next()
				be.GroupLeft, be.GroupRight = g.text == "group_left", g.text == "group_right"
				if p.peek().kind == tLParen {
					if be.Include, err = p.parseLabelList(); err != nil {
						return nil, err
					}
				}
				if op == "and" || op == "or" || op == "unless" {
					return nil, p.errAt(g, "no grouping allowed for %q operation", op)
				}
				if be.On {
					for _, l := range be.MatchLabels {
						if slices.Contains(be.Include, l) {
							return nil, p.errAt(g, "label %q must not occur in ON and GROUP clause at once", l)
						}
					}
				}
			}
		}
		nextMin := prec
		if op == "^" { // right associative
			nextMin = prec - 1
		}
		rhs, err := p.parseExpr(nextMin)
		if err != nil {
			return nil, err
		}
		l, ok1 := lhs.(SampleExpr)
		r, ok2 := rhs.(SampleExpr)
		if !ok1 || !ok2 {
			return nil, p.errAt(opTok, "unexpected log query in binary operation %q: both sides must be metric queries or numbers", op)
		}
		if be.ReturnBool && prec != 3 {
			return nil, p.errAt(opTok, "bool modifier can only be used on comparison operators")
		}
		be.LHS, be.RHS = l, r
		lhs = foldLiteral(be)
	}
}

func foldLiteral(be *BinaryExpr) Expr {
	l, ok1 := be.LHS.(*LiteralExpr)
	r, ok2 := be.RHS.(*LiteralExpr)
	if !ok1 || !ok2 {
		return be
	}
	if v, keep := scalarOp(be.Op, l.Val, r.Val, true); keep {
		return &LiteralExpr{Val: v}
	}
	return be
}

func (p *parser) parseUnary() (Expr, error) {
	t := p.peek()
	if t.kind == tSub || t.kind == tAdd {
		p.next()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		se, ok := e.(SampleExpr)
		if !ok {
			return nil, p.errAt(t, "unary %s needs a metric query or a number", t.text)
		}
		if t.kind == tAdd {
			return se, nil
		}
		if l, ok := se.(*LiteralExpr); ok {
			return &LiteralExpr{Val: -l.Val}, nil
		}
		return &BinaryExpr{Op: "*", LHS: &LiteralExpr{Val: -1}, RHS: se}, nil
	}
	return p.parsePrimary()
}

var rangeOps = map[string]bool{
	"count_over_time": true, "rate": true, "bytes_over_time": true, "bytes_rate": true, "avg_over_time": true,
	"sum_over_time": true, "min_over_time": true, "max_over_time": true, "stddev_over_time": true,
	"stdvar_over_time": true, "quantile_over_time": true, "first_over_time": true, "last_over_time": true,
	"absent_over_time": true, "rate_counter": true,
}

var vectorOps = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "sort": true, "sort_desc": true,
}

func (p *parser) parsePrimary() (Expr, error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, p.errAt(t, "syntax error: invalid number %q", t.text)
		}
		return &LiteralExpr{Val: v}, nil
	case tLParen:
		p.next()
		e, err := p.parseExpr(0)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		return e, nil
	case tLBrace:
		return p.parseLogSelector()
	case tIdent:
		switch {
		case t.text == "vector":
			p.next()
			if _, err := p.expect(tLParen); err != nil {
				return nil, err
			}
			nt := p.next()
			neg := false
			if nt.kind == tSub {
				neg = true
				nt = p.next()
			}
			if nt.kind != tNumber {
				return nil, p.unexpected(nt, "NUMBER")
			}
			v, _ := strconv.ParseFloat(nt.text, 64)
			if neg {
				v = -v
			}
			if _, err := p.expect(tRParen); err != nil {
				return nil, err
			}
			return &VectorExpr{Val: v}, nil
		case t.text == "label_replace":
			return p.parseLabelReplace()
		case rangeOps[t.text]:
			return p.parseRangeAgg()
		case vectorOps[t.text]:
			return p.parseVectorAgg()
		}
	}
	return nil, p.unexpected(t, "")
}

func (p *parser) parseLabelList() ([]string, error) {
	if _, err := p.expect(tLParen); err != nil {
		return nil, err
	}
	var names []string
	for p.peek().kind != tRParen {
		t := p.next()
		if t.kind != tIdent {
			return nil, p.unexpected(t, "IDENTIFIER")
		}
		names = append(names, t.text)
		if p.peek().kind == tComma {
			p.next()
			continue
		}
		if p.peek().kind != tRParen {
			return nil, p.unexpected(p.peek(), ", or )")
		}
	}
	p.next()
	return names, nil
}

func (p *parser) parseGrouping() (*Grouping, error) {
	if !p.isIdent("by") && !p.isIdent("without") {
		return nil, nil
	}
	g := &Grouping{Without: p.next().text == "without"}
	names, err := p.parseLabelList()
	if err != nil {
		return nil, err
	}
	g.Names = names
	return g, nil
}

func (p *parser) parseVectorAgg() (Expr, error) {
	opTok := p.next()
	va := &VectorAggregation{Op: opTok.text}
	g, err := p.parseGrouping()
	if err != nil {
		return nil, err
	}
	va.Grouping = g
	if _, err := p.expect(tLParen); err != nil {
		return nil, err
	}
	if va.Op == "topk" || va.Op == "bottomk" {
		nt := p.next()
		if nt.kind != tNumber {
			return nil, p.unexpected(nt, "NUMBER")
		}
		k, err := strconv.Atoi(nt.text)
		if err != nil || k <= 0 {
			return nil, p.errAt(nt, "invalid parameter %s(%s,...): must be a positive integer", va.Op, nt.text)
		}
		va.Param = k
		if _, err := p.expect(tComma); err != nil {
			return nil, err
		}
	}
	inner, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	se, ok := inner.(SampleExpr)
	if !ok {
		return nil, p.errAt(opTok, "%s needs a metric query, got a log query: wrap it in a range aggregation such as count_over_time(%s [5m])", va.Op, inner.String())
	}
	va.Inner = se
	if _, err := p.expect(tRParen); err != nil {
		return nil, err
	}
	if va.Grouping == nil {
		g, err := p.parseGrouping()
		if err != nil {
			return nil, err
		}
		va.Grouping = g
	}
	return va, nil
}

func (p *parser) parseRangeAgg() (Expr, error) {
	opTok := p.next()
	ra := &RangeAggregation{Op: opTok.text}
	if _, err := p.expect(tLParen); err != nil {
		return nil, err
	}
	if ra.Op == "quantile_over_time" {
		nt := p.next()
		if nt.kind != tNumber {
			return nil, p.unexpected(nt, "NUMBER")
		}
		ra.Param, _ = strconv.ParseFloat(nt.text, 64)
		if _, err := p.expect(tComma); err != nil {
			return nil, err
		}
	}
	// The selector may be wrapped in parentheses, and the range may come before or after the pipeline.
	paren := false
	if p.peek().kind == tLParen {
		p.next()
		paren = true
	}
	if p.peek().kind != tLBrace {
		return nil, p.unexpected(p.peek(), "{")
	}
	sel, err := p.parseLogSelector()
	if err != nil {
		return nil, err
	}
	if paren {
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
	}
	if p.peek().kind == tLBrack {
		if err := p.parseRange(ra); err != nil {
			return nil, err
		}
		if err := p.parsePipeline(sel); err != nil {
			return nil, err
		}
	} else if p.peek().kind != tLBrack {
		return nil, p.unexpected(p.peek(), "[")
	}
	ra.Selector = sel
	// Take an unwrap stage out of the pipeline: it must be the last stage (label filters after it are kept).
	for i, st := range sel.Stages {
		if u, ok := st.(*unwrapStage); ok {
			ra.Unwrap = &u.Unwrap
			post := sel.Stages[i+1:]
			sel.Stages = append(sel.Stages[:i:i], post...)
			break
		}
	}
	if p.isIdent("offset") {
		p.next()
		dt := p.next()
		if dt.kind != tDuration {
			return nil, p.unexpected(dt, "DURATION")
		}
		d, _ := parseDuration(dt.text)
		ra.Offset = d
	}
	if _, err := p.expect(tRParen); err != nil {
		return nil, err
	}
	g, err := p.parseGrouping()
	if err != nil {
		return nil, err
	}
	ra.Grouping = g
	needsUnwrap := map[string]bool{"avg_over_time": true, "sum_over_time": true, "min_over_time": true,
		"max_over_time": true, "stddev_over_time": true, "stdvar_over_time": true, "quantile_over_time": true,
		"first_over_time": true, "last_over_time": true, "rate_counter": true}
	switch {
	case needsUnwrap[ra.Op] && ra.Unwrap == nil:
		return nil, p.errAt(opTok, "invalid aggregation %s without unwrap", ra.Op)
	case !needsUnwrap[ra.Op] && ra.Op != "rate" && ra.Unwrap != nil:
		return nil, p.errAt(opTok, "invalid aggregation %s with unwrap", ra.Op)
	case g != nil && (!needsUnwrap[ra.Op] || ra.Op == "sum_over_time" || ra.Op == "rate_counter"):
		// Loki groups only the aggregations whose result is one of the window's values or a statistic of
		// them; a grouped sum is written sum by (...) (sum_over_time(...)).
		return nil, p.errAt(opTok, "grouping not allowed for %s aggregation", ra.Op)
	}
	return ra, nil
}

func (p *parser) parseRange(ra *RangeAggregation) error {
	p.next() // [
	dt := p.next()
	if dt.kind != tDuration {
		return p.unexpected(dt, "DURATION")
	}
	d, _ := parseDuration(dt.text)
	if d <= 0 {
		return p.errAt(dt, "range must be positive, got %s", dt.text)
	}
	ra.Range = d
	_, err := p.expect(tRBrack)
	return err
}

func (p *parser) parseLogSelector() (*LogSelectorExpr, error) {
	open, _ := p.expect(tLBrace)
	sel := &LogSelectorExpr{}
	for p.peek().kind != tRBrace {
		m, err := p.parseMatcher()
		if err != nil {
			return nil, err
		}
		sel.Matchers = append(sel.Matchers, m)
		if p.peek().kind == tComma {
			p.next()
			continue
		}
		if p.peek().kind != tRBrace {
			return nil, p.unexpected(p.peek(), ", or }")
		}
	}
	p.next()
	if len(sel.Matchers) == 0 {
		return nil, p.errAt(open, "syntax error: unexpected }, expecting IDENTIFIER")
	}
	nonEmpty := false
	for _, m := range sel.Matchers {
		if !m.Matches("") {
			nonEmpty = true
		}
	}
	if !nonEmpty {
		return nil, p.errAt(open, "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will")
	}
	if err := p.parsePipeline(sel); err != nil {
		return nil, err
	}
	return sel, nil
}

func (p *parser) parseMatcher() (*labels.Matcher, error) {
	nt := p.next()
	if nt.kind != tIdent {
		return nil, p.unexpected(nt, "IDENTIFIER")
	}
	opt := p.next()
	var mt labels.MatchType
	switch opt.kind {
	case tEq:
		mt = labels.MatchEqual
	case tNeq:
		mt = labels.MatchNotEqual
	case tRe:
		mt = labels.MatchRegexp
	case tNre:
		mt = labels.MatchNotRegexp
	default:
		return nil, p.unexpected(opt, "=, !=, =~ or !~")
	}
	vt := p.next()
	if vt.kind != tString {
		return nil, p.unexpected(vt, "STRING")
	}
	m, err := labels.NewMatcher(mt, nt.text, vt.text)
	if err != nil {
		return nil, p.errAt(vt, "invalid regexp %q: %v", vt.text, err)
	}
	return m, nil
}

// unwrapStage is a parse-time placeholder taken out of the pipeline by parseRangeAgg.
type unwrapStage struct{ Unwrap Unwrap }

func (u *unwrapStage) String() string { return "| unwrap " + u.Unwrap.Label }

func (p *parser) parsePipeline(sel *LogSelectorExpr) error {
	for {
		t := p.peek()
		switch t.kind {
		case tPipeEq, tNeq, tPipeRe, tNre, tPipePat, tNpat:
			p.next()
			f, err := p.parseLineFilterArgs(t)
			if err != nil {
				return err
			}
			sel.Stages = append(sel.Stages, f)
		case tPipe:
			p.next()
			st, err := p.parseStage()
			if err != nil {
				return err
			}
			sel.Stages = append(sel.Stages, st)
		default:
			return nil
		}
	}
}

// isIPCall reports whether the parser is at `ip(` (any case, as Loki's lexer reads function names).
func (p *parser) isIPCall(at int) bool {
	t := p.toks[at]
	return t.kind == tIdent && strings.EqualFold(t.text, "ip") && p.toks[at+1].kind == tLParen
}

// parseLineFilterValue reads a line filter's STRING or ip(STRING).
func (p *parser) parseLineFilterValue() (token, bool, error) {
	if p.isIPCall(p.pos) {
		p.next()
		p.next()
		vt := p.next()
		if vt.kind != tString {
			return vt, false, p.unexpected(vt, "STRING")
		}
		if _, err := p.expect(tRParen); err != nil {
			return vt, false, err
		}
		return vt, true, nil
	}
	vt := p.next()
	if vt.kind != tString {
		return vt, false, p.unexpected(vt, "STRING")
	}
	return vt, false, nil
}

func (p *parser) parseLineFilterArgs(op token) (*LineFilter, error) {
	vt, isIP, err := p.parseLineFilterValue()
	if err != nil {
		return nil, err
	}
	f := &LineFilter{Op: op.kind, Value: vt.text}
	ips := []bool{isIP}
	for p.isIdent("or") && (p.toks[p.pos+1].kind == tString || p.isIPCall(p.pos+1)) {
		p.next()
		ot, oip, err := p.parseLineFilterValue()
		if err != nil {
			return nil, err
		}
		f.Ors = append(f.Ors, ot.text)
		ips = append(ips, oip)
	}
	if slices.Contains(ips, true) {
		f.IP = ips
	}
	f.alts = f.effectiveAlts()
	if op.kind == tPipePat || op.kind == tNpat {
		for _, a := range f.alts {
			if a.asIP {
				continue // an error of the stage (checkIPStages)
			}
			m, err := parseLinePattern(a.text)
			if err != nil {
				return nil, p.errAt(vt, "invalid pattern %q in line filter: %v", a.text, err)
			}
			f.pats = append(f.pats, m)
		}
	}
	if op.kind == tPipeRe || op.kind == tNre {
		for _, a := range f.alts {
			if a.asIP {
				continue
			}
			re, err := regexp.Compile(a.text)
			if err != nil {
				return nil, p.errAt(vt, "invalid regexp %q in line filter: %v", a.text, err)
			}
			f.res = append(f.res, re)
		}
	}
	return f, nil
}

func (p *parser) parseStage() (Stage, error) {
	t := p.peek()
	if t.kind != tIdent && t.kind != tLParen {
		return nil, p.unexpected(t, "IDENTIFIER")
	}
	if t.kind == tIdent {
		nk := p.toks[p.pos+1].kind
		isFilterOp := nk == tEq || nk == tNeq || nk == tRe || nk == tNre || nk == tEqEq || nk == tGt || nk == tGte || nk == tLt || nk == tLte
		if !isFilterOp {
			switch t.text {
			case "json", "logfmt", "unpack":
				p.next()
				ps := &ParserStage{Kind: t.text}
				for p.peek().kind == tFlagArg {
					ft := p.next()
					if ft.text != "--strict" && ft.text != "--keep-empty" {
						return nil, p.errAt(ft, "unknown flag %s", ft.text)
					}
					ps.Strict = ps.Strict || ft.text == "--strict"
					ps.KeepEmpty = ps.KeepEmpty || ft.text == "--keep-empty"
				}
				for p.peek().kind == tIdent && !isKeyword(p.peek().text) {
					nt := p.next()
					ex := LabelExtraction{Name: nt.text, Path: nt.text}
					if p.peek().kind == tEq {
						p.next()
						vt := p.next()
						if vt.kind != tString {
							return nil, p.unexpected(vt, "STRING")
						}
						ex.Path = vt.text
					}
					ps.Params = append(ps.Params, ex)
					if p.peek().kind != tComma {
						break
					}
					p.next()
				}
				return ps, nil
			case "regexp", "pattern":
				p.next()
				vt := p.next()
				if vt.kind != tString {
					return nil, p.unexpected(vt, "STRING")
				}
				ps := &ParserStage{Kind: t.text, Param: vt.text}
				if t.text == "regexp" {
					re, err := regexp.Compile(vt.text)
					if err != nil {
						return nil, p.errAt(vt, "invalid regexp %q: %v", vt.text, err)
					}
					if len(re.SubexpNames()) <= 1 {
						return nil, p.errAt(vt, "at least one named capture must be supported in regexp %q", vt.text)
					}
					ps.re = re
				} else {
					pat, err := compilePattern(vt.text)
					if err != nil {
						return nil, p.errAt(vt, "invalid pattern %q: %v", vt.text, err)
					}
					ps.pat = pat
				}
				return ps, nil
			case "line_format":
				p.next()
				vt := p.next()
				if vt.kind != tString {
					return nil, p.unexpected(vt, "STRING")
				}
				tmpl, err := compileTemplate(vt.text)
				if err != nil {
					return nil, p.errAt(vt, "invalid line_format template: %v", err)
				}
				return &LineFormatStage{Src: vt.text, tmpl: tmpl}, nil
			case "label_format":
				p.next()
				st := &LabelFormatStage{}
				for {
					dt := p.next()
					if dt.kind != tIdent {
						return nil, p.unexpected(dt, "IDENTIFIER")
					}
					if _, err := p.expect(tEq); err != nil {
						return nil, err
					}
					vt := p.next()
					switch vt.kind {
					case tIdent:
						st.Items = append(st.Items, LabelFmt{Dst: dt.text, Src: vt.text, Rename: true})
					case tString:
						tmpl, err := compileTemplate(vt.text)
						if err != nil {
							return nil, p.errAt(vt, "invalid label_format template: %v", err)
						}
						st.Items = append(st.Items, LabelFmt{Dst: dt.text, Src: vt.text, tmpl: tmpl})
					default:
						return nil, p.unexpected(vt, "IDENTIFIER or STRING")
					}
					if p.peek().kind != tComma {
						return st, nil
					}
					p.next()
				}
			case "drop", "keep":
				p.next()
				st := &DropKeepStage{Keep: t.text == "keep"}
				for {
					nt := p.next()
					if nt.kind != tIdent {
						return nil, p.unexpected(nt, "IDENTIFIER")
					}
					if k := p.peek().kind; k == tEq || k == tNeq || k == tRe || k == tNre {
						p.pos--
						m, err := p.parseMatcher()
						if err != nil {
							return nil, err
						}
						st.Ms = append(st.Ms, m)
					} else {
						st.Names = append(st.Names, nt.text)
					}
					if p.peek().kind != tComma {
						return st, nil
					}
					p.next()
				}
			case "decolorize":
				p.next()
				return DecolorizeStage{}, nil
			case "unwrap":
				p.next()
				nt := p.next()
				if nt.kind != tIdent {
					return nil, p.unexpected(nt, "IDENTIFIER")
				}
				u := Unwrap{Label: nt.text}
				if p.peek().kind == tLParen {
					switch nt.text {
					case "bytes", "duration", "duration_seconds":
					default:
						return nil, p.errAt(nt, "unknown unwrap conversion %q (want bytes, duration or duration_seconds)", nt.text)
					}
					p.next()
					lt := p.next()
					if lt.kind != tIdent {
						return nil, p.unexpected(lt, "IDENTIFIER")
					}
					if _, err := p.expect(tRParen); err != nil {
						return nil, err
					}
					u = Unwrap{Label: lt.text, Conv: nt.text}
				}
				return &unwrapStage{Unwrap: u}, nil
			}
			return nil, p.unexpected(p.toks[p.pos+1], "a label filter operator")
		}
	}
	f, err := p.parseLabelFilterOr()
	if err != nil {
		return nil, err
	}
	return &LabelFilterStage{Filter: f}, nil
}

func (p *parser) parseLabelFilterOr() (LabelFilter, error) {
	l, err := p.parseLabelFilterAnd()
	if err != nil {
		return nil, err
	}
	for p.isIdent("or") {
		p.next()
		r, err := p.parseLabelFilterAnd()
		if err != nil {
			return nil, err
		}
		l = &BinaryLabelFilter{Left: l, Right: r}
	}
	return l, nil
}

func (p *parser) parseLabelFilterAnd() (LabelFilter, error) {
	l, err := p.parseLabelFilterPrimary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isIdent("and") || p.peek().kind == tComma:
			p.next()
		case p.peek().kind == tIdent && !isKeyword(p.peek().text) && isFilterOpKind(p.toks[p.pos+1].kind):
		default:
			return l, nil
		}
		r, err := p.parseLabelFilterPrimary()
		if err != nil {
			return nil, err
		}
		l = &BinaryLabelFilter{And: true, Left: l, Right: r}
	}
}

func isFilterOpKind(k tokKind) bool {
	switch k {
	case tEq, tNeq, tRe, tNre, tEqEq, tGt, tGte, tLt, tLte:
		return true
	}
	return false
}

func (p *parser) parseLabelFilterPrimary() (LabelFilter, error) {
	if p.peek().kind == tLParen {
		p.next()
		f, err := p.parseLabelFilterOr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		return f, nil
	}
	nt := p.next()
	if nt.kind != tIdent {
		return nil, p.unexpected(nt, "IDENTIFIER")
	}
	opt := p.next()
	if (opt.kind == tEq || opt.kind == tNeq) && p.isIPCall(p.pos) {
		p.next()
		p.next()
		vt := p.next()
		if vt.kind != tString {
			return nil, p.unexpected(vt, "STRING")
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		return newIPLabelFilter(nt.text, vt.text, opt.kind == tNeq), nil
	}
	vt := p.next()
	switch opt.kind {
	case tEq, tNeq, tRe, tNre:
		if vt.kind == tString {
			mt := map[tokKind]labels.MatchType{tEq: labels.MatchEqual, tNeq: labels.MatchNotEqual, tRe: labels.MatchRegexp, tNre: labels.MatchNotRegexp}[opt.kind]
			m, err := labels.NewMatcher(mt, nt.text, vt.text)
			if err != nil {
				return nil, p.errAt(vt, "invalid regexp %q: %v", vt.text, err)
			}
			return &StringLabelFilter{M: m}, nil
		}
		if opt.kind == tRe || opt.kind == tNre {
			return nil, p.unexpected(vt, "STRING")
		}
	case tEqEq, tGt, tGte, tLt, tLte:
	default:
		return nil, p.unexpected(opt, "a label filter operator")
	}
	nf := &NumericLabelFilter{Name: nt.text, Op: opt.kind, Raw: vt.text}
	if nf.Op == tEq {
		nf.Op = tEqEq
	}
	switch vt.kind {
	case tNumber:
		nf.Value, _ = strconv.ParseFloat(vt.text, 64)
	case tDuration:
		d, _ := parseDuration(vt.text)
		nf.Kind, nf.Value = kindDuration, d.Seconds()
	case tBytes:
		b, _ := parseBytes(vt.text)
		nf.Kind, nf.Value = kindBytes, float64(b)
	case tSub:
		nt2 := p.next()
		if nt2.kind != tNumber {
			return nil, p.unexpected(nt2, "NUMBER")
		}
		v, _ := strconv.ParseFloat(nt2.text, 64)
		nf.Value, nf.Raw = -v, "-"+nt2.text
	default:
		return nil, p.unexpected(vt, "NUMBER, DURATION, BYTES or STRING")
	}
	return nf, nil
}

func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}

// parseBytes reads "10KB", "1.5MiB", "42B" (decimal SI and binary IEC units, as Loki's label filters do).
func parseBytes(s string) (uint64, error) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid byte size %q", s)
	}
	num, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid byte size %q", s)
	}
	mult := map[string]float64{
		"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50,
		"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30,
	}
	u := strings.ToLower(s[i:])
	if u == "" {
		return 0, fmt.Errorf("invalid byte size %q: no unit", s)
	}
	m, ok := mult[u]
	if !ok {
		return 0, fmt.Errorf("invalid byte size %q: unknown unit", s)
	}
	v := num * m
	if v > math.MaxUint64/2 {
		return 0, fmt.Errorf("byte size %q out of range", s)
	}
	return uint64(v), nil
}

// parseLabelReplace parses label_replace(<metric query>, "dst", "replacement", "src", "regex").
func (p *parser) parseLabelReplace() (Expr, error) {
	fn := p.next()
	if _, err := p.expect(tLParen); err != nil {
		return nil, err
	}
	inner, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	se, ok := inner.(SampleExpr)
	if !ok {
		return nil, p.errAt(fn, "label_replace needs a metric query, got a log query: wrap it in a range aggregation such as count_over_time(%s [5m])", inner.String())
	}
	var args [4]string
	for i := range args {
		if _, err := p.expect(tComma); err != nil {
			return nil, err
		}
		vt := p.next()
		if vt.kind != tString {
			return nil, p.unexpected(vt, "STRING")
		}
		args[i] = vt.text
	}
	if _, err := p.expect(tRParen); err != nil {
		return nil, err
	}
	lr := &LabelReplaceExpr{Inner: se, Dst: args[0], Replacement: args[1], Src: args[2], Regex: args[3]}
	if !model.LegacyValidation.IsValidLabelName(lr.Dst) {
		return nil, p.errAt(fn, "invalid destination label name in label_replace(): %s", lr.Dst)
	}
	if lr.re, err = regexp.Compile("^(?:" + lr.Regex + ")$"); err != nil {
		return nil, p.errAt(fn, "invalid regex in label_replace(): %s", lr.Regex)
	}
	return lr, nil
}
