package generator

import (
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// spanFact is what the processors need from one span. Facts, not spans, are what the WAL records, so a
// replay rebuilds exactly the state the live process had, at a fraction of the span's size.
type spanFact struct {
	service   string // "" when the resource has no service.name (Tempo leaves the label out)
	name      string
	kind      uint8 // ptrace.SpanKind
	status    uint8 // ptrace.StatusCode
	statusMsg string
	start     int64 // unix nanoseconds
	duration  int64 // nanoseconds, never negative
	size      int64 // OTLP protobuf bytes of the span
	traceID   [16]byte
	spanID    [8]byte
	parentID  [8]byte
	// dims holds the values of g.attrDims (the span-metrics and service-graph dimensions), resource attribute
	// first, then span attribute, as Tempo looks them up ("" when absent).
	dims []string
	// peer is the first peer attribute found on the span; db the server name of a database call (client and
	// producer spans with a database name attribute), "" otherwise.
	peer string
	db   string
	// resource indexes batch.resources, for target info; -1 when target info is off.
	resource int32
	// smMult and sgMult are the span multipliers of span metrics and service graphs (1 when not configured).
	smMult, sgMult float64
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
	dimBuf    []string // backing array of the spans' dims, reused with the batch
}

// batchPool recycles batches: once applied, nothing refers to a batch's facts (series and edges copy what
// they keep), so its slices serve the next call.
var batchPool = sync.Pool{New: func() any { return &batch{} }}

func releaseBatch(b *batch) {
	if cap(b.spans) > 1<<16 {
		return // an outsized batch is left to the GC rather than pinned in the pool
	}
	clear(b.spans)
	clear(b.dimBuf)
	clear(b.resources)
	b.spans, b.resources, b.dimBuf = b.spans[:0], b.resources[:0], b.dimBuf[:0]
	batchPool.Put(b)
}

var sizer ptrace.ProtoMarshaler

// extract reduces td to facts. It reads td only, so it can run outside the generator's lock.
func (g *Generator) extract(tenantID string, now int64, td ptrace.Traces) *batch {
	b := batchPool.Get().(*batch)
	b.tenant, b.now = tenantID, now
	b.spans = slices.Grow(b.spans[:0], td.SpanCount())
	wantSize := g.spanMetrics
	smKey, sgKey := g.cfg.SpanMetrics.SpanMultiplierKey, g.cfg.ServiceGraphs.SpanMultiplierKey
	var dimVals []string
	if len(g.attrDims) > 0 {
		// One backing array for the batch instead of one slice per span.
		b.dimBuf = slices.Grow(b.dimBuf[:0], len(g.attrDims)*td.SpanCount())[:len(g.attrDims)*td.SpanCount()]
		dimVals = b.dimBuf
	}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		service := ""
		if v, ok := res.Get("service.name"); ok {
			service = v.AsString()
		}
		resIdx := int32(-1)
		if g.targetInfo {
			resIdx = int32(len(b.resources))
			b.resources = append(b.resources, g.resourceFactOf(res))
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
					start:    int64(sp.StartTimestamp()),
					traceID:  sp.TraceID(),
					spanID:   sp.SpanID(),
					parentID: sp.ParentSpanID(),
					resource: resIdx,
					smMult:   1,
					sgMult:   1,
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
				if n := len(g.attrDims); n > 0 {
					f.dims, dimVals = dimVals[:n:n], dimVals[n:]
					for d, name := range g.attrDims {
						if v, ok := res.Get(name); ok {
							f.dims[d] = v.AsString()
						} else if v, ok := attrs.Get(name); ok {
							f.dims[d] = v.AsString()
						}
					}
				}
				if smKey != "" {
					f.smMult = spanMultiplier(smKey, attrs, res)
				}
				if sgKey != "" {
					f.sgMult = spanMultiplier(sgKey, attrs, res)
				}
				if g.serviceGraphs {
					switch sp.Kind() {
					case ptrace.SpanKindClient, ptrace.SpanKindProducer:
						f.db = g.databaseServer(res, attrs)
						f.peer = firstPresent(attrs, g.cfg.ServiceGraphs.PeerAttributes)
					case ptrace.SpanKindServer, ptrace.SpanKindConsumer:
						f.peer = firstPresent(attrs, g.cfg.ServiceGraphs.PeerAttributes)
					}
				}
				b.spans = append(b.spans, f)
			}
		}
	}
	return b
}

// firstPresent is the value of the first of names present in m (even if empty), as Tempo picks peer nodes.
func firstPresent(m pcommon.Map, names []string) string {
	for _, n := range names {
		if v, ok := m.Get(n); ok {
			return v.AsString()
		}
	}
	return ""
}

// lookup2 finds name in the resource attributes, then in the span's.
func lookup2(res, attrs pcommon.Map, name string) (string, bool) {
	if v, ok := res.Get(name); ok {
		return v.AsString(), true
	}
	if v, ok := attrs.Get(name); ok {
		return v.AsString(), true
	}
	return "", false
}

// databaseServer names the server of a database call: a span with one of database_name_attributes is one.
// The name is peer.service, else server.address, else network.peer.address (with :network.peer.port), else
// the database name attribute's value. "" when the span is not a database call.
func (g *Generator) databaseServer(res, attrs pcommon.Map) string {
	dbName, isDB := "", false
	for _, n := range g.cfg.ServiceGraphs.DatabaseNameAttributes {
		if v, ok := lookup2(res, attrs, n); ok {
			dbName, isDB = v, true
			break
		}
	}
	if !isDB {
		return ""
	}
	if v, ok := lookup2(res, attrs, "peer.service"); ok {
		return v
	}
	if v, ok := lookup2(res, attrs, "server.address"); ok {
		return v
	}
	if host, ok := lookup2(res, attrs, "network.peer.address"); ok {
		if port, ok := lookup2(res, attrs, "network.peer.port"); ok {
			return host + ":" + port
		}
		return host
	}
	return dbName
}

// spanMultiplier is 1/r for the sampling ratio r held in the double attribute key of the span, else of its
// resource; 1 when neither holds a positive double.
func spanMultiplier(key string, attrs, res pcommon.Map) float64 {
	for _, m := range [2]pcommon.Map{attrs, res} {
		if v, ok := m.Get(key); ok && v.Type() == pcommon.ValueTypeDouble && v.Double() > 0 {
			return 1 / v.Double()
		}
	}
	return 1
}

// targetInfoReserved are the labels a target-info attribute must not take: it gets a "__" prefix instead.
var targetInfoReserved = append(slices.Clone(intrinsicLabels), "job", "instance")

// resourceFactOf derives job and instance as Tempo and the OTLP-to-Prometheus translation do (job is
// service.namespace/service.name, instance is service.instance.id), so traces_target_info joins with them.
// Attributes with an empty name or a leading digit are skipped, as in Tempo.
func (g *Generator) resourceFactOf(res pcommon.Map) resourceFact {
	var r resourceFact
	name, ns := "", ""
	if v, ok := res.Get("service.name"); ok {
		name = v.AsString()
	}
	if v, ok := res.Get("service.namespace"); ok {
		ns = v.AsString()
	}
	if name != "" {
		r.job = name
		if ns != "" {
			r.job = ns + "/" + name
		}
	}
	if v, ok := res.Get("service.instance.id"); ok && g.cfg.SpanMetrics.EnableInstanceLabel {
		r.instance = v.AsString()
	}
	res.Range(func(k string, v pcommon.Value) bool {
		switch {
		case k == "" || k[0] >= '0' && k[0] <= '9':
			return true
		case k == "service.name", k == "service.namespace", k == "service.instance.id":
			return true
		case slices.Contains(g.cfg.SpanMetrics.TargetInfoExcludedDimensions, k):
			return true
		}
		if s := v.AsString(); s != "" {
			r.attrs = append(r.attrs, labelPair{name: dimensionLabel(k, targetInfoReserved), value: s})
		}
		return true
	})
	// Two attributes that sanitize to the same label: the last one wins, as in Tempo's label builder.
	slices.SortStableFunc(r.attrs, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
	out := r.attrs[:0]
	for i, p := range r.attrs {
		if i+1 < len(r.attrs) && r.attrs[i+1].name == p.name {
			continue
		}
		out = append(out, p)
	}
	r.attrs = out
	return r
}
