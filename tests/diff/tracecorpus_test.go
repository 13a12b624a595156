package diff

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"
)

// L parses a literal as a query writes it: "quoted" strings, nil, true/false, durations, the status and kind
// names, integers and floats.
func L(text string) lit {
	switch {
	case strings.HasPrefix(text, `"`):
		s, err := strconv.Unquote(text)
		if err != nil {
			panic(err)
		}
		return lit{text, s}
	case text == "nil":
		return lit{text, nil}
	case text == "true" || text == "false":
		return lit{text, text == "true"}
	case text == "error" || text == "ok" || text == "unset":
		return lit{text, statusV(text)}
	case text == "server" || text == "client" || text == "internal" || text == "producer" || text == "consumer":
		return lit{text, kindV(text)}
	}
	if i, err := strconv.ParseInt(text, 10, 64); err == nil {
		return lit{text, i}
	}
	if f, err := strconv.ParseFloat(text, 64); err == nil {
		return lit{text, f}
	}
	if d, err := time.ParseDuration(text); err == nil {
		return lit{text, durV(d)}
	}
	panic("literal " + text)
}

// F is a comparison; F("span.x", "!=", "nil") an existence test.
func F(field, op, l string) fcmp { return fcmp{field: field, op: op, l: L(l)} }

func and(a, b fexpr) fexpr { return flogic{"&&", a, b} }
func or(a, b fexpr) fexpr  { return flogic{"||", a, b} }
func S(f fexpr) sfilter    { return sfilter{f} }
func all() sfilter         { return sfilter{ftrue{}} }
func op(a sexpr, o string, b sexpr) sop {
	return sop{o, a, b}
}
func pipe(s sexpr, st ...stage) spipe { return spipe{s, st} }
func count(o, n string) sagg          { return sagg{"count", "", o, L(n)} }
func agg(a, f, o, n string) sagg      { return sagg{a, f, o, L(n)} }

// shint is an expression followed by query hints, which do not change an exhaustive answer.
type shint struct {
	s    sexpr
	hint string
}

func (h shint) render() string          { return h.s.render() + " " + h.hint }
func (h shint) eval(tr *rTrace) [][]int { return h.s.eval(tr) }

// traceqlDocsCorpus has the constructs of Tempo's TraceQL documentation (construct-traceql-queries.md and the
// intrinsics tables), each written against the generated traces; ids are taken from them.
func traceqlDocsCorpus(traces []*rTrace) []sexpr {
	tr := traces[3]
	child := tr.spans[len(tr.spans)-1]
	var linked *rSpan
	for _, t := range traces {
		for _, s := range t.spans {
			if linked == nil && len(s.links) > 0 {
				linked = s
			}
		}
	}
	svcFE, errS := F("resource.service.name", "=", `"frontend"`), F("status", "=", "error")
	qs := []sexpr{
		all(),
		S(F("span.http.status_code", "=", "200")),
		S(F("resource.service.name", "=", `"frontend"`)),
		S(F("resource.deployment.environment", "=", `"prod"`)),
		S(and(F("resource.cloud.region", "=", `"us-east-1"`), F("resource.cloud.region", "=", `"us-west-1"`))),
		op(S(F("resource.cloud.region", "=", `"us-east-1"`)), "&&", S(F("resource.cloud.region", "=", `"us-west-1"`))),
		op(S(F("resource.cloud.region", "=", `"us-east-1"`)), "||", S(F("resource.cloud.region", "=", `"us-west-1"`))),
		S(F("resource.cloud.region", "=~", `"us-east-1|us-west-1"`)),
		pipe(S(and(F("resource.deployment.environment", "=", `"prod"`), F("trace:duration", ">", "2s"))), count(">", "3")),
		op(S(F("resource.deployment.environment", "=", `"prod"`)), "&&", S(F("resource.deployment.environment", "=", `"staging"`))),
		op(S(F("resource.deployment.environment", "=", `"prod"`)), "&&", S(F("span.http.status_code", "=", "200"))),
		S(and(F("resource.deployment.environment", "=~", `"pro.*"`), F("span.http.status_code", "=", "200"))),
		S(and(svcFE, F("trace:rootName", "!~", `".*GET.*"`))),
		S(and(svcFE, F("span:childCount", "=", "0"))),
		op(S(F("resource.service.name", "=", `"cart"`)), "~", S(svcFE)),
		op(S(svcFE), ">>", S(errS)),
		S(F("resource.service.version", "=", "nil")),
		S(F(`span."attribute name with space"`, "=", `"value"`)),
		S(F("span.http.request.header.Accept", "!=", "nil")),
		S(F("span.db.system", "=", "nil")),
		S(F("span.db.system", "=~", `"postgresql|mysql"`)),
		S(F("span.http.method", "!=", `"GET"`)),
		S(F("span.http.method", "=", `"GET"`)),
		shint{op(S(F("span.http.method", "=", `"GET"`)), ">>", S(errS)), "with (most_recent=true)"},
		S(and(F("span.http.method", "=", `"DELETE"`), F("status", "!=", "ok"))),
		op(S(and(F("span.http.method", "=", `"GET"`), F("status", "=", "ok"))), "&&", S(and(F("span.http.method", "=", `"DELETE"`), F("status", "!=", "ok")))),
		S(F("span.http.method", "=~", `"DELETE|GET"`)),
		S(F("span.http.request.header.Accept", "=~", `"application.*"`)),
		S(F("span.http.request.header.Accept", "!~", `"application.*"`)),
		S(fcmp{field: "span.bytesProcessed", op: ">", l: lit{"10 * 1024 * 1024", float64(10 * 1024 * 1024)}}),
		pipe(S(F("span.http.status_code", "=", "200")), count(">", "3")),
		pipe(S(F("span.http.status_code", "=", "200")), sselect{[]string{"resource.service.name"}}),
		S(F("span.http.status_code", ">=", `"400"`)),
		S(and(F("span.http.status_code", ">=", "200"), F("span.http.status_code", "<", "300"))),
		pipe(S(and(F("span.http.status_code", ">=", "200"), F("span.http.status_code", "<", "300"))), count(">", "2")),
		S(and(F("span.http.status_code", ">=", "400"), F("span.http.status_code", "<", "500"))),
		op(S(and(F("span.http.url", "=", `"/path/of/api"`), errS)), "&>>", S(errS)),
		op(S(F("span.http.url", "=", `"/path/of/api"`)), ">>", S(F("span.db.system", "=", `"postgresql"`))),
		S(F("span.retry_count", ">", "-1")),
		S(F("span.value", ">", "1.5")),
		S(and(F("span.value", "!=", "-3"), F("span.value", "!=", "3"))),
		S(F("span:childCount", "=", "0")),
		S(F("span:childCount", ">", "2")),
		S(F("span:childCount", ">", "0")),
		S(F("span:duration", ">", "100ms")),
		S(F("span:duration", ">", "1s")),
		S(F("span:name", "=", `"SELECT"`)),
		S(F("span:name", "=", `"HTTP GET"`)),
		op(S(errS), "!<", S(errS)),
		pipe(S(errS), sby{"resource.service.name"}, count(">", "1")),
		pipe(S(errS), sselect{[]string{"span.http.status_code", "span.http.url"}}),
		S(F("trace:duration", ">", "2s")),
		S(F("trace:duration", ">", "100ms")),
		S(F("trace:id", "=", fmt.Sprintf("%q", fmt.Sprintf("%032s", tr.id)))),
		op(all(), "!<", S(F("resource.service.name", "=", `"db"`))),
		op(all(), "!<", S(F("resource.service.name", "=", `"cart"`))),
		S(and(svcFE, F("name", "=", `"POST /api/orders"`))),
		op(S(and(svcFE, F("name", "=", `"GET /api/products/{id}"`))), "&&", S(F("span.db.system", "=", `"postgresql"`))),
		shint{all(), "with (most_recent=true)"},
		S(F("event.exception.message", "=", "nil")),
		S(F("event.exception.message", "=~", `".*something went wrong.*"`)),
		S(F("event.foo", "=", `"bar"`)),
		S(F("event:name", "=", `"foo"`)),
		S(F("event:name", "=", `"exception"`)),
		S(F("event:timeSinceStart", ">", "2ms")),
		S(F("event:timeSinceStart", ">", "-5s")),
		S(F("instrumentation.language", "=", `"java"`)),
		S(F("instrumentation:name", "=", `"grpc"`)),
		S(F("instrumentation:version", "=", `"1.0.0"`)),
		S(F("link.opentracing.ref_type", "=", `"child_of"`)),
		S(F("link:traceID", "=", fmt.Sprintf("%q", linked.links[0].traceID))),
		S(F("link:spanID", "=", fmt.Sprintf("%q", linked.links[0].spanID))),
		S(F("span:id", "=", fmt.Sprintf("%q", child.id))),
		S(F("span:parentID", "=", fmt.Sprintf("%q", tr.spans[0].id))),
		S(F("span:kind", "=", "server")),
		S(F("span:status", "=", "ok")),
		S(F("span:statusMessage", "=", `"Forbidden"`)),
		S(F("trace:rootName", "=", `"HTTP GET"`)),
		S(F("trace:rootService", "=", `"checkout"`)),
		pipe(all(), agg("sum", "span.bytesProcessed", ">", "5000000000")),
		pipe(S(F("span.http.status_code", "=", "200")), agg("avg", "duration", ">", "1s")),
		pipe(all(), agg("max", "duration", "<", "500ms")),
		pipe(all(), agg("min", "span.http.status_code", ">=", "404")),
		S(F("span.service.name", "=", `"frontend"`)),
		S(F(".service.name", "=", `"frontend"`)),
		S(F(".http.status_code", "=", "404")),
	}
	// Every structural operator, on a selective and a broad left side.
	for _, o := range []string{">", ">>", "<", "<<", "~", "!>", "!>>", "!<", "!<<", "!~", "&>", "&>>", "&<", "&<<", "&~"} {
		qs = append(qs, op(S(svcFE), o, S(errS)), op(all(), o, S(F("span.db.system", "!=", "nil"))))
	}
	return qs
}

// The generator's fields, each with the operators and literals that suit its type.
type genField struct {
	fields []string
	ops    []string
	lits   []string
}

var (
	strOps, numOps, eqOps = []string{"=", "!=", "=~", "!~"}, []string{"=", "!=", "<", "<=", ">", ">="}, []string{"=", "!="}
	genFields             = []genField{
		{[]string{"resource.service.name", ".service.name"}, strOps, []string{`"frontend"`, `"checkout"`, `"cart"`, `"db"`, `"ünïcode-svc"`, `"nope"`, `"front.*"`, `"c.*"`, `"ü.*"`, `"cart|db"`}},
		{[]string{"resource.deployment.environment"}, strOps, []string{`"prod"`, `"staging"`, `"dev"`, `"pro.*|dev"`}},
		{[]string{"resource.cloud.region", ".cloud.region"}, strOps, []string{`"us-east-1"`, `"eu-west-1"`, `"us-.*"`}},
		{[]string{"resource.service.version"}, eqOps, []string{`"1.2.3"`, `"2.0.0"`, "nil"}},
		{[]string{"span.http.method", ".http.method"}, strOps, []string{`"GET"`, `"POST"`, `"DELETE"`, `"PUT|DELETE"`}},
		{[]string{"span.http.url"}, strOps, []string{`"/api/orders"`, `"/path/of/api"`, `"/api/.*"`, `".*\\{id\\}"`}},
		{[]string{"span.db.system"}, strOps, []string{`"postgresql"`, `"redis"`, `"mysql|redis"`, "nil"}},
		{[]string{"name", "span:name"}, strOps, []string{`"GET /api/products/{id}"`, `"POST /api/orders"`, `"HTTP GET"`, `"SELECT"`, `"op-[12]"`, `".*GET.*"`}},
		{[]string{"statusMessage"}, eqOps, []string{`"Forbidden"`, `"timeout"`, `""`}},
		{[]string{"trace:rootName"}, strOps, []string{`"HTTP GET"`, `"SELECT"`, `"op-.*"`}},
		{[]string{"trace:rootService"}, strOps, []string{`"frontend"`, `"db"`, `"c.*"`}},
		{[]string{"event:name"}, strOps, []string{`"exception"`, `"foo"`, `"cache.miss"`}},
		{[]string{"event.exception.message"}, strOps, []string{`"boom"`, `"something went wrong.*"`, "nil"}},
		{[]string{"event.foo"}, eqOps, []string{`"bar"`, `"baz"`}},
		{[]string{"link.opentracing.ref_type"}, eqOps, []string{`"child_of"`, `"follows_from"`, "nil"}},
		{[]string{"instrumentation:name"}, strOps, []string{`"grpc"`, `"sql"`, `"g.*"`}},
		{[]string{"instrumentation:version"}, eqOps, []string{`"1.0.0"`, `"1.1.0"`}},
		{[]string{"instrumentation.language"}, eqOps, []string{`"go"`, `"java"`}},
		{[]string{"span.http.status_code", ".http.status_code"}, numOps, []string{"200", "201", "404", "500", "300"}},
		{[]string{"span.retry_count"}, numOps, []string{"-1", "0", "1", "2"}},
		{[]string{"span.bytesProcessed"}, numOps, []string{"1000000000", "500000000", "1500000000"}},
		{[]string{"span:childCount"}, numOps, []string{"0", "1", "2", "3"}},
		{[]string{"span.ratio"}, numOps, []string{"0.5", "0.25", "0.9", "1"}},
		{[]string{"span.value"}, numOps, []string{"1.5", "-1", "0", "nil"}},
		{[]string{"span.retry"}, eqOps, []string{"true", "false"}},
		{[]string{"resource.canary"}, eqOps, []string{"true", "false", "nil"}},
		{[]string{"duration", "span:duration"}, numOps, []string{"100ms", "1s", "2s", "500us", "1500ms"}},
		{[]string{"trace:duration"}, numOps, []string{"2s", "3s", "1500ms"}},
		{[]string{"event:timeSinceStart"}, []string{">", "<"}, []string{"2ms", "100ms", "1s"}},
		{[]string{"status", "span:status"}, eqOps, []string{"error", "ok", "unset"}},
		{[]string{"kind", "span:kind"}, eqOps, []string{"server", "client", "internal", "producer", "consumer"}},
	}
	genSpansetOps = []string{"&&", "||", ">", "<", ">>", "<<", "~", "!>", "!<", "!>>", "!<<", "!~", "&>", "&<", "&>>", "&<<", "&~"}
	genByFields   = []string{"resource.service.name", "span.http.method", "status", "name", "span.http.status_code"}
	genAggs       = []struct{ agg, field, lits string }{
		{"count", "", "0 1 2 3 5"}, {"avg", "duration", "100ms 1s 2s"}, {"max", "duration", "1s 2500ms"}, {"min", "duration", "1ms 100ms"},
		{"sum", "span.bytesProcessed", "1000000000 5000000000"}, {"avg", "span.ratio", "0.5 0.3"}, {"min", "span.http.status_code", "200 404"},
		{"max", "span.retry_count", "0 2"},
	}
)

func genFieldExpr(r *rand.Rand, depth int) fexpr {
	if depth < 2 && r.Intn(3) == 0 {
		return flogic{pick(r, []string{"&&", "||"}), genFieldExpr(r, depth+1), genFieldExpr(r, depth+1)}
	}
	g := genFields[r.Intn(len(genFields))]
	l := pick(r, g.lits)
	o := pick(r, g.ops)
	if l == "nil" {
		o = pick(r, eqOps)
	} else if strings.HasPrefix(l, `"`) && (o == "=" || o == "!=") && strings.ContainsAny(l, "*|[\\") {
		o += "~"
		if o == "!=~" {
			o = "!~"
		}
	}
	c := F(pick(r, g.fields), o, l)
	if g.fields[0] == "span.http.status_code" && r.Intn(5) == 0 {
		c.arith = pick(r, []string{"- 100", "+ 1", "* 2", "/ 100"})
	}
	return c
}

func genSpanset(r *rand.Rand, depth int) sexpr {
	var s sexpr
	if depth < 2 && r.Intn(3) == 0 {
		s = sop{pick(r, genSpansetOps), genSpanset(r, depth+1), genSpanset(r, depth+1)}
	} else if r.Intn(12) == 0 {
		s = all()
	} else {
		s = S(genFieldExpr(r, 0))
	}
	if depth == 0 && r.Intn(4) == 0 {
		var st []stage
		if r.Intn(3) == 0 {
			st = append(st, sby{pick(r, genByFields)})
		}
		if r.Intn(5) == 0 {
			st = append(st, sselect{[]string{pick(r, genByFields)}})
		} else {
			a := genAggs[r.Intn(len(genAggs))]
			st = append(st, sagg{a.agg, a.field, pick(r, numOps[1:]), L(pick(r, strings.Fields(a.lits)))})
		}
		s = spipe{s, st}
	}
	return s
}

const traceqlGenSeed, traceqlGenCount = 23, 2500

// genTraceQLCorpus returns the generated queries with their models; the text is what testdata holds.
func genTraceQLCorpus() ([]string, []sexpr) {
	r := rand.New(rand.NewSource(traceqlGenSeed))
	seen := map[string]bool{}
	var qs []string
	var ms []sexpr
	for len(qs) < traceqlGenCount {
		m := genSpanset(r, 0)
		q := m.render()
		if !seen[q] {
			seen[q] = true
			qs = append(qs, q)
			ms = append(ms, m)
		}
	}
	return qs, ms
}

// traceModelSeed fixes the generated traces' ids and values (their times follow the clock).
const traceModelSeed = 7

func docsTexts() ([]string, []sexpr) {
	_, traces := genTraceModel(traceModelSeed, time.Unix(0, 0))
	ms := traceqlDocsCorpus(traces)
	qs := make([]string, len(ms))
	for i, m := range ms {
		qs[i] = m.render()
	}
	return qs, ms
}

// TestTraceQLCorpusGenerated keeps testdata/traceql_docs.txt and traceql_generated.txt equal to what the
// models write.
func TestTraceQLCorpusGenerated(t *testing.T) {
	qs, _ := genTraceQLCorpus()
	checkGenerated(t, "traceql_generated.txt", fmt.Sprintf("# Generated by genTraceQLCorpus (seed %d); rewrite with: go test ./tests/diff -run Corpus -update\n", traceqlGenSeed), qs)
	dq, _ := docsTexts()
	checkGenerated(t, "traceql_docs.txt", "# TraceQL constructs of Tempo's documentation written against the generated traces (traceqlDocsCorpus);\n# rewrite with: go test ./tests/diff -run Corpus -update\n", dq)
}

// TestTraceQLModel checks the reference model on hand-computed cases, so that a wrong oracle does not pass
// for a wrong engine.
func TestTraceQLModel(t *testing.T) {
	//   0 frontend/error
	//   ├── 1 db
	//   │   └── 3 db/error
	//   └── 2 cart/error
	mk := func(idx, parent int, svc, status string) *rSpan {
		return &rSpan{idx: idx, parent: parent, id: fmt.Sprintf("%016x", idx+1), res: map[string]any{"service.name": svc},
			attrs: map[string]any{}, scAttrs: map[string]any{}, status: status, dur: time.Duration(idx+1) * time.Second}
	}
	tr := &rTrace{id: "1", spans: []*rSpan{mk(0, -1, "frontend", "error"), mk(1, 0, "db", "unset"), mk(2, 0, "cart", "error"), mk(3, 1, "db", "error")}}
	tr.spans[0].children, tr.spans[1].children = []int{1, 2}, []int{3}
	tr.start, tr.end = time.Unix(0, 0), time.Unix(4, 0)
	svc := func(s string) sfilter { return S(F("resource.service.name", "=", strconv.Quote(s))) }
	errS := S(F("status", "=", "error"))
	for _, c := range []struct {
		q    sexpr
		want []int
	}{
		{op(svc("frontend"), ">", errS), []int{2}},
		{op(svc("frontend"), ">>", errS), []int{2, 3}},
		{op(svc("frontend"), "&>>", errS), []int{0, 2, 3}},
		{op(errS, "<", svc("frontend")), []int{0}},
		{op(errS, "<", svc("db")), []int{1}},
		{op(svc("db"), "<", all()), []int{0, 1}},
		{op(svc("db"), "<<", all()), []int{0, 1}},
		{op(svc("cart"), "~", all()), []int{1}},
		{op(svc("db"), "~", svc("db")), nil},
		{op(errS, "!<", errS), []int{2, 3}},
		{op(all(), "!<", all()), []int{2, 3}},
		{op(svc("frontend"), "!>", all()), []int{0, 3}},
		{op(svc("nope"), "!>>", errS), []int{0, 2, 3}},
		{op(svc("db"), "!~", all()), []int{0, 1, 3}},
		{op(svc("db"), "&~", all()), []int{1, 2}},
		{op(svc("db"), "&&", svc("cart")), []int{1, 2, 3}},
		{op(svc("db"), "&&", svc("nope")), nil},
		{pipe(errS, sby{"resource.service.name"}, count(">", "1")), nil},
		{pipe(errS, count(">", "2")), []int{0, 2, 3}},
		{pipe(all(), agg("avg", "duration", ">", "2s")), []int{0, 1, 2, 3}},
		{pipe(all(), agg("avg", "duration", ">", "3s")), nil},
		{S(F("trace:duration", "=", "4s")), []int{0, 1, 2, 3}},
		{S(F("span:childCount", "=", "0")), []int{2, 3}},
		{S(F("resource.service.name", "=~", `"d"`)), nil},
		{S(F("span.nope", "!=", `"x"`)), nil},
	} {
		got := flat(c.q.eval(tr))
		if fmt.Sprint(got) != fmt.Sprint(c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("%s: %v, want %v", c.q.render(), got, c.want)
		}
	}
}
