package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// multitenantArgs runs the embedded all-in-one config with X-Scope-OrgID required.
var multitenantArgs = []string{"--config", "sprout:all-in-one", "--set=extensions.sprout_api.multitenancy_enabled=true"}

// retryHintArgs set per-tenant ingestion limits low enough that one large write exceeds the burst (so it is
// refused with 429 / RESOURCE_EXHAUSTED every time) while the isolation test's small writes pass.
var retryHintArgs = []string{
	"--set=extensions.sprout_logs.limits.ingestion_rate_mb=0.01",
	"--set=extensions.sprout_logs.limits.ingestion_burst_size_mb=0.01",
	"--set=extensions.sprout_metrics.limits.ingestion_rate=2000",
	"--set=extensions.sprout_metrics.limits.ingestion_burst_size=2000",
}

// tenantData is what one tenant writes; every name and value carries the tenant's marker word, so that any
// response to another tenant that contains the word is a leak.
type tenantData struct {
	id, marker string
	grpcTrace  string // written over OTLP gRPC with X-Scope-OrgID metadata
	httpTrace  string // written over OTLP HTTP with the X-Scope-OrgID header
}

func writeTenant(t *testing.T, env []string, api string, td tenantData) {
	t.Helper()
	c := &client{tenant: td.id}
	attrs := map[string]string{td.marker + ".secret": td.marker + "-value"}
	svc := "svc-" + td.marker

	// OTLP gRPC with metadata.
	conn, err := c.grpcConn(envValue(env, "SPROUT_OTLP_GRPC_ENDPOINT"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id, _ := hex.DecodeString(td.grpcTrace)
	var tid [16]byte
	copy(tid[:], id)
	ctx, cancel := context.WithTimeout(c.grpcContext(context.Background()), 10*time.Second)
	defer cancel()
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(makeTrace(tid, svc, attrs))); err != nil {
		t.Fatalf("%s: OTLP gRPC export: %v", td.id, err)
	}
	// OTLP HTTP with the header.
	id, _ = hex.DecodeString(td.httpTrace)
	copy(tid[:], id)
	body, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(makeTrace(tid, svc, attrs))
	if code, resp := c.post("http://"+envValue(env, "SPROUT_OTLP_HTTP_ENDPOINT")+"/v1/traces", "application/x-protobuf", body, nil); code != 200 {
		t.Fatalf("%s: OTLP HTTP export: %d %s", td.id, code, resp)
	}
	// Remote write with an exemplar that points at the tenant's trace.
	now := time.Now().UnixMilli()
	if code, resp := c.remoteWrite(api, prompb.TimeSeries{
		Labels:    []prompb.Label{{Name: "__name__", Value: td.marker + "_requests_total"}, {Name: "owner", Value: td.marker}, {Name: td.marker + "_label", Value: "x"}},
		Samples:   []prompb.Sample{{Value: 1, Timestamp: now}},
		Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: td.grpcTrace}}, Value: 1, Timestamp: now}},
	}); code/100 != 2 {
		t.Fatalf("%s: remote write: %d %s", td.id, code, resp)
	}
	// Loki push.
	if code, resp := c.pushLine(api, td.marker, td.marker+" log line trace_id="+td.grpcTrace); code/100 != 2 {
		t.Fatalf("%s: loki push: %d %s", td.id, code, resp)
	}
}

// isolationChecks are every read API, with the reader's own marker expected in the answer (own) or not.
func isolationChecks(own, other tenantData) []struct {
	path    string
	wantOwn bool
} {
	now := time.Now()
	startS, endS := fmt.Sprint(now.Add(-time.Hour).Unix()), fmt.Sprint(now.Add(time.Minute).Unix())
	startNs, endNs := fmt.Sprint(now.Add(-time.Hour).UnixNano()), fmt.Sprint(now.Add(time.Minute).UnixNano())
	q := url.QueryEscape
	all := q(`{__name__=~".+"}`)
	logs := q(`{job=~".+"}`)
	return []struct {
		path    string
		wantOwn bool
	}{
		// Traces.
		{"/api/traces/" + own.grpcTrace, true},
		{"/api/v2/traces/" + own.httpTrace, true},
		{"/api/search?q=" + q("{}") + "&start=" + startS + "&end=" + endS + "&limit=100", true},
		{"/api/search?tags=" + q("service.name=svc-"+other.marker) + "&start=" + startS + "&end=" + endS, false},
		{"/api/search?q=" + q(`{ span."`+other.marker+`.secret" = "`+other.marker+`-value" }`), false},
		{"/api/search/tags", true},
		{"/api/v2/search/tags", true},
		{"/api/search/tag/service.name/values", true},
		{"/api/v2/search/tag/resource.service.name/values", true},
		{"/api/v2/search/tag/span." + other.marker + ".secret/values", false},
		{"/api/metrics/query_range?q=" + q("{} | rate() by (resource.service.name)") + "&start=" + startS + "&end=" + endS + "&step=60s", true},
		// Metrics (Prometheus API, both prefixes).
		{"/api/v1/query?query=" + all, true}, // evaluated now: every sample written is in the past
		{"/api/v1/query_range?query=" + all + "&start=" + startS + "&end=" + endS + "&step=60", true},
		{"/api/v1/series?match[]=" + all + "&start=" + startS, true},
		{"/prometheus/api/v1/series?match[]=" + q(`{owner="`+other.marker+`"}`) + "&start=" + startS, false},
		{"/api/v1/labels", true},
		{"/api/v1/label/__name__/values", true},
		{"/api/v1/label/owner/values", true},
		{"/api/v1/query_exemplars?query=" + all + "&start=" + startS + "&end=" + endS, true},
		{"/api/v1/metadata", false},
		// The span-metrics generator's output, per tenant (it emits every few seconds).
		{"/api/v1/series?match[]=" + q(`{__name__=~"traces_spanmetrics_calls_total|traces_service_graph_request_total"}`) + "&start=" + startS, true},
		// Logs (Loki API).
		{"/loki/api/v1/query_range?query=" + logs + "&start=" + startNs + "&end=" + endNs + "&limit=1000", true},
		{"/loki/api/v1/query?query=" + q(`sum by (job) (count_over_time({job=~".+"}[1h]))`) + "&time=" + fmt.Sprint(now.UnixNano()), true},
		{"/loki/api/v1/labels?start=" + startNs + "&end=" + endNs, false},
		{"/loki/api/v1/label/job/values?start=" + startNs + "&end=" + endNs, true},
		{"/loki/api/v1/series?match[]=" + logs + "&start=" + startNs + "&end=" + endNs, true},
		{"/loki/api/v1/index/volume?query=" + logs + "&start=" + startNs + "&end=" + endNs, true},
		{"/loki/api/v1/detected_fields?query=" + logs + "&start=" + startNs + "&end=" + endNs, false},
		{"/loki/api/v1/query_range?query=" + q(`{job="`+other.marker+`"}`) + "&start=" + startNs + "&end=" + endNs, false},
	}
}

// TestTenantIsolation writes as two tenants over every ingest path and proves that neither can read the
// other's data through any read API, that the other's trace ids are 404, and that requests without
// X-Scope-OrgID get 401.
func TestTenantIsolation(t *testing.T) {
	env, api := defaultEnv(t)
	p := startSprout(t, env, append(append([]string{}, multitenantArgs...), retryHintArgs...)...)
	p.waitHTTP(api+"/ready", 60*time.Second)

	alpha := tenantData{id: "team-alpha", marker: "alpha", grpcTrace: hex.EncodeToString([]byte("alpha-grpc-trace")), httpTrace: hex.EncodeToString([]byte("alpha-http-trace"))}
	bravo := tenantData{id: "team-bravo", marker: "bravo", grpcTrace: hex.EncodeToString([]byte("bravo-grpc-trace")), httpTrace: hex.EncodeToString([]byte("bravo-http-trace"))}
	writeTenant(t, env, api, alpha)
	writeTenant(t, env, api, bravo)
	passed, total := 0, 0
	// OTLP without X-Scope-OrgID is refused by every store exporter (and the generator): gRPC Unauthenticated,
	// HTTP 401, with a message naming the header. Nothing of it may show up for a named tenant ("anonx").
	for what, o := range otlpExportAll(t, &client{}, env, "anonx", 0) {
		total++
		want := "Unauthenticated"
		if strings.HasPrefix(what, "http") {
			want = "401"
		}
		if o.code != want || !strings.Contains(o.msg, "X-Scope-OrgID") {
			t.Errorf("OTLP %s without X-Scope-OrgID: %s, want %s naming X-Scope-OrgID", what, o, want)
		} else {
			passed++
		}
		t.Logf("OTLP %s without X-Scope-OrgID: %s", what, o)
	}
	// Retry hints on every 429 / RESOURCE_EXHAUSTED Sprout sends (the logs and metrics limits are set low for
	// this process by retryHintArgs; the writes above stay well under them).
	passed, total = checkRetryHints(t, env, api, alpha.id, passed, total)

	for _, pair := range [][2]tenantData{{alpha, bravo}, {bravo, alpha}} {
		own, other := pair[0], pair[1]
		c := &client{tenant: own.id}
		checks := isolationChecks(own, other)
		// Each check must first see the reader's own data where it should (so that an empty answer cannot pass
		// as isolation); the stores answer from memory at once, the generator's metrics come within seconds.
		for _, ch := range checks {
			total++
			var body string
			err := poll(30*time.Second, func() error {
				var code int
				code, body = c.get(api + ch.path)
				if code != 200 {
					return fmt.Errorf("%d %s", code, firstLine(body))
				}
				if ch.wantOwn && !strings.Contains(body, own.marker) {
					return fmt.Errorf("own data (%q) not in the answer yet: %s", own.marker, firstLine(body))
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s reads %s: %v", own.id, ch.path, err)
				continue
			}
			if strings.Contains(body, other.marker) || strings.Contains(body, "anonx") {
				t.Errorf("LEAK: %s reads %s and sees %s's data: %s", own.id, ch.path, other.id, tail(body, 400))
				continue
			}
			passed++
		}
		// The other tenant's traces by id.
		for _, id := range []string{other.grpcTrace, other.httpTrace} {
			for _, path := range []string{"/api/traces/", "/api/v2/traces/"} {
				total++
				if code, body := c.get(api + path + id); code != 404 {
					t.Errorf("LEAK: %s reads %s%s: %d %s", own.id, path, id, code, firstLine(body))
				} else {
					passed++
				}
			}
		}
	}

	// No header: 401 on every read and write API.
	anon := &client{}
	for _, ch := range isolationChecks(alpha, bravo) {
		total++
		if code, body := anon.get(api + ch.path); code != 401 {
			t.Errorf("no X-Scope-OrgID: GET %s: %d %s, want 401", ch.path, code, firstLine(body))
		} else {
			passed++
		}
	}
	total += 2
	if code, body := anon.pushLine(api, "anon", "anon line"); code != 401 {
		t.Errorf("no X-Scope-OrgID: loki push: %d %s, want 401", code, firstLine(body))
	} else {
		passed++
	}
	if code, body := anon.remoteWrite(api, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "anon"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}}}); code != 401 {
		t.Errorf("no X-Scope-OrgID: remote write: %d %s, want 401", code, firstLine(body))
	} else {
		passed++
	}
	t.Logf("FIGURE tenant isolation: %d of %d checks passed", passed, total)
}

// poll runs f until it returns nil or timeout passes, and returns its last error.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
