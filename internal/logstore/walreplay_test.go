package logstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// TestReplayFileTails tells a torn last record (a crash mid-write) from a corrupt record in the middle (damage
// on disk, which the store reports).
func TestReplayFileTails(t *testing.T) {
	rec := func(p string) []byte {
		b := make([]byte, 8, 8+len(p))
		binary.LittleEndian.PutUint32(b[0:], uint32(len(p)))
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), castagnoli))
		return append(b, p...)
	}
	one, two, three := rec("first record"), rec("second record"), rec("third record")
	whole := append(append(append([]byte{}, one...), two...), three...)
	flipped := append([]byte{}, whole...)
	flipped[len(one)+8+3] ^= 0xff
	for _, tc := range []struct {
		name    string
		data    []byte
		n       int
		end     int64
		corrupt bool
	}{
		{"clean", whole, 3, int64(len(whole)), false},
		{"torn tail", whole[:len(whole)-4], 2, int64(len(one) + len(two)), false},
		{"corrupt middle record", flipped, 1, int64(len(one)), true},
	} {
		p := filepath.Join(t.TempDir(), "00000001.wal")
		if err := os.WriteFile(p, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		n, end, corrupt, err := replayFile(p, func([]byte) error { return nil })
		if err != nil || n != tc.n || end != tc.end || corrupt != tc.corrupt {
			t.Errorf("%s: n=%d end=%d corrupt=%v err=%v, want n=%d end=%d corrupt=%v", tc.name, n, end, corrupt, err, tc.n, tc.end, tc.corrupt)
		}
	}
}

// TestWALWriteErrorRecovers fails one append (as a full disk does) and checks that the WAL takes the next
// append, and that replay finds every acknowledged record and not the failed one.
func TestWALWriteErrorRecovers(t *testing.T) {
	dir := t.TempDir()
	w, err := openWAL(dir, WALConfig{Fsync: FsyncNever}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.append([]byte("acknowledged 1")); err != nil {
		t.Fatal(err)
	}
	// Swap in a read-only handle: the next flush fails, and so does the truncate, which exercises the fallback
	// to a new segment.
	w.mu.Lock()
	good := w.f
	ro, err := os.Open(filepath.Join(dir, segName(w.seq)))
	if err != nil {
		t.Fatal(err)
	}
	w.f = ro
	w.w.Reset(ro)
	w.mu.Unlock()
	if err := w.append([]byte("refused")); err == nil {
		t.Fatal("append to a read-only file: want an error")
	}
	_ = good.Close()
	_ = ro.Close()
	if err := w.append([]byte("acknowledged 2")); err != nil {
		t.Fatalf("append after a write error: %v", err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	w2, err := openWAL(dir, WALConfig{Fsync: FsyncNever}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.close()
	var got []string
	if _, damaged, err := w2.replay(func(_ int, b []byte) error { got = append(got, string(b)); return nil }); err != nil || len(damaged) > 0 {
		t.Fatalf("replay: %v %v", err, damaged)
	}
	if len(got) != 2 || got[0] != "acknowledged 1" || got[1] != "acknowledged 2" {
		t.Fatalf("replayed %q, want the two acknowledged records", got)
	}
}

// FuzzReplayFile feeds arbitrary WAL bytes to replay: no panic, and it stops at the offset it reports.
func FuzzReplayFile(f *testing.F) {
	rec := func(p string) []byte {
		b := make([]byte, 8, 8+len(p))
		binary.LittleEndian.PutUint32(b[0:], uint32(len(p)))
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), castagnoli))
		return append(b, p...)
	}
	f.Add(append(rec("one"), rec("two")...))
	f.Add(rec("torn")[:7])
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "00000001.wal")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var total int64
		_, end, _, err := replayFile(p, func(b []byte) error { total += 8 + int64(len(b)); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if end != total || end > int64(len(data)) {
			t.Fatalf("end=%d replayed=%d len=%d", end, total, len(data))
		}
	})
}

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
	if err := os.RemoveAll(filepath.Join(e.cfg.Dir, "wal")); err != nil {
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
