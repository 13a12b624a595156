package diff

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// This file is the reference side of the TraceQL differential test: a generated trace set that the test keeps
// in memory as it wrote it (rTrace), and a small TraceQL model (fexpr for what goes inside { }, sexpr for
// spanset expressions and pipelines) whose values render as query text and evaluate on the generated traces.
// The model follows the semantics of Tempo's documentation and engine: spanset operators give one spanset per
// trace; structural operators return right-hand spans (both sides for the union forms); a comparison with an
// attribute a span does not have, or of another type, is false; regular expressions are anchored.

// Values of the model besides string, int64, float64 and bool.
type (
	durV    time.Duration
	statusV string
	kindV   string
)

type rEvent struct {
	name  string
	off   time.Duration
	attrs map[string]any
}

type rLink struct {
	traceID, spanID string
	attrs           map[string]any
}

type rSpan struct {
	idx, parent         int // parent -1: the root
	children            []int
	id                  string // hex
	res, attrs, scAttrs map[string]any
	name, kind, status  string
	statusMsg           string
	scope, scopeVersion string
	start               time.Time
	dur                 time.Duration
	events              []rEvent
	links               []rLink
}

type rTrace struct {
	id         string // hex, leading zeros trimmed as Tempo writes it
	spans      []*rSpan
	start, end time.Time
}

func (t *rTrace) root() *rSpan { return t.spans[0] }

var (
	rServices = []string{"frontend", "frontend", "checkout", "cart", "db", "ünïcode-svc"}
	rEnvs     = []string{"prod", "prod", "staging", "dev"}
	rRegions  = []string{"us-east-1", "us-west-1", "eu-west-1"}
	rNames    = []string{"GET /api/products/{id}", "POST /api/orders", "HTTP GET", "SELECT", "op-1", "op-2", "cache get"}
	rURLs     = []string{"/api/orders", "/api/products/{id}", "/path/of/api", "/healthz"}
	rMethods  = []string{"GET", "GET", "POST", "DELETE", "PUT"}
	rCodes    = []int64{200, 200, 200, 201, 301, 404, 500, 503}
	rKinds    = []string{"server", "server", "client", "internal", "producer", "consumer"}
	rDBs      = []string{"postgresql", "mysql", "redis"}
	rScopes   = []string{"grpc", "http", "sql"}
)

// genTraceModel builds 60 traces of 1 to 10 spans in trees (each span's parent drawn among the spans before it),
// over five services, within a minute after base. Attributes of every type, some present only on some spans
// (for = nil / != nil), events with attributes, links, instrumentation scopes, error statuses with messages.
func genTraceModel(seed int64, base time.Time) (ptrace.Traces, []*rTrace) {
	r := rand.New(rand.NewSource(seed))
	td := ptrace.NewTraces()
	var out []*rTrace
	kindOf := map[string]ptrace.SpanKind{"server": ptrace.SpanKindServer, "client": ptrace.SpanKindClient, "internal": ptrace.SpanKindInternal,
		"producer": ptrace.SpanKindProducer, "consumer": ptrace.SpanKindConsumer}
	statusOf := map[string]ptrace.StatusCode{"unset": ptrace.StatusCodeUnset, "ok": ptrace.StatusCodeOk, "error": ptrace.StatusCodeError}
	for i := 0; i < 60; i++ {
		var tid pcommon.TraceID
		r.Read(tid[:])
		tr := &rTrace{id: strings.TrimLeft(hex.EncodeToString(tid[:]), "0")}
		tstart := base.Add(time.Duration(r.Intn(60000)) * time.Millisecond)
		n := 1 + r.Intn(10)
		sids := make([]pcommon.SpanID, n)
		for j := 0; j < n; j++ {
			r.Read(sids[j][:])
			s := &rSpan{idx: j, parent: -1, id: hex.EncodeToString(sids[j][:]),
				res: map[string]any{}, attrs: map[string]any{}, scAttrs: map[string]any{}}
			if j > 0 {
				s.parent = r.Intn(j)
				tr.spans[s.parent].children = append(tr.spans[s.parent].children, j)
			}
			svc := rServices[r.Intn(len(rServices))]
			s.res["service.name"] = svc
			s.res["deployment.environment"] = rEnvs[r.Intn(len(rEnvs))]
			s.res["cloud.region"] = rRegions[r.Intn(len(rRegions))]
			if svc == "frontend" || svc == "checkout" {
				s.res["service.version"] = []string{"1.2.3", "2.0.0"}[r.Intn(2)]
			}
			if r.Intn(4) == 0 {
				s.res["canary"] = r.Intn(2) == 0
			}
			s.name = rNames[r.Intn(len(rNames))]
			s.kind = rKinds[r.Intn(len(rKinds))]
			s.status = []string{"unset", "unset", "unset", "ok", "error"}[r.Intn(5)]
			if s.status == "error" && r.Intn(2) == 0 {
				s.statusMsg = []string{"Forbidden", "timeout"}[r.Intn(2)]
			}
			s.scope = rScopes[r.Intn(len(rScopes))]
			s.scopeVersion = []string{"1.0.0", "1.1.0"}[r.Intn(2)]
			s.scAttrs["language"] = []string{"go", "java"}[r.Intn(2)]
			if svc == "db" {
				s.attrs["db.system"] = rDBs[r.Intn(len(rDBs))]
			} else {
				s.attrs["http.method"] = rMethods[r.Intn(len(rMethods))]
				s.attrs["http.url"] = rURLs[r.Intn(len(rURLs))]
			}
			if s.kind != "internal" && svc != "db" {
				s.attrs["http.status_code"] = rCodes[r.Intn(len(rCodes))]
			}
			if r.Intn(3) == 0 {
				s.attrs["http.request.header.Accept"] = []string{"application/json", "text/html", "application/xml"}[r.Intn(3)]
			}
			s.attrs["retry_count"] = int64(r.Intn(5) - 1)
			s.attrs["retry"] = r.Intn(3) == 0
			s.attrs["ratio"] = math.Round(r.Float64()*1000) / 1000
			s.attrs["bytesProcessed"] = int64(r.Intn(2_000_000_000))
			if r.Intn(4) == 0 {
				s.attrs["value"] = math.Round((r.Float64()*6-3)*100) / 100
			}
			if r.Intn(10) == 0 {
				s.attrs["attribute name with space"] = "value"
			}
			if j == 0 {
				s.start = tstart
			} else {
				p := tr.spans[s.parent]
				s.start = p.start.Add(time.Duration(r.Intn(50)) * time.Millisecond)
			}
			if r.Intn(8) == 0 {
				s.dur = time.Duration(1+r.Intn(999)) * time.Microsecond
			} else {
				s.dur = time.Duration(1+r.Intn(3000)) * time.Millisecond
			}
			for k := r.Intn(4) - 1; k > 0; k-- {
				ev := rEvent{attrs: map[string]any{}, off: time.Duration(r.Int63n(int64(s.dur)))}
				switch r.Intn(3) {
				case 0:
					ev.name = "exception"
					ev.attrs["exception.message"] = []string{"something went wrong: disk", "boom", "something went wrong"}[r.Intn(3)]
				case 1:
					ev.name = "foo"
					ev.attrs["foo"] = []string{"bar", "baz"}[r.Intn(2)]
				default:
					ev.name = "cache.miss"
				}
				s.events = append(s.events, ev)
			}
			if r.Intn(6) == 0 {
				var lt pcommon.TraceID
				var ls pcommon.SpanID
				r.Read(lt[:])
				r.Read(ls[:])
				s.links = append(s.links, rLink{traceID: hex.EncodeToString(lt[:]), spanID: hex.EncodeToString(ls[:]),
					attrs: map[string]any{"opentracing.ref_type": []string{"child_of", "follows_from"}[r.Intn(2)]}})
			}
			tr.spans = append(tr.spans, s)

			rs := td.ResourceSpans().AppendEmpty()
			putAttrs(rs.Resource().Attributes(), s.res)
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(s.scope)
			ss.Scope().SetVersion(s.scopeVersion)
			putAttrs(ss.Scope().Attributes(), s.scAttrs)
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(tid)
			sp.SetSpanID(sids[j])
			if s.parent >= 0 {
				sp.SetParentSpanID(sids[s.parent])
			}
			sp.SetName(s.name)
			sp.SetKind(kindOf[s.kind])
			sp.Status().SetCode(statusOf[s.status])
			sp.Status().SetMessage(s.statusMsg)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.start.Add(s.dur)))
			putAttrs(sp.Attributes(), s.attrs)
			for _, ev := range s.events {
				e := sp.Events().AppendEmpty()
				e.SetName(ev.name)
				e.SetTimestamp(pcommon.NewTimestampFromTime(s.start.Add(ev.off)))
				putAttrs(e.Attributes(), ev.attrs)
			}
			for _, l := range s.links {
				lk := sp.Links().AppendEmpty()
				var lt pcommon.TraceID
				var ls pcommon.SpanID
				hex.Decode(lt[:], []byte(l.traceID))
				hex.Decode(ls[:], []byte(l.spanID))
				lk.SetTraceID(lt)
				lk.SetSpanID(ls)
				putAttrs(lk.Attributes(), l.attrs)
			}
		}
		tr.start, tr.end = tr.spans[0].start, tr.spans[0].start
		for _, s := range tr.spans {
			if s.start.Before(tr.start) {
				tr.start = s.start
			}
			if e := s.start.Add(s.dur); e.After(tr.end) {
				tr.end = e
			}
		}
		out = append(out, tr)
	}
	return td, out
}

func putAttrs(m pcommon.Map, attrs map[string]any) {
	for k, v := range attrs {
		switch x := v.(type) {
		case string:
			m.PutStr(k, x)
		case int64:
			m.PutInt(k, x)
		case float64:
			m.PutDouble(k, x)
		case bool:
			m.PutBool(k, x)
		}
	}
}

// fieldValues is what a field names on one span: none when absent, several for event and link fields (a span
// matches when one of them does).
func fieldValues(tr *rTrace, s *rSpan, field string) []any {
	one := func(v any, ok bool) []any {
		if !ok {
			return nil
		}
		return []any{v}
	}
	switch field {
	case "name", "span:name":
		return []any{s.name}
	case "status", "span:status":
		return []any{statusV(s.status)}
	case "kind", "span:kind":
		return []any{kindV(s.kind)}
	case "duration", "span:duration":
		return []any{durV(s.dur)}
	case "statusMessage", "span:statusMessage":
		return []any{s.statusMsg}
	case "span:childCount":
		return []any{int64(len(s.children))}
	case "span:id":
		return []any{s.id}
	case "span:parentID":
		if s.parent < 0 {
			return nil
		}
		return []any{tr.spans[s.parent].id}
	case "trace:duration":
		return []any{durV(tr.end.Sub(tr.start))}
	case "trace:rootName":
		return []any{tr.root().name}
	case "trace:rootService":
		return []any{tr.root().res["service.name"]}
	case "trace:id":
		return []any{fmt.Sprintf("%032s", tr.id)}
	case "instrumentation:name":
		return []any{s.scope}
	case "instrumentation:version":
		return []any{s.scopeVersion}
	case "event:name":
		var vs []any
		for _, e := range s.events {
			vs = append(vs, e.name)
		}
		return vs
	case "event:timeSinceStart":
		var vs []any
		for _, e := range s.events {
			vs = append(vs, durV(e.off))
		}
		return vs
	case "link:traceID", "link:spanID":
		var vs []any
		for _, l := range s.links {
			vs = append(vs, map[bool]string{true: l.traceID, false: l.spanID}[field == "link:traceID"])
		}
		return vs
	}
	scope, name, _ := strings.Cut(field, ".")
	name = strings.Trim(name, `"`)
	switch scope {
	case "resource":
		v, ok := s.res[name]
		return one(v, ok)
	case "span":
		v, ok := s.attrs[name]
		return one(v, ok)
	case "instrumentation":
		v, ok := s.scAttrs[name]
		return one(v, ok)
	case "event":
		var vs []any
		for _, e := range s.events {
			if v, ok := e.attrs[name]; ok {
				vs = append(vs, v)
			}
		}
		return vs
	case "link":
		var vs []any
		for _, l := range s.links {
			if v, ok := l.attrs[name]; ok {
				vs = append(vs, v)
			}
		}
		return vs
	case "": // unscoped: the span's attribute, else the resource's
		if v, ok := s.attrs[name]; ok {
			return []any{v}
		}
		v, ok := s.res[name]
		return one(v, ok)
	}
	panic("unknown field " + field)
}

// lit is a literal as written in a query and as a value.
type lit struct {
	text string
	v    any // nil for the nil literal
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func ordered(c int, op string) bool {
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	}
	return false
}

func cmp3[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareValue is a op b; values of different types never compare (false), numbers compare across int and
// float.
func compareValue(a any, op string, b any) bool {
	if fa, ok := num(a); ok {
		if fb, ok := num(b); ok {
			return ordered(cmp3(fa, fb), op)
		}
		return false
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		switch op {
		case "=~", "!~":
			m := regexp.MustCompile("^(?:" + y + ")$").MatchString(x)
			return m == (op == "=~")
		}
		return ordered(cmp3(x, y), op)
	case durV:
		y, ok := b.(durV)
		return ok && ordered(cmp3(int64(x), int64(y)), op)
	case bool, statusV, kindV:
		if fmt.Sprintf("%T", a) != fmt.Sprintf("%T", b) {
			return false
		}
		switch op {
		case "=":
			return a == b
		case "!=":
			return a != b
		}
	}
	return false
}

// fexpr is a condition inside { }.
type fexpr interface {
	render(top bool) string
	match(tr *rTrace, s *rSpan) bool
}

type fcmp struct {
	field, op string
	l         lit
	arith     string // optional "+ 100" etc. applied to the field's value (numbers only)
}

func (c fcmp) render(bool) string {
	f := c.field
	if c.arith != "" {
		f += " " + c.arith
	}
	return fmt.Sprintf("%s %s %s", f, c.op, c.l.text)
}

func (c fcmp) match(tr *rTrace, s *rSpan) bool {
	if c.l.v == nil && c.op == "=" && (strings.HasPrefix(c.field, "event.") || strings.HasPrefix(c.field, "link.")) {
		// As Tempo 3 answers it (docs/traces.md): one event (link) of the span has attributes, none of them
		// this one.
		name := strings.Trim(c.field[strings.IndexByte(c.field, '.')+1:], `"`)
		var attrs []map[string]any
		if strings.HasPrefix(c.field, "event.") {
			for _, e := range s.events {
				attrs = append(attrs, e.attrs)
			}
		} else {
			for _, l := range s.links {
				attrs = append(attrs, l.attrs)
			}
		}
		for _, m := range attrs {
			if _, has := m[name]; len(m) > 0 && !has {
				return true
			}
		}
		return false
	}
	vs := fieldValues(tr, s, c.field)
	if c.l.v == nil {
		return (len(vs) > 0) == (c.op == "!=")
	}
	for _, v := range vs {
		if c.arith != "" {
			f, ok := num(v)
			if !ok {
				continue
			}
			var k float64
			var op string
			fmt.Sscanf(c.arith, "%s %g", &op, &k)
			switch op {
			case "+":
				f += k
			case "-":
				f -= k
			case "*":
				f *= k
			case "/":
				f /= k
			}
			v = f
		}
		if compareValue(v, c.op, c.l.v) {
			return true
		}
	}
	return false
}

type flogic struct {
	op   string // && or ||
	a, b fexpr
}

func (l flogic) render(top bool) string {
	s := l.a.render(false) + " " + l.op + " " + l.b.render(false)
	if !top {
		return "(" + s + ")"
	}
	return s
}

func (l flogic) match(tr *rTrace, s *rSpan) bool {
	if l.op == "&&" {
		return l.a.match(tr, s) && l.b.match(tr, s)
	}
	return l.a.match(tr, s) || l.b.match(tr, s)
}

type ftrue struct{}

func (ftrue) render(bool) string         { return "" }
func (ftrue) match(*rTrace, *rSpan) bool { return true }

// sexpr is a spanset expression: it gives each trace at most one spanset (sorted span indexes), or several
// after by().
type sexpr interface {
	render() string
	eval(tr *rTrace) [][]int
}

type sfilter struct{ f fexpr }

func (f sfilter) render() string {
	if _, ok := f.f.(ftrue); ok {
		return "{ }"
	}
	return "{ " + f.f.render(true) + " }"
}

func (f sfilter) eval(tr *rTrace) [][]int {
	var m []int
	for _, s := range tr.spans {
		if f.f.match(tr, s) {
			m = append(m, s.idx)
		}
	}
	if len(m) == 0 {
		return nil
	}
	return [][]int{m}
}

type sop struct {
	op   string
	a, b sexpr
}

func (o sop) render() string {
	side := func(x sexpr) string {
		if _, ok := x.(sfilter); ok {
			return x.render()
		}
		return "(" + x.render() + ")"
	}
	return side(o.a) + " " + o.op + " " + side(o.b)
}

func flat(sets [][]int) []int {
	seen := map[int]bool{}
	var out []int
	for _, s := range sets {
		for _, i := range s {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	sort.Ints(out)
	return out
}

func (o sop) eval(tr *rTrace) [][]int {
	l, r := flat(o.a.eval(tr)), flat(o.b.eval(tr))
	var out []int
	switch o.op {
	case "&&":
		if len(l) > 0 && len(r) > 0 {
			out = flat([][]int{l, r})
		}
	case "||":
		out = flat([][]int{l, r})
	default:
		out = structural(tr, o.op, l, r)
	}
	if len(out) == 0 {
		return nil
	}
	return [][]int{out}
}

func isAncestor(tr *rTrace, a, d int) bool {
	for p := tr.spans[d].parent; p >= 0; p = tr.spans[p].parent {
		if p == a {
			return true
		}
	}
	return false
}

// structural applies a structural operator: rel(x, y) says that right-hand span y stands in the operator's
// relation to left-hand span x.
func structural(tr *rTrace, op string, l, r []int) []int {
	base := strings.TrimLeft(op, "!&")
	rel := map[string]func(x, y int) bool{
		">":  func(x, y int) bool { return tr.spans[y].parent == x },
		"<":  func(x, y int) bool { return tr.spans[x].parent == y },
		">>": func(x, y int) bool { return isAncestor(tr, x, y) },
		"<<": func(x, y int) bool { return isAncestor(tr, y, x) },
		"~": func(x, y int) bool {
			return x != y && tr.spans[x].parent >= 0 && tr.spans[x].parent == tr.spans[y].parent
		},
	}[base]
	var out [][]int
	var keep []int
	for _, y := range r {
		hit := false
		for _, x := range l {
			if rel(x, y) {
				hit = true
				if strings.HasPrefix(op, "&") {
					keep = append(keep, x)
				}
			}
		}
		if hit != strings.HasPrefix(op, "!") {
			keep = append(keep, y)
		}
	}
	out = append(out, keep)
	return flat(out)
}

// A pipeline stage after a spanset expression.
type stage interface {
	render() string
	apply(tr *rTrace, sets [][]int) [][]int
}

type sby struct{ field string }

func (b sby) render() string { return "by(" + b.field + ")" }

func (b sby) apply(tr *rTrace, sets [][]int) [][]int {
	var out [][]int
	for _, set := range sets {
		groups := map[string][]int{}
		var order []string
		for _, i := range set {
			vs := fieldValues(tr, tr.spans[i], b.field)
			k := "<nil>"
			if len(vs) > 0 {
				k = fmt.Sprintf("%T %v", vs[0], vs[0])
			}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], i)
		}
		for _, k := range order {
			out = append(out, groups[k])
		}
	}
	return out
}

type sselect struct{ fields []string }

func (s sselect) render() string                        { return "select(" + strings.Join(s.fields, ", ") + ")" }
func (s sselect) apply(_ *rTrace, sets [][]int) [][]int { return sets }

// sagg is a scalar filter: agg(field) op literal, per spanset.
type sagg struct {
	agg, field, op string
	l              lit
}

func (a sagg) render() string { return fmt.Sprintf("%s(%s) %s %s", a.agg, a.field, a.op, a.l.text) }

func (a sagg) apply(tr *rTrace, sets [][]int) [][]int {
	var out [][]int
	for _, set := range sets {
		var v any
		if a.agg == "count" {
			v = int64(len(set))
		} else {
			var xs []float64
			isDur := false
			for _, i := range set {
				vs := fieldValues(tr, tr.spans[i], a.field)
				if len(vs) == 0 {
					continue
				}
				if d, ok := vs[0].(durV); ok {
					isDur = true
					xs = append(xs, float64(d))
				} else if f, ok := num(vs[0]); ok {
					xs = append(xs, f)
				}
			}
			if len(xs) == 0 {
				continue
			}
			f := xs[0]
			sum := 0.0
			for _, x := range xs {
				sum += x
				switch a.agg {
				case "min":
					f = math.Min(f, x)
				case "max":
					f = math.Max(f, x)
				}
			}
			switch a.agg {
			case "sum":
				f = sum
			case "avg":
				f = sum / float64(len(xs))
			}
			if isDur {
				v = durV(time.Duration(f))
				if _, ok := a.l.v.(durV); !ok {
					continue
				}
				if compareValue(float64(int64(f)), a.op, float64(int64(time.Duration(a.l.v.(durV))))) {
					out = append(out, set)
				}
				continue
			}
			v = f
		}
		if compareValue(v, a.op, a.l.v) {
			out = append(out, set)
		}
	}
	return out
}

type spipe struct {
	s      sexpr
	stages []stage
}

func (p spipe) render() string {
	s := p.s.render()
	if _, ok := p.s.(sfilter); !ok {
		s = "(" + s + ")"
	}
	for _, st := range p.stages {
		s += " | " + st.render()
	}
	return s
}

func (p spipe) eval(tr *rTrace) [][]int {
	sets := p.s.eval(tr)
	for _, st := range p.stages {
		sets = st.apply(tr, sets)
	}
	return sets
}

// expectSearch is the reference answer of a search: trace id -> the spans matched (span ids), over every
// spanset of the trace.
func expectSearch(q sexpr, traces []*rTrace) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, tr := range traces {
		spans := flat(q.eval(tr))
		if len(spans) == 0 {
			continue
		}
		m := map[string]bool{}
		for _, i := range spans {
			m[strings.TrimLeft(tr.spans[i].id, "0")] = true
		}
		out[tr.id] = m
	}
	return out
}
