package metricdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

// fixture is a DB and Prometheus' own tsdb.DB with the same options, given the same samples: the reference
// every answer and every block layout is checked against.
type fixture struct {
	db    *DB
	ref   *tsdb.DB
	opts  Options
	lsets []labels.Labels
	next  []int64 // next timestamp of each series
	mint  int64
	maxt  int64
	rng   *rand.Rand
}

const (
	testBlock = 2 * time.Minute
	t0        = int64(1_700_000_000_000)
)

func testOptions() Options {
	o := DefaultOptions()
	o.MinBlockDuration = testBlock
	o.MaxBlockDuration = 9 * testBlock // ranges 2, 6 and 18 minutes
	o.RetentionDuration = 0
	return o
}

func newFixture(t *testing.T, o Options, nSeries int) *fixture {
	t.Helper()
	h, err := metrichead.New(o.HeadOptions())
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.TempDir(), nil, nil, h, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ro := tsdb.DefaultOptions()
	ro.MinBlockDuration = o.MinBlockDuration.Milliseconds()
	ro.MaxBlockDuration = o.MaxBlockDuration.Milliseconds()
	ro.RetentionDuration = o.RetentionDuration.Milliseconds()
	ro.IsolationDisabled = true
	ref, err := tsdb.Open(t.TempDir(), nil, nil, ro, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref.DisableCompactions() // compacted when the test says, as db is
	t.Cleanup(func() { ref.Close() })
	f := &fixture{db: db, ref: ref, opts: o, mint: math.MaxInt64, maxt: math.MinInt64, rng: rand.New(rand.NewPCG(uint64(nSeries), 3))}
	for i := range nSeries {
		lset := labels.FromStrings(
			"__name__", fmt.Sprintf("metric_%d", i%5),
			"job", []string{"api", "db", "cache"}[i%3],
			"instance", fmt.Sprintf("host-%d", i%7),
			"series", fmt.Sprint(i),
		)
		if i%4 == 0 {
			lset = labels.NewBuilder(lset).Set("zone", []string{"a", "b"}[i%2]).Labels()
		}
		f.lsets = append(f.lsets, lset)
		f.next = append(f.next, t0+int64(f.rng.IntN(15000)))
	}
	return f
}

// appendUntil appends samples about every 15 s to every series up to end, to both databases.
func (f *fixture) appendUntil(t *testing.T, end int64) {
	t.Helper()
	app := f.ref.Appender(context.Background())
	for i, lset := range f.lsets {
		ref, _, err := f.db.Head().GetOrCreate(lset)
		if err != nil {
			t.Fatal(err)
		}
		for ; f.next[i] < end; f.next[i] += 15000 + int64(f.rng.IntN(40)) {
			ts := f.next[i]
			v := float64(ts-t0) / 1000
			switch f.rng.IntN(20) {
			case 0:
				v = math.Float64frombits(0x7ff0000000000002) // a stale marker
			case 1:
				v = f.rng.Float64()
			}
			if err := f.db.Head().Append(ref, ts, v); err != nil {
				t.Fatalf("append %s at %d: %v", lset, ts, err)
			}
			if _, err := app.Append(0, lset, ts, v); err != nil {
				t.Fatalf("reference: append %s at %d: %v", lset, ts, err)
			}
			f.mint, f.maxt = min(f.mint, ts), max(f.maxt, ts)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) compact(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := f.db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.ref.Compact(ctx); err != nil {
		t.Fatal(err)
	}
}

type seriesSamples struct {
	lset    string
	samples [][2]float64 // t, v (bits compared)
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
			e.samples = append(e.samples, [2]float64{float64(ts), math.Float64frombits(math.Float64bits(v))})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if len(e.samples) > 0 { // Prometheus' head may list a series whose samples are all deleted, with none
			out = append(out, e)
		}
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
		w, g := want[i].samples, got[i].samples
		same := len(w) == len(g)
		for j := 0; same && j < len(w); j++ {
			same = w[j][0] == g[j][0] && math.Float64bits(w[j][1]) == math.Float64bits(g[j][1])
		}
		if !same {
			t.Fatalf("%s: %s has %d samples %v, want %d %v", what, want[i].lset, len(g), g, len(w), w)
		}
	}
}

var matcherSets = [][]*labels.Matcher{
	{labels.MustNewMatcher(labels.MatchEqual, "__name__", "metric_3")},
	{labels.MustNewMatcher(labels.MatchEqual, "job", "api"), labels.MustNewMatcher(labels.MatchRegexp, "instance", "host-[1-3]")},
	{labels.MustNewMatcher(labels.MatchNotEqual, "zone", "")},
	{labels.MustNewMatcher(labels.MatchRegexp, "series", "1.")},
	{labels.MustNewMatcher(labels.MatchEqual, "series", "7")},
	{labels.MustNewMatcher(labels.MatchEqual, "series", "no such")},
	{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")},
}

// ranges are query ranges over the data: all of it, within blocks, across blocks and the head, the head only.
func (f *fixture) ranges() [][2]int64 {
	span := f.maxt - f.mint
	return [][2]int64{
		{math.MinInt64, math.MaxInt64},
		{f.mint, f.maxt},
		{f.mint + span/10, f.mint + span/3},
		{f.mint + span/2, f.maxt - 30000},
		{f.maxt - 4*60000, f.maxt},
		{f.maxt - 20000, f.maxt + 1000},
	}
}

// checkQueries compares the answers of db and the reference for every matcher set and range, through both the
// sample and the chunk querier.
func (f *fixture) checkQueries(t *testing.T) {
	t.Helper()
	for _, r := range f.ranges() {
		q, err := f.db.Querier(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		rq, err := f.ref.Querier(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		cq, err := f.db.ChunkQuerier(r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		for i, ms := range matcherSets {
			want := selectAll(t, rq, ms...)
			what := fmt.Sprintf("matchers %d in [%d, %d]", i, r[0], r[1])
			sameSeries(t, what, want, selectAll(t, q, ms...))
			sameSeries(t, what+" (chunks)", want, selectChunks(t, cq, r[0], r[1], ms...))
			for _, name := range []string{"job", "zone", "series"} {
				wv, _, err := rq.LabelValues(context.Background(), name, nil, ms...)
				if err != nil {
					t.Fatal(err)
				}
				gv, _, err := q.LabelValues(context.Background(), name, nil, ms...)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(wv, gv) && len(wv)+len(gv) > 0 {
					t.Fatalf("%s: values of %s %v, want %v", what, name, gv, wv)
				}
			}
			wn, _, err := rq.LabelNames(context.Background(), nil, ms...)
			if err != nil {
				t.Fatal(err)
			}
			gn, _, err := q.LabelNames(context.Background(), nil, ms...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(wn, gn) && len(wn)+len(gn) > 0 {
				t.Fatalf("%s: label names %v, want %v", what, gn, wn)
			}
		}
		q.Close()
		rq.Close()
		cq.Close()
	}
}

// selectChunks reads a chunk querier's series, keeping the samples within [mint, maxt] as the sample querier
// does (chunks may reach outside the range).
func selectChunks(t *testing.T, q storage.ChunkQuerier, mint, maxt int64, ms ...*labels.Matcher) []seriesSamples {
	t.Helper()
	var out []seriesSamples
	ss := q.Select(context.Background(), true, nil, ms...)
	for ss.Next() {
		s := ss.At()
		e := seriesSamples{lset: s.Labels().String()}
		it := s.Iterator(nil)
		for it.Next() {
			c := it.At()
			ci := c.Chunk.Iterator(nil)
			for ci.Next() == chunkenc.ValFloat {
				ts, v := ci.At()
				if ts >= mint && ts <= maxt {
					e.samples = append(e.samples, [2]float64{float64(ts), v})
				}
			}
			if err := ci.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if len(e.samples) > 0 {
			out = append(out, e)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type metaSummary struct {
	MinTime, MaxTime                 int64
	NumSeries, NumSamples, NumChunks uint64
	Level                            int
}

func summarize(ms []tsdb.BlockMeta) []metaSummary {
	var out []metaSummary
	for _, m := range ms {
		out = append(out, metaSummary{m.MinTime, m.MaxTime, m.Stats.NumSeries, m.Stats.NumSamples, m.Stats.NumChunks, m.Compaction.Level})
	}
	return out
}

// checkBlocks compares the block layouts and checks that blocks do not overlap and the head holds nothing a
// block holds.
func (f *fixture) checkBlocks(t *testing.T) {
	t.Helper()
	got, want := summarize(f.db.BlockMetas()), summarize(f.ref.BlockMetas())
	if !slices.Equal(got, want) {
		t.Fatalf("blocks\n%v\nwant\n%v", got, want)
	}
	metas := f.db.BlockMetas()
	for i := 1; i < len(metas); i++ {
		if metas[i].MinTime < metas[i-1].MaxTime {
			t.Fatalf("block %d [%d, %d) overlaps block %d [%d, %d)", i, metas[i].MinTime, metas[i].MaxTime, i-1,
				metas[i-1].MinTime, metas[i-1].MaxTime)
		}
	}
	if len(metas) > 0 && f.db.Head().MinTime() < metas[len(metas)-1].MaxTime {
		t.Fatalf("head starts at %d, before the newest block ends at %d", f.db.Head().MinTime(), metas[len(metas)-1].MaxTime)
	}
	if ws, gs := f.ref.Head().MinTime(), f.db.Head().MinTime(); ws != gs {
		t.Fatalf("head starts at %d, want %d", gs, ws)
	}
	st, err := f.db.StartTime()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := f.ref.StartTime(); st != want {
		t.Fatalf("start time %d, want %d", st, want)
	}
}

// TestCompactLikeTheTSDB writes an hour of samples at 2-minute blocks in steps, compacting after each: the head
// is written out and truncated, blocks are compacted into 6- and 18-minute ranges, and the block layout and
// every answer equal Prometheus' DB's.
func TestCompactLikeTheTSDB(t *testing.T) {
	f := newFixture(t, testOptions(), 40)
	for end := t0 + 10*60000; end <= t0+60*60000; end += 10 * 60000 {
		f.appendUntil(t, end)
		f.compact(t)
		f.checkBlocks(t)
		f.checkQueries(t)
	}
	metas := f.db.BlockMetas()
	if len(metas) < 3 {
		t.Fatalf("%d blocks after an hour of 2-minute blocks", len(metas))
	}
	var levels []int
	for _, m := range metas {
		levels = append(levels, m.Compaction.Level)
	}
	if slices.Max(levels) < 2 {
		t.Fatalf("no block was compacted: levels %v", levels)
	}
	// Every sample is in a block or in the head, once.
	q, err := f.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	total := 0
	for _, s := range selectAll(t, q, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")) {
		total += len(s.samples)
	}
	var inBlocks uint64
	for _, m := range metas {
		inBlocks += m.Stats.NumSamples
	}
	if hs := countHead(t, f.db.Head()); uint64(total) != inBlocks+uint64(hs) {
		t.Fatalf("%d samples answered, %d in blocks and %d in the head", total, inBlocks, hs)
	}
}

func countHead(t *testing.T, h *metrichead.Head) int {
	t.Helper()
	q, err := h.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n := 0
	for _, s := range selectAll(t, q, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")) {
		n += len(s.samples)
	}
	return n
}

// TestRetentionLikeTheTSDB keeps 20 minutes of blocks, counted back from the newest block's end.
func TestRetentionLikeTheTSDB(t *testing.T) {
	o := testOptions()
	o.RetentionDuration = 20 * time.Minute
	f := newFixture(t, o, 20)
	for end := t0 + 15*60000; end <= t0+75*60000; end += 15 * 60000 {
		f.appendUntil(t, end)
		f.compact(t)
		f.checkBlocks(t)
	}
	metas := f.db.BlockMetas()
	newest := metas[len(metas)-1].MaxTime
	for _, m := range metas[:len(metas)-1] {
		if newest-m.MaxTime >= o.RetentionDuration.Milliseconds() {
			t.Fatalf("block [%d, %d) is kept, beyond retention of the newest block's end %d", m.MinTime, m.MaxTime, newest)
		}
	}
	if metas[0].MinTime <= f.mint {
		t.Fatalf("the oldest block still starts at %d", metas[0].MinTime)
	}
	entries, err := os.ReadDir(f.db.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(metas) {
		t.Fatalf("%d entries in the directory for %d blocks", len(entries), len(metas))
	}
	// Queries over what is kept agree.
	r := [2]int64{metas[0].MinTime, math.MaxInt64}
	q, err := f.db.Querier(r[0], r[1])
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rq, err := f.ref.Querier(r[0], r[1])
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("after retention, matchers %d", i), selectAll(t, rq, ms...), selectAll(t, q, ms...))
	}
}

// TestDeleteAndCleanTombstonesLikeTheTSDB deletes from blocks and the head, then rewrites the blocks.
func TestDeleteAndCleanTombstonesLikeTheTSDB(t *testing.T) {
	f := newFixture(t, testOptions(), 30)
	f.appendUntil(t, t0+30*60000)
	f.compact(t)
	ctx := context.Background()
	span := f.maxt - f.mint
	for _, d := range []struct {
		mint, maxt int64
		ms         []*labels.Matcher
	}{
		{f.mint + span/5, f.mint + span/2, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "api")}},
		{math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "series", "7")}},
		{f.maxt - 90000, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "instance", "host-2")}},
	} {
		if err := f.db.Delete(ctx, d.mint, d.maxt, d.ms...); err != nil {
			t.Fatal(err)
		}
		if err := f.ref.Delete(ctx, d.mint, d.maxt, d.ms...); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		t.Helper()
		// Ranges that start before a deleted interval and end inside it are left out: Prometheus' block querier
		// indexes past the end of the interval list there (tombstones.Intervals.Add, v0.313.2), in both.
		for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {f.mint + span/3, f.maxt}} {
			q, err := f.db.Querier(r[0], r[1])
			if err != nil {
				t.Fatal(err)
			}
			rq, err := f.ref.Querier(r[0], r[1])
			if err != nil {
				t.Fatal(err)
			}
			for i, ms := range matcherSets {
				sameSeries(t, fmt.Sprintf("%s, matchers %d in [%d, %d]", what, i, r[0], r[1]), selectAll(t, rq, ms...), selectAll(t, q, ms...))
			}
			q.Close()
			rq.Close()
		}
	}
	check("after delete")
	before := f.db.BlockMetas()
	if err := f.db.CleanTombstones(); err != nil {
		t.Fatal(err)
	}
	if err := f.ref.CleanTombstones(); err != nil {
		t.Fatal(err)
	}
	check("after cleaning tombstones")
	f.checkBlocks(t)
	for _, m := range before {
		if _, err := os.Stat(filepath.Join(f.db.Dir(), m.ULID.String())); err == nil {
			t.Fatalf("block %s had tombstones and is still there", m.ULID)
		}
	}
	for _, b := range f.db.Blocks() {
		if n := b.Meta().Stats.NumTombstones; n != 0 {
			t.Fatalf("block %s keeps %d tombstones", b.Meta().ULID, n)
		}
	}
	// The head's tombstones go into the block it writes.
	f.appendUntil(t, t0+40*60000)
	f.compact(t)
	f.checkBlocks(t)
	check("after compacting the head with tombstones")
}

// TestSnapshotWithHead snapshots blocks and head; Prometheus' DB opened on the snapshot answers the same.
func TestSnapshotWithHead(t *testing.T) {
	f := newFixture(t, testOptions(), 20)
	f.appendUntil(t, t0+20*60000)
	f.compact(t)
	dir := filepath.Join(t.TempDir(), "snap")
	if err := f.db.Snapshot(dir, true); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Snapshot(f.db.Dir(), true); err == nil {
		t.Fatal("a snapshot into the db's own directory was accepted")
	}
	so := tsdb.DefaultOptions()
	so.RetentionDuration = 0
	snap, err := tsdb.Open(dir, nil, nil, so, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if blocks := snap.Blocks(); len(blocks) != len(f.db.Blocks())+1 {
		t.Fatalf("snapshot holds %d blocks, want %d and the head", len(snap.Blocks()), len(f.db.Blocks()))
	}
	q, err := snap.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rq, err := f.ref.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("snapshot, matchers %d", i), selectAll(t, rq, ms...), selectAll(t, q, ms...))
	}
}

// TestReopen closes the DB and opens its directory around a new head: the blocks are back, and the head refuses
// samples a block holds.
func TestReopen(t *testing.T) {
	f := newFixture(t, testOptions(), 20)
	f.appendUntil(t, t0+20*60000)
	f.compact(t)
	want := f.db.BlockMetas()
	if len(want) == 0 {
		t.Fatal("no blocks")
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Compact(context.Background()); err == nil {
		t.Fatal("a closed db compacted")
	}
	h, err := metrichead.New(f.opts.HeadOptions())
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := h.GetOrCreate(f.lsets[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Append(ref, want[0].MinTime, 1); err != nil { // as a replayed write-ahead log might hold
		t.Fatal(err)
	}
	db, err := Open(f.db.Dir(), nil, nil, h, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.BlockMetas(); !slices.EqualFunc(got, want, func(a, b tsdb.BlockMeta) bool { return a.ULID == b.ULID }) {
		t.Fatalf("reopened with blocks %v, want %v", summarize(got), summarize(want))
	}
	if n := countHead(t, h); n != 0 {
		t.Fatalf("the head keeps %d samples a block holds", n)
	}
	q, err := db.Querier(math.MinInt64, want[len(want)-1].MaxTime-1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rq, err := f.ref.Querier(math.MinInt64, want[len(want)-1].MaxTime-1)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("reopened, matchers %d", i), selectAll(t, rq, ms...), selectAll(t, q, ms...))
	}
}
