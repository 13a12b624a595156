package rulerext

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// lokiRuler is how the Loki of this test differs from the usual one: its ruler is on, its rules kept in a
// filesystem bucket (Loki's "local" rule store is read-only: its API refuses every change) and evaluated
// every second; chunks go to a filesystem object store.
const lokiRuler = `
common:
  storage: null
storage_config:
  use_thanos_objstore: true
  object_store:
    filesystem:
      dir: {{.Dir}}/objects
ruler_storage:
  backend: filesystem
  filesystem:
    dir: {{.Dir}}/rules
ruler:
  enable_api: true
  evaluation_interval: 1s
  poll_interval: 1s
  rule_path: {{.Dir}}/rules-tmp
  ring:
    kvstore:
      store: inmemory
`

// peerLogGroup is the LogQL group both rulers get; Loki's ruler evaluates at most every second.
const peerLogGroup = "name: errors\ninterval: 1s\nrules:\n  - alert: CorpusLogErrors\n    expr: sum by (job) (count_over_time({job=\"corpus\"} |= \"error\" [5m])) > 0\n    labels: {severity: page}\n    annotations: {summary: errors in the corpus job}\n  - record: corpus:log_lines:count5m\n    expr: sum by (job) (count_over_time({job=\"corpus\"}[5m]))\n"

// peerKnownDifferences are the differences of the Loki entries that stay, each with its reason; the test logs
// them instead of failing.
var peerKnownDifferences = map[string]string{}

// startLoki runs Loki (SPROUT_PEER_LOKI, or the test is skipped) with its ruler on, and returns its address.
func startLoki(t *testing.T) string {
	t.Helper()
	return testutil.StartLoki(t, testutil.LokiOptions{Overlay: lokiRuler}).API()
}

// seedLogRules uploads the LogQL group over Loki's ruler API, pushes a matching line and waits for the alert.
func seedLogRules(t *testing.T, base string) {
	t.Helper()
	call(t, "POST", base+"/loki/api/v1/rules/sprout-logs", "", peerLogGroup, http.StatusAccepted)
	push := fmt.Sprintf(`{"streams":[{"stream":{"job":"corpus"},"values":[["%d","disk error"]]}]}`, time.Now().UnixNano())
	resp, err := http.Post(base+"/loki/api/v1/push", "application/json", strings.NewReader(push))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push to %s = %d", base, resp.StatusCode)
	}
	testutil.Eventually(t, 90*time.Second, func() error {
		b := call(t, "GET", base+"/prometheus/api/v1/alerts", "", "", http.StatusOK)
		if !strings.Contains(b, "CorpusLogErrors") || !strings.Contains(b, `"firing"`) {
			return fmt.Errorf("%s: alert not firing yet: %s", base, b)
		}
		return nil
	})
}

// TestPeerLokiRuler replays the corpus' Loki entries (Grafana alerting with a Loki data source: the ruler
// probe, the rules and alerts views, the legacy ruler API it edits through) against Loki (SPROUT_PEER_LOKI, the
// binary built from Loki's source, its ruler on) and against Sprout, on the same rule group and log line, and
// compares status and the shape of each answer: every key Loki answers with, of the same JSON type, non-empty
// where Loki's is.
func TestPeerLokiRuler(t *testing.T) {
	loki := startLoki(t)
	sprout := realStack(t)
	seedLogRules(t, loki)
	seedLogRules(t, sprout)
	for _, e := range testutil.LoadCorpus(t, rulerCorpus) {
		if !strings.HasPrefix(e.Name, "loki: ") {
			continue
		}
		ps, pb := doEntry(t, loki, e)
		ss, sb := doEntry(t, sprout, e)
		var diffs []string
		if ps != ss {
			diffs = append(diffs, fmt.Sprintf("status %d, Loki %d", ss, ps))
		}
		if ps/100 == 2 && ss/100 == 2 {
			diffs = append(diffs, testutil.ShapeDiff(testutil.DecodeBody(sb), testutil.DecodeBody(pb))...)
		} else if strings.TrimSpace(string(pb)) != strings.TrimSpace(string(sb)) {
			t.Logf("%s: error body %q, Loki's %q", e.Name, strings.TrimSpace(string(sb)), strings.TrimSpace(string(pb)))
		}
		if len(diffs) == 0 {
			t.Logf("%s: same status (%d) and shape as Loki", e.Name, ss)
			continue
		}
		if why, ok := peerKnownDifferences[e.Name]; ok {
			t.Logf("%s: known difference (%s): %s", e.Name, why, strings.Join(diffs, "; "))
			continue
		}
		t.Errorf("%s (%s %s): %s\n sprout: %.400s\n loki:   %.400s", e.Name, e.Method, e.Path, strings.Join(diffs, "; "), sb, pb)
	}
}
