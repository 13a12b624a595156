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

// nilTrace is one trace whose spans cover the cases of an attribute of events and links compared with nil:
// a span without events or links, with one event lacking the attribute, with one having it, with two of which
// one has it, and with one that has only another attribute.
func nilTrace(base time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "nil-svc")
	ss := rs.ScopeSpans().AppendEmpty()
	tid := pcommon.TraceID{0xaa, 1}
	other := pcommon.TraceID{0xbb, 2}
	for i, c := range []struct {
		events [][2]string // attribute key, value ("" key: an event without attributes)
		links  [][2]string
	}{
		{},
		{events: [][2]string{{"", ""}}, links: [][2]string{{"", ""}}},
		{events: [][2]string{{"x", "1"}}, links: [][2]string{{"x", "1"}}},
		{events: [][2]string{{"x", "1"}, {"", ""}}, links: [][2]string{{"x", "1"}, {"", ""}}},
		{events: [][2]string{{"y", "2"}}, links: [][2]string{{"y", "2"}}},
		{events: [][2]string{{"x", "1"}, {"y", "2"}}, links: [][2]string{{"x", "1"}, {"y", "2"}}},
	} {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, byte(i + 1)})
		if i > 0 {
			sp.SetParentSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, 1})
		}
		sp.SetName(fmt.Sprintf("s%d", i+1))
		st := base.Add(time.Duration(i) * time.Millisecond)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(st))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(st.Add(5 * time.Millisecond)))
		for k, e := range c.events {
			ev := sp.Events().AppendEmpty()
			ev.SetName(fmt.Sprintf("e%d", k))
			ev.SetTimestamp(pcommon.NewTimestampFromTime(st.Add(time.Millisecond)))
			if e[0] != "" {
				ev.Attributes().PutStr(e[0], e[1])
			}
		}
		for k, l := range c.links {
			ln := sp.Links().AppendEmpty()
			ln.SetTraceID(other)
			ln.SetSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 1, byte(k + 1)})
			if l[0] != "" {
				ln.Attributes().PutStr(l[0], l[1])
			}
		}
	}
	return td
}

// TestTraceQLNilDiff runs comparisons of event and link attributes with nil, and of intrinsics with nil, on
// both sides and requires the same spans or the same refusal. Tempo 3 tests `event.x = nil` on each event's
// attribute rows: a span matches when one of its events has attributes and x is not among them (span 5 and
// span 6 here, not the span without events nor the one whose only event has no attribute).
func TestTraceQLNilDiff(t *testing.T) {
	tempo, tempoOTLP := startTempo(t)
	sprout, sproutOTLP := startSproutOTLP(t)
	base := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(nilTrace(base))
	if err != nil {
		t.Fatal(err)
	}
	post(t, tempoOTLP, "application/x-protobuf", body, nil)
	post(t, sproutOTLP, "application/x-protobuf", body, nil)
	start, end := base.Add(-time.Minute).Unix(), time.Now().Add(3*time.Minute).Unix()
	for name, u := range map[string]string{"tempo": tempo, "sprout": sprout} {
		testutil.Eventually(t, 120*time.Second, func() error {
			got, code, msg := searchSpans(u, `{ }`, start, end)
			if code != 200 || len(got) == 0 {
				return fmt.Errorf("%s: %d %s", name, code, msg)
			}
			return nil
		})
	}
	spans := func(m map[string]map[string]bool) string {
		var out []string
		for _, sp := range m {
			for id := range sp {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	// Tempo answers these as Sprout does. Left out, as Tempo answers a subset of Sprout's answer there:
	// `{ event.x = nil } | count() > 1` (Tempo evaluates the condition a second time, on the event attributes
	// it fetched, and drops span 6) and `{ link.x = nil || name = "s1" }` (Tempo drops span 5).
	for _, q := range []string{
		`{ event.x = nil }`, `{ event.x != nil }`, `{ event.x = "1" }`, `{ event.x != "1" }`,
		`{ event.x = nil && event.y = "2" }`, `{ event.x = nil || event.y = "2" }`, `{ event.x = nil && name = "s4" }`,
		`{ link.x = nil }`, `{ link.x != nil }`, `{ link.x = nil && link.y = "2" }`,
		`{ event:name = nil }`, `{ event:name = "e1" }`, `{ name = nil }`,
	} {
		tg, tc, tm := searchSpans(tempo, q, start, end)
		sg, sc, sm := searchSpans(sprout, q, start, end)
		if tc != sc || spans(tg) != spans(sg) || (tc != 200 && tm != sm) {
			t.Errorf("%s:\n  tempo  %d [%s] %s\n  sprout %d [%s] %s", q, tc, spans(tg), tm, sc, spans(sg), sm)
		}
	}
}
