package metrichead

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
)

// walFixture appends through Appender commits to a logged head and to Prometheus' DB (the reference).
type walFixture struct {
	t    *testing.T
	dir  string
	o    Options
	wo   WALOptions
	head *Head
	ref  *tsdb.DB
	ts   int64
}

func newWALFixture(t *testing.T, wo WALOptions) *walFixture {
	opts := tsdb.DefaultOptions()
	opts.IsolationDisabled = true
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &walFixture{t: t, dir: filepath.Join(t.TempDir(), "wal"), o: DefaultOptions(), wo: wo, ref: db, ts: 1_000_000}
	f.o.SamplesPerChunk = 6
	f.reopen(math.MinInt64)
	return f
}

func (f *walFixture) reopen(minValid int64) ReplayStats {
	h, st, err := Open(f.dir, f.o, f.wo, minValid, nil, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.head = h
	return st
}

// push commits one round: a sample for each of n series (new ones are created), in batches of batch.
func (f *walFixture) push(n, batch int) {
	f.t.Helper()
	f.ts += 15000
	rapp := f.ref.Appender(context.Background())
	app := f.head.Appender()
	for i := range n {
		lset := labels.FromStrings("__name__", fmt.Sprintf("m%d", i%3), "i", fmt.Sprint(i))
		v := float64(f.ts/1000) + float64(i)
		if _, err := app.Append(0, lset, f.ts, v); err != nil {
			f.t.Fatal(err)
		}
		if _, err := rapp.Append(0, lset, f.ts, v); err != nil {
			f.t.Fatal(err)
		}
		if (i+1)%batch == 0 {
			if err := app.Commit(); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		f.t.Fatal(err)
	}
	if err := rapp.Commit(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *walFixture) check(mint int64) { f.t.Helper(); f.checkRange(mint, math.MaxInt64) }

func (f *walFixture) checkRange(mint, maxt int64) {
	f.t.Helper()
	q, err := f.head.Querier(mint, maxt)
	if err != nil {
		f.t.Fatal(err)
	}
	defer q.Close()
	rq, err := f.ref.Querier(mint, maxt)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rq.Close()
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	want := selectAll(f.t, rq, all)
	if len(want) == 0 {
		f.t.Fatal("the reference holds nothing")
	}
	sameSeries(f.t, "after replay", want, selectAll(f.t, q, all))
}

func TestReplayAfterClose(t *testing.T) {
	for _, c := range []compression.Type{compression.None, compression.Snappy} {
		t.Run(string(c), func(t *testing.T) {
			f := newWALFixture(t, WALOptions{Compression: c})
			for r := range 8 {
				f.push(50+r*10, 17) // new series in later rounds, several commits a round
			}
			if err := f.head.Close(); err != nil {
				t.Fatal(err)
			}
			st := f.reopen(math.MinInt64)
			if st.Series != 120 || st.Samples != 50*8+10*28 || st.RewroteRefs || st.UnknownRefs+st.Invalid > 0 {
				t.Fatalf("replay: %+v", st)
			}
			f.check(math.MinInt64)
			f.push(130, 40) // and the head goes on logging
			f.head.Close()
			f.reopen(math.MinInt64)
			f.check(math.MinInt64)
		})
	}
}

// TestReplayWithoutClose opens the log again while the first head still has it open, as after kill -9: what
// Commit returned for is replayed.
func TestReplayWithoutClose(t *testing.T) {
	f := newWALFixture(t, WALOptions{})
	for range 5 {
		f.push(40, 9)
	}
	old := f.head
	f.reopen(math.MinInt64)
	f.check(math.MinInt64)
	old.Close()
}

// TestReplayCutsATornTail: a log whose last record was cut short replays everything before it.
func TestReplayCutsATornTail(t *testing.T) {
	f := newWALFixture(t, WALOptions{})
	for range 4 {
		f.push(30, 30)
	}
	old := f.head // not closed: a closed segment ends in a padded page
	defer old.Close()
	_, last, err := wlog.Segments(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	seg := wlog.SegmentName(f.dir, last)
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The last commit is one record pair at the end: cutting a few bytes tears it.
	if err := os.Truncate(seg, fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	st := f.reopen(math.MinInt64)
	if !st.Repaired || st.Samples != 90 {
		t.Fatalf("replay of a torn log: %+v, want repaired with the first 3 rounds (90 samples)", st)
	}
	f.checkRange(math.MinInt64, f.ts-15000) // the reference still has the 4th round: compare up to the 3rd
	if got := f.head.MaxTime(); got != f.ts-15000 {
		t.Fatalf("head ends at %d, want %d", got, f.ts-15000)
	}
}

// TestReplayOfForeignRefs replays a log whose series refs are not the head's (a log Prometheus' DB wrote, after
// its series were garbage collected): the head checkpoints it in its own refs, and later opens read that.
func TestReplayOfForeignRefs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w, err := wlog.New(nil, nil, dir, compression.Snappy)
	if err != nil {
		t.Fatal(err)
	}
	var enc record.Encoder
	series := []record.RefSeries{
		{Ref: 40, Labels: labels.FromStrings("__name__", "up", "job", "a")},
		{Ref: 7, Labels: labels.FromStrings("__name__", "up", "job", "b")},
	}
	samples := []record.RefSample{{Ref: 40, T: 1000, V: 1}, {Ref: 7, T: 1000, V: 2}, {Ref: 40, T: 2000, V: 3}, {Ref: 99, T: 2000, V: 9}}
	if err := w.Log(enc.Series(series, nil), enc.Samples(samples, nil)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for round := range 2 {
		h, st, err := Open(dir, DefaultOptions(), WALOptions{Compression: compression.Snappy}, math.MinInt64, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Samples != 3+round || st.RewroteRefs != (round == 0) || (round == 0 && st.UnknownRefs != 1) {
			t.Fatalf("open %d: %+v", round, st)
		}
		q, err := h.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		got := selectAll(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
		want := []seriesSamples{
			{lset: `{__name__="up", job="a"}`, samples: []sample{{1000, 1}, {2000, 3}}},
			{lset: `{__name__="up", job="b"}`, samples: []sample{{1000, 2}}},
		}
		if round == 1 {
			want = append(want, seriesSamples{lset: `{__name__="up", job="c"}`, samples: []sample{{3000, 5}}})
		}
		sameSeries(t, fmt.Sprintf("open %d", round), want, got)
		q.Close()
		if round == 0 { // a new series after the rewrite is logged with the head's next ref
			app := h.Appender()
			if _, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "c"), 3000, 5); err != nil {
				t.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		h.Close()
	}
}

// TestTruncateCheckpoints writes enough to fill many segments, truncates, and replays: the checkpoint and the
// segments after it give the head back from the truncation point on.
func TestTruncateCheckpoints(t *testing.T) {
	f := newWALFixture(t, WALOptions{SegmentSize: 32 * 1024})
	for range 100 {
		f.push(200, 50)
	}
	cut := f.ts - 10*15000
	if err := f.head.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	if _, idx, err := wlog.LastCheckpoint(f.dir); err != nil || idx < 1 {
		t.Fatalf("no checkpoint after truncation: %d %v", idx, err)
	}
	first, _, err := wlog.Segments(f.dir)
	if err != nil || first < 2 {
		t.Fatalf("segments from %d after truncation (%v): the checkpointed ones should be gone", first, err)
	}
	f.head.Close()
	f.reopen(cut)
	f.check(cut)
}

// TestReplayKeepsDeletes: a delete is logged, so the replayed head still leaves the samples out.
func TestReplayKeepsDeletes(t *testing.T) {
	f := newWALFixture(t, WALOptions{})
	for range 6 {
		f.push(20, 20)
	}
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "m1")}
	from, to := f.ts-3*15000, f.ts-15000
	if err := f.head.Delete(t.Context(), from, to, ms...); err != nil {
		t.Fatal(err)
	}
	if err := f.ref.Delete(t.Context(), from, to, ms...); err != nil {
		t.Fatal(err)
	}
	f.check(math.MinInt64)
	f.head.Close()
	f.reopen(math.MinInt64)
	f.check(math.MinInt64)
}
