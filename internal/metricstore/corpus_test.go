package metricstore

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// corpusSpan is the time range the corpus' data covers, ending at the moment it is written.
const corpusSpan = 30 * time.Minute

// seedCorpus writes the data the Grafana corpus queries over remote write 2.0, with metadata and exemplars:
// span metrics as the generator names them (a counter and a latency histogram with trace exemplars) and a
// plain counter of two instances, one sample every 15 s over corpusSpan up to now.
func seedCorpus(t *testing.T, base string, now time.Time) {
	t.Helper()
	st := writev2.NewSymbolTable()
	refs := func(kv ...string) []uint32 {
		out := make([]uint32, 0, len(kv))
		for _, s := range kv {
			out = append(out, st.Symbolize(s))
		}
		return out
	}
	counter := writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Calls of a span.")}
	histogram := writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: st.Symbolize("Latency of a span.")}
	requests := writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("HTTP requests.")}
	type series struct {
		labels []string
		meta   writev2.Metadata
		perSec float64
	}
	var all []series
	for _, svc := range []string{"checkout", "cart"} {
		span := []string{"service", svc, "span_name", "GET /" + svc, "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET", "job", "sprout-generator"}
		all = append(all, series{append([]string{"__name__", "traces_spanmetrics_calls_total"}, span...), counter, 10})
		for i, le := range []string{"0.1", "0.5", "+Inf"} {
			all = append(all, series{append([]string{"__name__", "traces_spanmetrics_latency_bucket", "le", le}, span...), histogram, float64(4 + 3*i)})
		}
	}
	for _, inst := range []string{"a", "b"} {
		all = append(all, series{[]string{"__name__", "http_requests_total", "job", "corpus", "instance", inst}, requests, 2})
	}
	req := &writev2.Request{}
	start := now.Add(-corpusSpan)
	for i, s := range all {
		ts := writev2.TimeSeries{LabelsRefs: refs(s.labels...), Metadata: s.meta}
		for at, v := start, 0.0; !at.After(now); at, v = at.Add(15*time.Second), v+15*s.perSec {
			ts.Samples = append(ts.Samples, writev2.Sample{Value: v, Timestamp: at.UnixMilli()})
		}
		if s.labels[1] == "traces_spanmetrics_latency_bucket" {
			ts.Exemplars = []writev2.Exemplar{{LabelsRefs: refs("trace_id", fmt.Sprintf("%032x", i+1)), Value: 0.05, Timestamp: now.Add(-time.Minute).UnixMilli()}}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	if code, body := post(t, base+"/api/v1/write", contentTypeV2, encodeV2(t, req), "X-Prometheus-Remote-Write-Version", "2.0.0"); code != 204 {
		t.Fatalf("seed the corpus' data: %d %s", code, body)
	}
}

// TestGrafanaCorpus replays the requests of Grafana's Prometheus data source and of Metrics Drilldown
// (testdata/grafana-corpus.json, each naming the source that sends it) on fixed generated data, under both of
// Sprout's prefixes, and checks each answer's status and the paths that must not be empty.
func TestGrafanaCorpus(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	now := time.Now().Truncate(time.Second)
	seedCorpus(t, srv.URL, now)
	vars := map[string]string{
		"START": strconv.FormatInt(now.Add(-corpusSpan).Unix(), 10),
		"END":   strconv.FormatInt(now.Unix(), 10),
		"NOW":   strconv.FormatInt(now.Unix(), 10),
	}
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
