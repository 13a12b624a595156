package querylimit

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestPromQLSubqueries(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name       string
		q          string
		start, end time.Time
		want       []int64 // points per subquery, outermost first
		wantSpans  []time.Duration
	}{
		{"no subquery", `rate(x[5m])`, t0, t0, nil, nil},
		{"instant", `max_over_time(x[1h:1m])`, t0, t0, []int64{61}, []time.Duration{time.Hour}},
		{"default step", `max_over_time(x[1h:])`, t0, t0, []int64{61}, nil},
		{"range query adds its span", `max_over_time(x[1h:1m])`, t0, t0.Add(time.Hour), []int64{121}, []time.Duration{2 * time.Hour}},
		{"nested: the inner spans the outer's range too", `max_over_time(rate(x[5m])[1d:1h])`, t0, t0, []int64{25}, nil},
		{"nested subqueries", `max_over_time(avg_over_time(x[1h:1s])[1d:1h])`, t0, t0, []int64{25, 25*3600 + 1}, []time.Duration{24 * time.Hour, 25 * time.Hour}},
		{"offset moves, does not widen", `max_over_time(x[1h:1m] offset 1d)`, t0, t0, []int64{61}, nil},
		{"negative offset", `max_over_time(x[1h:1m] offset -1h)`, t0, t0, []int64{61}, nil},
		{"@ pins the subquery", `max_over_time(x[1h:1m] @ 1700000000)`, t0, t0.Add(24 * time.Hour), []int64{61}, nil},
		{"@ end() pins too", `max_over_time(x[1h:1m] @ end())`, t0, t0.Add(24 * time.Hour), []int64{61}, nil},
		{"@ on the outer pins the inner's parent", `max_over_time(avg_over_time(x[1h:1m])[1h:1h] @ 100)`, t0, t0.Add(24 * time.Hour), []int64{2, 121}, nil},
		{"both sides of a binary expression", `max_over_time(x[1h:1m]) + min_over_time(y[2h:1m])`, t0, t0, []int64{61, 121}, nil},
		{"inside a function argument", `label_replace(max_over_time(x[10m:1s]), "a", "b", "c", "d")`, t0, t0, []int64{601}, nil},
		{"the review's attack", `sum_over_time(vector(1)[30d:1ms])`, t0, t0, []int64{30*24*3600*1000 + 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := promqlParser.ParseExpr(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			got := PromQLSubqueries(expr, tc.start, tc.end, 0)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d subqueries %+v, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if got[i].Points != tc.want[i] {
					t.Errorf("subquery %d (%s): %d points, want %d", i, got[i].Expr, got[i].Points, tc.want[i])
				}
				if tc.wantSpans != nil && got[i].Span != tc.wantSpans[i] {
					t.Errorf("subquery %d: span %s, want %s", i, got[i].Span, tc.wantSpans[i])
				}
			}
		})
	}
}

func TestPromQLBudgetCheck(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := PromQLBudget{}
	for _, tc := range []struct {
		name       string
		q          string
		start, end time.Time
		step       time.Duration
		limit      string // "" passes
	}{
		{"small", `rate(x[5m])`, t0, t0, 0, ""},
		{"a month at 1m", `max_over_time(x[30d:1m])`, t0, t0, 0, ""},
		{"30d at 1ms", `sum_over_time(vector(1)[30d:1ms])`, t0, t0, 0, "max_subquery_points_per_series"},
		{"1d at 1ms", `sum_over_time(vector(1)[1d:1ms])`, t0, t0, 0, "max_subquery_points_per_series"},
		{"range of 11000 steps", `x`, t0, t0.Add(11000 * time.Second), time.Second, ""},
		{"range of 11001 steps", `x`, t0, t0.Add(11001 * time.Second), time.Second, "max_points_per_series"},
		{"subquery fine alone, too long across the range", `max_over_time(x[1h:1s])`, t0, t0.Add(30 * time.Hour), time.Hour, "max_subquery_points_per_series"},
		{"huge range saturates, does not wrap", `max_over_time(x[1h:1m])`, time.Unix(-1e12, 0), time.Unix(1e12, 0), 1 << 62, "max_subquery_points_per_series"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.CheckString(tc.q, tc.start, tc.end, tc.step)
			if tc.limit == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *PointsError
			if !errors.As(err, &pe) || pe.Limit != tc.limit || !strings.Contains(err.Error(), tc.limit) {
				t.Fatalf("err = %v, want a PointsError naming %s", err, tc.limit)
			}
		})
	}
	// A step below the engine's millisecond would divide by zero inside it.
	sq := &parser.SubqueryExpr{Expr: &parser.NumberLiteral{Val: 1}, Range: time.Minute, Step: time.Microsecond}
	if err := b.Check(sq, t0, t0, 0); err == nil || !strings.Contains(err.Error(), "1ms") {
		t.Fatalf("sub-millisecond step: err = %v", err)
	}
	if err := (PromQLBudget{MaxSubqueryPoints: 60}).CheckString(`max_over_time(x[1h:1m])`, t0, t0, 0); err == nil {
		t.Fatal("a configured budget of 60 points let 61 through")
	}
}

func FuzzPromQLBudget(f *testing.F) {
	for _, s := range []string{`max_over_time(x[1h:1m])`, `sum_over_time(vector(1)[30d:1ms])`,
		`max_over_time(avg_over_time(x[1h:1s])[1d:1h] @ 100 offset -5m)`, `rate(x[5m]) + on(a) group_left y`} {
		f.Add(s, int64(0), int64(3600))
	}
	f.Fuzz(func(t *testing.T, q string, start, span int64) {
		s := time.Unix(start%1e11, 0)
		e := s.Add(time.Duration(span%1e6) * time.Second)
		_ = PromQLBudget{}.CheckString(q, s, e, time.Minute)
	})
}
