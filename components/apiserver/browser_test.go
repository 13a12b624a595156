package apiserver

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
)

func withCORS(origins ...string) func(*Config) {
	return func(c *Config) { c.CORS = configoptional.Some(confighttp.CORSConfig{AllowedOrigins: origins}) }
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("x: 1\n"))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestCORS: without cors.allowed_origins no response carries CORS headers, so no page on another origin can
// read an answer; with it, exactly the listed origins (wildcards as the Collector's CORS handler) can.
func TestCORS(t *testing.T) {
	for _, tc := range []struct {
		name, origin string
		mutate       func(*Config)
		want         string // Access-Control-Allow-Origin
	}{
		{"no CORS, foreign origin", "http://evil.example", nil, ""},
		{"listed origin", "https://grafana.example", withCORS("https://grafana.example"), "https://grafana.example"},
		{"wildcard origin", "https://a.grafana.example", withCORS("https://*.grafana.example"), "https://a.grafana.example"},
		{"unlisted origin", "http://evil.example", withCORS("https://grafana.example"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.mutate)
			s.HandleFunc("GET /api/echo", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "echo") })
			resp, _ := do(t, "GET", "http://"+s.Addr()+"/api/echo", map[string]string{"Origin": tc.origin})
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("GET: Access-Control-Allow-Origin %q, want %q", got, tc.want)
			}
			resp, _ = do(t, "OPTIONS", "http://"+s.Addr()+"/api/echo", map[string]string{"Origin": tc.origin, "Access-Control-Request-Method": "POST"})
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("preflight: Access-Control-Allow-Origin %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOriginAllowed(t *testing.T) {
	plain := start(t, nil)
	listed := start(t, withCORS("https://grafana.example", "https://*.corp.example"))
	for _, tc := range []struct {
		name   string
		s      *Server
		origin string
		host   string
		want   bool
	}{
		{"no origin", plain, "", "sprout:3200", true},
		{"same origin", plain, "http://sprout:3200", "sprout:3200", true},
		{"same origin, other case", plain, "http://SPROUT:3200", "sprout:3200", true},
		{"same host, other port", plain, "http://sprout:8080", "sprout:3200", false},
		{"foreign", plain, "http://evil.example", "sprout:3200", false},
		{"opaque", plain, "null", "sprout:3200", false},
		{"garbage", plain, "::not a url", "sprout:3200", false},
		{"listed", listed, "https://grafana.example", "sprout:3200", true},
		{"listed by wildcard", listed, "https://team.corp.example", "sprout:3200", true},
		{"not listed", listed, "https://evil.example", "sprout:3200", false},
	} {
		r, _ := http.NewRequest("GET", "http://"+tc.host+"/", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := tc.s.OriginAllowed(r); got != tc.want {
			t.Errorf("%s: OriginAllowed(Origin %q, Host %q) = %v, want %v", tc.name, tc.origin, tc.host, got, tc.want)
		}
	}
}

func TestContentTypeRefusal(t *testing.T) {
	for _, tc := range []struct {
		ct            string
		originAllowed bool
		want          string // part of the refusal; "" = taken
	}{
		{"application/yaml", true, ""},
		{"application/yaml", false, ""}, // not a simple type: a browser sends it only after a CORS preflight
		{"text/yaml; charset=utf-8", true, ""},
		{"APPLICATION/JSON", true, ""},
		{"", true, ""}, // mimirtool, lokitool, cortextool, Grafana's ruler proxy
		{"", false, "Content-Type is required on a cross-origin request"},
		{"text/plain", true, `"text/plain" is not accepted`},
		{"text/plain;charset=UTF-8", true, `"text/plain" is not accepted`},
		{"application/x-www-form-urlencoded", true, "not accepted"},
		{"multipart/form-data; boundary=x", true, "not accepted"},
		{"application/yaml; =", true, "cannot be parsed"},
	} {
		got := contentTypeRefusal(tc.ct, YAMLTypes, tc.originAllowed)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("contentTypeRefusal(%q, originAllowed=%v) = %q, want %q", tc.ct, tc.originAllowed, got, tc.want)
		}
		if got != "" && !strings.Contains(got, "application/yaml") {
			t.Errorf("refusal %q does not say what to send", got)
		}
	}
}

// TestCrossOriginWall: a browser on another origin cannot make any state-changing request (403), whatever its
// content type; reads, non-browser clients, the same origin and listed origins pass.
func TestCrossOriginWall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		method string
		hdr    map[string]string
		want   int
	}{
		{"curl POST", nil, "POST", nil, 200},
		{"foreign POST", nil, "POST", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign POST, Origin only", nil, "POST", map[string]string{"Origin": "http://evil.example"}, 403},
		{"foreign POST, Sec-Fetch-Site only", nil, "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign DELETE", nil, "DELETE", map[string]string{"Origin": "http://evil.example"}, 403},
		{"same-site subdomain POST", nil, "POST", map[string]string{"Origin": "http://ui.example", "Sec-Fetch-Site": "same-site"}, 403},
		{"foreign GET", nil, "GET", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 200},
		{"same-origin POST", nil, "POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"listed origin POST", withCORS("https://grafana.example"), "POST", map[string]string{"Origin": "https://grafana.example", "Sec-Fetch-Site": "cross-site"}, 200},
		{"unlisted origin POST with CORS on", withCORS("https://grafana.example"), "POST", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.mutate)
			s.HandleFunc("/api/change", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "changed") })
			resp, body := do(t, tc.method, "http://"+s.Addr()+"/api/change", tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %q, want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want == 403 && (!strings.Contains(body, "cors.allowed_origins") || strings.Contains(body, "changed")) {
				t.Errorf("refusal body %q", body)
			}
			_, metrics := get(t, "http://"+s.Addr()+"/metrics", nil)
			if counted := strings.Contains(metrics, `sprout_http_browser_refusals_total{reason="cross_origin"} 1`); counted != (tc.want == 403) {
				t.Errorf("refusal counted: %v, want %v", counted, tc.want == 403)
			}
		})
	}
}

// TestRequireContentType checks the wrapper on a live route: only state-changing methods are checked.
func TestRequireContentType(t *testing.T) {
	s := start(t, nil)
	s.Handle("/api/config", s.RequireContentType(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "stored") }), YAMLTypes...))
	for _, tc := range []struct {
		method, ct string
		want       int
	}{
		{"POST", "text/plain", 415},
		{"PUT", "application/x-www-form-urlencoded", 415},
		{"POST", "application/yaml", 200},
		{"POST", "", 200},
		{"GET", "text/plain", 200},
		{"DELETE", "", 200},
	} {
		hdr := map[string]string{}
		if tc.ct != "" {
			hdr["Content-Type"] = tc.ct
		}
		resp, body := do(t, tc.method, "http://"+s.Addr()+"/api/config", hdr)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %q: %d %q, want %d", tc.method, tc.ct, resp.StatusCode, body, tc.want)
		}
	}
	if _, metrics := get(t, "http://"+s.Addr()+"/metrics", nil); !strings.Contains(metrics, `sprout_http_browser_refusals_total{reason="content_type"} 2`) {
		t.Error("the two 415s are not counted")
	}
}
