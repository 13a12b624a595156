package logql

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestSlidingQuantile compares the sliding window's quantiles with a copy-and-sort of each window, over
// windows that overlap, jump past each other and stand still, with ties and NaN.
func TestSlidingQuantile(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rnd.Intn(60)
		pts := make([]Point, n)
		for i := range pts {
			switch rnd.Intn(10) {
			case 0:
				pts[i].V = math.NaN()
			case 1, 2:
				pts[i].V = float64(rnd.Intn(3)) // ties
			default:
				pts[i].V = rnd.NormFloat64() * 100
			}
		}
		sq := newSlidingQuantile(pts)
		from, to := 0, 0
		for step := 0; step < 40 && to <= n; step++ {
			to = min(n, to+rnd.Intn(6))
			from = min(to, from+rnd.Intn(6))
			sq.moveTo(from, to)
			vals := make([]float64, 0, to-from)
			for _, p := range pts[from:to] {
				vals = append(vals, p.V)
			}
			for _, q := range []float64{0, 0.25, 0.5, 0.9, 0.99, 1, -1, 2} {
				want := quantile(q, append([]float64(nil), vals...))
				got := sq.quantile(q)
				if !(got == want || math.IsNaN(got) && math.IsNaN(want)) {
					t.Fatalf("trial %d step %d window [%d,%d) q=%g: got %v, want %v (values %v)", trial, step, from, to, q, got, want, vals)
				}
			}
		}
	}
}

// manyLines is a querier of one stream with a line every second over the given number of seconds.
type manyLines struct {
	n     int
	reads atomic.Int64
}

func (m *manyLines) SelectLogs(ctx context.Context, p SelectParams, fn func(labels.Labels, Entry) error) error {
	lbs := labels.FromStrings("app", "a")
	for i := 0; i < m.n; i++ {
		ts := t0 + int64(i)*int64(time.Second)
		if ts < p.Start || ts >= p.End {
			continue
		}
		m.reads.Add(1)
		if err := fn(lbs, Entry{Timestamp: ts, Line: fmt.Sprintf("v=%d", i%97)}); err != nil {
			return err
		}
	}
	return nil
}

// cancelAfter is a context whose Err turns to Canceled after it has been asked n times: a cancellation at a
// known point of the evaluation, without timing.
type cancelAfter struct {
	context.Context
	n atomic.Int64
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestEvalRangeStopsWhenCancelled(t *testing.T) {
	expr, err := ParseSampleExpr(`quantile_over_time(0.9, {app="a"} | logfmt | unwrap v [1h])`)
	if err != nil {
		t.Fatal(err)
	}
	sec := int64(time.Second)
	for _, tc := range []struct {
		name  string
		after int64 // Err calls that still answer nil
	}{
		{"before evaluation", 0},
		{"while reading lines", 1},
		{"at a step", 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &manyLines{n: 20000}
			ctx := &cancelAfter{Context: context.Background()}
			ctx.n.Store(tc.after)
			var st Stats
			_, _, err := (&Engine{}).EvalRange(ctx, q, expr, t0, t0+10000*sec, sec, &st)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if tc.after == 1 && q.reads.Load() > checkEvery+1 {
				t.Errorf("read %d lines after the context was cancelled, want at most %d", q.reads.Load(), checkEvery+1)
			}
		})
	}
}

func TestEvalRangeBytesRead(t *testing.T) {
	expr, _ := ParseSampleExpr(`count_over_time({app="a"}[1m])`)
	q := &manyLines{n: 5000}
	var st Stats
	sec := int64(time.Second)
	_, _, err := (&Engine{Limits: Limits{MaxBytesRead: 1000}}).EvalRange(context.Background(), q, expr, t0, t0+4000*sec, 60*sec, &st)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "max_query_bytes_read") {
		t.Fatalf("err = %v, want the max_query_bytes_read limit", err)
	}
	if q.reads.Load() > 300 {
		t.Errorf("read %d lines, want the scan stopped at the limit", q.reads.Load())
	}
}

// TestEvalRangeSamples: a metric query over values holds one sample per matching line until it is evaluated;
// past max_fetched_samples (counted over every range aggregation of the query) it stops, and under it the
// answer is the same as without a limit. Counting queries fold the lines between two window bounds into one
// sample: 3,000 lines over 67 one-minute steps hold about 50.
func TestEvalRangeSamples(t *testing.T) {
	sec := int64(time.Second)
	const maxV = `max_over_time({app="a"} | logfmt | unwrap v [1m])`
	for _, tc := range []struct {
		query string
		limit int64
		fail  bool
	}{
		{maxV, 2999, true},
		{maxV, 3000, false},
		{maxV + ` / ` + maxV, 5999, true},
		{maxV + ` / ` + maxV, 6000, false},
		{maxV, 0, false},
		{`count_over_time({app="a"}[1m])`, 10, true},
		{`count_over_time({app="a"}[1m])`, 100, false},
		{`sum(bytes_rate({app="a"}[1m])) / sum(rate({app="a"}[1m]))`, 200, false},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.query, tc.limit), func(t *testing.T) {
			expr, err := ParseSampleExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var st Stats
			_, _, err = (&Engine{Limits: Limits{MaxSamples: tc.limit}}).EvalRange(context.Background(), &manyLines{n: 3000}, expr, t0, t0+4000*sec, 60*sec, &st)
			if tc.fail != (err != nil) {
				t.Fatalf("err = %v, want failure %v", err, tc.fail)
			}
			if tc.fail && (!errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "max_fetched_samples")) {
				t.Fatalf("err = %v, want the max_fetched_samples limit", err)
			}
		})
	}
}

// BenchmarkQuantileOverTimeSteps is the review's query shape: quantile_over_time over a wide window at 11,000
// steps. Before the sliding window each step copied and sorted its window.
func BenchmarkQuantileOverTimeSteps(b *testing.B) {
	expr, _ := ParseSampleExpr(`quantile_over_time(0.99, {app="a"} | logfmt | unwrap v [4h])`)
	q := &manyLines{n: 50000}
	sec := int64(time.Second)
	for i := 0; i < b.N; i++ {
		var st Stats
		if _, _, err := (&Engine{}).EvalRange(context.Background(), q, expr, t0, t0+10999*4*sec, 4*sec, &st); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFoldedCountsExact: counting queries fold lines between window bounds; their answers must be the counts a
// brute force over every line gives, for windows longer and shorter than the step, with an offset, and for the
// byte and rate forms.
func TestFoldedCountsExact(t *testing.T) {
	sec := int64(time.Second)
	const n = 3000 // manyLines: line i at t0+i s, "v=<i%97>"
	lineLen := func(i int) float64 { return float64(len(fmt.Sprintf("v=%d", i%97))) }
	for _, tc := range []struct {
		query      string
		rng, off   int64 // seconds
		step       int64
		bytes      bool
		perSeconds bool
	}{
		{`count_over_time({app="a"}[90s])`, 90, 0, 60, false, false},
		{`count_over_time({app="a"}[20s])`, 20, 0, 60, false, false},
		{`count_over_time({app="a"}[5m] offset 7s)`, 300, 7, 45, false, false},
		{`bytes_over_time({app="a"}[2m])`, 120, 0, 25, true, false},
		{`rate({app="a"}[1m])`, 60, 0, 33, false, true},
		{`bytes_rate({app="a"}[45s])`, 45, 0, 10, true, true},
	} {
		t.Run(tc.query, func(t *testing.T) {
			expr, err := ParseSampleExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var st Stats
			start, end := t0+100*sec, t0+3200*sec
			res, _, err := (&Engine{}).EvalRange(context.Background(), &manyLines{n: n}, expr, start, end, tc.step*sec, &st)
			if err != nil {
				t.Fatal(err)
			}
			got := map[int64]float64{}
			for _, s := range res {
				for _, p := range s.Points {
					got[p.T] = p.V
				}
			}
			for ts := start; ts <= end; ts += tc.step * sec {
				hi := ts - tc.off*sec
				lo := hi - tc.rng*sec
				var want float64
				for i := 0; i < n; i++ {
					if x := t0 + int64(i)*sec; x > lo && x <= hi {
						if tc.bytes {
							want += lineLen(i)
						} else {
							want++
						}
					}
				}
				if tc.perSeconds {
					want /= float64(tc.rng)
				}
				if g, ok := got[ts]; want == 0 && ok || want != 0 && g != want {
					t.Fatalf("at %d s: got %v (present %v), want %v", (ts-t0)/sec, g, ok, want)
				}
			}
		})
	}
}
