package tracestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// Side by side with Tempo: the same traces go to Tempo (built from its public source; the binary is named by
// SPROUT_PEER_TEMPO) and to Sprout's API, the same requests go to both, and the status codes and JSON shapes
// of the answers are compared. Tempo's code is not part of Sprout; this test only runs the binary.
//
//	SPROUT_PEER_TEMPO=/path/to/tempo go test -count=1 -run PeerTempo -v ./internal/tracestore/

// peerRequest is one request sent to both servers.
type peerRequest struct {
	name, path string
	accept     string
}

func peerRequests(id string, start, end int64) []peerRequest {
	rng := fmt.Sprintf("&start=%d&end=%d", start, end)
	q := func(s string) string { return url.QueryEscape(s) }
	return []peerRequest{
		{name: "trace_v1", path: "/api/traces/" + id},
		{name: "trace_v2", path: "/api/v2/traces/" + id},
		{name: "search_and_select", path: "/api/search?q=" + q(`{ resource.service.name = "backend" && status = error } | select(span.step)`) + "&spss=2" + rng},
		{name: "search_structural", path: "/api/search?q=" + q(`{ kind = server } > { name = "step-2" }`) + rng},
		{name: "search_count", path: "/api/search?q=" + q(`{ } | count() > 3`) + "&limit=2" + rng},
		{name: "search_by", path: "/api/search?q=" + q(`{ } | by(resource.service.name)`) + "&limit=1" + rng},
		{name: "search_avg", path: "/api/search?q=" + q(`{ duration > 100ms } | avg(duration) > 10ms`) + "&limit=2" + rng},
		{name: "search_empty", path: "/api/search?q=" + q(`{ name = "nope" }`) + rng},
		{name: "search_tags_param", path: "/api/search?tags=" + q(`service.name=frontend`) + "&limit=1" + rng},
		{name: "tags_v1", path: "/api/search/tags"},
		{name: "tags_v2", path: "/api/v2/search/tags"},
		{name: "tags_v2_resource", path: "/api/v2/search/tags?scope=resource"},
		{name: "tag_values_v1", path: "/api/search/tag/service.name/values"},
		{name: "tag_values_v2", path: "/api/v2/search/tag/resource.service.name/values"},
		{name: "tag_values_v2_q", path: "/api/v2/search/tag/name/values?q=" + q(`{ status = error }`)},
		{name: "tag_values_v2_status", path: "/api/v2/search/tag/status/values"},
		{name: "tag_values_v2_int", path: "/api/v2/search/tag/span.http.status_code/values"},
		{name: "metrics_rate_by", path: "/api/metrics/query_range?q=" + q(`{ } | rate() by (resource.service.name)`) + rng + "&step=30s"},
		{name: "metrics_count", path: "/api/metrics/query_range?q=" + q(`{ status = error } | count_over_time()`) + rng + "&step=60"},
		{name: "metrics_quantile", path: "/api/metrics/query_range?q=" + q(`{ resource.service.name = "backend" } | quantile_over_time(duration, .5, .99) by (name)`) + rng + "&step=1m"},
		{name: "metrics_instant", path: "/api/metrics/query?q=" + q(`{ } | count_over_time() by (kind)`) + rng},
		{name: "buildinfo", path: "/api/status/buildinfo"},
		{name: "echo", path: "/api/echo"},
		// refusals: the status codes must agree
		{name: "bad_trace_id", path: "/api/traces/zz-not-hex"},
		{name: "unknown_trace", path: "/api/traces/0a000000000000000000000000000999"},
		{name: "unknown_trace_v2", path: "/api/v2/traces/0a000000000000000000000000000999"},
		{name: "bad_traceql", path: "/api/search?q=" + q(`{ name = }`)},
		{name: "bad_traceql_type", path: "/api/search?q=" + q(`{ status = 200 }`)},
		{name: "bad_limit", path: "/api/search?limit=-1"},
		{name: "bad_range", path: "/api/search?start=20&end=10"},
		{name: "bad_scope", path: "/api/v2/search/tags?scope=nope"},
		{name: "bad_tag_values_q", path: "/api/v2/search/tag/name/values?q=" + q(`{ name = `)},
		{name: "metrics_not_metrics", path: "/api/metrics/query_range?q=" + q(`{ }`) + rng},
		{name: "metrics_bad_step", path: "/api/metrics/query_range?q=" + q(`{ } | rate()`) + rng + "&step=soon"},
		{name: "metrics_parse_error", path: "/api/metrics/query?q=" + q(`{ } | rate(`) + rng},
	}
}

type peerAnswer struct {
	code  int
	ctype string
	body  []byte
}

func peerGet(t *testing.T, base string, r peerRequest) peerAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+r.path, nil)
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return peerAnswer{code: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: buf.Bytes()}
}

// jsonShape lists the paths of a JSON document with the type at each (arrays as []), sorted.
func jsonShape(body []byte) ([]string, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			set[path+":object"] = true
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			set[path+":array"] = true
			for _, e := range x {
				walk(path+"[]", e)
			}
		case string:
			set[path+":string"] = true
		case json.Number:
			set[path+":number"] = true
		case bool:
			set[path+":bool"] = true
		case nil:
			set[path+":null"] = true
		}
	}
	walk("", v)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func diffShapes(tempo, sprout []string) (onlyTempo, onlySprout []string) {
	ts, ss := map[string]bool{}, map[string]bool{}
	for _, p := range tempo {
		ts[p] = true
	}
	for _, p := range sprout {
		ss[p] = true
		if !ts[p] {
			onlySprout = append(onlySprout, p)
		}
	}
	for _, p := range tempo {
		if !ss[p] {
			onlyTempo = append(onlyTempo, p)
		}
	}
	return onlyTempo, onlySprout
}

// peerFixture is the traces both servers get: 12 traces of 5 spans, started in the last few minutes.
func peerFixture(now time.Time) (ptrace.Traces, []time.Time) {
	td := ptrace.NewTraces()
	var starts []time.Time
	for i := 1; i <= 12; i++ {
		st := now.Add(-3 * time.Minute).Add(time.Duration(i) * 10 * time.Second)
		makeTrace(td, i, 5, st)
		starts = append(starts, st)
	}
	return td, starts
}

// startTempo runs Tempo (SPROUT_PEER_TEMPO, or the test is skipped) and returns its API and OTLP/HTTP URLs.
func startTempo(t *testing.T) (api string, otlpHTTP string) {
	t.Helper()
	tempo := testutil.StartTempo(t, testutil.TempoOptions{})
	return tempo.API(), tempo.OTLPHTTP()
}

// peerAllowed lists the differences that are known and accepted, each with its reason: request name ("" for
// every request), "+" (only Sprout has it) or "-" (only Tempo), and a path prefix.
var peerAllowed = []struct{ req, sign, prefix, why string }{
	{"", "+", ".metrics.inspectedSpans", "Sprout fills counters that Tempo leaves at zero (jsonpb leaves zeros out)"},
	{"", "+", ".metrics.inspectedTraces", "same"},
	{"", "+", ".metrics.inspectedBytes", "same (tag values of an intrinsic: Tempo reads nothing)"},
	{"", "-", ".metrics.completedJobs", "Tempo counts its frontend's shards; Sprout answers from memory alone without a block job"},
	{"", "-", ".metrics.totalJobs", "same"},
	{"", "+", ".metrics.totalJobs", "Tempo's frontend sometimes answers a search that ends early (limit reached) before it counted its jobs: totalJobs 0, left out by jsonpb (seen once in five runs)"},
	{"", "+", ".traces[].spanSet.spans[].name", "Sprout always gives a matched span's name; Tempo only when the query reads it"},
	{"", "+", ".traces[].spanSets[].spans[].name", "same"},
	{"search_tags_param", "+", ".traces[]", "the legacy tags= search: Sprout returns spansets and service stats as for TraceQL; Tempo only the trace summary"},
	{"", "-", ".series[].exemplars[].labels[].value.intValue", "Tempo adds the attributes its query fetched to exemplar labels (here nestedSetParent, an int); Sprout sends trace:id only"},
	{"", "+", ".message", "a sampling hint (with(sample=...)): Sprout notes in QueryRangeResponse.message that it read every span"},
	{"td_comparison", "-", ".series[].exemplars", "compare(): Tempo attaches exemplars (every attribute of the span as labels) to the _total series; Sprout sends none"},
	{"td_comparison_window", "-", ".series[].exemplars", "same"},
	{"unknown_trace_v2", "status", "", "Tempo 3's v2 answers an unknown trace 200 {\"trace\":{},\"metrics\":{}}; Sprout keeps 404 (the issue asks for it, and tests/e2e relies on it)"},
}

func peerDiffAllowed(req, sign, path string) bool {
	for _, a := range peerAllowed {
		if (a.req == "" || a.req == req) && a.sign == sign && strings.HasPrefix(path, a.prefix) {
			return true
		}
	}
	return false
}

func TestPeerTempoShapes(t *testing.T) {
	tempo, otlp := startTempo(t)
	now := time.Now().Truncate(time.Second)
	td, _ := peerFixture(now)
	pushToTempo(t, otlp, td)
	s, srv := newAPI(t)
	if err := s.Push(context.Background(), tn, td); err != nil {
		t.Fatal(err)
	}
	id := tid(3).String()
	start, end := now.Add(-10*time.Minute).Unix(), now.Add(time.Minute).Unix()
	// Tempo: wait until the traces are searchable (and the metrics see them)
	testutil.Eventually(t, 120*time.Second, func() error {
		a := peerGet(t, tempo, peerRequest{path: "/api/search?q=" + url.QueryEscape(`{ }`) + fmt.Sprintf("&limit=50&start=%d&end=%d", start, end)})
		var sr struct{ Traces []any }
		_ = json.Unmarshal(a.body, &sr)
		if a.code != 200 || len(sr.Traces) < 12 {
			return fmt.Errorf("tempo search: %d, %d traces: %s", a.code, len(sr.Traces), a.body)
		}
		if a := peerGet(t, tempo, peerRequest{path: "/api/traces/" + id}); a.code != 200 {
			return fmt.Errorf("tempo trace: %d", a.code)
		}
		return nil
	})
	var report strings.Builder
	failed := 0
	for _, r := range peerRequests(id, start, end) {
		ta, sa := peerGet(t, tempo, r), peerGet(t, srv.URL, r)
		fmt.Fprintf(&report, "== %s %s\n   tempo %d %s | sprout %d %s\n", r.name, r.path, ta.code, ta.ctype, sa.code, sa.ctype)
		if os.Getenv("SPROUT_PEER_VERBOSE") != "" {
			fmt.Fprintf(&report, "   tempo: %.600s\n   sprout: %.600s\n", ta.body, sa.body)
		}
		failed += comparePeerAnswers(&report, r.name, ta, sa)
	}
	t.Log("\n" + report.String())
	if failed > 0 {
		t.Fatalf("%d differences from Tempo", failed)
	}
}

// comparePeerAnswers compares one answer of Tempo with Sprout's: the status, and for JSON answers the shape;
// it writes what differs (and is not allowed by peerAllowed) to report and returns how many differences count.
func comparePeerAnswers(report *strings.Builder, name string, ta, sa peerAnswer) int {
	failed := 0
	if ta.code != sa.code {
		if !peerDiffAllowed(name, "status", "") {
			failed++
			fmt.Fprintf(report, "   STATUS DIFFERS; tempo body: %.300s; sprout body: %.300s\n", ta.body, sa.body)
		}
		return failed
	}
	if ta.code != 200 || !strings.Contains(ta.ctype, "json") {
		return 0
	}
	tsh, err1 := jsonShape(ta.body)
	ssh, err2 := jsonShape(sa.body)
	if err1 != nil || err2 != nil {
		fmt.Fprintf(report, "   not JSON: tempo %v sprout %v\n", err1, err2)
		return 1
	}
	onlyT, onlyS := diffShapes(tsh, ssh)
	for _, p := range onlyT {
		if !peerDiffAllowed(name, "-", p) {
			failed++
			fmt.Fprintf(report, "   only in tempo:  %s\n", p)
		}
	}
	for _, p := range onlyS {
		if !peerDiffAllowed(name, "+", p) {
			failed++
			fmt.Fprintf(report, "   only in sprout: %s\n", p)
		}
	}
	return failed
}

// TestPeerTempoCorpus replays the Grafana request corpus (testdata/grafana-corpus.json) against Tempo and
// Sprout on the same data and compares status, shape, and that what is non-empty in Tempo's answer (the
// corpus' nonEmpty paths and every top-level member) is non-empty in Sprout's.
//
//	SPROUT_PEER_TEMPO=/path/to/tempo go test -count=1 -run PeerTempoCorpus -v ./internal/tracestore/
func TestPeerTempoCorpus(t *testing.T) {
	corpus := loadCorpus(t)
	tempo, otlp := startTempo(t)
	now := time.Now().Truncate(time.Second)
	td := corpusFixture(now)
	pushToTempo(t, otlp, td)
	s, srv := newAPI(t)
	if err := s.Push(context.Background(), tn, td); err != nil {
		t.Fatal(err)
	}
	v := corpusVars{now: now.Unix(), start: now.Add(-10 * time.Minute).Unix(), end: now.Add(time.Minute).Unix(), traceID: tid(4).String()}
	testutil.Eventually(t, 120*time.Second, func() error {
		a := peerGet(t, tempo, peerRequest{path: "/api/search?q=" + url.QueryEscape(`{ }`) + fmt.Sprintf("&limit=50&start=%d&end=%d", v.start, v.end)})
		var sr struct{ Traces []any }
		_ = json.Unmarshal(a.body, &sr)
		if a.code != 200 || len(sr.Traces) < 12 {
			return fmt.Errorf("tempo search: %d, %d traces: %s", a.code, len(sr.Traces), a.body)
		}
		return nil
	})
	var report strings.Builder
	failed := 0
	for _, e := range corpus {
		tc, tct, tb := corpusRequest(t, tempo, e, v)
		sc, sct, sb := corpusRequest(t, srv.URL, e, v)
		ta, sa := peerAnswer{code: tc, ctype: tct, body: tb}, peerAnswer{code: sc, ctype: sct, body: sb}
		fmt.Fprintf(&report, "== %s (%s)\n   tempo %d %s | sprout %d %s\n", e.Name, e.Source, tc, tct, sc, sct)
		if os.Getenv("SPROUT_PEER_VERBOSE") != "" {
			fmt.Fprintf(&report, "   tempo: %.800s\n   sprout: %.800s\n", tb, sb)
		}
		failed += comparePeerAnswers(&report, e.Name, ta, sa)
		if tc != 200 || sc != 200 || !strings.Contains(tct, "json") || !strings.Contains(sct, "json") {
			continue
		}
		var tdoc, sdoc map[string]any
		if json.Unmarshal(tb, &tdoc) != nil || json.Unmarshal(sb, &sdoc) != nil {
			continue
		}
		paths := append([]string(nil), e.Expect.NonEmpty...)
		for k := range tdoc {
			paths = append(paths, k)
		}
		for _, p := range paths {
			if jsonNonEmpty(tdoc, p) && !jsonNonEmpty(sdoc, p) && !peerDiffAllowed(e.Name, "empty", p) {
				failed++
				fmt.Fprintf(&report, "   empty in sprout, not in tempo: %s\n", p)
			}
		}
	}
	t.Log("\n" + report.String())
	if failed > 0 {
		t.Fatalf("%d differences from Tempo", failed)
	}
}

// pushToTempo sends td to Tempo's OTLP/HTTP endpoint.
func pushToTempo(t *testing.T, otlp string, td ptrace.Traces) {
	t.Helper()
	body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(otlp, "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push to tempo: %d", resp.StatusCode)
	}
}
