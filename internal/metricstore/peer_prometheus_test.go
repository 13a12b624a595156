package metricstore

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// peerPrometheusDifferences are the corpus entries whose answers differ from Prometheus' for a reason that
// stays; the test logs them instead of failing.
var peerPrometheusDifferences = map[string]string{
	"prometheus: buildinfo (config editor version detection)": "Sprout's build stamps no buildUser or buildDate (Grafana only displays them)",
	"metrics drilldown: buildinfo (plugin info)":              "Sprout's build stamps no buildUser or buildDate (Grafana only displays them)",
}

// TestPeerPrometheusCorpus writes the corpus' data over remote write 1.0 into Prometheus
// (SPROUT_PEER_PROMETHEUS, a prometheus binary with its remote write receiver and exemplar storage on) and into
// Sprout, replays every entry of testdata/grafana-corpus.json against both and compares status and shape: every
// key Prometheus answers with, of the same JSON type, non-empty where Prometheus' is.
func TestPeerPrometheusCorpus(t *testing.T) {
	peer := testutil.StartPrometheus(t, testutil.PrometheusOptions{}).API()
	_, srv := openTestStore(t, testConfig(t))
	now := time.Now().Truncate(time.Second)
	seedCorpusV1(t, peer, now)
	seedCorpusV1(t, srv.URL, now)
	vars := corpusVars(now)
	do := func(base string, e testutil.CorpusEntry) (int, []byte) {
		req, err := e.Request(base, vars)
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
	for _, e := range testutil.LoadCorpus(t, "testdata/grafana-corpus.json") {
		ps, pb := do(peer, e)
		ss, sb := do(srv.URL, e)
		var diffs []string
		if ps != ss {
			diffs = append(diffs, fmt.Sprintf("status %d, Prometheus %d", ss, ps))
		}
		diffs = append(diffs, testutil.ShapeDiff(testutil.DecodeBody(sb), testutil.DecodeBody(pb))...)
		if len(diffs) == 0 {
			t.Logf("%s: same status (%d) and shape as Prometheus", e.Name, ss)
			continue
		}
		if why, ok := peerPrometheusDifferences[e.Name]; ok {
			t.Logf("%s: known difference (%s): %s", e.Name, why, strings.Join(diffs, "; "))
			continue
		}
		t.Errorf("%s (%s %s): %s\n sprout:     %.400s\n prometheus: %.400s", e.Name, e.Method, e.Path, strings.Join(diffs, "; "), sb, pb)
	}
}
