package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestBrowser drives the embedded UI in Debian's headless Chromium (through playwright-core) against the real
// binary: the script sends traces, logs and metrics over OTLP/HTTP and walks every page's flow. Screenshots
// are kept under artifacts/browser.
func TestBrowser(t *testing.T) {
	node := testutil.RequireBinary(t, "node")
	chromium := testutil.RequireBinary(t, "chromium")
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("web/node_modules/playwright-core is missing: run npm ci in web/ (.ci/run does)")
		}
		t.Skip("web/node_modules is not installed; run npm ci in web/")
	}
	env, api := defaultEnv(t)
	// Rules in every state the alerts page shows, PromQL and LogQL (testdata/ui-rules/README).
	env = append(env, "SPROUT_RULES="+filepath.Join(root, "tests", "e2e", "testdata", "ui-rules"))
	var otlpHTTP string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "SPROUT_OTLP_HTTP_ENDPOINT="); ok {
			otlpHTTP = "http://" + v
		}
	}
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)
	// Plain `sprout` tells the person who started it where the UI is (the logs are JSON for machines).
	wantUI := "Sprout UI: http://localhost:" + api[strings.LastIndex(api, ":")+1:] + "/ui/"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs.String(), wantUI) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(p.logs.String(), wantUI) {
		t.Errorf("the output does not print %q:\n%s", wantUI, tail(p.logs.String(), 2000))
	}

	artifacts := os.Getenv("SPROUT_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(root, "artifacts", "browser")
	}
	cmd := exec.Command(node, filepath.Join(root, "tests", "browser", "run.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SPROUT_URL="+api, "OTLP_URL="+otlpHTTP, "CHROMIUM="+chromium, "ARTIFACTS="+artifacts, "WAIT_SECONDS=120")
	out, err := cmd.CombinedOutput()
	t.Logf("browser test output:\n%s", tail(string(out), 6000))
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}
