package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// sinks is a real OTLP gRPC receiver (the Collector's own) started in-process, feeding consumertest sinks.
type sinks struct {
	endpoint string
	traces   *consumertest.TracesSink
	metrics  *consumertest.MetricsSink
	logs     *consumertest.LogsSink
}

func startReceiver(t *testing.T) *sinks {
	t.Helper()
	s := &sinks{
		endpoint: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
		traces:   new(consumertest.TracesSink),
		metrics:  new(consumertest.MetricsSink),
		logs:     new(consumertest.LogsSink),
	}
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	conf := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": s.endpoint}}})
	if err := conf.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := receivertest.NewNopSettings(f.Type())
	tr, err := f.CreateTraces(ctx, set, cfg, s.traces)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := f.CreateMetrics(ctx, set, cfg, s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := f.CreateLogs(ctx, set, cfg, s.logs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []component.Component{tr, mr, lr} {
		if err := r.Start(ctx, componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	}
	return s
}

type spanInfo struct {
	svc  string
	span ptrace.Span
}

// TestWorkloadSendsEverything runs the demo against a real OTLP receiver and checks that what a newcomer's
// first look at Sprout needs has arrived: all services, every span kind, database and queue spans, errors, a
// slow path, logs that carry trace ids, OTLP metrics with exemplars, and Prometheus text on /metrics.
func TestWorkloadSendsEverything(t *testing.T) {
	rx := startReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := New(ctx, Config{
		Endpoint:           "http://" + rx.endpoint,
		MetricsAddr:        "127.0.0.1:0",
		Rate:               500,
		ResourceAttributes: "service.name=ignored,team=demo%20team",
		MetricInterval:     200 * time.Millisecond,
		BatchTimeout:       100 * time.Millisecond,
		Seed:               42,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// /metrics serves Prometheus text while the workload runs, and OpenMetrics with exemplars when asked.
	testutil.Eventually(t, 20*time.Second, func() error {
		if n := w.Requests(); n < 600 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})
	text := scrape(t, w.MetricsURL(), "")
	for _, want := range []string{"# TYPE demo_http_requests_total counter", `demo_http_requests_total{code="200",route="/cart",service="frontend"}`, "demo_http_request_duration_seconds_bucket{", "demo_queue_wait_seconds_count ", "go_goroutines "} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if om := scrape(t, w.MetricsURL(), "application/openmetrics-text; version=1.0.0"); !strings.Contains(om, `# {trace_id="`) {
		t.Errorf("OpenMetrics exposition has no trace_id exemplar")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if rx.metrics.DataPointCount() == 0 {
			return fmt.Errorf("no metric data points yet")
		}
		return nil
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	received := time.Now()

	// Run returned after flushing: everything emitted is in the sinks.
	spans := map[pcommon.SpanID]spanInfo{}
	byTrace := map[pcommon.TraceID][]spanInfo{}
	for _, td := range rx.traces.AllTraces() {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			svc, _ := rs.Resource().Attributes().Get("service.name")
			if v, ok := rs.Resource().Attributes().Get("team"); !ok || v.Str() != "demo team" {
				t.Errorf("resource of %s lacks team=demo team from the resource attributes", svc.Str())
			}
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j).Spans()
				for k := 0; k < ss.Len(); k++ {
					si := spanInfo{svc: svc.Str(), span: ss.At(k)}
					spans[si.span.SpanID()] = si
					byTrace[si.span.TraceID()] = append(byTrace[si.span.TraceID()], si)
				}
			}
		}
	}
	requests := int(w.Requests())
	if len(byTrace) != requests {
		t.Errorf("%d traces received for %d requests", len(byTrace), requests)
	}

	kinds := map[string]map[ptrace.SpanKind]int{}
	var dbSpans, producers, consumers, errorRoots, slow int
	var rootDurations []time.Duration
	for _, si := range spans {
		sp := si.span
		if kinds[si.svc] == nil {
			kinds[si.svc] = map[ptrace.SpanKind]int{}
		}
		kinds[si.svc][sp.Kind()]++
		if sp.EndTimestamp().AsTime().After(received) {
			t.Errorf("span %s of %s ends in the future", sp.Name(), si.svc)
		}
		if sp.EndTimestamp() < sp.StartTimestamp() {
			t.Errorf("span %s of %s ends before it starts", sp.Name(), si.svc)
		}
		attrs := sp.Attributes()
		if _, ok := attrs.Get("db.system"); ok {
			dbSpans++
			if sp.Kind() != ptrace.SpanKindClient {
				t.Errorf("database span %s is %v, want client", sp.Name(), sp.Kind())
			}
			if v, _ := attrs.Get("db.name"); v.Str() == "" {
				t.Errorf("database span %s has no db.name", sp.Name())
			}
		}
		if _, ok := attrs.Get("messaging.system"); ok {
			switch sp.Kind() {
			case ptrace.SpanKindProducer:
				producers++
			case ptrace.SpanKindConsumer:
				consumers++
			default:
				t.Errorf("messaging span %s is %v", sp.Name(), sp.Kind())
			}
		}
		if sp.Name() == "fraud check" && sp.EndTimestamp().AsTime().Sub(sp.StartTimestamp().AsTime()) > 300*time.Millisecond {
			slow++
		}
		if sp.ParentSpanID().IsEmpty() {
			if si.svc != Frontend || sp.Kind() != ptrace.SpanKindServer {
				t.Errorf("root span %s of %s (%v): only frontend server spans should be roots", sp.Name(), si.svc, sp.Kind())
			}
			rootDurations = append(rootDurations, sp.EndTimestamp().AsTime().Sub(sp.StartTimestamp().AsTime()))
			if sp.Status().Code() == ptrace.StatusCodeError {
				errorRoots++
			}
			continue
		}
		parent, ok := spans[sp.ParentSpanID()]
		if !ok {
			t.Errorf("span %s of %s: parent %s not received", sp.Name(), si.svc, sp.ParentSpanID())
			continue
		}
		if parent.span.TraceID() != sp.TraceID() {
			t.Errorf("span %s: parent in another trace", sp.Name())
		}
		// Across a service boundary, a server's parent is the caller's client span and a consumer's parent
		// is the producer's span: the pairs a service graph is built from.
		if parent.svc != si.svc {
			want := map[ptrace.SpanKind]ptrace.SpanKind{ptrace.SpanKindServer: ptrace.SpanKindClient, ptrace.SpanKindConsumer: ptrace.SpanKindProducer}[sp.Kind()]
			if parent.span.Kind() != want || want == ptrace.SpanKindUnspecified {
				t.Errorf("%s %v span %q has parent %s %v span %q", si.svc, sp.Kind(), sp.Name(), parent.svc, parent.span.Kind(), parent.span.Name())
			}
		}
		if parent.span.StartTimestamp() > sp.StartTimestamp() {
			t.Errorf("span %s starts before its parent %s", sp.Name(), parent.span.Name())
		}
	}
	wantKinds := map[string][]ptrace.SpanKind{
		Frontend:    {ptrace.SpanKindServer, ptrace.SpanKindClient},
		Checkout:    {ptrace.SpanKindServer, ptrace.SpanKindClient, ptrace.SpanKindProducer},
		Payment:     {ptrace.SpanKindServer, ptrace.SpanKindClient, ptrace.SpanKindInternal},
		Fulfillment: {ptrace.SpanKindConsumer, ptrace.SpanKindClient},
	}
	for svc, ks := range wantKinds {
		for _, k := range ks {
			if kinds[svc][k] == 0 {
				t.Errorf("service %s sent no %v spans (got %v)", svc, k, kinds[svc])
			}
		}
	}
	if len(kinds) != len(Services) {
		t.Errorf("spans from services %v, want %v", keys(kinds), Services)
	}
	if dbSpans == 0 || producers == 0 || consumers == 0 || producers != consumers {
		t.Errorf("db spans %d, producer spans %d, consumer spans %d: want all > 0 and producers = consumers", dbSpans, producers, consumers)
	}
	// About 3 % of requests fail; with a fixed seed and ≥ 600 requests, anything from 1 % to 6 % is right.
	if rate := float64(errorRoots) / float64(len(rootDurations)); rate < 0.01 || rate > 0.06 {
		t.Errorf("%d of %d requests failed (%.1f %%), want about 3 %%", errorRoots, len(rootDurations), 100*rate)
	}
	if slow == 0 {
		t.Errorf("no slow fraud check among %d requests", len(rootDurations))
	}
	sort.Slice(rootDurations, func(i, j int) bool { return rootDurations[i] < rootDurations[j] })
	p50, p99 := rootDurations[len(rootDurations)/2], rootDurations[len(rootDurations)*99/100]
	if p99 < 5*p50 {
		t.Errorf("latency spread too narrow: p50 %v, p99 %v", p50, p99)
	}

	// Every log record belongs to a span of a received trace.
	logServices := map[string]bool{}
	var logs, errorLogs int
	for _, ld := range rx.logs.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			svc, _ := rl.Resource().Attributes().Get("service.name")
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					logs++
					logServices[svc.Str()] = true
					if lr.SeverityNumber() >= 17 { // ERROR
						errorLogs++
					}
					si, ok := spans[lr.SpanID()]
					if lr.TraceID().IsEmpty() || !ok || si.span.TraceID() != lr.TraceID() {
						t.Errorf("log %q of %s: trace %s span %s is not a received span", lr.Body().Str(), svc.Str(), lr.TraceID(), lr.SpanID())
					} else if si.svc != svc.Str() {
						t.Errorf("log %q of %s refers to a span of %s", lr.Body().Str(), svc.Str(), si.svc)
					}
				}
			}
		}
	}
	if logs < requests || errorLogs == 0 || len(logServices) != len(Services) {
		t.Errorf("%d logs (%d errors) from %v for %d requests", logs, errorLogs, keys(logServices), requests)
	}

	// OTLP metrics: request durations from every HTTP service, with exemplars linking to traces.
	metricSvcs := map[string]bool{}
	var exemplars int
	for _, md := range rx.metrics.AllMetrics() {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			svc, _ := rm.Resource().Attributes().Get("service.name")
			for j := 0; j < rm.ScopeMetrics().Len(); j++ {
				ms := rm.ScopeMetrics().At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					if m.Name() != "http.server.request.duration" || m.Type() != pmetric.MetricTypeHistogram {
						continue
					}
					metricSvcs[svc.Str()] = true
					dps := m.Histogram().DataPoints()
					for d := 0; d < dps.Len(); d++ {
						exemplars += dps.At(d).Exemplars().Len()
					}
				}
			}
		}
	}
	for _, svc := range []string{Frontend, Checkout, Payment} {
		if !metricSvcs[svc] {
			t.Errorf("no http.server.request.duration from %s (got %v)", svc, keys(metricSvcs))
		}
	}
	if exemplars == 0 {
		t.Error("no exemplars on http.server.request.duration")
	}
}

func scrape(t *testing.T, url, accept string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestRunStopsWithoutEndpoint: an unreachable endpoint must not stop the demo from running or shutting down
// within its flush deadline.
func TestRunStopsWithoutEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := New(ctx, Config{Endpoint: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), Rate: 100, BatchTimeout: 50 * time.Millisecond, ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	testutil.Eventually(t, 10*time.Second, func() error {
		if w.Requests() < 10 {
			return fmt.Errorf("%d requests", w.Requests())
		}
		return nil
	})
	cancel()
	select {
	case <-done: // an export error is expected here; returning at all is the point
	case <-time.After(40 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{}, ""},
		{"url endpoint", Config{Endpoint: "http://otel:4317"}, ""},
		{"no port", Config{Endpoint: "localhost"}, "endpoint"},
		{"bad scheme", Config{Endpoint: "grpc://localhost:4317"}, "scheme"},
		{"negative rate", Config{Rate: -1}, "rate"},
		{"bad metrics addr", Config{MetricsAddr: "8080"}, "metrics address"},
		{"bad resource attrs", Config{ResourceAttributes: "service.name"}, "resource attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Defaults()
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseResourceAttributes(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"service.name=app", "service.name=app", false},
		{" a = 1 , b=x%2Cy ,", "a=1 b=x,y", false},
		{"k=", "k=", false},
		{"=v", "", true},
		{"novalue", "", true},
		{"k=%zz", "", true},
	}
	for _, tt := range tests {
		kvs, err := ParseResourceAttributes(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: error %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		var got []string
		for _, kv := range kvs {
			got = append(got, string(kv.Key)+"="+kv.Value.AsString())
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, strings.Join(got, " "), tt.want)
		}
	}
}

func FuzzParseResourceAttributes(f *testing.F) {
	for _, s := range []string{"service.name=app", "a=1,b=2", "k=%20", "=", ",,,", "k=%zz", "x=y=z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kvs, err := ParseResourceAttributes(s)
		if err != nil {
			return
		}
		for _, kv := range kvs {
			if kv.Key == "" {
				t.Fatalf("%q parsed to an empty key", s)
			}
		}
	})
}
