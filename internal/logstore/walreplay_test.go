package logstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// TestCrashBetweenUploadAndCheckpoint stops a flush after its chunks and index are in the bucket and before the
// WAL checkpoint (as a crash there would), reopens the store without closing it, and checks that every
// acknowledged line is there exactly once; then that lines written after the interrupted flush survive a
// second unclean stop, and that a WAL directory removed by hand does not make replay skip new records.
func TestCrashBetweenUploadAndCheckpoint(t *testing.T) {
	e := newEnv(t, nil)
	want := map[string]int{}
	push := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			line := fmt.Sprint("line ", i)
			if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: labels.FromStrings("job", fmt.Sprint("j", i%3)), Entries: []logql.Entry{{Timestamp: ts(i), Line: line}}}}); err != nil {
				t.Fatal(err)
			}
			want[line]++
		}
	}
	check := func(stage string) { t.Helper(); checkLines(t, e, `{job=~"j.*"}`, want, stage) }
	push(0, 90)
	crash := errors.New("injected crash after index upload")
	e.store.afterIndexHook = func() error { return crash }
	if err := e.store.Flush(context.Background(), true); !errors.Is(err, crash) {
		t.Fatalf("flush: %v, want the injected crash", err)
	}
	push(90, 120) // after the interrupted flush: in the WAL only
	e.bkt = nil
	e.open() // unclean: no Close
	check("after the crash")

	// The replayed heads flush again and the store stops uncleanly once more.
	push(120, 150)
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	push(150, 160)
	e.bkt = nil
	e.open()
	check("after a second unclean stop")

	// A WAL directory removed by hand restarts segment numbers; records written then must still replay.
	e.close()
	if err := os.RemoveAll(filepath.Join(e.cfg.DataDir, "wal")); err != nil {
		t.Fatal(err)
	}
	e.bkt = nil
	e.open()
	push(160, 170)
	e.bkt = nil
	e.open()
	check("after the WAL directory was removed")
}

// checkLines reads every line of tenant t1 that selector matches and fails unless each line of want is there
// exactly as many times as want says, and nothing else is.
func checkLines(t *testing.T, e *env, selector string, want map[string]int, stage string) {
	t.Helper()
	var st logql.Stats
	sel, err := logql.ParseLogSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.store.Engine().SelectLogs(context.Background(), e.store.Querier("t1"), logql.LogQuery{Expr: sel, Start: 0, End: ts(10000), Limit: 5000}, &st)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range res {
		for _, en := range s.Entries {
			got[en.Line]++
		}
	}
	for l, n := range want {
		if got[l] != n {
			t.Fatalf("%s: %q found %d times, want %d", stage, l, got[l], n)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d distinct lines, want %d", stage, len(got), len(want))
	}
}

// TestWALOfEarlierRelease replays a WAL directory written by the release before the shared WAL
// (testdata/wal-v1: a checkpoint of 30 lines and a segment of 20 more): every acknowledged line is there once.
func TestWALOfEarlierRelease(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		dir := filepath.Join(c.DataDir, "wal")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"00000002.wal", "checkpoint.00000002"} {
			b, err := os.ReadFile(filepath.Join("testdata", "wal-v1", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	defer e.close()
	want := map[string]int{}
	for i := range 50 {
		want[fmt.Sprint("line ", i)] = 1
	}
	checkLines(t, e, `{job=~"j.*"}`, want, "after replaying the earlier release's WAL")
}
