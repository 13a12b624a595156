package rulerext

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.yaml.in/yaml/v3"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/logstoreext"
	"github.com/sprout-otel/sprout/components/metricstoreext"
	"github.com/sprout-otel/sprout/internal/testutil"
)

// rulerCorpus is the corpus of Grafana alerting's requests to a Prometheus (Mimir-type), Loki and Alertmanager
// data source on Sprout. It lives with the ruler package, whose APIs answer it; it is replayed here because
// the answers also need the metrics store (buildinfo, flags), the log store and the Alertmanager.
const rulerCorpus = "../../internal/ruler/testdata/grafana-corpus.json"

// Seeds of the corpus: a PromQL group and a LogQL group whose alerts fire, and a log line for the latter.
const (
	corpusPromGroup = "name: red\ninterval: 100ms\nrules:\n  - alert: CorpusAlways\n    expr: vector(1) > 0\n    labels: {severity: page}\n    annotations: {summary: always firing}\n  - record: corpus:one\n    expr: vector(1)\n"
	corpusLogGroup  = "name: errors\ninterval: 100ms\nrules:\n  - alert: CorpusLogErrors\n    expr: sum by (job) (count_over_time({job=\"corpus\"} |= \"error\" [5m])) > 0\n    labels: {severity: page}\n  - record: corpus:log_lines:count5m\n    expr: sum by (job) (count_over_time({job=\"corpus\"}[5m]))\n"
)

// realStack starts sprout_api, the real metrics and log stores and sprout_ruler, and returns the API's base URL.
func realStack(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	port := testutil.FreePort(t)
	apiCfg := apiserver.NewFactory().CreateDefaultConfig().(*apiserver.Config)
	apiCfg.NetAddr.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	api, err := apiserver.NewFactory().Create(ctx, extensiontest.NewNopSettings(apiserver.Type), apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	metricsCfg := metricstoreext.NewFactory().CreateDefaultConfig().(*metricstoreext.Config)
	metricsCfg.DataDir = t.TempDir()
	metrics, err := metricstoreext.NewFactory().Create(ctx, extensiontest.NewNopSettings(metricstoreext.Type), metricsCfg)
	if err != nil {
		t.Fatal(err)
	}
	logsCfg := logstoreext.NewFactory().CreateDefaultConfig().(*logstoreext.Config)
	logsCfg.DataDir = t.TempDir()
	logs, err := logstoreext.NewFactory().Create(ctx, extensiontest.NewNopSettings(logstoreext.Type), logsCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.DataDir = t.TempDir()
	cfg.Storage.Filesystem.Dir = filepath.Join(cfg.DataDir, "bucket")
	cfg.EvaluationInterval = 100 * time.Millisecond
	ruler, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := host{exts: map[component.ID]component.Component{
		component.NewID(apiserver.Type): api,
		component.NewID(MetricsType):    metrics,
		component.NewID(LogsType):       logs,
		component.NewID(Type):           ruler,
	}}
	for _, c := range []component.Component{api, metrics, logs, ruler} {
		if err := c.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Shutdown(ctx) })
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// seedCorpus loads the corpus' data and waits until both seeded alerts fire in the Alertmanager.
func seedCorpus(t *testing.T, base string) {
	t.Helper()
	call(t, "POST", base+"/prometheus/config/v1/rules/sprout-corpus", "", corpusPromGroup, http.StatusAccepted)
	call(t, "POST", base+"/loki/api/v1/rules/sprout-logs", "", corpusLogGroup, http.StatusAccepted)
	push := fmt.Sprintf(`{"streams":[{"stream":{"job":"corpus"},"values":[["%d","disk error"]]}]}`, time.Now().UnixNano())
	resp, err := http.Post(base+"/loki/api/v1/push", "application/json", strings.NewReader(push))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push = %d", resp.StatusCode)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		b := call(t, "GET", base+"/alertmanager/api/v2/alerts", "", "", http.StatusOK)
		if !strings.Contains(b, "CorpusAlways") || !strings.Contains(b, "CorpusLogErrors") {
			return fmt.Errorf("seeded alerts not in the Alertmanager yet: %s", b)
		}
		return nil
	})
}

func doEntry(t *testing.T, base string, e testutil.CorpusEntry) (int, []byte) {
	t.Helper()
	req, err := e.Request(base, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", e.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestGrafanaAlertingCorpus replays every request of Grafana alerting's flows (feature discovery, rule lists,
// rule editing, the Alertmanager data source) in the corpus' order and checks each answer; the rule groups and
// Alertmanager configurations Sprout answers are also checked with promtool and amtool where installed.
func TestGrafanaAlertingCorpus(t *testing.T) {
	base := realStack(t)
	seedCorpus(t, base)
	for _, e := range testutil.LoadCorpus(t, rulerCorpus) {
		status, body := doEntry(t, base, e)
		for _, p := range e.Check(status, body) {
			t.Errorf("%s (%s %s): %s", e.Name, e.Method, e.Path, p)
		}
		if status/100 != 2 || e.Method != http.MethodGet {
			continue
		}
		switch {
		case strings.HasPrefix(e.Path, "/config/v1/rules/") && strings.Count(e.Path, "/") == 5:
			checkWithPromtool(t, e.Name, body)
		case e.Path == "/alertmanager/api/v1/alerts":
			checkWithAmtool(t, e.Name, body)
		}
	}
}

// checkWithPromtool runs `promtool check rules` on a rule group as Sprout's Mimir API answers it.
func checkWithPromtool(t *testing.T, name string, group []byte) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Logf("%s: promtool not installed, rule group not checked with it", name)
		return
	}
	var g any
	if err := yaml.Unmarshal(group, &g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	file, err := yaml.Marshal(map[string]any{"groups": []any{g}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "group.yaml")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("%s: promtool check rules: %v\n%s\n%s", name, err, out, file)
	}
}

// checkWithAmtool runs `amtool check-config` on the alertmanager_config of Mimir's configuration answer.
func checkWithAmtool(t *testing.T, name string, body []byte) {
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Logf("%s: amtool not installed, configuration not checked with it", name)
		return
	}
	var cfg struct {
		AlertmanagerConfig string `yaml:"alertmanager_config"`
	}
	if err := yaml.Unmarshal(body, &cfg); err != nil || cfg.AlertmanagerConfig == "" {
		t.Fatalf("%s: no alertmanager_config in %s (%v)", name, body, err)
	}
	path := filepath.Join(t.TempDir(), "alertmanager.yaml")
	if err := os.WriteFile(path, []byte(cfg.AlertmanagerConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(amtool, "check-config", path).CombinedOutput(); err != nil {
		t.Errorf("%s: amtool check-config: %v\n%s", name, err, out)
	}
}
