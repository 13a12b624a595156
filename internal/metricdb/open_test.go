package metricdb

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Options)
		field  string // in the error; empty when valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"no retention", func(o *Options) { o.RetentionDuration = 0 }, ""},
		{"negative retention", func(o *Options) { o.RetentionDuration = -time.Hour }, "retention_duration"},
		{"zero block", func(o *Options) { o.MinBlockDuration = 0 }, "min_block_duration"},
		{"sub-millisecond block", func(o *Options) { o.MinBlockDuration = time.Hour + time.Microsecond }, "min_block_duration"},
		{"max below min", func(o *Options) { o.MaxBlockDuration = time.Hour }, "max_block_duration"},
		{"no interval", func(o *Options) { o.CompactInterval = 0 }, "compact_interval"},
		{"one sample a chunk", func(o *Options) { o.SamplesPerChunk = 1 }, "samples_per_chunk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.change(&o)
			err := o.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("valid options refused: %v", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}

func TestBlockRanges(t *testing.T) {
	h := time.Hour.Milliseconds()
	for _, tc := range []struct {
		min, max time.Duration
		want     []int64
	}{
		{2 * time.Hour, 2 * time.Hour, []int64{2 * h}},
		{2 * time.Hour, 36 * time.Hour, []int64{2 * h, 6 * h, 18 * h}},
		{2 * time.Hour, 54 * time.Hour, []int64{2 * h, 6 * h, 18 * h, 54 * h}},
	} {
		o := DefaultOptions()
		o.MinBlockDuration, o.MaxBlockDuration = tc.min, tc.max
		if got := o.blockRanges(); !slices.Equal(got, tc.want) {
			t.Fatalf("ranges for %s..%s: %v, want %v", tc.min, tc.max, got, tc.want)
		}
	}
}

func openDB(t *testing.T, dir string, o Options) (*DB, error) {
	t.Helper()
	h, err := metrichead.New(o.HeadOptions())
	if err != nil {
		t.Fatal(err)
	}
	return Open(dir, nil, nil, h, o)
}

// TestOpenCleansUp opens a directory as a crash may leave it: unfinished block directories are removed, a
// block without a readable meta.json is skipped, blocks a compacted block replaced are deleted even when they
// no longer open, and a block that does not open otherwise is an error.
func TestOpenCleansUp(t *testing.T) {
	o := testOptions()
	o.MaxBlockDuration = o.MinBlockDuration // no compaction of blocks: the test compacts by hand
	f := newFixture(t, o, 10)
	f.appendUntil(t, t0+12*60000)
	f.compact(t)
	dir := f.db.Dir()
	metas := f.db.BlockMetas()
	if len(metas) < 3 {
		t.Fatalf("%d blocks", len(metas))
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash after writing a compacted block, before deleting its parents; one parent is damaged.
	comp, err := tsdb.NewLeveledCompactor(context.Background(), nil, nil, []int64{o.MinBlockDuration.Milliseconds()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	parents := []string{filepath.Join(dir, metas[0].ULID.String()), filepath.Join(dir, metas[1].ULID.String())}
	merged, err := comp.Compact(dir, parents, nil)
	if err != nil || len(merged) != 1 {
		t.Fatalf("compact by hand: %v %v", merged, err)
	}
	if err := os.Remove(filepath.Join(parents[0], "index")); err != nil {
		t.Fatal(err)
	}
	// Leftovers of an interrupted write and delete, and a directory that is not Sprout's.
	id := ulid.MustNew(ulid.Now(), nil).String()
	for _, d := range []string{id + tmpForCreation, id + tmpForDeletion, id + tmpLegacy, "notes.tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A block whose meta.json is cut short.
	noMeta := filepath.Join(dir, ulid.MustNew(ulid.Now(), nil).String())
	if err := os.Mkdir(noMeta, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(noMeta, "meta.json"), []byte(`{"ulid":`), 0o644); err != nil {
		t.Fatal(err)
	}

	db, err := openDB(t, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	var got []ulid.ULID
	for _, m := range db.BlockMetas() {
		got = append(got, m.ULID)
	}
	want := []ulid.ULID{merged[0]}
	for _, m := range metas[2:] {
		want = append(want, m.ULID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("opened blocks %v, want %v", got, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, gone := range []string{metas[0].ULID.String(), metas[1].ULID.String(), id + tmpForCreation, id + tmpForDeletion, id + tmpLegacy} {
		if slices.Contains(names, gone) {
			t.Fatalf("%s is still in %v", gone, names)
		}
	}
	for _, kept := range []string{"notes.tmp", filepath.Base(noMeta)} {
		if !slices.Contains(names, kept) {
			t.Fatalf("%s was removed: %v", kept, names)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A damaged block that nothing replaced fails the open.
	if err := os.Remove(filepath.Join(dir, merged[0].String(), "index")); err != nil {
		t.Fatal(err)
	}
	if _, err := openDB(t, dir, o); err == nil || !strings.Contains(err.Error(), merged[0].String()) {
		t.Fatalf("open with a damaged block: %v, want an error naming it", err)
	}
}

// TestRunCompacts runs the background loop at a short interval until it has written the head out, then stops it.
func TestRunCompacts(t *testing.T) {
	o := testOptions()
	o.CompactInterval = 5 * time.Millisecond
	f := newFixture(t, o, 5)
	f.db.opts.CompactInterval = o.CompactInterval
	f.appendUntil(t, t0+10*60000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.db.Run(ctx)
	}()
	waitFor(t, "the loop to write blocks", done, func() bool { return len(f.db.Blocks()) > 0 })
	cancel()
	<-done
}
