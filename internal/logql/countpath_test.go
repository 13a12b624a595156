package logql

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// countingQuerier is a Querier and Counter over fixed entries of one stream that records which way the engine
// read them.
type countingQuerier struct {
	stream       labels.Labels
	es           []Entry
	counted, sel bool
}

func (q *countingQuerier) SelectLogs(_ context.Context, p SelectParams, fn func(labels.Labels, Entry) error) error {
	q.sel = true
	for _, e := range q.es {
		if e.Timestamp >= p.Start && e.Timestamp < p.End {
			if err := fn(q.stream, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (q *countingQuerier) CountLogs(_ context.Context, p SelectParams, c CountParams,
	fn func(labels.Labels, []string, int, int64, int64) error) error {
	q.counted = true
	for _, e := range q.es {
		if e.Timestamp < p.Start || e.Timestamp >= p.End {
			continue
		}
		meta := make([]string, len(c.MetaNames))
		for i, n := range c.MetaNames {
			meta[i] = e.Metadata.Get(n)
		}
		k := 0
		for k < len(c.Bounds) && c.Bounds[k] < e.Timestamp {
			k++
		}
		if err := fn(q.stream, meta, k, 1, int64(len(e.Line))); err != nil {
			return err
		}
	}
	return nil
}

// TestCountPathForVolumeQueries: Grafana's log volume queries (Explore's ends in `| drop __error__`) take the
// counting path and answer as the entry path does; a drop of a label the grouping names does not.
func TestCountPathForVolumeQueries(t *testing.T) {
	const sec = int64(1e9)
	es := []Entry{
		{Timestamp: 10 * sec, Line: "a", Metadata: labels.FromStrings("detected_level", "info")},
		{Timestamp: 20 * sec, Line: "bb", Metadata: labels.FromStrings("detected_level", "error", "level", "error")},
		{Timestamp: 70 * sec, Line: "ccc", Metadata: labels.FromStrings("detected_level", "info")},
	}
	for _, tc := range []struct {
		query   string
		counted bool
	}{
		{`sum by (level, detected_level) (count_over_time({app="x"} | drop __error__[1m]))`, true},
		{`sum by (detected_level) (count_over_time({app="x"} [1m]))`, true},
		{`sum by (detected_level) (count_over_time({app="x"} | drop __error__, __error_details__ [1m]))`, true},
		{`sum by (level) (count_over_time({app="x"} | drop level [1m]))`, false},
		{`sum by (level) (count_over_time({app="x"} | drop level="error" [1m]))`, false},
		{`sum by (level) (count_over_time({app="x"} | keep level [1m]))`, false},
		{`sum by (level) (count_over_time({app="x"} | drop __error__ | level="error" [1m]))`, false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			expr, err := ParseSampleExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q := &countingQuerier{stream: labels.FromStrings("app", "x"), es: es}
			var st Stats
			got, _, err := (&Engine{}).EvalRange(context.Background(), q, expr, 60*sec, 120*sec, 60*sec, &st)
			if err != nil {
				t.Fatal(err)
			}
			if q.counted != tc.counted || q.sel == tc.counted {
				t.Fatalf("counted %v, selected %v; want counted %v", q.counted, q.sel, tc.counted)
			}
			ref := &countingQuerier{stream: q.stream, es: es}
			want, _, err := (&Engine{}).EvalRange(context.Background(), struct{ Querier }{ref}, expr, 60*sec, 120*sec, 60*sec, &st)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || len(got) == 0 {
				t.Fatalf("counted %v, line by line %v", got, want)
			}
		})
	}
}
