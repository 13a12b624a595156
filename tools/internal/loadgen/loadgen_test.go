package loadgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/sprout-otel/sprout/internal/logstore"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string
		want float64
	}{
		{"plain", "1234 (sprout) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3},
		{"command with spaces and parentheses", "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 100 100 0 0 20 0", 2},
		{"truncated", "1234 (x) S 1 2", 0},
		{"garbage", "no parenthesis", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseStatCPU([]byte(tc.stat)); got != tc.want {
				t.Errorf("parseStatCPU = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStatusField(t *testing.T) {
	status := []byte("Name:\tsprout\nVmHWM:\t  123456 kB\nVmRSS:\t 1000 kB\n")
	for _, tc := range []struct {
		key  string
		want string
		ok   bool
	}{
		{"VmHWM", "123456 kB", true},
		{"VmRSS", "1000 kB", true},
		{"RssAnon", "", false},
	} {
		got, ok := statusField(status, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("statusField(%s) = %q %v, want %q %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCountTraceSpans(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"batches and scopeSpans", `{"batches":[{"scopeSpans":[{"spans":[{},{}]},{"spans":[{}]}]},{"scopeSpans":[{"spans":[{}]}]}]}`, 4},
		{"resourceSpans", `{"resourceSpans":[{"scopeSpans":[{"spans":[{},{},{}]}]}]}`, 3},
		{"instrumentationLibrarySpans", `{"batches":[{"instrumentationLibrarySpans":[{"spans":[{}]}]}]}`, 1},
		{"empty trace", `{"batches":[]}`, 0},
		{"not JSON", `trace not found`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CountTraceSpans([]byte(tc.body)); got != tc.want {
				t.Errorf("CountTraceSpans = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestTraceTemplate(t *testing.T) {
	for _, tc := range []struct{ spans, perTrace, traces int }{
		{500, 10, 50},
		{7, 3, 3},
		{1, 1, 1},
	} {
		tpl, err := BuildTraceTemplate(tc.spans, tc.perTrace, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(tpl.Offsets) != tc.traces {
			t.Fatalf("%d spans of %d per trace: %d traces, want %d", tc.spans, tc.perTrace, len(tpl.Offsets), tc.traces)
		}
		// stamp every trace with its own id, as a sender does, and decode: every span carries its trace's id
		body := append([]byte(nil), tpl.Body...)
		for tr, offs := range tpl.Offsets {
			for _, off := range offs {
				binary.BigEndian.PutUint32(body[off:], 0xabcdef01)
				binary.BigEndian.PutUint64(body[off+4:], 0)
				binary.BigEndian.PutUint32(body[off+12:], uint32(tr))
			}
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			t.Fatal(err)
		}
		spans := req.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		if spans.Len() != tc.spans {
			t.Fatalf("decoded %d spans, want %d", spans.Len(), tc.spans)
		}
		for i := 0; i < spans.Len(); i++ {
			id := spans.At(i).TraceID()
			if binary.BigEndian.Uint32(id[:4]) != 0xabcdef01 || int(binary.BigEndian.Uint32(id[12:])) != i/tc.perTrace {
				t.Fatalf("span %d has trace id %x", i, id)
			}
		}
	}
}

func TestMetricRequests(t *testing.T) {
	reqs, err := buildMetricRequests(1000, 1200, 500, true, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 || reqs[0].n != 500 || reqs[2].n != 200 {
		t.Fatalf("got %d requests", len(reqs))
	}
	ts := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC).UnixMilli()
	r := reqs[2]
	for round := 0; round < 3; round++ {
		r.setTimestamp(ts + int64(round)*10_000)
		r.setValues("counter", round)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(snappyRoundTrip(t, r.raw)); err != nil {
		t.Fatal(err)
	}
	if len(wr.Timeseries) != 200 {
		t.Fatalf("decoded %d series", len(wr.Timeseries))
	}
	for i, s := range wr.Timeseries {
		if s.Samples[0].Timestamp != ts+20_000 {
			t.Fatalf("series %d: timestamp %d, want %d", i, s.Samples[0].Timestamp, ts+20_000)
		}
		if s.Samples[0].Value != r.acc[i] {
			t.Fatalf("series %d: value %v, want the counter %v", i, s.Samples[0].Value, r.acc[i])
		}
	}
	if got := wr.Timeseries[0].Labels[3]; got.Name != "series" || got.Value != "2000" {
		t.Fatalf("first series label %v, want series=2000", got)
	}
}

// TestMetricRequestsV2: a 2.0 request carries the same series, and the patched timestamps and values land in its
// samples.
func TestMetricRequestsV2(t *testing.T) {
	reqs, err := buildMetricRequests(0, 300, 300, false, true, true)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC).UnixMilli()
	r := reqs[0]
	r.setTimestamp(ts)
	r.setValues("gauge", 1)
	var wr writev2.Request
	if err := wr.Unmarshal(snappyRoundTrip(t, r.raw)); err != nil {
		t.Fatal(err)
	}
	if len(wr.Timeseries) != 300 {
		t.Fatalf("decoded %d series", len(wr.Timeseries))
	}
	for i, s := range wr.Timeseries {
		if s.Samples[0].Timestamp != ts {
			t.Fatalf("series %d: timestamp %d, want %d", i, s.Samples[0].Timestamp, ts)
		}
		ls := map[string]string{}
		for k := 0; k+1 < len(s.LabelsRefs); k += 2 {
			ls[wr.Symbols[s.LabelsRefs[k]]] = wr.Symbols[s.LabelsRefs[k+1]]
		}
		if want := fmt.Sprintf("load_metric_%d", i%100); ls["__name__"] != want || ls["job"] != "metricload" {
			t.Fatalf("series %d labels %v", i, ls)
		}
		if s.Metadata.Type != writev2.Metadata_METRIC_TYPE_COUNTER || wr.Symbols[s.Metadata.HelpRef] == "" {
			t.Fatalf("series %d metadata %+v, want a counter with help", i, s.Metadata)
		}
	}
}

func snappyRoundTrip(t *testing.T, raw []byte) []byte {
	t.Helper()
	out, err := snappy.Decode(nil, snappy.Encode(nil, raw))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLogBodies(t *testing.T) {
	sh := LogShape{Batch: 20, Streams: 4, LineSize: 120, Base: time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)}
	for _, format := range []string{"protobuf", "json", "json-gzip"} {
		t.Run(format, func(t *testing.T) {
			bodies, err := PrepareLogBodies(2, 3, sh, format)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int64]bool{}
			ids := map[string]int{}
			for _, per := range bodies {
				for _, b := range per {
					ct, ce := "application/json", ""
					if format == "protobuf" {
						ct = "application/x-protobuf"
					}
					if format == "json-gzip" {
						ce = "gzip"
					}
					streams, err := logstore.DecodePushBody(bytes.NewReader(b.Data), ct, ce)
					if err != nil {
						t.Fatal(err)
					}
					n := 0
					for _, s := range streams {
						for _, e := range s.Entries {
							if seen[e.Timestamp] {
								t.Fatalf("timestamp %d twice: lines are not distinct", e.Timestamp)
							}
							seen[e.Timestamp] = true
							ids[e.Metadata.Get("trace_id")]++
							n++
						}
					}
					if n != b.Lines {
						t.Fatalf("body holds %d lines, says %d", n, b.Lines)
					}
				}
			}
			if len(seen) != 2*3*20 {
				t.Fatalf("%d distinct lines, want 120", len(seen))
			}
			if ids[LogTraceID(4, 10)] != 10 {
				t.Fatalf("trace id of batch 4, lines 10-19: %d lines, want 10", ids[LogTraceID(4, 10)])
			}
		})
	}
	if _, err := EncodeLogs(nil, "xml"); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestLatencies(t *testing.T) {
	l := Latencies{5, 1, 4, 2, 3}.Sort()
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {0.5, 3}, {0.99, 5}, {1, 5}} {
		if got := l.Pct(tc.p); got != tc.want {
			t.Errorf("Pct(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if (Latencies{}).Pct(0.5) != 0 {
		t.Error("empty latencies: want 0")
	}
	if got := SpreadPick([]string{"a", "b", "c", "d", "e", "f"}, 3); len(got) != 3 || got[0] != "a" || got[1] != "c" || got[2] != "e" {
		t.Errorf("SpreadPick = %v", got)
	}
}
