package metricstore

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPrometheusAPIAnswersNoCORS checks that Prometheus' API handlers add no CORS headers of their own (they
// allowed any origin), and leave those sprout_api's CORS handler set from cors.allowed_origins as they were.
func TestPrometheusAPIAnswersNoCORS(t *testing.T) {
	s, _ := openTestStore(t, testConfig(t))
	h := s.Handler(nil)
	// upstream stands in for sprout_api's CORS handler for an allowed origin.
	upstream := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "https://grafana.example" {
			w.Header().Set("Access-Control-Allow-Origin", "https://grafana.example")
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Access-Control-Expose-Headers", "X-Sprout")
		}
		h.ServeHTTP(w, r)
	}
	for _, tc := range []struct {
		name, method, path, origin string
		want                       map[string]string // Access-Control-* header → value ("" = absent)
	}{
		{"foreign origin query", "GET", "/api/v1/query?query=1", "http://evil.example",
			map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "", "Access-Control-Allow-Headers": "", "Access-Control-Expose-Headers": ""}},
		{"foreign origin, Mimir prefix", "GET", "/prometheus/api/v1/labels", "http://evil.example",
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"preflight for remote write", "OPTIONS", "/api/v1/write", "http://evil.example",
			map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "", "Access-Control-Allow-Headers": ""}},
		{"no origin", "GET", "/api/v1/query?query=1", "",
			map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": ""}},
		{"allowed origin keeps sprout_api's headers", "GET", "/api/v1/query?query=1", "https://grafana.example",
			map[string]string{"Access-Control-Allow-Origin": "https://grafana.example", "Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "X-Sprout", "Access-Control-Allow-Methods": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			rec := httptest.NewRecorder()
			upstream(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			for k, want := range tc.want {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tc.method == "GET" && !strings.Contains(rec.Body.String(), `"status":"success"`) {
				t.Errorf("answer: %d %s", rec.Code, rec.Body)
			}
		})
	}
}
