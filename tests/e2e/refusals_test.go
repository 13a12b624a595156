package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/status"

	refuse "github.com/sprout-otel/sprout/internal/refusal"
)

// otlpOutcome is how the server answered one OTLP export.
type otlpOutcome struct {
	code  string // gRPC code name, or the HTTP status
	msg   string // the status message or body
	retry string // the RetryInfo delay (gRPC) or the Retry-After header (HTTP); "" when absent
}

func (o otlpOutcome) String() string {
	return fmt.Sprintf("%s %q retry=%q", o.code, firstLine(o.msg), o.retry)
}

// otlpPayload is one small trace, gauge and log record whose names carry marker; logBytes pads the log body.
func otlpPayload(marker string, logBytes int) (ptrace.Traces, pmetric.Metrics, plog.Logs) {
	var tid [16]byte
	_, _ = rand.Read(tid[:])
	td := makeTrace(tid, "svc-"+marker, nil)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc-"+marker)
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(marker + "_otlp_gauge")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	dp.SetDoubleValue(1)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "svc-"+marker)
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	lr.Body().SetStr(marker + " otlp log " + strings.Repeat("x", logBytes))
	return td, md, ld
}

// otlpExportAll sends a trace, a metric and a log over OTLP gRPC and OTLP HTTP (https when c has TLS) and
// returns the outcome of each, keyed "grpc traces", "http logs", ...
func otlpExportAll(t *testing.T, c *client, env []string, marker string, logBytes int) map[string]otlpOutcome {
	t.Helper()
	td, md, ld := otlpPayload(marker, logBytes)
	out := map[string]otlpOutcome{}

	conn, err := c.grpcConn(envValue(env, "SPROUT_OTLP_GRPC_ENDPOINT"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grpcOutcome := func(err error) otlpOutcome {
		st, _ := status.FromError(err)
		o := otlpOutcome{code: st.Code().String(), msg: st.Message()}
		if d, ok := refuse.RetryDelay(err); ok {
			o.retry = d.String()
		}
		return o
	}
	ctx, cancel := context.WithTimeout(c.grpcContext(context.Background()), 15*time.Second)
	defer cancel()
	_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	out["grpc traces"] = grpcOutcome(err)
	_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
	out["grpc metrics"] = grpcOutcome(err)
	_, err = plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
	out["grpc logs"] = grpcOutcome(err)

	scheme := "http://"
	if c.tlsConfig != nil {
		scheme = "https://"
	}
	base := scheme + envValue(env, "SPROUT_OTLP_HTTP_ENDPOINT")
	tb, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	mb, _ := (&pmetric.ProtoMarshaler{}).MarshalMetrics(md)
	lb, _ := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
	for _, s := range []struct {
		name string
		body []byte
	}{{"traces", tb}, {"metrics", mb}, {"logs", lb}} {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/"+s.name, bytes.NewReader(s.body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		c.decorate(req)
		resp, err := c.httpClient().Do(req)
		if err != nil {
			out["http "+s.name] = otlpOutcome{code: "transport", msg: err.Error()}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The body is an OTLP Status protobuf; its message is readable in the raw bytes.
		out["http "+s.name] = otlpOutcome{code: fmt.Sprint(resp.StatusCode), msg: string(b), retry: resp.Header.Get("Retry-After")}
	}
	return out
}

// checkRetryHints makes tenant exceed the logs and metrics stores' ingestion bursts (set by retryHintArgs) on
// every write path, and checks that each refusal is retryable and carries its hint: Retry-After on HTTP 429
// (Loki push, remote write, OTLP HTTP), a RetryInfo detail on gRPC RESOURCE_EXHAUSTED (OTLP gRPC).
func checkRetryHints(t *testing.T, env []string, api, tenantID string, passed, total int) (int, int) {
	t.Helper()
	c := &client{tenant: tenantID}
	check := func(what string, ok bool, detail string) {
		total++
		if ok {
			passed++
		} else {
			t.Errorf("retry hint: %s: %s", what, detail)
		}
		t.Logf("retry hint: %s: %s", what, detail)
	}
	// Loki push of 16 KiB (the burst is 10 KiB).
	body := fmt.Sprintf(`{"streams":[{"stream":{"job":"big"},"values":[["%d",%q]]}]}`, time.Now().UnixNano(), strings.Repeat("y", 16<<10))
	code, hdr, msg := c.postFull(api+"/loki/api/v1/push", "application/json", []byte(body), nil)
	check("Loki push over the rate", code == 429 && hdr.Get("Retry-After") == "1", fmt.Sprintf("%d Retry-After=%q %s", code, hdr.Get("Retry-After"), firstLine(msg)))
	// Remote write of 3000 samples (the burst is 2000).
	series := make([]prompb.TimeSeries, 3000)
	now := time.Now().UnixMilli()
	for i := range series {
		series[i] = prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "burst_metric"}, {Name: "i", Value: fmt.Sprint(i)}}, Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}
	}
	raw, _ := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	code, hdr, msg = c.postFull(api+"/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw), map[string]string{
		"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0",
	})
	check("remote write over the rate", code == 429 && hdr.Get("Retry-After") == "1", fmt.Sprintf("%d Retry-After=%q %s", code, hdr.Get("Retry-After"), firstLine(msg)))
	// OTLP logs of 16 KiB, over gRPC and HTTP.
	out := otlpExportAll(t, c, env, "big", 16<<10)
	g, h := out["grpc logs"], out["http logs"]
	check("OTLP gRPC logs over the rate", g.code == "ResourceExhausted" && g.retry == "1s", g.String())
	check("OTLP HTTP logs over the rate", h.code == "429" && h.retry == "1", h.String())
	return passed, total
}

// postFull is post with the response headers.
func (c *client) postFull(u, contentType string, body []byte, hdr map[string]string) (int, http.Header, string) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err.Error()
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c.decorate(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, http.Header{}, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
