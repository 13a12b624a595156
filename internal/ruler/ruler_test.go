package ruler_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/alerting"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/ruler"
	"github.com/sprout-otel/sprout/internal/tenant"
	tu "github.com/sprout-otel/sprout/internal/testutil"
)

// testStore is a one-TSDB-per-tenant metrics store, the same libraries Sprout's metrics store uses.
type testStore struct {
	dir    string
	engine *promql.Engine
	mu     sync.Mutex
	dbs    map[string]*tsdb.DB
}

func newTestStore(t *testing.T) *testStore {
	s := &testStore{
		dir:    t.TempDir(),
		engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute}),
		dbs:    map[string]*tsdb.DB{},
	}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, db := range s.dbs {
			_ = db.Close()
		}
	})
	return s
}

func (s *testStore) Tenant(_ context.Context, id string) (storage.Storage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if db, ok := s.dbs[id]; ok {
		return db, nil
	}
	db, err := tsdb.Open(filepath.Join(s.dir, id), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return nil, err
	}
	s.dbs[id] = db
	return db, nil
}

func (s *testStore) QueryEngine() *promql.Engine { return s.engine }

func (s *testStore) add(t *testing.T, id, series string, v float64) {
	t.Helper()
	st, err := s.Tenant(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := promqlParse(series)
	if err != nil {
		t.Fatal(err)
	}
	app := st.Appender(context.Background())
	if _, err := app.Append(0, ls, time.Now().UnixMilli(), v); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (s *testStore) query(id, q string) (promql.Vector, error) {
	st, err := s.Tenant(context.Background(), id)
	if err != nil {
		return nil, err
	}
	qry, err := s.engine.NewInstantQuery(context.Background(), st, nil, q, time.Now())
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Vector()
}

var parserForTests = parser.NewParser(parser.Options{})

func promqlParse(s string) (labels.Labels, error) {
	return parserForTests.ParseMetric(s)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newRuler(t *testing.T, o ruler.Options) *ruler.Ruler {
	t.Helper()
	if o.EvaluationInterval == 0 {
		o.EvaluationInterval = 100 * time.Millisecond
	}
	if o.ResendDelay == 0 {
		o.ResendDelay = 200 * time.Millisecond
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Hour // tests sync explicitly
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := ruler.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func TestRecordingRuleWritesBack(t *testing.T) {
	store := newTestStore(t)
	dir := t.TempDir()
	// The default-tenant shortcut: a file directly in rule_path.
	writeFile(t, filepath.Join(dir, "rec.yaml"), `
groups:
  - name: rec
    interval: 100ms
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
`)
	// A second tenant's rules in its own directory.
	writeFile(t, filepath.Join(dir, "team-b", "rec.yml"), `
groups:
  - name: rec-b
    interval: 100ms
    rules:
      - record: b:up:count
        expr: count(up)
`)
	store.add(t, tenant.Default, `up{job="api",instance="a"}`, 1)
	store.add(t, tenant.Default, `up{job="api",instance="b"}`, 1)
	store.add(t, "team-b", `up{job="x"}`, 1)
	newRuler(t, ruler.Options{RulePath: dir, Store: store})

	tu.Eventually(t, 10*time.Second, func() error {
		v, err := store.query(tenant.Default, `job:up:sum{job="api"}`)
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].F != 2 {
			return fmt.Errorf("job:up:sum = %v, want one sample of 2", v)
		}
		return nil
	})
	tu.Eventually(t, 10*time.Second, func() error {
		v, err := store.query("team-b", `b:up:count`)
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].F != 1 {
			return fmt.Errorf("b:up:count = %v, want 1", v)
		}
		return nil
	})
	// Tenants stay apart: the default tenant's recording is not in team-b.
	if v, err := store.query("team-b", `job:up:sum`); err != nil || len(v) != 0 {
		t.Fatalf("team-b sees the default tenant's recording: %v %v", v, err)
	}
}

func TestInvalidRuleFileKeepsOtherGroups(t *testing.T) {
	store := newTestStore(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.yaml"), `
groups:
  - name: good
    rules:
      - record: a:up
        expr: up
`)
	writeFile(t, filepath.Join(dir, "mixed.yaml"), `groups:
  - name: fine
    rules:
      - record: b:up
        expr: up
  - name: broken
    rules:
      - alert: Broken
        expr: sum(rate(up[5m]) > 
`)
	writeFile(t, filepath.Join(dir, "notyaml.yaml"), "groups:\n  - name: x\n   rules: [\n")
	reg := prometheus.NewRegistry()
	r := newRuler(t, ruler.Options{RulePath: dir, Store: store, Registerer: reg})

	st := r.Rules(tenant.Default)
	var names []string
	for _, g := range st.Groups {
		names = append(names, g.Name())
	}
	if strings.Join(names, ",") != "good,fine" && strings.Join(names, ",") != "fine,good" {
		t.Fatalf("running groups = %v, want good and fine", names)
	}
	if len(st.Errors) != 2 {
		t.Fatalf("errors = %v, want 2", st.Errors)
	}
	var all []string
	for _, e := range st.Errors {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		filepath.Join(dir, "mixed.yaml") + ": 9:15:", // file, line and column of the bad expression
		`group "broken"`,
		filepath.Join(dir, "notyaml.yaml"),
		"yaml: line 1:",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors do not mention %q:\n%s", want, joined)
		}
	}
	if got := testutil.ToFloat64(mustGauge(t, reg, "sprout_ruler_rule_load_errors")); got != 2 {
		t.Errorf("sprout_ruler_rule_load_errors = %v, want 2", got)
	}
}

func mustGauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
			g.Set(mf.Metric[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

// webhookRecorder is a local webhook receiver.
type webhookRecorder struct {
	mu   sync.Mutex
	msgs []webhookMsg
	fail bool
}

type webhookMsg struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
	received time.Time
}

func (w *webhookRecorder) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var m webhookMsg
	_ = json.NewDecoder(r.Body).Decode(&m)
	m.received = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		http.Error(rw, "receiver down", http.StatusServiceUnavailable)
		return
	}
	w.msgs = append(w.msgs, m)
}

func (w *webhookRecorder) find(status string) (webhookMsg, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if m.Status == status {
			return m, true
		}
	}
	return webhookMsg{}, false
}

type embedded struct {
	am     *alerting.Alertmanager
	srv    *httptest.Server
	sender *ruler.AlertmanagerSender
	reg    *prometheus.Registry
}

func startAlertmanager(t *testing.T, dataDir, webhookURL string) *embedded {
	t.Helper()
	reg := prometheus.NewRegistry()
	am, err := alerting.New(alerting.Options{
		ConfigYAML: fmt.Sprintf(`
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 300ms
  group_interval: 300ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, webhookURL),
		DataDir:     dataDir,
		ExternalURL: "http://sprout.test/alertmanager",
		Registerer:  reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/alertmanager/api/v2/", http.StripPrefix("/alertmanager", am.Handler()))
	srv := httptest.NewServer(mux)
	sender, err := ruler.NewAlertmanagerSender("http://embedded", ruler.HandlerClient(am.Handler()), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	e := &embedded{am: am, srv: srv, sender: sender, reg: reg}
	t.Cleanup(func() { sender.Stop(); srv.Close(); am.Stop() })
	return e
}

func TestAlertFiresAndResolves(t *testing.T) {
	hook := &webhookRecorder{}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	em := startAlertmanager(t, t.TempDir(), hookSrv.URL)

	store := newTestStore(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alerts.yaml"), `
groups:
  - name: alerts
    interval: 100ms
    rules:
      - alert: QueueTooLong
        expr: queue_length > 10
        labels: {severity: page}
        annotations: {summary: "queue is {{ $value }}"}
`)
	store.add(t, tenant.Default, `queue_length{queue="q1"}`, 50)
	r := newRuler(t, ruler.Options{RulePath: dir, Store: store, Notifier: em.sender})

	start := time.Now()
	tu.Eventually(t, 15*time.Second, func() error {
		if _, ok := hook.find("firing"); !ok {
			return fmt.Errorf("webhook has not received a firing notification")
		}
		return nil
	})
	m, _ := hook.find("firing")
	if m.Alerts[0].Labels["alertname"] != "QueueTooLong" || m.Alerts[0].Labels["severity"] != "page" {
		t.Fatalf("firing notification = %+v", m)
	}
	t.Logf("firing notification after %s (group_wait 300ms, eval interval 100ms)", m.received.Sub(start))

	// Prometheus' alerts API shows it firing.
	api := httptest.NewServer(routes(r))
	defer api.Close()
	body := get(t, api.URL+"/api/v1/alerts", http.StatusOK)
	if !strings.Contains(body, `"state":"firing"`) || !strings.Contains(body, `"alertname":"QueueTooLong"`) {
		t.Fatalf("/api/v1/alerts = %s", body)
	}

	// The condition clears: the alert resolves, and the webhook is told.
	store.add(t, tenant.Default, `queue_length{queue="q1"}`, 1)
	tu.Eventually(t, 15*time.Second, func() error {
		if _, ok := hook.find("resolved"); !ok {
			return fmt.Errorf("webhook has not received a resolved notification")
		}
		return nil
	})
}

func TestFailingReceiverIsRetriedAndCounted(t *testing.T) {
	hook := &webhookRecorder{fail: true}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	em := startAlertmanager(t, t.TempDir(), hookSrv.URL)
	store := newTestStore(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "groups:\n  - name: a\n    interval: 100ms\n    rules:\n      - alert: Always\n        expr: vector(1)\n")
	newRuler(t, ruler.Options{RulePath: dir, Store: store, Notifier: em.sender})
	failed := func() float64 {
		mfs, _ := em.reg.Gather()
		var n float64
		for _, mf := range mfs {
			if mf.GetName() == "alertmanager_notification_requests_failed_total" {
				for _, m := range mf.Metric {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n
	}
	tu.Eventually(t, 20*time.Second, func() error {
		if n := failed(); n < 2 {
			return fmt.Errorf("alertmanager_notification_requests_failed_total = %v, want retries counted (>= 2)", n)
		}
		return nil
	})
	// The receiver comes back: the retry delivers.
	hook.mu.Lock()
	hook.fail = false
	hook.mu.Unlock()
	tu.Eventually(t, 30*time.Second, func() error {
		if _, ok := hook.find("firing"); !ok {
			return fmt.Errorf("no notification after the receiver recovered")
		}
		return nil
	})
}

func routes(r *ruler.Ruler) http.Handler {
	mux := http.NewServeMux()
	api := &ruler.API{Ruler: r, Tenant: func(w http.ResponseWriter, req *http.Request) (string, bool) {
		id, err := tenant.FromRequest(req, req.Header.Get(tenant.Header) != "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return "", false
		}
		return id, true
	}}
	api.Register(mux)
	return mux
}

func get(t *testing.T, url string, want int) string {
	t.Helper()
	return do(t, http.MethodGet, url, "", want)
}

func do(t *testing.T, method, url, body string, want int) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	return string(b)
}

func newBucket(t *testing.T, dir string) bucket.Bucket {
	t.Helper()
	b, err := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: dir}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRulerConfigAPI(t *testing.T) {
	store := newTestStore(t)
	bdir := t.TempDir()
	r := newRuler(t, ruler.Options{Store: store, Rules: ruler.NewRuleStore(newBucket(t, bdir))})
	srv := httptest.NewServer(routes(r))
	defer srv.Close()

	for _, base := range []string{"/prometheus/config/v1/rules", "/api/v1/rules"} {
		t.Run(base, func(t *testing.T) {
			get(t, srv.URL+base+"/ns1", http.StatusNotFound)
			for _, tc := range []struct{ name, body, want string }{
				{"not yaml", "name: [unclosed", "decode rule group"},
				{"unknown field", "name: g\nrulez: []\n", "field rulez not found"},
				{"no name", "rules:\n  - record: a\n    expr: up\n", "name must not be empty"},
				{"bad expr", "name: g\nrules:\n  - record: a\n    expr: sum(up\n", `invalid rule group "g"`},
			} {
				b := do(t, http.MethodPost, srv.URL+base+"/ns1", tc.body, http.StatusBadRequest)
				if !strings.Contains(b, tc.want) {
					t.Errorf("%s: 400 body %q does not contain %q", tc.name, b, tc.want)
				}
			}
			b := do(t, http.MethodPost, srv.URL+base+"/ns1", "name: grp one\ninterval: 100ms\nrules:\n  - record: one:vector\n    expr: vector(1)\n", http.StatusAccepted)
			if !strings.Contains(b, `"status":"success"`) {
				t.Fatalf("set body = %s", b)
			}
			if b := get(t, srv.URL+base+"/ns1", http.StatusOK); !strings.Contains(b, "ns1:") || !strings.Contains(b, "name: grp one") {
				t.Fatalf("get namespace = %s", b)
			}
			if b := get(t, srv.URL+base+"/ns1/grp%20one", http.StatusOK); !strings.Contains(b, "record: one:vector") {
				t.Fatalf("get group = %s", b)
			}
			// Uploaded rules run at once and show in Prometheus' rules API, and the recording writes back.
			tu.Eventually(t, 10*time.Second, func() error {
				v, err := store.query(tenant.Default, "one:vector")
				if err != nil || len(v) != 1 {
					return fmt.Errorf("one:vector = %v %v", v, err)
				}
				return nil
			})
			if b := get(t, srv.URL+"/api/v1/rules", http.StatusOK); !strings.Contains(b, `"name":"grp one"`) || !strings.Contains(b, `"file":"ns1"`) {
				t.Fatalf("rules API = %s", b)
			}
			do(t, http.MethodDelete, srv.URL+base+"/ns1/grp%20one", "", http.StatusAccepted)
			get(t, srv.URL+base+"/ns1/grp%20one", http.StatusNotFound)
			do(t, http.MethodDelete, srv.URL+base+"/ns1", "", http.StatusNotFound)
			if len(r.Rules(tenant.Default).Groups) != 0 {
				t.Fatalf("deleted group still runs")
			}
		})
	}

	// Uploaded rules survive a restart: a new ruler over the same bucket runs them.
	do(t, http.MethodPost, srv.URL+"/prometheus/config/v1/rules/keep", "name: kept\nrules:\n  - record: kept:vector\n    expr: vector(2)\n", http.StatusAccepted)
	if b := get(t, srv.URL+"/prometheus/config/v1/rules", http.StatusOK); !strings.Contains(b, "keep:") {
		t.Fatalf("list = %s", b)
	}
	r.Stop()
	r2 := newRuler(t, ruler.Options{Store: store, Rules: ruler.NewRuleStore(newBucket(t, bdir)), Registerer: prometheus.NewRegistry()})
	if g := r2.Rules(tenant.Default).Groups; len(g) != 1 || g[0].Name() != "kept" {
		t.Fatalf("after restart groups = %v", g)
	}
}

func TestPrometheusRulesAPIBadType(t *testing.T) {
	r := newRuler(t, ruler.Options{Store: newTestStore(t)})
	srv := httptest.NewServer(routes(r))
	defer srv.Close()
	if b := do(t, http.MethodGet, srv.URL+"/api/v1/rules?type=bogus", "", http.StatusBadRequest); !strings.Contains(b, `"errorType":"bad_data"`) {
		t.Fatalf("body = %s", b)
	}
	if b := get(t, srv.URL+"/api/v1/rules", http.StatusOK); b != `{"status":"success","data":{"groups":[]}}`+"\n" {
		t.Fatalf("empty rules = %q", b)
	}
}

func TestAmtoolAgainstEmbeddedAlertmanager(t *testing.T) {
	amtool := tu.RequireBinary(t, "amtool")
	hook := &webhookRecorder{}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	dataDir := t.TempDir()
	em := startAlertmanager(t, dataDir, hookSrv.URL)
	store := newTestStore(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "groups:\n  - name: a\n    interval: 100ms\n    rules:\n      - alert: DiskFull\n        expr: vector(1)\n        labels: {team: storage}\n")
	newRuler(t, ruler.Options{RulePath: dir, Store: store, Notifier: em.sender})

	url := em.srv.URL + "/alertmanager"
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(amtool, append([]string{"--alertmanager.url=" + url}, args...)...).Output()
		if err != nil {
			t.Fatalf("amtool %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tu.Eventually(t, 10*time.Second, func() error {
		if out := run("alert", "query"); !strings.Contains(out, "DiskFull") {
			return fmt.Errorf("amtool alert query:\n%s", out)
		}
		return nil
	})
	id := strings.TrimSpace(run("silence", "add", "alertname=DiskFull", "--author=sprout-test", "--comment=maintenance", "--duration=1h"))
	if id == "" {
		t.Fatal("amtool silence add printed no id")
	}
	if out := run("silence", "query"); !strings.Contains(out, id) || !strings.Contains(out, "maintenance") {
		t.Fatalf("amtool silence query:\n%s", out)
	}
	// The silenced alert is shown as suppressed.
	tu.Eventually(t, 10*time.Second, func() error {
		if out := run("alert", "query", "--silenced"); !strings.Contains(out, "DiskFull") {
			return fmt.Errorf("amtool alert query --silenced:\n%s", out)
		}
		return nil
	})

	// Silences persist: stop the Alertmanager (final snapshot) and start a new one on the same data dir.
	em.sender.Stop()
	em.srv.Close()
	em.am.Stop()
	em2 := startAlertmanager(t, dataDir, hookSrv.URL)
	out, err := exec.Command(amtool, "--alertmanager.url="+em2.srv.URL+"/alertmanager", "silence", "query").CombinedOutput()
	if err != nil || !strings.Contains(string(out), id) {
		t.Fatalf("after restart, amtool silence query: %v\n%s", err, out)
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// normalizeTimes replaces the values that change from run to run in Prometheus API JSON.
var timeFields = regexp.MustCompile(`"(lastEvaluation|activeAt|evaluationTime)":("[^"]*"|[0-9.e-]+)`)

func TestPrometheusAPIGolden(t *testing.T) {
	store := newTestStore(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "g.yaml"), `
groups:
  - name: golden
    interval: 100ms
    rules:
      - record: golden:one
        expr: vector(1)
        labels: {source: test}
      - alert: GoldenPending
        expr: vector(1) > 0
        for: 1h
        labels: {severity: info}
        annotations: {summary: "value {{ $value }}"}
`)
	// A LogQL file next to it: Prometheus' rules view lists the PromQL groups, Loki's the LogQL ones.
	writeFile(t, filepath.Join(dir, "logql", "l.yaml"), `
groups:
  - name: golden-logs
    interval: 100ms
    rules:
      - record: golden:log_lines
        expr: sum by (app) (count_over_time({app="golden"} |= "x" [1m]))
`)
	bkt := newBucket(t, t.TempDir())
	r := newRuler(t, ruler.Options{RulePath: dir, Store: store, Logs: newLogStore(t), LogQLRules: ruler.NewLogQLRuleStore(bkt)})
	srv := httptest.NewServer(routes(r))
	defer srv.Close()
	var rulesBody, logRulesBody string
	tu.Eventually(t, 10*time.Second, func() error {
		rulesBody = get(t, srv.URL+"/api/v1/rules", http.StatusOK)
		if strings.Count(rulesBody, `"health":"ok"`) != 2 || !strings.Contains(rulesBody, `"state":"pending"`) {
			return fmt.Errorf("rules not evaluated yet: %s", rulesBody)
		}
		logRulesBody = get(t, srv.URL+"/prometheus/api/v1/rules", http.StatusOK)
		if strings.Count(logRulesBody, `"health":"ok"`) != 1 {
			return fmt.Errorf("LogQL rules not evaluated yet: %s", logRulesBody)
		}
		return nil
	})
	alertsBody := get(t, srv.URL+"/api/v1/alerts", http.StatusOK)
	// Loki's listing, YAML as cortextool reads it.
	do(t, http.MethodPost, srv.URL+"/loki/api/v1/rules/ns-b", "name: g2\nrules:\n  - alert: A\n    expr: rate({a=\"b\"}[5m]) > 1\n    for: 1m\n    labels: {severity: page}\n", http.StatusAccepted)
	do(t, http.MethodPost, srv.URL+"/loki/api/v1/rules/ns-a", "name: g1\ninterval: 1m\nrules:\n  - record: r:one\n    expr: count_over_time({a=\"b\"}[1m])\n", http.StatusAccepted)
	lokiBody := get(t, srv.URL+"/loki/api/v1/rules", http.StatusOK)
	for name, body := range map[string]string{"rules.json": rulesBody, "rules_logql.json": logRulesBody, "alerts.json": alertsBody, "loki_rules.yaml": lokiBody} {
		got := timeFields.ReplaceAllString(strings.ReplaceAll(body, dir, "RULE_PATH"), `"$1":"X"`)
		path := filepath.Join("testdata", "golden", name)
		if *update {
			writeFile(t, path, got)
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from %s:\n got: %s\nwant: %s", name, path, got, want)
		}
	}
}

// refusingStore refuses some tenants as the metrics store refuses a tenant beyond max_tenants.
type refusingStore struct {
	*testStore
	refuse string
}

func (s refusingStore) Tenant(ctx context.Context, id string) (storage.Storage, error) {
	if id == s.refuse {
		return nil, tenant.CheckCount(id, 1, 1, "metrics store")
	}
	return s.testStore.Tenant(ctx, id)
}

// TestStartSkipsBadTenants: rules an earlier release stored under an id now refused, an unreadable group and a
// tenant the metrics store refuses do not stop the start; each is counted, and the good tenant's rules run.
func TestStartSkipsBadTenants(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t, t.TempDir())
	rs := ruler.NewRuleStore(bkt)
	good := rulefmt.RuleGroup{Name: "g", Rules: []rulefmt.Rule{{Record: "good:vector", Expr: "vector(1)"}}}
	for _, id := range []string{".hidden", "...", "team-a", "refused"} {
		if err := rs.SetGroup(ctx, id, "ns", good); err != nil {
			t.Fatal(err)
		}
	}
	if err := bkt.Upload(ctx, "rules/broken/ns/g", strings.NewReader("name: [unclosed")); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := newRuler(t, ruler.Options{Store: refusingStore{newTestStore(t), "refused"}, Rules: rs, Registerer: reg})
	if g := r.Rules("team-a").Groups; len(g) != 1 {
		t.Fatalf("team-a groups = %v, want its one group running", g)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "sprout_ruler_groups_load_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			failed[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	for _, id := range []string{".hidden", "...", "broken", "refused"} {
		if failed[id] < 1 {
			t.Errorf("tenant %q: load failures %v, want counted (all: %v)", id, failed[id], failed)
		}
	}
	if failed["team-a"] != 0 {
		t.Errorf("team-a counted as failed")
	}
}

// TestSetGroupTenantDoor: the ruler API refuses, before storing anything, an id the stores refuse (400) and a
// tenant the metrics store will not create (400 naming max_tenants).
func TestSetGroupTenantDoor(t *testing.T) {
	bkt := newBucket(t, t.TempDir())
	r := newRuler(t, ruler.Options{Store: refusingStore{newTestStore(t), "refused"}, Rules: ruler.NewRuleStore(bkt)})
	mux := http.NewServeMux()
	api := &ruler.API{Ruler: r, Tenant: func(_ http.ResponseWriter, req *http.Request) (string, bool) {
		return req.Header.Get(tenant.Header), true // a resolver that trusts the header: the ruler's own door decides
	}}
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		id   string
		code int
		want string
	}{
		{".hidden", 400, "reserved"},
		{"...", 400, "reserved"},
		{"a/b", 400, "unsupported character"},
		{"refused", 400, "max_tenants"},
		{"team-a", 202, "success"},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/rules/ns", strings.NewReader("name: g\nrules:\n  - record: a\n    expr: vector(1)\n"))
		req.Header.Set(tenant.Header, tc.id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("tenant %q: %d %s, want %d %q", tc.id, resp.StatusCode, b, tc.code, tc.want)
		}
	}
	ids, err := ruler.NewRuleStore(bkt).Tenants(context.Background())
	if err != nil || len(ids) != 1 || ids[0] != "team-a" {
		t.Errorf("stored tenants = %v, %v; want only team-a", ids, err)
	}
}

// TestRulesViewLanguages: /api/v1/rules and /alerts list PromQL groups; /prometheus/api/v1/rules and /alerts
// list LogQL groups by default (Loki's paths) or PromQL ones with PrometheusPrefixRules (Mimir's); Loki's
// ruler API answers at both of its prefixes, and the Mimir ruler API at the paths Grafana's proxy builds.
func TestRulesViewLanguages(t *testing.T) {
	store := newTestStore(t)
	for _, tc := range []struct {
		name     string
		prefixed ruler.Lang
		want     map[string]string // path → the alert it must list (and the other must not)
	}{
		{"default", "", map[string]string{"/api/v1/rules": "PromAlert", "/api/v1/alerts": "PromAlert", "/prometheus/api/v1/rules": "LogAlert", "/prometheus/api/v1/alerts": "LogAlert"}},
		{"mimir prefix", ruler.PromQL, map[string]string{"/api/v1/rules": "PromAlert", "/prometheus/api/v1/rules": "PromAlert", "/prometheus/api/v1/alerts": "PromAlert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bkt := newBucket(t, t.TempDir())
			r := newRuler(t, ruler.Options{Store: store, Logs: newLogStore(t), Rules: ruler.NewRuleStore(bkt), LogQLRules: ruler.NewLogQLRuleStore(bkt), PrometheusPrefixRules: tc.prefixed, Registerer: prometheus.NewRegistry()})
			srv := httptest.NewServer(routes(r))
			defer srv.Close()
			do(t, http.MethodPost, srv.URL+"/config/v1/rules/ns", "name: p\ninterval: 100ms\nrules:\n  - alert: PromAlert\n    expr: vector(1)\n", http.StatusAccepted)
			do(t, http.MethodPost, srv.URL+"/api/prom/rules/ns", "name: l\ninterval: 100ms\nrules:\n  - alert: LogAlert\n    expr: vector(1) > 0\n", http.StatusAccepted)
			for _, p := range []string{"/rules/ns/p", "/prometheus/rules/ns/p", "/prometheus/config/v1/rules/ns/p", "/api/v1/rules/ns/p"} {
				if b := get(t, srv.URL+p, http.StatusOK); !strings.Contains(b, "alert: PromAlert") {
					t.Errorf("%s = %s", p, b)
				}
			}
			for _, p := range []string{"/api/prom/rules/ns/l", "/loki/api/v1/rules/ns/l"} {
				if b := get(t, srv.URL+p, http.StatusOK); !strings.Contains(b, "alert: LogAlert") {
					t.Errorf("%s = %s", p, b)
				}
			}
			if b := get(t, srv.URL+"/api/prom/rules/ns/none", http.StatusNotFound); !strings.Contains(b, "group does not exist") {
				t.Errorf("missing group = %s (Grafana looks for these words)", b)
			}
			tu.Eventually(t, 10*time.Second, func() error {
				for p, want := range tc.want {
					b := get(t, srv.URL+p, http.StatusOK)
					other := map[string]string{"PromAlert": "LogAlert", "LogAlert": "PromAlert"}[want]
					if !strings.Contains(b, want) {
						return fmt.Errorf("%s lacks %s: %s", p, want, b)
					}
					if strings.Contains(b, other) {
						t.Fatalf("%s lists %s: %s", p, other, b)
					}
				}
				return nil
			})
		})
	}
}
