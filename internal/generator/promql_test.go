package generator

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"github.com/prometheus/prometheus/tsdb"
)

// TestServiceGraphPromQL stores the generator's output in a Prometheus TSDB through Prometheus' own OTLP
// translation, as the metrics store does, and asks the query Grafana's service graph builds on.
func TestServiceGraphPromQL(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	g := mustNew(t, testConfig())
	ctx := context.Background()
	trace := byte(1)
	for step := 0; step <= 4; step++ {
		now := t0.Add(time.Duration(step) * 15 * time.Second)
		for range 3 {
			if err := g.Consume(tenantA, now, shopTrace(trace)); err != nil {
				t.Fatal(err)
			}
			trace++
		}
		if err := g.Tick(now); err != nil {
			t.Fatal(err)
		}
		for _, tm := range g.Collect(now) {
			app := db.AppenderV2(ctx)
			c := prometheusremotewrite.NewPrometheusConverter(app)
			if _, err := c.FromMetrics(ctx, tm.Metrics, prometheusremotewrite.Settings{AddMetricSuffixes: true}); err != nil {
				t.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	q, err := engine.NewInstantQuery(ctx, db, nil,
		`sum by (client, server) (rate(traces_service_graph_request_total[1m]))`, t0.Add(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	res := q.Exec(ctx)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	var edges []string
	for _, s := range vec {
		edge := s.Metric.Get("client") + "->" + s.Metric.Get("server")
		edges = append(edges, edge)
		if edge == "frontend->backend" && (s.F < 0.15 || s.F > 0.25) {
			t.Errorf("rate of frontend->backend = %v/s, want about 0.2/s (3 requests per 15 s)", s.F)
		}
	}
	sort.Strings(edges)
	want := []string{"backend->orders", "backend->worker", "frontend->backend", "frontend->payments", "user->frontend"}
	if len(edges) != len(want) {
		t.Fatalf("edges = %v, want %v", edges, want)
	}
	for i := range want {
		if edges[i] != want[i] {
			t.Fatalf("edges = %v, want %v", edges, want)
		}
	}
}
