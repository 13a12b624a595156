package ruler_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/logstore"
	"github.com/sprout-otel/sprout/internal/ruler"
	"github.com/sprout-otel/sprout/internal/tenant"
	tu "github.com/sprout-otel/sprout/internal/testutil"
)

// newLogStore opens a real log store (WAL on disk, chunks in a filesystem bucket), used through its exported
// query API only.
func newLogStore(t *testing.T) *logstore.Store {
	t.Helper()
	dir := t.TempDir()
	cfg := logstore.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.FlushCheckPeriod = time.Hour
	cfg.CompactionInterval = time.Hour
	s, err := logstore.Open(context.Background(), cfg, newBucket(t, filepath.Join(dir, "bucket")), logstore.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func pushLine(t *testing.T, s *logstore.Store, tenantID, stream, line string) {
	t.Helper()
	lbs, err := logstore.ParseLabels(stream)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Push(context.Background(), tenantID, []logstore.PushStream{{
		Labels: lbs, Entries: []logql.Entry{{Timestamp: time.Now().UnixNano(), Line: line}},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// A log line pushed into the log store makes a LogQL alerting rule fire, and the webhook behind the embedded
// Alertmanager receives it within the route's group_wait.
func TestLogQLAlertFiresAtWebhook(t *testing.T) {
	hook := &webhookRecorder{}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	em := startAlertmanager(t, t.TempDir(), hookSrv.URL)
	logs := newLogStore(t)
	dir := t.TempDir()
	// Loki's layout under rule_path/logql: <tenant>/<file>.
	writeFile(t, filepath.Join(dir, "logql", "team-a", "errors.yaml"), `
groups:
  - name: checkout-errors
    interval: 100ms
    rules:
      - alert: CheckoutErrors
        expr: sum by (service_name) (count_over_time({service_name="checkout"} |= "error" [5m])) > 0
        labels: {severity: page}
        annotations: {summary: "{{ $labels.service_name }} logs errors"}
`)
	r := newRuler(t, ruler.Options{RulePath: dir, Store: newTestStore(t), Logs: logs, Notifier: em.sender})

	// Nothing matches yet: the rule evaluates without firing.
	pushLine(t, logs, "team-a", `{service_name="checkout"}`, "order placed")
	tu.Eventually(t, 10*time.Second, func() error {
		for _, g := range r.Rules("team-a").Groups {
			if g.Lang == ruler.LogQL && !g.GetLastEvaluation().IsZero() {
				return nil
			}
		}
		return fmt.Errorf("the LogQL group has not been evaluated")
	})
	if _, ok := hook.find("firing"); ok {
		t.Fatal("fired before an error line was pushed")
	}

	pushed := time.Now()
	pushLine(t, logs, "team-a", `{service_name="checkout"}`, "payment error: card declined")
	tu.Eventually(t, 15*time.Second, func() error {
		if _, ok := hook.find("firing"); !ok {
			return fmt.Errorf("webhook has not received a firing notification")
		}
		return nil
	})
	m, _ := hook.find("firing")
	if a := m.Alerts[0].Labels; a["alertname"] != "CheckoutErrors" || a["service_name"] != "checkout" || a["severity"] != "page" {
		t.Fatalf("firing notification = %+v", m)
	}
	t.Logf("firing notification %s after the line was pushed (group_wait 300ms, eval interval 100ms)", m.received.Sub(pushed))

	// Prometheus' rules view shows the group as LogQL with its query as written.
	api := httptest.NewServer(routes(r))
	defer api.Close()
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/prometheus/api/v1/rules", nil)
	req.Header.Set(tenant.Header, "team-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	mustContain(t, "the rules view", string(b), `"language":"logql"`, `"state":"firing"`,
		`"query":"sum by (service_name) (count_over_time({service_name=\"checkout\"} |= \"error\" [5m])) > 0"`)
}

// mustContain checks that text (what describes it) contains every want.
func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s does not contain %q:\n%s", what, want, text)
		}
	}
}

// A LogQL recording rule's series lands in the metrics store and is queryable with PromQL.
func TestLogQLRecordingRuleQueryableWithPromQL(t *testing.T) {
	logs := newLogStore(t)
	store := newTestStore(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "logql", "rec.yaml"), `
groups:
  - name: log-rates
    interval: 100ms
    rules:
      - record: service:log_lines:count5m
        expr: sum by (service_name) (count_over_time({service_name=~".+"}[5m]))
        labels: {source: logs}
`)
	pushLine(t, logs, tenant.Default, `{service_name="checkout"}`, "a")
	pushLine(t, logs, tenant.Default, `{service_name="checkout"}`, "b")
	pushLine(t, logs, tenant.Default, `{service_name="cart"}`, "c")
	newRuler(t, ruler.Options{RulePath: dir, Store: store, Logs: logs})
	tu.Eventually(t, 10*time.Second, func() error {
		v, err := store.query(tenant.Default, `service:log_lines:count5m{source="logs", service_name="checkout"}`)
		if err != nil || len(v) != 1 || v[0].F != 2 {
			return fmt.Errorf("recorded series = %v %v, want one sample of 2", v, err)
		}
		return nil
	})
}

// An invalid LogQL expression names the file, the group, the rule and the position in the query; the file's
// other group and the PromQL rules keep running.
func TestInvalidLogQLRuleKeepsOtherGroups(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.yaml"), "groups:\n  - name: prom\n    rules:\n      - record: p:one\n        expr: vector(1)\n")
	bad := filepath.Join(dir, "logql", "mixed.yaml")
	writeFile(t, bad, `groups:
  - name: good
    rules:
      - record: l:count
        expr: count_over_time({app="a"}[1m])
  - name: broken
    rules:
      - record: l:ok
        expr: rate({app="a"}[1m])
      - alert: Broken
        expr: sum(rate({app="a"} |= [1m]))
  - name: logquery
    rules:
      - alert: NotAMetric
        expr: '{app="a"}'
`)
	r := newRuler(t, ruler.Options{RulePath: dir, Store: newTestStore(t), Logs: newLogStore(t)})
	st := r.Rules(tenant.Default)
	var names []string
	for _, g := range st.Groups {
		names = append(names, string(g.Lang)+":"+g.Name())
	}
	if strings.Join(names, ",") != "promql:prom,logql:good" {
		t.Fatalf("running groups = %v, want promql:prom and logql:good", names)
	}
	// file, line:column of the expression, group, rule, and the position in the query
	mustContain(t, "the load errors", fmt.Sprint(st.Errors), bad+": 11:15:", `group "broken", rule 2, "Broken"`,
		"parse error at line 1, col 23", `group "logquery"`, "a metric query is required")
}

// Loki's ruler API: set, get, list, delete LogQL groups; bad LogQL is a 400 naming the problem; an uploaded
// group runs and survives a restart through the bucket; PromQL groups stay apart.
func TestLokiRulerAPI(t *testing.T) {
	store := newTestStore(t)
	logs := newLogStore(t)
	bdir := t.TempDir()
	opts := func() ruler.Options {
		b := newBucket(t, bdir)
		return ruler.Options{Store: store, Logs: logs, Rules: ruler.NewRuleStore(b), LogQLRules: ruler.NewLogQLRuleStore(b)}
	}
	r := newRuler(t, opts())
	srv := httptest.NewServer(routes(r))
	defer srv.Close()
	base := srv.URL + "/loki/api/v1/rules"

	get(t, base, http.StatusNotFound) // Loki: no groups is a 404
	for _, tc := range []struct{ name, body, want string }{
		{"promql", "name: g\nrules:\n  - record: a\n    expr: sum(up)\n", "parse error"},
		{"bad logql", "name: g\nrules:\n  - alert: A\n    expr: rate({app=\"x\"}[5m]) >\n", "parse error at line 1, col"},
		{"not yaml", "name: [", "decode rule group"},
	} {
		if b := do(t, http.MethodPost, base+"/ns", tc.body, http.StatusBadRequest); !strings.Contains(b, tc.want) {
			t.Errorf("%s: 400 body %q does not contain %q", tc.name, b, tc.want)
		}
	}
	do(t, http.MethodPost, base+"/ns", "name: lines\ninterval: 100ms\nrules:\n  - record: app:lines\n    expr: count_over_time({app=\"x\"}[5m])\n", http.StatusAccepted)
	if b := get(t, base, http.StatusOK); !strings.Contains(b, "ns:") || !strings.Contains(b, "record: app:lines") {
		t.Fatalf("list = %s", b)
	}
	if b := get(t, base+"/ns/lines", http.StatusOK); !strings.Contains(b, `count_over_time({app="x"}[5m])`) {
		t.Fatalf("group = %s", b)
	}
	// The Mimir API does not see LogQL groups, nor the other way round.
	if b := get(t, srv.URL+"/prometheus/config/v1/rules", http.StatusOK); strings.Contains(b, "lines") {
		t.Fatalf("Mimir listing shows a LogQL group: %s", b)
	}
	pushLine(t, logs, tenant.Default, `{app="x"}`, "hello")
	tu.Eventually(t, 10*time.Second, func() error {
		v, err := store.query(tenant.Default, "app:lines")
		if err != nil || len(v) != 1 || v[0].F != 1 || v[0].Metric.Get("app") != "x" {
			return fmt.Errorf("app:lines = %v %v", v, err)
		}
		return nil
	})

	r.Stop()
	r2 := newRuler(t, opts())
	if g := r2.Rules(tenant.Default).Groups; len(g) != 1 || g[0].Name() != "lines" || g[0].Lang != ruler.LogQL {
		t.Fatalf("after restart groups = %v", g)
	}
	srv2 := httptest.NewServer(routes(r2))
	defer srv2.Close()
	do(t, http.MethodDelete, srv2.URL+"/loki/api/v1/rules/ns/lines", "", http.StatusAccepted)
	get(t, srv2.URL+"/loki/api/v1/rules/ns", http.StatusNotFound)
	if g := r2.Rules(tenant.Default).Groups; len(g) != 0 {
		t.Fatalf("deleted group still runs: %v", g)
	}
}

// Without a log store, LogQL rules load but every evaluation fails with an error saying why.
func TestLogQLRuleWithoutLogStore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "logql", "a.yaml"), "groups:\n  - name: g\n    interval: 100ms\n    rules:\n      - record: x\n        expr: rate({a=\"b\"}[1m])\n")
	r := newRuler(t, ruler.Options{RulePath: dir, Store: newTestStore(t)})
	tu.Eventually(t, 10*time.Second, func() error {
		for _, g := range r.Rules(tenant.Default).Groups {
			for _, rule := range g.Rules() {
				if err := rule.LastError(); err != nil && strings.Contains(err.Error(), "no log store") {
					return nil
				}
			}
		}
		return fmt.Errorf("no rule reports the missing log store")
	})
}
