package metricstore

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// Queries over the points budget are refused before evaluation with Prometheus' bad_data; the review's
// subquery grew the process by gigabytes before any sample limit applied.
func TestQueryPointsBudget(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	now := time.Now()
	at := strconv.FormatInt(now.Unix(), 10)
	for _, tc := range []struct {
		name   string
		path   string
		params url.Values
		status int
		want   string
	}{
		{"subquery 30d at 1ms", "/api/v1/query", url.Values{"query": {`sum_over_time(vector(1)[30d:1ms])`}}, 400, "max_subquery_points_per_series"},
		{"POST form, same check", "/api/v1/query", url.Values{"query": {`sum_over_time(vector(1)[1d:1ms])`}, "time": {at}}, 400, "max_subquery_points_per_series"},
		{"subquery across a range query", "/api/v1/query_range", url.Values{"query": {`max_over_time(vector(1)[1h:1s])`},
			"start": {strconv.FormatInt(now.Add(-30*time.Hour).Unix(), 10)}, "end": {at}, "step": {"1h"}}, 400, "max_subquery_points_per_series"},
		{"too many steps", "/api/v1/query_range", url.Values{"query": {`vector(1)`},
			"start": {strconv.FormatInt(now.Add(-24*time.Hour).Unix(), 10)}, "end": {at}, "step": {"1"}}, 400, "max_points_per_series"},
		// Every spelling of a time Prometheus' handler accepts goes through the check.
		{"instant at the API's maximum time", "/api/v1/query", url.Values{"query": {`sum_over_time(vector(1)[1d:1ms])`}, "time": {v1.MaxTime.Format(time.RFC3339Nano)}}, 400, "max_subquery_points_per_series"},
		{"instant at 1e15 s", "/api/v1/query", url.Values{"query": {`sum_over_time(vector(1)[1d:1ms])`}, "time": {"1e15"}}, 400, "max_subquery_points_per_series"},
		{"range from the API's minimum to maximum time", "/api/v1/query_range", url.Values{"query": {`max_over_time(vector(1)[1h:1s])`},
			"start": {v1.MinTime.Format(time.RFC3339Nano)}, "end": {v1.MaxTime.Format(time.RFC3339Nano)}, "step": {"1e9"}}, 400, "max_subquery_points_per_series"},
		{"a month at 1m", "/api/v1/query", url.Values{"query": {`max_over_time(vector(1)[30d:1m])`}, "time": {at}}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var r apiResponse
			if strings.HasPrefix(tc.name, "POST") {
				resp, err := http.PostForm(srv.URL+tc.path, tc.params)
				if err != nil {
					t.Fatal(err)
				}
				code = resp.StatusCode
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
			} else {
				code, r = apiGet(t, srv.URL, tc.path, tc.params)
			}
			if code != tc.status || tc.status == 400 && (r.ErrorType != "bad_data" || !strings.Contains(r.Error, tc.want)) {
				t.Fatalf("%d %+v, want %d bad_data naming %q", code, r, tc.status, tc.want)
			}
		})
	}
}

// With every slot of the tenant taken and no queue, a query is refused at once with 429, Prometheus' error
// body and Retry-After; a slot freed lets the next one in.
func TestQueryConcurrencyRefusal(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.MaxConcurrent, cfg.Limits.MaxConcurrentPerTenant, cfg.Limits.MaxOutstandingPerTenant = 2, 1, 0
	s, srv := openTestStore(t, cfg)
	_, release, err := s.QueryLimiter().Admit(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + "/api/v1/query?query=vector(1)")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d Retry-After=%q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	code, r := apiGet(t, srv.URL, "/api/v1/query", url.Values{"query": {"vector(1)"}})
	if code != 429 || r.Status != "error" || r.ErrorType != "too_many_requests" || !strings.Contains(r.Error, "max_outstanding_per_tenant") {
		t.Fatalf("%d %+v", code, r)
	}
	release()
	if code, r := apiGet(t, srv.URL, "/api/v1/query", url.Values{"query": {"vector(1)"}}); code != 200 {
		t.Fatalf("after release: %d %+v", code, r)
	}
}
