package metricdb

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

// waitFor polls cond until it holds; it fails when done closes first (what was waited for should have held it
// up) or after a deadline.
func waitFor(t *testing.T, what string, done <-chan struct{}, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); runtime.Gosched() {
		select {
		case <-done:
			if cond() {
				return
			}
			t.Fatalf("finished before %s", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func blockIDs(db *DB) []ulid.ULID {
	var ids []ulid.ULID
	for _, b := range db.Blocks() {
		ids = append(ids, b.Meta().ULID)
	}
	return ids
}

// TestQuerierOutlivesDeletedBlocks holds a querier open while tombstone cleaning replaces and deletes every block
// it reads: the cleaning waits for it, and it answers in full.
func TestQuerierOutlivesDeletedBlocks(t *testing.T) {
	f := newFixture(t, testOptions(), 20)
	f.appendUntil(t, t0+30*60000)
	f.compact(t)
	ctx := context.Background()
	del := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	// A small interval in every series of every block, so that every block is rewritten.
	for _, b := range f.db.BlockMetas() {
		mid := (b.MinTime + b.MaxTime) / 2
		if err := f.ref.Delete(ctx, mid, mid+5000, del); err != nil {
			t.Fatal(err)
		}
		if err := f.db.Delete(ctx, mid, mid+5000, del); err != nil {
			t.Fatal(err)
		}
	}
	q, err := f.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	before := blockIDs(f.db)
	done := make(chan struct{})
	var cleanErr error
	go func() {
		defer close(done)
		cleanErr = f.db.CleanTombstones()
	}()
	waitFor(t, "the block set to change", done, func() bool { return !slices.Equal(blockIDs(f.db), before) })
	select {
	case <-done:
		t.Fatal("tombstone cleaning finished while a querier of its blocks was open")
	default:
	}
	rq, err := f.ref.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("querier open across cleaning, matchers %d", i), selectAll(t, rq, ms...), selectAll(t, q, ms...))
	}
	q.Close()
	<-done
	if cleanErr != nil {
		t.Fatal(cleanErr)
	}
	for _, id := range before {
		if _, err := os.Stat(filepath.Join(f.db.Dir(), id.String())); err == nil {
			t.Fatalf("block %s was cleaned and is still there", id)
		}
	}
}

// TestQuerierOutlivesHeadCompaction holds a querier open while the head it reads is written out and truncated.
func TestQuerierOutlivesHeadCompaction(t *testing.T) {
	f := newFixture(t, testOptions(), 20)
	f.appendUntil(t, t0+20*60000)
	q, err := f.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	rq, err := f.ref.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var compactErr error
	go func() {
		defer close(done)
		compactErr = f.db.Compact(context.Background())
	}()
	waitFor(t, "a block to be written", done, func() bool { return len(f.db.Blocks()) > 0 })
	for i, ms := range matcherSets {
		sameSeries(t, fmt.Sprintf("querier open across compaction, matchers %d", i), selectAll(t, rq, ms...), selectAll(t, q, ms...))
	}
	q.Close()
	rq.Close() // the reference's compaction waits for it as well
	<-done
	if compactErr != nil {
		t.Fatal(compactErr)
	}
	if err := f.ref.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.checkBlocks(t)
	f.checkQueries(t)
}

// TestQueriesDuringCompaction appends and compacts while other goroutines query (meant for -race): every answer
// holds each series from its first sample on, with no gap, whichever of head and blocks holds it then.
func TestQueriesDuringCompaction(t *testing.T) {
	o := testOptions()
	h, err := metrichead.New(o.HeadOptions())
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.TempDir(), nil, nil, h, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const nSeries, step = 30, int64(15000)
	refs := make([]uint32, nSeries)
	for i := range refs {
		if refs[i], _, err = h.GetOrCreate(labels.FromStrings("__name__", "m", "s", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := checkContiguous(db, step); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for ts := t0; ts < t0+60*60000; ts += step {
		for _, r := range refs {
			if err := h.Append(r, ts, float64(ts)); err != nil {
				t.Fatal(err)
			}
		}
		if (ts-t0)%(3*60000) == 0 {
			if err := db.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(db.Blocks()) == 0 {
		t.Fatal("nothing was compacted")
	}
	if err := checkContiguous(db, step); err != nil {
		t.Fatal(err)
	}
}

func checkContiguous(db *DB, step int64) error {
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return err
	}
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		want := t0
		for it.Next() != 0 {
			ts, _ := it.At()
			if ts != want {
				return fmt.Errorf("%s: sample at %d, want %d", s.Labels(), ts, want)
			}
			want += step
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("%s: %w", s.Labels(), err)
		}
	}
	return ss.Err()
}
