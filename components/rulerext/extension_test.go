package rulerext

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/logstoreext"
	"github.com/sprout-otel/sprout/internal/testutil"
)

// fakeMetrics stands in for the sprout_metrics extension: a TSDB per tenant and a PromQL engine.
type fakeMetrics struct {
	component.StartFunc
	component.ShutdownFunc
	dir    string
	engine *promql.Engine
	mu     sync.Mutex
	dbs    map[string]*tsdb.DB

	features map[string]string // buildinfo features the ruler set
}

func (f *fakeMetrics) Tenant(_ context.Context, id string) (storage.Storage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if db, ok := f.dbs[id]; ok {
		return db, nil
	}
	db, err := tsdb.Open(filepath.Join(f.dir, id), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return nil, err
	}
	f.dbs[id] = db
	return db, nil
}

func (f *fakeMetrics) QueryEngine() *promql.Engine { return f.engine }

func (f *fakeMetrics) SetBuildInfoFeatures(features map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.features = features
}

// lastStack is the metrics store of the last stack started, for tests that look at what the ruler set on it.
var lastStack struct {
	sync.Mutex
	metrics *fakeMetrics
}

type host struct {
	exts map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.exts }

// stack starts sprout_api, a metrics store, sprout_logs and sprout_ruler; before, if set, runs once the API
// server is up and before the ruler starts. It returns the API's base URL.
func stack(t *testing.T, multitenancy bool, before func(api *apiserver.Server)) string {
	ctx := context.Background()
	port := testutil.FreePort(t)
	apiCfg := apiserver.NewFactory().CreateDefaultConfig().(*apiserver.Config)
	apiCfg.NetAddr.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	apiCfg.MultitenancyEnabled = multitenancy
	api, err := apiserver.NewFactory().Create(ctx, extensiontest.NewNopSettings(apiserver.Type), apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	metrics := &fakeMetrics{dir: t.TempDir(), engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute}), dbs: map[string]*tsdb.DB{}}
	lastStack.Lock()
	lastStack.metrics = metrics
	lastStack.Unlock()
	t.Cleanup(func() {
		for _, db := range metrics.dbs {
			_ = db.Close()
		}
	})
	logsCfg := logstoreext.NewFactory().CreateDefaultConfig().(*logstoreext.Config)
	logsCfg.DataDir = t.TempDir()
	logs, err := logstoreext.NewFactory().Create(ctx, extensiontest.NewNopSettings(logstoreext.Type), logsCfg)
	if err != nil {
		t.Fatal(err)
	}
	h := host{exts: map[component.ID]component.Component{
		component.NewID(apiserver.Type): api,
		component.NewID(MetricsType):    metrics,
		component.NewID(LogsType):       logs,
	}}
	if err := api.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Shutdown(ctx) })
	if err := logs.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logs.Shutdown(ctx) })
	if before != nil {
		before(api.(*apiserver.Server))
	}

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.DataDir = t.TempDir()
	cfg.Storage.Filesystem.Dir = filepath.Join(cfg.DataDir, "bucket")
	cfg.EvaluationInterval = 100 * time.Millisecond
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })

	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// call makes a request as tenant (none if empty) and checks the status.
func call(t *testing.T, method, url, tenantID, body string, want int) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if tenantID != "" {
		req.Header.Set("X-Scope-OrgID", tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s (tenant %q) = %d %s, want %d", method, url, tenantID, resp.StatusCode, b, want)
	}
	return string(b)
}

func TestExtensionServesRulerAndAlertmanager(t *testing.T) {
	// Another component already serves Prometheus' alerts API: the ruler must not panic, only skip it.
	base := stack(t, false, func(api *apiserver.Server) {
		api.HandleFunc("GET /prometheus/api/v1/alerts", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics store") })
	})
	call := func(method, path, body string, want int) string {
		t.Helper()
		return call(t, method, base+path, "", body, want)
	}
	call("POST", "/prometheus/config/v1/rules/app", "name: always\ninterval: 100ms\nrules:\n  - alert: Always\n    expr: vector(1)\n", http.StatusAccepted)
	call("POST", "/prometheus/config/v1/rules/app", "name: [", http.StatusBadRequest)
	if b := call("GET", "/api/v1/rules", "", http.StatusOK); !strings.Contains(b, `"name":"Always"`) {
		t.Fatalf("rules = %s", b)
	}
	// The same group over the paths Grafana's ruler proxy builds for a Prometheus data source at the root.
	for _, p := range []string{"/config/v1/rules/app/always", "/rules/app/always", "/prometheus/rules/app/always", "/api/v1/rules/app/always"} {
		if b := call("GET", p, "", http.StatusOK); !strings.Contains(b, "alert: Always") {
			t.Fatalf("%s = %s", p, b)
		}
	}
	// The metrics store's buildinfo names Mimir's features, so that Grafana manages these rules.
	lastStack.Lock()
	m := lastStack.metrics
	lastStack.Unlock()
	m.mu.Lock()
	if f := m.features; f["ruler_config_api"] != "true" || f["alertmanager_config_api"] != "true" {
		t.Errorf("buildinfo features = %v", f)
	}
	m.mu.Unlock()
	if b := call("GET", "/prometheus/api/v1/alerts", "", http.StatusOK); b != "metrics store" {
		t.Fatalf("the pre-registered route was replaced: %s", b)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		req, _ := http.NewRequest("GET", base+"/alertmanager/api/v2/alerts", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `"alertname":"Always"`) {
			return fmt.Errorf("embedded Alertmanager alerts = %d %s", resp.StatusCode, b)
		}
		return nil
	})
	call("GET", "/alertmanager/api/v2/status", "", http.StatusOK)

	// A LogQL rule uploaded over Loki's ruler API fires once a matching line is pushed over Loki's push API.
	call("POST", "/loki/api/v1/rules/logs", "name: errors\ninterval: 100ms\nrules:\n  - alert: LogErrors\n    expr: sum by (app) (count_over_time({app=\"shop\"} |= \"error\" [5m])) > 0\n", http.StatusAccepted)
	push := fmt.Sprintf(`{"streams":[{"stream":{"app":"shop"},"values":[["%d","disk error"]]}]}`, time.Now().UnixNano())
	req, _ := http.NewRequest("POST", base+"/loki/api/v1/push", strings.NewReader(push))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push = %d", resp.StatusCode)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		b := call("GET", "/alertmanager/api/v2/alerts", "", http.StatusOK)
		if !strings.Contains(b, `"alertname":"LogErrors"`) || !strings.Contains(b, `"app":"shop"`) {
			return fmt.Errorf("embedded Alertmanager alerts = %s", b)
		}
		return nil
	})
	// Each rules view lists one language: PromQL at Prometheus' path, LogQL at Loki's (its ruler API too).
	if b := call("GET", "/api/v1/rules", "", http.StatusOK); strings.Contains(b, `"language":"logql"`) || !strings.Contains(b, `"language":"promql"`) {
		t.Fatalf("Prometheus' rules view = %s", b)
	}
	if b := call("GET", "/prometheus/api/v1/rules", "", http.StatusOK); !strings.Contains(b, `"language":"logql"`) || strings.Contains(b, `"language":"promql"`) {
		t.Fatalf("Loki's rules view = %s", b)
	}
	if b := call("GET", "/api/prom/rules/logs/errors", "", http.StatusOK); !strings.Contains(b, "alert: LogErrors") {
		t.Fatalf("Loki's legacy ruler API = %s", b)
	}
	if b := call("GET", "/api/v1/alerts", "", http.StatusOK); !strings.Contains(b, `"alertname":"Always"`) || strings.Contains(b, "LogErrors") {
		t.Fatalf("Prometheus' alerts view = %s", b)
	}
}

func TestExtensionNeedsMetricsStore(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.DataDir = t.TempDir()
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = ext.Start(context.Background(), host{exts: map[component.ID]component.Component{}})
	if err == nil || !strings.Contains(err.Error(), `metrics extension "sprout_metrics" is not configured`) {
		t.Fatalf("Start() = %v", err)
	}
}

// With multi-tenancy on, each tenant's rules alert into its own Alertmanager, whose API (scoped by
// X-Scope-OrgID) shows nothing of another tenant; each tenant sets its own configuration over Mimir's API.
func TestExtensionAlertmanagerPerTenant(t *testing.T) {
	base := stack(t, true, nil)
	call(t, "GET", base+"/alertmanager/api/v2/alerts", "", "", http.StatusUnauthorized)
	call(t, "POST", base+"/api/v1/alerts", "team-a", "alertmanager_config: |\n  route: {receiver: a-pager}\n  receivers: [{name: a-pager}]\n", http.StatusCreated)
	call(t, "POST", base+"/prometheus/config/v1/rules/app", "team-a", "name: a\ninterval: 100ms\nrules:\n  - alert: TeamAAlert\n    expr: vector(1)\n", http.StatusAccepted)
	call(t, "POST", base+"/prometheus/config/v1/rules/app", "team-b", "name: b\ninterval: 100ms\nrules:\n  - alert: TeamBAlert\n    expr: vector(1)\n", http.StatusAccepted)
	for _, tc := range []struct{ tenant, want, notWant, receiver string }{
		{"team-a", "TeamAAlert", "TeamBAlert", "a-pager"},
		{"team-b", "TeamBAlert", "TeamAAlert", "default"},
	} {
		testutil.Eventually(t, 10*time.Second, func() error {
			b := call(t, "GET", base+"/alertmanager/api/v2/alerts", tc.tenant, "", http.StatusOK)
			if !strings.Contains(b, tc.want) || !strings.Contains(b, `"name":"`+tc.receiver+`"`) {
				return fmt.Errorf("alerts of %s = %s", tc.tenant, b)
			}
			if strings.Contains(b, tc.notWant) {
				t.Fatalf("%s sees another tenant's alert: %s", tc.tenant, b)
			}
			return nil
		})
	}
	// Mimir's configuration API: team-b has none (404); team-a's is read back under /alertmanager, and set and
	// deleted there too. GET /api/v1/alerts is Prometheus' alerts view.
	call(t, "GET", base+"/alertmanager/api/v1/alerts", "team-b", "", http.StatusNotFound)
	if b := call(t, "GET", base+"/alertmanager/api/v1/alerts", "team-a", "", http.StatusOK); !strings.Contains(b, "a-pager") {
		t.Fatalf("team-a's configuration = %s", b)
	}
	if b := call(t, "GET", base+"/api/v1/alerts", "team-b", "", http.StatusOK); !strings.Contains(b, "TeamBAlert") || strings.Contains(b, "TeamAAlert") {
		t.Fatalf("team-b's alerts view = %s", b)
	}
	call(t, "POST", base+"/alertmanager/api/v1/alerts", "team-b", "alertmanager_config: |\n  route: {receiver: b-pager}\n  receivers: [{name: b-pager}]\n", http.StatusCreated)
	if b := call(t, "GET", base+"/alertmanager/api/v1/alerts", "team-b", "", http.StatusOK); !strings.Contains(b, "b-pager") {
		t.Fatalf("team-b's configuration = %s", b)
	}
	// Grafana's Alertmanager data source of Mimir type at http://host:3200/alertmanager reads v2 here.
	call(t, "GET", base+"/alertmanager/alertmanager/api/v2/status", "team-b", "", http.StatusOK)
	call(t, "DELETE", base+"/alertmanager/api/v1/alerts", "team-b", "", http.StatusOK)
	call(t, "GET", base+"/alertmanager/api/v1/alerts", "team-b", "", http.StatusNotFound)
}
