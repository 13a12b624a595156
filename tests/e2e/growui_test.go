package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestGrowUIBrowser runs examples/configs/grow-ui.yaml, as shipped, in front of real Tempo and Loki (built from
// their public sources, named by SPROUT_PEER_TEMPO and SPROUT_PEER_LOKI) and Prometheus with its remote-write
// receiver standing in for Mimir (Mimir is not built here; both serve the same Prometheus API). The clusters
// hold a trace, log lines and a metric; Chromium opens the traces, trace, logs and metrics pages and must see
// them, with every request of the page going to Sprout's origin (tests/browser/growui.mjs).
//
//	SPROUT_PEER_TEMPO=/path/to/tempo SPROUT_PEER_LOKI=/path/to/loki SPROUT_BIN=/tmp/sprout \
//	  go test -count=1 -run TestGrowUIBrowser -v ./tests/e2e/
func TestGrowUIBrowser(t *testing.T) {
	testutil.PeerBinary(t, testutil.EnvTempo)
	testutil.PeerBinary(t, testutil.EnvLoki)
	promBin := testutil.RequireBinary(t, "prometheus")
	amBin := testutil.RequireBinary(t, "prometheus-alertmanager")
	node := testutil.RequireBinary(t, "node")
	chromium := testutil.RequireBinary(t, "chromium")
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core")); err != nil {
		t.Skip("web/node_modules is not installed; run npm ci in web/")
	}

	// Prometheus scrapes itself every second, so it holds a metric (prometheus_build_info) from the start, and
	// loads an alerting rule, as Mimir's ruler would hold the rules moved to it.
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("groups:\n  - name: grow\n    rules:\n      - alert: GrowUIErrors\n        expr: sum(rate(traces_spanmetrics_calls_total{status_code=\"STATUS_CODE_ERROR\"}[5m])) > 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := testutil.StartPrometheus(t, testutil.PrometheusOptions{Bin: promBin,
		Config: "global:\n  scrape_interval: 1s\nrule_files: ['" + rules + "']\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['{{.Addr \"http\"}}']\n"}).API()
	// Multi-tenant clusters: only the tenant the proxy adds finds the data. Tempo's metrics generator writes the
	// span metrics and service graph into Prometheus (Mimir), as the seed's Tempo does: the UI's service graph and
	// RED views read them there.
	tempoPeer := testutil.StartTempo(t, testutil.TempoOptions{MultiTenant: true, Overlay: `
metrics_generator:
  storage:
    path: ` + filepath.Join(t.TempDir(), "generator") + `
    remote_write:
      - url: ` + prom + `/api/v1/write
        send_exemplars: true
overrides:
  defaults:
    metrics_generator:
      processors: [service-graphs, span-metrics]
`})
	tempo, tempoOTLP := tempoPeer.API(), tempoPeer.OTLPHTTP()
	loki := testutil.StartLoki(t, testutil.LokiOptions{MultiTenant: true}).API()
	// An Alertmanager under /alertmanager, as Mimir serves its own beside the /prometheus prefix, holding a
	// silence the alerts page must list (read-only through the proxy).
	am := testutil.StartAlertmanager(t, amBin)
	silence := "growui maintenance " + randHex(4)
	post(t, am+"/api/v2/silences", fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"GrowUIErrors","isRegex":false,"isEqual":true}],"startsAt":%q,"endsAt":%q,"createdBy":"growui test","comment":%q}`,
		time.Now().UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339), silence))

	traceID := randHex(16)
	svc := "growui-" + randHex(3)
	line := "payment declined for order " + randHex(4)
	now := time.Now()
	pushTempoTrace(t, tempoOTLP, traceID, svc, now.Add(-time.Minute))
	// A call from svc to a second service, now (the generator takes only recent spans): an edge of the graph.
	callee := svc + "-db"
	for range 3 {
		pushTempoCall(t, tempoOTLP, svc, callee, time.Now())
	}
	// And a call every 5 s until the test ends, so that the edge's rate at the end of the page's range is not
	// zero however long the steps before the service graph take on a loaded machine.
	stopCalls := make(chan struct{})
	t.Cleanup(func() { close(stopCalls) })
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopCalls:
				return
			case <-tick.C:
				req, _ := http.NewRequest("POST", tempoOTLP, strings.NewReader(tempoCallBody(svc, callee, time.Now())))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Scope-OrgID", growTenant)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	pushLokiLine(t, loki, svc, line, traceID, now.Add(-time.Minute))

	testutil.Eventually(t, 90*time.Second, func() error {
		return expectBody(tempo+"/api/v2/traces/"+traceID, "GET /checkout")
	})
	testutil.Eventually(t, 90*time.Second, func() error {
		return expectBody(tempo+"/api/search?q="+url.QueryEscape(`{ resource.service.name = "`+svc+`" }`)+
			fmt.Sprintf("&start=%d&end=%d", now.Add(-time.Hour).Unix(), now.Add(time.Minute).Unix()), traceID)
	})
	testutil.Eventually(t, 60*time.Second, func() error {
		return expectBody(loki+"/loki/api/v1/query_range?query="+url.QueryEscape(`{service_name="`+svc+`"}`), line)
	})
	testutil.Eventually(t, 60*time.Second, func() error {
		return expectBody(prom+"/api/v1/query?query="+url.QueryEscape(`prometheus_build_info`), `"result":[{`)
	})
	testutil.Eventually(t, 120*time.Second, func() error {
		if err := expectBody(prom+"/api/v1/query?query="+url.QueryEscape(`traces_service_graph_request_total{client="`+svc+`",server="`+callee+`"}`), `"result":[{`); err != nil {
			return err
		}
		return expectBody(prom+"/api/v1/query?query="+url.QueryEscape(`traces_spanmetrics_calls_total{service="`+svc+`"}`), `"result":[{`)
	})

	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	api := port()
	p := startSprout(t, []string{
		"SPROUT_HTTP_ENDPOINT=" + api, "SPROUT_HEALTH_ENDPOINT=" + port(), "SPROUT_OTLP_GRPC_ENDPOINT=" + port(),
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)),
		"TENANT=" + growTenant, "TEMPO_URL=" + tempo, "MIMIR_URL=" + prom, "LOKI_URL=" + loki, "TEMPO_OTLP=" + strings.TrimPrefix(tempo, "http://"),
		"ALERTMANAGER_URL=" + am,
	}, "--config", filepath.Join(root, "examples", "configs", "grow-ui.yaml"))
	p.waitHTTP("http://"+api+"/ready", 60*time.Second)

	// The clusters answer only their tenant: without it Loki refuses, and Tempo's anonymous tenant has no trace.
	if err := expectBody(loki+"/loki/api/v1/labels", ""); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(loki + "/loki/api/v1/labels")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Loki without a tenant: %d, want 401", resp.StatusCode)
	}
	// Through the proxy the tenant is Sprout's, whatever the browser sends; outside the read APIs the proxy
	// refuses and the cluster is not asked.
	for _, c := range []struct {
		method, path string
		code         int
		has          string
	}{
		{"POST", "/ui/proxy/loki/loki/api/v1/push", http.StatusMethodNotAllowed, "read-only"},
		{"GET", "/ui/proxy/prometheus/api/v1/status/config", http.StatusNotFound, "only the read APIs"},
		{"GET", "/ui/proxy/tempo/api/v2/traces/" + traceID, http.StatusOK, "GET /checkout"},
		{"GET", "/ui/proxy/alertmanager/api/v2/silences", http.StatusOK, silence},
		{"POST", "/ui/proxy/alertmanager/api/v2/silences", http.StatusMethodNotAllowed, "read-only"},
		{"GET", "/ui/proxy/loki/loki/api/v1/query_range?query=" + url.QueryEscape(`{service_name="`+svc+`"}`), http.StatusOK, line},
	} {
		req, _ := http.NewRequest(c.method, "http://"+api+c.path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Scope-OrgID", "someone-else")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.has) {
			t.Errorf("%s %s: %d, want %d with %q: %s", c.method, c.path, resp.StatusCode, c.code, c.has, tail(string(b), 300))
		}
	}

	// The same config with the tenant forgotten (TENANT unset): the clusters answer 401, and the page must get
	// the cluster's name, its status and where to look, not a bare "no org id".
	noTenantAPI := port()
	noTenant := startSprout(t, []string{
		"SPROUT_HTTP_ENDPOINT=" + noTenantAPI, "SPROUT_HEALTH_ENDPOINT=" + port(), "SPROUT_OTLP_GRPC_ENDPOINT=" + port(),
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)),
		"TEMPO_URL=" + tempo, "MIMIR_URL=" + prom, "LOKI_URL=" + loki, "TEMPO_OTLP=" + strings.TrimPrefix(tempo, "http://"),
	}, "--config", filepath.Join(root, "examples", "configs", "grow-ui.yaml"))
	noTenant.waitHTTP("http://"+noTenantAPI+"/ready", 60*time.Second)
	for _, c := range []struct{ path, has string }{
		{"/ui/proxy/loki/loki/api/v1/query_range?query=" + url.QueryEscape(`{service_name="`+svc+`"}`), "UI proxy: loki at " + loki + " refused the request with 401 Unauthorized: no org id"},
		{"/ui/proxy/tempo/api/v2/traces/" + traceID, "UI proxy: tempo at " + tempo + " refused the request with 401 Unauthorized: no org id"},
	} {
		resp, err := http.Get("http://" + noTenantAPI + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), c.has) || resp.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("GET %s without a tenant: %d %q, want 401 with %q", c.path, resp.StatusCode, b, c.has)
		}
	}

	artifacts := os.Getenv("SPROUT_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(root, "artifacts", "growui")
	}
	cmd := exec.Command(node, filepath.Join(root, "tests", "browser", "growui.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SPROUT_URL=http://"+api, "CHROMIUM="+chromium, "ARTIFACTS="+artifacts,
		"NO_TENANT_URL=http://"+noTenantAPI, "SILENCE="+silence, "CALLEE="+callee, "TRACE_ID="+traceID, "SERVICE="+svc, "LOG_LINE="+line, "METRIC=prometheus_build_info")
	out, err := cmd.CombinedOutput()
	t.Logf("browser output:\n%s", tail(string(out), 6000))
	if err != nil {
		t.Fatalf("grow-ui browser check failed: %v", err)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

const growTenant = "team-growui"

func expectBody(u, want string) error {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("X-Scope-OrgID", growTenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(want)) {
		return fmt.Errorf("GET %s: %d, %q not in %s", u, resp.StatusCode, want, tail(string(b), 300))
	}
	return nil
}

func post(t *testing.T, u, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Scope-OrgID", growTenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", u, resp.StatusCode, b)
	}
}

func pushTempoTrace(t *testing.T, otlp, traceID, svc string, at time.Time) {
	t.Helper()
	root, child := randHex(8), randHex(8)
	ns := func(d time.Duration) string { return fmt.Sprint(at.Add(d).UnixNano()) }
	post(t, otlp, fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}}]},
"scopeSpans":[{"scope":{"name":"growui"},"spans":[
{"traceId":%q,"spanId":%q,"name":"GET /checkout","kind":2,"startTimeUnixNano":%q,"endTimeUnixNano":%q},
{"traceId":%q,"spanId":%q,"parentSpanId":%q,"name":"charge card","kind":3,"startTimeUnixNano":%q,"endTimeUnixNano":%q,"status":{"code":2}}
]}]}]}`, svc, traceID, root, ns(0), ns(120*time.Millisecond), traceID, child, root, ns(10*time.Millisecond), ns(100*time.Millisecond)))
}

// pushTempoCall pushes a trace in which client calls server: client's server span, its client span, and
// server's server span under it, the pair Tempo's service graph turns into an edge.
func pushTempoCall(t *testing.T, otlp, client, server string, at time.Time) {
	t.Helper()
	post(t, otlp, tempoCallBody(client, server, at))
}

// tempoCallBody is one call from client to server at at, as OTLP/JSON: the two spans of the edge.
func tempoCallBody(client, server string, at time.Time) string {
	id, root, call, handle := randHex(16), randHex(8), randHex(8), randHex(8)
	ns := func(d time.Duration) string { return fmt.Sprint(at.Add(d).UnixNano()) }
	return fmt.Sprintf(`{"resourceSpans":[
{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}}]},"scopeSpans":[{"scope":{"name":"growui"},"spans":[
{"traceId":%q,"spanId":%q,"name":"GET /orders","kind":2,"startTimeUnixNano":%q,"endTimeUnixNano":%q},
{"traceId":%q,"spanId":%q,"parentSpanId":%q,"name":"SELECT orders","kind":3,"startTimeUnixNano":%q,"endTimeUnixNano":%q}]}]},
{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}}]},"scopeSpans":[{"scope":{"name":"growui"},"spans":[
{"traceId":%q,"spanId":%q,"parentSpanId":%q,"name":"SELECT orders","kind":2,"startTimeUnixNano":%q,"endTimeUnixNano":%q}]}]}]}`,
		client, id, root, ns(0), ns(50*time.Millisecond), id, call, root, ns(5*time.Millisecond), ns(40*time.Millisecond),
		server, id, handle, call, ns(10*time.Millisecond), ns(35*time.Millisecond))
}

func pushLokiLine(t *testing.T, loki, svc, line, traceID string, at time.Time) {
	t.Helper()
	post(t, loki+"/loki/api/v1/push", fmt.Sprintf(`{"streams":[{"stream":{"service_name":%q,"level":"error"},
"values":[[%q,%q,{"trace_id":%q}]]}]}`, svc, fmt.Sprint(at.UnixNano()), line, traceID))
}
