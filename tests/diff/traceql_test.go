package diff

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// genSpan is what the TraceQL reference predicates read of one generated span.
type genSpan struct {
	service, env, name, kind, status, method string
	code                                     int64
	retry                                    bool
	ratio                                    float64
	dur                                      time.Duration
}

// genTraces builds 40 traces of 3 to 8 nested spans over three services, with errors, int/string/bool/float
// span attributes and a resource attribute, and returns them with the spans of each trace (by trace id hex).
func genTraces(seed int64, base time.Time) (ptrace.Traces, map[string][]genSpan) {
	r := rand.New(rand.NewSource(seed))
	td := ptrace.NewTraces()
	ref := map[string][]genSpan{}
	for i := 0; i < 40; i++ {
		var tid pcommon.TraceID
		r.Read(tid[:])
		id := hex.EncodeToString(tid[:])
		start := base.Add(time.Duration(r.Intn(60)) * time.Second)
		var parent pcommon.SpanID
		for j, n := 0, 3+r.Intn(6); j < n; j++ {
			g := genSpan{
				service: []string{"frontend", "backend", "db"}[r.Intn(3)],
				env:     []string{"prod", "dev"}[r.Intn(2)],
				name:    fmt.Sprintf("op-%d", r.Intn(5)),
				kind:    []string{"server", "client", "internal"}[r.Intn(3)],
				status:  []string{"unset", "unset", "ok", "error"}[r.Intn(4)],
				method:  []string{"GET", "POST"}[r.Intn(2)],
				code:    []int64{200, 200, 201, 404, 500, 503}[r.Intn(6)],
				retry:   r.Intn(3) == 0,
				ratio:   r.Float64(),
				dur:     time.Duration(1+r.Intn(2000)) * time.Millisecond,
			}
			ref[id] = append(ref[id], g)
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", g.service)
			rs.Resource().Attributes().PutStr("deployment.environment", g.env)
			sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetTraceID(tid)
			var sid pcommon.SpanID
			r.Read(sid[:])
			sp.SetSpanID(sid)
			sp.SetParentSpanID(parent)
			parent = sid
			sp.SetName(g.name)
			sp.SetKind(map[string]ptrace.SpanKind{"server": ptrace.SpanKindServer, "client": ptrace.SpanKindClient, "internal": ptrace.SpanKindInternal}[g.kind])
			sp.Status().SetCode(map[string]ptrace.StatusCode{"unset": ptrace.StatusCodeUnset, "ok": ptrace.StatusCodeOk, "error": ptrace.StatusCodeError}[g.status])
			s0 := start.Add(time.Duration(j) * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s0))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s0.Add(g.dur)))
			sp.Attributes().PutStr("http.method", g.method)
			sp.Attributes().PutInt("http.status_code", g.code)
			sp.Attributes().PutBool("retry", g.retry)
			sp.Attributes().PutDouble("ratio", g.ratio)
		}
	}
	return td, ref
}

// traceqlCorpus pairs spanset filters with the predicate that defines their answer on the generated spans: a
// trace matches when one of its spans does.
var traceqlCorpus = []struct {
	q    string
	pred func(genSpan) bool
}{
	{`{ }`, func(genSpan) bool { return true }},
	{`{ resource.service.name = "frontend" }`, func(s genSpan) bool { return s.service == "frontend" }},
	{`{ resource.service.name != "db" && span.http.status_code < 300 }`, func(s genSpan) bool { return s.service != "db" && s.code < 300 }},
	{`{ status = error }`, func(s genSpan) bool { return s.status == "error" }},
	{`{ status = ok }`, func(s genSpan) bool { return s.status == "ok" }},
	{`{ status != error }`, func(s genSpan) bool { return s.status != "error" }},
	{`{ span.http.status_code >= 500 }`, func(s genSpan) bool { return s.code >= 500 }},
	{`{ .http.status_code = 404 }`, func(s genSpan) bool { return s.code == 404 }},
	{`{ duration > 1s }`, func(s genSpan) bool { return s.dur > time.Second }},
	{`{ duration <= 10ms }`, func(s genSpan) bool { return s.dur <= 10*time.Millisecond }},
	{`{ name = "op-3" }`, func(s genSpan) bool { return s.name == "op-3" }},
	{`{ name =~ "op-[12]" }`, func(s genSpan) bool { return s.name == "op-1" || s.name == "op-2" }},
	{`{ name !~ "op-[0-3]" }`, func(s genSpan) bool { return s.name == "op-4" }},
	{`{ kind = server }`, func(s genSpan) bool { return s.kind == "server" }},
	{`{ span.http.method = "POST" && status = error }`, func(s genSpan) bool { return s.method == "POST" && s.status == "error" }},
	{`{ span.http.method = "GET" || duration > 1500ms }`, func(s genSpan) bool { return s.method == "GET" || s.dur > 1500*time.Millisecond }},
	{`{ span.retry = true }`, func(s genSpan) bool { return s.retry }},
	{`{ span.ratio > 0.5 }`, func(s genSpan) bool { return s.ratio > 0.5 }},
	{`{ resource.deployment.environment = "prod" && duration < 100ms }`, func(s genSpan) bool { return s.env == "prod" && s.dur < 100*time.Millisecond }},
	{`{ span.nope = "x" }`, func(genSpan) bool { return false }},
}

// searchIDs runs a TraceQL search and returns the trace ids found (leading zeros removed, as Tempo writes them).
func searchIDs(base, q string, start, end int64) (map[string]bool, int, string) {
	code, body := get(base+"/api/search", url.Values{"q": {q}, "start": {fmt.Sprint(start)}, "end": {fmt.Sprint(end)}, "limit": {"1000"}, "spss": {"1"}})
	if code != 200 {
		return nil, code, string(body)
	}
	var sr struct {
		Traces []struct {
			TraceID string `json:"traceID"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(body, &sr); err != nil {
		return nil, code, err.Error()
	}
	ids := map[string]bool{}
	for _, tr := range sr.Traces {
		ids[strings.TrimLeft(tr.TraceID, "0")] = true
	}
	return ids, code, ""
}

// TestTraceQLDiff sends the generated traces to Tempo and to Sprout. The reference answer of each query is
// computed from the generated spans; Sprout's answer must equal it, and Tempo's must be a subset of it (Tempo's
// search is not exhaustive: it may return fewer traces than match).
func TestTraceQLDiff(t *testing.T) {
	tempo, tempoOTLP := startTempo(t)
	sprout, sproutOTLP := startSproutOTLP(t)
	// Within Tempo's ingestion slack of the present: spans far in the past are kept under their ingest time.
	base := time.Now().Add(-90 * time.Second).Truncate(time.Second)
	td, ref := genTraces(1, base)
	body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{tempoOTLP, sproutOTLP} {
		post(t, u, "application/x-protobuf", body, nil)
	}
	start, end := base.Add(-time.Minute).Unix(), time.Now().Add(time.Minute).Unix()
	// Both must see the data before the comparison: Tempo's search becomes complete only after its live store
	// took the push in; poll until each finds at least half the traces.
	for name, u := range map[string]string{"tempo": tempo, "sprout": sprout} {
		testutil.Eventually(t, 120*time.Second, func() error {
			ids, code, msg := searchIDs(u, `{ }`, start, end)
			if code != 200 || len(ids) < len(ref)/2 {
				return fmt.Errorf("%s: %d, %d traces %s", name, code, len(ids), msg)
			}
			return nil
		})
	}
	var report strings.Builder
	sproutEqual, tempoSubset, tempoFound, refTotal := 0, 0, 0, 0
	for _, c := range traceqlCorpus {
		want := map[string]bool{}
		for id, spans := range ref {
			for _, s := range spans {
				if c.pred(s) {
					want[strings.TrimLeft(id, "0")] = true
					break
				}
			}
		}
		refTotal += len(want)
		sIDs, sc, smsg := searchIDs(sprout, c.q, start, end)
		tIDs, tc, tmsg := searchIDs(tempo, c.q, start, end)
		sOK := sc == 200 && sameSet(sIDs, want)
		var extra []string
		for id := range tIDs {
			if !want[id] {
				extra = append(extra, id)
			}
		}
		tOK := tc == 200 && len(extra) == 0
		tempoFound += len(tIDs)
		if sOK {
			sproutEqual++
		}
		if tOK {
			tempoSubset++
		}
		fmt.Fprintf(&report, "%-70s reference %2d, sprout %2d (%s), tempo %2d (%s)\n", c.q, len(want), len(sIDs),
			map[bool]string{true: "equal", false: fmt.Sprintf("DIFFERENT %d %s", sc, smsg)}[sOK], len(tIDs),
			map[bool]string{true: "subset", false: fmt.Sprintf("NOT A SUBSET %d %s extra %v", tc, tmsg, extra)}[tOK])
		if !sOK {
			t.Errorf("%s: Sprout's answer is not the reference answer:\n  reference: %v\n  sprout:    %v", c.q, keys(want), keys(sIDs))
		}
	}
	t.Logf("\n%sTraceQL: run %d, Sprout equal to the reference %d, Tempo a subset of it %d (Tempo found %d of %d matching traces)",
		report.String(), len(traceqlCorpus), sproutEqual, tempoSubset, tempoFound, refTotal)
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
