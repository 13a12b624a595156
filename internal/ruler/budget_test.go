package ruler_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sprout-otel/sprout/internal/ruler"
)

// A rule runs as an instant query at every interval: an upload whose expression exceeds the query budgets is a
// 400 naming the limit, and nothing is stored.
func TestRuleUploadOverBudget(t *testing.T) {
	store := newTestStore(t)
	logs := newLogStore(t) // max_query_length 721h by default
	b := newBucket(t, t.TempDir())
	r := newRuler(t, ruler.Options{Store: store, Logs: logs, Rules: ruler.NewRuleStore(b), LogQLRules: ruler.NewLogQLRuleStore(b)})
	srv := httptest.NewServer(routes(r))
	defer srv.Close()

	for _, tc := range []struct {
		name, path, expr string
		status           int
		want             string
	}{
		{"subquery at 1ms", "/prometheus/config/v1/rules/ns", `sum_over_time(vector(1)[1d:1ms])`, 400, "max_subquery_points_per_series"},
		{"nested subqueries add up", "/prometheus/config/v1/rules/ns", `max_over_time(avg_over_time(vector(1)[1d:1s])[1d:1h])`, 400, "max_subquery_points_per_series"},
		{"a month at the default step", "/prometheus/config/v1/rules/ns", `max_over_time(vector(1)[30d:])`, 202, ""},
		{"logql range over max_query_length", "/loki/api/v1/rules/ns", `count_over_time({app="x"}[800h])`, 400, "max_query_length"},
		{"logql within", "/loki/api/v1/rules/ns", `count_over_time({app="x"}[5m])`, 202, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "name: g\nrules:\n  - record: a\n    expr: '" + tc.expr + "'\n"
			b := do(t, http.MethodPost, srv.URL+tc.path, body, tc.status)
			if !strings.Contains(b, tc.want) {
				t.Errorf("body %q does not name %q", b, tc.want)
			}
		})
	}
	if n := len(r.Rules("single-tenant").Groups); n != 2 {
		t.Errorf("%d groups run, want the 2 accepted ones", n)
	}
}
