package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestServiceGraphEndToEnd sends spans over OTLP gRPC to the all-in-one binary and asks PromQL for the
// generator's service graph, the query Grafana's service graph runs.
func TestServiceGraphEndToEnd(t *testing.T) {
	env, api := defaultEnv(t)
	var grpcAddr string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "SPROUT_OTLP_GRPC_ENDPOINT="); ok {
			grpcAddr = v
		}
	}
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	for i := 0; i < 5; i++ {
		if _, err := client.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(shopRequest(i))); err != nil {
			t.Fatalf("export: %v", err)
		}
	}

	q := `sum by (client, server, connection_type) (rate(traces_service_graph_request_total[1m]))`
	want := map[string]bool{"user->frontend/virtual_node": false, "frontend->checkout/": false, "checkout->orders/database": false}
	testutil.Eventually(t, 60*time.Second, func() error {
		code, body := getBody(api + "/api/v1/query?query=" + url.QueryEscape(q))
		if code != 200 {
			return fmt.Errorf("query: %d %s", code, body)
		}
		var out struct {
			Data struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			return err
		}
		for _, r := range out.Data.Result {
			k := r.Metric["client"] + "->" + r.Metric["server"] + "/" + r.Metric["connection_type"]
			if _, ok := want[k]; ok && r.Value[1] != "0" {
				want[k] = true
			}
		}
		for k, seen := range want {
			if !seen {
				return fmt.Errorf("edge %s has no rate yet; got %s", k, tail(body, 600))
			}
		}
		return nil
	})
}

// shopRequest is one request: frontend (root server span) calls checkout, which queries a database.
func shopRequest(i int) ptrace.Traces {
	td := ptrace.NewTraces()
	var tid pcommon.TraceID
	copy(tid[:], fmt.Sprintf("servicegraph%04d", i))
	now := time.Now()
	span := func(rs ptrace.ResourceSpans, id, parent byte, name string, kind ptrace.SpanKind, attrs map[string]string) {
		sp := rs.ScopeSpans().At(0).Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{id, byte(i)})
		if parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID{parent, byte(i)})
		}
		sp.SetName(name)
		sp.SetKind(kind)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(20 * time.Millisecond)))
		for k, v := range attrs {
			sp.Attributes().PutStr(k, v)
		}
	}
	res := func(svc string) ptrace.ResourceSpans {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.ScopeSpans().AppendEmpty()
		return rs
	}
	fe, co := res("frontend"), res("checkout")
	span(fe, 1, 0, "GET /", ptrace.SpanKindServer, nil)
	span(fe, 2, 1, "POST /checkout", ptrace.SpanKindClient, nil)
	span(co, 3, 2, "POST /checkout", ptrace.SpanKindServer, nil)
	span(co, 4, 3, "SELECT orders", ptrace.SpanKindClient, map[string]string{"db.system": "postgresql", "db.name": "orders"})
	return td
}

func getBody(u string) (int, string) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
