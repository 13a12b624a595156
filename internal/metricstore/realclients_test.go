package metricstore

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestPrometheusRemoteWritesIntoSprout runs the real Prometheus 2.42: it scrapes itself and remote-writes to
// Sprout; the series must arrive with values, and promtool must read them back through Sprout's API.
func TestPrometheusRemoteWritesIntoSprout(t *testing.T) {
	promBin := testutil.RequireBinary(t, "prometheus")
	promtool := testutil.RequireBinary(t, "promtool")
	_, srv := openTestStore(t, testConfig(t))

	testutil.StartPrometheus(t, testutil.PrometheusOptions{Bin: promBin, Config: fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["{{.Addr "http"}}"]}]
remote_write:
  - url: %s/api/v1/write
    queue_config: {batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}
`, srv.URL)})

	testutil.Eventually(t, 30*time.Second, func() error {
		got := instant(t, srv.URL, `up{job="prometheus"}`, time.Now())
		for k, v := range got {
			if strings.Contains(k, "instance:127.0.0.1") && v == "1" {
				return nil
			}
		}
		return fmt.Errorf("up from Prometheus not yet in Sprout: %v", got)
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		got := instant(t, srv.URL, `prometheus_build_info`, time.Now())
		for k, v := range got {
			if strings.Contains(k, "version:2.42.0") && v == "1" {
				return nil
			}
		}
		return fmt.Errorf("prometheus_build_info not yet in Sprout: %v", got)
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"instant", []string{"query", "instant", srv.URL, `up{job="prometheus"}`}, `up{instance="127.0.0.1:`},
		{"instant via Mimir prefix", []string{"query", "instant", srv.URL + "/prometheus", `count(prometheus_build_info)`}, `=> 1 @`},
		{"range", []string{"query", "range", "--start=" + time.Now().Add(-time.Minute).Format(time.RFC3339),
			"--end=" + time.Now().Add(time.Minute).Format(time.RFC3339), "--step=5s", srv.URL, `max(up)`}, "1 @["},
		{"labels", []string{"query", "labels", srv.URL, "job"}, "prometheus"},
		{"series", []string{"query", "series", "--match=up", srv.URL}, `job="prometheus"`},
	} {
		t.Run("promtool "+tc.name, func(t *testing.T) {
			out, err := exec.Command(promtool, tc.args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("promtool %v: %v\n%s\nwant output containing %q", tc.args, err, out, tc.want)
			}
		})
	}
	out, err := exec.Command(promtool, "query", "instant", srv.URL, `sum(rate(x[5m])`).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad_data") {
		t.Errorf("promtool with bad PromQL: %v %s, want a bad_data error", err, out)
	}
}
