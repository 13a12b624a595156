package logstore

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/tenant"
)

func TestQueryBudgets(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.MaxConcurrent, c.Limits.MaxConcurrentPerTenant, c.Limits.MaxOutstandingPerTenant = 2, 1, 0
	})
	defer e.close()
	ns := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).UnixNano(), 10) }
	for _, tc := range []struct {
		name   string
		path   string
		params url.Values
		status int
		want   string
	}{
		{"range over max_query_length", "/loki/api/v1/query_range", url.Values{"query": {`count_over_time({a="b"}[1m])`}, "start": {ns(-800 * time.Hour)}, "end": {ns(0)}, "step": {"3600"}}, 400, "max_query_length"},
		{"instant range selector over max_query_length", "/loki/api/v1/query", url.Values{"query": {`count_over_time({a="b"}[800h])`}, "time": {ns(0)}}, 400, "max_query_length"},
		{"tail limit over max_entries_limit_per_query", "/loki/api/v1/tail", url.Values{"query": {`{a="b"}`}, "limit": {"1000000000"}, "start": {"0"}}, 400, "max_entries_limit_per_query"},
		{"tail from 1970", "/loki/api/v1/tail", url.Values{"query": {`{a="b"}`}, "start": {"0"}}, 400, "max_query_length"},
		{"within the limits", "/loki/api/v1/query_range", url.Values{"query": {`count_over_time({a="b"}[1m])`}, "start": {ns(-time.Hour)}, "end": {ns(0)}, "step": {"60"}}, 200, `"status":"success"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.get(tc.path, tc.params)
			if code != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%d %s, want %d containing %q", code, body, tc.status, tc.want)
			}
		})
	}

	// The tenant's only slot is taken and nothing may wait: 429 with Retry-After, Loki's plain-text body.
	_, release, err := e.store.QueryLimiter().Admit(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.srv.URL + "/loki/api/v1/query_range?query=" + url.QueryEscape(`count_over_time({a="b"}[1m])`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d Retry-After=%q Content-Type=%q, want a plain-text 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	// The Drilldown endpoints wait for the same slots.
	for _, path := range []string{"/loki/api/v1/patterns", "/loki/api/v1/detected_fields", "/loki/api/v1/detected_field/a/values", "/loki/api/v1/detected_labels"} {
		if code, body := e.get(path, url.Values{"query": {`{a="b"}`}}); code != http.StatusTooManyRequests {
			t.Errorf("%s with no free slot: %d %s, want 429", path, code, body)
		}
	}
	release()
	if code, body := e.get("/loki/api/v1/query_range", url.Values{"query": {`count_over_time({a="b"}[1m])`}}); code != 200 {
		t.Fatalf("after release: %d %s", code, body)
	}
}
