package rulerext

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConfigAPIsRefuseBrowserForms: a web page can POST text/plain or a form to any address without a
// preflight; the rule, Alertmanager configuration and v2 APIs must not store what such a POST carries (415),
// and a page on another origin is refused whatever it sends (403). What the tools send still works: mimirtool,
// lokitool and Grafana's ruler proxy send no Content-Type, amtool sends JSON, scripts send YAML.
func TestConfigAPIsRefuseBrowserForms(t *testing.T) {
	base := stack(t, false, nil)
	host := strings.TrimPrefix(base, "http://")
	group := func(name string) string {
		return fmt.Sprintf("name: %s\nrules:\n  - record: r_%s\n    expr: vector(1)\n", name, name)
	}
	amConfig := "alertmanager_config: |\n  route: {receiver: r}\n  receivers: [{name: r}]\n"
	silence := fmt.Sprintf(`{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"t","comment":"c"}`,
		time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	for _, tc := range []struct {
		name, path, ctype, origin, body string
		want                            int
	}{
		{"rule group as text/plain", "/api/v1/rules/csrf", "text/plain", "", group("plain"), http.StatusUnsupportedMediaType},
		{"rule group as a form", "/api/v1/rules/csrf", "application/x-www-form-urlencoded", "", group("form"), http.StatusUnsupportedMediaType},
		{"rule group as multipart", "/prometheus/config/v1/rules/csrf", "multipart/form-data; boundary=x", "", group("multi"), http.StatusUnsupportedMediaType},
		{"LogQL rule group as text/plain", "/loki/api/v1/rules/csrf", "text/plain;charset=UTF-8", "", "name: l\nrules:\n  - alert: L\n    expr: count_over_time({a=\"b\"}[1m]) > 0\n", http.StatusUnsupportedMediaType},
		{"same-origin page, text/plain", "/api/v1/rules/csrf", "text/plain", "http://" + host, group("same"), http.StatusUnsupportedMediaType},
		{"foreign page without Content-Type", "/api/v1/rules/csrf", "", "http://evil.example", group("blob"), http.StatusForbidden},
		{"foreign page with YAML", "/api/v1/rules/csrf", "application/yaml", "http://evil.example", group("evil"), http.StatusForbidden},
		{"Alertmanager config as text/plain", "/api/v1/alerts", "text/plain", "", amConfig, http.StatusUnsupportedMediaType},
		{"silence as text/plain", "/alertmanager/api/v2/silences", "text/plain", "", silence, http.StatusUnsupportedMediaType},
		{"silence from a foreign page", "/alertmanager/api/v2/silences", "application/json", "http://evil.example", silence, http.StatusForbidden},

		{"mimirtool: no Content-Type", "/api/v1/rules/tools", "", "", group("mimirtool"), http.StatusAccepted},
		{"YAML", "/prometheus/config/v1/rules/tools", "application/yaml", "", group("yaml"), http.StatusAccepted},
		{"YAML with charset", "/api/v1/rules/tools", "text/yaml; charset=utf-8", "", group("textyaml"), http.StatusAccepted},
		{"JSON rule group (Grafana's UI form)", "/api/v1/rules/tools", "application/json", "", `{"name":"json","rules":[{"record":"r_json","expr":"vector(1)"}]}`, http.StatusAccepted},
		{"same-origin page, YAML", "/api/v1/rules/tools", "application/x-yaml", "http://" + host, group("sameorigin"), http.StatusAccepted},
		{"lokitool: no Content-Type", "/loki/api/v1/rules/tools", "", "", "name: l\nrules:\n  - alert: L\n    expr: count_over_time({a=\"b\"}[1m]) > 0\n", http.StatusAccepted},
		{"Alertmanager config as YAML", "/api/v1/alerts", "application/yaml", "", amConfig, http.StatusCreated},
		{"amtool: silence as JSON", "/alertmanager/api/v2/silences", "application/json", "", silence, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", base+tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tc.want)
			}
			if tc.want == http.StatusUnsupportedMediaType && !strings.Contains(string(b), "application/yaml") && !strings.Contains(string(b), "application/json") {
				t.Errorf("415 does not say what to send: %s", b)
			}
		})
	}
	// Nothing refused was stored.
	call(t, "GET", base+"/api/v1/rules/csrf", "", "", http.StatusNotFound)
	call(t, "GET", base+"/loki/api/v1/rules/csrf", "", "", http.StatusNotFound)
	if b := call(t, "GET", base+"/alertmanager/api/v2/silences", "", "", http.StatusOK); strings.Count(b, `"comment":"c"`) != 1 {
		t.Errorf("silences = %s, want exactly the one sent as JSON", b)
	}
}

// TestReceiversFirewallIsOnByDefault: with the default configuration a tenant cannot point a webhook at
// Sprout's own loopback (400 naming the URL); a public address is taken.
func TestReceiversFirewallIsOnByDefault(t *testing.T) {
	base := stack(t, false, nil)
	hook := func(u string) string {
		return "alertmanager_config: |\n  route: {receiver: r}\n  receivers:\n    - name: r\n      webhook_configs: [{url: '" + u + "'}]\n"
	}
	b := call(t, "POST", base+"/api/v1/alerts", "", hook("http://127.0.0.1:19999/internal-only"), http.StatusBadRequest)
	if !strings.Contains(b, "http://127.0.0.1:19999/internal-only") || !strings.Contains(b, "receivers_firewall_allow_cidr_networks") {
		t.Errorf("400 body %q", b)
	}
	call(t, "POST", base+"/api/v1/alerts", "", hook("http://169.254.169.254/latest/meta-data/"), http.StatusBadRequest)
	call(t, "POST", base+"/api/v1/alerts", "", hook("https://203.0.113.7/hook"), http.StatusCreated)
}
