package metricdb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestPeerPrometheusReadsSnapshot is the side-by-side test: Prometheus 3 (SPROUT_PEER_PROMETHEUS, skipped when
// unset or a 2.x) is started on a snapshot of the DB, blocks and head, and answers a set of range queries as
// PromQL over the DB itself does.
func TestPeerPrometheusReadsSnapshot(t *testing.T) {
	if os.Getenv(testutil.EnvPrometheus) == "" {
		t.Skipf("%s is not set", testutil.EnvPrometheus) // before building the data the peer would read
	}
	f := newFixture(t, testOptions(), 30)
	f.appendUntil(t, t0+40*60000)
	f.compact(t)
	snap := filepath.Join(t.TempDir(), "snapshot")
	if err := f.db.Snapshot(snap, true); err != nil {
		t.Fatal(err)
	}
	peer := testutil.StartPeer(t, testutil.PeerSpec{
		Name:       "prometheus",
		Env:        testutil.EnvPrometheus,
		Ports:      []string{"http"},
		ConfigFile: "prometheus.yml",
		Config:     "global:\n  scrape_interval: 1h\n",
		Args: []string{"--config.file={{.Config}}", "--storage.tsdb.path=" + snap,
			`--web.listen-address={{.Addr "http"}}`, "--storage.tsdb.retention.time=100y"},
		Ready:   `{{.URL "http"}}/-/ready`,
		Timeout: time.Minute,
	}).URL("http")

	if v := peerVersion(t, peer); strings.HasPrefix(v, "2.") {
		t.Skipf("Prometheus %s: range and lookback windows are left-open since 3.0, as Sprout's engine has them; "+
			"give SPROUT_PEER_PROMETHEUS a Prometheus 3 build", v)
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	queryable := storage.QueryableFunc(f.db.Querier)
	start, end, step := time.UnixMilli(f.mint), time.UnixMilli(f.maxt), 30*time.Second
	for _, q := range []string{
		`metric_3`,
		`sum by (job) (rate(metric_1[2m]))`,
		`count_over_time({__name__=~".+"}[5m])`,
		`max_over_time(metric_0{zone="a"}[3m])`,
		`count by (instance) (metric_2 > 100)`,
	} {
		want := peerRange(t, peer, q, start, end, step)
		qry, err := eng.NewRangeQuery(context.Background(), queryable, nil, q, start, end, step)
		if err != nil {
			t.Fatal(err)
		}
		res := qry.Exec(context.Background())
		if res.Err != nil {
			t.Fatalf("%s: %v", q, res.Err)
		}
		m, err := res.Matrix()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]string{}
		for _, s := range m {
			var pts []string
			for _, p := range s.Floats {
				pts = append(pts, fmt.Sprintf("%d=%s", p.T, strconv.FormatFloat(p.F, 'f', -1, 64)))
			}
			got[s.Metric.String()] = pts
		}
		qry.Close()
		if len(got) != len(want) {
			t.Fatalf("%s: %d series, Prometheus %d", q, len(got), len(want))
		}
		for k, w := range want {
			g := got[k]
			if fmt.Sprint(g) != fmt.Sprint(w) {
				t.Fatalf("%s: %s is\n%v\nPrometheus\n%v", q, k, g, w)
			}
		}
		t.Logf("%s: %d series agree", q, len(want))
	}
}

// peerRange runs a range query on Prometheus and returns its series by their labels' string, each as t=value.
func peerRange(t *testing.T, base, q string, start, end time.Time, step time.Duration) map[string][]string {
	t.Helper()
	v := url.Values{"query": {q}, "start": {strconv.FormatInt(start.UnixMilli(), 10) + "e-3"},
		"end": {strconv.FormatInt(end.UnixMilli(), 10) + "e-3"}, "step": {step.String()}}
	resp, err := http.PostForm(base+"/api/v1/query_range", v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Prometheus: %s: %d %s", q, resp.StatusCode, body)
	}
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, s := range r.Data.Result {
		var pts []string
		for _, p := range s.Values {
			ts := int64(p[0].(float64)*1000 + 0.5)
			pts = append(pts, fmt.Sprintf("%d=%s", ts, p[1].(string)))
		}
		out[labelsString(s.Metric)] = pts
	}
	return out
}

func labelsString(m map[string]string) string { return labels.FromMap(m).String() }

// peerVersion is the version Prometheus reports; builds from the module report none.
func peerVersion(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/status/buildinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Version string `json:"version"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.Data.Version
}
