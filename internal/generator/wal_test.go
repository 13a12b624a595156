package generator

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/wal"
)

func walConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.WAL.Dir = t.TempDir()
	return cfg
}

func values(t testing.TB, g *Generator, now time.Time) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for k, s := range collectOne(t, g, now, tenantA) {
		out[k] = s.v
	}
	return out
}

// crash abandons g the way kill -9 would: no Close, no checkpoint. Only the file handle is released so the
// test does not leak it.
func crash(g *Generator) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = g.wal.Close()
	g.closed = true
}

func equalValues(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d series, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestRestartWithoutShutdownContinuesCounters(t *testing.T) {
	for _, tc := range []struct {
		name       string
		checkpoint bool
		fsync      string
		legacy     string // the deprecated key sync
	}{
		{"log only", false, wal.FsyncAlways, ""},
		{"checkpoint then log", true, wal.FsyncAlways, ""},
		{"fsync never", true, wal.FsyncNever, ""},
		{"fsync interval", true, wal.FsyncInterval, ""},
		{"deprecated sync none", true, wal.FsyncAlways, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := walConfig(t)
			cfg.WAL.Fsync, cfg.WAL.Sync = tc.fsync, tc.legacy
			g1 := mustNew(t, cfg)
			if err := g1.Consume(tenantA, t0, shopTrace(1)); err != nil {
				t.Fatal(err)
			}
			if tc.checkpoint {
				if err := g1.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			if err := g1.Consume(tenantA, t0.Add(time.Second), shopTrace(2)); err != nil {
				t.Fatal(err)
			}
			if err := g1.Tick(t0.Add(10500 * time.Millisecond)); err != nil { // expires trace 1's client halves only
				t.Fatal(err)
			}
			before := values(t, g1, t0.Add(13*time.Second))
			pending := g1.Stats().PendingEdges
			crash(g1)

			g2 := mustNew(t, cfg)
			defer g2.Close()
			equalValues(t, values(t, g2, t0.Add(13*time.Second)), before)
			if p := g2.Stats().PendingEdges; p != pending || p != 2 {
				t.Errorf("pending edges after restart = %d, want %d (trace 2's clients)", p, pending)
			}

			// Counters continue from where they were.
			if err := g2.Consume(tenantA, t0.Add(20*time.Second), shopTrace(3)); err != nil {
				t.Fatal(err)
			}
			after := values(t, g2, t0.Add(21*time.Second))
			k := ser("traces_service_graph_request_total", "client", "frontend", "server", "backend")
			if before[k] != 2 || after[k] != 3 {
				t.Errorf("%s: before crash %v, after restart and one more trace %v; want 2 then 3", k, before[k], after[k])
			}
		})
	}
}

// TestPendingEdgeSurvivesRestart: the client half arrives before the crash, the server half after it.
func TestPendingEdgeSurvivesRestart(t *testing.T) {
	cfg := walConfig(t)
	g1 := mustNew(t, cfg)
	client := buildTraces(1, span{svc: "a", name: "call", kind: ptrace.SpanKindClient, id: 1, parent: 9, dur: time.Millisecond})
	server := buildTraces(1, span{svc: "b", name: "serve", kind: ptrace.SpanKindServer, id: 2, parent: 1, dur: time.Millisecond})
	if err := g1.Consume(tenantA, t0, client); err != nil {
		t.Fatal(err)
	}
	crash(g1)
	g2 := mustNew(t, cfg)
	defer g2.Close()
	if err := g2.Consume(tenantA, t0.Add(time.Second), server); err != nil {
		t.Fatal(err)
	}
	got := values(t, g2, t0.Add(2*time.Second))
	if v := got[ser("traces_service_graph_request_total", "client", "a", "server", "b")]; v != 1 {
		t.Errorf("edge a->b = %v, want 1", v)
	}
}

func TestTornTailIsCut(t *testing.T) {
	cfg := walConfig(t)
	g1 := mustNew(t, cfg)
	if err := g1.Consume(tenantA, t0, shopTrace(1)); err != nil {
		t.Fatal(err)
	}
	before := values(t, g1, t0)
	crash(g1)
	segs, _ := filepath.Glob(filepath.Join(cfg.WAL.Dir, "*.wal"))
	path := segs[len(segs)-1]
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A record header promising more bytes than follow: a write cut short by the crash.
	if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	g2 := mustNew(t, cfg)
	equalValues(t, values(t, g2, t0), before)
	// New records go after the cut, and replay again.
	if err := g2.Consume(tenantA, t0, shopTrace(2)); err != nil {
		t.Fatal(err)
	}
	crash(g2)
	g3 := mustNew(t, cfg)
	defer g3.Close()
	if v := values(t, g3, t0)[ser("traces_service_graph_request_total", "client", "frontend", "server", "backend")]; v != 2 {
		t.Errorf("after torn tail and another batch: request_total = %v, want 2", v)
	}
}

func TestCloseCheckpointsAndTruncatesLog(t *testing.T) {
	cfg := walConfig(t)
	cfg.WAL.CheckpointInterval = time.Minute
	g1 := mustNew(t, cfg)
	for i := range 5 {
		if err := g1.Consume(tenantA, t0.Add(time.Duration(i)*time.Second), shopTrace(byte(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if g1.Stats().WALSizeBytes == 0 {
		t.Fatal("nothing in the wal")
	}
	// A tick past the checkpoint interval checkpoints and starts an empty log.
	if err := g1.Tick(t0); err != nil {
		t.Fatal(err)
	}
	if err := g1.Tick(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s := g1.Stats().WALSizeBytes; s != 0 {
		t.Errorf("wal size after checkpoint = %d, want 0", s)
	}
	before := values(t, g1, t0.Add(2*time.Minute))
	if err := g1.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything is in the one checkpoint: no segment holds a record.
	entries, _ := os.ReadDir(cfg.WAL.Dir)
	var records, checkpoints int
	for _, e := range entries {
		fi, _ := e.Info()
		switch {
		case filepath.Ext(e.Name()) == ".wal" && fi.Size() > 0:
			records++
		case strings.HasPrefix(e.Name(), "checkpoint."):
			checkpoints++
		}
	}
	if records != 0 || checkpoints != 1 {
		t.Errorf("after close: %d segments with records and %d checkpoints, want 0 and 1", records, checkpoints)
	}
	g2 := mustNew(t, cfg)
	defer g2.Close()
	equalValues(t, values(t, g2, t0.Add(2*time.Minute)), before)
}

// TestBucketChangeRestartsGroups: after a restart with other buckets the old latency counts cannot be mapped,
// so the whole span-metrics group restarts while the service graph keeps counting.
func TestBucketChangeRestartsGroups(t *testing.T) {
	cfg := walConfig(t)
	g1 := mustNew(t, cfg)
	if err := g1.Consume(tenantA, t0, shopTrace(1)); err != nil {
		t.Fatal(err)
	}
	if err := g1.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.SpanMetrics.HistogramBuckets = []float64{0.1, 1}
	g2 := mustNew(t, cfg)
	defer g2.Close()
	if err := g2.Consume(tenantA, t0.Add(time.Second), shopTrace(2)); err != nil {
		t.Fatal(err)
	}
	got := values(t, g2, t0.Add(time.Second))
	calls := ser("traces_spanmetrics_calls_total", "service", "backend", "span_name", "GET /api", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_ERROR")
	if got[calls] != 1 {
		t.Errorf("%s = %v, want 1 (restarted)", calls, got[calls])
	}
	if v := got[ser("traces_service_graph_request_total", "client", "frontend", "server", "backend")]; v != 2 {
		t.Errorf("request_total = %v, want 2 (kept)", v)
	}
	if _, ok := got[ser("traces_spanmetrics_latency_bucket", "service", "backend", "span_name", "GET /api", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_ERROR", "le", "0.1")]; !ok {
		t.Errorf("new buckets not in use")
	}
}

func TestCorruptCheckpointFailsClearly(t *testing.T) {
	framed := func(p []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(len(p)))
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)))
		return append(b, p...)
	}
	for _, tc := range []struct {
		name, file string
		data       []byte
	}{
		{"earlier release's checkpoint", legacyCheckpoint, []byte("garbage")},
		{"checkpoint that is not the state", wal.CheckpointName(1), framed([]byte("garbage"))},
		{"checkpoint that fails its checksum", wal.CheckpointName(1), append(framed([]byte(checkpointMagic + "\x00\x00"))[:8], "SPGENCP2\x01\x00"...)},
	} {
		cfg := walConfig(t)
		if err := os.WriteFile(filepath.Join(cfg.WAL.Dir, tc.file), tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: New accepted a corrupt checkpoint", tc.name)
		}
	}
}

// TestWALOfEarlierRelease starts from the files of the release before the shared WAL (testdata/wal-v1: a
// checkpoint after trace 1 and a log with trace 2, never closed): the state is the state at the last accepted
// batch, it moves into the new log, and the old files go.
func TestWALOfEarlierRelease(t *testing.T) {
	cfg := walConfig(t)
	for _, name := range []string{legacyCheckpoint, "wal-00000000000000000001.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", "wal-v1", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.WAL.Dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What the earlier release held: the same batches, in memory only.
	mem := walConfig(t)
	mem.WAL.Dir = ""
	ref := mustNew(t, mem)
	for i, at := range []time.Duration{0, time.Second} {
		if err := ref.Consume(tenantA, t0.Add(at), shopTrace(byte(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	want := values(t, ref, t0.Add(13*time.Second))

	g := mustNew(t, cfg)
	got := values(t, g, t0.Add(13*time.Second))
	equalValues(t, got, want)
	if k := ser("traces_service_graph_request_total", "client", "frontend", "server", "backend"); got[k] != 2 {
		t.Errorf("%s = %v, want 2", k, got[k])
	}
	for _, name := range []string{legacyCheckpoint, "wal-00000000000000000001.log"} {
		if _, err := os.Stat(filepath.Join(cfg.WAL.Dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s of the earlier release still there: %v", name, err)
		}
	}
	// Restarting (without Close) replays the migrated state from the new log.
	crash(g)
	g2 := mustNew(t, cfg)
	defer g2.Close()
	equalValues(t, values(t, g2, t0.Add(13*time.Second)), want)
}

func FuzzDecodeRecord(f *testing.F) {
	g := mustNew(f, testConfig())
	var e encoder
	encodeBatch(&e, g.extract(tenantA, t0.UnixNano(), shopTrace(1)))
	f.Add(append([]byte(nil), e.b...))
	e.b = e.b[:0]
	encodeTick(&e, 12345)
	f.Add(append([]byte(nil), e.b...))
	f.Add([]byte{recBatch, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	// A first-format record (type 1, no start time or multipliers) as the first release wrote it.
	f.Add([]byte{recBatchV1, 1, 'a', 0, 0, 1, 1, 'b', 1, 'c', 2, 0, 0, 2, 4, 16: 0, 40: 0, 41: 0, 42: 0, 43: 0, 44: 1})
	cfg := testConfig()
	cfg.GenerateNativeHistograms = HistogramBoth
	cfg.SpanMetrics.Dimensions = []string{"x"}
	cfg.ServiceGraphs.Dimensions = []string{"y", "x"}
	cfg.ServiceGraphs.EnableVirtualNodeLabel = true
	cfg.ServiceGraphs.EnableMessagingSystemLatencyHistogram = true
	f.Fuzz(func(t *testing.T, p []byte) {
		b, _, err := decodeRecord(p)
		if err != nil || b == nil {
			return
		}
		// Whatever decodes must apply, expire and emit without panicking, and survive an encode/decode round
		// trip unchanged (varints may be non-canonical in the input, so bytes are compared after one trip).
		var e1, e2 encoder
		encodeBatch(&e1, b)
		g := mustNew(t, cfg)
		g.apply(b)
		g.tick(b.now + int64(time.Hour))
		g.Collect(t0)
		b2, _, err := decodeRecord(e1.b)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		encodeBatch(&e2, b2)
		if string(e1.b) != string(e2.b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// TestRestartKeepsEdgeDimensionsAndNativeState: the half-edge's dimensions, multiplier and producer end time,
// and the native histogram buckets survive a crash, from the log alone and from a checkpoint.
func TestRestartKeepsEdgeDimensionsAndNativeState(t *testing.T) {
	for _, checkpoint := range []bool{false, true} {
		cfg := walConfig(t)
		cfg.GenerateNativeHistograms = HistogramBoth
		cfg.ServiceGraphs.Dimensions = []string{"deployment.environment"}
		cfg.ServiceGraphs.EnableClientServerPrefix = true
		cfg.ServiceGraphs.EnableMessagingSystemLatencyHistogram = true
		cfg.ServiceGraphs.SpanMultiplierKey = "ratio"
		g1 := mustNew(t, cfg)
		producer := buildTraces(1, span{svc: "a", name: "publish", kind: ptrace.SpanKindProducer, id: 1, parent: 9, dur: time.Millisecond,
			res: map[string]string{"deployment.environment": "prod"}, dattrs: map[string]float64{"ratio": 0.5}})
		consumer := buildTraces(1, span{svc: "b", name: "process", kind: ptrace.SpanKindConsumer, id: 2, parent: 1, at: 5 * time.Millisecond,
			dur: time.Millisecond, res: map[string]string{"deployment.environment": "dev"}, dattrs: map[string]float64{"ratio": 0.5}})
		root := buildTraces(2, span{svc: "a", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 3 * time.Millisecond})
		for _, td := range []ptrace.Traces{producer, root} {
			if err := g1.Consume(tenantA, t0, td); err != nil {
				t.Fatal(err)
			}
		}
		if checkpoint {
			if err := g1.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
		crash(g1)
		g2 := mustNew(t, cfg)
		if err := g2.Consume(tenantA, t0.Add(time.Second), consumer); err != nil {
			t.Fatal(err)
		}
		if err := g2.Consume(tenantA, t0.Add(time.Second), buildTraces(3, span{svc: "a", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 3 * time.Millisecond})); err != nil {
			t.Fatal(err)
		}
		got := collectOne(t, g2, t0.Add(2*time.Second), tenantA)
		edge := []string{"client", "a", "server", "b", "connection_type", "messaging_system",
			"client_deployment_environment", "prod", "server_deployment_environment", "dev"}
		check(t, got, map[string]float64{
			ser(reqTotal, edge...): 2,
			ser(msgCount, edge...): 2,
			ser(msgSum, edge...):   0.008,
		})
		h := got[ser("traces_service_graph_request_server_seconds", "client", "user", "server", "a", "connection_type", "virtual_node")].h
		if h == nil || h.Count != 2 || h.Schema != 3 {
			t.Errorf("checkpoint %v: native histogram of user->a = %v, want count 2 at schema 3", checkpoint, h)
		}
		if err := g2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeprecatedSyncKeyWarns: wal.sync of earlier releases still sets the policy, with a warning at start.
func TestDeprecatedSyncKeyWarns(t *testing.T) {
	cfg := walConfig(t)
	cfg.WAL.Sync = "none"
	core, logs := observer.New(zap.WarnLevel)
	g, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if fsync, _, _ := cfg.WAL.Effective(); fsync != wal.FsyncNever {
		t.Errorf("sync: none runs as fsync %q, want never", fsync)
	}
	if n := logs.FilterMessageSnippet("wal.sync is deprecated").Len(); n != 1 {
		t.Errorf("%d deprecation warnings, want 1: %v", n, logs.All())
	}
}

// TestNearlyFullDiskRefusesBatches: below wal.min_free_disk_bytes a batch is refused, retryable and naming the
// key, before its WAL record is written, and the state is left as it was; with the check off it is taken.
func TestNearlyFullDiskRefusesBatches(t *testing.T) {
	cfg := walConfig(t)
	cfg.WAL.MinFreeDiskBytes = 1 << 62 // no filesystem here has 4 EiB free
	g := mustNew(t, cfg)
	before := g.Stats()
	err := g.Consume(tenantA, t0, shopTrace(1))
	e, ok := refusal.As(err)
	if !ok || !e.Retryable() || !strings.Contains(err.Error(), "min_free_disk_bytes") {
		t.Fatalf("Consume on a nearly full disk = %v, want a retryable refusal naming min_free_disk_bytes", err)
	}
	if after := g.Stats(); after.ActiveSeries != before.ActiveSeries || after.WALSizeBytes != before.WALSizeBytes {
		t.Errorf("a refused batch changed the state or the WAL: before %+v, after %+v", before, after)
	}
	g.Close()

	cfg.WAL.MinFreeDiskBytes = 0
	g = mustNew(t, cfg)
	defer g.Close()
	if err := g.Consume(tenantA, t0, shopTrace(1)); err != nil {
		t.Fatalf("Consume with the check off: %v", err)
	}
	if g.Stats().ActiveSeries == 0 {
		t.Error("the batch taken with the check off made no series")
	}
}
