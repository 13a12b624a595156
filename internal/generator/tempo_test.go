package generator

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The tests in this file pin the behaviour that was checked against Tempo's metrics-generator source (see
// docs/generator.md, "Checked against Tempo"): defaults, label names, attribute lookup order, virtual nodes,
// database edges, dimensions, span multiplier, exemplars and native histograms.

func TestTempoDefaults(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"processors", c.Processors, []string{"service-graphs", "span-metrics"}},
		{"span_metrics.histogram_buckets", c.SpanMetrics.HistogramBuckets,
			[]float64{0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384}},
		{"service_graphs.histogram_buckets", c.ServiceGraphs.HistogramBuckets, []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8}},
		{"intrinsic_dimensions", c.SpanMetrics.IntrinsicDimensions,
			IntrinsicDimensions{Service: true, SpanName: true, SpanKind: true, StatusCode: true, StatusMessage: false}},
		{"enable_target_info", c.SpanMetrics.EnableTargetInfo, false},
		{"enable_instance_label", c.SpanMetrics.EnableInstanceLabel, true},
		{"service_graphs.wait", c.ServiceGraphs.Wait, 10 * time.Second},
		{"service_graphs.max_items", c.ServiceGraphs.MaxItems, 10000},
		{"service_graphs.peer_attributes", c.ServiceGraphs.PeerAttributes, []string{"peer.service", "db.name", "db.system", "db.system.name"}},
		{"service_graphs.database_name_attributes", c.ServiceGraphs.DatabaseNameAttributes, []string{"db.namespace", "db.name", "db.system", "db.system.name"}},
		{"service_graphs.enable_client_server_prefix", c.ServiceGraphs.EnableClientServerPrefix, false},
		{"service_graphs.enable_virtual_node_label", c.ServiceGraphs.EnableVirtualNodeLabel, false},
		{"service_graphs.enable_messaging_system_latency_histogram", c.ServiceGraphs.EnableMessagingSystemLatencyHistogram, false},
		{"stale_after", c.StaleAfter, 15 * time.Minute},
		{"flush_interval", c.FlushInterval, 15 * time.Second},
		{"generate_native_histograms", c.GenerateNativeHistograms, "classic"},
		{"native_histogram_bucket_factor", c.NativeHistogramBucketFactor, 1.1},
		{"native_histogram_max_bucket_number", c.NativeHistogramMaxBucketNumber, 100},
		{"trace_id_label_name", c.TraceIDLabelName, "traceID"},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// run feeds one trace at t0, lets every pending edge expire, and returns the translated emission.
func run(t *testing.T, mutate func(*Config), spans ...span) map[string]promSample {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	g := mustNew(t, cfg)
	if err := g.Consume(tenantA, t0, buildTraces(1, spans...)); err != nil {
		t.Fatal(err)
	}
	if err := g.Tick(t0.Add(cfg.ServiceGraphs.Wait)); err != nil {
		t.Fatal(err)
	}
	return collectOne(t, g, t0.Add(15*time.Second), tenantA)
}

// check asserts exact values of the wanted series and that the absent ones are absent.
func check(t *testing.T, got map[string]promSample, want map[string]float64, absent ...string) {
	t.Helper()
	for k, v := range want {
		s, ok := got[k]
		if !ok {
			t.Errorf("missing series %s; have:\n%s", k, strings.Join(filterNames(got, "traces_service_graph_request_total", "traces_spanmetrics_calls_total", "traces_target_info"), "\n"))
			continue
		}
		if math.Abs(s.v-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, s.v, v)
		}
	}
	for _, k := range absent {
		if _, ok := got[k]; ok {
			t.Errorf("unexpected series %s", k)
		}
	}
}

func filterNames(got map[string]promSample, prefixes ...string) []string {
	var out []string
	for _, k := range names(got) {
		if slices.Contains(prefixes, got[k].name) {
			out = append(out, k)
		}
	}
	return out
}

func edge3(metric, client, server, conn string, more ...string) string {
	kv := []string{"client", client, "server", server}
	if conn != "" {
		kv = append(kv, "connection_type", conn)
	}
	return ser(metric, append(kv, more...)...)
}

const (
	reqTotal   = "traces_service_graph_request_total"
	srvSum     = "traces_service_graph_request_server_seconds_sum"
	cliSum     = "traces_service_graph_request_client_seconds_sum"
	srvCount   = "traces_service_graph_request_server_seconds_count"
	failed     = "traces_service_graph_request_failed_total"
	unpaired   = "traces_service_graph_unpaired_spans_total"
	msgSum     = "traces_service_graph_request_messaging_system_seconds_sum"
	msgCount   = "traces_service_graph_request_messaging_system_seconds_count"
	callsTotal = "traces_spanmetrics_calls_total"
)

func TestServiceGraphTempoRules(t *testing.T) {
	client := func(attrs map[string]string) span {
		return span{svc: "backend", name: "query", kind: ptrace.SpanKindClient, id: 2, parent: 1, dur: 10 * time.Millisecond, attrs: attrs}
	}
	server := span{svc: "backend", name: "GET /", kind: ptrace.SpanKindServer, id: 1, dur: 100 * time.Millisecond}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		spans  []span
		want   map[string]float64
		absent []string
	}{
		{
			name:  "database named by peer.service",
			spans: []span{client(map[string]string{"db.name": "orders", "peer.service": "orders-pg"})},
			want: map[string]float64{
				edge3(reqTotal, "backend", "orders-pg", "database"): 1,
				edge3(srvSum, "backend", "orders-pg", "database"):   0.01,
				edge3(cliSum, "backend", "orders-pg", "database"):   0.01,
			},
		},
		{
			name:  "database named by server.address before the namespace",
			spans: []span{client(map[string]string{"db.namespace": "orders", "server.address": "db.local"})},
			want:  map[string]float64{edge3(reqTotal, "backend", "db.local", "database"): 1},
		},
		{
			name:  "database named by network.peer.address:port",
			spans: []span{client(map[string]string{"db.system": "postgresql", "network.peer.address": "10.0.0.5", "network.peer.port": "5432"})},
			want:  map[string]float64{edge3(reqTotal, "backend", "10.0.0.5:5432", "database"): 1},
		},
		{
			name:  "db.namespace is preferred to db.name and db.system",
			spans: []span{client(map[string]string{"db.namespace": "ns", "db.name": "name", "db.system": "postgresql"})},
			want:  map[string]float64{edge3(reqTotal, "backend", "ns", "database"): 1},
		},
		{
			name:  "db.system alone makes a database edge",
			spans: []span{client(map[string]string{"db.system": "postgresql"})},
			want:  map[string]float64{edge3(reqTotal, "backend", "postgresql", "database"): 1},
		},
		{
			name:  "db.system.name",
			spans: []span{client(map[string]string{"db.system.name": "mysql"})},
			want:  map[string]float64{edge3(reqTotal, "backend", "mysql", "database"): 1},
		},
		{
			name: "database attribute on the resource",
			spans: []span{{svc: "backend", name: "q", kind: ptrace.SpanKindClient, id: 2, parent: 1, dur: 10 * time.Millisecond,
				res: map[string]string{"db.name": "orders"}}},
			want: map[string]float64{edge3(reqTotal, "backend", "orders", "database"): 1},
		},
		{
			name: "a producer with a database attribute is a database edge",
			spans: []span{{svc: "backend", name: "publish", kind: ptrace.SpanKindProducer, id: 2, parent: 1, dur: 10 * time.Millisecond,
				attrs: map[string]string{"db.system": "redis"}}},
			want: map[string]float64{edge3(reqTotal, "backend", "redis", "database"): 1},
		},
		{
			name:  "root server span: client user, client latency 0",
			spans: []span{server},
			want: map[string]float64{
				edge3(reqTotal, "user", "backend", "virtual_node"): 1,
				edge3(srvSum, "user", "backend", "virtual_node"):   0.1,
				edge3(cliSum, "user", "backend", "virtual_node"):   0,
			},
		},
		{
			name: "root server span with peer.service names its client",
			spans: []span{{svc: "backend", name: "GET /", kind: ptrace.SpanKindServer, id: 1, dur: 100 * time.Millisecond,
				attrs: map[string]string{"peer.service": "mobile-app"}}},
			want:   map[string]float64{edge3(reqTotal, "mobile-app", "backend", "virtual_node"): 1},
			absent: []string{edge3(reqTotal, "user", "backend", "virtual_node")},
		},
		{
			name:  "expired client with peer.service: virtual server, server latency 0",
			spans: []span{client(map[string]string{"peer.service": "payments"})},
			want: map[string]float64{
				edge3(reqTotal, "backend", "payments", "virtual_node"): 1,
				edge3(srvSum, "backend", "payments", "virtual_node"):   0,
				edge3(srvCount, "backend", "payments", "virtual_node"): 1,
				edge3(cliSum, "backend", "payments", "virtual_node"):   0.01,
			},
		},
		{
			name:   "server.address is not a peer attribute: the client stays unpaired",
			spans:  []span{client(map[string]string{"server.address": "api.example.com"})},
			want:   map[string]float64{ser(unpaired, "client", "backend"): 1},
			absent: []string{edge3(reqTotal, "backend", "api.example.com", "virtual_node")},
		},
		{
			name:   "enable_virtual_node_label",
			mutate: func(c *Config) { c.ServiceGraphs.EnableVirtualNodeLabel = true },
			spans: []span{
				server,
				{svc: "backend", name: "pay", kind: ptrace.SpanKindClient, id: 2, parent: 1, dur: 10 * time.Millisecond, attrs: map[string]string{"peer.service": "payments"}},
				{svc: "backend", name: "call", kind: ptrace.SpanKindClient, id: 3, parent: 1, dur: 10 * time.Millisecond},
				{svc: "auth", name: "check", kind: ptrace.SpanKindServer, id: 4, parent: 3, dur: 5 * time.Millisecond},
			},
			want: map[string]float64{
				edge3(reqTotal, "user", "backend", "virtual_node", "virtual_node", "client"):     1,
				edge3(reqTotal, "backend", "payments", "virtual_node", "virtual_node", "server"): 1,
				edge3(reqTotal, "backend", "auth", ""):                                           1,
			},
		},
		{
			name:   "dimensions without prefix: the side seen last wins",
			mutate: func(c *Config) { c.ServiceGraphs.Dimensions = []string{"deployment.environment", "region"} },
			spans: []span{
				{svc: "frontend", name: "call", kind: ptrace.SpanKindClient, id: 2, parent: 9, dur: 10 * time.Millisecond,
					res: map[string]string{"deployment.environment": "prod"}, attrs: map[string]string{"region": "eu"}},
				{svc: "backend", name: "GET", kind: ptrace.SpanKindServer, id: 3, parent: 2, dur: 5 * time.Millisecond,
					res: map[string]string{"deployment.environment": "staging"}},
			},
			want: map[string]float64{edge3(reqTotal, "frontend", "backend", "", "deployment_environment", "staging", "region", "eu"): 1},
		},
		{
			name: "dimensions with enable_client_server_prefix",
			mutate: func(c *Config) {
				c.ServiceGraphs.Dimensions = []string{"deployment.environment"}
				c.ServiceGraphs.EnableClientServerPrefix = true
			},
			spans: []span{
				{svc: "frontend", name: "call", kind: ptrace.SpanKindClient, id: 2, parent: 9, dur: 10 * time.Millisecond,
					res: map[string]string{"deployment.environment": "prod"}},
				{svc: "backend", name: "GET", kind: ptrace.SpanKindServer, id: 3, parent: 2, dur: 5 * time.Millisecond,
					res: map[string]string{"deployment.environment": "staging"}},
			},
			want: map[string]float64{edge3(reqTotal, "frontend", "backend", "",
				"client_deployment_environment", "prod", "server_deployment_environment", "staging"): 1},
		},
		{
			name: "a resource without service.name has no node",
			spans: []span{
				{svc: "?", noSvc: true, name: "call", kind: ptrace.SpanKindClient, id: 2, parent: 9, dur: 10 * time.Millisecond},
				{svc: "backend", name: "GET", kind: ptrace.SpanKindServer, id: 3, parent: 2, dur: 5 * time.Millisecond},
			},
			want: map[string]float64{ser(unpaired, "server", "backend"): 1},
		},
		{
			name:   "messaging system latency: producer end to consumer start",
			mutate: func(c *Config) { c.ServiceGraphs.EnableMessagingSystemLatencyHistogram = true },
			spans: []span{
				{svc: "backend", name: "publish", kind: ptrace.SpanKindProducer, id: 2, parent: 9, dur: 2 * time.Millisecond},
				{svc: "worker", name: "process", kind: ptrace.SpanKindConsumer, id: 3, parent: 2, at: 10 * time.Millisecond, dur: 30 * time.Millisecond},
			},
			want: map[string]float64{
				edge3(reqTotal, "backend", "worker", "messaging_system"): 1,
				edge3(msgSum, "backend", "worker", "messaging_system"):   0.008,
				edge3(msgCount, "backend", "worker", "messaging_system"): 1,
			},
		},
		{
			name: "messaging latency off by default",
			spans: []span{
				{svc: "backend", name: "publish", kind: ptrace.SpanKindProducer, id: 2, parent: 9, dur: 2 * time.Millisecond},
				{svc: "worker", name: "process", kind: ptrace.SpanKindConsumer, id: 3, parent: 2, at: 10 * time.Millisecond, dur: 30 * time.Millisecond},
			},
			want:   map[string]float64{edge3(reqTotal, "backend", "worker", "messaging_system"): 1},
			absent: []string{edge3(msgCount, "backend", "worker", "messaging_system")},
		},
		{
			name:   "span_multiplier_key weighs requests and observations",
			mutate: func(c *Config) { c.ServiceGraphs.SpanMultiplierKey = "sampling.ratio" },
			spans: []span{
				{svc: "frontend", name: "call", kind: ptrace.SpanKindClient, id: 2, parent: 9, dur: 10 * time.Millisecond, dattrs: map[string]float64{"sampling.ratio": 0.25}},
				{svc: "backend", name: "GET", kind: ptrace.SpanKindServer, id: 3, parent: 2, dur: 5 * time.Millisecond, err: true, dattrs: map[string]float64{"sampling.ratio": 0.25}},
			},
			want: map[string]float64{
				edge3(reqTotal, "frontend", "backend", ""): 4,
				edge3(failed, "frontend", "backend", ""):   4,
				edge3(srvCount, "frontend", "backend", ""): 4,
				edge3(srvSum, "frontend", "backend", ""):   0.02,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, run(t, tc.mutate, tc.spans...), tc.want, tc.absent...)
		})
	}
}

func TestSpanMetricsTempoRules(t *testing.T) {
	sp := func(attrs, res map[string]string) span {
		return span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 10 * time.Millisecond, attrs: attrs, res: res}
	}
	base := []string{"service", "api", "span_name", "GET", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET"}
	with := func(kv ...string) string { return ser(callsTotal, append(slices.Clone(base), kv...)...) }
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		spans  []span
		want   map[string]float64
		absent []string
	}{
		{
			name:   "a dimension is looked up in the resource first",
			mutate: func(c *Config) { c.SpanMetrics.Dimensions = []string{"deployment.environment"} },
			spans:  []span{sp(map[string]string{"deployment.environment": "dev"}, map[string]string{"deployment.environment": "prod"})},
			want:   map[string]float64{with("deployment_environment", "prod"): 1},
		},
		{
			name:   "then in the span",
			mutate: func(c *Config) { c.SpanMetrics.Dimensions = []string{"http.method"} },
			spans:  []span{sp(map[string]string{"http.method": "GET"}, nil)},
			want:   map[string]float64{with("http_method", "GET"): 1},
		},
		{
			name:   "a dimension named like an intrinsic gets a __ prefix",
			mutate: func(c *Config) { c.SpanMetrics.Dimensions = []string{"service"} },
			spans:  []span{sp(map[string]string{"service": "x"}, nil)},
			want:   map[string]float64{with("__service", "x"): 1},
		},
		{
			name: "colliding dimensions: the last configured wins, even when absent",
			mutate: func(c *Config) {
				c.SpanMetrics.Dimensions = []string{"deployment.environment", "deployment_environment"}
			},
			spans: []span{
				sp(map[string]string{"deployment.environment": "a"}, nil),
				{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 2, dur: 10 * time.Millisecond,
					attrs: map[string]string{"deployment.environment": "a", "deployment_environment": "b"}},
			},
			want:   map[string]float64{ser(callsTotal, base...): 1, with("deployment_environment", "b"): 1},
			absent: []string{with("deployment_environment", "a")},
		},
		{
			name:   "a leading digit is prefixed by the OTLP translation",
			mutate: func(c *Config) { c.SpanMetrics.Dimensions = []string{"3rd.party"} },
			spans:  []span{sp(map[string]string{"3rd.party": "yes"}, nil)},
			want:   map[string]float64{with("key_3rd_party", "yes"): 1},
		},
		{
			name:  "no service.name: no service label",
			spans: []span{{svc: "?", noSvc: true, name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 10 * time.Millisecond}},
			want:  map[string]float64{ser(callsTotal, "span_name", "GET", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET"): 1},
		},
		{
			name:   "span_multiplier_key: span attribute",
			mutate: func(c *Config) { c.SpanMetrics.SpanMultiplierKey = "X-SampleRatio" },
			spans: []span{{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 10 * time.Millisecond,
				dattrs: map[string]float64{"X-SampleRatio": 0.1}}},
			want: map[string]float64{
				ser(callsTotal, base...):                         10,
				ser("traces_spanmetrics_latency_count", base...): 10,
				ser("traces_spanmetrics_latency_sum", base...):   0.1,
			},
		},
		{
			name:   "span_multiplier_key: a string value is ignored",
			mutate: func(c *Config) { c.SpanMetrics.SpanMultiplierKey = "X-SampleRatio" },
			spans:  []span{sp(map[string]string{"X-SampleRatio": "0.1"}, nil)},
			want:   map[string]float64{ser(callsTotal, base...): 1},
		},
		{
			name:   "status_message",
			mutate: func(c *Config) { c.SpanMetrics.IntrinsicDimensions.StatusMessage = true },
			spans:  []span{{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: time.Millisecond, err: true}},
			want: map[string]float64{ser(callsTotal, "service", "api", "span_name", "GET", "span_kind", "SPAN_KIND_SERVER",
				"status_code", "STATUS_CODE_ERROR", "status_message", "boom"): 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, func(c *Config) {
				c.Processors = []string{ProcessorSpanMetrics}
				if tc.mutate != nil {
					tc.mutate(c)
				}
			}, tc.spans...)
			check(t, got, tc.want, tc.absent...)
		})
	}
}

func TestSpanMultiplierDoesNotWeighSize(t *testing.T) {
	s := span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 10 * time.Millisecond, dattrs: map[string]float64{"r": 0.5}}
	plain := run(t, nil, s)
	weighted := run(t, func(c *Config) { c.SpanMetrics.SpanMultiplierKey = "r" }, s)
	k := ser("traces_spanmetrics_size_total", "service", "api", "span_name", "GET", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET")
	if plain[k].v == 0 || weighted[k].v != plain[k].v {
		t.Errorf("size with multiplier = %v, without = %v; want equal and non-zero", weighted[k].v, plain[k].v)
	}
}

func TestTargetInfoTempoRules(t *testing.T) {
	res := map[string]string{"service.namespace": "shop", "service.instance.id": "i-1", "k8s.pod.name": "p-1",
		"service": "clash", "9lives": "skipped", "host.name": "h"}
	s := span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: time.Millisecond, res: res}
	base := []string{"service", "api", "span_name", "GET", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET"}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   map[string]float64
		absent []string
	}{
		{
			name: "job, instance and sanitized attributes",
			want: map[string]float64{
				ser("traces_target_info", "job", "shop/api", "instance", "i-1", "k8s_pod_name", "p-1", "__service", "clash", "host_name", "h"): 1,
				ser(callsTotal, append(slices.Clone(base), "job", "shop/api", "instance", "i-1")...):                                           1,
			},
		},
		{
			name: "enable_instance_label false and an excluded attribute",
			mutate: func(c *Config) {
				c.SpanMetrics.EnableInstanceLabel = false
				c.SpanMetrics.TargetInfoExcludedDimensions = []string{"host.name"}
			},
			want: map[string]float64{
				ser("traces_target_info", "job", "shop/api", "k8s_pod_name", "p-1", "__service", "clash"): 1,
				ser(callsTotal, append(slices.Clone(base), "job", "shop/api")...):                         1,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, func(c *Config) {
				c.SpanMetrics.EnableTargetInfo = true
				if tc.mutate != nil {
					tc.mutate(c)
				}
			}, s)
			check(t, got, tc.want, tc.absent...)
		})
	}
	// Only job and instance: nothing to join, no traces_target_info.
	got := run(t, func(c *Config) { c.SpanMetrics.EnableTargetInfo = true },
		span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: time.Millisecond, res: map[string]string{"service.instance.id": "i-1"}})
	if n := metricNamesOf(got)["traces_target_info"]; n != 0 {
		t.Errorf("traces_target_info emitted %d times for a resource with only job and instance", n)
	}
}

// TestExemplarPerBucket: like Tempo, each bucket keeps the newest observation since the last emission.
func TestExemplarPerBucket(t *testing.T) {
	got := run(t, func(c *Config) { c.Processors = []string{ProcessorSpanMetrics} },
		span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 10 * time.Millisecond},
		span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 2, dur: 100 * time.Millisecond},
		span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 3, dur: 12 * time.Millisecond},
	)
	base := []string{"service", "api", "span_name", "GET", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET"}
	// Tempo's exemplar label (trace_id_label_name, default traceID) next to OpenTelemetry's trace_id and span_id.
	k := ser("traces_spanmetrics_latency_bucket", append(slices.Clone(base), "le", "0.016")...)
	if ex := got[k].exemplars; len(ex) != 1 || ex[0].Labels.String() != `{span_id="`+hexSpan(3)+`", traceID="`+hexTrace(1)+`", trace_id="`+hexTrace(1)+`"}` {
		t.Errorf("exemplar labels of %s = %v", k, ex)
	}
	for le, want := range map[string][]string{
		"0.016": {hexTrace(1) + "/" + hexSpan(3)},
		"0.128": {hexTrace(1) + "/" + hexSpan(2)},
		"0.008": nil,
	} {
		k := ser("traces_spanmetrics_latency_bucket", append(slices.Clone(base), "le", le)...)
		if ex := exemplarTraceIDs(got[k]); !reflect.DeepEqual(ex, want) {
			t.Errorf("exemplars of %s = %v, want %v", k, ex, want)
		}
	}
}
