package diff

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// answer is one side's reply reduced to what both APIs define: the status code, and for a 200 the result type
// and the result in a canonical order.
type answer struct {
	code int
	typ  string
	res  any
	raw  string
}

// canonical reduces a Prometheus- or Loki-shaped query answer. Streams and series are sorted by their label
// sets (the APIs leave their order open; an instant vector after sort()/topk is compared as a set too, which
// the report says), values inside a stream by (timestamp, line), so that lines sharing a timestamp may come in
// either order. stats, warnings and infos are dropped.
func canonical(code int, body []byte) answer {
	a := answer{code: code, raw: string(body)}
	if code != 200 {
		return a
	}
	var v struct {
		Data struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		a.typ = "invalid JSON: " + err.Error()
		return a
	}
	a.typ = v.Data.ResultType
	switch a.typ {
	case "streams":
		var ss []struct {
			Stream map[string]string `json:"stream"`
			Values [][]any           `json:"values"`
		}
		_ = json.Unmarshal(v.Data.Result, &ss)
		// Streams whose labels differ only in __error_details__ become one after its text is set aside.
		merged := map[string][]any{}
		for _, s := range ss {
			k := labelString(s.Stream)
			for _, e := range s.Values {
				if len(e) >= 2 {
					merged[k] = append(merged[k], []any{fmt.Sprint(e[0]), fmt.Sprint(e[1])})
				}
			}
		}
		var out []any
		for k, vals := range merged {
			sort.Slice(vals, func(i, j int) bool {
				x, y := vals[i].([]any), vals[j].([]any)
				if x[0] != y[0] {
					return tsLess(x[0].(string), y[0].(string))
				}
				return x[1].(string) < y[1].(string)
			})
			out = append(out, []any{k, vals})
		}
		a.res = sortByKey(out)
	case "matrix", "vector":
		var ss []struct {
			Metric     map[string]string `json:"metric"`
			Values     [][]any           `json:"values"`
			Value      []any             `json:"value"`
			Histograms [][]any           `json:"histograms"`
			Histogram  []any             `json:"histogram"`
		}
		_ = json.Unmarshal(v.Data.Result, &ss)
		var out []any
		for _, s := range ss {
			var vals []any
			for _, p := range s.Values {
				vals = append(vals, p)
			}
			if s.Value != nil {
				vals = append(vals, s.Value)
			}
			// Native histogram samples follow the float ones, as {"count","sum","buckets"} objects.
			for _, p := range s.Histograms {
				vals = append(vals, p)
			}
			if s.Histogram != nil {
				vals = append(vals, s.Histogram)
			}
			out = append(out, []any{labelString(s.Metric), vals})
		}
		a.res = sortByKey(out)
	default:
		var x any
		_ = json.Unmarshal(v.Data.Result, &x)
		a.res = x
	}
	return a
}

func tsLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func labelString(m map[string]string) string {
	if _, ok := m["__error_details__"]; ok {
		// The text of a parser's error is the wording of its decoder (Loki's jsoniter, Sprout's encoding/json);
		// that there is one is compared, not what it says.
		m["__error_details__"] = "…"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range ks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

func sortByKey(xs []any) []any {
	sort.SliceStable(xs, func(i, j int) bool { return xs[i].([]any)[0].(string) < xs[j].([]any)[0].(string) })
	if xs == nil {
		return []any{}
	}
	return xs
}

// sameValue walks two canonical results; strings that are numbers on both sides are equal within a relative
// 1e-9 (the engines sum in different orders), NaN equals NaN. It returns where they first differ.
func sameValue(a, b any, path string) (bool, string) {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok {
			return false, path + ": type"
		}
		if len(x) != len(y) {
			return false, fmt.Sprintf("%s: length %d vs %d", path, len(x), len(y))
		}
		for i := range x {
			if ok, where := sameValue(x[i], y[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return false, where
			}
		}
		return true, ""
	case string:
		y, ok := b.(string)
		if !ok {
			return false, path + ": type"
		}
		if x == y {
			return true, ""
		}
		fx, ex := strconv.ParseFloat(x, 64)
		fy, ey := strconv.ParseFloat(y, 64)
		if ex == nil && ey == nil && closeEnough(fx, fy) {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %q vs %q", path, trunc(x, 200), trunc(y, 200))
	case float64:
		y, ok := b.(float64)
		if ok && closeEnough(x, y) {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %v vs %v", path, a, b)
	default:
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) == string(jb) {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %s vs %s", path, trunc(string(ja), 200), trunc(string(jb), 200))
	}
}

func closeEnough(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	d := math.Abs(a - b)
	return d <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) || d < 1e-12
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// verdict classifies one query's pair of answers.
type verdict int

const (
	equal         verdict = iota // both 200 with the same result, or both refused with the same status
	different                    // both 200 with different results, or different non-200 statuses
	refusedSprout                // the peer answers, Sprout refuses (4xx): an unsupported construct
	refusedPeer                  // Sprout answers, the peer refuses
	equalTies                    // topk/bottomk: the same values at every step, other series chosen among equal ones
	peerRegex                    // differs only where Loki's label-regex shortcut is unanchored (see docs/logs.md)
)

func (v verdict) String() string {
	return [...]string{"equal", "different", "refused by Sprout", "refused by peer", "equal but for ties", "Loki's unanchored label regex"}[v]
}

func judge(peer, sprout answer) (verdict, string) {
	switch {
	case peer.code == 200 && sprout.code == 200:
		if peer.typ != sprout.typ {
			return different, fmt.Sprintf("result type %q vs %q", peer.typ, sprout.typ)
		}
		if ok, where := sameValue(peer.res, sprout.res, "result"); !ok {
			return different, where
		}
		return equal, ""
	case peer.code == sprout.code:
		return equal, ""
	case peer.code == 200 && sprout.code/100 == 4:
		return refusedSprout, ""
	case sprout.code == 200 && peer.code/100 == 4:
		return refusedPeer, ""
	}
	return different, fmt.Sprintf("status %d vs %d", peer.code, sprout.code)
}

// tally counts verdicts and keeps the report of every query that was not equal.
type tally struct {
	name      string
	peerRegex *regexp.Regexp // queries where a difference is put down to the peer's known behaviour
	run       int
	counts    [6]int
	reports   []string
}

func (t *tally) add(what string, params url.Values, peer, sprout answer) verdict {
	t.run++
	v, where := judge(peer, sprout)
	q := params.Get("query")
	if v == different && peer.code == 200 && (strings.Contains(q, "topk(") || strings.Contains(q, "bottomk(")) {
		if ok, _ := sameValue(valuesOnly(peer.res), valuesOnly(sprout.res), "values"); ok {
			v = equalTies
		}
	}
	if v == different && t.peerRegex != nil && t.peerRegex.MatchString(q) {
		v = peerRegex
	}
	t.counts[v]++
	if v != equal && v != equalTies {
		pj, _ := json.Marshal(peer.res)
		sj, _ := json.Marshal(sprout.res)
		ps, ss := string(pj), string(sj)
		if peer.code != 200 {
			ps = strings.TrimSpace(peer.raw)
		}
		if sprout.code != 200 {
			ss = strings.TrimSpace(sprout.raw)
		}
		t.reports = append(t.reports, fmt.Sprintf("%s: %s %s\n  query: %s\n  diff:   %s\n  peer   (%d): %s\n  sprout (%d): %s",
			v, what, paramsNoQuery(params), params.Get("query"), where, peer.code, trunc(ps, 600), sprout.code, trunc(ss, 600)))
	}
	return v
}

func paramsNoQuery(p url.Values) string {
	q := url.Values{}
	for k, v := range p {
		if k != "query" {
			q[k] = v
		}
	}
	return q.Encode()
}

func (t *tally) summary() string {
	diff := fmt.Sprint(t.counts[different])
	if t.peerRegex != nil {
		diff = fmt.Sprintf("%d (of which %d from Loki's unanchored label regex)", t.counts[different]+t.counts[peerRegex], t.counts[peerRegex])
	}
	return fmt.Sprintf("%s: run %d, equal %d (of which %d equal but for topk/bottomk ties), different %s, refused by Sprout %d, refused by peer %d",
		t.name, t.run, t.counts[equal]+t.counts[equalTies], t.counts[equalTies], diff, t.counts[refusedSprout], t.counts[refusedPeer])
}

// valuesOnly projects a canonical matrix or vector on its values: per timestamp, the sorted values of all
// series. topk and bottomk choose freely among series with equal values, so their label sets may differ.
func valuesOnly(res any) any {
	series, ok := res.([]any)
	if !ok {
		return res
	}
	at := map[string][]float64{}
	for _, s := range series {
		pair, ok := s.([]any)
		if !ok || len(pair) != 2 {
			return res
		}
		pts, _ := pair[1].([]any)
		for _, p := range pts {
			tv, ok := p.([]any)
			if !ok || len(tv) != 2 {
				return res
			}
			f, _ := strconv.ParseFloat(fmt.Sprint(tv[1]), 64)
			k := fmt.Sprint(tv[0])
			at[k] = append(at[k], f)
		}
	}
	var keys []string
	for k := range at {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []any
	for _, k := range keys {
		vs := at[k]
		sort.Float64s(vs)
		row := []any{k}
		for _, v := range vs {
			row = append(row, strconv.FormatFloat(v, 'g', -1, 64))
		}
		out = append(out, row)
	}
	return out
}

// TestCanonical checks the normalisation itself: order of streams, values sharing a timestamp, float rounding.
func TestCanonical(t *testing.T) {
	a := canonical(200, []byte(`{"status":"success","data":{"resultType":"streams","result":[
		{"stream":{"b":"2"},"values":[["20","x"],["10","y"],["10","a"]]},{"stream":{"a":"1"},"values":[["5","z"]]}],"stats":{"x":1}}}`))
	b := canonical(200, []byte(`{"status":"success","data":{"resultType":"streams","result":[
		{"stream":{"a":"1"},"values":[["5","z"]]},{"stream":{"b":"2"},"values":[["20","x"],["10","a"],["10","y"]]}]}}`))
	if v, where := judge(a, b); v != equal {
		t.Fatalf("streams: %s %s", v, where)
	}
	m1 := canonical(200, []byte(`{"data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.30000000000000004"],[2,"NaN"]]}]}}`))
	m2 := canonical(200, []byte(`{"data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.3"],[2,"NaN"]]}]}}`))
	if v, where := judge(m1, m2); v != equal {
		t.Fatalf("matrix: %s %s", v, where)
	}
	m3 := canonical(200, []byte(`{"data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.31"],[2,"NaN"]]}]}}`))
	if v, _ := judge(m1, m3); v != different {
		t.Fatalf("matrix 0.3 vs 0.31: %s", v)
	}
	if v, _ := judge(answer{code: 200}, answer{code: 400}); v != refusedSprout {
		t.Fatalf("refusal: %s", v)
	}
	if v, _ := judge(answer{code: 400}, answer{code: 400}); v != equal {
		t.Fatalf("both refuse: %s", v)
	}
}

// equalFloor is the least number of equal answers each corpus must keep (about 1 % below the count of the run
// recorded in docs/logs.md and docs/metrics.md: the data's times follow the clock, so counts move a little from
// run to run). A fix raises the floor; a change that makes answers differ from the peer's fails the test.
var equalFloor = map[string]int{
	"LogQL docs":       260,
	"LogQL generated":  4215,
	"PromQL docs":      268,
	"PromQL generated": 4310,
	"PromQL native histograms and out-of-order": 49,
}

func (t *tally) checkFloor(tb testing.TB) {
	tb.Helper()
	if got, floor := t.counts[equal]+t.counts[equalTies], equalFloor[t.name]; got < floor {
		tb.Errorf("%s: %d equal answers, fewer than the floor of %d (see the differences above)", t.name, got, floor)
	}
}
