package tracestore

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func newAPI(t *testing.T) (*Store, *httptest.Server) {
	t.Helper()
	s := openStore(t, testConfig(t.TempDir()))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	mux := http.NewServeMux()
	api := &API{Store: s, Version: "test", Tenant: func(w http.ResponseWriter, r *http.Request) (string, bool) {
		if r.Header.Get("X-Scope-OrgID") == "forbidden" {
			http.Error(w, "no org id", http.StatusUnauthorized)
			return "", false
		}
		return tn, true
	}}
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

func get(t *testing.T, url string, hdr ...string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("%s: response is not JSON: %v\n%s", name, err, got)
	}
	pretty, _ := json.MarshalIndent(v, "", "  ")
	pretty = append(pretty, '\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, pretty, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, pretty) {
		t.Fatalf("%s differs from %s:\n%s", name, path, pretty)
	}
}

func TestHTTPGolden(t *testing.T) {
	s, srv := newAPI(t)
	if err := s.Push(context.Background(), tn, batch(1, 2, 4)); err != nil {
		t.Fatal(err)
	}
	id := tid(2).String()
	tests := []struct {
		name, path string
	}{
		{"trace_v1", "/api/traces/" + id},
		{"trace_v2", "/api/v2/traces/" + id},
		{"search", "/api/search?q=" + urlq(`{ resource.service.name = "backend" && status = error } | select(span.step)`) + "&spss=2"},
		{"search_tags_param", "/api/search?tags=" + urlq(`service.name=frontend http.status_code=200`) + "&limit=1"},
		{"search_structural", "/api/search?q=" + urlq(`{ kind = server } > { name = "step-2" }`)},
		{"search_by", "/api/search?q=" + urlq(`{ } | by(resource.service.name) | count() > 1`) + "&limit=1"},
		{"search_empty", "/api/search?q=" + urlq(`{ name = "nope" }`)},
		{"tags_v1", "/api/search/tags"},
		{"tags_v2", "/api/v2/search/tags"},
		{"tags_v2_resource", "/api/v2/search/tags?scope=resource"},
		{"tag_values_v1", "/api/search/tag/service.name/values"},
		{"tag_values_v2", "/api/v2/search/tag/resource.service.name/values"},
		{"tag_values_v2_q", "/api/v2/search/tag/name/values?q=" + urlq(`{ status = error }`)},
		{"tag_values_v2_status", "/api/v2/search/tag/status/values"},
		{"tag_values_v2_int", "/api/v2/search/tag/span.http.status_code/values"},
		{"metrics_rate_by", "/api/metrics/query_range?q=" + urlq(`{ } | rate() by (resource.service.name)`) + metricsRange + "&step=30s"},
		{"metrics_count", "/api/metrics/query_range?q=" + urlq(`{ status = error } | count_over_time()`) + metricsRange + "&step=1m"},
		{"metrics_quantile", "/api/metrics/query_range?q=" + urlq(`{ resource.service.name = "backend" } | quantile_over_time(duration, .5, .99) by (name)`) + metricsRange + "&step=60"},
		{"metrics_instant", "/api/metrics/query?q=" + urlq(`{ } | count_over_time() by (kind)`) + metricsRange},
		{"metrics_histogram", "/api/metrics/query_range?q=" + urlq(`{ kind = internal } | histogram_over_time(duration) with(sample=true)`) + metricsRange + "&step=2m"},
		{"metrics_compare", "/api/metrics/query_range?q=" + urlq(`{ } | compare({ status = error }, 2)`) + metricsRange + "&step=2m"},
		{"search_nested_set", "/api/search?q=" + urlq(`({ nestedSetParent < 0 } &>> { status = error }) || ({ nestedSetParent < 0 }) | select(status, nestedSetParent, nestedSetLeft, nestedSetRight)`) + "&limit=1&spss=5"},
		{"tags_v2_q", "/api/v2/search/tags?q=" + urlq(`{ resource.service.name = "backend" }`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, ctype, body := get(t, srv.URL+tc.path)
			if code != http.StatusOK || !strings.HasPrefix(ctype, "application/json") {
				t.Fatalf("status %d, content type %q: %s", code, ctype, body)
			}
			golden(t, tc.name, body)
		})
	}
}

var metricsRange = fmt.Sprintf("&start=%d&end=%d", baseTime.Add(-time.Minute).Unix(), baseTime.Add(time.Minute).Unix())

func urlq(s string) string {
	return strings.NewReplacer(" ", "%20", "{", "%7B", "}", "%7D", "\"", "%22", "&", "%26", "=", "%3D", "|", "%7C", ">", "%3E").Replace(s)
}

func TestHTTPTraceProtobuf(t *testing.T) {
	s, srv := newAPI(t)
	if err := s.Push(context.Background(), tn, batch(1, 1, 3)); err != nil {
		t.Fatal(err)
	}
	code, ctype, body := get(t, srv.URL+"/api/traces/"+tid(1).String(), "Accept", "application/protobuf")
	if code != 200 || ctype != "application/protobuf" {
		t.Fatalf("status %d %s", code, ctype)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
	if err != nil || td.SpanCount() != 3 {
		t.Fatalf("protobuf body: %v, %d spans", err, td.SpanCount())
	}
	code, _, body = get(t, srv.URL+"/api/v2/traces/"+tid(1).String(), "Accept", "application/protobuf")
	if code != 200 || len(body) < 3 || body[0] != 0x0a {
		t.Fatalf("v2 protobuf: status %d, body % x", code, body[:min(len(body), 8)])
	}
}

func TestHTTPErrors(t *testing.T) {
	_, srv := newAPI(t)
	tests := []struct {
		path string
		code int
		want string
		hdr  []string
	}{
		{"/api/traces/zz-not-hex", 400, "invalid trace id", nil},
		{"/api/traces/" + strings.Repeat("a", 33), 400, "invalid trace id", nil},
		{"/api/traces/0a000000000000000000000000000999", 404, "trace not found", nil},
		{"/api/v2/traces/123456", 404, "trace not found", nil},
		{"/api/traces/0a?start=yesterday", 400, "invalid start", nil},
		{"/api/search?q=" + urlq(`{ name = }`), 400, "parse error at line 1, col 10", nil},
		{"/api/search?q=" + urlq(`{ status = 200 }`), 400, "parse error at line 1, col 10", nil},
		{"/api/search?limit=-1", 400, "invalid limit", nil},
		{"/api/search?minDuration=fast", 400, "invalid minDuration", nil},
		{"/api/search?limit=100000", 400, "max_search_limit", nil},
		{"/api/search?start=20&end=10", 400, "end is before start", nil},
		{"/api/v2/search/tags?scope=nope", 400, "invalid scope", nil},
		{"/api/v2/search/tag/name/values?q=" + urlq(`{ name = `), 200, `"tagValues":[]`, nil}, // half-typed q: no filter, as Tempo
		{"/api/search", 401, "no org id", []string{"X-Scope-OrgID", "forbidden"}},
		{"/api/metrics/query_range?q=" + urlq(`{ }`), 400, "a metrics query ends in", nil},
		{"/api/metrics/query_range?q=" + urlq(`{ } | rate()`) + "&step=soon", 400, "invalid step", nil},
		{"/api/metrics/query_range?q=" + urlq(`{ } | rate()`) + "&start=1&end=100000&step=1s", 400, "max_points_per_series", nil},
		{"/api/metrics/query?q=" + urlq(`{ } | rate(`), 400, "parse error", nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, _, body := get(t, srv.URL+tc.path, tc.hdr...)
			if code != tc.code || !strings.Contains(string(body), tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
	code, _, body := get(t, srv.URL+"/api/echo")
	if code != 200 || string(body) != "echo" {
		t.Fatalf("echo: %d %q", code, body)
	}
	code, _, body = get(t, srv.URL+"/api/status/buildinfo")
	if code != 200 || !strings.Contains(string(body), `"version":"`+TempoCompatVersion+`"`) || !strings.Contains(string(body), `"revision":"sprout-test"`) {
		t.Fatalf("buildinfo: %d %s", code, body)
	}
}
