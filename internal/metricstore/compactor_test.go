package metricstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/testutil"
)

func testMeta(n uint64, minH, maxH int64, sources ...uint64) tsdb.BlockMeta {
	m := tsdb.BlockMeta{ULID: ulid.ULID{15: byte(n)}, MinTime: minH * 3600_000, MaxTime: maxH * 3600_000}
	for _, s := range sources {
		m.Compaction.Sources = append(m.Compaction.Sources, ulid.ULID{15: byte(s)})
	}
	return m
}

func ids(ms []tsdb.BlockMeta) []int {
	out := []int{}
	for _, m := range ms {
		out = append(out, int(m.ULID[15]))
	}
	sort.Ints(out)
	return out
}

func TestPlanBucketCompaction(t *testing.T) {
	h12, h24 := int64(12*3600_000), int64(24*3600_000)
	ranges := []int64{h12, h24}
	for _, tc := range []struct {
		name  string
		metas []tsdb.BlockMeta
		want  []int
	}{
		{"nothing", nil, []int{}},
		{"one block", []tsdb.BlockMeta{testMeta(1, 0, 2)}, []int{}},
		{"incomplete 12h window waits", []tsdb.BlockMeta{testMeta(1, 0, 2), testMeta(2, 2, 4)}, []int{}},
		{"complete 12h window", []tsdb.BlockMeta{testMeta(1, 0, 2), testMeta(2, 2, 4), testMeta(3, 12, 14)}, []int{1, 2}},
		{"oldest window first", []tsdb.BlockMeta{testMeta(3, 12, 14), testMeta(4, 14, 16), testMeta(1, 0, 2), testMeta(2, 2, 4), testMeta(5, 24, 26)}, []int{1, 2}},
		{"overlap compacts at once", []tsdb.BlockMeta{testMeta(1, 0, 2), testMeta(2, 0, 2)}, []int{1, 2}},
		{"12h blocks into 24h", []tsdb.BlockMeta{testMeta(1, 0, 12), testMeta(2, 12, 24), testMeta(3, 24, 26)}, []int{1, 2}},
		{"full 24h block alone stays", []tsdb.BlockMeta{testMeta(1, 0, 24), testMeta(2, 24, 26)}, []int{}},
		{"late 2h block into a 24h block", []tsdb.BlockMeta{testMeta(1, 0, 24), testMeta(2, 4, 6), testMeta(3, 24, 26)}, []int{1, 2}},
		{"block across a 12h edge goes into 24h", []tsdb.BlockMeta{testMeta(1, 11, 13), testMeta(2, 13, 15), testMeta(3, 30, 32)}, []int{1, 2}},
		{"block across a 24h edge is left", []tsdb.BlockMeta{testMeta(1, 23, 25), testMeta(2, 25, 27), testMeta(3, 50, 52)}, []int{}},
		{"negative times", []tsdb.BlockMeta{testMeta(1, -24, -22), testMeta(2, -22, -20), testMeta(3, 0, 2)}, []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(planBucketCompaction(tc.metas, ranges)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("plan = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSupersededBlocks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		metas []tsdb.BlockMeta
		want  []int
	}{
		{"disjoint", []tsdb.BlockMeta{testMeta(1, 0, 2), testMeta(2, 2, 4)}, []int{}},
		{"sources inside a merged block", []tsdb.BlockMeta{testMeta(1, 0, 2), testMeta(2, 2, 4), testMeta(9, 0, 4, 1, 2)}, []int{1, 2}},
		{"merged of merged", []tsdb.BlockMeta{testMeta(5, 0, 4, 1, 2), testMeta(9, 0, 8, 1, 2, 3, 4)}, []int{5}},
		{"same sources: the newer stays", []tsdb.BlockMeta{testMeta(5, 0, 4, 1, 2), testMeta(6, 0, 4, 1, 2)}, []int{5}},
		{"partly covered stays", []tsdb.BlockMeta{testMeta(5, 0, 4, 1, 2), testMeta(6, 0, 4, 2, 3)}, []int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []tsdb.BlockMeta
			for id := range supersededBlocks(tc.metas) {
				got = append(got, tsdb.BlockMeta{ULID: id})
			}
			if fmt.Sprint(ids(got)) != fmt.Sprint(tc.want) {
				t.Errorf("superseded = %v, want %v", ids(got), tc.want)
			}
		})
	}
}

// bucketBlockList returns the complete blocks in the tenant's bucket (meta.json present) with their spans in
// hours from day, and whether any deletion mark is left.
func bucketBlockList(t *testing.T, bkt bucket.Bucket, day time.Time) (spans []string, marks int) {
	t.Helper()
	ctx := context.Background()
	_ = bkt.Iter(ctx, tenant.Default+"/", func(name string) error {
		if ok, _ := bkt.Exists(ctx, name+deletionMarkFile); ok {
			marks++
		}
		b, err := bucket.ReadAll(ctx, bkt, name+"meta.json")
		if err != nil {
			return nil
		}
		var m tsdb.BlockMeta
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("meta.json of %s: %v", name, err)
			return nil
		}
		spans = append(spans, fmt.Sprintf("%d-%dh", (m.MinTime-day.UnixMilli())/3600_000, (m.MaxTime-day.UnixMilli()+3599_999)/3600_000))
		return nil
	})
	sort.Strings(spans)
	return spans, marks
}

// compactionFixture ships 2h blocks of a day and some hours of the next (two series, a sample a minute) plus a
// copy of one block under another ULID (an overlapping duplicate), and returns the store reopened without its
// WAL, so that queries read the bucket.
func compactionFixture(t *testing.T, cfg Config) (day time.Time) {
	t.Helper()
	ctx := context.Background()
	day = time.Now().Add(-5 * 24 * time.Hour).Truncate(24 * time.Hour)
	s := openStore(t, cfg)
	tn, err := s.Tenant(ctx, tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	app := tn.Appender(ctx)
	for i := range 30 * 60 {
		for _, name := range []string{"cpu", "mem"} {
			if _, err := app.Append(0, labels.FromStrings("__name__", name), day.Add(time.Duration(i)*time.Minute).UnixMilli(), float64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := tn.DB().Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := tn.Ship(ctx); err != nil || n < 13 {
		t.Fatalf("shipped %d blocks (%v), want at least 13", n, err)
	}
	// A duplicate of the 4h-6h block under a new ULID, as a second shipper of the same data would leave.
	var src *tsdb.Block
	for _, b := range tn.DB().Blocks() {
		if b.Meta().MinTime == day.Add(4*time.Hour).UnixMilli() {
			src = b
		}
	}
	if src == nil {
		t.Fatal("no local 4h-6h block")
	}
	dup := filepath.Join(t.TempDir(), "dup")
	if err := os.CopyFS(dup, os.DirFS(src.Dir())); err != nil {
		t.Fatal(err)
	}
	m := src.Meta()
	m.ULID = ulid.MustNew(ulid.Now(), nil)
	m.Compaction.Sources = []ulid.ULID{m.ULID}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dup, "meta.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := uploadBlock(ctx, s.Bucket(), tenant.Default, dup, m.ULID); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, tenant.Default, "wal")); err != nil {
		t.Fatal(err)
	}
	return day
}

// filesystemFixture is compactionFixture built once on the filesystem backend, copied for each subtest (the
// filesystem bucket lives under the data directory).
type filesystemFixture struct {
	dir string
	day time.Time
}

func newFilesystemFixture(t *testing.T) filesystemFixture {
	cfg := testConfig(t)
	cfg.Storage.Enabled = true
	cfg.Storage.ShipInterval, cfg.Storage.SyncInterval, cfg.Storage.CompactionInterval = time.Hour, time.Hour, time.Hour
	return filesystemFixture{dir: cfg.DataDir, day: compactionFixture(t, cfg)}
}

// copy fills cfg's (empty) data directory with the fixture.
func (f filesystemFixture) copy(t *testing.T, cfg Config) time.Time {
	t.Helper()
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(cfg.DataDir, os.DirFS(f.dir)); err != nil {
		t.Fatal(err)
	}
	return f.day
}

// checkDayFromBucket checks that the first day reads back exactly once: 1440 samples per series, the right sum.
func checkDayFromBucket(t *testing.T, base string, day time.Time) {
	t.Helper()
	at := day.Add(24*time.Hour - time.Millisecond)
	want := map[string]string{"map[]": fmt.Sprint(2 * 1440)}
	if got := instant(t, base, `count_over_time(cpu[1d]) + count_over_time(mem[1d])`, at); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("samples of the first day = %v, want %v (every sample once)", got, want)
	}
	if got := instant(t, base, `sum_over_time(cpu[1d])`, at); got["map[]"] != fmt.Sprint(1439*1440/2) {
		t.Errorf("sum of cpu over the first day = %v, want %d", got, 1439*1440/2)
	}
}

// TestCompactBucket merges shipped 2h blocks into 12h and then a 24h block, deduplicating an overlapping
// copy, on the filesystem and on S3; sources are deleted and queries read every sample once.
func TestCompactBucket(t *testing.T) {
	fs := newFilesystemFixture(t)
	for _, backend := range []string{bucket.BackendFilesystem, bucket.BackendS3} {
		t.Run(backend, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Storage.Enabled = true
			cfg.Storage.ShipInterval, cfg.Storage.SyncInterval, cfg.Storage.CompactionInterval = time.Hour, time.Hour, time.Hour
			var day time.Time
			if backend == bucket.BackendFilesystem {
				day = fs.copy(t, cfg)
			} else {
				s3 := testutil.StartS3(t)
				s3.MakeBucket("metrics")
				cfg.Storage.Config = bucket.Config{Backend: bucket.BackendS3, Prefix: "metrics", S3: bucket.S3Config{
					Bucket: "metrics", Endpoint: s3.Endpoint, Insecure: true, ForcePathStyle: true,
					AccessKey: s3.AccessKey, SecretKey: configopaque.String(s3.SecretKey)}}
				day = compactionFixture(t, cfg)
			}
			ctx := context.Background()
			s := openStore(t, cfg)
			tn, _ := s.Tenant(ctx, tenant.Default)
			_, srv := serveStore(t, s)
			before, _ := bucketBlockList(t, s.Bucket(), day)
			checkDayFromBucket(t, srv.URL, day)

			n, err := tn.CompactBucket(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The 2h blocks were read by the query above, so they come from the query cache; the two 12h blocks
			// made in this pass come from the bucket.
			if got := fmt.Sprint(tn.blocks.compactSources); got != "map[bucket:2 cache:13]" {
				t.Errorf("compaction sources %s, want map[bucket:2 cache:13]", got)
			}
			spans, marks := bucketBlockList(t, s.Bucket(), day)
			// Day one: 12 blocks + the duplicate -> 0-12h, 12-24h -> 0-24h. Day two stays at 2h (window incomplete).
			wantSpans := []string{"0-24h", "24-26h", "26-28h"}
			if fmt.Sprint(spans) != fmt.Sprint(wantSpans) || marks != 0 || n != 3 {
				t.Errorf("after compaction: %d merges, blocks %v, %d deletion marks; want 3 merges, %v, 0 marks (before: %v)", n, spans, marks, wantSpans, before)
			}
			checkDayFromBucket(t, srv.URL, day)
			if n, err := tn.CompactBucket(ctx); n != 0 || err != nil {
				t.Errorf("second pass: %d merges, %v; want none", n, err)
			}
		})
	}
	t.Run("crash", func(t *testing.T) { testCompactBucketCrash(t, fs) })
}

// testCompactBucketCrash (run by TestCompactBucket, sharing its fixture) stops a compaction after each of its steps, as a crash would, restarts the store and
// checks that every sample reads back once, and that the next pass finishes the work.
func testCompactBucketCrash(t *testing.T, fs filesystemFixture) {
	t.Cleanup(func() { compactionFault = nil })
	for _, step := range []string{"uploaded", "marked"} {
		t.Run("crash after "+step, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Storage.Enabled = true
			cfg.Storage.ShipInterval, cfg.Storage.SyncInterval, cfg.Storage.CompactionInterval = time.Hour, time.Hour, time.Hour
			day := fs.copy(t, cfg)
			ctx := context.Background()

			crash := errors.New("simulated crash")
			compactionFault = func(s string) error {
				if s == step {
					return crash
				}
				return nil
			}
			s := openStore(t, cfg)
			tn, _ := s.Tenant(ctx, tenant.Default)
			if _, err := tn.CompactBucket(ctx); !errors.Is(err, crash) {
				t.Fatalf("compaction: %v, want the simulated crash", err)
			}
			compactionFault = nil
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// A partial upload of an old compaction, to be cleaned up.
			partial := ulid.MustNew(ulid.Timestamp(time.Now().Add(-3*time.Hour)), nil)
			if err := s.Bucket().Upload(ctx, bucket.Join(tenant.Default, partial.String(), "index"), strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}

			s = openStore(t, cfg)
			tn, _ = s.Tenant(ctx, tenant.Default)
			_, srv := serveStore(t, s)
			checkDayFromBucket(t, srv.URL, day)
			if _, err := tn.CompactBucket(ctx); err != nil {
				t.Fatal(err)
			}
			spans, marks := bucketBlockList(t, s.Bucket(), day)
			if want := []string{"0-24h", "24-26h", "26-28h"}; fmt.Sprint(spans) != fmt.Sprint(want) || marks != 0 {
				t.Errorf("after the next pass: blocks %v, %d marks; want %v, 0 marks", spans, marks, want)
			}
			if ok, _ := s.Bucket().Exists(ctx, bucket.Join(tenant.Default, partial.String(), "index")); ok {
				t.Error("the partial upload is still in the bucket")
			}
			checkDayFromBucket(t, srv.URL, day)
		})
	}
}

// TestLinkLocalBlock checks where the compactor takes a source block from: the TSDB directory, then the query
// cache, else nowhere (it is downloaded); a copy is made of hard links and survives the original's deletion.
func TestLinkLocalBlock(t *testing.T) {
	cfg := testConfig(t)
	cfg.Storage.Enabled = true
	s := openStore(t, cfg)
	tn, err := s.Tenant(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	bb := tn.blocks
	id := ulid.MustNew(ulid.Now(), nil)
	files := map[string]string{"meta.json": `{"ulid":"` + id.String() + `"}`, "index": "idx", "chunks/000001": "chk", "tombstones": "ts"}
	makeBlock := func(dir string) {
		for name, content := range files {
			p := filepath.Join(dir, id.String(), filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	scratch := t.TempDir()
	for _, tc := range []struct {
		name   string
		setup  func()
		source string
	}{
		{"in the TSDB directory", func() { makeBlock(tn.dir) }, "local"},
		{"in the query cache only", func() { _ = os.RemoveAll(filepath.Join(tn.dir, id.String())); makeBlock(bb.cache) }, "cache"},
		{"without meta.json", func() { _ = os.Remove(filepath.Join(bb.cache, id.String(), "meta.json")) }, ""},
		{"nowhere", func() { _ = os.RemoveAll(filepath.Join(bb.cache, id.String())) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			dst := filepath.Join(scratch, tc.name)
			if got := bb.linkLocalBlock(id, dst); got != tc.source {
				t.Fatalf("source %q, want %q", got, tc.source)
			}
			if tc.source == "" {
				if _, err := os.Stat(dst); !os.IsNotExist(err) {
					t.Errorf("copy left behind: %v", err)
				}
				return
			}
			for name, content := range files {
				b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(name)))
				if err != nil || string(b) != content {
					t.Errorf("%s: %q %v, want %q", name, b, err, content)
				}
			}
		})
	}
}
