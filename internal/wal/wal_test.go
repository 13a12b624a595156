package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(p string) []byte {
	b := make([]byte, headerSize, headerSize+len(p))
	binary.LittleEndian.PutUint32(b[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum([]byte(p), castagnoli))
	return append(b, p...)
}

// TestReadFileTails tells a torn last record (a crash mid-write, never acknowledged) from a corrupt record in
// the middle (damage on disk, reported), and says where reading stopped and how many bytes are left.
func TestReadFileTails(t *testing.T) {
	one, two, three := rec("first record"), rec("second record"), rec("third record")
	whole := slices.Concat(one, two, three)
	flipped := slices.Clone(whole)
	flipped[len(one)+headerSize+3] ^= 0xff
	absurd := slices.Concat(one, []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, two)
	for _, tc := range []struct {
		name string
		data []byte
		n    int
		end  int64
		tail Tail
	}{
		{"clean", whole, 3, int64(len(whole)), Clean},
		{"empty", nil, 0, 0, Clean},
		{"torn tail", whole[:len(whole)-4], 2, int64(len(one) + len(two)), Torn},
		{"torn header", whole[:len(whole)-len(three)+5], 2, int64(len(one) + len(two)), Torn},
		{"header promising more than follows", slices.Concat(one, []byte{200, 0, 0, 0, 1, 2, 3, 4, 9, 9}), 1, int64(len(one)), Torn},
		{"corrupt middle record", flipped, 1, int64(len(one)), Corrupt},
		{"absurd length", absurd, 1, int64(len(one)), Corrupt},
	} {
		p := filepath.Join(t.TempDir(), SegmentName(1))
		if err := os.WriteFile(p, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		var got int64
		n, end, tail, err := ReadFile(p, func(b []byte) error { got += headerSize + int64(len(b)); return nil })
		if err != nil || n != tc.n || end != tc.end || tail != tc.tail || got != end {
			t.Errorf("%s: n=%d end=%d tail=%v err=%v read=%d, want n=%d end=%d tail=%v", tc.name, n, end, tail, err, got, tc.n, tc.end, tc.tail)
		}
	}
}

// FuzzReadRecords feeds arbitrary bytes to the record reader: it must never panic or allocate without bound,
// must stop at the offset it reports, and every record it returns must be one that passes its checksum.
func FuzzReadRecords(f *testing.F) {
	f.Add(slices.Concat(rec("one"), rec("two")))
	f.Add(rec("torn")[:7])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0x3f, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var total int64
		n, end, tail, err := ReadRecords(bytes.NewReader(data), int64(len(data)), func(b []byte) error {
			want := binary.LittleEndian.Uint32(data[total+4:])
			if crc32.Checksum(b, castagnoli) != want {
				t.Fatalf("record at %d returned with a bad checksum", total)
			}
			total += headerSize + int64(len(b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if end != total || end > int64(len(data)) || n < 0 {
			t.Fatalf("n=%d end=%d replayed=%d len=%d", n, end, total, len(data))
		}
		if (tail == Clean) != (end == int64(len(data))) {
			t.Fatalf("tail %v but end=%d of %d", tail, end, len(data))
		}
	})
}

func open(t *testing.T, dir string, o Options) *Log {
	t.Helper()
	if o.Fsync == "" {
		o.Fsync = FsyncNever
	}
	l, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendAll(t *testing.T, l *Log, recs ...string) {
	t.Helper()
	for _, r := range recs {
		if _, err := l.Append([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
}

type replayed struct {
	pos Position
	rec string
}

func replayAll(t *testing.T, l *Log) ([]replayed, Replayed) {
	t.Helper()
	var got []replayed
	res, err := l.Replay(func(pos Position, b []byte) error { got = append(got, replayed{pos, string(b)}); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return got, res
}

func recsOf(rs []replayed) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.rec)
	}
	return out
}

// TestReplayInOrderAcrossPolicies appends under each policy, stops without Close (as kill -9 does: the records
// are in the OS), reopens and replays every acknowledged record in order, with the segment it went to.
func TestReplayInOrderAcrossPolicies(t *testing.T) {
	for _, policy := range []string{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, Options{Fsync: policy, FsyncInterval: time.Hour, SegmentBytes: 64})
			var want []replayed
			for i := range 20 {
				r := fmt.Sprintf("record %02d of %s", i, policy)
				seq, err := l.Append([]byte(r))
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, replayed{Position{Segment: seq}, r})
			}
			if want[len(want)-1].pos.Segment == 1 {
				t.Fatal("no rotation at segment_bytes")
			}
			l2 := open(t, dir, Options{Fsync: policy, FsyncInterval: time.Hour})
			defer l2.Close()
			got, res := replayAll(t, l2)
			if !slices.Equal(got, want) || res.Records != len(want) || len(res.Torn)+len(res.Corrupt) > 0 {
				t.Fatalf("replayed %v (%+v), want %v", got, res, want)
			}
			if l2.Current() <= want[len(want)-1].pos.Segment {
				t.Fatalf("new segment %d does not follow the old ones", l2.Current())
			}
			_ = l.Close()
		})
	}
}

// TestTornTailIsCutAndNewRecordsReplay: the partial record of a crash is reported, cut off, and records
// appended after the restart replay after the old ones.
func TestTornTailIsCutAndNewRecordsReplay(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	appendAll(t, l, "a", "b")
	seg := filepath.Join(dir, SegmentName(l.Current()))
	f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 9}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l2 := open(t, dir, Options{})
	got, res := replayAll(t, l2)
	if !slices.Equal(recsOf(got), []string{"a", "b"}) || len(res.Torn) != 1 || res.Torn[0].Lost != 9 || len(res.Corrupt) != 0 {
		t.Fatalf("replayed %v, %+v", got, res)
	}
	if fi, err := os.Stat(seg); err != nil || fi.Size() != res.Torn[0].Offset {
		t.Fatalf("torn tail not cut: %v %v", fi.Size(), err)
	}
	appendAll(t, l2, "c")
	l3 := open(t, dir, Options{})
	defer l3.Close()
	got, res = replayAll(t, l3)
	if !slices.Equal(recsOf(got), []string{"a", "b", "c"}) || len(res.Torn) != 0 {
		t.Fatalf("after the cut: %v, %+v", got, res)
	}
	_ = l.Close()
	_ = l2.Close()
}

// TestCorruptSegmentReportedLaterSegmentsReplay: a record that fails its checksum ends its segment's replay and
// is reported with what was lost; the next segment still replays.
func TestCorruptSegmentReportedLaterSegmentsReplay(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	appendAll(t, l, "one", "two", "three")
	first := l.Current()
	if _, err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, "four")
	_ = l.Close()
	p := filepath.Join(dir, SegmentName(first))
	data, _ := os.ReadFile(p)
	data[len(rec("one"))+headerSize] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	l2 := open(t, dir, Options{})
	defer l2.Close()
	got, res := replayAll(t, l2)
	if !slices.Equal(recsOf(got), []string{"one", "four"}) {
		t.Fatalf("replayed %v", got)
	}
	want := Damage{File: p, Offset: int64(len(rec("one"))), Lost: int64(len(rec("two")) + len(rec("three"))), Replayed: 1}
	if len(res.Corrupt) != 1 || res.Corrupt[0] != want || len(res.Torn) != 0 {
		t.Fatalf("damage %+v, want %+v", res, want)
	}
}

// TestCheckpointReplacesSegments: after a checkpoint, replay gives the checkpoint's records (marked, with its
// number) then the records after it; the segments before it and older checkpoints are gone.
func TestCheckpointReplacesSegments(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	appendAll(t, l, "a", "b")
	seq, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, "c")
	if err := l.Checkpoint(seq, [][]byte{[]byte("state of a and b")}); err != nil {
		t.Fatal(err)
	}
	seq2, _ := l.Rotate()
	appendAll(t, l, "d")
	if err := l.Checkpoint(seq2, [][]byte{[]byte("state of a to c")}); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, "e")
	if err := l.Checkpoint(seq+5, nil); err == nil {
		t.Fatal("a checkpoint beyond the current segment: want an error")
	}
	l2 := open(t, dir, Options{})
	defer l2.Close()
	got, _ := replayAll(t, l2)
	want := []replayed{{Position{seq2, true}, "state of a to c"}, {Position{seq2, false}, "d"}, {Position{seq2, false}, "e"}}
	if !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{SegmentName(seq2), SegmentName(l2.Current()), CheckpointName(seq2)}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	_ = l.Close()
}

// TestNumbering: new segments follow existing segments, the newest checkpoint and FirstSegment, so that a store
// that remembers segment numbers never sees them reused; an empty segment is removed at Close.
func TestNumbering(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{FirstSegment: 7})
	if l.Current() != 7 {
		t.Fatalf("first segment %d, want 7", l.Current())
	}
	appendAll(t, l, "x")
	seq, _ := l.Rotate()
	if err := l.Checkpoint(seq, [][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil { // segment 8 is empty: removed
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SegmentName(8))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty segment kept: %v", err)
	}
	l2 := open(t, dir, Options{})
	defer l2.Close()
	if l2.Current() != 8 {
		t.Fatalf("segment after checkpoint 8 is %d, want 8", l2.Current())
	}
	if err := l2.Remove(l2.Current()); err == nil {
		t.Fatal("removing the current segment: want an error")
	}
}

// TestEarlierReleaseNames: a trace store WAL of an earlier release (16-digit segment names) and an unfinished
// checkpoint are tidied at Open, and the old records replay.
func TestEarlierReleaseNames(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"0000000000000003.wal":     slices.Concat(rec("old 3a"), rec("old 3b")),
		"0000000000000012.wal":     rec("old 12"),
		"checkpoint.00000002.tmp":  rec("half written"),
		"checkpoint.0000000000002": rec("old checkpoint"),
		"notes.txt":                []byte("left alone"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := open(t, dir, Options{})
	defer l.Close()
	got, _ := replayAll(t, l)
	want := []replayed{{Position{2, true}, "old checkpoint"}, {Position{3, false}, "old 3a"}, {Position{3, false}, "old 3b"}, {Position{12, false}, "old 12"}}
	if !slices.Equal(got, want) || l.Current() != 13 {
		t.Fatalf("replayed %v current %d, want %v and 13", got, l.Current(), want)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"00000003.wal", "00000012.wal", "00000013.wal", "checkpoint.00000002", "notes.txt"}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
}

// TestWriteErrorRecovers fails one append (as a full disk does) and checks that the log takes the next append,
// and that replay finds every acknowledged record and not the failed one.
func TestWriteErrorRecovers(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	appendAll(t, l, "acknowledged 1")
	// A read-only handle: the write fails, and so does the truncate, which exercises the fallback to a new
	// segment.
	l.mu.Lock()
	good := l.f
	ro, err := os.Open(filepath.Join(dir, SegmentName(l.seq)))
	if err != nil {
		t.Fatal(err)
	}
	l.f = ro
	l.mu.Unlock()
	if _, err := l.Append([]byte("refused")); err == nil {
		t.Fatal("append to a read-only file: want an error")
	}
	_ = good.Close()
	_ = ro.Close()
	appendAll(t, l, "acknowledged 2")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := open(t, dir, Options{})
	defer l2.Close()
	got, res := replayAll(t, l2)
	if !slices.Equal(recsOf(got), []string{"acknowledged 1", "acknowledged 2"}) || len(res.Corrupt) > 0 {
		t.Fatalf("replayed %v (%+v), want the two acknowledged records", got, res)
	}
}

// TestConcurrentAppendsAlways: concurrent appends under the always policy (group commit) all replay.
func TestConcurrentAppendsAlways(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{Fsync: FsyncAlways, SegmentBytes: 1 << 10})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := l.Append([]byte(fmt.Sprintf("w%d-%03d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	l2 := open(t, dir, Options{})
	defer l2.Close()
	got, _ := replayAll(t, l2)
	if len(got) != 200 {
		t.Fatalf("replayed %d records, want 200", len(got))
	}
	last := map[string]string{}
	for _, r := range got {
		w := r.rec[:2]
		if r.rec <= last[w] {
			t.Fatalf("%s replayed after %s", r.rec, last[w])
		}
		last[w] = r.rec
	}
}

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        Policy
		fsync    string
		interval time.Duration
		warnings int
		err      string
	}{
		{"new keys", Policy{Fsync: "interval", FsyncInterval: 2 * time.Second}, FsyncInterval, 2 * time.Second, 0, ""},
		{"deprecated batch", Policy{Fsync: "always", FsyncInterval: time.Second, Sync: "batch", SyncInterval: 3 * time.Second}, FsyncInterval, 3 * time.Second, 2, ""},
		{"deprecated none", Policy{Fsync: "always", Sync: "none"}, FsyncNever, 0, 1, ""},
		{"deprecated always", Policy{Fsync: "never", Sync: "always"}, FsyncAlways, 0, 1, ""},
		{"bad deprecated value", Policy{Fsync: "always", Sync: "sometimes"}, "always", 0, 1, `wal.sync: "sometimes" is not one of always, batch, none`},
		{"bad policy", Policy{Fsync: "sometimes"}, "sometimes", 0, 0, `wal.fsync: "sometimes" is not one of always, interval, never`},
		{"interval without period", Policy{Fsync: "interval"}, FsyncInterval, 0, 0, "wal.fsync_interval: must be positive"},
		{"negative deprecated period", Policy{Fsync: "always", SyncInterval: -time.Second}, FsyncAlways, -time.Second, 1, "wal.sync_interval: must not be negative"},
	} {
		fsync, interval, warnings := tc.p.Effective()
		if fsync != tc.fsync || interval != tc.interval || len(warnings) != tc.warnings {
			t.Errorf("%s: Effective = %q %v %q", tc.name, fsync, interval, warnings)
		}
		for _, w := range warnings {
			if !strings.Contains(w, "deprecated") {
				t.Errorf("%s: warning %q does not say deprecated", tc.name, w)
			}
		}
		err := tc.p.Validate()
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.err)
		}
	}
}

// TestCheckpointFrom: records made one at a time in one reused buffer are written as made; an error while
// making them leaves the log as it was.
func TestCheckpointFrom(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	appendAll(t, l, "a", "b")
	seq, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, "c")
	failing := func() ([]byte, error) { return nil, errors.New("head block unreadable") }
	if err := l.CheckpointFrom(seq, failing); err == nil {
		t.Fatal("a failing record: want an error")
	}
	var buf []byte
	n := 0
	next := func() ([]byte, error) {
		if n == 3 {
			return nil, nil
		}
		n++
		buf = append(buf[:0], fmt.Sprint("state ", n)...)
		return buf, nil
	}
	l2 := open(t, dir, Options{})
	got, _ := replayAll(t, l2)
	_ = l2.Close()
	want := []replayed{{Position{1, false}, "a"}, {Position{1, false}, "b"}, {Position{seq, false}, "c"}}
	if !slices.Equal(got, want) {
		t.Fatalf("after a failed checkpoint replayed %v, want %v", got, want)
	}
	if err := l.CheckpointFrom(seq, next); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	l3 := open(t, dir, Options{})
	defer l3.Close()
	got, _ = replayAll(t, l3)
	want = []replayed{{Position{seq, true}, "state 1"}, {Position{seq, true}, "state 2"}, {Position{seq, true}, "state 3"}, {Position{seq, false}, "c"}}
	if !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
}
