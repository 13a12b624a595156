package tracestore

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestMetricsExemplars(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	// traces 1..3 start at baseTime+1s..+3s: a root of 300ms, step-1 (+10ms, 50ms), step-2 (+20ms, 100ms)
	if err := s.Push(context.Background(), tn, batch(1, 3, 3)); err != nil {
		t.Fatal(err)
	}
	ms := func(d time.Duration) int64 { return baseTime.Add(d).UnixMilli() }
	id := func(n int) string { return traceIDHex(tid(n)) }
	roots := func(v float64) []Exemplar {
		return []Exemplar{{id(1), ms(time.Second), v}, {id(2), ms(2 * time.Second), v}, {id(3), ms(3 * time.Second), v}}
	}
	cases := []struct {
		q    string
		n    int
		want [][]Exemplar // per series
	}{
		{`{ name = "GET /checkout" } | count_over_time()`, 100, [][]Exemplar{roots(3)}},
		{`{ name = "GET /checkout" } | rate()`, 100, [][]Exemplar{roots(0.3)}},
		{`{ name = "GET /checkout" } | max_over_time(duration)`, 100, [][]Exemplar{roots(0.3)}},
		{`{ name = "GET /checkout" } | sum_over_time(duration)`, 100, [][]Exemplar{roots(0.3)}},
		{`{ name = "GET /checkout" } | count_over_time()`, 0, [][]Exemplar{nil}},
		{`{ trace:id = "` + tid(1).String() + `" } | quantile_over_time(duration, .5, .99)`, 100, [][]Exemplar{
			// 0.05 is closest to p50 (0.1), 0.3 to p99 (0.296); the third span (0.1 at +20ms) is the third in
			// the same 200ms slice (100 exemplars: 50 slices of 10s/50, two each), so it is not kept
			{{id(1), ms(time.Second + 10*time.Millisecond), 0.05}},
			{{id(1), ms(time.Second), 0.3}},
		}},
		// one slice allowance per series: backend keeps both of its spans
		{`{ trace:id = "` + tid(2).String() + `" } | min_over_time(duration) by (resource.service.name)`, 100, [][]Exemplar{
			{{id(2), ms(2*time.Second + 10*time.Millisecond), 0.05}, {id(2), ms(2*time.Second + 20*time.Millisecond), 0.1}},
			{{id(2), ms(2 * time.Second), 0.3}},
		}},
	}
	for _, c := range cases {
		res, err := s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, c.q),
			Start: baseTime, End: baseTime.Add(10 * time.Second), Step: 10 * time.Second, Exemplars: c.n})
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		var got [][]Exemplar
		for _, ser := range res.Series {
			got = append(got, ser.Exemplars)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d series, want %d", c.q, len(got), len(c.want))
		}
		for i := range got {
			if len(got[i]) == 0 && len(c.want[i]) == 0 {
				continue
			}
			if !reflect.DeepEqual(got[i], c.want[i]) {
				t.Errorf("%s: series %d exemplars\n got %v\nwant %v", c.q, i, got[i], c.want[i])
			}
		}
	}
}

func TestMetricsExemplarsSpread(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	// eight one-span traces at baseTime+1s..+8s
	if err := s.Push(context.Background(), tn, batch(1, 8, 1)); err != nil {
		t.Fatal(err)
	}
	res, err := s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, `{ } | count_over_time()`),
		Start: baseTime, End: baseTime.Add(10 * time.Second), Step: time.Second, Exemplars: 4})
	if err != nil {
		t.Fatal(err)
	}
	ex := res.Series[0].Exemplars
	if len(ex) != 4 {
		t.Fatalf("%d exemplars, want 4: %v", len(ex), ex)
	}
	// two slices of 5s, two in each, the earliest: traces 1, 2 and 5, 6
	want := []Exemplar{{traceIDHex(tid(1)), baseTime.Add(time.Second).UnixMilli(), 1}, {traceIDHex(tid(2)), baseTime.Add(2 * time.Second).UnixMilli(), 1},
		{traceIDHex(tid(5)), baseTime.Add(5 * time.Second).UnixMilli(), 1}, {traceIDHex(tid(6)), baseTime.Add(6 * time.Second).UnixMilli(), 1}}
	if !reflect.DeepEqual(ex, want) {
		t.Errorf("exemplars\n got %v\nwant %v", ex, want)
	}
	half := baseTime.Add(5 * time.Second).UnixMilli()
	early := 0
	for i, e := range ex {
		if e.TimestampMs < half {
			early++
		}
		if e.Value != 1 {
			t.Errorf("exemplar %d value %v, want 1 (the step's count)", i, e.Value)
		}
		if i > 0 && e.TimestampMs < ex[i-1].TimestampMs {
			t.Errorf("exemplars not oldest first: %v", ex)
		}
	}
	if early != 2 {
		t.Errorf("%d exemplars in the first half, want 2: %v", early, ex)
	}
}

func TestParseExemplars(t *testing.T) {
	for in, want := range map[string]int{"": 100, "0": 100, "1": 1, "50": 50, "100": 100, "101": 100, "-3": 100,
		"abc": 100, "99999999999999999999": 100, "1.5": 100} {
		if got := ParseExemplars(in); got != want {
			t.Errorf("ParseExemplars(%q) = %d, want %d", in, got, want)
		}
	}
}

func FuzzParseExemplars(f *testing.F) {
	for _, s := range []string{"", "0", "7", "100", "4294967296", "-1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n := ParseExemplars(s); n < 1 || n > DefaultMaxExemplars {
			t.Fatalf("ParseExemplars(%q) = %d", s, n)
		}
	})
}

func TestExemplarSlots(t *testing.T) {
	ex := func(ts ...int64) []Exemplar {
		var out []Exemplar
		for _, x := range ts {
			out = append(out, Exemplar{TraceID: "t", TimestampMs: x})
		}
		return out
	}
	cases := []struct {
		n      int
		offers []int64
		want   []Exemplar
	}{
		{1, []int64{6, 5, 2000}, ex(5)},                                        // one slot of one; the earliest wins; out of range refused
		{3, []int64{9, 8, 7}, ex(7, 8)},                                        // one slice of two
		{6, []int64{2, 1, 0, 150, 299, 300, 301, -1}, ex(0, 1, 150, 299, 300)}, // three slices of 100ms
	}
	for _, c := range cases {
		e := newExemplarSlots(c.n, 0, 300)
		if c.n == 1 {
			e = newExemplarSlots(1, 0, 1000)
		}
		for _, ts := range c.offers {
			e.add(Exemplar{TraceID: "t", TimestampMs: ts})
		}
		if got := e.all(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("n=%d %v: kept %v, want %v", c.n, c.offers, got, c.want)
		}
	}
}

// A start and step finer than a millisecond must not put an exemplar outside the steps.
func TestMetricsExemplarsSubMillisecondStep(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	if err := s.Push(context.Background(), tn, batch(1, 1, 3)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`{ } | quantile_over_time(duration, .5)`, `{ } | rate()`} {
		start := baseTime.Add(time.Second - 700*time.Microsecond)
		_, err := s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, q),
			Start: start, End: start.Add(time.Second), Step: 100 * time.Microsecond, Exemplars: 100})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
