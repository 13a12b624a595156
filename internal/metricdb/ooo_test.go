package metricdb

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

const oooWindow = 10 * time.Minute

// openLogged opens a DB in dir with its head logged to dir/wal and dir/wbl, as the metric store does.
func openLogged(t *testing.T, dir string, o Options) *DB {
	t.Helper()
	h, _, err := metrichead.Open(filepath.Join(dir, "wal"), o.HeadOptions(),
		metrichead.WALOptions{Compression: compression.Snappy, OOODir: filepath.Join(dir, "wbl")}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, nil, nil, h, o)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	return db
}

func openReference(t *testing.T, dir string, o Options) *tsdb.DB {
	t.Helper()
	ro := tsdb.DefaultOptions()
	ro.MinBlockDuration = o.MinBlockDuration.Milliseconds()
	ro.MaxBlockDuration = o.MaxBlockDuration.Milliseconds()
	ro.RetentionDuration = 0
	ro.OutOfOrderTimeWindow = o.OutOfOrderTimeWindow.Milliseconds()
	ro.IsolationDisabled = true
	ref, err := tsdb.Open(dir, nil, nil, ro, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref.DisableCompactions()
	return ref
}

// lateScript appends, one commit per call, samples in order up to end minutes and then late ones: within the
// window (between samples, before a series' first, for a new series), beyond it, again with the same and
// another value, as a start-time zero sample, and as histograms. It returns what each call answered.
func lateScript(t *testing.T, s appendStorage, from, end int) []string {
	t.Helper()
	var out []string
	ctx := context.Background()
	a := labels.FromStrings("__name__", "a", "job", "x")
	b := labels.FromStrings("__name__", "b", "job", "x")
	c := labels.FromStrings("__name__", "c", "job", "y")
	h := labels.FromStrings("__name__", "h", "job", "y")
	at := func(min, sec int) int64 { return t0 + int64(min)*60000 + int64(sec)*1000 }
	one := func(what string, f func(storage.Appender) error) {
		app := s.Appender(ctx)
		err := f(app)
		if err == nil {
			err = app.Commit()
		} else {
			_ = app.Rollback()
		}
		out = append(out, what+": "+errKind(err))
	}
	float := func(what string, l labels.Labels, ts int64, v float64) {
		one(what, func(app storage.Appender) error { _, err := app.Append(0, l, ts, v); return err })
	}
	// In order, one commit for all.
	app := s.Appender(ctx)
	for m := from; m < end; m++ {
		for sec := 0; sec < 60; sec += 15 {
			for _, l := range []labels.Labels{a, b} {
				if _, err := app.Append(0, l, at(m, sec), float64(m*60+sec)); err != nil {
					t.Fatal(err)
				}
			}
			if sec%30 == 0 {
				if _, err := app.AppendHistogram(0, h, at(m, sec), tsdbutil.GenerateTestHistogram(int64(m*2+sec/30)), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	last := end - 1
	float("between samples", a, at(last, 7), 100)
	float("same again", a, at(last, 7), 100)
	float("another value", a, at(last, 7), 101)
	float("at the newest, another value", a, at(last, 45), 1)
	float("beyond the window", a, at(last-11, 3), 1)
	float("just within", a, at(last-9, 50), 2)
	float("new series, behind", c, at(last-5, 0), 3)
	float("new series, behind again", c, at(last-4, 0), 4)
	float("new series, in order", c, at(last, 30), 5)
	float("new series, between", c, at(last-4, 30), 6)
	one("start-time zero, behind", func(app storage.Appender) error {
		_, err := app.AppendSTZeroSample(0, a, at(last, 50), at(last-3, 0))
		return err
	})
	for i := range 20 {
		float(fmt.Sprint("b late ", i), b, at(last-8, 3+i*20), float64(-i))
	}
	one("histogram, behind", func(app storage.Appender) error {
		_, err := app.AppendHistogram(0, h, at(last-2, 10), tsdbutil.GenerateTestHistogram(7), nil)
		return err
	})
	one("float histogram, behind", func(app storage.Appender) error {
		_, err := app.AppendHistogram(0, h, at(last-2, 20), nil, tsdbutil.GenerateTestFloatHistogram(8))
		return err
	})
	one("several in one commit", func(app storage.Appender) error {
		for i := range 5 {
			if _, err := app.Append(0, a, at(last-1, 1+i), float64(i)); err != nil {
				return err
			}
		}
		_, err := app.Append(0, a, at(last+1, 0), float64((last+1)*60)) // and one in order, as the next script would
		return err
	})
	return out
}

// TestOutOfOrderLikeTheTSDB appends late samples to the DB and to Prometheus' DB with the same window and
// compares every answer and every sample: in the head, after compaction wrote them out, and after both reopen
// from their logs.
func TestOutOfOrderLikeTheTSDB(t *testing.T) {
	o := testOptions()
	o.OutOfOrderTimeWindow = oooWindow
	dir, rdir := t.TempDir(), t.TempDir()
	db, ref := openLogged(t, dir, o), openReference(t, rdir, o)
	defer func() { db.Close(); ref.Close() }()
	all := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}
	compare := func(what string) {
		t.Helper()
		if w, g := dumpAll(t, ref, all), dumpAll(t, db, all); w != g {
			t.Fatalf("%s: samples differ\nPrometheus' DB:\n%s\nDB:\n%s", what, w, g)
		}
	}
	check := func(want, got []string) {
		t.Helper()
		if len(want) != len(got) {
			t.Fatalf("%d answers, Prometheus' DB %d", len(got), len(want))
		}
		for i := range want {
			if want[i] != got[i] {
				t.Errorf("call %d: %s, Prometheus' DB %s", i, got[i], want[i])
			}
		}
	}
	check(lateScript(t, ref, 0, 20), lateScript(t, db, 0, 20))
	if db.Head().OOOSamples() == 0 {
		t.Fatal("no sample went out of order")
	}
	compare("in the head")

	ctx := context.Background()
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ref.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := db.Head().OOOSamples(); n != 0 {
		t.Fatalf("%d out-of-order samples left in the head after compaction", n)
	}
	ooo := 0
	for _, m := range db.BlockMetas() {
		if m.Compaction.FromOutOfOrder() {
			ooo++
		}
	}
	if ooo == 0 {
		t.Fatal("compaction wrote no out-of-order block")
	}
	compare("after compaction")

	check(lateScript(t, ref, 20, 30), lateScript(t, db, 20, 30))
	compare("late samples again")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ref.Close(); err != nil {
		t.Fatal(err)
	}
	db, ref = openLogged(t, dir, o), openReference(t, rdir, o)
	if db.Head().OOOSamples() == 0 {
		t.Fatal("the write-behind log brought no out-of-order sample back")
	}
	compare("reopened")
	for range 3 {
		if err := db.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ref.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	compare("reopened and compacted")
}

// TestOutOfOrderFlushUnderLoad appends late samples from several goroutines while compactions flush them and
// queries read, and then finds every acknowledged sample exactly once.
func TestOutOfOrderFlushUnderLoad(t *testing.T) {
	o := testOptions()
	o.OutOfOrderTimeWindow = oooWindow
	o.OOOFlushSamples = 200
	dir := t.TempDir()
	db := openLogged(t, dir, o)
	ctx := context.Background()
	const writers, perWriter = 3, 400
	// A head spanning 20 minutes, so that late samples have room.
	app := db.Appender(ctx)
	for w := range writers {
		l := labels.FromStrings("__name__", "late", "w", fmt.Sprint(w))
		for m := range 20 {
			if _, err := app.Append(0, l, t0+int64(m)*60000, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		acked [writers]atomic.Int64
		stop  atomic.Bool
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := labels.FromStrings("__name__", "late", "w", fmt.Sprint(w))
			for i := range perWriter {
				app := db.Appender(ctx)
				// Late by 1 to 9 minutes, never on a whole minute (the in-order samples).
				ts := t0 + 11*60000 + int64(i)*1000 + 7
				if _, err := app.Append(0, l, ts, float64(i)); err != nil {
					t.Errorf("writer %d sample %d: %v", w, i, err)
					_ = app.Rollback()
					return
				}
				if err := app.Commit(); err != nil {
					t.Errorf("writer %d commit %d: %v", w, i, err)
					return
				}
				acked[w].Add(1)
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for !stop.Load() {
			if err := db.Compact(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer bg.Done()
		for !stop.Load() {
			q, err := db.Querier(math.MinInt64, math.MaxInt64)
			if err != nil {
				t.Error(err)
				return
			}
			ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "late"))
			for ss.Next() {
				it := ss.At().Iterator(nil)
				prev := int64(math.MinInt64)
				for it.Next() != 0 {
					if ts := it.AtT(); ts <= prev {
						t.Errorf("samples not in order: %d after %d", ts, prev)
					} else {
						prev = ts
					}
				}
			}
			if err := ss.Err(); err != nil {
				t.Error(err)
			}
			q.Close()
		}
	}()
	wg.Wait()
	stop.Store(true)
	bg.Wait()
	if t.Failed() {
		return
	}
	count := func(db *DB) map[string]int {
		q, err := db.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		out := map[string]int{}
		for _, s := range selectAll(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "late")) {
			out[s.lset] = len(s.samples)
		}
		return out
	}
	check := func(what string, got map[string]int) {
		t.Helper()
		for w := range writers {
			l := labels.FromStrings("__name__", "late", "w", fmt.Sprint(w)).String()
			if want := 20 + int(acked[w].Load()); got[l] != want {
				t.Errorf("%s: %s has %d samples, want %d", what, l, got[l], want)
			}
		}
	}
	check("live", count(db))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openLogged(t, dir, o)
	defer db.Close()
	check("reopened", count(db))
}

// TestOutOfOrderFromPrometheusDir opens a directory Prometheus' DB wrote, late samples in its write-behind log
// included, and finds the samples it held.
func TestOutOfOrderFromPrometheusDir(t *testing.T) {
	o := testOptions()
	o.OutOfOrderTimeWindow = oooWindow
	dir := t.TempDir()
	ref := openReference(t, dir, o)
	lateScript(t, ref, 0, 20)
	all := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}
	want := dumpAll(t, ref, all)
	if err := ref.Close(); err != nil {
		t.Fatal(err)
	}
	db := openLogged(t, dir, o)
	defer db.Close()
	if db.Head().OOOSamples() == 0 {
		t.Fatal("no out-of-order sample read from Prometheus' write-behind log")
	}
	if got := dumpAll(t, db, all); got != want {
		t.Fatalf("samples differ\nPrometheus' DB:\n%s\nDB:\n%s", want, got)
	}
	// Its refs were Prometheus'; after the rewrite in the head's, a second start finds the same.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openLogged(t, dir, o)
	if got := dumpAll(t, db, all); got != want {
		t.Fatalf("second start: samples differ\nPrometheus' DB:\n%s\nDB:\n%s", want, got)
	}
}

// TestRunFlushesOutOfOrder: Run writes late samples out once the head holds OOOFlushSamples of them, without
// waiting for the compaction interval.
func TestRunFlushesOutOfOrder(t *testing.T) {
	o := testOptions()
	o.OutOfOrderTimeWindow = oooWindow
	o.OOOFlushSamples = 10
	o.CompactInterval = time.Hour
	db := openLogged(t, t.TempDir(), o)
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); db.Run(ctx) }()
	defer func() { cancel(); <-done }()
	l := labels.FromStrings("__name__", "late")
	app := db.Appender(ctx)
	for i := range 20 {
		if _, err := app.Append(0, l, t0+int64(i)*30000, 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		if _, err := app.Append(0, l, t0+int64(i)*30000+1000, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); db.Head().OOOSamples() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d out-of-order samples still in the head", db.Head().OOOSamples())
		}
	}
	ooo := 0
	for _, m := range db.BlockMetas() {
		if m.Compaction.FromOutOfOrder() {
			ooo++
		}
	}
	if ooo == 0 {
		t.Fatal("no out-of-order block written")
	}
}

// TestOutOfOrderTornWriteBehindLog: a write-behind log whose last segment ends in garbage (a torn write) is cut
// at the garbage on open, and the late samples before it are kept.
func TestOutOfOrderTornWriteBehindLog(t *testing.T) {
	o := testOptions()
	o.OutOfOrderTimeWindow = oooWindow
	dir := t.TempDir()
	db := openLogged(t, dir, o)
	lateScript(t, db, 0, 20)
	want := db.Head().OOOSamples()
	all := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}
	wantDump := dumpAll(t, db, all)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, last, err := wlog.Segments(filepath.Join(dir, "wbl"))
	if err != nil || last < 0 {
		t.Fatalf("write-behind segments: last %d, %v", last, err)
	}
	f, err := os.OpenFile(wlog.SegmentName(filepath.Join(dir, "wbl"), last), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h, st, err := metrichead.Open(filepath.Join(dir, "wal"), o.HeadOptions(),
		metrichead.WALOptions{Compression: compression.Snappy, OOODir: filepath.Join(dir, "wbl")}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Repaired {
		t.Fatal("the torn write-behind log was not repaired")
	}
	if db, err = Open(dir, nil, nil, h, o); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Head().OOOSamples(); got != want {
		t.Fatalf("%d out-of-order samples after the repair, want %d", got, want)
	}
	if got := dumpAll(t, db, all); got != wantDump {
		t.Fatalf("samples differ after the repair\nbefore:\n%s\nafter:\n%s", wantDump, got)
	}
}
