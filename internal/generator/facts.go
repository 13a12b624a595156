package generator

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// spanFact is what the processors need from one span. Facts, not spans, are what the WAL records, so a
// replay rebuilds exactly the state the live process had, at a fraction of the span's size.
type spanFact struct {
	service   string
	name      string
	kind      uint8 // ptrace.SpanKind
	status    uint8 // ptrace.StatusCode
	statusMsg string
	duration  int64 // nanoseconds, never negative
	size      int64 // OTLP protobuf bytes of the span
	traceID   [16]byte
	spanID    [8]byte
	parentID  [8]byte
	// dims holds the span-metrics dimension values in config order ("" when absent).
	dims []string
	// peer is the first peer attribute found (client and producer spans), db the database name (client spans).
	peer string
	db   string
	// resource indexes batch.resources, for target info; -1 when target info is off.
	resource int32
}

// resourceFact is the identity of a resource for traces_target_info.
type resourceFact struct {
	job, instance string
	// attrs are the other resource attributes as sanitized label name/value pairs, sorted by name.
	attrs []labelPair
}

// batch is one ConsumeTraces call reduced to facts: the unit the WAL appends and replays.
type batch struct {
	tenant    string
	now       int64 // unix nanoseconds at acceptance
	resources []resourceFact
	spans     []spanFact
}

var sizer ptrace.ProtoMarshaler

// extract reduces td to facts. It reads td only, so it can run outside the generator's lock.
func (g *Generator) extract(tenantID string, now int64, td ptrace.Traces) *batch {
	b := &batch{tenant: tenantID, now: now, spans: make([]spanFact, 0, td.SpanCount())}
	smDims := g.cfg.SpanMetrics.Dimensions
	wantSize := g.spanMetrics
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		service := "unknown_service"
		if v, ok := res.Get("service.name"); ok {
			service = v.AsString()
		}
		resIdx := int32(-1)
		if g.targetInfo {
			resIdx = int32(len(b.resources))
			b.resources = append(b.resources, resourceFactOf(res))
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				f := spanFact{
					service:  service,
					name:     sp.Name(),
					kind:     uint8(sp.Kind()),
					status:   uint8(sp.Status().Code()),
					traceID:  sp.TraceID(),
					spanID:   sp.SpanID(),
					parentID: sp.ParentSpanID(),
					resource: resIdx,
				}
				if st, en := sp.StartTimestamp(), sp.EndTimestamp(); en > st {
					f.duration = int64(en - st)
				}
				if g.cfg.SpanMetrics.IntrinsicDimensions.StatusMessage {
					f.statusMsg = sp.Status().Message()
				}
				if wantSize {
					f.size = int64(sizer.SpanSize(sp))
				}
				attrs := sp.Attributes()
				if len(smDims) > 0 && g.spanMetrics {
					f.dims = make([]string, len(smDims))
					for d, name := range smDims {
						if v, ok := attrs.Get(name); ok {
							f.dims[d] = v.AsString()
						} else if v, ok := res.Get(name); ok {
							f.dims[d] = v.AsString()
						}
					}
				}
				if g.serviceGraphs {
					switch sp.Kind() {
					case ptrace.SpanKindClient:
						f.db = firstAttr(attrs, g.cfg.ServiceGraphs.DatabaseNameAttributes)
						f.peer = firstAttr(attrs, g.cfg.ServiceGraphs.PeerAttributes)
					case ptrace.SpanKindProducer:
						f.peer = firstAttr(attrs, g.cfg.ServiceGraphs.PeerAttributes)
					}
				}
				b.spans = append(b.spans, f)
			}
		}
	}
	return b
}

func firstAttr(m pcommon.Map, names []string) string {
	for _, n := range names {
		if v, ok := m.Get(n); ok {
			if s := v.AsString(); s != "" {
				return s
			}
		}
	}
	return ""
}

// resourceFactOf derives job and instance the way the OTLP-to-Prometheus translation does (job is
// service.namespace/service.name, instance is service.instance.id), so traces_target_info joins with them.
func resourceFactOf(res pcommon.Map) resourceFact {
	var r resourceFact
	name, ns := "", ""
	if v, ok := res.Get("service.name"); ok {
		name = v.AsString()
	}
	if v, ok := res.Get("service.namespace"); ok {
		ns = v.AsString()
	}
	r.job = name
	if ns != "" {
		r.job = ns + "/" + name
	}
	if v, ok := res.Get("service.instance.id"); ok {
		r.instance = v.AsString()
	}
	res.Range(func(k string, v pcommon.Value) bool {
		switch k {
		case "service.name", "service.namespace", "service.instance.id":
			return true
		}
		if s := v.AsString(); s != "" {
			r.attrs = append(r.attrs, labelPair{name: SanitizeLabelName(k), value: s})
		}
		return true
	})
	sortPairs(r.attrs)
	return r
}
