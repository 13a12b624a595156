package metrichead

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// walRecords counts the records of each type in a log directory's segments.
func walRecords(t *testing.T, dir string) map[record.Type]int {
	t.Helper()
	rd, err := wlog.NewSegmentsReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := wlog.NewReader(rd)
	dec := record.NewDecoder(nil, nil)
	out := map[record.Type]int{}
	for r.Next() {
		out[dec.Type(r.Record())]++
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExemplarsAndMetadata: exemplars are kept and queried by series, metadata is logged only when it changes,
// and both come back from the log.
func TestExemplarsAndMetadata(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	o := DefaultOptions()
	o.MaxExemplars = 100
	h, _, err := Open(dir, o, WALOptions{}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lset := labels.FromStrings("__name__", "req_total", "job", "api")
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Unit: "requests", Help: "Requests."}
	for i := range 3 {
		app := h.Appender()
		ref, err := app.Append(0, lset, int64(i+1)*1000, float64(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.UpdateMetadata(ref, lset, counter); err != nil {
			t.Fatal(err)
		}
		e := exemplar.Exemplar{Labels: labels.FromStrings("trace_id", "t"+string(rune('a'+i))), Value: float64(i), Ts: int64(i+1) * 1000, HasTs: true}
		if _, err := app.AppendExemplar(ref, labels.EmptyLabels(), e); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Appender().AppendExemplar(0, labels.FromStrings("__name__", "nope"), exemplar.Exemplar{Ts: 1}); err == nil {
		t.Fatal("an exemplar for a series that does not exist was accepted")
	}
	if n := walRecords(t, dir)[record.Metadata]; n != 1 {
		t.Fatalf("%d metadata records for one unchanged value, want 1", n)
	}
	check := func(h *Head, what string) {
		t.Helper()
		ref := h.Lookup(lset)
		if m, ok := h.Metadata(ref); !ok || m != counter {
			t.Fatalf("%s: metadata %+v %v, want %+v", what, m, ok, counter)
		}
		q, err := h.Exemplars().ExemplarQuerier(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		res, err := q.Select(0, 10000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "api")})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || len(res[0].Exemplars) != 3 || res[0].Exemplars[2].Labels.Get("trace_id") != "tc" {
			t.Fatalf("%s: exemplars %+v", what, res)
		}
	}
	check(h, "before restart")
	h.Close()
	h2, _, err := Open(dir, o, WALOptions{}, math.MinInt64, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	check(h2, "replayed")
	app := h2.Appender() // a new value is logged again
	if _, err := app.UpdateMetadata(h2.Lookup(lset), lset, metadata.Metadata{Type: model.MetricTypeGauge}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := walRecords(t, dir)[record.Metadata]; n != 2 {
		t.Fatalf("%d metadata records after a change, want 2", n)
	}
}
