package e2e

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/tracestore/tempopb"
)

// streamingOverlay turns basic auth on for the API port, with users tied to tenants: Grafana's Tempo data
// source with streaming on dials gRPC at the same host:port as its HTTP URL, with the same credentials.
const streamingOverlay = `extensions:
  basicauth/server:
    htpasswd:
      inline: |
        team-a:pa
        team-b:pb
  sprout_api:
    multitenancy_enabled: true
    tenant_auth:
      user_is_tenant: true
    auth:
      authenticator: basicauth/server
receivers:
  otlp:
    protocols:
      http:
        auth:
          authenticator: basicauth/server
service:
  extensions: [health_check, basicauth/server, sprout_api, sprout_traces, sprout_metrics, sprout_logs, sprout_ruler, sprout_ui]
`

// TestTempoStreamingGRPC: Tempo's streaming query API answers plaintext HTTP/2 gRPC on the API port, next to
// ordinary HTTP/1.1 clients, with the port's authentication and tenancy: a search streams the trace written
// over OTLP, every other method answers, and calls without or with wrong credentials, or naming another
// tenant, are refused with the gRPC code of the refusal.
func TestTempoStreamingGRPC(t *testing.T) {
	env, api := defaultEnv(t)
	overlay := filepath.Join(t.TempDir(), "streaming.yaml")
	if err := os.WriteFile(overlay, []byte(streamingOverlay), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSprout(t, env, "--config", "sprout:all-in-one", "--config", overlay)
	teamA := &client{user: "team-a", pass: "pa"}
	if err := poll(60*time.Second, func() error {
		if ok, err := p.exited(); ok {
			t.Fatalf("sprout exited: %v", err)
		}
		if code, body := teamA.get(api + "/ready"); code != 200 {
			return fmt.Errorf("ready: %d %s", code, firstLine(body))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// HTTP/1.1: buildinfo names a Tempo version Grafana enables streaming for, and says it is Sprout.
	code, body := teamA.get(api + "/api/status/buildinfo")
	if code != 200 || !strings.Contains(body, `"version":"2.7.0"`) || !strings.Contains(body, `"branch":"sprout"`) {
		t.Fatalf("buildinfo: %d %s", code, body)
	}

	const traceHex = "5e0000000000000000000000000000a1"
	id, _ := hex.DecodeString(traceHex)
	var tid pcommon.TraceID
	copy(tid[:], id)
	raw, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(makeTrace(tid, "svc-stream", map[string]string{"stream.attr": "yes"}))
	if code, resp := teamA.post("http://"+envValue(env, "SPROUT_OTLP_HTTP_ENDPOINT")+"/v1/traces", "application/x-protobuf", raw, nil); code != 200 {
		t.Fatalf("OTLP HTTP export: %d %s", code, resp)
	}

	apiAddr := strings.TrimPrefix(api, "http://")
	conn, err := teamA.grpcConn(apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := tempopb.NewClient(conn)
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(teamA.grpcContext(context.Background()), 10*time.Second)
	}

	// Search: the trace arrives (ingest is asynchronous: poll), in a final message whose jobs are all done.
	if err := poll(30*time.Second, func() error {
		c, cancel := ctx()
		defer cancel()
		msgs, err := drain(cl.Search(c, &tempopb.SearchRequest{Query: `{ resource.service.name = "svc-stream" }`, Limit: 20}))
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return errors.New("no message")
		}
		final := msgs[len(msgs)-1]
		if len(final.Traces) != 1 || !strings.HasSuffix(traceHex, final.Traces[0].TraceID) || final.Metrics == nil ||
			final.Metrics.CompletedJobs != final.Metrics.TotalJobs {
			return fmt.Errorf("final search message: %+v", final)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Every other method answers.
	c, cancel := ctx()
	defer cancel()
	tags, err := drain(cl.SearchTagsV2(c, &tempopb.SearchTagsRequest{}))
	if err != nil || len(tags) != 1 || len(tags[0].Scopes) == 0 {
		t.Fatalf("SearchTagsV2: %+v %v", tags, err)
	}
	names, err := drain(cl.SearchTags(c, &tempopb.SearchTagsRequest{Scope: "span"}))
	if err != nil || len(names) != 1 {
		t.Fatalf("SearchTags: %+v %v", names, err)
	}
	vals, err := drain(cl.SearchTagValuesV2(c, &tempopb.SearchTagValuesRequest{TagName: "resource.service.name"}))
	if err != nil || len(vals) != 1 || len(vals[0].TagValues) != 1 || vals[0].TagValues[0].Value != "svc-stream" {
		t.Fatalf("SearchTagValuesV2: %+v %v", vals, err)
	}
	v1, err := drain(cl.SearchTagValues(c, &tempopb.SearchTagValuesRequest{TagName: "service.name"}))
	if err != nil || len(v1) != 1 || len(v1[0].TagValues) != 1 {
		t.Fatalf("SearchTagValues: %+v %v", v1, err)
	}
	now := time.Now()
	rng, err := drain(cl.MetricsQueryRange(c, &tempopb.QueryRangeRequest{Query: "{ } | count_over_time()",
		Start: uint64(now.Add(-10 * time.Minute).UnixNano()), End: uint64(now.Add(time.Minute).UnixNano()), Step: uint64(time.Minute)}))
	if err != nil || len(rng) < 2 || len(rng[len(rng)-1].Series) != 1 {
		t.Fatalf("MetricsQueryRange: %d messages, %v", len(rng), err)
	}
	inst, err := drain(cl.MetricsQueryInstant(c, &tempopb.QueryInstantRequest{Query: "{ } | count_over_time()",
		Start: uint64(now.Add(-10 * time.Minute).UnixNano()), End: uint64(now.Add(time.Minute).UnixNano())}))
	if err != nil || len(inst) < 2 || len(inst[len(inst)-1].Series) != 1 {
		t.Fatalf("MetricsQueryInstant: %d messages, %v", len(inst), err)
	}

	// A bad query ends the call with InvalidArgument.
	if _, err := drain(cl.Search(c, &tempopb.SearchRequest{Query: "{ .a = }"})); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad query: %v, want InvalidArgument", err)
	}

	// HTTP/1.1 on the same port still serves the same search.
	if code, body := teamA.get(api + "/api/search?q=" + url.QueryEscape(`{ resource.service.name = "svc-stream" }`)); code != 200 || !strings.Contains(body, "svc-stream") {
		t.Fatalf("HTTP search: %d %s", code, firstLine(body))
	}

	// Auth is enforced on gRPC: no credentials, wrong ones, another tenant.
	for _, tc := range []struct {
		name string
		c    *client
		want codes.Code
	}{
		{"no credentials", &client{}, codes.Unauthenticated},
		{"wrong password", &client{user: "team-a", pass: "nope"}, codes.Unauthenticated},
		{"another tenant", &client{user: "team-a", pass: "pa", tenant: "team-b"}, codes.PermissionDenied},
		{"team-b sees nothing of team-a", &client{user: "team-b", pass: "pb"}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := tc.c.grpcConn(apiAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			c, cancel := context.WithTimeout(tc.c.grpcContext(context.Background()), 10*time.Second)
			defer cancel()
			msgs, err := drain(tempopb.NewClient(cc).Search(c, &tempopb.SearchRequest{Query: "{ }"}))
			if status.Code(err) != tc.want {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			if tc.want == codes.OK && (len(msgs) == 0 || len(msgs[len(msgs)-1].Traces) != 0) {
				t.Fatalf("team-b's search: %+v", msgs)
			}
		})
	}
}

func drain[T any](st *tempopb.Stream[T], err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	var out []T
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}
