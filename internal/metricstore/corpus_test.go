package metricstore

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// corpusSpan is the time range the corpus' data covers, ending at the moment it is written.
const corpusSpan = 30 * time.Minute

// corpusSeries is one series of the corpus' data.
type corpusSeries struct {
	labels   []string // name, value, ...
	kind     writev2.Metadata_MetricType
	help     string
	samples  []prompb.Sample
	exemplar *prompb.Exemplar
}

// corpusData is the data the Grafana corpus queries: span metrics as the generator names them (a counter and a
// latency histogram with trace exemplars) and a plain counter of two instances, one sample every 15 s over
// corpusSpan up to now.
func corpusData(now time.Time) []corpusSeries {
	type spec struct {
		labels []string
		kind   writev2.Metadata_MetricType
		help   string
		perSec float64
	}
	var specs []spec
	for _, svc := range []string{"checkout", "cart"} {
		span := []string{"service", svc, "span_name", "GET /" + svc, "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET", "job", "sprout-generator"}
		specs = append(specs, spec{append([]string{"__name__", "traces_spanmetrics_calls_total"}, span...), writev2.Metadata_METRIC_TYPE_COUNTER, "Calls of a span.", 10})
		for i, le := range []string{"0.1", "0.5", "+Inf"} {
			specs = append(specs, spec{append([]string{"__name__", "traces_spanmetrics_latency_bucket", "le", le}, span...), writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Latency of a span.", float64(4 + 3*i)})
		}
	}
	for _, inst := range []string{"a", "b"} {
		specs = append(specs, spec{[]string{"__name__", "http_requests_total", "job", "corpus", "instance", inst}, writev2.Metadata_METRIC_TYPE_COUNTER, "HTTP requests.", 2})
	}
	var out []corpusSeries
	for i, sp := range specs {
		s := corpusSeries{labels: sp.labels, kind: sp.kind, help: sp.help}
		for at, v := now.Add(-corpusSpan), 0.0; !at.After(now); at, v = at.Add(15*time.Second), v+15*sp.perSec {
			s.samples = append(s.samples, prompb.Sample{Value: v, Timestamp: at.UnixMilli()})
		}
		if sp.labels[1] == "traces_spanmetrics_latency_bucket" {
			s.exemplar = &prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprintf("%032x", i+1)}}, Value: 0.05, Timestamp: now.Add(-time.Minute).UnixMilli()}
		}
		out = append(out, s)
	}
	return out
}

// seedCorpus writes the corpus' data over remote write 2.0, with metadata and exemplars.
func seedCorpus(t *testing.T, base string, now time.Time) {
	t.Helper()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, s := range corpusData(now) {
		ts := writev2.TimeSeries{Metadata: writev2.Metadata{Type: s.kind, HelpRef: st.Symbolize(s.help)}}
		for _, l := range s.labels {
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(l))
		}
		for _, smp := range s.samples {
			ts.Samples = append(ts.Samples, writev2.Sample{Value: smp.Value, Timestamp: smp.Timestamp})
		}
		if e := s.exemplar; e != nil {
			ts.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize(e.Labels[0].Name), st.Symbolize(e.Labels[0].Value)}, Value: e.Value, Timestamp: e.Timestamp}}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	if code, body := post(t, base+"/api/v1/write", contentTypeV2, encodeV2(t, req), "X-Prometheus-Remote-Write-Version", "2.0.0"); code != 204 {
		t.Fatalf("seed the corpus' data: %d %s", code, body)
	}
}

// seedCorpusV1 writes the same data over remote write 1.0 (with exemplars; no metadata), which every
// Prometheus release with a remote write receiver takes.
func seedCorpusV1(t *testing.T, base string, now time.Time) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for _, s := range corpusData(now) {
		ts := prompb.TimeSeries{Samples: s.samples}
		for i := 0; i < len(s.labels); i += 2 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: s.labels[i], Value: s.labels[i+1]})
		}
		if s.exemplar != nil {
			ts.Exemplars = []prompb.Exemplar{*s.exemplar}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	if code, body := post(t, base+"/api/v1/write", contentTypeV1, encodeV1(t, req)); code/100 != 2 {
		t.Fatalf("seed the corpus' data (remote write 1.0) into %s: %d %s", base, code, body)
	}
}

// corpusVars are the placeholders' values for data written at now.
func corpusVars(now time.Time) map[string]string {
	return map[string]string{
		"START": strconv.FormatInt(now.Add(-corpusSpan).Unix(), 10),
		"END":   strconv.FormatInt(now.Unix(), 10),
		"NOW":   strconv.FormatInt(now.Unix(), 10),
	}
}

// TestGrafanaCorpus replays the requests of Grafana's Prometheus data source and of Metrics Drilldown
// (testdata/grafana-corpus.json, each naming the source that sends it) on fixed generated data, under both of
// Sprout's prefixes, and checks each answer's status and the paths that must not be empty.
func TestGrafanaCorpus(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	now := time.Now().Truncate(time.Second)
	seedCorpus(t, srv.URL, now)
	vars := corpusVars(now)
	for _, prefix := range []string{"", "/prometheus"} {
		for _, e := range testutil.LoadCorpus(t, "testdata/grafana-corpus.json") {
			e.Path = prefix + e.Path
			req, err := e.Request(srv.URL, vars)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			for _, p := range e.Check(resp.StatusCode, body) {
				t.Errorf("%s (%s %s): %s", e.Name, e.Method, e.Path, p)
			}
		}
	}
}
