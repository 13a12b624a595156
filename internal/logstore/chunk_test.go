package logstore

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

func TestBloomFalsePositives(t *testing.T) {
	b := newBloom(1000)
	for i := 0; i < 1000; i++ {
		b.add(fmt.Sprintf("%032x", i))
	}
	for i := 0; i < 1000; i++ {
		if !b.has(fmt.Sprintf("%032x", i)) {
			t.Fatalf("false negative for %d", i)
		}
	}
	fp := 0
	for i := 1000; i < 101000; i++ {
		if b.has(fmt.Sprintf("%032x", i)) {
			fp++
		}
	}
	if fp > 100 { // 0.1 %
		t.Fatalf("%d false positives in 100000", fp)
	}
}

func TestChunkRoundTrip(t *testing.T) {
	lbs := labels.FromStrings("app", "x")
	es := []logql.Entry{{Timestamp: 5, Line: "a", Metadata: labels.FromStrings("trace_id", "t")}, {Timestamp: 7, Line: "", Metadata: labels.EmptyLabels()}}
	got, ges, err := decodeChunk(encodeChunk(lbs, es))
	if err != nil || !labels.Equal(got, lbs) || len(ges) != 2 || ges[0].Metadata.Get("trace_id") != "t" || ges[1].Timestamp != 7 {
		t.Fatalf("%v %v %v", got, ges, err)
	}
	if _, _, err := decodeChunk([]byte("SPLC\x01garbage")); err == nil {
		t.Fatal("corrupt chunk decoded")
	}
}

// FuzzDecodeStored feeds arbitrary bytes to the WAL record and chunk payload decoders, which read files that a
// crash or a bad disk may have damaged.
func FuzzDecodeStored(f *testing.F) {
	es := []logql.Entry{{Timestamp: 1, Line: "a", Metadata: labels.FromStrings("trace_id", "t")}, {Timestamp: 2, Line: "b", Metadata: labels.FromStrings("trace_id", "t")}}
	f.Add(encodeWALRecord(&walRecord{tenant: "x", streams: []walStream{{labels: labels.FromStrings("a", "b"), entries: es}}}))
	var e encbuf
	e.labels(labels.FromStrings("a", "b"))
	e.entries(es)
	f.Add(e.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeWALRecord(b)
		_, _ = decodeSelected(string(b), &logql.SelectParams{End: 1 << 62, TraceID: "t", LineFilter: func(string) bool { return true }})
		_, _, _ = decodeChunk(append(append([]byte(nil), chunkMagic...), b...))
	})
}
