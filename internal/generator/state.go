package generator

import (
	"bytes"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

type metricKind uint8

const (
	kindCounter metricKind = iota
	kindHistogram
	kindGauge
)

// Metric ids. The order is the order of emission and part of the checkpoint format: append only.
const (
	mCalls = iota
	mLatency
	mSize
	mTargetInfo
	mSGRequest
	mSGFailed
	mSGServer
	mSGClient
	mSGUnpaired
	mSGDropped
	mSGMessaging
	numMetrics
)

// Metric names are the final Prometheus names. Counters already end in _total: the OTLP translation with
// suffixes strips and re-appends "total", and one without suffixes keeps the name, so both give Tempo's names.
// Units stay empty so that no unit suffix (_seconds) is appended to names that do not carry one in Tempo.
var metricNames = [numMetrics]string{
	mCalls:      "traces_spanmetrics_calls_total",
	mLatency:    "traces_spanmetrics_latency",
	mSize:       "traces_spanmetrics_size_total",
	mTargetInfo: "traces_target_info",
	mSGRequest:  "traces_service_graph_request_total",
	mSGFailed:   "traces_service_graph_request_failed_total",
	mSGServer:   "traces_service_graph_request_server_seconds",
	mSGClient:   "traces_service_graph_request_client_seconds",
	mSGUnpaired: "traces_service_graph_unpaired_spans_total",
	mSGDropped:  "traces_service_graph_dropped_spans_total",
	// Tempo's name, emitted only with enable_messaging_system_latency_histogram.
	mSGMessaging: "traces_service_graph_request_messaging_system_seconds",
}

var metricKinds = [numMetrics]metricKind{
	mCalls: kindCounter, mLatency: kindHistogram, mSize: kindCounter, mTargetInfo: kindGauge,
	mSGRequest: kindCounter, mSGFailed: kindCounter, mSGServer: kindHistogram, mSGClient: kindHistogram,
	mSGUnpaired: kindCounter, mSGDropped: kindCounter, mSGMessaging: kindHistogram,
}

// Connection types, Tempo's values of the connection_type label. Plain client/server edges carry none.
const (
	connVirtualNode = "virtual_node"
	connMessaging   = "messaging_system"
	connDatabase    = "database"
)

// userNode is the client of a root server span: the outside world, as Tempo names it.
const userNode = "user"

type labelPair struct{ name, value string }

func sortPairs(p []labelPair) {
	slices.SortFunc(p, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
}

type exemplar struct {
	bucket  int // the classic bucket the observation fell in
	value   float64
	ts      int64
	traceID [16]byte
	spanID  [8]byte
}

// maxLabelValueLength truncates label values, as Tempo's registry does by default.
const maxLabelValueLength = 2048

// series is one cumulative time series.
type series struct {
	metric  uint8
	labels  []labelPair
	start   int64 // unix ns of creation: the OTLP start timestamp
	updated int64 // unix ns of the last update, for staleness
	value   float64
	// histograms: per-bucket (not cumulative) counts, len(buckets)+1, as OTLP carries them. Counts are floats
	// because a span multiplier may weigh an observation 1/r; they are rounded when emitted.
	counts []float64
	sum    float64
	count  float64
	// native (exponential) histogram: scale, exact-zero count, and the dense positive buckets from nOffset.
	nScale  int32
	nZero   float64
	nOffset int32
	nCounts []float64
	// exs holds the newest observation since the last emission of each classic bucket that had one (Tempo
	// keeps one exemplar per bucket), in no particular order; emptied by each emission.
	exs []exemplar
	// emitted is set once the series has gone out; until then emit writes a zero point at its start first,
	// so that rate() and increase() count the first observations (a counter's first sample is otherwise only
	// a baseline), as Tempo's generator does.
	emitted bool
	// linked are the series that always share this one's labels and updates (latency and size for calls,
	// server and client seconds for request_total): one key lookup serves all three.
	linked [2]*series
}

type edgeKey struct {
	trace [16]byte
	span  [8]byte
}

// edge is a half-seen request between two services, waiting for its other half.
type edge struct {
	created   int64
	client    string
	server    string
	clientDur int64
	serverDur int64
	failed    bool
	messaging bool
	peer      string
	hasClient bool
	hasServer bool
	traceID   [16]byte
	spanID    [8]byte // the server span's if seen, else the client's: the exemplar's span
	// serverSeen is set when the server side came, and serverLast when it came after the client side.
	serverSeen bool
	serverLast bool
	// clientEnd and serverStart (unix ns) give the messaging-system latency.
	clientEnd, serverStart int64
	// cdims and sdims are the service-graph dimension values of the client and server span.
	cdims, sdims []string
	mult         float64
	// virtual is the virtual_node label: "client" or "server" for an edge to a virtual node.
	virtual string
}

type tenantState struct {
	series map[string]*series
	edges  map[edgeKey]*edge
}

func newTenantState() *tenantState {
	return &tenantState{series: map[string]*series{}, edges: map[edgeKey]*edge{}}
}

func (g *Generator) tenantState(id string) *tenantState {
	ts := g.tenants[id]
	if ts == nil {
		ts = newTenantState()
		g.tenants[id] = ts
	}
	return ts
}

// full reports whether n more series of tenant ts would exceed max_active_series or
// max_active_series_per_tenant.
func (g *Generator) full(ts *tenantState, n int) bool {
	if m := g.cfg.MaxActiveSeries; m > 0 && g.active+n > m {
		return true
	}
	m := g.cfg.MaxActiveSeriesPerTenant
	return m > 0 && len(ts.series)+n > m
}

// lookup finds or creates the series of metric m with labels g.scratch. It returns nil when the series would
// exceed max_active_series; the refusal is counted.
func (g *Generator) lookup(ts *tenantState, m int, now int64) *series {
	buf := appendSeriesKey(g.keyBuf[:0], m, g.scratch)
	g.keyBuf = buf
	if s, ok := ts.series[string(buf)]; ok {
		s.updated = now
		return s
	}
	if g.full(ts, 1) {
		g.refused++
		return nil
	}
	s := g.newSeries(m, now, nil)
	ts.series[string(bytes.Clone(buf))] = s
	g.active++
	return s
}

func (g *Generator) add(ts *tenantState, m int, v float64, now int64) {
	if s := g.lookup(ts, m, now); s != nil {
		s.value += v
	}
}

func (g *Generator) set(ts *tenantState, m int, v float64, now int64) {
	if s := g.lookup(ts, m, now); s != nil {
		s.value = v
	}
}

// newSeries makes a series with labels g.scratch; shared, when not nil, is an equal label slice of a linked
// series, which the new one shares instead of copying (labels are never modified in place).
func (g *Generator) newSeries(m int, now int64, shared []labelPair) *series {
	if shared == nil {
		shared = slices.Clone(g.scratch)
	}
	s := &series{metric: uint8(m), labels: shared, start: now, updated: now}
	if metricKinds[m] == kindHistogram {
		s.counts = make([]float64, len(g.buckets[m])+1)
		s.nScale = g.nativeScale
	}
	return s
}

// observeSeries records v (seconds) with weight w (the span multiplier, 1 without one).
func (g *Generator) observeSeries(s *series, v, w float64, now int64, traceID [16]byte, spanID [8]byte) {
	b := g.buckets[s.metric]
	i, _ := slices.BinarySearch(b, v) // le semantics: v == bound falls into that bound's bucket
	s.counts[i] += w
	s.sum += v * w
	s.count += w
	if g.native {
		s.observeNative(v, w, g.cfg.NativeHistogramMaxBucketNumber)
	}
	ex := exemplar{bucket: i, value: v, ts: now, traceID: traceID, spanID: spanID}
	for j := range s.exs {
		if s.exs[j].bucket == i {
			s.exs[j] = ex
			return
		}
	}
	s.exs = append(s.exs, ex)
}

// lookupLinked finds the series of metric m with labels g.scratch together with its two linked series of
// metrics a and b. Creating the group takes three slots of max_active_series, all or nothing.
func (g *Generator) lookupLinked(ts *tenantState, m, a, b int, now int64) *series {
	buf := appendSeriesKey(g.keyBuf[:0], m, g.scratch)
	g.keyBuf = buf
	if s, ok := ts.series[string(buf)]; ok && s.linked[0] != nil {
		s.updated, s.linked[0].updated, s.linked[1].updated = now, now, now
		return s
	}
	if g.full(ts, 3) {
		g.refused += 3
		return nil
	}
	s := g.getOrCreate(ts, m, now, nil)
	s.linked[0] = g.getOrCreate(ts, a, now, s.labels)
	s.linked[1] = g.getOrCreate(ts, b, now, s.labels)
	return s
}

// getOrCreate returns the series of metric m with labels g.scratch, creating it without a limit check.
func (g *Generator) getOrCreate(ts *tenantState, m int, now int64, shared []labelPair) *series {
	buf := appendSeriesKey(g.keyBuf[:0], m, g.scratch)
	g.keyBuf = buf
	if s, ok := ts.series[string(buf)]; ok {
		s.updated = now
		return s
	}
	s := g.newSeries(m, now, shared)
	ts.series[string(buf)] = s
	g.active++
	return s
}

// relink restores the links of a tenant's series after a checkpoint load. A group missing a member (its
// histogram buckets changed in the config) is dropped whole, so that it restarts consistently.
func (g *Generator) relink(ts *tenantState) {
	for key, s := range ts.series {
		var a, b int
		switch s.metric {
		case mCalls:
			a, b = mLatency, mSize
		case mSGRequest:
			a, b = mSGServer, mSGClient
		default:
			continue
		}
		la := ts.series[string(appendSeriesKey(nil, a, s.labels))]
		lb := ts.series[string(appendSeriesKey(nil, b, s.labels))]
		if la == nil || lb == nil {
			delete(ts.series, key)
			g.active--
			continue
		}
		s.linked = [2]*series{la, lb}
	}
}

// pair appends a label unless its value is empty: Prometheus treats an empty label as an absent one, and
// keeping it out of the key keeps "absent" and "empty" the same series.
func (g *Generator) pair(name, value string) {
	if value != "" {
		if len(value) > maxLabelValueLength {
			value = value[:maxLabelValueLength]
		}
		g.scratch = append(g.scratch, labelPair{name, value})
	}
}

// setPair is pair for labels that may repeat (dimensions that sanitize to the same label): the last call
// wins, and an empty value removes the label, as Tempo's label builder does.
func (g *Generator) setPair(name, value string) {
	for i := range g.scratch {
		if g.scratch[i].name == name {
			g.scratch = slices.Delete(g.scratch, i, i+1)
			break
		}
	}
	g.pair(name, value)
}

var spanKindNames = [...]string{
	"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
	"SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
}

var statusCodeNames = [...]string{"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"}

func spanKindName(k uint8) string {
	if int(k) < len(spanKindNames) {
		return spanKindNames[k]
	}
	return spanKindNames[0]
}

func statusCodeName(c uint8) string {
	if int(c) < len(statusCodeNames) {
		return statusCodeNames[c]
	}
	return statusCodeNames[0]
}

// apply folds one accepted batch into the state. It must be deterministic in (state, batch): the WAL replays
// batches through it after a restart.
func (g *Generator) apply(b *batch) {
	ts := g.tenantState(b.tenant)
	now := b.now
	if g.targetInfo {
		for _, r := range b.resources {
			if len(r.attrs) == 0 {
				continue // as in the OTLP translation: job and instance alone say nothing
			}
			g.scratch = g.scratch[:0]
			g.pair("instance", r.instance)
			g.pair("job", r.job)
			g.scratch = append(g.scratch, r.attrs...)
			g.set(ts, mTargetInfo, 1, now)
		}
	}
	for i := range b.spans {
		f := &b.spans[i]
		if g.spanMetrics {
			g.spanMetricLabels(b, f)
			if s := g.lookupLinked(ts, mCalls, mLatency, mSize, now); s != nil {
				s.value += f.smMult
				g.observeSeries(s.linked[0], float64(f.duration)/1e9, f.smMult, now, f.traceID, f.spanID)
				s.linked[1].value += float64(f.size) // Tempo does not weigh the size
			}
		}
		if g.serviceGraphs {
			g.graphSpan(ts, f, now)
		}
	}
}

func (g *Generator) spanMetricLabels(b *batch, f *spanFact) {
	g.scratch = g.scratch[:0]
	id := g.cfg.SpanMetrics.IntrinsicDimensions
	if id.Service {
		g.pair("service", f.service)
	}
	if id.SpanName {
		g.pair("span_name", f.name)
	}
	if id.SpanKind {
		g.pair("span_kind", spanKindName(f.kind))
	}
	if id.StatusCode {
		g.pair("status_code", statusCodeName(f.status))
	}
	if id.StatusMessage {
		g.pair("status_message", f.statusMsg)
	}
	for d, name := range g.dimLabels {
		if i := g.smDimIdx[d]; i < len(f.dims) {
			g.setPair(name, f.dims[i])
		}
	}
	if g.targetInfo && f.resource >= 0 && int(f.resource) < len(b.resources) {
		r := b.resources[f.resource]
		g.pair("job", r.job)
		g.pair("instance", r.instance)
	}
}

// sgDims copies the service-graph dimension values out of f.dims.
func (g *Generator) sgDimValues(f *spanFact) []string {
	if len(g.sgDims) == 0 {
		return nil
	}
	out := make([]string, len(g.sgDims))
	for d := range g.sgDims {
		if i := g.sgDims[d].idx; i < len(f.dims) {
			out[d] = f.dims[i]
		}
	}
	return out
}

func (g *Generator) graphSpan(ts *tenantState, f *spanFact, now int64) {
	if f.service == "" {
		return // as Tempo: a resource without service.name has no node in the graph
	}
	failed := f.status == uint8(ptrace.StatusCodeError)
	var zeroSpan [8]byte
	switch ptrace.SpanKind(f.kind) {
	case ptrace.SpanKindServer, ptrace.SpanKindConsumer:
		messaging := ptrace.SpanKind(f.kind) == ptrace.SpanKindConsumer
		if f.parentID == zeroSpan {
			// A root server span has no client to wait for: the caller is outside the traced system, named by
			// the span's peer attribute or "user". Tempo completes it when it expires; Sprout at once, with
			// the same labels and values.
			client := userNode
			if f.peer != "" {
				client = f.peer
			}
			g.complete(ts, &edge{
				client: client, server: f.service, serverDur: f.duration, failed: failed,
				traceID: f.traceID, spanID: f.spanID, sdims: g.sgDimValues(f), serverLast: true,
				mult: f.sgMult, virtual: "client",
			}, connVirtualNode, now)
			return
		}
		e := g.upsertEdge(ts, edgeKey{f.traceID, f.parentID}, now, "", f.service)
		if e == nil {
			return
		}
		e.server, e.serverDur, e.hasServer, e.serverSeen = f.service, f.duration, true, true
		e.serverLast = true
		e.serverStart = f.start
		e.sdims = g.sgDimValues(f)
		e.mult = f.sgMult
		e.failed = e.failed || failed
		e.messaging = e.messaging || messaging
		e.traceID, e.spanID = f.traceID, f.spanID
		g.tryComplete(ts, edgeKey{f.traceID, f.parentID}, e, now)
	case ptrace.SpanKindClient, ptrace.SpanKindProducer:
		messaging := ptrace.SpanKind(f.kind) == ptrace.SpanKindProducer
		if f.db != "" {
			// A database is not traced itself: the client span is the whole edge (producers too, as Tempo).
			g.complete(ts, &edge{
				client: f.service, server: f.db, clientDur: f.duration, serverDur: f.duration,
				failed: failed, traceID: f.traceID, spanID: f.spanID, cdims: g.sgDimValues(f), mult: f.sgMult,
			}, connDatabase, now)
			return
		}
		e := g.upsertEdge(ts, edgeKey{f.traceID, f.spanID}, now, f.service, "")
		if e == nil {
			return
		}
		e.client, e.clientDur, e.hasClient, e.peer = f.service, f.duration, true, f.peer
		e.serverLast = false
		e.clientEnd = f.start + f.duration
		e.cdims = g.sgDimValues(f)
		e.mult = f.sgMult
		e.failed = e.failed || failed
		e.messaging = e.messaging || messaging
		e.traceID = f.traceID
		if !e.serverSeen {
			e.spanID = f.spanID
		}
		g.tryComplete(ts, edgeKey{f.traceID, f.spanID}, e, now)
	}
}

func (g *Generator) upsertEdge(ts *tenantState, k edgeKey, now int64, client, server string) *edge {
	if e, ok := ts.edges[k]; ok {
		return e
	}
	if len(ts.edges) >= g.cfg.ServiceGraphs.MaxItems {
		g.scratch = g.scratch[:0]
		g.pair("client", client)
		g.pair("server", server)
		g.add(ts, mSGDropped, 1, now)
		return nil
	}
	var e *edge
	if n := len(g.freeEdges); n > 0 {
		e, g.freeEdges = g.freeEdges[n-1], g.freeEdges[:n-1]
		*e = edge{created: now}
	} else {
		e = &edge{created: now}
	}
	ts.edges[k] = e
	return e
}

func (g *Generator) tryComplete(ts *tenantState, k edgeKey, e *edge, now int64) {
	if !e.hasClient || !e.hasServer {
		return
	}
	delete(ts.edges, k)
	conn := ""
	if e.messaging {
		conn = connMessaging
	}
	g.complete(ts, e, conn, now)
	g.recycle(e)
}

func (g *Generator) complete(ts *tenantState, e *edge, conn string, now int64) {
	g.scratch = g.scratch[:0]
	g.pair("client", e.client)
	g.pair("server", e.server)
	g.pair("connection_type", conn)
	for d := range g.sgDims {
		dl := &g.sgDims[d]
		cv, sv := dimAt(e.cdims, d), dimAt(e.sdims, d)
		if g.cfg.ServiceGraphs.EnableClientServerPrefix {
			g.setPair(dl.clientLabel, cv)
			g.setPair(dl.serverLabel, sv)
			continue
		}
		// Without prefixes one label holds both sides: the side seen last wins where it has the attribute.
		first, last := cv, sv
		if !e.serverLast {
			first, last = sv, cv
		}
		if last == "" {
			last = first
		}
		g.setPair(dl.label, last)
	}
	if g.cfg.ServiceGraphs.EnableVirtualNodeLabel {
		g.setPair("virtual_node", e.virtual)
	}
	mult := e.mult
	if mult == 0 {
		mult = 1
	}
	if s := g.lookupLinked(ts, mSGRequest, mSGServer, mSGClient, now); s != nil {
		s.value += mult
		g.observeSeries(s.linked[0], float64(e.serverDur)/1e9, mult, now, e.traceID, e.spanID)
		g.observeSeries(s.linked[1], float64(e.clientDur)/1e9, mult, now, e.traceID, e.spanID)
	}
	if e.failed {
		g.add(ts, mSGFailed, mult, now)
	}
	if g.cfg.ServiceGraphs.EnableMessagingSystemLatencyHistogram && conn == connMessaging && e.serverStart > e.clientEnd {
		// Time spent in the queue: producer end to consumer start. Tempo skips it when the clocks disagree.
		if s := g.lookup(ts, mSGMessaging, now); s != nil {
			g.observeSeries(s, float64(e.serverStart-e.clientEnd)/1e9, mult, now, e.traceID, e.spanID)
		}
	}
}

// recycle keeps a finished edge for the next upsert (at most 4096 of them).
func (g *Generator) recycle(e *edge) {
	if len(g.freeEdges) < 4096 {
		*e = edge{}
		g.freeEdges = append(g.freeEdges, e)
	}
}

func dimAt(v []string, i int) string {
	if i < len(v) {
		return v[i]
	}
	return ""
}

// tick expires edges that waited too long and series that went stale. Like apply it is logged and replayed,
// so it must be deterministic: expired edges are handled in key order, not map order.
func (g *Generator) tick(now int64) {
	wait := int64(g.cfg.ServiceGraphs.Wait)
	stale := int64(g.cfg.StaleAfter)
	ids := make([]string, 0, len(g.tenants))
	for id := range g.tenants {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ts := g.tenants[id]
		var expired []edgeKey
		for k, e := range ts.edges {
			if now-e.created >= wait {
				expired = append(expired, k)
			}
		}
		slices.SortFunc(expired, func(a, b edgeKey) int {
			if c := bytes.Compare(a.trace[:], b.trace[:]); c != 0 {
				return c
			}
			return bytes.Compare(a.span[:], b.span[:])
		})
		for _, k := range expired {
			e := ts.edges[k]
			delete(ts.edges, k)
			g.expire(ts, e, now)
			g.recycle(e)
		}
		for key, s := range ts.series {
			if now-s.updated >= stale {
				delete(ts.series, key)
				g.active--
			}
		}
	}
}

func (g *Generator) expire(ts *tenantState, e *edge, now int64) {
	if e.hasClient && e.peer != "" {
		// The server is not instrumented but the client named it: a virtual node. As in Tempo, the server
		// latency observed is 0: nothing measured it.
		e.server, e.serverDur, e.virtual = e.peer, 0, "server"
		g.complete(ts, e, connVirtualNode, now)
		return
	}
	g.scratch = g.scratch[:0]
	if e.hasClient {
		g.pair("client", e.client)
	} else {
		g.pair("server", e.server)
	}
	g.add(ts, mSGUnpaired, 1, now)
}
