package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// browserOverlay lists one origin in sprout_api's CORS, as an operator who runs Grafana in browser mode would.
const browserOverlay = `extensions:
  sprout_api:
    cors:
      allowed_origins: [https://grafana.example]
`

// TestHostileBrowser runs the all-in-one config and plays a web page on another origin against it: it must not
// read query answers (no CORS grant), open the tail WebSocket (403), store rules or Alertmanager configurations
// with a simple POST (415, or 403 from a foreign origin), nor make Sprout deliver a webhook to a loopback
// listener (400 at upload, nothing received). The legitimate forms keep working: the listed origin gets its
// CORS grant, the same origin and clients without Origin tail, YAML and JSON bodies are stored.
func TestHostileBrowser(t *testing.T) {
	env, api := defaultEnv(t)
	dir := t.TempDir()
	overlay := filepath.Join(dir, "browser.yaml")
	if err := os.WriteFile(overlay, []byte(browserOverlay), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSprout(t, env, "--config", "sprout:all-in-one", "--config", overlay)
	p.waitHTTP(api+"/ready", 60*time.Second)
	host := strings.TrimPrefix(api, "http://")
	const evil = "http://evil.example"

	do := func(method, path, ctype, origin, body string, extra ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			req.Header.Set(extra[i], extra[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	checks, passed := 0, 0
	expect := func(what string, ok bool, detail string) {
		t.Helper()
		checks++
		if ok {
			passed++
		} else {
			t.Errorf("%s: %s", what, detail)
		}
	}

	// CORS: no grant for a foreign origin, on any store's API nor on a preflight for remote write.
	for _, path := range []string{"/api/v1/query?query=1", "/prometheus/api/v1/labels", "/loki/api/v1/labels", "/api/search/tags", "/ready"} {
		resp, _ := do("GET", path, "", evil, "")
		expect("foreign origin GET "+path, resp.Header.Get("Access-Control-Allow-Origin") == "" && resp.Header.Get("Access-Control-Allow-Methods") == "",
			fmt.Sprintf("CORS headers %v", corsHeaders(resp.Header)))
		resp, _ = do("GET", path, "", "https://grafana.example", "")
		expect("listed origin GET "+path, resp.Header.Get("Access-Control-Allow-Origin") == "https://grafana.example",
			fmt.Sprintf("CORS headers %v", corsHeaders(resp.Header)))
	}
	resp, _ := do("OPTIONS", "/api/v1/write", "", evil, "", "Access-Control-Request-Method", "POST")
	expect("foreign preflight for remote write", resp.Header.Get("Access-Control-Allow-Origin") == "", fmt.Sprintf("%d %v", resp.StatusCode, corsHeaders(resp.Header)))
	resp, _ = do("OPTIONS", "/api/v1/write", "", "https://grafana.example", "", "Access-Control-Request-Method", "POST")
	expect("listed preflight", resp.Header.Get("Access-Control-Allow-Origin") == "https://grafana.example", fmt.Sprintf("%d %v", resp.StatusCode, corsHeaders(resp.Header)))

	// The tail WebSocket: a line with a secret is pushed, then each origin tries to read it.
	if resp, b := do("POST", "/loki/api/v1/push", "application/json", "", fmt.Sprintf(`{"streams":[{"stream":{"job":"browser"},"values":[["%d","secret-token=hunter2"]]}]}`, time.Now().UnixNano())); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", resp.StatusCode, b)
	}
	tailURL := "ws://" + host + "/loki/api/v1/tail?" + url.Values{"query": {`{job="browser"}`}, "start": {fmt.Sprint(time.Now().Add(-time.Hour).UnixNano())}}.Encode()
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{evil, http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"", http.StatusSwitchingProtocols},
		{"http://" + host, http.StatusSwitchingProtocols},
		{"https://grafana.example", http.StatusSwitchingProtocols},
	} {
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(tailURL, hdr)
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		got := ""
		if conn != nil {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, _ := conn.ReadMessage()
			got = string(msg)
			conn.Close()
		}
		ok := code == tc.want && (tc.want != http.StatusSwitchingProtocols) == !strings.Contains(got, "hunter2")
		expect(fmt.Sprintf("tail with Origin %q", tc.origin), ok, fmt.Sprintf("status %d (%v), first frame %q, want %d", code, err, firstLine(got), tc.want))
	}

	// Simple POSTs cannot store rules or Alertmanager configurations; what the tools send is stored.
	group := func(name string) string {
		return fmt.Sprintf("name: %s\nrules:\n  - record: r_%s\n    expr: vector(1)\n", name, name)
	}
	logGroup := "name: l\nrules:\n  - alert: L\n    expr: count_over_time({job=\"browser\"}[1m]) > 0\n"
	silence := fmt.Sprintf(`{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"e2e","comment":"browser"}`,
		time.Now().UTC().Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	for _, tc := range []struct {
		name, path, ctype, origin, body string
		want                            int
	}{
		{"rule group as text/plain", "/api/v1/rules/csrf", "text/plain", "", group("a"), http.StatusUnsupportedMediaType},
		{"rule group as a form", "/prometheus/config/v1/rules/csrf", "application/x-www-form-urlencoded", "", group("b"), http.StatusUnsupportedMediaType},
		{"rule group from a foreign page", "/api/v1/rules/csrf", "text/plain", evil, group("c"), http.StatusForbidden},
		{"rule group from a foreign page, no Content-Type", "/api/v1/rules/csrf", "", evil, group("d"), http.StatusForbidden},
		{"Loki rule group as text/plain", "/loki/api/v1/rules/csrf", "text/plain", "", logGroup, http.StatusUnsupportedMediaType},
		{"Alertmanager config as text/plain", "/api/v1/alerts", "text/plain", "", "alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\n", http.StatusUnsupportedMediaType},
		{"silence as text/plain", "/alertmanager/api/v2/silences", "text/plain", "", silence, http.StatusUnsupportedMediaType},
		{"silence from a foreign page", "/alertmanager/api/v2/silences", "application/json", evil, silence, http.StatusForbidden},
		{"rule group as YAML", "/api/v1/rules/tools", "application/yaml", "", group("yaml"), http.StatusAccepted},
		{"rule group without Content-Type (mimirtool)", "/prometheus/config/v1/rules/tools", "", "", group("mimirtool"), http.StatusAccepted},
		{"rule group from the listed origin", "/api/v1/rules/tools", "application/yaml", "https://grafana.example", group("grafana"), http.StatusAccepted},
		{"Loki rule group without Content-Type (lokitool)", "/loki/api/v1/rules/tools", "", "", logGroup, http.StatusAccepted},
		{"Alertmanager config as YAML", "/api/v1/alerts", "application/yaml", "", "alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\n", http.StatusCreated},
		{"silence as JSON (amtool)", "/alertmanager/api/v2/silences", "application/json", "", silence, http.StatusOK},
	} {
		resp, b := do("POST", tc.path, tc.ctype, tc.origin, tc.body)
		expect(tc.name, resp.StatusCode == tc.want, fmt.Sprintf("%d %s, want %d", resp.StatusCode, firstLine(b), tc.want))
	}
	resp, b := do("GET", "/api/v1/rules/csrf", "", "", "")
	expect("nothing refused was stored", resp.StatusCode == http.StatusNotFound, fmt.Sprintf("%d %s", resp.StatusCode, firstLine(b)))

	// SSRF: a webhook to a loopback listener is refused at upload, and an alert delivers nothing there.
	var hits atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer hook.Close()
	amConfig := fmt.Sprintf("alertmanager_config: |\n  route: {receiver: hook, group_wait: 100ms}\n  receivers:\n    - name: hook\n      webhook_configs: [{url: '%s/internal-only'}]\n", hook.URL)
	resp, b = do("POST", "/api/v1/alerts", "application/yaml", "", amConfig)
	expect("webhook to loopback at upload", resp.StatusCode == http.StatusBadRequest && strings.Contains(b, hook.URL+"/internal-only") && strings.Contains(b, "receivers_firewall"),
		fmt.Sprintf("%d %s", resp.StatusCode, firstLine(b)))
	for _, metadata := range []string{"http://169.254.169.254/latest/meta-data/", "http://[::1]:9/", "http://localhost:9/"} {
		resp, b = do("POST", "/api/v1/alerts", "application/yaml", "", strings.Replace(amConfig, hook.URL+"/internal-only", metadata, 1))
		expect("webhook to "+metadata, resp.StatusCode == http.StatusBadRequest, fmt.Sprintf("%d %s", resp.StatusCode, firstLine(b)))
	}
	resp, b = do("POST", "/alertmanager/api/v2/alerts", "application/json", "", `[{"labels":{"alertname":"BrowserProbe"}}]`)
	expect("alert posted", resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, firstLine(b)))
	// The alert is shown (so it was routed) while the listener stays silent.
	err := poll(10*time.Second, func() error {
		_, b := do("GET", "/alertmanager/api/v2/alerts/groups", "", "", "")
		if !strings.Contains(b, "BrowserProbe") {
			return fmt.Errorf("alert not grouped yet: %s", firstLine(b))
		}
		return nil
	})
	expect("alert routed", err == nil, fmt.Sprint(err))
	expect("loopback listener received nothing", hits.Load() == 0, fmt.Sprintf("%d requests", hits.Load()))

	// pprof on every interface without an authenticator is refused before anything listens.
	pprofCfg := filepath.Join(dir, "pprof.yaml")
	if err := os.WriteFile(pprofCfg, []byte(fmt.Sprintf("extensions:\n  pprof:\n    endpoint: 0.0.0.0:%d\nservice:\n  extensions: [health_check, sprout_api, sprout_traces, sprout_metrics, sprout_logs, sprout_ruler, sprout_ui, pprof]\n", testutil.FreePort(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sproutBinary(t), "validate", "--config", "sprout:all-in-one", "--config", pprofCfg).CombinedOutput()
	expect("pprof on 0.0.0.0 without auth", err != nil && strings.Contains(string(out), "set auth.authenticator"), fmt.Sprintf("%v: %s", err, tail(string(out), 400)))

	t.Logf("FIGURE browser walls: %d of %d checks passed", passed, checks)
}

func corsHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = h.Get(k)
		}
	}
	return out
}
