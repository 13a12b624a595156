package rulerext

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// lokiRulerConfig runs Loki as one process with its ruler on, its rules kept in a filesystem bucket (Loki's
// "local" rule store is read-only: its API refuses every change) and evaluated every second.
const lokiRulerConfig = `auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %[2]d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %[3]d
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: %[1]s
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
storage_config:
  use_thanos_objstore: true
  object_store:
    filesystem:
      dir: %[1]s/objects
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index: {prefix: index_, period: 24h}
ruler_storage:
  backend: filesystem
  filesystem:
    dir: %[1]s/rules
ruler:
  enable_api: true
  evaluation_interval: 1s
  poll_interval: 1s
  rule_path: %[1]s/rules-tmp
  ring:
    kvstore:
      store: inmemory
limits_config:
  reject_old_samples: false
  allow_structured_metadata: true
query_range:
  cache_results: false
pattern_ingester:
  enabled: false
analytics:
  reporting_enabled: false
memberlist:
  bind_port: %[4]d
`

// peerLogGroup is the LogQL group both rulers get; Loki's ruler evaluates at most every second.
const peerLogGroup = "name: errors\ninterval: 1s\nrules:\n  - alert: CorpusLogErrors\n    expr: sum by (job) (count_over_time({job=\"corpus\"} |= \"error\" [5m])) > 0\n    labels: {severity: page}\n    annotations: {summary: errors in the corpus job}\n  - record: corpus:log_lines:count5m\n    expr: sum by (job) (count_over_time({job=\"corpus\"}[5m]))\n"

// peerKnownDifferences are the differences of the Loki entries that stay, each with its reason; the test logs
// them instead of failing.
var peerKnownDifferences = map[string]string{}

func startLoki(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	port := testutil.FreePort(t)
	cfg := filepath.Join(dir, "loki.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(lokiRulerConfig, dir, port, testutil.FreePort(t), testutil.FreePort(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-config.file="+cfg, "-target=all")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("loki output (tail):\n%s", lastBytes(out.String(), 3000))
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testutil.Eventually(t, 180*time.Second, func() error {
		resp, err := http.Get(base + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("ready: %d", resp.StatusCode)
		}
		return nil
	})
	return base
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
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
	bin := os.Getenv("SPROUT_PEER_LOKI")
	if bin == "" {
		t.Skip("SPROUT_PEER_LOKI (path of a Loki binary) is not set")
	}
	loki := startLoki(t, bin)
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
