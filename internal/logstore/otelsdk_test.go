package logstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelzap"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// TestOTelSDKLogsInSpans is an application as the issue describes it: it logs with zap through the OTel log
// bridge (otelzap) inside spans, the OTel Go SDK exports the records over OTLP/HTTP to /otlp/v1/logs, and each
// span's trace id then finds exactly that span's lines, each carrying its span id.
func TestOTelSDKLogsInSpans(t *testing.T) {
	e := newRealTimeEnv(t)
	ctx := context.Background()
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL(e.srv.URL+"/otlp/v1/logs"))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("checkout"), semconv.DeploymentEnvironment("test"))
	lp := log.NewLoggerProvider(log.WithResource(res), log.WithProcessor(log.NewSimpleProcessor(exp)))
	defer func() { _ = lp.Shutdown(ctx) }()
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res))
	defer func() { _ = tp.Shutdown(ctx) }()
	logger := zap.New(otelzap.NewCore("shop/checkout", otelzap.WithLoggerProvider(lp)))
	tracer := tp.Tracer("shop/checkout")

	type spanLines struct {
		sc    trace.SpanContext
		lines []string
	}
	var spans []spanLines
	for i := 0; i < 3; i++ {
		sctx, parent := tracer.Start(ctx, "place order")
		sl := spanLines{sc: parent.SpanContext()}
		for k := 0; k < 2; k++ {
			msg := fmt.Sprintf("order %d step %d", i, k)
			logger.Info(msg, zap.Any("ctx", sctx), zap.Int("order", i))
			sl.lines = append(sl.lines, msg)
		}
		spans = append(spans, sl)
		// A child span's lines carry the child's span id and the same trace id.
		cctx, child := tracer.Start(sctx, "charge card")
		msg := fmt.Sprintf("order %d charged", i)
		logger.Warn(msg, zap.Any("ctx", cctx))
		spans = append(spans, spanLines{sc: child.SpanContext(), lines: []string{msg}})
		child.End()
		parent.End()
	}
	logger.Info("outside any span")
	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}

	for _, sp := range spans {
		tid := sp.sc.TraceID().String()
		code, body := e.get("/loki/api/v1/query_range", url.Values{
			"query": {`{service_name="checkout"} | trace_id="` + tid + `" | span_id="` + sp.sc.SpanID().String() + `"`},
			"start": {fmt.Sprint(time.Now().Add(-time.Hour).UnixNano())}, "end": {fmt.Sprint(time.Now().Add(time.Minute).UnixNano())},
			"direction": {"forward"}}, "X-Loki-Response-Encoding-Flags", "categorize-labels")
		if code != 200 {
			t.Fatalf("query: %d %s", code, body)
		}
		var r queryResp
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		var sr []streamResult
		if err := json.Unmarshal(r.Data.Result, &sr); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range sr {
			if s.Stream["service_name"] != "checkout" || s.Stream["deployment_environment"] != "test" {
				t.Errorf("stream labels %v, want service_name=checkout, deployment_environment=test", s.Stream)
			}
			for _, v := range s.Values {
				got = append(got, v[1].(string))
				md, _ := v[2].(map[string]any)["structuredMetadata"].(map[string]any)
				if md["trace_id"] != tid || md["span_id"] != sp.sc.SpanID().String() || md["scope_name"] != "shop/checkout" {
					t.Errorf("%q: structured metadata %v, want trace_id %s, span_id %s, scope_name shop/checkout", v[1], md, tid, sp.sc.SpanID())
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(sp.lines) {
			t.Errorf("span %s/%s: lines %q, want %q", tid, sp.sc.SpanID(), got, sp.lines)
		}
	}
	// The whole trace: the parent's and the child's lines.
	tid := spans[0].sc.TraceID().String()
	_, sr := e.queryRangeNow(`{service_name=~".+"} | trace_id="` + tid + `"`)
	if n := countLines(sr); n != 3 {
		t.Errorf("trace %s: %d lines (%v), want 3", tid, n, lines(sr))
	}
}

func (e *env) queryRangeNow(q string) (queryResp, []streamResult) {
	e.t.Helper()
	sr, err := e.storeLines(q, time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil {
		e.t.Fatal(err)
	}
	return queryResp{}, sr
}
