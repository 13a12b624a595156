package metrichead

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// TestDeleteLikeTheTSDB deletes the same intervals from the head and from Prometheus' TSDB, then compares
// queries and the block the compactor writes from the head.
func TestDeleteLikeTheTSDB(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 8
	f := newFixture(t, o, 200, 40, 6)
	mid := (f.mint + f.maxt) / 2
	ctx := context.Background()
	for _, d := range []struct {
		mint, maxt int64
		ms         []*labels.Matcher
	}{
		{f.mint + 60000, mid, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "api")}},
		{math.MinInt64, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "series", "7")}},
		{mid, mid + 100000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "instance", "host-1.*")}},
		{f.maxt + 1, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "zone", "a")}},
	} {
		if err := f.ref.Delete(ctx, d.mint, d.maxt, d.ms...); err != nil {
			t.Fatal(err)
		}
		if err := f.head.Delete(ctx, d.mint, d.maxt, d.ms...); err != nil {
			t.Fatal(err)
		}
	}
	// Not a range that starts before a deleted interval and ends inside it: Prometheus' block querier then adds
	// the range's tail to two intervals with tombstones.Intervals.Add, which indexes past its end (v0.313.2).
	for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {f.mint + 30000, mid + 200000}, {mid + 50000, f.maxt}} {
		checkSamples(t, f, r[0], r[1])
	}

	// Samples appended after a delete are kept, as in Prometheus' head: the interval was cut to the samples then.
	ref := f.head.Lookup(labels.FromStrings("__name__", "metric_2", "instance", "host-7", "job", "db", "series", "7"))
	if ref == 0 {
		t.Fatal("series 7 not found")
	}
	if err := f.head.Append(ref, f.maxt+15000, 42); err != nil {
		t.Fatal(err)
	}
	q, err := f.head.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	got := selectAll(t, q, labels.MustNewMatcher(labels.MatchEqual, "series", "7"))
	q.Close()
	if len(got) != 1 || len(got[0].samples) != 1 || got[0].samples[0].v != 42 {
		t.Fatalf("series 7 after delete and append: %v, want the one new sample", got)
	}

	// The compactor leaves deleted samples out of the block.
	comp, err := tsdb.NewLeveledCompactor(ctx, nil, nil, []int64{o.ChunkRange}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ids, err := comp.Write(dir, f.head.Range(f.mint, f.maxt), f.mint, f.maxt+1, nil)
	if err != nil || len(ids) != 1 {
		t.Fatalf("write block: %v %v", ids, err)
	}
	b, err := tsdb.OpenBlock(nil, fmt.Sprintf("%s/%s", dir, ids[0]), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
		sameSeries(t, fmt.Sprintf("block after delete, matchers %d", i), nonEmpty(selectAll(t, rq, ms...)), selectAll(t, bq, ms...))
	}
}

// checkSamples compares the series with samples left in [mint, maxt]. Prometheus' head lists a series whose
// samples are all deleted with no samples (its open chunk's meta ends at the end of time, so no tombstone covers
// it); Sprout's head, like a Prometheus block, leaves it out.
func checkSamples(t *testing.T, f *fixture, mint, maxt int64) {
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
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("matchers %d in [%d, %d]", i, mint, maxt), nonEmpty(selectAll(t, rq, ms...)),
			nonEmpty(selectAll(t, q, ms...)))
	}
}

func nonEmpty(ss []seriesSamples) []seriesSamples {
	var out []seriesSamples
	for _, s := range ss {
		if len(s.samples) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// TestTruncateWaitsForOpenQuerier keeps a querier open while a truncation that cuts its range runs: the
// truncation waits for it, and the querier reads every sample it was opened on.
func TestTruncateWaitsForOpenQuerier(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 4
	f := newFixture(t, o, 50, 60, 8)
	q, err := f.head.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	cut := f.maxt - 100000
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.head.Truncate(cut)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		if f.head.minValid.Load() == cut { // the truncation stores its point before it waits for readers
			break
		}
		select {
		case <-done:
			t.Fatal("the truncation finished while a querier of its range was open")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("truncation did not start")
		}
	}
	rq, err := f.ref.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	sameSeries(t, "querier opened before the truncation", selectAll(t, rq, all), selectAll(t, q, all))
	q.Close()
	<-done
}

// TestReaderOpenedDuringTruncation opens a reader of a range made before a truncation started, while the
// truncation waits for another reader of the same caller: it opens at once, from the truncation point on, and
// the truncation ends when the first reader closes.
func TestReaderOpenedDuringTruncation(t *testing.T) {
	o := DefaultOptions()
	o.SamplesPerChunk = 4
	f := newFixture(t, o, 30, 60, 9)
	held, err := f.head.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	r := f.head.Range(math.MinInt64, math.MaxInt64) // made before the truncation, opened during it
	cut := (f.mint + f.maxt) / 2
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.head.Truncate(cut)
	}()
	for deadline := time.Now().Add(10 * time.Second); f.head.minValid.Load() != cut; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("truncation did not start")
		}
	}
	opened := make(chan error, 1)
	var q storage.Querier
	go func() {
		var err error
		q, err = tsdb.NewBlockQuerier(r, cut, math.MaxInt64) // chunks that straddle the cut also hold earlier samples
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a reader opened during a truncation waits for the truncation, which waits for a reader its caller holds")
	}
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	rq, err := f.ref.Querier(cut, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	sameSeries(t, "reader opened during the truncation", selectAll(t, rq, all), selectAll(t, q, all))
	q.Close()
	held.Close()
	<-done
}
