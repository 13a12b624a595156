package logql

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestMetricPipelineErrors pins behaviours found by the differential test against Loki (tests/diff): a
// metric query whose samples keep an __error__ label fails with a pipeline error (400), whether the samples
// are grouped while reading or not, unless __preserve_error__="true" is set; a range aggregation that needs no
// extracted label runs no parser, so no parse error fails it (Loki's parser hints; see hints.go); and unwrap of
// a label a line does not have gives no sample (not a zero, not an error).
func TestMetricPipelineErrors(t *testing.T) {
	for _, tc := range []struct {
		q, want string // want "pipeline error" for the refusal
	}{
		{`count_over_time({app="web"} | json [10s])`, "pipeline error"},
		{`sum(count_over_time({app="web"} | json [10s]))`, `{} 3`}, // needs no label: json does not run (parser hints)
		{`sum by (app) (rate({app="web"} | json [10s]))`, "pipeline error"},
		{`max(count_over_time({app="web"} | json [10s]))`, "pipeline error"},
		{`sum(count_over_time({app="web"} | json | __error__="" [10s]))`, `{} 2`},
		{`sum(count_over_time({app="web"} | json | __error__!="" | label_format __preserve_error__="true" [10s]))`, `{} 1`},
		{`sum by (app) (sum_over_time({app="web"} | json | unwrap resp_ms [10s]))`, `{app="web"} 125`},
		{`sum(sum_over_time({app="web"} | json | unwrap resp_ms [10s]))`, `{} 125`},
		{`sum_over_time({app="api"} | logfmt | unwrap nope [10s])`, ``},
		{`sum(sum_over_time({app="api"} | logfmt | keep app | unwrap status [10s]))`, ``},
		{`sum(sum_over_time({app="api"} | logfmt | unwrap msg [10s]))`, "pipeline error"},
		{`max_over_time({app="web"} | json | unwrap resp_ms [10s]) by (app)`, `{app="web"} 120`},
		{`max_over_time({app="web"} | json | unwrap msg [10s]) by (app)`, "pipeline error"},
		{`sum(count_over_time({app="web"} | json | keep app [10s]))`, `{} 3`},
		{`sum(count_over_time({app="web"} | json | label_format x=app [10s]))`, "pipeline error"},
		{`sum(count_over_time({app="web"} | json | line_format "{{.resp_ms}}" [10s]))`, `{} 3`}, // line_format dropped
		{`sum(bytes_over_time({app="web"} | json | line_format "{{.resp_ms}}" [10s]))`, "pipeline error"},
		{`sum(count_over_time({app="web"} | json | line_format "{{.resp_ms}}" | logfmt [10s]))`, "pipeline error"},
		{`absent_over_time({app="web"} | json | label_format x=level [10s])`, "pipeline error"},
		{`absent_over_time({app="web"} | json | level=~".*" [10s])`, ``}, // Loki: a filter that reads nothing
		{`sum(count_over_time({app="web"} | json | resp_ms=~"" [10s]))`, `{} 3`},
		{`sum(count_over_time({app="web"} | json | resp_ms=~".+" [10s]))`, `{} 2`}, // parsed; the failed line has no resp_ms
		{`sum(count_over_time({app="web"} | json | keep app | __error__="" [10s]))`, `{} 2`},
		{`absent_over_time({app="web"} | json [10s])`, ``},
		{`absent_over_time({app="web"} | json | level="nope" [10s])`, `{app="web"} 1`},
	} {
		t.Run(tc.q, func(t *testing.T) {
			e, err := ParseSampleExpr(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var st Stats
			at := t0 + 10*int64(time.Second)
			res, _, err := (&Engine{}).EvalRange(context.Background(), testData(), e, at, at, 0, &st)
			if tc.want == "pipeline error" {
				if !errors.Is(err, ErrPipeline) {
					t.Fatalf("got %v, %v; want a pipeline error", res, err)
				}
				if !strings.Contains(err.Error(), "for series: '{") {
					t.Fatalf("error text %q does not name the series", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, s := range res {
				parts = append(parts, s.Labels.String()+" "+formatFloat(s.Points[0].V))
			}
			if got := strings.Join(parts, "; "); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDivisionByZero: Loki's binary operators give NaN for x/0 and x%0, where PromQL gives ±Inf and NaN.
func TestDivisionByZero(t *testing.T) {
	for _, q := range []string{
		`sum(count_over_time({app="api"}[10s])) / 0`,
		`sum(count_over_time({app="api"}[10s])) % 0`,
		`sum(count_over_time({app="api"}[10s])) / (sum(count_over_time({app="api"}[10s])) - 3)`,
		`vector(1) / vector(0)`,
		`1 / 0`,
	} {
		t.Run(q, func(t *testing.T) {
			e, err := ParseSampleExpr(q)
			if err != nil {
				t.Fatal(err)
			}
			var st Stats
			at := t0 + 10*int64(time.Second)
			res, _, err := (&Engine{}).EvalRange(context.Background(), testData(), e, at, at, 0, &st)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || len(res[0].Points) != 1 || !math.IsNaN(res[0].Points[0].V) {
				t.Fatalf("got %v, want one NaN", res)
			}
		})
	}
}

// TestNumericFilterOnFailedLine: as Loki 3, a numeric label filter drops a line that lacks the label even when
// a parser failed on it (the failed line used to pass, and then failed metric queries as a pipeline error).
func TestNumericFilterOnFailedLine(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want int
	}{
		{`{app="web"} | json | resp_code > 100`, 2},
		{`{app="web"} | json | resp_code > 100 or level="warn"`, 2},
		{`{app="web"} | json | __error__!="" or resp_code > 500`, 2},
		{`{app="web"} | json | msg > 1`, 2}, // does not convert: kept, marked
	} {
		t.Run(tc.q, func(t *testing.T) {
			if got := flatten(runLogs(t, tc.q, false)); len(got) != tc.want {
				t.Fatalf("got %d lines %q, want %d", len(got), got, tc.want)
			}
		})
	}
}

// TestUnsupportedNamed: a valid LogQL construct that Sprout does not implement is refused with its name.
func TestUnsupportedNamed(t *testing.T) {
	for q, want := range map[string]string{
		`approx_topk(2, count_over_time({a="b"}[5m]))`: "approx_topk() is not supported by Sprout",
		`{a="b"} |= `: "expecting STRING",
	} {
		_, err := ParseExpr(q)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseExpr(%q) = %v, want %q", q, err, want)
		}
	}
	if _, err := ParseExpr(`{a="b"} |= `); strings.Contains(err.Error(), "Sprout") {
		t.Errorf("a plain syntax error names a construct: %v", err)
	}
}
