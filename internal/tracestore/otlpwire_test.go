package tracestore

import (
	"context"
	"testing"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// TestWalkRecordMatchesPdata checks that the wire walker reads the same fields pdata does and that the span
// encodings it slices out decode back to the same spans.
func TestWalkRecordMatchesPdata(t *testing.T) {
	td := batch(1, 3, 4)
	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://example.com/schema")
	rs.Resource().Attributes().PutInt("service.name", 42)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(tid(9))
	sp.SetSpanID(sid(9, 1))
	sp.SetName("odd")
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.SetKind(ptrace.SpanKindConsumer)
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := parseRecord(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.spans) != td.SpanCount() {
		t.Fatalf("walker found %d spans, pdata %d", len(rec.spans), td.SpanCount())
	}
	dec := newDecoder()
	i := 0
	for r := 0; r < td.ResourceSpans().Len(); r++ {
		rs := td.ResourceSpans().At(r)
		for s := 0; s < rs.ScopeSpans().Len(); s++ {
			ss := rs.ScopeSpans().At(s)
			for k := 0; k < ss.Spans().Len(); k++ {
				want := ss.Spans().At(k)
				got := rec.spans[i]
				spanID, parentID := got.sp.ids()
				i++
				if got.tid != want.TraceID() || spanID != want.SpanID() || parentID != want.ParentSpanID() ||
					got.sp.name() != want.Name() || got.sp.kind != int32(want.Kind()) || got.sp.status != int32(want.Status().Code()) ||
					got.sp.start != int64(want.StartTimestamp()) || got.sp.end != int64(want.EndTimestamp()) {
					t.Fatalf("span %d: walker %+v differs from pdata", i, got)
				}
				svc, _ := rs.Resource().Attributes().Get("service.name")
				if got.sp.res().service != svc.AsString() {
					t.Fatalf("service %q, want %q", got.sp.res().service, svc.AsString())
				}
				dsp, err := dec.decodeParts(got.sp.res().enc, got.sp.scope.enc, wrapSpan(nil, got.sp.rawBytes()))
				if err != nil {
					t.Fatal(err)
				}
				wantTD, gotTD := ptrace.NewTraces(), ptrace.NewTraces()
				want.CopyTo(wantTD.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty())
				dsp.Span.CopyTo(gotTD.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty())
				if !wantTD.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Equal(dsp.Span.Attributes()) {
					t.Fatalf("span %d attributes differ after decode", i)
				}
				if dsp.Resource.SchemaURL != rs.SchemaUrl() || !dsp.Resource.Attrs.Equal(rs.Resource().Attributes()) {
					t.Fatalf("span %d resource differs after decode", i)
				}
				if dsp.Scope.Name() != ss.Scope().Name() {
					t.Fatalf("span %d scope %q, want %q", i, dsp.Scope.Name(), ss.Scope().Name())
				}
			}
		}
	}
}

func TestWalkRecordRejectsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"truncated length": {0x0a, 0x05, 0x01},
		"bad wire type":    {0x0f},
		"short trace id":   {0x0a, 0x08, 0x12, 0x06, 0x12, 0x04, 0x0a, 0x02, 0x01, 0x02},
	} {
		if _, err := parseRecord(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzWalkRecord feeds arbitrary bytes to the wire walker: it must not panic, and what it accepts must decode.
func FuzzWalkRecord(f *testing.F) {
	for _, td := range []ptrace.Traces{batch(1, 2, 3), ptrace.NewTraces()} {
		b, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x05, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := parseRecord(b)
		if err != nil {
			return
		}
		dec := newDecoder()
		for _, rs := range rec.spans {
			_, _ = dec.decodeParts(rs.sp.res().enc, rs.sp.scope.enc, wrapSpan(nil, rs.sp.rawBytes()))
		}
	})
}

// TestMaxLiveBytesBackpressure fills memory to max_live_bytes: the next write is refused as RateLimited (not
// a permanent error) and accepted again once the traces are in a block.
func TestMaxLiveBytesBackpressure(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.MaxLiveBytes = 64 << 10
	s := openStore(t, cfg)
	defer s.Close(ctx)
	var busy *refusal.Error
	i := 0
	for ; i < 1000; i++ {
		err := s.Push(ctx, tn, batch(i*10, 10, 5))
		if ref, ok := refusal.As(err); ok {
			busy = ref
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if busy == nil {
		t.Fatal("never refused with max_live_bytes reached")
	}
	if !busy.Retryable() || busy.Limit != "max_live_bytes" {
		t.Fatalf("%v: a busy refusal must be retryable and name max_live_bytes", busy)
	}
	if err := s.CutAndFlush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Push(ctx, tn, batch(i*10, 10, 5)); err != nil {
		t.Fatalf("after the block was written: %v", err)
	}
	for _, n := range []int{0, i*10 - 1, i * 10} {
		if c := countSpans(t, s, n); c != 5 {
			t.Fatalf("trace %d has %d spans", n, c)
		}
	}
}

var _ = pcommon.NewTraceIDEmpty

// TestLiveSpanSize: the live set holds one liveSpan per span in memory; a field added here costs that much per
// span at every ingest rate, so the size is pinned.
func TestLiveSpanSize(t *testing.T) {
	if got := unsafe.Sizeof(liveSpan{}); got != 56 {
		t.Errorf("liveSpan is %d bytes, want 56", got)
	}
}
