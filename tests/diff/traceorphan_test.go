package diff

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// orphanTraces are two traces without the usual single root: in the first, a root R with a child C, and an
// orphan O (its parent was never sent) with a child O1; in the second, two roots R1 and R2, and R2's child C2.
func orphanTraces(base time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "orphan-svc")
	ss := rs.ScopeSpans().AppendEmpty()
	add := func(trace byte, id byte, parent byte, name string, off time.Duration) {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{0xcc, trace})
		sp.SetSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, trace, id})
		if parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, trace, parent})
		}
		sp.SetName(name)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(off)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(off + 10*time.Millisecond)))
	}
	add(1, 1, 0, "R", 0)
	add(1, 2, 1, "C", time.Millisecond)
	add(1, 3, 9, "O", 2*time.Millisecond) // parent 9 is never sent
	add(1, 4, 3, "O1", 3*time.Millisecond)
	add(2, 1, 0, "R1", 0)
	add(2, 2, 0, "R2", time.Millisecond)
	add(2, 3, 2, "C2", 2*time.Millisecond)
	return td
}

// TestTraceQLOrphanDiff runs structural operators and trace-level intrinsics over spans without a parent in the
// trace (orphans, several roots) on both sides and requires the same spans.
func TestTraceQLOrphanDiff(t *testing.T) {
	tempo, tempoOTLP := startTempo(t)
	sprout, sproutOTLP := startSproutOTLP(t)
	base := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(orphanTraces(base))
	if err != nil {
		t.Fatal(err)
	}
	post(t, tempoOTLP, "application/x-protobuf", body, nil)
	post(t, sproutOTLP, "application/x-protobuf", body, nil)
	start, end := base.Add(-time.Minute).Unix(), time.Now().Add(3*time.Minute).Unix()
	for name, u := range map[string]string{"tempo": tempo, "sprout": sprout} {
		testutil.Eventually(t, 120*time.Second, func() error {
			got, code, msg := searchSpans(u, `{ }`, start, end)
			if code != 200 || len(got) < 2 {
				return fmt.Errorf("%s: %d %d traces %s", name, code, len(got), msg)
			}
			return nil
		})
	}
	spans := func(m map[string]map[string]bool) string {
		var out []string
		for tr, sp := range m {
			for id := range sp {
				out = append(out, tr[:2]+"/"+id)
			}
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	for _, q := range []string{
		`{ }`, `{ } > { }`, `{ } >> { }`, `{ } < { }`, `{ } ~ { }`, `{ name = "O" } > { }`, `{ } > { name = "O1" }`,
		`{ name = "R" } >> { }`, `{ name = "R1" } ~ { name = "R2" }`, `{ trace:rootName = "R" }`,
		`{ span:parentID != nil }`, `{ } | count() = 4`, `{ name = "O" } &> { }`,
	} {
		tg, tc, tm := searchSpans(tempo, q, start, end)
		sg, sc, sm := searchSpans(sprout, q, start, end)
		if tc != sc || spans(tg) != spans(sg) {
			t.Errorf("%s:\n  tempo  %d [%s] %s\n  sprout %d [%s] %s", q, tc, spans(tg), tm, sc, spans(sg), sm)
		}
	}
	// Known to differ (docs/traces.md): with two roots Tempo names the trace after the last one it received,
	// Sprout after the one that started first; Tempo 3.0.3 matches no span with span:childCount here.
	for _, q := range []string{`{ trace:rootName = "R2" }`, `{ span:childCount = 0 }`} {
		tg, tc, _ := searchSpans(tempo, q, start, end)
		sg, sc, _ := searchSpans(sprout, q, start, end)
		t.Logf("known difference %s: tempo %d [%s], sprout %d [%s]", q, tc, spans(tg), sc, spans(sg))
	}
}
