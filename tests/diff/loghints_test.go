package diff

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestLogQLParserHintsDiff pins, on a few hand-written lines, when a line that fails its parser fails a metric
// query. Loki's parser hints run no parser in a range aggregation that needs no extracted label
// (absent_over_time, or one grouped by nothing such as a sum pushed into count_over_time), so the parse error
// never happens there; elsewhere the error fails the query with a pipeline error. Every query must get the same
// answer (or the same refusal) from Loki and Sprout, except those in peerOnly, which Loki refuses for a reason
// documented in docs/logs.md.
func TestLogQLParserHintsDiff(t *testing.T) {
	loki := startLoki(t)
	sprout := startSprout(t)
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	lines := []struct {
		stream map[string]string
		line   string
	}{
		{map[string]string{"app": "web", "env": "prod", "service_name": "web"}, `{"level":"info","status":200,"resp_ms":5}`},
		{map[string]string{"app": "web", "env": "prod", "service_name": "web"}, `{"level":"error","status":500,"resp_ms":120}`},
		{map[string]string{"app": "web", "env": "prod", "service_name": "web"}, `GET /x 200 not json`},
		{map[string]string{"app": "web", "env": "prod", "service_name": "web"}, `{"level":"warn","status":404,"resp_ms":7} pad=xyz`},
		{map[string]string{"app": "web", "env": "prod", "service_name": "web"}, `{"_entry":"short","level":"info","status":201}`},
		{map[string]string{"app": "api", "env": "dev", "service_name": "api"}, `level=info status=200 msg="ok"`},
		{map[string]string{"app": "api", "env": "dev", "service_name": "api"}, `level=error status=oops msg="bad"`},
	}
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]string        `json:"values"`
	}
	var body struct {
		Streams []stream `json:"streams"`
	}
	for i, l := range lines {
		body.Streams = append(body.Streams, stream{Stream: l.stream,
			Values: [][]string{{fmt.Sprint(base.Add(time.Duration(i) * 10 * time.Second).UnixNano()), l.line}}})
	}
	b, _ := json.Marshal(body)
	for _, u := range []string{loki, sprout} {
		post(t, u+"/loki/api/v1/push", "application/json", b, nil)
	}
	queries := []string{
		`count_over_time({app="web"} | json [5m])`,
		`sum(count_over_time({app="web"} | json [5m]))`,
		`sum by (env) (count_over_time({app="web"} | json [5m]))`,
		`max(count_over_time({app="web"} | json [5m]))`,
		`count(count_over_time({app="web"} | json [5m]))`,
		`sum(count_over_time({app="web"} | json | keep level [5m]))`,
		`sum(count_over_time({app="web"} | json | drop level [5m]))`,
		`sum(count_over_time({app="web"} | json | status > 300 [5m]))`,
		`sum(count_over_time({app="web"} | json | __error__="" [5m]))`,
		`sum(count_over_time({app="web"} | json | line_format "static" [5m]))`,
		`sum(count_over_time({app="web"} | json | line_format "{{.level}}" [5m]))`,
		`sum(count_over_time({app="web"} | json | label_format lvl=level [5m]))`,
		`sum(count_over_time({app="web"} | json | line_format "{{.level}}" | logfmt [5m]))`,
		`sum(count_over_time({app="web"} | json | line_format "{{.level}}" |= "info" [5m]))`,
		`sum(bytes_over_time({app="web"} | json | line_format "{{.level}}" [5m]))`,
		`sum(bytes_over_time({app="web"} | json [5m]))`,
		`sum(bytes_over_time({app="web"} | unpack [5m]))`,
		`sum(rate({app="web"} | json [5m]))`,
		`sum(sum_over_time({app="web"} | json | unwrap resp_ms [5m]))`,
		`sum by (level) (count_over_time({app="web"} | json [5m]))`,
		`sum by (level) (count_over_time({app="web"} | json | __error__="" [5m]))`,
		`absent_over_time({app="web"} | json [5m])`,
		`absent_over_time({app="web"} | json | level="nope" [5m])`,
		`absent_over_time({app="web"} | json | keep level [5m])`,
		`absent_over_time({app="web"} | json | label_format x=level [5m])`,
		`absent_over_time({app="web"} | json | line_format "{{.level}}" [5m])`,
		`absent_over_time({app="web"} | json | line_format "static" [5m])`,
		`absent_over_time({app="web"} | json | level=~".*" [5m])`,
		`sum(count_over_time({app="web"} | json | level=~"" [5m]))`,
		`sum(count_over_time({app="web"} | json | level=~".+" [5m]))`,
		`sum(count_over_time({app="web"} | json | level!~".*" [5m]))`,
		`sum(count_over_time({app="api"} | logfmt [5m]))`,
		`sum(count_over_time({app="api"} | logfmt | status > 100 [5m]))`,
		`count_over_time({app="api"} | logfmt [5m])`,
		`sum(count_over_time({app=~".+"} | json [5m]))`,
		`sum(count_over_time({app=~".+"} | regexp "(?P<word>\\w+)" [5m]))`,
	}
	// Loki's query sharding answers avg_over_time(… | unwrap x) by (…) as sum_over_time / count_over_time with
	// the unwrap stripped from the count, so a line without x that failed its parser fails the query there
	// (pkg/logql/shardmapper.go, OpRangeTypeAvg); unsharded, it gives no sample, as Sprout does.
	peerOnly := map[string]bool{
		`avg_over_time({app="web"} | json | unwrap resp_ms [5m]) by (env)`: true,
	}
	for q := range peerOnly {
		queries = append(queries, q)
	}
	start, end := base.Add(-time.Minute), base.Add(5*time.Minute)
	at := base.Add(3 * time.Minute)
	tl := &tally{name: "LogQL parser hints"}
	for _, q := range queries {
		for _, r := range []struct {
			path string
			p    url.Values
		}{
			{"/loki/api/v1/query_range", url.Values{"query": {q}, "start": {fmt.Sprint(start.UnixNano())}, "end": {fmt.Sprint(end.UnixNano())}, "step": {"60s"}}},
			{"/loki/api/v1/query", url.Values{"query": {q}, "time": {fmt.Sprint(at.UnixNano())}}},
		} {
			lc, lb := get(loki+r.path, r.p)
			sc, sb := get(sprout+r.path, r.p)
			before := len(tl.reports)
			v := tl.add(r.path, r.p, canonical(lc, lb), canonical(sc, sb))
			switch {
			case peerOnly[q] && v == refusedPeer:
			case peerOnly[q]:
				t.Errorf("%s: Loki no longer refuses it (%s): update docs/logs.md", q, v)
			case v != equal:
				t.Error(tl.reports[before])
			}
		}
	}
	t.Log(tl.summary())
}
