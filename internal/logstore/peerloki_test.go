package logstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// startLoki runs Loki (SPROUT_PEER_LOKI, the binary built from Loki's source, or the test is skipped), with
// or without its pattern ingester, and returns its address once it is ready.
func startLoki(t *testing.T, patterns bool) string {
	t.Helper()
	return testutil.StartLoki(t, testutil.LokiOptions{Overlay: fmt.Sprintf(`
limits_config:
  # Loki's pattern queries drop patterns under 1 line/s by default; the corpus data is slower.
  pattern_rate_threshold: 0
pattern_ingester:
  enabled: %t
`, patterns)}).API()
}

// TestPeerLokiJSON pushes the same lines into Loki (SPROUT_PEER_LOKI, the binary built from Loki's source) and
// into Sprout, asks both the same queries and compares the answers: status code, and for 200s the JSON with
// timing and stats figures removed (the keys of stats are compared, not their values).
func TestPeerLokiJSON(t *testing.T) {
	loki := startLoki(t, false)
	e := newRealTimeEnv(t)
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	ls := peerLines(base, 0, 12)
	var vals [2][]string
	for _, l := range ls {
		i := 0
		if l.level == "error" {
			i = 1
		}
		vals[i] = append(vals[i], fmt.Sprintf(`["%d",%q,{"trace_id":%q,"span_id":%q}]`, l.ts.UnixNano(), l.String(), l.traceID, l.spanID))
	}
	body := jsonPush(
		fmt.Sprintf(`{"stream":{"job":"app","service_name":"checkout","level":"info"},"values":[%s]}`, strings.Join(vals[0], ",")),
		fmt.Sprintf(`{"stream":{"job":"app","service_name":"checkout","level":"error"},"values":[%s]}`, strings.Join(vals[1], ",")),
	)
	for _, u := range []string{loki, e.srv.URL} {
		resp, err := http.Post(u+"/loki/api/v1/push", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("push to %s: %d %s", u, resp.StatusCode, b)
		}
	}
	start := fmt.Sprint(base.Add(-time.Minute).UnixNano())
	end := fmt.Sprint(base.Add(time.Minute).UnixNano())
	at := fmt.Sprint(base.Add(30 * time.Second).UnixNano())
	tid := ls[4].traceID
	type req struct {
		name, path string
		params     url.Values
		hdr        []string
	}
	rng := func(kv ...string) url.Values {
		v := url.Values{"start": {start}, "end": {end}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	reqs := []req{
		{"query_range streams", "/loki/api/v1/query_range", rng("query", `{service_name="checkout"}`, "limit", "5"), nil},
		{"query_range streams forward", "/loki/api/v1/query_range", rng("query", `{service_name="checkout"} |= "order"`, "limit", "100", "direction", "forward"), nil},
		{"query_range trace id", "/loki/api/v1/query_range", rng("query", `{service_name=~".+"} | trace_id="`+tid+`"`), nil},
		{"query_range categorized", "/loki/api/v1/query_range", rng("query", `{service_name="checkout"} | logfmt | level="error"`, "limit", "3"), []string{"X-Loki-Response-Encoding-Flags", "categorize-labels"}},
		{"query_range matrix", "/loki/api/v1/query_range", rng("query", `sum by (level) (count_over_time({service_name="checkout"}[1m]))`, "step", "60"), nil},
		{"query vector", "/loki/api/v1/query", url.Values{"query": {`sum by (level) (count_over_time({service_name="checkout"}[5m]))`}, "time": {at}}, nil},
		{"query scalar", "/loki/api/v1/query", url.Values{"query": {`vector(1)+vector(1)`}, "time": {at}}, nil},
		{"labels", "/loki/api/v1/labels", rng(), nil},
		{"label values", "/loki/api/v1/label/level/values", rng(), nil},
		{"series", "/loki/api/v1/series", rng("match[]", `{service_name="checkout"}`), nil},
		{"index stats", "/loki/api/v1/index/stats", rng("query", `{service_name="checkout"}`), nil},
		{"index volume", "/loki/api/v1/index/volume", rng("query", `{service_name="checkout"}`), nil},
		{"index volume_range", "/loki/api/v1/index/volume_range", rng("query", `{service_name="checkout"}`, "step", "60"), nil},
		{"detected_fields", "/loki/api/v1/detected_fields", rng("query", `{service_name="checkout"}`), nil},
		{"bad logql", "/loki/api/v1/query_range", rng("query", `{service_name="checkout"} |= `), nil},
		{"bad selector", "/loki/api/v1/query_range", rng("query", `{}`), nil},
		{"bad range", "/loki/api/v1/query_range", rng("query", `count_over_time({a="b"}[5x])`), nil},
		{"bad limit", "/loki/api/v1/query_range", rng("query", `{a="b"}`, "limit", "-1"), nil},
		{"bad time", "/loki/api/v1/query_range", url.Values{"query": {`{a="b"}`}, "start": {"yesterday"}}, nil},
	}
	var diffs []string
	for _, r := range reqs {
		lc, lb := httpGet(t, loki+r.path, r.params, r.hdr)
		sc, sb := httpGet(t, e.srv.URL+r.path, r.params, r.hdr)
		if lc != sc {
			diffs = append(diffs, fmt.Sprintf("%s: status Loki %d (%s), Sprout %d (%s)", r.name, lc, tail(string(lb), 300), sc, tail(string(sb), 300)))
			continue
		}
		if lc != 200 {
			t.Logf("%s: both %d\n  Loki:   %s  Sprout: %s", r.name, lc, lb, sb)
			continue
		}
		ln, sn := comparable(lb), comparable(sb)
		if ln != sn {
			// Body differences are reported, not failed: docs/logs.md lists the known ones (detected_level at
			// ingest, stats keys, volume byte counts); set SPROUT_PEER_LOKI_STRICT=1 to fail on them.
			msg := fmt.Sprintf("%s:\n  Loki:   %s\n  Sprout: %s", r.name, ln, sn)
			if os.Getenv("SPROUT_PEER_LOKI_STRICT") != "" {
				diffs = append(diffs, msg)
			} else {
				t.Log("differs: " + msg)
			}
		}
	}
	for _, d := range diffs {
		t.Error(d)
	}
}

func httpGet(t *testing.T, u string, params url.Values, hdr []string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u+"?"+params.Encode(), nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// comparable renders a JSON answer with stats reduced to the keys of their summary (encoding/json sorts keys).
func comparable(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "not JSON: " + string(b)
	}
	var walk func(v any, key string) any
	walk = func(v any, key string) any {
		switch x := v.(type) {
		case map[string]any:
			if key == "stats" {
				// Loki's stats have dozens of per-component counters; compare the summary's keys.
				sum, _ := x["summary"].(map[string]any)
				return sortedKeySet(sum)
			}
			for k, val := range x {
				x[k] = walk(val, k)
			}
			return x
		case []any:
			for i := range x {
				x[i] = walk(x[i], "")
			}
			return x
		}
		return v
	}
	v = walk(v, "")
	out, _ := json.Marshal(v)
	return string(out)
}

func sortedKeySet(m map[string]any) []string {
	var ks []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			for _, sk := range sortedKeySet(sub) {
				ks = append(ks, k+"."+sk)
			}
			continue
		}
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// knownShapeDiffs are the differences from Loki the corpus comparison logs instead of failing on, with the
// reason (docs/logs.md lists them).
var knownShapeDiffs = map[string]string{
	"detectedLabels[].sketch": "Loki sends the HyperLogLog sketch it merges shards with; Sprout counts exactly and has no shards",
	"fields[].sketch":         "as detectedLabels[].sketch",
	"limits.discover_service_name": "Sprout names the service of OTLP logs only and discovers none from other labels, so it " +
		"publishes an empty list (the app does not read it)",
}

// TestPeerLokiGrafanaCorpus replays testdata/grafana-corpus.json against Loki (with its pattern ingester) and
// Sprout on the same pushed data, and compares status and response shape: keys, value types, and that what Loki
// answers non-empty Sprout answers non-empty too.
func TestPeerLokiGrafanaCorpus(t *testing.T) {
	loki := startLoki(t, true)
	e := newRealTimeEnv(t)
	// Loki's distributor sends lines to its pattern ingester only once that has joined its ring, some seconds
	// after /ready: push a probe stream (to both, so the data stays the same) until Loki mines patterns of it.
	for i, deadline := 0, time.Now().Add(90*time.Second); ; i++ {
		probe := jsonPush(fmt.Sprintf(`{"stream":{"service_name":"pattern-probe"},"values":[["%d","probe line number %d is here"]]}`, time.Now().UnixNano(), i))
		for _, u := range []string{loki, e.srv.URL} {
			resp, err := http.Post(u+"/loki/api/v1/push", "application/json", bytes.NewReader(probe))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		code, b := httpGet(t, loki+"/loki/api/v1/patterns", url.Values{"query": {`{service_name="pattern-probe"}`}, "start": {fmt.Sprint(time.Now().Add(-10 * time.Minute).Unix())}, "end": {fmt.Sprint(time.Now().Add(time.Minute).Unix())}}, nil)
		if code == 200 && strings.Contains(string(b), "probe line") {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("Loki's pattern ingester mined nothing in 90s: %d %s", code, b)
			break
		}
		time.Sleep(time.Second)
	}
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	body, traceID := corpusPush(base)
	for _, u := range []string{loki, e.srv.URL} {
		resp, err := http.Post(u+"/loki/api/v1/push", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("push to %s: %d %s", u, resp.StatusCode, b)
		}
	}
	vars := corpusVars(base, traceID)
	corpus := loadCorpus(t)
	// Loki's pattern ingester learns patterns from the pushed lines in the background and answers them some
	// tens of seconds later: wait for them.
	for _, c := range corpus {
		if c.Path == "/loki/api/v1/patterns" && c.Expect.Status == 200 {
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
				code, b := doEntry(t, c, loki, vars)
				var v any
				_ = json.Unmarshal(b, &v)
				if x, ok := testutil.Lookup(v, "data"); code == 200 && ok && testutil.NonEmpty(x) {
					break
				}
				if time.Now().After(deadline) {
					_, m := httpGet(t, loki+"/metrics", nil, nil)
					var tee []string
					for _, l := range strings.Split(string(m), "\n") {
						if strings.Contains(l, "pattern") && !strings.HasPrefix(l, "#") {
							tee = append(tee, l)
						}
					}
					t.Logf("Loki has no patterns after 60s: %d %s\nits pattern metrics:\n%s", code, b, strings.Join(tee, "\n"))
					break
				}
			}
			break
		}
	}
	var diffs []string
	for _, c := range corpus {
		lc, lb := doEntry(t, c, loki, vars)
		sc, sb := doEntry(t, c, e.srv.URL, vars)
		if lc != sc {
			diffs = append(diffs, fmt.Sprintf("%s (%s): status Loki %d (%s), Sprout %d (%s)", c.Name, c.Path, lc, tail(string(lb), 300), sc, tail(string(sb), 300)))
			continue
		}
		if lc != 200 {
			t.Logf("%s: both %d\n  Loki:   %s  Sprout: %s", c.Name, lc, lb, sb)
			continue
		}
		var lv, sv any
		if err := json.Unmarshal(lb, &lv); err != nil {
			t.Errorf("%s: Loki's answer is not JSON: %s", c.Name, lb)
			continue
		}
		if err := json.Unmarshal(sb, &sv); err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: Sprout's answer is not JSON: %s", c.Name, sb))
			continue
		}
		for _, d := range shapeDiffs("", shapeOf(lv), shapeOf(sv)) {
			if why, ok := knownShapeDiffs[d.path]; ok {
				t.Logf("%s: known difference at %s (%s): %s", c.Name, d.path, d.msg, why)
				continue
			}
			diffs = append(diffs, fmt.Sprintf("%s (%s): %s: %s\n  Loki:   %s\n  Sprout: %s", c.Name, c.Path, d.path, d.msg, tail(string(lb), 600), tail(string(sb), 600)))
		}
	}
	for _, d := range diffs {
		t.Error(d)
	}
}

// shapeOf reduces a JSON value to its shape: objects to their keys' shapes, arrays to one element shape merged
// over all elements (or an empty array), scalars to their type. "stats" is left out: Loki's has dozens of
// per-component counters (TestPeerLokiJSON compares the keys of its summary).
func shapeOf(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, val := range x {
			if k != "stats" {
				m[k] = shapeOf(val)
			}
		}
		return m
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		var el any
		for i, val := range x {
			if i == 0 {
				el = shapeOf(val)
			} else {
				el = mergeShape(el, shapeOf(val))
			}
		}
		return []any{el}
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return fmt.Sprintf("%T", v)
}

func mergeShape(a, b any) any {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for k, v := range bm {
			if av, ok := am[k]; ok {
				am[k] = mergeShape(av, v)
			} else {
				am[k] = v
			}
		}
		return am
	}
	aa, aok := a.([]any)
	ba, bok := b.([]any)
	if aok && bok {
		switch {
		case len(aa) == 0:
			return ba
		case len(ba) == 0:
			return aa
		}
		return []any{mergeShape(aa[0], ba[0])}
	}
	if fmt.Sprint(a) == fmt.Sprint(b) {
		return a
	}
	return "mixed"
}

type shapeDiff struct{ path, msg string }

func shapeDiffs(path string, peer, ours any) []shapeDiff {
	var out []shapeDiff
	switch p := peer.(type) {
	case map[string]any:
		o, ok := ours.(map[string]any)
		if !ok {
			return []shapeDiff{{path, fmt.Sprintf("Loki object, Sprout %v", ours)}}
		}
		for k, pv := range p {
			ov, ok := o[k]
			sub := strings.TrimPrefix(path+"."+k, ".")
			if !ok {
				out = append(out, shapeDiff{sub, "missing in Sprout"})
				continue
			}
			out = append(out, shapeDiffs(sub, pv, ov)...)
		}
		for k := range o {
			if _, ok := p[k]; !ok {
				out = append(out, shapeDiff{strings.TrimPrefix(path+"."+k, "."), "only in Sprout"})
			}
		}
	case []any:
		o, ok := ours.([]any)
		if !ok {
			return []shapeDiff{{path, fmt.Sprintf("Loki array, Sprout %v", ours)}}
		}
		if len(p) > 0 && len(o) == 0 {
			return []shapeDiff{{path, "empty in Sprout, not in Loki"}}
		}
		if len(p) > 0 {
			out = append(out, shapeDiffs(path+"[]", p[0], o[0])...)
		}
	default:
		if fmt.Sprint(peer) != fmt.Sprint(ours) && peer != "null" && ours != "null" {
			out = append(out, shapeDiff{path, fmt.Sprintf("Loki %v, Sprout %v", peer, ours)})
		}
	}
	return out
}
