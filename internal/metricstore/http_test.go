package metricstore

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func TestRemoteWriteV1AndQuery(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	now := time.Now().Truncate(time.Second)
	ms := now.UnixMilli()
	h := &histogram.Histogram{Count: 3, Sum: 6, ZeroThreshold: 0.001, Schema: 0,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 1}}
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: series("http_requests_total", "job", "api", "code", "200"), Samples: []prompb.Sample{{Value: 1, Timestamp: ms - 30000}, {Value: 5, Timestamp: ms}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc123"}}, Value: 5, Timestamp: ms}}},
		{Labels: series("http_requests_total", "job", "api", "code", "500"), Samples: []prompb.Sample{{Value: 2, Timestamp: ms}}},
		{Labels: series("latency_seconds", "job", "api"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(ms, h)}},
	}}
	if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, req)); code != 204 {
		t.Fatalf("POST /api/v1/write: %d %s", code, body)
	}
	// Behind sprout_api (confighttp), the body arrives already decompressed and without Content-Encoding.
	raw, _ := (&prompb.WriteRequest{Timeseries: req.Timeseries[2:]}).Marshal()
	if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, raw, "Content-Encoding", ""); code != 204 {
		t.Fatalf("POST decompressed body: %d %s", code, body)
	}
	// Mimir's path takes the same payload; resending identical samples is not an error.
	if code, body := post(t, srv.URL+"/api/v1/push", contentTypeV1, encodeV1(t, &prompb.WriteRequest{Timeseries: req.Timeseries[1:2]})); code != 204 {
		t.Fatalf("POST /api/v1/push: %d %s", code, body)
	}

	for _, prefix := range []string{"", "/prometheus"} {
		got := instant(t, srv.URL+prefix, `sum by (code) (http_requests_total)`, now)
		want := map[string]string{"map[code:200]": "5", "map[code:500]": "2"}
		if len(got) != len(want) || got["map[code:200]"] != "5" || got["map[code:500]"] != "2" {
			t.Errorf("%s sum by code = %v, want %v", prefix, got, want)
		}
	}
	if got := instant(t, srv.URL, `histogram_count(latency_seconds)`, now); got["map[job:api]"] != "3" {
		t.Errorf("histogram_count = %v, want 3", got)
	}

	code, r := apiGet(t, srv.URL, "/api/v1/query_range", url.Values{"query": {`http_requests_total{code="200"}`},
		"start": {now.Add(-time.Minute).Format(time.RFC3339)}, "end": {now.Format(time.RFC3339)}, "step": {"30s"}})
	if code != 200 || !strings.Contains(string(r.Data), `"resultType":"matrix"`) {
		t.Errorf("query_range: %d %s %s", code, r.Error, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/labels", nil)
	if code != 200 || !strings.Contains(string(r.Data), `"code"`) {
		t.Errorf("labels: %d %s", code, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/label/__name__/values", nil)
	if code != 200 || string(r.Data) != `["http_requests_total","latency_seconds"]` {
		t.Errorf("label values: %d %s", code, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/series", url.Values{"match[]": {`{code="500"}`}})
	if code != 200 || !strings.Contains(string(r.Data), `"code":"500"`) || strings.Contains(string(r.Data), `"code":"200"`) {
		t.Errorf("series: %d %s", code, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/query_exemplars", url.Values{"query": {`http_requests_total`},
		"start": {now.Add(-time.Minute).Format(time.RFC3339)}, "end": {now.Add(time.Minute).Format(time.RFC3339)}})
	if code != 200 || !strings.Contains(string(r.Data), `"trace_id":"abc123"`) {
		t.Errorf("query_exemplars: %d %s", code, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/status/buildinfo", nil)
	if code != 200 || !strings.Contains(string(r.Data), `"version":"`+PrometheusVersion+`"`) {
		t.Errorf("buildinfo: %d %s", code, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/format_query", url.Values{"query": {`sum(rate(x[5m]))by(job)`}})
	if code != 200 || string(r.Data) != `"sum by (job) (rate(x[5m]))"` {
		t.Errorf("format_query: %d %s", code, r.Data)
	}
}

func TestRemoteWriteV2WithMetadata(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	now := time.Now().Truncate(time.Second)
	st := writev2.NewSymbolTable()
	lbls := []uint32{st.Symbolize("__name__"), st.Symbolize("jobs_done_total"), st.Symbolize("job"), st.Symbolize("worker")}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: lbls,
		Samples:    []writev2.Sample{{Value: 42, Timestamp: now.UnixMilli()}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("t2")}, Value: 42, Timestamp: now.UnixMilli()}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Jobs done."), UnitRef: st.Symbolize("")},
	}}}
	req.Symbols = st.Symbols()
	if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV2, encodeV2(t, req), "X-Prometheus-Remote-Write-Version", "2.0.0"); code != 204 {
		t.Fatalf("POST v2: %d %s", code, body)
	}
	if got := instant(t, srv.URL, `jobs_done_total`, now); got["map[__name__:jobs_done_total job:worker]"] != "42" {
		t.Errorf("query = %v", got)
	}
	code, r := apiGet(t, srv.URL, "/prometheus/api/v1/metadata", nil)
	if code != 200 || string(r.Data) != `{"jobs_done_total":[{"type":"counter","help":"Jobs done.","unit":""}]}` {
		t.Errorf("metadata: %d %s", code, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/metadata", url.Values{"limit": {"x"}})
	if code != 400 || r.ErrorType != "bad_data" {
		t.Errorf("metadata limit=x: %d %+v", code, r)
	}
}

func TestBadInput(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	valid := encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("x"), Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}}})
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		encoding          string
		wantCode          int
		wantText          string
	}{
		{"not snappy", contentTypeV1, []byte("definitely not snappy"), "snappy", 400, "snappy"},
		{"snappy of garbage protobuf", contentTypeV1, snappyOf(0x0a, 0x28, 0xff), "snappy", 400, "decode remote write protobuf"},
		{"unknown content encoding", contentTypeV1, valid, "gzip", 415, "gzip"},
		{"unknown proto message", "application/x-protobuf;proto=foo.Bar", valid, "snappy", 415, "foo.Bar"},
		{"truncated sample inside a valid series", contentTypeV1, snappyOf(0x0a, 0x13, 0x0a, 0x0d, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x12, 0x01, 'x', 0x12, 0x02, 0x09, 0x00), "snappy", 400, "decode remote write protobuf"},
		{"truncated sample inside a skipped series", contentTypeV1, snappyOf(0x0a, 0x10, 0x0a, 0x0a, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x12, 0x02, 0x09, 0x00), "snappy", 400, "decode remote write protobuf"},
		{"garbage v2 message", contentTypeV2, snappyOf(0x2a, 0x05, 0x0a), "snappy", 400, "decode remote write protobuf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, srv.URL+"/api/v1/write", tc.contentType, tc.body, "Content-Encoding", tc.encoding)
			if code != tc.wantCode || !strings.Contains(body, tc.wantText) || strings.TrimSpace(body) == "" {
				t.Errorf("got %d %q, want %d containing %q", code, body, tc.wantCode, tc.wantText)
			}
		})
	}

	code, r := apiGet(t, srv.URL, "/api/v1/query", url.Values{"query": {`sum(rate(x[5m])`}})
	if code != 400 || r.ErrorType != "bad_data" || !strings.Contains(r.Error, "1:") {
		t.Errorf("bad PromQL: %d %+v, want 400 bad_data with a position", code, r)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/query_range", url.Values{"query": {`x`}, "start": {"10"}, "end": {"0"}, "step": {"1"}})
	if code != 400 || r.ErrorType != "bad_data" {
		t.Errorf("end before start: %d %+v", code, r)
	}
}

func TestLimits(t *testing.T) {
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		name     string
		limits   func(*Limits)
		req      *prompb.WriteRequest
		wantCode int
		wantText string
	}{
		{"label names", func(l *Limits) { l.MaxLabelNamesPerSeries = 2 },
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("m", "a", "1", "b", "2"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}},
			400, "max_label_names_per_series"},
		{"label value length", func(l *Limits) { l.MaxLabelValueLength = 5 },
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("m", "a", "too long a value"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}},
			400, "max_label_value_length"},
		{"label name length", func(l *Limits) { l.MaxLabelNameLength = 5 },
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("m", "a_long_name", "v"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}},
			400, "max_label_name_length"},
		{"series", func(l *Limits) { l.MaxGlobalSeriesPerUser = 2 },
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: series("m", "i", "1"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}},
				{Labels: series("m", "i", "2"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}},
				{Labels: series("m", "i", "3"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}},
			400, "max_global_series_per_user"},
		{"ingestion rate", func(l *Limits) { l.IngestionRate, l.IngestionBurstSize = 1, 2 },
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("m"), Samples: []prompb.Sample{{Value: 1, Timestamp: now - 2000}, {Value: 1, Timestamp: now - 1000}, {Value: 1, Timestamp: now}}}}},
			429, "ingestion_rate"},
		{"within limits", func(*Limits) {},
			&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("m", "a", "1"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}},
			204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.limits(&cfg.Limits)
			_, srv := openTestStore(t, cfg)
			code, body := post(t, srv.URL+"/api/v1/push", contentTypeV1, encodeV1(t, tc.req))
			if code != tc.wantCode || !strings.Contains(body, tc.wantText) {
				t.Errorf("got %d %q, want %d naming %q", code, body, tc.wantCode, tc.wantText)
			}
		})
	}
}

// TestRateRefusedBeforeDecoding: once a tenant's burst is used up, a write is refused with 429 naming the limit
// without being decoded (a body that is not even snappy gets the rate refusal, not a decode error).
func TestRateRefusedBeforeDecoding(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.IngestionRate, cfg.Limits.IngestionBurstSize = 0.001, 2
	_, srv := openTestStore(t, cfg)
	now := time.Now().UnixMilli()
	two := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("m"), Samples: []prompb.Sample{{Value: 1, Timestamp: now - 1000}, {Value: 1, Timestamp: now}}}}}
	if code, body := post(t, srv.URL+"/api/v1/push", contentTypeV1, encodeV1(t, two)); code != 204 {
		t.Fatalf("within the burst: %d %s", code, body)
	}
	code, body := post(t, srv.URL+"/api/v1/push", contentTypeV1, []byte("not snappy at all"))
	if code != 429 || !strings.Contains(body, "ingestion_rate") || !strings.Contains(body, "before decoding") {
		t.Fatalf("burst used up: got %d %q, want 429 naming ingestion_rate, refused before decoding", code, body)
	}
}

func TestQueryLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.MaxFetchedSamples = 10
	_, srv := openTestStore(t, cfg)
	now := time.Now().Truncate(time.Second)
	var ts []prompb.TimeSeries
	for i := 0; i < 20; i++ {
		ts = append(ts, prompb.TimeSeries{Labels: series("many", "i", string(rune('a'+i))), Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}}})
	}
	if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, &prompb.WriteRequest{Timeseries: ts})); code != 204 {
		t.Fatalf("write: %d %s", code, body)
	}
	code, r := apiGet(t, srv.URL, "/api/v1/query", url.Values{"query": {"many"}, "time": {now.Format(time.RFC3339)}})
	if code != 422 || r.ErrorType != "execution" || !strings.Contains(r.Error, "too many samples") {
		t.Errorf("query over max_fetched_samples: %d %+v", code, r)
	}
}

func TestTenantsAreSeparate(t *testing.T) {
	cfg := testConfig(t)
	s, _ := openTestStore(t, cfg)
	h := s.Handler(func(w http.ResponseWriter, r *http.Request) (string, bool) {
		return r.Header.Get("X-Scope-OrgID"), true
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	now := time.Now().UnixMilli()
	for _, org := range []string{"team-a", "team-b"} {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: series("owned_by_" + strings.ReplaceAll(org, "-", "_")), Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}}}
		if code, body := post(t, srv.URL+"/api/v1/push", contentTypeV1, encodeV1(t, req), "X-Scope-OrgID", org); code != 204 {
			t.Fatalf("push %s: %d %s", org, code, body)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/label/__name__/values", nil)
	req.Header.Set("X-Scope-OrgID", "team-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r apiResponse
	_ = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if string(r.Data) != `["owned_by_team_a"]` {
		t.Errorf("team-a sees %s", r.Data)
	}
	if got := s.Tenants(); len(got) != 2 || got[0] != "team-a" {
		t.Errorf("tenants = %v", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "team-b", "wal")); err != nil {
		t.Errorf("team-b has no WAL of its own: %v", err)
	}
}

func snappyOf(b ...byte) []byte { return snappy.Encode(nil, b) }

// TestBuildInfoFeatures: buildinfo is Prometheus' until the ruler sets Mimir's features; then it names Mimir's
// application and the flags, which Grafana's alerting reads, under both prefixes.
func TestBuildInfoFeatures(t *testing.T) {
	s, srv := openTestStore(t, testConfig(t))
	for _, tc := range []struct {
		name     string
		features map[string]string
		want     []string
		notWant  []string
	}{
		{"prometheus", nil, []string{`"version":"` + PrometheusVersion + `"`, `"goVersion":"go`, `"buildUser":""`}, []string{"application", "features"}},
		{"mimir", map[string]string{"ruler_config_api": "true", "alertmanager_config_api": "false"},
			[]string{`"application":"Grafana Mimir"`, `"ruler_config_api":"true"`, `"alertmanager_config_api":"false"`, `"version":"` + PrometheusVersion + `"`}, nil},
		{"removed", nil, []string{`"revision":"sprout"`}, []string{"application"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.SetBuildInfoFeatures(tc.features)
			for _, p := range []string{"/api/v1/status/buildinfo", "/prometheus/api/v1/status/buildinfo"} {
				code, r := apiGet(t, srv.URL, p, nil)
				if code != 200 || r.Status != "success" {
					t.Fatalf("%s: %d %+v", p, code, r)
				}
				for _, w := range tc.want {
					if !strings.Contains(string(r.Data), w) {
						t.Errorf("%s: %s lacks %s", p, r.Data, w)
					}
				}
				for _, w := range tc.notWant {
					if strings.Contains(string(r.Data), w) {
						t.Errorf("%s: %s has %s", p, r.Data, w)
					}
				}
			}
		})
	}
	resp, err := http.Post(srv.URL+"/api/v1/status/buildinfo", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST buildinfo = %d, want 405", resp.StatusCode)
	}
}
