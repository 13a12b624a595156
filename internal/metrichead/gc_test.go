package metrichead

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/compression"
)

// TestCollectSeries: series left without samples by a truncation leave the index and postings, whole pages of
// them are freed, the log's checkpoint forgets them, and their labels can come back as a new series.
func TestCollectSeries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	o := DefaultOptions()
	h, _, err := Open(dir, o, WALOptions{SegmentSize: 32 * 1024, Compression: compression.Snappy}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := 8*seriesPage + 10 // eight full pages and a bit (more than a page of labels), all gone after the cut
	lsetOf := func(kind string, i int) labels.Labels {
		return labels.FromStrings("__name__", "m", "kind", kind, "i", fmt.Sprint(i), "pair", fmt.Sprint(i/2))
	}
	app := h.Appender()
	for i := range old {
		if _, err := app.Append(0, lsetOf("old", i), 1000, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	// A series an appender holds a sample for across the truncation is not collected.
	held := h.Appender()
	heldRef, err := held.Append(0, lsetOf("held", 0), 9000, 1)
	if err != nil {
		t.Fatal(err)
	}
	app = h.Appender()
	for i := range 50 {
		if _, err := app.Append(0, lsetOf("new", i), 10000, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := h.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	if err := held.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := h.NumSeries(); got != 51 {
		t.Fatalf("%d series after the cut, want 51 (50 new and the held one)", got)
	}
	for i := range 8 {
		if h.pages[i] != nil {
			t.Fatalf("series page %d not freed", i)
		}
	}
	if h.lbls.pages[0] != nil {
		t.Fatal("first label page not freed")
	}
	q, err := h.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	kinds, _, err := q.LabelValues(t.Context(), "kind", nil)
	if err != nil || !slices.Equal(kinds, []string{"held", "new"}) {
		t.Fatalf("kinds %v (%v), want held and new", kinds, err)
	}
	got := selectAll(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	if len(got) != 51 {
		t.Fatalf("%d series answer, want 51", len(got))
	}
	q.Close()
	if h.Lookup(lsetOf("old", 7)) != 0 {
		t.Fatal("a collected series is still found by its labels")
	}
	if s := h.get(heldRef); s == nil {
		t.Fatal("the held series was collected")
	}
	// Its ref is refused without labels, and its labels make a new series.
	app = h.Appender()
	if _, err := app.Append(1, labels.EmptyLabels(), 11000, 3); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("append to a collected ref: %v", err)
	}
	ref, err := app.Append(1, lsetOf("old", 0), 11000, 3)
	if err != nil || ref <= uint32(old) {
		t.Fatalf("append with a collected ref and its labels: ref %d, %v", ref, err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	// Replay makes the collected series again from the segments not checkpointed yet, and collects them at
	// once; the head's refs differ from the log's, so it checkpoints the live ones.
	for round := range 2 {
		h2, st, err := Open(dir, o, WALOptions{Compression: compression.Snappy}, 5000, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if h2.NumSeries() != 52 || (round == 1 && st.Series != 52) {
			t.Fatalf("open %d: %d series (%+v), want 52", round, h2.NumSeries(), st)
		}
		h2.Close()
	}
}

// seriesCounter is a series callback that refuses series past a limit and counts what it is told.
type seriesCounter struct {
	h                *Head
	limit            int
	live             int
	created, deleted int
}

func (c *seriesCounter) PreCreation(labels.Labels) error {
	if c.h.NumSeries() >= uint64(c.limit) { // reads the head, as the metric store's limit does
		return errors.New("per-tenant series limit reached")
	}
	if c.live >= c.limit {
		return errors.New("per-tenant series limit reached")
	}
	return nil
}
func (c *seriesCounter) PostCreation(labels.Labels) { c.live++; c.created++ }
func (c *seriesCounter) PostDeletion(m map[chunks.HeadSeriesRef]labels.Labels) {
	c.live -= len(m)
	c.deleted += len(m)
}

// TestSeriesCallback: the callback refuses a series over its limit, and hears of creations and collections.
func TestSeriesCallback(t *testing.T) {
	cb := &seriesCounter{limit: 3}
	o := DefaultOptions()
	o.SeriesCallback = cb
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	cb.h = h
	app := h.Appender()
	for i := range 4 {
		_, err := app.Append(0, labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), 1000, 1)
		if (i < 3) != (err == nil) {
			t.Fatalf("series %d: %v", i, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := h.Truncate(2000); err != nil {
		t.Fatal(err)
	}
	if cb.created != 3 || cb.deleted != 3 || cb.live != 0 {
		t.Fatalf("callback saw %+v, want 3 created and 3 deleted", cb)
	}
}
