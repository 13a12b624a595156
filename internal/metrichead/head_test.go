package metrichead

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// fixture is a set of series and samples appended both to a head and to Prometheus' own TSDB, which is the
// independent answer every query is checked against.
type fixture struct {
	head *Head
	ref  *tsdb.DB
	mint int64
	maxt int64
}

func newFixture(t *testing.T, o Options, nSeries, nSamples int, seed uint64) *fixture {
	t.Helper()
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if o.ChunksDir != "" {
		h.chunks.a.pageSize = 4096 // many sealed pages from a small fixture
		t.Cleanup(func() { h.Close() })
	}
	opts := tsdb.DefaultOptions()
	opts.IsolationDisabled = true
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rng := rand.New(rand.NewPCG(seed, 7))
	f := &fixture{head: h, ref: db, mint: math.MaxInt64, maxt: math.MinInt64}
	app := db.Appender(context.Background())
	for i := range nSeries {
		lset := labels.FromStrings(
			"__name__", fmt.Sprintf("metric_%d", i%5),
			"job", []string{"api", "db", "cache"}[i%3],
			"instance", fmt.Sprintf("host-%d", i%17),
			"series", fmt.Sprint(i), // unique to each series
		)
		if i%4 == 0 {
			lset = labels.NewBuilder(lset).Set("zone", []string{"a", "b"}[i%2]).Labels()
		}
		ref, created, err := h.GetOrCreate(lset)
		if err != nil || !created {
			t.Fatalf("create %s: %v %v", lset, created, err)
		}
		ts := int64(rng.IntN(1000))
		v := rng.Float64() * 100
		for j := range nSamples {
			ts += 15000 + int64(rng.IntN(50))
			switch rng.IntN(10) {
			case 0:
				v = math.Float64frombits(0x7ff0000000000002) // a stale marker
			case 1:
			default:
				v += rng.Float64()
			}
			if math.IsNaN(v) && j%2 == 0 {
				v = 1
			}
			if err := h.Append(ref, ts, v); err != nil {
				t.Fatalf("append %s at %d: %v", lset, ts, err)
			}
			if _, err := app.Append(0, lset, ts, v); err != nil {
				t.Fatal(err)
			}
			f.mint, f.maxt = min(f.mint, ts), max(f.maxt, ts)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return f
}

type seriesSamples struct {
	lset    string
	samples []sample
}

func selectAll(t *testing.T, q storage.Querier, ms ...*labels.Matcher) []seriesSamples {
	t.Helper()
	var out []seriesSamples
	ss := q.Select(context.Background(), true, nil, ms...)
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		e := seriesSamples{lset: s.Labels().String()}
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			e.samples = append(e.samples, sample{ts, v})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSeries(t *testing.T, what string, want, got []seriesSamples) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d series, want %d", what, len(got), len(want))
	}
	for i := range want {
		if want[i].lset != got[i].lset {
			t.Fatalf("%s: series %d is %s, want %s", what, i, got[i].lset, want[i].lset)
		}
		if !sameSamples(want[i].samples, got[i].samples) {
			t.Fatalf("%s: %s has %d samples %v, want %d %v", what, want[i].lset, len(got[i].samples),
				got[i].samples, len(want[i].samples), want[i].samples)
		}
	}
}

var matcherSets = [][]*labels.Matcher{
	{labels.MustNewMatcher(labels.MatchEqual, "__name__", "metric_3")},
	{labels.MustNewMatcher(labels.MatchEqual, "job", "api"), labels.MustNewMatcher(labels.MatchRegexp, "instance", "host-1.*")},
	{labels.MustNewMatcher(labels.MatchNotEqual, "zone", "")},
	{labels.MustNewMatcher(labels.MatchEqual, "zone", ""), labels.MustNewMatcher(labels.MatchEqual, "__name__", "metric_0")},
	{labels.MustNewMatcher(labels.MatchRegexp, "series", "1.|2..")},
	{labels.MustNewMatcher(labels.MatchNotRegexp, "job", "api|db")},
	{labels.MustNewMatcher(labels.MatchEqual, "series", "7")},
	{labels.MustNewMatcher(labels.MatchEqual, "series", "no such")},
	{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")},
}

func (f *fixture) check(t *testing.T, mint, maxt int64) {
	t.Helper()
	q, err := f.head.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rq, err := f.ref.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	ctx := context.Background()
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("matchers %d in [%d, %d]", i, mint, maxt), selectAll(t, rq, ms...), selectAll(t, q, ms...))
		for _, name := range []string{"job", "zone", "series"} {
			want, _, err := rq.LabelValues(ctx, name, nil, ms...)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := q.LabelValues(ctx, name, nil, ms...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(want, got) && len(want)+len(got) > 0 {
				t.Fatalf("label values of %s for matchers %d: %v, want %v", name, i, got, want)
			}
		}
		want, _, err := rq.LabelNames(ctx, nil, ms...)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := q.LabelNames(ctx, nil, ms...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(want, got) && len(want)+len(got) > 0 {
			t.Fatalf("label names for matchers %d: %v, want %v", i, got, want)
		}
	}
}

func TestHeadAnswersLikeTheTSDB(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 7 // many closed chunks
	f := newFixture(t, o, 300, 40, 1)
	f.check(t, math.MinInt64, math.MaxInt64)
	f.check(t, f.mint, f.maxt)
	mid := (f.mint + f.maxt) / 2
	f.check(t, f.mint+100000, mid)      // chunks cut at both ends
	f.check(t, mid, mid+30000)          // inside one chunk
	f.check(t, f.maxt-20000, f.maxt+10) // the open chunks' tails
}

func TestHeadChunksStayInTheirBlockRange(t *testing.T) {
	o := Options{ChunkRange: 100000, SamplesPerChunk: 1000}
	f := newFixture(t, o, 20, 50, 2)
	f.check(t, math.MinInt64, math.MaxInt64)
	for ref := uint32(1); ref <= f.head.count.Load(); ref++ {
		s := f.head.seriesAt(ref)
		for _, c := range s.closed {
			if c.minT/o.ChunkRange != c.maxT/o.ChunkRange {
				t.Fatalf("series %d: chunk [%d, %d] crosses a range boundary", ref, c.minT, c.maxT)
			}
		}
	}
}

// TestHeadWritesABlock writes the head with Prometheus' compactor and reads the block back with Prometheus'
// block reader.
func TestHeadWritesABlock(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 9
	f := newFixture(t, o, 200, 30, 3)
	dir := t.TempDir()
	comp, err := tsdb.NewLeveledCompactor(context.Background(), nil, nil, []int64{o.ChunkRange}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := comp.Write(dir, f.head.Range(f.mint, f.maxt), f.mint, f.maxt+1, nil)
	if err != nil || len(ids) != 1 {
		t.Fatalf("write block: %v %v", ids, err)
	}
	b, err := tsdb.OpenBlock(nil, filepath.Join(dir, ids[0].String()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if m := b.Meta(); m.Stats.NumSeries != 200 || m.Stats.NumSamples != 200*30 {
		t.Fatalf("block holds %d series, %d samples; want 200, 6000", m.Stats.NumSeries, m.Stats.NumSamples)
	}
	bq, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer bq.Close()
	rq, err := f.ref.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("block, matchers %d", i), selectAll(t, rq, ms...), selectAll(t, bq, ms...))
	}
}

func TestAppendRefusals(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := h.GetOrCreate(labels.FromStrings("__name__", "up"))
	if err != nil {
		t.Fatal(err)
	}
	if again, created, _ := h.GetOrCreate(labels.FromStrings("__name__", "up")); again != ref || created {
		t.Fatalf("second GetOrCreate gave %d (created %v), want %d", again, created, ref)
	}
	steps := []struct {
		t    int64
		v    float64
		want error
	}{
		{1000, 1, nil},
		{2000, 2, nil},
		{2000, 2, nil}, // the same sample again is accepted and not stored twice
		{2000, 3, storage.ErrDuplicateSampleForTimestamp},
		{1500, 1, storage.ErrOutOfOrderSample},
		{3000, math.NaN(), nil},
	}
	for i, s := range steps {
		if err := h.Append(ref, s.t, s.v); !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("step %d: append (%d, %v) = %v, want %v", i, s.t, s.v, err, s.want)
		}
	}
	if err := h.Append(99, 4000, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("append to an unknown series: %v", err)
	}
	if err := h.Truncate(2500); err != nil {
		t.Fatal(err)
	}
	if err := h.Append(ref, 2400, 1); !errors.Is(err, storage.ErrOutOfBounds) {
		t.Fatalf("append before the truncation point: %v", err)
	}
	q, err := h.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	got := selectAll(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if len(got) != 1 || len(got[0].samples) != 1 || got[0].samples[0].t != 3000 {
		t.Fatalf("after truncation the head holds %v, want the sample at 3000 only", got)
	}
	if h.MinTime() != 2500 || h.MaxTime() != 3000 {
		t.Fatalf("head time range [%d, %d], want [2500, 3000]", h.MinTime(), h.MaxTime())
	}
}

// TestTruncateDropsClosedChunks cuts away whole chunks and pages and keeps what is newer.
func TestTruncateDropsClosedChunks(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 5
	f := newFixture(t, o, 50, 60, 4)
	cut := (f.mint + f.maxt) / 2
	if err := f.head.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	q, err := f.head.Querier(cut, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rq, err := f.ref.Querier(cut, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	want := selectAll(t, rq, all)
	if len(want) != 50 {
		t.Fatalf("reference holds %d series after %d, want 50", len(want), cut)
	}
	sameSeries(t, "after truncation", want, selectAll(t, q, all))
	for ref := uint32(1); ref <= f.head.count.Load(); ref++ {
		for _, c := range f.head.seriesAt(ref).closed {
			if c.maxT < cut {
				t.Fatalf("series %d keeps chunk [%d, %d] before %d", ref, c.minT, c.maxT, cut)
			}
		}
	}
}

// TestAppendWhileQuerying runs appends, chunk cuts, truncations and series collection beside queries (meant
// for -race): every answer is in time order, and no append is lost to a series collected under it.
func TestAppendWhileQuerying(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 4
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var progress [3]atomic.Int64
	stop := make(chan struct{})
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			app := h.Appender()
			for i := range 2000 {
				lset := labels.FromStrings("__name__", "m", "w", fmt.Sprint(w), "s", fmt.Sprint(i%50))
				if _, err := app.Append(0, lset, int64(i)*1000, float64(i)); err != nil {
					t.Error(err)
					return
				}
				if err := app.Commit(); err != nil {
					t.Error(err)
					return
				}
				progress[w].Store(int64(i))
			}
		}()
	}
	go func() {
		defer close(stop)
		wg.Wait()
	}()
	go func() { // truncates behind the slowest writer
		for {
			select {
			case <-stop:
				return
			default:
			}
			slowest := min(progress[0].Load(), progress[1].Load(), progress[2].Load())
			_ = h.Truncate((slowest - 300) * 1000)
			runtime.Gosched()
		}
	}()
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		q, err := h.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range selectAll(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")) {
			for i := 1; i < len(s.samples); i++ {
				if s.samples[i].t <= s.samples[i-1].t {
					t.Fatalf("%s: samples out of order: %v", s.lset, s.samples)
				}
			}
		}
		q.Close()
	}
}

// TestMappedChunkPages seals full chunk pages to files and maps them: answers are unchanged, truncation removes
// the files of dropped pages, Close the rest.
func TestMappedChunkPages(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 5
	o.ChunksDir = filepath.Join(t.TempDir(), "chunks")
	f := newFixture(t, o, 100, 60, 5)
	files := func() int {
		es, err := os.ReadDir(o.ChunksDir)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	sealed := files()
	if sealed < 10 {
		t.Fatalf("%d sealed pages, want many", sealed)
	}
	f.check(t, math.MinInt64, math.MaxInt64)
	f.check(t, (f.mint+f.maxt)/2, f.maxt)
	// The fixture appends series by series, so every page holds chunks of the whole time range: only a cut past
	// the end drops pages, all the sealed ones.
	if err := f.head.Truncate(f.maxt + 1); err != nil {
		t.Fatal(err)
	}
	if left := files(); left != 0 {
		t.Fatalf("%d page files after truncation, %d before", left, sealed)
	}
	f.check(t, f.maxt+1, math.MaxInt64)
	f.head.Close()
	if left := files(); left != 0 {
		t.Fatalf("%d page files after Close", left)
	}
}

// TestSeriesLabelsOnly: Series with no chunk slice gives the labels alone, as Prometheus' index readers do.
func TestSeriesLabelsOnly(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	lset := labels.FromStrings("__name__", "up", "job", "a")
	ref, _, err := h.GetOrCreate(lset)
	if err != nil {
		t.Fatal(err)
	}
	ir, err := h.Range(math.MinInt64, math.MaxInt64).Index()
	if err != nil {
		t.Fatal(err)
	}
	defer ir.Close()
	var b labels.ScratchBuilder
	if err := ir.Series(storage.SeriesRef(ref), &b, nil); err != nil || !labels.Equal(b.Labels(), lset) {
		t.Fatalf("labels %s (%v), want %s", b.Labels(), err, lset)
	}
}
