package generator

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const tenantA = "single-tenant"

// shopTrace is a request through three services and two uninstrumented peers:
//
//	user -> frontend (root server span 1)
//	frontend -> backend (client 2, server 3; the server fails)
//	backend -> orders database (client 4 with db.name)
//	backend -> worker over a queue (producer 5, consumer 6)
//	frontend -> payments (client 7 with peer.service; payments is not instrumented)
//	frontend -> ? (client 8 with no peer attribute: stays unpaired)
func shopTrace(trace byte) ptrace.Traces {
	return buildTraces(trace,
		span{svc: "frontend", name: "GET /", kind: ptrace.SpanKindServer, id: 1, dur: 100 * time.Millisecond},
		span{svc: "frontend", name: "GET /api", kind: ptrace.SpanKindClient, id: 2, parent: 1, dur: 50 * time.Millisecond},
		span{svc: "backend", name: "GET /api", kind: ptrace.SpanKindServer, id: 3, parent: 2, dur: 40 * time.Millisecond, err: true},
		span{svc: "backend", name: "SELECT orders", kind: ptrace.SpanKindClient, id: 4, parent: 3, dur: 10 * time.Millisecond,
			attrs: map[string]string{"db.name": "orders", "db.system": "postgresql"}},
		span{svc: "backend", name: "orders publish", kind: ptrace.SpanKindProducer, id: 5, parent: 3, dur: 2 * time.Millisecond,
			attrs: map[string]string{"messaging.system": "kafka"}},
		span{svc: "worker", name: "orders process", kind: ptrace.SpanKindConsumer, id: 6, parent: 5, dur: 30 * time.Millisecond},
		span{svc: "frontend", name: "GET /ext", kind: ptrace.SpanKindClient, id: 7, parent: 1, dur: 200 * time.Millisecond,
			attrs: map[string]string{"peer.service": "payments"}},
		span{svc: "frontend", name: "GET /lost", kind: ptrace.SpanKindClient, id: 8, parent: 1, dur: 300 * time.Millisecond},
	)
}

func TestShopTrace(t *testing.T) {
	g := mustNew(t, testConfig())
	td := shopTrace(1)
	if err := g.Consume(tenantA, t0, td); err != nil {
		t.Fatal(err)
	}
	if err := g.Tick(t0.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := g.Stats().PendingEdges; got != 2 {
		t.Fatalf("pending edges before wait = %d, want 2 (clients 7 and 8)", got)
	}
	if err := g.Tick(t0.Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := g.Stats().PendingEdges; got != 0 {
		t.Fatalf("pending edges after wait = %d, want 0", got)
	}
	got := collectOne(t, g, t0.Add(15*time.Second), tenantA)

	sizeOf := func(svc, name string) float64 {
		var m ptrace.ProtoMarshaler
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() != svc {
				continue
			}
			spans := rs.ScopeSpans().At(0).Spans()
			for j := 0; j < spans.Len(); j++ {
				if spans.At(j).Name() == name {
					return float64(m.SpanSize(spans.At(j)))
				}
			}
		}
		t.Fatalf("no span %s/%s", svc, name)
		return 0
	}

	backendAPI := []string{"service", "backend", "span_name", "GET /api", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_ERROR"}
	frontRoot := []string{"service", "frontend", "span_name", "GET /", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET"}
	with := func(kv []string, more ...string) []string { return append(slices.Clone(kv), more...) }
	fb := []string{"client", "frontend", "server", "backend"}
	want := map[string]float64{
		// span metrics
		ser("traces_spanmetrics_calls_total", backendAPI...):                          1,
		ser("traces_spanmetrics_calls_total", frontRoot...):                           1,
		ser("traces_spanmetrics_latency_count", backendAPI...):                        1,
		ser("traces_spanmetrics_latency_sum", backendAPI...):                          0.04,
		ser("traces_spanmetrics_latency_bucket", with(backendAPI, "le", "0.032")...):  0,
		ser("traces_spanmetrics_latency_bucket", with(backendAPI, "le", "0.064")...):  1,
		ser("traces_spanmetrics_latency_bucket", with(backendAPI, "le", "16.384")...): 1,
		ser("traces_spanmetrics_latency_bucket", with(backendAPI, "le", "+Inf")...):   1,
		ser("traces_spanmetrics_latency_bucket", with(frontRoot, "le", "0.064")...):   0,
		ser("traces_spanmetrics_latency_bucket", with(frontRoot, "le", "0.128")...):   1,
		ser("traces_spanmetrics_size_total", backendAPI...):                           sizeOf("backend", "GET /api"),
		ser("traces_spanmetrics_calls_total", "service", "worker", "span_name", "orders process",
			"span_kind", "SPAN_KIND_CONSUMER", "status_code", "STATUS_CODE_UNSET"): 1,
		ser("traces_spanmetrics_calls_total", "service", "backend", "span_name", "orders publish",
			"span_kind", "SPAN_KIND_PRODUCER", "status_code", "STATUS_CODE_UNSET"): 1,

		// service graph: instrumented pair, with a failure on the server side
		ser("traces_service_graph_request_total", fb...):                                    1,
		ser("traces_service_graph_request_failed_total", fb...):                             1,
		ser("traces_service_graph_request_server_seconds_count", fb...):                     1,
		ser("traces_service_graph_request_server_seconds_sum", fb...):                       0.04,
		ser("traces_service_graph_request_server_seconds_bucket", with(fb, "le", "0.1")...): 1,
		ser("traces_service_graph_request_client_seconds_sum", fb...):                       0.05,
		ser("traces_service_graph_request_client_seconds_bucket", with(fb, "le", "0.1")...): 1,
		// the caller of a root span is the "user" virtual node
		ser("traces_service_graph_request_total", "client", "user", "server", "frontend", "connection_type", "virtual_node"): 1,
		// a database call
		ser("traces_service_graph_request_total", "client", "backend", "server", "orders", "connection_type", "database"):              1,
		ser("traces_service_graph_request_client_seconds_sum", "client", "backend", "server", "orders", "connection_type", "database"): 0.01,
		// a messaging hop
		ser("traces_service_graph_request_total", "client", "backend", "server", "worker", "connection_type", "messaging_system"):              1,
		ser("traces_service_graph_request_server_seconds_sum", "client", "backend", "server", "worker", "connection_type", "messaging_system"): 0.03,
		ser("traces_service_graph_request_client_seconds_sum", "client", "backend", "server", "worker", "connection_type", "messaging_system"): 0.002,
		// an uninstrumented peer named by peer.service, after the wait
		ser("traces_service_graph_request_total", "client", "frontend", "server", "payments", "connection_type", "virtual_node"): 1,
		// and a client span nobody answered
		ser("traces_service_graph_unpaired_spans_total", "client", "frontend"): 1,
	}
	for k, v := range want {
		s, ok := got[k]
		if !ok {
			t.Errorf("missing series %s", k)
			continue
		}
		if s.v != v {
			t.Errorf("%s = %v, want %v", k, s.v, v)
		}
	}
	for k := range got {
		if strings.Contains(k, "failed_total") && k != ser("traces_service_graph_request_failed_total", fb...) {
			t.Errorf("unexpected failed series %s", k)
		}
		if got[k].ls.Has("job") || got[k].ls.Has("instance") {
			t.Errorf("series %s carries job/instance: the resource must stay empty", k)
		}
	}

	wantNames := map[string]int{
		"traces_spanmetrics_calls_total":                     8,
		"traces_spanmetrics_size_total":                      8,
		"traces_spanmetrics_latency_bucket":                  8 * 15,
		"traces_spanmetrics_latency_sum":                     8,
		"traces_spanmetrics_latency_count":                   8,
		"traces_service_graph_request_total":                 5,
		"traces_service_graph_request_failed_total":          1,
		"traces_service_graph_request_server_seconds_bucket": 5 * 9,
		"traces_service_graph_request_server_seconds_sum":    5,
		"traces_service_graph_request_server_seconds_count":  5,
		"traces_service_graph_request_client_seconds_bucket": 5 * 9,
		"traces_service_graph_request_client_seconds_sum":    5,
		"traces_service_graph_request_client_seconds_count":  5,
		"traces_service_graph_unpaired_spans_total":          1,
	}
	if n := metricNamesOf(got); !reflect.DeepEqual(n, wantNames) {
		t.Errorf("series per metric name:\n got %v\nwant %v", n, wantNames)
	}

	// Exemplars: the bucket an observation falls in carries its trace and span id.
	exTests := map[string]string{
		ser("traces_spanmetrics_latency_bucket", with(backendAPI, "le", "0.064")...):        hexTrace(1) + "/" + hexSpan(3),
		ser("traces_service_graph_request_server_seconds_bucket", with(fb, "le", "0.1")...): hexTrace(1) + "/" + hexSpan(3),
		ser("traces_service_graph_request_server_seconds_bucket", "client", "backend", "server", "worker",
			"connection_type", "messaging_system", "le", "0.1"): hexTrace(1) + "/" + hexSpan(6),
	}
	for k, wantEx := range exTests {
		if ex := exemplarTraceIDs(got[k]); !reflect.DeepEqual(ex, []string{wantEx}) {
			t.Errorf("exemplars of %s = %v, want [%s]", k, ex, wantEx)
		}
	}
	if ex := got[ser("traces_spanmetrics_latency_bucket", with(backendAPI, "le", "0.032")...)].exemplars; len(ex) != 0 {
		t.Errorf("a bucket below the observation carries exemplars %v", ex)
	}

	// Exemplars are sent once; the cumulative values stay.
	again := collectOne(t, g, t0.Add(30*time.Second), tenantA)
	for k, s := range again {
		if len(s.exemplars) != 0 {
			t.Errorf("exemplar re-sent on %s", k)
		}
	}
	if v := again[ser("traces_service_graph_request_total", fb...)].v; v != 1 {
		t.Errorf("request_total after second collect = %v, want 1", v)
	}
}

// TestNamesWithoutSuffixes: a downstream that translates without suffixes (or a remote-write peer that takes
// names as they are) sees the same Tempo names.
func TestNamesWithoutSuffixes(t *testing.T) {
	g := mustNew(t, testConfig())
	if err := g.Consume(tenantA, t0, shopTrace(1)); err != nil {
		t.Fatal(err)
	}
	if err := g.Tick(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	tms := g.Collect(t0.Add(time.Minute))
	with := metricNamesOf(promTranslate(t, tms[0].Metrics, true))
	without := metricNamesOf(promTranslate(t, tms[0].Metrics, false))
	if !reflect.DeepEqual(with, without) {
		t.Errorf("names differ with and without suffixes:\n with %v\n without %v", with, without)
	}
}

func TestDimensionsStatusMessageAndTargetInfo(t *testing.T) {
	cfg := testConfig()
	cfg.SpanMetrics.Dimensions = []string{"http.method", "deployment.environment"}
	cfg.SpanMetrics.IntrinsicDimensions.StatusMessage = true
	cfg.SpanMetrics.EnableTargetInfo = true
	g := mustNew(t, cfg)
	td := buildTraces(1, span{
		svc: "api", name: "GET /x", kind: ptrace.SpanKindServer, id: 1, dur: time.Millisecond, err: true,
		attrs: map[string]string{"http.method": "GET"},
		res:   map[string]string{"deployment.environment": "prod", "service.instance.id": "i-1", "host.name": "h1"},
	})
	if err := g.Consume(tenantA, t0, td); err != nil {
		t.Fatal(err)
	}
	got := collectOne(t, g, t0, tenantA)
	calls := ser("traces_spanmetrics_calls_total", "service", "api", "span_name", "GET /x", "span_kind", "SPAN_KIND_SERVER",
		"status_code", "STATUS_CODE_ERROR", "status_message", "boom", "http_method", "GET", "deployment_environment", "prod",
		"job", "api", "instance", "i-1")
	if got[calls].v != 1 {
		t.Errorf("missing %s; have %v", calls, names(got))
	}
	info := ser("traces_target_info", "job", "api", "instance", "i-1", "deployment_environment", "prod", "host_name", "h1")
	if got[info].v != 1 {
		t.Errorf("missing %s; have %v", info, names(got))
	}
}

func TestProcessorsToggle(t *testing.T) {
	for _, tc := range []struct {
		processors []string
		wantPrefix string
		notPrefix  string
	}{
		{[]string{ProcessorSpanMetrics}, "traces_spanmetrics_", "traces_service_graph_"},
		{[]string{ProcessorServiceGraphs}, "traces_service_graph_", "traces_spanmetrics_"},
	} {
		cfg := testConfig()
		cfg.Processors = tc.processors
		g := mustNew(t, cfg)
		if err := g.Consume(tenantA, t0, shopTrace(1)); err != nil {
			t.Fatal(err)
		}
		got := collectOne(t, g, t0, tenantA)
		if len(got) == 0 {
			t.Fatalf("%v: nothing emitted", tc.processors)
		}
		for _, k := range names(got) {
			name := got[k].name
			if strings.HasPrefix(name, tc.notPrefix) || !strings.HasPrefix(name, tc.wantPrefix) {
				t.Errorf("%v: unexpected series %s", tc.processors, k)
			}
		}
	}
}

func TestTenantsAreSeparate(t *testing.T) {
	g := mustNew(t, testConfig())
	if err := g.Consume("a", t0, buildTraces(1, span{svc: "sa", name: "x", kind: ptrace.SpanKindServer, id: 1})); err != nil {
		t.Fatal(err)
	}
	if err := g.Consume("b", t0, buildTraces(2, span{svc: "sb", name: "x", kind: ptrace.SpanKindServer, id: 1})); err != nil {
		t.Fatal(err)
	}
	tms := g.Collect(t0)
	if len(tms) != 2 || tms[0].Tenant != "a" || tms[1].Tenant != "b" {
		t.Fatalf("tenants = %v", tms)
	}
	for _, tm := range tms {
		for k, s := range promTranslate(t, tm.Metrics, true) {
			if svc := s.ls.Get("service") + s.ls.Get("server"); svc != "s"+tm.Tenant {
				t.Errorf("tenant %s holds %s", tm.Tenant, k)
			}
		}
	}
}

func TestMaxItemsDropsSpans(t *testing.T) {
	cfg := testConfig()
	cfg.ServiceGraphs.MaxItems = 1
	g := mustNew(t, cfg)
	td := buildTraces(1,
		span{svc: "a", name: "c1", kind: ptrace.SpanKindClient, id: 1, dur: time.Millisecond},
		span{svc: "a", name: "c2", kind: ptrace.SpanKindClient, id: 2, dur: time.Millisecond},
		span{svc: "a", name: "c3", kind: ptrace.SpanKindClient, id: 3, dur: time.Millisecond},
	)
	if err := g.Consume(tenantA, t0, td); err != nil {
		t.Fatal(err)
	}
	got := collectOne(t, g, t0, tenantA)
	if v := got[ser("traces_service_graph_dropped_spans_total", "client", "a")].v; v != 2 {
		t.Errorf("dropped = %v, want 2; have %v", v, names(got))
	}
	if n := g.Stats().PendingEdges; n != 1 {
		t.Errorf("pending = %d, want 1", n)
	}
}

func TestStaleSeriesExpire(t *testing.T) {
	cfg := testConfig()
	cfg.StaleAfter = time.Minute
	g := mustNew(t, cfg)
	if err := g.Consume(tenantA, t0, buildTraces(1, span{svc: "a", name: "old", kind: ptrace.SpanKindInternal, id: 1})); err != nil {
		t.Fatal(err)
	}
	if err := g.Consume(tenantA, t0.Add(50*time.Second), buildTraces(2, span{svc: "a", name: "new", kind: ptrace.SpanKindInternal, id: 1})); err != nil {
		t.Fatal(err)
	}
	before := g.Stats().ActiveSeries
	if err := g.Tick(t0.Add(70 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if after := g.Stats().ActiveSeries; after != before/2 {
		t.Errorf("active series %d -> %d, want half to expire", before, after)
	}
	for k, s := range collectOne(t, g, t0.Add(70*time.Second), tenantA) {
		if s.ls.Get("span_name") == "old" {
			t.Errorf("stale series still emitted: %s", k)
		}
	}
}

// TestActiveSeriesLimit feeds 100k distinct span names: memory must stay bounded by max_active_series, and
// every refusal must be counted.
func TestActiveSeriesLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxActiveSeries = 5000
	cfg.Processors = []string{ProcessorSpanMetrics}
	g := mustNew(t, cfg)
	const total, perBatch = 100000, 1000
	for b := 0; b < total/perBatch; b++ {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "svc")
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := 0; i < perBatch; i++ {
			sp := spans.AppendEmpty()
			sp.SetName("op-" + itoa(b*perBatch+i))
			sp.SetTraceID(traceID(byte(i)))
			sp.SetSpanID(spanID(byte(i)))
		}
		if err := g.Consume(tenantA, t0, td); err != nil {
			t.Fatal(err)
		}
		if a := g.Stats().ActiveSeries; a > cfg.MaxActiveSeries {
			t.Fatalf("after batch %d: %d active series, limit %d", b, a, cfg.MaxActiveSeries)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("after %d distinct span names: heap in use %.1f MiB with %d active series", total, float64(ms.HeapInuse)/(1<<20), g.Stats().ActiveSeries)
	st := g.Stats()
	// Each span name needs 3 series (calls, latency, size), taken all or nothing: 1666 names fit.
	wantActive := cfg.MaxActiveSeries / 3 * 3
	if st.ActiveSeries != wantActive {
		t.Errorf("active series = %d, want %d", st.ActiveSeries, wantActive)
	}
	if want := uint64(3*total - wantActive); st.RefusedSeries != want {
		t.Errorf("refused = %d, want %d", st.RefusedSeries, want)
	}
	tms := g.Collect(t0)
	n := 0
	for _, tm := range tms {
		n += tm.Metrics.DataPointCount()
	}
	// Each new series goes out with a zero point before its value (TestFirstEmissionStartsAtZero).
	if n != 2*wantActive {
		t.Errorf("emitted %d points, want %d", n, 2*wantActive)
	}
	// Staleness frees the slots for new series.
	if err := g.Tick(t0.Add(cfg.StaleAfter)); err != nil {
		t.Fatal(err)
	}
	if a := g.Stats().ActiveSeries; a != 0 {
		t.Errorf("after staleness: %d active series", a)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"unknown processor", func(c *Config) { c.Processors = []string{"local-blocks"} }, `processors: unknown processor "local-blocks"`},
		{"no processors", func(c *Config) { c.Processors = nil }, "processors: at least one"},
		{"unsorted buckets", func(c *Config) { c.SpanMetrics.HistogramBuckets = []float64{1, 0.5} }, "span_metrics.histogram_buckets: buckets must be in increasing order"},
		{"empty buckets", func(c *Config) { c.ServiceGraphs.HistogramBuckets = nil }, "service_graphs.histogram_buckets: at least one bucket"},
		{"duplicate bucket", func(c *Config) { c.ServiceGraphs.HistogramBuckets = []float64{1, 1} }, "appears twice"},
		{"colliding dimensions are allowed, as in Tempo", func(c *Config) { c.SpanMetrics.Dimensions = []string{"http.method", "http_method"} }, ""},
		{"builtin dimension is allowed (becomes __service)", func(c *Config) { c.SpanMetrics.Dimensions = []string{"service"} }, ""},
		{"empty dimension", func(c *Config) { c.ServiceGraphs.Dimensions = []string{""} }, "service_graphs.dimensions: empty attribute name"},
		{"bad trace id label", func(c *Config) { c.TraceIDLabelName = "trace.id" }, `trace_id_label_name: "trace.id" is not a valid`},
		{"bad histogram mode", func(c *Config) { c.GenerateNativeHistograms = "exponential" }, `generate_native_histograms: "exponential" is not one of classic, native, both`},
		{"bucket factor", func(c *Config) { c.GenerateNativeHistograms = "native"; c.NativeHistogramBucketFactor = 1 }, "native_histogram_bucket_factor: 1 must be greater than 1"},
		{"max buckets", func(c *Config) { c.GenerateNativeHistograms = "both"; c.NativeHistogramMaxBucketNumber = 0 }, "native_histogram_max_bucket_number: must be positive"},
		{"zero wait", func(c *Config) { c.ServiceGraphs.Wait = 0 }, "service_graphs.wait"},
		{"zero max_items", func(c *Config) { c.ServiceGraphs.MaxItems = 0 }, "service_graphs.max_items"},
		{"negative series", func(c *Config) { c.MaxActiveSeries = -1 }, "max_active_series"},
		{"zero flush", func(c *Config) { c.FlushInterval = 0 }, "flush_interval"},
		{"bad sync", func(c *Config) { c.WAL.Sync = "sometimes" }, `wal.sync: "sometimes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestSanitizeLabelName(t *testing.T) {
	for in, want := range map[string]string{
		"http.method": "http_method", "k8s.pod.name": "k8s_pod_name", "1abc": "1abc", "a-b/c": "a_b_c", "ok_1": "ok_1",
		"日本": "__", "deployment.environment": "deployment_environment",
	} {
		if got := SanitizeLabelName(in); got != want {
			t.Errorf("SanitizeLabelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultBuckets(t *testing.T) {
	want := []float64{0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384}
	if got := DefaultSpanMetricsBuckets(); !reflect.DeepEqual(got, want) {
		t.Errorf("span metrics buckets = %v, want %v", got, want)
	}
}

// TestFirstEmissionStartsAtZero checks that a new counter or histogram goes out with a zero point at its
// creation before its first value, so that rate() and increase() see the first requests (a lone first sample
// is only a baseline to PromQL), and that later emissions carry one point per series.
func TestFirstEmissionStartsAtZero(t *testing.T) {
	g := mustNew(t, testConfig())
	if err := g.Consume(tenantA, t0, shopTrace(1)); err != nil {
		t.Fatal(err)
	}
	if err := g.Tick(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	first := collectOne(t, g, t0.Add(time.Minute), tenantA)
	calls := first[ser("traces_spanmetrics_calls_total", "service", "frontend", "span_name", "GET /", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET")]
	edge := first[ser("traces_service_graph_request_total", "client", "frontend", "server", "backend")]
	for name, s := range map[string]promSample{"calls": calls, "edge": edge} {
		if s.points != 2 || s.first != 0 || s.v < 1 {
			t.Errorf("%s: first emission = %d points, first %v, last %v; want a zero point then the value", name, s.points, s.first, s.v)
		}
	}
	for k, s := range first {
		if strings.HasSuffix(s.name, "_count") && s.points != 2 {
			t.Errorf("%s: %d points in the first emission, want 2", k, s.points)
		}
	}
	if err := g.Consume(tenantA, t0.Add(time.Minute), shopTrace(2)); err != nil {
		t.Fatal(err)
	}
	for k, s := range collectOne(t, g, t0.Add(2*time.Minute), tenantA) {
		if s.points != 1 {
			t.Errorf("%s: %d points in a later emission, want 1", k, s.points)
		}
	}
}

// namesBatch is one batch of n spans with distinct names op-<from>..., one service.
func namesBatch(svc string, from, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := 0; i < n; i++ {
		sp := spans.AppendEmpty()
		sp.SetName("op-" + itoa(from+i))
		sp.SetTraceID(traceID(byte(i)))
		sp.SetSpanID(spanID(byte(i)))
	}
	return td
}

// TestPerTenantSeriesLimit: a noisy tenant with 40k span names stops at max_active_series_per_tenant, and a
// quiet tenant that arrives afterwards still gets its span metrics.
func TestPerTenantSeriesLimit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perTenant int
		quietGets bool
	}{
		{"per-tenant limit", 4500, true},
		{"global limit only: the noisy tenant starves the quiet one", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxActiveSeries = 9000
			cfg.MaxActiveSeriesPerTenant = tc.perTenant
			cfg.Processors = []string{ProcessorSpanMetrics}
			g := mustNew(t, cfg)
			for b := 0; b < 40; b++ {
				if err := g.Consume("noisy", t0, namesBatch("loud", b*1000, 1000)); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.Consume("quiet", t0, namesBatch("calm", 0, 1)); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, tm := range g.Collect(t0) {
				got[tm.Tenant] = tm.Metrics.DataPointCount()
			}
			limit := cfg.MaxActiveSeries
			if tc.perTenant > 0 {
				limit = tc.perTenant
			}
			// Each span name takes 3 series, all or nothing; each new series goes out with a zero point first.
			if want := 2 * (limit / 3 * 3); got["noisy"] != want {
				t.Errorf("noisy tenant emitted %d points, want %d", got["noisy"], want)
			}
			if (got["quiet"] > 0) != tc.quietGets {
				t.Errorf("quiet tenant emitted %d points, want some=%v", got["quiet"], tc.quietGets)
			}
			if g.Stats().RefusedSeries == 0 {
				t.Error("no refusal counted")
			}
		})
	}
}

// TestGeneratorTenantDoor: ids the stores refuse are refused before the WAL, and a new tenant beyond
// max_tenants is refused with ResourceExhausted while known tenants go on.
func TestGeneratorTenantDoor(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTenants = 2
	g := mustNew(t, cfg)
	td := func() ptrace.Traces {
		return buildTraces(1, span{svc: "s", name: "x", kind: ptrace.SpanKindServer, id: 1})
	}
	for _, bad := range []string{".hidden", "...", "a/b", "tën", ""} {
		if err := g.Consume(bad, t0, td()); status.Code(err) != codes.InvalidArgument && bad != "" || err == nil {
			t.Errorf("Consume(%q) = %v, want InvalidArgument", bad, err)
		}
	}
	for _, id := range []string{"a", "b", "a"} {
		if err := g.Consume(id, t0, td()); err != nil {
			t.Fatalf("Consume(%q) = %v", id, err)
		}
	}
	err := g.Consume("c", t0, td())
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(fmt.Sprint(err), "max_tenants") {
		t.Fatalf("third tenant: %v, want ResourceExhausted naming max_tenants", err)
	}
	if n := g.Stats().TenantsTracked; n != 2 {
		t.Errorf("tenants tracked = %d, want 2", n)
	}
}
