package metricstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// testMetrics is an OTLP batch with a cumulative sum carrying an exemplar, a gauge and an explicit histogram.
func testMetrics(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("service.instance.id", "i-1")
	rm.Resource().Attributes().PutStr("deployment.environment", "prod")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("test")

	m := sm.Metrics().AppendEmpty()
	m.SetName("http.server.requests")
	m.SetUnit("1")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
	dp.SetIntValue(7)
	dp.Attributes().PutStr("http.route", "/pay")
	ex := dp.Exemplars().AppendEmpty()
	ex.SetTimestamp(pcommon.NewTimestampFromTime(now))
	ex.SetIntValue(7)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})

	g := sm.Metrics().AppendEmpty()
	g.SetName("queue.depth")
	gdp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	gdp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	gdp.SetDoubleValue(3.5)

	h := sm.Metrics().AppendEmpty()
	h.SetName("http.server.duration")
	h.SetUnit("s")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hdp := hist.DataPoints().AppendEmpty()
	hdp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	hdp.SetCount(4)
	hdp.SetSum(2)
	hdp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hdp.BucketCounts().FromRaw([]uint64{1, 2, 1})
	return md
}

func TestAppendOTLPTranslatesAsPrometheus(t *testing.T) {
	s, srv := openTestStore(t, testConfig(t))
	now := time.Now().Truncate(time.Second)
	tn, err := s.Tenant(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.AppendOTLP(context.Background(), testMetrics(now), true); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{
		`http_server_requests_total{job="checkout",instance="i-1",http_route="/pay",deployment_environment="prod"}`: "7",
		`queue_depth{job="checkout"}`:                 "3.5",
		`http_server_duration_seconds_bucket{le="1"}`: "3",
		`http_server_duration_seconds_count`:          "4",
		`target_info{deployment_environment="prod"}`:  "1",
	} {
		got := instant(t, srv.URL, q, now)
		if len(got) != 1 {
			t.Errorf("%s: %v, want one series = %s", q, got, want)
			continue
		}
		for _, v := range got {
			if v != want {
				t.Errorf("%s = %s, want %s", q, v, want)
			}
		}
	}
	code, r := apiGet(t, srv.URL, "/api/v1/query_exemplars", map[string][]string{"query": {"http_server_requests_total"},
		"start": {now.Add(-time.Minute).Format(time.RFC3339)}, "end": {now.Add(time.Minute).Format(time.RFC3339)}})
	if code != 200 || !strings.Contains(string(r.Data), `"trace_id":"0102030405060708090a0b0c0d0e0f10"`) {
		t.Errorf("exemplars: %d %s", code, r.Data)
	}
	code, r = apiGet(t, srv.URL, "/api/v1/metadata", map[string][]string{"metric": {"http_server_duration_seconds"}})
	if code != 200 || !strings.Contains(string(r.Data), `"type":"histogram"`) {
		t.Errorf("metadata: %d %s", code, r.Data)
	}
}

func TestOTLPHTTPPush(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	now := time.Now().Truncate(time.Second)
	body, err := pmetricotlp.NewExportRequestFromMetrics(testMetrics(now)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/otlp/v1/metrics", "/api/v1/otlp/v1/metrics"} {
		if code, resp := post(t, srv.URL+path, "application/x-protobuf", body, "Content-Encoding", ""); code != 200 {
			t.Fatalf("POST %s: %d %s", path, code, resp)
		}
	}
	// Without resource_to_telemetry_conversion, resource attributes stay in target_info (Prometheus' default).
	if got := instant(t, srv.URL, `http_server_requests_total{job="checkout",instance="i-1",deployment_environment=""}`, now); len(got) != 1 {
		t.Errorf("OTLP over HTTP: %v", got)
	}
	if code, resp := post(t, srv.URL+"/otlp/v1/metrics", "application/x-protobuf", []byte{0x0a, 0xff, 0xff}, "Content-Encoding", ""); code != 400 || strings.TrimSpace(resp) == "" {
		t.Errorf("malformed OTLP: %d %q, want 400 with a reason", code, resp)
	}
}
