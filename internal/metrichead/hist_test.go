package metrichead

import (
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
)

// histSample is one sample of any type, as text: the value, or the histogram with its counter-reset hint left
// out (where a chunk is cut decides the hint, and the two heads cut in different places).
type histSample struct {
	t int64
	s string
}

func collect(t *testing.T, q storage.Querier, ms ...*labels.Matcher) map[string][]histSample {
	t.Helper()
	out := map[string][]histSample{}
	ss := q.Select(context.Background(), true, nil, ms...)
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		var got []histSample
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				got = append(got, histSample{ts, fmt.Sprint(v)})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				h.CounterResetHint = histogram.UnknownCounterReset
				got = append(got, histSample{ts, "h" + h.String()})
			case chunkenc.ValFloatHistogram:
				ts, h := it.AtFloatHistogram(nil)
				h.CounterResetHint = histogram.UnknownCounterReset
				got = append(got, histSample{ts, "fh" + h.String()})
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = got
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameCollections(t *testing.T, what string, want, got map[string][]histSample) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d series, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			gi := map[int64]bool{}
			for _, x := range g {
				gi[x.t] = true
			}
			var missing []int64
			for _, x := range w {
				if !gi[x.t] {
					missing = append(missing, x.t/15000)
				}
			}
			t.Fatalf("%s: %s has %d samples, want %d; missing at steps %v", what, k, len(g), len(w), missing)
		}
		for i := range w {
			if w[i] != g[i] {
				t.Fatalf("%s: %s sample %d is %v, want %v", what, k, i, g[i], w[i])
			}
		}
	}
}

// TestHistogramsAnswerLikeTheTSDB appends integer, float, custom-bucket and gauge histograms, counter resets
// and a series that changes type, through a logged head and Prometheus' DB; reads, a block written from the
// head and a replay of its log all answer as the DB does.
func TestHistogramsAnswerLikeTheTSDB(t *testing.T) {
	o := DefaultOptions()
	o.ChunkRange = 3_600_000
	dir := filepath.Join(t.TempDir(), "wal")
	h, _, err := Open(dir, o, WALOptions{}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := tsdb.DefaultOptions()
	opts.IsolationDisabled = true
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	type gen func(i int) (*histogram.Histogram, *histogram.FloatHistogram, float64)
	kinds := map[string]gen{
		"int": func(i int) (*histogram.Histogram, *histogram.FloatHistogram, float64) {
			return tsdbutil.GenerateTestHistogram(int64(i % 700)), nil, 0 // a counter reset every 700 samples
		},
		"float": func(i int) (*histogram.Histogram, *histogram.FloatHistogram, float64) {
			return nil, tsdbutil.GenerateTestFloatHistogram(int64(i)), 0
		},
		"custom": func(i int) (*histogram.Histogram, *histogram.FloatHistogram, float64) {
			return tsdbutil.GenerateTestCustomBucketsHistogram(int64(i)), nil, 0
		},
		"gauge": func(i int) (*histogram.Histogram, *histogram.FloatHistogram, float64) {
			return tsdbutil.GenerateTestGaugeHistogram(int64(i % 13)), nil, 0
		},
		"mixed": func(i int) (*histogram.Histogram, *histogram.FloatHistogram, float64) {
			switch (i / 100) % 3 {
			case 0:
				return nil, nil, float64(i)
			case 1:
				return tsdbutil.GenerateTestHistogram(int64(i)), nil, 0
			}
			return nil, tsdbutil.GenerateTestFloatHistogram(int64(i)), 0
		},
	}
	const n = 1500
	names := slices.Sorted(maps.Keys(kinds))
	refs := map[string]uint32{}
	app, rapp := h.Appender(), db.Appender(context.Background())
	for i := range n { // in time order across series: Prometheus' head refuses samples far behind its newest
		ts := int64(i) * 15000
		for _, k := range names {
			lset := labels.FromStrings("__name__", "h_"+k)
			hv, fh, v := kinds[k](i)
			var ref uint32
			if hv == nil && fh == nil {
				ref, err = app.Append(refs[k], lset, ts, v)
				if err == nil {
					_, err = rapp.Append(0, lset, ts, v)
				}
			} else {
				ref, err = app.AppendHistogram(refs[k], lset, ts, hv, fh)
				if err == nil {
					_, err = rapp.AppendHistogram(0, lset, ts, hv, fh)
				}
			}
			if err != nil {
				t.Fatalf("%s sample %d: %v", k, i, err)
			}
			refs[k] = ref
		}
		if i%97 == 0 || i == n-1 {
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := rapp.Commit(); err != nil {
				t.Fatal(err)
			}
			app, rapp = h.Appender(), db.Appender(context.Background())
		}
	}
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", "h_.+")
	end := int64(n-1) * 15000
	for _, rng := range [][2]int64{{math.MinInt64, math.MaxInt64}, {100_000, end / 2}, {end - 60_000, end}} {
		q, err := h.Querier(rng[0], rng[1])
		if err != nil {
			t.Fatal(err)
		}
		rq, err := db.Querier(rng[0], rng[1])
		if err != nil {
			t.Fatal(err)
		}
		want, got := collect(t, rq, all), collect(t, q, all)
		q.Close()
		rq.Close()
		if len(want) != len(kinds) {
			t.Fatalf("the reference has %d series", len(want))
		}
		sameCollections(t, fmt.Sprintf("head %v", rng), want, got)
	}
	rq, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	want := collect(t, rq, all)
	rq.Close()

	// A block from the head.
	bdir := t.TempDir()
	comp, err := tsdb.NewLeveledCompactor(context.Background(), nil, nil, []int64{o.ChunkRange}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := comp.Write(bdir, h.Range(0, end), 0, end+1, nil)
	if err != nil || len(ids) != 1 {
		t.Fatalf("write block: %v %v", ids, err)
	}
	b, err := tsdb.OpenBlock(nil, filepath.Join(bdir, ids[0].String()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bq, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	sameCollections(t, "block", want, collect(t, bq, all))
	bq.Close()

	// The log, replayed.
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h2, st, err := Open(dir, o, WALOptions{}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if st.Samples != n*len(kinds) || st.Invalid+st.UnknownRefs > 0 {
		t.Fatalf("replay: %+v, want %d samples", st, n*len(kinds))
	}
	q2, err := h2.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	sameCollections(t, "replayed", want, collect(t, q2, all))
	q2.Close()

	// A checkpoint of the whole head (as after replaying foreign refs), replayed.
	_, last, err := wlog.Segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.checkpointAll(dir, last-1, compression.None); err != nil {
		t.Fatal(err)
	}
	h2.Close()
	h3, st, err := Open(dir, o, WALOptions{}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h3.Close()
	if st.Samples != n*len(kinds) || st.Invalid+st.UnknownRefs > 0 {
		t.Fatalf("replay of the checkpoint: %+v, want %d samples", st, n*len(kinds))
	}
	q3, err := h3.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	sameCollections(t, "replayed checkpoint", want, collect(t, q3, all))
	q3.Close()
}

func TestHistogramRefusals(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	app := h.Appender()
	lset := labels.FromStrings("__name__", "x")
	ref, err := app.AppendHistogram(0, lset, 1000, tsdbutil.GenerateTestHistogram(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	bad := tsdbutil.GenerateTestHistogram(1)
	bad.Count = 0 // fewer than its buckets hold
	for i, c := range []struct {
		t    int64
		h    *histogram.Histogram
		fh   *histogram.FloatHistogram
		v    float64
		want string
	}{
		{1000, tsdbutil.GenerateTestHistogram(1), nil, 0, ""}, // the same again
		{1000, tsdbutil.GenerateTestHistogram(2), nil, 0, "duplicate sample"},
		{500, tsdbutil.GenerateTestHistogram(2), nil, 0, "out of order"},
		{2000, bad, nil, 0, "count"},
		{2000, nil, nil, 5, ""},
		{2000, tsdbutil.GenerateTestHistogram(3), nil, 0, "duplicate sample"}, // a float holds 2000
		{1500, nil, nil, 5, "out of order"},
	} {
		var err error
		if c.h == nil && c.fh == nil {
			_, err = app.Append(ref, lset, c.t, c.v)
		} else {
			_, err = app.AppendHistogram(ref, lset, c.t, c.h, c.fh)
		}
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Fatalf("case %d: %v, want %q", i, err, c.want)
		}
		if err == nil {
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
