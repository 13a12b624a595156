package logql

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func TestParseValid(t *testing.T) {
	for _, q := range []string{
		`{app="a"}`,
		`{app="a", env!="dev", pod=~"p-.+", ns!~"kube.*"}`,
		`{app="a"} |= "error" != "timeout" |~ "5.." !~ "GET /health"`,
		`{app="a"} |= "a" or "b"`,
		`{app="a"} |> "<_> level=error <_>" !> "GET /health <_>"`,
		`{app="a"} |> "<_> a" or "b <_>" | json | logfmt | drop __error__, __error_details__`,
		`{app="a"} | json | level="error"`,
		`{app="a"} | json level="lvl", code="resp.codes[0]"`,
		`{app="a"} | logfmt | duration > 1s and bytes >= 10KB or status >= 500`,
		`{app="a"} | logfmt --strict`,
		`{app="a"} | regexp "(?P<method>\\w+) (?P<path>\\S+)"`,
		"{app=\"a\"} | pattern `<ip> - <_> \"<method> <path>\"`",
		`{app="a"} | line_format "{{.level}} {{ __line__ | upper }}"`,
		`{app="a"} | label_format lvl=level, msg="{{.a}}-{{.b}}"`,
		`{app="a"} | trace_id="abc" | drop span_id | keep trace_id, app`,
		`{app="a"} | status=200, method="GET"`,
		`count_over_time({app="a"}[5m])`,
		`count_over_time({app="a"} |= "x" [5m] offset 1m)`,
		`rate({app="a"}[1m])`,
		`sum by (app) (rate({app="a"}[1m]))`,
		`sum(rate({app="a"}[1m])) by (app)`,
		`topk(3, sum by (app) (bytes_over_time({app="a"}[1h])))`,
		`quantile_over_time(0.99, {app="a"} | logfmt | unwrap duration(latency) [5m]) by (app)`,
		`avg_over_time({app="a"} | json | unwrap bytes [5m])`,
		`sum(count_over_time({app="a"}[1m])) / sum(count_over_time({app="b"}[1m])) * 100`,
		`vector(1)+vector(1)`,
		`1 + 2 * 3`,
		`sum(rate({app="a"}[1m])) > bool 10`,
		`count_over_time({app="a"}[1m]) or vector(0)`,
	} {
		t.Run(q, func(t *testing.T) {
			e, err := ParseExpr(q)
			if err != nil {
				t.Fatalf("ParseExpr(%q): %v", q, err)
			}
			if _, err := ParseExpr(e.String()); err != nil {
				t.Fatalf("re-parse of %q (from %q): %v", e.String(), q, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{`{app="a"} |= `, "parse error at line 1, col 14: syntax error: unexpected $end, expecting STRING"},
		{`{app="a" | json`, "parse error at line 1, col 10: syntax error: unexpected |"},
		{`{app}`, "parse error at line 1, col 5: syntax error: unexpected }, expecting =, !=, =~ or !~"},
		{`{app=~".*"}`, "queries require at least one regexp or equality matcher"},
		{`sum(rate({app="a"}))`, "parse error at line 1, col 19: syntax error: unexpected ), expecting ["},
		{"{app=\"a\"}\n  | foo", "parse error at line 2, col 8: syntax error: unexpected $end"},
		{`avg_over_time({app="a"}[5m])`, "invalid aggregation avg_over_time without unwrap"},
		{`{app="a"} |~ "("`, "invalid regexp"},
		{`{app="a"} | line_format "{{.a"`, "invalid line_format template"},
		{`{app="a"} + 1`, "unexpected log query in binary operation"},
		{`count_over_time({app="a"}[5x])`, "col 27: syntax error: unexpected"},
		{`{app="a`, "unterminated string"},
		{"sum_over_time({app=\"a\"} | logfmt | unwrap n [5m]) by (x)", "grouping not allowed for sum_over_time aggregation"},
		{"rate_counter({app=\"a\"} | logfmt | unwrap n [5m]) by (x)", "grouping not allowed for rate_counter aggregation"},
		{"count_over_time({app=\"a\"}[5m]) by (x)", "grouping not allowed for count_over_time aggregation"},
	} {
		t.Run(tc.q, func(t *testing.T) {
			_, err := ParseExpr(tc.q)
			if err == nil {
				t.Fatalf("ParseExpr(%q) succeeded, want error %q", tc.q, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseExpr(%q) error = %q, want it to contain %q", tc.q, err, tc.want)
			}
		})
	}
}

// memQuerier is a Querier over fixed streams.
type memQuerier struct {
	streams []memStream
}

type memStream struct {
	lbs     labels.Labels
	entries []Entry
}

func (m *memQuerier) SelectLogs(ctx context.Context, p SelectParams, fn func(labels.Labels, Entry) error) error {
	for _, s := range m.streams {
		ok := true
		for _, mt := range p.Matchers {
			ok = ok && mt.Matches(s.lbs.Get(mt.Name))
		}
		if !ok {
			continue
		}
		for _, e := range s.entries {
			if e.Timestamp >= p.Start && e.Timestamp < p.End {
				if err := fn(s.lbs, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func testData() *memQuerier {
	mk := func(sec int, line string, meta ...string) Entry {
		return Entry{Timestamp: t0 + int64(sec)*int64(time.Second), Line: line, Metadata: labels.FromStrings(meta...)}
	}
	return &memQuerier{streams: []memStream{
		{lbs: labels.FromStrings("app", "api", "env", "prod"), entries: []Entry{
			mk(1, `level=info msg="request done" status=200 duration=15ms size=1KB`, "trace_id", "t1", "span_id", "s1"),
			mk(2, `level=error msg="request failed" status=500 duration=1.5s size=2KB`, "trace_id", "t2"),
			mk(3, `level=info msg="request done" status=200 duration=30ms size=512B`, "trace_id", "t1"),
		}},
		{lbs: labels.FromStrings("app", "web", "env", "prod"), entries: []Entry{
			mk(1, `{"level":"warn","msg":"slow","resp":{"code":200,"ms":120}}`),
			mk(4, `{"level":"error","msg":"boom","resp":{"code":503,"ms":5}}`),
			mk(5, `not json at all`),
		}},
		{lbs: labels.FromStrings("app", "lb"), entries: []Entry{
			mk(2, `10.0.0.1 - - "GET /index.html" 200`),
			mk(3, `10.0.0.2 - - "POST /api" 404`),
		}},
	}}
}

func runLogs(t *testing.T, q string, categorize bool) []Stream {
	t.Helper()
	sel, err := ParseLogSelector(q)
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	res, err := (&Engine{}).SelectLogs(context.Background(), testData(), LogQuery{Expr: sel, Start: t0, End: t0 + int64(time.Hour), Limit: 100, Direction: Forward, Categorize: categorize}, &st)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func flatten(res []Stream) []string {
	var out []string
	for _, s := range res {
		for _, e := range s.Entries {
			out = append(out, s.Labels.String()+" "+e.Line)
		}
	}
	sort.Strings(out)
	return out
}

func TestLogQueries(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{`{app="api"} |= "error"`, []string{`{app="api", env="prod", trace_id="t2"} level=error msg="request failed" status=500 duration=1.5s size=2KB`}},
		{`{app="lb"} != "404"`, []string{`{app="lb"} 10.0.0.1 - - "GET /index.html" 200`}},
		{`{app="lb"} |~ "POST|PUT"`, []string{`{app="lb"} 10.0.0.2 - - "POST /api" 404`}},
		{`{app="lb"} |= "GET" or "POST" !~ "404$"`, []string{`{app="lb"} 10.0.0.1 - - "GET /index.html" 200`}},
		{`{app="lb"} |> "<_> - - \"POST <_>\" <_>"`, []string{`{app="lb"} 10.0.0.2 - - "POST /api" 404`}},
		{`{app="lb"} !> "<_> 404"`, []string{`{app="lb"} 10.0.0.1 - - "GET /index.html" 200`}},
		{`{app="api"} | logfmt | duration > 20ms | line_format "{{.status}}"`, []string{
			`{app="api", duration="1.5s", env="prod", level="error", msg="request failed", size="2KB", status="500", trace_id="t2"} 500`,
			`{app="api", duration="30ms", env="prod", level="info", msg="request done", size="512B", status="200", trace_id="t1"} 200`,
		}},
		{`{app="api"} | logfmt | size >= 1KB and status == 200 | keep app, status`, []string{`{app="api", status="200"} level=info msg="request done" status=200 duration=15ms size=1KB`}},
		{`{app="web"} | json | __error__="" | resp_code >= 500 | line_format "{{.level | ToUpper}} {{.msg}}"`, []string{`{app="web", env="prod", level="error", msg="boom", resp_code="503", resp_ms="5"} ERROR boom`}},
		{`{app="web"} | json | __error__!="" | drop __error_details__`, []string{`{__error__="JSONParserErr", app="web", env="prod"} not json at all`}},
		{`{app="web"} | json code="resp.code" | code="200" | keep code`, []string{`{code="200"} {"level":"warn","msg":"slow","resp":{"code":200,"ms":120}}`}},
		{"{app=\"lb\"} | pattern `<ip> - - \"<method> <path>\" <status>` | method=\"POST\" | keep path, status", []string{`{path="/api", status="404"} 10.0.0.2 - - "POST /api" 404`}},
		{`{app="lb"} | regexp "(?P<ip>\\S+) .*(?P<code>\\d{3})$" | code="200" | keep ip`, []string{`{ip="10.0.0.1"} 10.0.0.1 - - "GET /index.html" 200`}},
		{`{env="prod"} | trace_id="t1" | label_format svc=app | keep svc, span_id`, []string{
			`{span_id="s1", svc="api"} level=info msg="request done" status=200 duration=15ms size=1KB`,
			`{svc="api"} level=info msg="request done" status=200 duration=30ms size=512B`,
		}},
		{`{app="web"} | json | level=~"warn|error" or msg="x" | line_format "{{ __line__ | len }}"`, []string{
			`{app="web", env="prod", level="error", msg="boom", resp_code="503", resp_ms="5"} 57`,
			`{app="web", env="prod", level="warn", msg="slow", resp_code="200", resp_ms="120"} 58`,
		}},
	} {
		t.Run(tc.q, func(t *testing.T) {
			got := flatten(runLogs(t, tc.q, false))
			want := append([]string(nil), tc.want...)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestCategorized(t *testing.T) {
	res := runLogs(t, `{app="api"} | logfmt | level="error"`, true)
	if len(res) != 1 || res[0].Labels.String() != `{app="api", env="prod"}` {
		t.Fatalf("streams = %v", res)
	}
	e := res[0].Entries[0]
	if e.Metadata.Get("trace_id") != "t2" || e.Parsed.Get("level") != "error" || e.Parsed.Has("trace_id") {
		t.Fatalf("entry = %+v", e)
	}
}

func TestTraceIDHint(t *testing.T) {
	for q, want := range map[string]string{
		`{a="b"} | trace_id="x"`:                  "x",
		`{a="b"} |= "y" | trace_id="x" | json`:    "x",
		`{a="b"} | json | trace_id="x"`:           "",
		`{a="b"} | trace_id=~"x"`:                 "",
		`{a="b"} | trace_id="x" or span_id="y"`:   "",
		`{a="b"} | level="error", trace_id="abc"`: "abc",
	} {
		sel, err := ParseLogSelector(q)
		if err != nil {
			t.Fatal(err)
		}
		if got := TraceIDHint(sel); got != want {
			t.Errorf("TraceIDHint(%s) = %q, want %q", q, got, want)
		}
	}
}

func TestMetricQueries(t *testing.T) {
	sec := int64(time.Second)
	for _, tc := range []struct {
		q      string
		at     int64
		want   string
		scalar bool
	}{
		{`vector(1)+vector(1)`, 0, `{} 2`, false},
		{`1+1`, 0, `{} 2`, true},
		{`count_over_time({app="api"}[10s])`, 10, `{app="api", env="prod", span_id="s1", trace_id="t1"} 1; {app="api", env="prod", trace_id="t1"} 1; {app="api", env="prod", trace_id="t2"} 1`, false},
		{`sum(count_over_time({env="prod"}[10s]))`, 10, `{} 6`, false},
		{`sum by (app) (count_over_time({env="prod"}[10s]))`, 10, `{app="api"} 3; {app="web"} 3`, false},
		{`sum by (app) (count_over_time({env="prod"}[2s]))`, 3, `{app="api"} 2`, false},
		{`sum by (app) (rate({env="prod"}[10s]))`, 10, `{app="api"} 0.3; {app="web"} 0.3`, false},
		{`sum(bytes_over_time({app="lb"}[10s]))`, 10, `{} 62`, false},
		{`max_over_time({app="api"} | logfmt | unwrap duration(duration) [10s]) by (app)`, 10, `{app="api"} 1.5`, false},
		{`sum by (level) (sum_over_time({app="api"} | logfmt | unwrap bytes(size) [10s]))`, 10, `{level="error"} 2000; {level="info"} 1512`, false},
		{`quantile_over_time(0.5, {app="api"} | logfmt | unwrap status [10s]) by (app)`, 10, `{app="api"} 200`, false},
		{`topk(1, sum by (app) (count_over_time({app=~".+"}[10s])))`, 10, `{app="api"} 3`, false},
		{`sum by (app) (count_over_time({app=~".+"}[10s])) > 2`, 10, `{app="api"} 3; {app="web"} 3`, false},
		{`sum by (app) (count_over_time({app=~".+"}[10s])) * 2 - 1`, 10, `{app="api"} 5; {app="lb"} 3; {app="web"} 5`, false},
		{`count(sum by (app) (count_over_time({app=~".+"}[10s])))`, 10, `{} 3`, false},
		{`sum(count_over_time({app="none"}[10s])) or vector(0)`, 10, `{} 0`, false},
		{`sum by (app) (count_over_time({app="api"}[10s])) / sum by (app) (count_over_time({app=~"api|web"}[10s]))`, 10, `{app="api"} 1`, false},
		{`count_over_time({app="api"}[10s] offset 8s)`, 10, `{app="api", env="prod", span_id="s1", trace_id="t1"} 1; {app="api", env="prod", trace_id="t2"} 1`, false},
	} {
		t.Run(tc.q, func(t *testing.T) {
			e, err := ParseSampleExpr(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var st Stats
			at := t0 + tc.at*sec
			res, scalar, err := (&Engine{}).EvalRange(context.Background(), testData(), e, at, at, 0, &st)
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, s := range res {
				parts = append(parts, s.Labels.String()+" "+formatFloat(s.Points[0].V))
			}
			if got := strings.Join(parts, "; "); got != tc.want || scalar != tc.scalar {
				t.Fatalf("got %q (scalar %v), want %q (scalar %v)", got, scalar, tc.want, tc.scalar)
			}
		})
	}
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

func TestRangeQuerySteps(t *testing.T) {
	e, _ := ParseSampleExpr(`sum(count_over_time({env="prod"}[1s]))`)
	var st Stats
	sec := int64(time.Second)
	res, _, err := (&Engine{}).EvalRange(context.Background(), testData(), e, t0+sec, t0+5*sec, sec, &st)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res[0].Points {
		got = append(got, sprintf(float64((p.T-t0)/sec))+"="+sprintf(p.V))
	}
	if s := strings.Join(got, " "); s != "1=2 2=1 3=1 4=1 5=1" {
		t.Fatalf("points %s", s)
	}
	if _, _, err := (&Engine{}).EvalRange(context.Background(), testData(), e, t0, t0+int64(time.Hour)*24, sec, &st); err == nil {
		t.Fatal("want resolution limit error")
	}
}

func FuzzParseExpr(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/queries/*.logql")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err == nil {
			f.Add(string(b))
		}
	}
	f.Add(`{app="a"} |= "x" | json | level="error" | line_format "{{.msg}}"`)
	f.Fuzz(func(t *testing.T, q string) {
		e, err := ParseExpr(q)
		if err != nil {
			return
		}
		_ = e.String()
		if sel, ok := e.(*LogSelectorExpr); ok {
			p := NewPipeline(sel.Stages)
			p.Process(1, q, labels.FromStrings("a", "b"), labels.EmptyLabels())
		}
	})
}

// TestDuplicateEntriesMerged: entries of one stream equal in timestamp and line are returned once, as Loki's
// merge of entry iterators does; this includes lines that become equal through line_format (Loki 3.7.6 answers
// {…} | json | line_format "{{.level}}" with one entry where two lines of the same nanosecond give the same text).
func TestDuplicateEntriesMerged(t *testing.T) {
	at := func(sec int, line string) Entry {
		return Entry{Timestamp: t0 + int64(sec)*int64(time.Second), Line: line}
	}
	q := &memQuerier{streams: []memStream{
		{lbs: labels.FromStrings("app", "dup"), entries: []Entry{at(1, "level=info a"), at(1, "level=info b"), at(1, "level=info a"), at(2, "level=info a")}},
		{lbs: labels.FromStrings("app", "other"), entries: []Entry{at(1, "level=info a")}},
	}}
	for _, c := range []struct {
		q     string
		limit int
		want  int
	}{
		{`{app="dup"}`, 100, 3},                          // the repeated (1s, "level=info a") once
		{`{app="dup"} | line_format "x"`, 100, 2},        // three lines of 1s become one
		{`{app=~"dup|other"} | line_format "x"`, 100, 3}, // other streams are not merged
		{`{app="dup"} | logfmt | line_format "{{.level}}"`, 100, 2},
		{`{app="dup"} | line_format "x"`, 1, 1},
	} {
		sel, err := ParseLogSelector(c.q)
		if err != nil {
			t.Fatal(err)
		}
		var st Stats
		res, err := (&Engine{}).SelectLogs(context.Background(), q, LogQuery{Expr: sel, Start: t0, End: t0 + int64(time.Hour), Limit: c.limit, Direction: Forward}, &st)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range res {
			n += len(s.Entries)
		}
		if n != c.want {
			t.Errorf("%s (limit %d): %d entries, want %d: %v", c.q, c.limit, n, c.want, flatten(res))
		}
	}
}
