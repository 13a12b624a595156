package metricdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

// dumpAll prints every sample of the series matching ms, histograms with their counter reset hint left out
// (the two DBs may differ in hints only).
func dumpAll(t *testing.T, s appendStorage, ms []*labels.Matcher) string {
	t.Helper()
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var out string
	ss := q.Select(context.Background(), true, nil, ms...)
	var it chunkenc.Iterator
	for ss.Next() {
		out += ss.At().Labels().String() + ":"
		it = ss.At().Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				out += fmt.Sprintf(" %d=%v", ts, v)
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				h.CounterResetHint = histogram.UnknownCounterReset
				out += fmt.Sprintf(" %d=%s", ts, h)
			case chunkenc.ValFloatHistogram:
				ts, h := it.AtFloatHistogram(nil)
				h.CounterResetHint = histogram.UnknownCounterReset
				out += fmt.Sprintf(" %d=%s", ts, h)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out += "\n"
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// appendStorage is what both DBs offer to the test.
type appendStorage interface {
	Appender(context.Context) storage.Appender
	AppenderV2(context.Context) storage.AppenderV2
	Querier(mint, maxt int64) (storage.Querier, error)
}

// errKind names an error by the storage error it is, so that the two DBs' errors compare.
func errKind(err error) string {
	for _, e := range []error{storage.ErrOutOfOrderSample, storage.ErrDuplicateSampleForTimestamp, storage.ErrOutOfBounds, storage.ErrTooOldSample,
		storage.ErrSTNewerThanSample, storage.ErrOutOfOrderST, storage.ErrOutOfOrderExemplar, storage.ErrDuplicateExemplar} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	var partial *storage.AppendPartialError
	if errors.As(err, &partial) {
		return "partial: " + errKind(errors.Join(partial.ExemplarErrors...))
	}
	if err != nil {
		return "other"
	}
	return ""
}

// script appends through both appender kinds and returns what each call answered.
func script(t *testing.T, s appendStorage) []string {
	t.Helper()
	var out []string
	note := func(what string, err error) { out = append(out, what+": "+errKind(err)) }
	ctx := context.Background()
	a := labels.FromStrings("__name__", "a_total", "job", "x")
	h := labels.FromStrings("__name__", "h", "job", "x")
	b := labels.FromStrings("__name__", "b_total", "job", "y")
	fh := labels.FromStrings("__name__", "fh", "job", "y")
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "A counter."}

	app := s.Appender(ctx)
	_, err := app.AppendSTZeroSample(0, a, 1000, 1000)
	note("st not before t", err)
	ref, err := app.AppendSTZeroSample(0, a, 1000, 500)
	note("st zero", err)
	ref, err = app.Append(ref, a, 1000, 5)
	note("float", err)
	_, err = app.AppendExemplar(ref, a, exemplar.Exemplar{Labels: labels.FromStrings("trace_id", "1"), Value: 5, Ts: 1000, HasTs: true})
	note("exemplar", err)
	_, err = app.UpdateMetadata(ref, a, counter)
	note("metadata", err)
	hr, err := app.AppendHistogramSTZeroSample(0, h, 1000, 400, tsdbutil.GenerateTestHistogram(3), nil)
	note("histogram st zero", err)
	for i := range 3 {
		hr, err = app.AppendHistogram(hr, h, int64(1000+i*1000), tsdbutil.GenerateTestHistogram(int64(3+i)), nil)
		note(fmt.Sprint("histogram ", i), err)
	}
	note("commit 1", app.Commit())

	app = s.Appender(ctx)
	_, err = app.AppendSTZeroSample(ref, a, 2000, 500) // the counter's zero again: already there
	note("st zero again", err)
	_, err = app.Append(ref, a, 900, 1)
	note("out of order", err)
	_, err = app.Append(ref, a, 1000, 6)
	note("duplicate", err)
	_, err = app.Append(ref, a, 2000, 7)
	note("float 2", err)
	note("commit 2", app.Commit())

	v2 := s.AppenderV2(ctx)
	ex := []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "2"), Value: 1, Ts: 3000, HasTs: true}}
	bref, err := v2.Append(0, b, 0, 3000, 1, nil, nil, storage.AppendV2Options{Metadata: counter, Exemplars: ex})
	note("v2 float", err)
	_, err = v2.Append(bref, b, 0, 4000, 2, nil, nil, storage.AppendV2Options{Metadata: counter, Exemplars: []exemplar.Exemplar{
		{Labels: labels.FromStrings("trace_id", "3"), Value: 2, Ts: 4000, HasTs: true}}})
	note("v2 float 2", err)
	_, err = v2.Append(ref, a, 0, 3000, 8, nil, nil, storage.AppendV2Options{Exemplars: []exemplar.Exemplar{
		{Labels: labels.FromStrings("trace_id", "old"), Value: 8, Ts: 900, HasTs: true}}}) // older than a's last exemplar
	note("v2 exemplar out of order", err)
	_, err = v2.Append(bref, b, 0, 5000, math.Float64frombits(value.StaleNaN), nil, nil, storage.AppendV2Options{Metadata: counter})
	note("v2 stale", err)
	for i := range 3 {
		_, err = v2.Append(0, fh, 0, int64(3000+i*1000), 0, nil, tsdbutil.GenerateTestFloatHistogram(int64(i)), storage.AppendV2Options{})
		note(fmt.Sprint("v2 float histogram ", i), err)
	}
	_, err = v2.Append(0, a, 0, 3000, 0, &histogram.Histogram{Count: 1}, nil, storage.AppendV2Options{}) // invalid: no buckets hold the count
	out = append(out, fmt.Sprint("v2 invalid histogram refused: ", err != nil))
	note("v2 commit", v2.Commit())
	return out
}

// TestAppendersLikeTheTSDB: the DB's storage.Appender and AppenderV2 answer each call as Prometheus' DB does,
// and store the same samples and exemplars.
func TestAppendersLikeTheTSDB(t *testing.T) {
	o := testOptions()
	ho := o.HeadOptions()
	ho.MaxExemplars = 100
	head, err := metrichead.New(ho)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.TempDir(), nil, nil, head, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ropts := tsdb.DefaultOptions()
	ropts.IsolationDisabled = true
	ropts.EnableExemplarStorage = true
	ropts.MaxExemplars = 100
	ropts.EnableMetadataWALRecords = true
	ref, err := tsdb.Open(t.TempDir(), nil, nil, ropts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()

	want, got := script(t, ref), script(t, db)
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("call %d: %s, Prometheus' DB %s", i, got[i], want[i])
		}
	}
	all := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}
	dump := func(s appendStorage) string { return dumpAll(t, s, all) }
	if w, g := dump(ref), dump(db); w != g {
		t.Fatalf("samples differ\nPrometheus' DB:\n%s\nDB:\n%s", w, g)
	}
	rq, err := ref.ExemplarQuerier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hq, err := db.ExemplarQuerier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	we, err := rq.Select(0, math.MaxInt64, all)
	if err != nil {
		t.Fatal(err)
	}
	ge, err := hq.Select(0, math.MaxInt64, all)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(we) != fmt.Sprint(ge) || len(we) != 2 {
		t.Fatalf("exemplars %v, Prometheus' DB %v", ge, we)
	}
}
