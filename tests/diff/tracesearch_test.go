package diff

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// searchSpans runs a TraceQL search and returns trace id -> span ids of every spanset (leading zeros trimmed).
func searchSpans(base, q string, start, end int64) (map[string]map[string]bool, int, string) {
	code, body := get(base+"/api/search", url.Values{"q": {q}, "start": {fmt.Sprint(start)}, "end": {fmt.Sprint(end)}, "limit": {"1000"}, "spss": {"100"}})
	if code != 200 {
		return nil, code, strings.TrimSpace(string(body))
	}
	type spanSet struct {
		Spans []struct {
			SpanID string `json:"spanID"`
		} `json:"spans"`
	}
	var sr struct {
		Traces []struct {
			TraceID  string    `json:"traceID"`
			SpanSet  *spanSet  `json:"spanSet"`
			SpanSets []spanSet `json:"spanSets"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(body, &sr); err != nil {
		return nil, code, err.Error()
	}
	out := map[string]map[string]bool{}
	for _, tr := range sr.Traces {
		m := map[string]bool{}
		sets := tr.SpanSets
		if tr.SpanSet != nil {
			sets = append(sets, *tr.SpanSet)
		}
		for _, ss := range sets {
			for _, sp := range ss.Spans {
				m[strings.TrimLeft(sp.SpanID, "0")] = true
			}
		}
		out[strings.TrimLeft(tr.TraceID, "0")] = m
	}
	return out, code, ""
}

// splitHalves splits the model's traces (one ResourceSpans per span, in the order of traces and spans) into the
// first half of each trace's spans and the rest.
func splitHalves(td ptrace.Traces, traces []*rTrace) (first, second ptrace.Traces) {
	first, second = ptrace.NewTraces(), ptrace.NewTraces()
	i := 0
	for _, tr := range traces {
		for j := range tr.spans {
			dst := first
			if j >= (len(tr.spans)+1)/2 {
				dst = second
			}
			td.ResourceSpans().At(i).CopyTo(dst.ResourceSpans().AppendEmpty())
			i++
		}
	}
	return first, second
}

// diffSearch says how got differs from want: "" when equal; with subset, only what got has beyond want.
func diffSearch(want, got map[string]map[string]bool, subset bool) string {
	var d []string
	ids := map[string]bool{}
	for id := range want {
		ids[id] = true
	}
	for id := range got {
		ids[id] = true
	}
	var sorted []string
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	for _, id := range sorted {
		w, inW := want[id]
		g, inG := got[id]
		switch {
		case inG && !inW:
			d = append(d, "extra trace "+id)
		case inW && !inG:
			if !subset {
				d = append(d, "missing trace "+id)
			}
		default:
			var extra, missing []string
			for s := range g {
				if !w[s] {
					extra = append(extra, s)
				}
			}
			for s := range w {
				if !g[s] && !subset {
					missing = append(missing, s)
				}
			}
			if len(extra)+len(missing) > 0 {
				sort.Strings(extra)
				sort.Strings(missing)
				d = append(d, fmt.Sprintf("trace %s: extra spans %v, missing spans %v", id, extra, missing))
			}
		}
	}
	if len(d) > 6 {
		d = append(d[:6], fmt.Sprintf("… %d more", len(d)-6))
	}
	return strings.Join(d, "; ")
}

// traceFloor is the least number of queries of each TraceQL corpus whose Sprout answer must equal the
// reference: every query (the run recorded in docs/traces.md). The data are seeded and the reference exact, so
// there is no slack.
var traceFloor = map[string]int{
	"TraceQL docs":      116,
	"TraceQL generated": 2500,
}

// TestTraceQLCorpusDiff sends the model's traces to Tempo and to Sprout and runs both TraceQL corpora: the
// reference answer (traces and the spans matched in each) is the model's; Sprout's must equal it, Tempo's must
// be a subset of it (its search may sample). A query Sprout refuses counts as unsupported, never as equal.
func TestTraceQLCorpusDiff(t *testing.T) {
	tempo, tempoOTLP := startTempo(t)
	sprout, sproutOTLP := startSproutOTLP(t)
	base := time.Now().Add(-90 * time.Second).Truncate(time.Second)
	td, traces := genTraceModel(traceModelSeed, base)
	// Sprout gets the first half of every trace's spans first and, once it has written them to a block, the
	// rest: every trace of more than one span then lies partly in a block and partly in memory (and the WAL;
	// later in a second block), and its answers must join the parts. Tempo gets every span at once: it searches
	// each part of a split trace on its own (trace-level intrinsics of a part without the root are nil there),
	// which is not what its subset check is after.
	whole, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	post(t, tempoOTLP, "application/x-protobuf", whole, nil)
	first, second := splitHalves(td, traces)
	start, end := base.Add(-time.Minute).Unix(), time.Now().Add(3*time.Minute).Unix()
	for i, part := range []ptrace.Traces{first, second} {
		body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(part)
		if err != nil {
			t.Fatal(err)
		}
		post(t, sproutOTLP, "application/x-protobuf", body, nil)
		if i == 0 {
			testutil.Eventually(t, 120*time.Second, func() error {
				code, b := get(sprout+"/api/search", url.Values{"q": {"{ }"}, "start": {fmt.Sprint(start)}, "end": {fmt.Sprint(end)}})
				var r struct {
					Metrics struct {
						TotalBlocks int `json:"totalBlocks"`
					} `json:"metrics"`
				}
				if err := json.Unmarshal(b, &r); code != 200 || err != nil || r.Metrics.TotalBlocks == 0 {
					return fmt.Errorf("sprout has written no block yet: %d %s", code, trunc(string(b), 200))
				}
				return nil
			})
		}
	}
	for name, u := range map[string]string{"tempo": tempo, "sprout": sprout} {
		testutil.Eventually(t, 120*time.Second, func() error {
			got, code, msg := searchSpans(u, `{ }`, start, end)
			if code != 200 || len(got) < len(traces) {
				return fmt.Errorf("%s: %d, %d traces %s", name, code, len(got), msg)
			}
			return nil
		})
	}
	strict := os.Getenv("SPROUT_DIFF_STRICT") != ""
	var summary strings.Builder
	dq, dm := docsTexts()
	gq, gm := genTraceQLCorpus()
	for _, c := range []struct {
		name  string
		file  string
		qs    []string
		model []sexpr
	}{{"TraceQL docs", "traceql_docs.txt", dq, dm}, {"TraceQL generated", "traceql_generated.txt", gq, gm}} {
		if committed := readCorpus(t, c.file); strings.Join(committed, "\n") != strings.Join(c.qs, "\n") {
			t.Fatalf("testdata/%s is not what the model writes; run go test ./tests/diff -run Corpus -update", c.file)
		}
		tempoWhy := map[string]int{}
		var sEqual, sDiff, sRefused, tSubset, tEqual, tNot, tRefused, matching int
		for i, q := range c.qs {
			want := expectSearch(c.model[i], traces)
			if len(want) > 0 {
				matching++
			}
			sGot, sc, smsg := searchSpans(sprout, q, start, end)
			tGot, tc, tmsg := searchSpans(tempo, q, start, end)
			switch {
			case sc/100 == 4:
				sRefused++
				t.Logf("refused by Sprout: %s\n  %d %s (tempo: %d %s)", q, sc, smsg, tc, trunc(tmsg, 200))
			case sc != 200:
				sDiff++
				t.Errorf("sprout %d: %s\n  %s", sc, q, smsg)
			default:
				if d := diffSearch(want, sGot, false); d != "" {
					sDiff++
					t.Logf("DIFFERENT from the reference: %s\n  sprout: %s", q, d)
				} else {
					sEqual++
				}
			}
			switch {
			case tc != 200:
				tRefused++
				t.Logf("refused by Tempo: %s\n  %d %s", q, tc, trunc(tmsg, 300))
			default:
				if d := diffSearch(want, tGot, true); d != "" {
					tNot++
					why := tempoExtraReason(q)
					tempoWhy[why]++
					t.Logf("Tempo NOT A SUBSET of the reference (%s): %s\n  tempo: %s", why, q, diffSearch(want, tGot, false))
				} else {
					tSubset++
					if diffSearch(want, tGot, false) == "" {
						tEqual++
					}
				}
			}
		}
		fmt.Fprintf(&summary, "%s: run %d (%d with a non-empty reference answer); Sprout equal to the reference %d, different %d, refused %d; Tempo a subset %d (equal %d), not a subset %d, refused %d\n",
			c.name, len(c.qs), matching, sEqual, sDiff, sRefused, tSubset, tEqual, tNot, tRefused)
		for why, n := range tempoWhy {
			fmt.Fprintf(&summary, "  Tempo not a subset, %s: %d\n", why, n)
		}
		if sEqual < traceFloor[c.name] {
			t.Errorf("%s: %d equal answers, fewer than the floor of %d", c.name, sEqual, traceFloor[c.name])
		}
		if strict && sDiff > 0 {
			t.Errorf("%s: %d answers differ", c.name, sDiff)
		}
	}
	t.Log("\n" + summary.String())
}

var (
	eventNil      = regexp.MustCompile(`event\.[A-Za-z_.]+ = nil`)
	negStructural = regexp.MustCompile(`[})] !(>>|<<|>|<|~) [{(]`)
	partialAgg    = regexp.MustCompile(`\| (count\(\)|avg\(|min\(|max\(|sum\()`)
)

// tempoExtraReason names the known cause of spans Tempo returns beyond the reference (docs/traces.md has the
// evidence): the negated structural operators (documented by Tempo as experimental, with false positives),
// event attributes tested against nil (which the reference now answers as Tempo does on a plain filter), and
// scalar filters evaluated on part of a trace.
func tempoExtraReason(q string) string {
	switch {
	case negStructural.MatchString(q):
		return "negated structural operator (experimental in Tempo, false positives documented)"
	case eventNil.MatchString(q):
		return "event attribute = nil"
	case partialAgg.MatchString(q):
		return "scalar filter on part of a trace"
	}
	return "unexplained"
}
