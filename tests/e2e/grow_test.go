package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// growOrders is how many requests the instrumented app serves: one trace, one log line and one histogram
// measurement (with its exemplar) each.
const growOrders = 5

// growApp is an app instrumented with the OpenTelemetry Go SDK, as the seed's apps are: OTLP gRPC to the
// sidecar for traces, metrics and logs, and a Prometheus /metrics endpoint that the sidecar scrapes.
type growApp struct {
	service  string
	traceIDs []string
	lines    map[string]string // trace id -> the log line written in that trace
	logSpans map[string]string // trace id -> the span id the log line was written in
}

// run serves growOrders requests and flushes every signal to the sidecar at otlp.
func (a *growApp) run(t *testing.T, otlp string) {
	t.Helper()
	ctx := context.Background()
	res := resource.NewSchemaless(attribute.String("service.name", a.service), attribute.String("service.namespace", "grow"))
	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(otlp), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(texp))
	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(otlp), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(time.Hour))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
	lexp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(otlp), otlploggrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp)))
	defer func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx); _ = lp.Shutdown(ctx) }()

	tracer := tp.Tracer("grow-app")
	logger := lp.Logger("grow-app")
	// One bucket per request (0.1, 0.15, … 0.3 s): the SDK keeps the last exemplar of each bucket, so every
	// trace has an exemplar to be found.
	duration, err := mp.Meter("grow-app").Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.12, 0.17, 0.22, 0.27, 1))
	if err != nil {
		t.Fatal(err)
	}
	orders, err := mp.Meter("grow-app").Int64Counter("grow.orders")
	if err != nil {
		t.Fatal(err)
	}
	a.lines, a.logSpans = map[string]string{}, map[string]string{}
	now := time.Now()
	for i := range growOrders {
		start := now.Add(time.Duration(i-growOrders) * time.Second)
		rctx, root := tracer.Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
		cctx, child := tracer.Start(rctx, "charge card", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start.Add(5*time.Millisecond)))
		id := root.SpanContext().TraceID().String()
		line := fmt.Sprintf("order %d charged (%s)", i, randHex(4))
		var rec otellog.Record
		rec.SetTimestamp(start.Add(10 * time.Millisecond))
		rec.SetSeverity(otellog.SeverityInfo)
		rec.SetSeverityText("INFO")
		rec.SetBody(otellog.StringValue(line))
		rec.AddAttributes(otellog.Int("order", i))
		logger.Emit(cctx, rec) // in the child span: the record carries its trace and span ids
		child.End(trace.WithTimestamp(start.Add(80 * time.Millisecond)))
		// In the root span's context: the measurement's exemplar carries the trace id.
		took := 0.1 + 0.05*float64(i)
		duration.Record(rctx, took, metric.WithAttributes(attribute.String("http.route", "/orders")))
		orders.Add(rctx, 1)
		root.End(trace.WithTimestamp(start.Add(time.Duration(took * float64(time.Second)))))
		a.traceIDs = append(a.traceIDs, id)
		a.lines[id] = line
		a.logSpans[id] = child.SpanContext().SpanID().String()
	}
	for name, flush := range map[string]func(context.Context) error{"traces": tp.ForceFlush, "metrics": mp.ForceFlush, "logs": lp.ForceFlush} {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := flush(fctx); err != nil {
			t.Fatalf("flush %s to the sidecar: %v", name, err)
		}
		cancel()
	}
}

// TestGrowCollector runs examples/configs/grow-collector.yaml, as shipped (endpoints from its environment
// variables), in the real binary as the sidecar of an app instrumented with the OpenTelemetry Go SDK, and sends
// its traces, metrics and logs into real clusters: Tempo (SPROUT_PEER_TEMPO) and Loki (SPROUT_PEER_LOKI), both
// multi-tenant, and Prometheus with its remote-write receiver and exemplar storage standing in for Mimir (which
// cannot be built here; it takes the same remote write and answers the same Prometheus API). Each cluster's own
// API must then hold every item under the tenant, with the links intact: each log line carries its trace id
// (structured metadata in Loki) and the trace is in Tempo; each exemplar in Prometheus names a trace in Tempo.
//
//	SPROUT_PEER_TEMPO=/path/to/tempo SPROUT_PEER_LOKI=/path/to/loki SPROUT_BIN=/tmp/sprout \
//	  go test -count=1 -run TestGrowCollector -v ./tests/e2e/
func TestGrowCollector(t *testing.T) {
	testutil.PeerBinary(t, testutil.EnvTempo)
	testutil.PeerBinary(t, testutil.EnvLoki)
	promBin := testutil.RequireBinary(t, "prometheus")
	root, _ := filepath.Abs(filepath.Join("..", ".."))

	tempo := testutil.StartTempo(t, testutil.TempoOptions{MultiTenant: true})
	loki := testutil.StartLoki(t, testutil.LokiOptions{MultiTenant: true})
	prom := testutil.StartPrometheus(t, testutil.PrometheusOptions{Bin: promBin})
	const tenant = "team-grow"

	// The app's /metrics, scraped by the sidecar's prometheus receiver (job prometheus-library).
	reg := prometheus.NewRegistry()
	library := prometheus.NewCounter(prometheus.CounterOpts{Name: "grow_library_calls_total", Help: "Calls into the library."})
	reg.MustRegister(library)
	library.Add(11)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	msrv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go func() { _ = msrv.Serve(ln) }()
	t.Cleanup(func() { _ = msrv.Close() })

	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	otlp, health := port(), port()
	p := startSprout(t, []string{
		// Where the sidecar listens, so that this test runs beside others on one machine.
		"SPROUT_OTLP_GRPC_ENDPOINT=" + otlp, "SPROUT_OTLP_HTTP_ENDPOINT=" + port(), "SPROUT_HEALTH_ENDPOINT=" + health,
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)), "SPROUT_SCRAPE_TARGET=" + ln.Addr().String(),
		// Running on ECS: the task metadata endpoint that the resource_detection processor reads.
		"ECS_CONTAINER_METADATA_URI_V4=" + serveECS(t),
		// The clusters.
		"TEMPO_OTLP=" + tempo.OTLPGRPC(), "MIMIR_URL=" + prom.API() + "/api/v1/write", "LOKI_URL=" + loki.API(),
		"X_SCOPE_ORGID=" + tenant,
	}, "--config", filepath.Join(root, "examples", "configs", "grow-collector.yaml"))
	p.waitHTTP("http://"+health+"/", 60*time.Second)

	app := &growApp{service: "grow-" + randHex(3)}
	app.run(t, otlp)
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Minute)

	// Traces: each one by id in Tempo with both its spans, and all of them by a TraceQL search on the service,
	// under the tenant.
	spans := map[string]map[string]string{} // trace id -> span id -> name
	for _, id := range app.traceIDs {
		testutil.Eventually(t, 90*time.Second, func() error {
			got, err := tempoTraceSpans(tempo.API(), tenant, id)
			if err != nil {
				return err
			}
			if len(got) != 2 || !slices.Contains(mapValues(got), "POST /orders") || !slices.Contains(mapValues(got), "charge card") {
				return fmt.Errorf("trace %s in Tempo has spans %v, want POST /orders and charge card", id, got)
			}
			spans[id] = got
			return nil
		})
	}
	testutil.Eventually(t, 90*time.Second, func() error {
		var sr struct {
			Traces []struct {
				TraceID string `json:"traceID"`
			} `json:"traces"`
		}
		q := url.Values{"q": {`{ resource.service.name = "` + app.service + `" }`}, "limit": {"100"},
			"start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}}
		if err := growGet(tempo.API()+"/api/search?"+q.Encode(), tenant, &sr, ""); err != nil {
			return err
		}
		var found []string
		for _, tr := range sr.Traces {
			found = append(found, fmt.Sprintf("%032s", tr.TraceID))
		}
		for _, id := range app.traceIDs {
			if !slices.Contains(found, id) {
				return fmt.Errorf("search finds %v, not %s", found, id)
			}
		}
		return nil
	})
	// The tenant is the sidecar's: another tenant does not see the trace (Tempo 3 answers an unknown trace
	// 200 with an empty trace on /api/v2).
	if err := growGet(tempo.API()+"/api/v2/traces/"+app.traceIDs[0], "someone-else", nil, "charge card"); err == nil {
		t.Errorf("Tempo shows the trace to another tenant")
	}

	// Logs: every line in Loki under the service's stream, with its trace id as structured metadata (not an
	// index label), and the trace of each line in Tempo.
	testutil.Eventually(t, 90*time.Second, func() error {
		lines, err := lokiLines(loki.API(), tenant, `{service_name="`+app.service+`"}`, from, to)
		if err != nil {
			return err
		}
		if len(lines) != growOrders {
			return fmt.Errorf("%d lines in Loki, want %d: %v", len(lines), growOrders, lines)
		}
		for _, l := range lines {
			if _, indexed := l.stream["trace_id"]; indexed {
				return fmt.Errorf("trace_id is an index label of %v; it belongs in structured metadata", l.stream)
			}
			if want := app.lines[l.metadata["trace_id"]]; want != l.line {
				return fmt.Errorf("line %q has trace_id %q (metadata %v), whose line is %q", l.line, l.metadata["trace_id"], l.metadata, want)
			}
			// The span the line was written in, and one of its trace's spans in Tempo (the log → span link).
			if id := l.metadata["trace_id"]; l.metadata["span_id"] != app.logSpans[id] || spans[id][l.metadata["span_id"]] != "charge card" {
				return fmt.Errorf("line %q has span_id %q, want %s (charge card of trace %s in Tempo: %v)", l.line, l.metadata["span_id"], app.logSpans[id], id, spans[id])
			}
		}
		return nil
	})
	if lines, err := lokiLines(loki.API(), "someone-else", `{service_name="`+app.service+`"}`, from, to); err != nil || len(lines) != 0 {
		t.Errorf("Loki shows another tenant %d lines (%v)", len(lines), err)
	}
	for _, id := range app.traceIDs {
		// From a trace to its logs, as a Tempo → Loki link asks: the trace id filter finds exactly its line.
		lines, err := lokiLines(loki.API(), tenant, `{service_name="`+app.service+`"} | trace_id="`+id+`"`, from, to)
		if err != nil || len(lines) != 1 || lines[0].line != app.lines[id] {
			t.Errorf("the logs of trace %s: %v %v, want [%q]", id, lines, err, app.lines[id])
		}
	}

	// Metrics: the SDK's histogram and counter and the scraped counter, in Prometheus with the resource as
	// labels; the histogram's exemplars name the traces.
	for _, q := range []struct{ query, want string }{
		{`sum(http_server_request_duration_seconds_count{job="grow/` + app.service + `"})`, fmt.Sprint(growOrders)},
		{`sum(grow_orders_total{job="grow/` + app.service + `"})`, fmt.Sprint(growOrders)},
		{`grow_library_calls_total{job="prometheus-library"}`, "11"},
	} {
		testutil.Eventually(t, 90*time.Second, func() error {
			got, err := promValue(prom.API(), q.query)
			if err != nil {
				return fmt.Errorf("%s: %w", q.query, err)
			}
			if fmt.Sprint(got) != q.want {
				return fmt.Errorf("%s = %v, want %s", q.query, got, q.want)
			}
			return nil
		})
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		ids, err := promExemplarTraceIDs(prom.API(), `http_server_request_duration_seconds_bucket{job="grow/`+app.service+`"}`, from, to)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !slices.Contains(app.traceIDs, id) {
				return fmt.Errorf("exemplar trace_id %s is none of the app's traces %v", id, app.traceIDs)
			}
		}
		// One request per bucket: every trace has its exemplar.
		if len(ids) != len(app.traceIDs) {
			return fmt.Errorf("exemplars name %d traces %v, want all %d %v", len(ids), ids, len(app.traceIDs), app.traceIDs)
		}
		return nil
	})
	ids, _ := promExemplarTraceIDs(prom.API(), `http_server_request_duration_seconds_bucket{job="grow/`+app.service+`"}`, from, to)
	for _, id := range ids {
		if err := growGet(tempo.API()+"/api/v2/traces/"+id, tenant, nil, "POST /orders"); err != nil {
			t.Errorf("exemplar → trace %s: %v", id, err)
		}
	}
	t.Logf("%d traces in Tempo, %d log lines in Loki linked to them, metrics in Prometheus with %d exemplars naming them",
		len(app.traceIDs), growOrders, len(ids))

	if err := p.stop(30 * time.Second); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// tempoSpan is one span of a trace as Tempo's /api/v2/traces returns it.
type tempoSpan struct {
	ID, Name string
	Start    string // Unix ns, as a decimal string
}

// tempoSpans returns the spans of trace id in Tempo's /api/v2/traces, as tenant.
func tempoSpans(base, tenant, id string) ([]tempoSpan, error) {
	var tr struct {
		Trace struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []struct {
						SpanID string `json:"spanId"`
						Name   string `json:"name"`
						Start  string `json:"startTimeUnixNano"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		} `json:"trace"`
	}
	if err := growGet(base+"/api/v2/traces/"+id, tenant, &tr, ""); err != nil {
		return nil, err
	}
	var spans []tempoSpan
	for _, rs := range tr.Trace.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				spans = append(spans, tempoSpan{ID: otlpJSONID(s.SpanID), Name: s.Name, Start: s.Start})
			}
		}
	}
	return spans, nil
}

// tempoTraceSpans returns the spans (id -> name) of trace id in Tempo, as tenant.
func tempoTraceSpans(base, tenant, id string) (map[string]string, error) {
	spans, err := tempoSpans(base, tenant, id)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range spans {
		out[s.ID] = s.Name
	}
	return out, nil
}

// otlpJSONID is an id of OTLP JSON as hex: Tempo writes ids in base64 (protobuf's JSON for bytes), OTLP/JSON in
// hex.
func otlpJSONID(s string) string {
	if _, err := hex.DecodeString(s); err == nil && (len(s) == 16 || len(s) == 32) {
		return strings.ToLower(s)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return hex.EncodeToString(b)
	}
	return s
}

func mapValues(m map[string]string) []string {
	var vs []string
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

// growGet asks u as tenant; it wants 200, the body to contain has, and (with out) the JSON decoded.
func growGet(u, tenant string, out any, has string) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, tail(string(b), 300))
	}
	if has != "" && !strings.Contains(string(b), has) {
		return fmt.Errorf("GET %s: %q not in %s", u, has, tail(string(b), 300))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
	}
	return nil
}

type lokiLine struct {
	stream, metadata map[string]string
	line             string
	ts               int64 // Unix ns
}

// lokiLines runs a LogQL query_range with labels categorised (Loki's X-Loki-Response-Encoding-Flags), so that
// structured metadata comes apart from the stream's index labels.
func lokiLines(base, tenant, query string, from, to time.Time) ([]lokiLine, error) {
	q := url.Values{"query": {query}, "start": {fmt.Sprint(from.UnixNano())}, "end": {fmt.Sprint(to.UnixNano())}, "limit": {"1000"}}
	req, err := http.NewRequest(http.MethodGet, base+"/loki/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	req.Header.Set("X-Loki-Response-Encoding-Flags", "categorize-labels")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loki %s: %d %s", query, resp.StatusCode, tail(string(b), 300))
	}
	var out struct {
		Data struct {
			Result []struct {
				Stream map[string]string   `json:"stream"`
				Values [][]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("loki %s: %w", query, err)
	}
	var lines []lokiLine
	for _, r := range out.Data.Result {
		for _, v := range r.Values {
			l := lokiLine{stream: r.Stream}
			var ts string
			if len(v) < 2 || json.Unmarshal(v[1], &l.line) != nil || json.Unmarshal(v[0], &ts) != nil {
				return nil, fmt.Errorf("loki %s: entry %s", query, v)
			}
			if l.ts, err = strconv.ParseInt(ts, 10, 64); err != nil {
				return nil, fmt.Errorf("loki %s: entry %s: %w", query, v, err)
			}
			if len(v) > 2 {
				var cat struct {
					StructuredMetadata map[string]string `json:"structuredMetadata"`
				}
				if err := json.Unmarshal(v[2], &cat); err != nil {
					return nil, fmt.Errorf("loki %s: entry metadata %s: %w", query, v[2], err)
				}
				l.metadata = cat.StructuredMetadata
			}
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// promExemplarTraceIDs returns the trace_id labels of the exemplars of query's series.
func promExemplarTraceIDs(base, query string, from, to time.Time) ([]string, error) {
	q := url.Values{"query": {query}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}}
	resp, err := http.Get(base + "/api/v1/query_exemplars?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string
		Error  string
		Data   []struct {
			Exemplars []struct {
				Labels map[string]string `json:"labels"`
			} `json:"exemplars"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query_exemplars %s: %w", query, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query_exemplars %s: %s", query, out.Error)
	}
	var ids []string
	for _, s := range out.Data {
		for _, e := range s.Exemplars {
			if id := e.Labels["trace_id"]; id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// TestGrowCollectorUnreachable runs grow-collector.yaml as shipped while all three clusters are down (nothing
// listens on their ports). The sidecar must stay healthy and take the app's data, and its log must name the
// Tempo and Loki exporters and addresses and say that it retries. With the peers (SPROUT_PEER_TEMPO,
// SPROUT_PEER_LOKI), the clusters then come up on those ports, and what the app sent during the outage must
// arrive in all three: the queues and retries, not luck, carry the data across.
func TestGrowCollectorUnreachable(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	tempoOTLP, promPort, lokiPort := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	tempo := fmt.Sprintf("127.0.0.1:%d", tempoOTLP)
	mimir := fmt.Sprintf("http://127.0.0.1:%d/api/v1/write", promPort)
	loki := fmt.Sprintf("127.0.0.1:%d", lokiPort)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	otlp, health := port(), port()
	const tenant = "team-grow"
	p := startSprout(t, []string{
		"SPROUT_OTLP_GRPC_ENDPOINT=" + otlp, "SPROUT_OTLP_HTTP_ENDPOINT=" + port(), "SPROUT_HEALTH_ENDPOINT=" + health,
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)), "SPROUT_SCRAPE_TARGET=" + port(),
		"TEMPO_OTLP=" + tempo, "MIMIR_URL=" + mimir, "LOKI_URL=http://" + loki, "X_SCOPE_ORGID=" + tenant,
	}, "--config", filepath.Join(root, "examples", "configs", "grow-collector.yaml"))
	p.waitHTTP("http://"+health+"/", 60*time.Second)

	app := &growApp{service: "grow-" + randHex(3)}
	app.run(t, otlp) // the sidecar takes the data; its exporters' queues hold it while the clusters are down

	for _, c := range []struct{ exporter, addr string }{{"otlp_grpc/tempo", tempo}, {"otlp_http/loki", loki}} {
		testutil.Eventually(t, 60*time.Second, func() error {
			for _, line := range strings.Split(p.logs.String(), "\n") {
				if strings.Contains(line, c.exporter) && strings.Contains(line, c.addr) && strings.Contains(line, "Will retry") {
					return nil
				}
			}
			return fmt.Errorf("no log line names %s, %s and a retry", c.exporter, c.addr)
		})
	}
	if err := httpOK("http://" + health + "/"); err != nil {
		t.Errorf("the sidecar is not healthy while the clusters are down: %v", err)
	}
	if os.Getenv(testutil.EnvTempo) == "" || os.Getenv(testutil.EnvLoki) == "" {
		t.Logf("%s and %s unset: not bringing the clusters back", testutil.EnvTempo, testutil.EnvLoki)
		return
	}

	// The clusters come back where the sidecar has been trying them. Prometheus comes last, after Loki's start
	// (15 s or more): the remote-write batch must outlive an outage longer than that exporter's default export
	// timeout (5 s), which grow-collector.yaml raises.
	tp := testutil.StartTempo(t, testutil.TempoOptions{MultiTenant: true, Ports: map[string]int{"otlp_grpc": tempoOTLP}})
	lk := testutil.StartLoki(t, testutil.LokiOptions{MultiTenant: true, Ports: map[string]int{"http": lokiPort}})
	prom := testutil.StartPrometheus(t, testutil.PrometheusOptions{Bin: testutil.RequireBinary(t, "prometheus"), Ports: map[string]int{"http": promPort}})
	testutil.Eventually(t, 120*time.Second, func() error {
		got, err := promValue(prom.API(), `sum(grow_orders_total{job="grow/`+app.service+`"})`)
		if err != nil || got != growOrders {
			return fmt.Errorf("grow_orders_total in Prometheus: %v %v", got, err)
		}
		return nil
	})
	for _, id := range app.traceIDs {
		testutil.Eventually(t, 120*time.Second, func() error {
			return growGet(tp.API()+"/api/v2/traces/"+id, tenant, nil, "charge card")
		})
	}
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Minute)
	testutil.Eventually(t, 120*time.Second, func() error {
		lines, err := lokiLines(lk.API(), tenant, `{service_name="`+app.service+`"}`, from, to)
		if err != nil || len(lines) != growOrders {
			return fmt.Errorf("%d lines in Loki (%v), want %d", len(lines), err, growOrders)
		}
		return nil
	})
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(line, "Dropping data") {
			t.Errorf("the sidecar dropped data during the outage: %s", line)
		}
	}
}

// growMimirUser and growMimirHash are the basic-auth user of the Prometheus that stands in for a Mimir behind an
// authenticating gateway, and the bcrypt hash (cost 4) of its password "s3cret", as its web config wants.
const (
	growMimirUser = "mimir"
	growMimirHash = "$2a$04$9sVbAh3MLxSF3byLyyThL.nzz4yLJ3v.tYnROd6dw/aOL3hMUIDF6"
)

// startPromBasicAuth runs Prometheus with its remote-write receiver behind basic auth (growMimirUser, password
// "s3cret"), as a Mimir behind an authenticating gateway, and returns its URL.
func startPromBasicAuth(t *testing.T, promBin string) string {
	t.Helper()
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("basic_auth_users:\n  "+growMimirUser+": "+growMimirHash+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return testutil.StartPeer(t, testutil.PeerSpec{
		Name: "prometheus-auth", Bin: promBin, Ports: []string{"http"}, ConfigFile: "prometheus.yml", Config: "global: {}\n",
		Args: []string{"--config.file={{.Config}}", "--storage.tsdb.path={{.Dir}}/data", `--web.listen-address={{.Addr "http"}}`,
			"--web.enable-remote-write-receiver", "--web.config.file=" + webConfig},
		Ready:   `http://` + growMimirUser + `:s3cret@{{.Addr "http"}}/-/ready`,
		Timeout: time.Minute,
	}).URL("http")
}

// TestGrowCollectorRefused runs grow-collector.yaml as shipped with a tenant the clusters refuse ("team/grow":
// Tempo and Loki allow no slash in a tenant id) and a Mimir stand-in that wants credentials the sidecar does not
// send (Prometheus with basic auth, as behind a gateway). The refusals must be reported, not swallowed: the
// sidecar stays up and its log names each exporter, the cluster's address and the cluster's answer, once per
// refused batch, and says the data was dropped (a refusal is not retried: sending again would be refused again).
func TestGrowCollectorRefused(t *testing.T) {
	testutil.PeerBinary(t, testutil.EnvTempo)
	testutil.PeerBinary(t, testutil.EnvLoki)
	promBin := testutil.RequireBinary(t, "prometheus")
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	tempo := testutil.StartTempo(t, testutil.TempoOptions{MultiTenant: true})
	loki := testutil.StartLoki(t, testutil.LokiOptions{MultiTenant: true})
	promAuth := startPromBasicAuth(t, promBin)

	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	otlp, health := port(), port()
	mimir := promAuth + "/api/v1/write"
	p := startSprout(t, []string{
		"SPROUT_OTLP_GRPC_ENDPOINT=" + otlp, "SPROUT_OTLP_HTTP_ENDPOINT=" + port(), "SPROUT_HEALTH_ENDPOINT=" + health,
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)), "SPROUT_SCRAPE_TARGET=" + port(),
		"TEMPO_OTLP=" + tempo.OTLPGRPC(), "MIMIR_URL=" + mimir, "LOKI_URL=" + loki.API(), "X_SCOPE_ORGID=team/grow",
	}, "--config", filepath.Join(root, "examples", "configs", "grow-collector.yaml"))
	p.waitHTTP("http://"+health+"/", 60*time.Second)

	app := &growApp{service: "grow-" + randHex(3)}
	app.run(t, otlp)

	// The gRPC exporter's error does not carry its endpoint; its name (otlp_grpc/tempo) says which cluster.
	for _, c := range []struct{ exporter, addr, answer string }{
		{"otlp_grpc/tempo", "", "Dropping data"},
		{"otlp_grpc/tempo", "", "code = InvalidArgument desc = tenant ID 'team/grow' contains unsupported character '/'"},
		{"otlp_http/loki", loki.API(), "Dropping data"},
		{"otlp_http/loki", loki.API(), "HTTP Status Code 400, Message=tenant ID 'team/grow' contains unsupported character '/'"},
		{"prometheus_remote_write/mimir", mimir, `"status": "401 Unauthorized"`},
		{"prometheus_remote_write/mimir", "", "Dropping data"},
	} {
		testutil.Eventually(t, 60*time.Second, func() error {
			for _, line := range strings.Split(p.logs.String(), "\n") {
				if strings.Contains(line, `"`+c.exporter+`"`) && strings.Contains(line, c.addr) && strings.Contains(line, c.answer) {
					t.Logf("%s: %s", c.exporter, tail(line, 600))
					return nil
				}
			}
			return fmt.Errorf("no log line names %s, %s and the answer %q", c.exporter, c.addr, c.answer)
		})
	}
	if err := httpOK("http://" + health + "/"); err != nil {
		t.Errorf("the sidecar is not healthy after the refusals: %v", err)
	}
}
