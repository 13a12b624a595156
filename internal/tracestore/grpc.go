package tracestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/traceql"
	"github.com/sprout-otel/sprout/internal/tracestore/tempopb"
)

// GRPCAPI serves Tempo's streaming query API (tempopb.StreamingQuerier) over a Store: the same queries as the
// HTTP API, under the same query budget, answered as Tempo's query frontend answers them on a stream. A search
// sends, after each job (memory, then each block), the traces found since its last message with the metrics
// so far, and at the end every trace found; metrics queries send the metrics so far while they read, then the
// series. A query that does not parse ends the call with InvalidArgument, and a client that cancels the call
// cancels its scan.
type GRPCAPI struct {
	Store *Store
	// Tenant resolves the tenant of a call from its context (metadata and authenticated user), returning a
	// gRPC status error.
	Tenant func(ctx context.Context) (string, error)
	// ProgressInterval is the least time between two progress messages that carry no new trace (Tempo's
	// 500 ms); messages with new traces are sent at once.
	ProgressInterval time.Duration

	// afterProgress, in tests, runs after each progress message of a search, inside the scan.
	afterProgress func(ctx context.Context)
}

var _ tempopb.StreamingQuerierServer = (*GRPCAPI)(nil)

// defaultProgressInterval is how often Tempo's query frontend sends a progress message.
const defaultProgressInterval = 500 * time.Millisecond

// admit resolves the tenant and waits for a query slot, as the HTTP handlers do; the error is a gRPC status.
func (g *GRPCAPI) admit(ctx context.Context) (context.Context, string, func(), error) {
	tenantID, err := g.Tenant(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	ctx, release, err := g.Store.QueryLimiter().Admit(ctx, tenantID)
	if err != nil {
		if _, ok := refusal.As(err); ok {
			return nil, "", nil, err // its own status: RESOURCE_EXHAUSTED or UNAVAILABLE, with RetryInfo
		}
		return nil, "", nil, status.Error(codes.Canceled, "query cancelled while it waited for a slot: "+err.Error())
	}
	return ctx, tenantID, release, nil
}

// grpcError maps a store error to the status Tempo's frontend gives it (storeError's codes, in gRPC terms).
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // a refusal (its own code: InvalidArgument, DeadlineExceeded, ...) or a status already
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "query cancelled: the client went away")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func badQuery(err error) error {
	return status.Error(codes.InvalidArgument, "invalid TraceQL query: "+err.Error())
}

// unixRange is a request's start and end in unix seconds; 0 leaves a side open, as in the HTTP API.
func unixRange(start, end uint32) (TimeRange, error) {
	var tr TimeRange
	if start > 0 {
		tr.Start = time.Unix(int64(start), 0)
	}
	if end > 0 {
		tr.End = time.Unix(int64(end), 0)
	}
	if start > 0 && end > 0 && end < start {
		return tr, status.Error(codes.InvalidArgument, "invalid range: end is before start")
	}
	return tr, nil
}

// searchQuery is the request's TraceQL query, or one built from its tags as the HTTP API's tags= parameter.
func searchQuery(req *tempopb.SearchRequest) (*traceql.Query, error) {
	if req.Query != "" || len(req.Tags) == 0 {
		return traceql.Parse(req.Query)
	}
	keys := make([]string, 0, len(req.Tags))
	for k := range req.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	conds := make([]string, 0, len(keys))
	for _, k := range keys {
		v := req.Tags[k]
		attr := "." + k
		if in, ok := traceql.LookupIntrinsic(k); ok && in != traceql.IntrinsicNone {
			attr = k
		}
		switch k {
		case "status", "kind":
			conds = append(conds, fmt.Sprintf("%s = %s", k, v))
		default:
			conds = append(conds, fmt.Sprintf("%s = %s", attr, strconv.Quote(v)))
		}
	}
	return traceql.Parse("{ " + strings.Join(conds, " && ") + " }")
}

// Search implements tempopb.StreamingQuerierServer.
func (g *GRPCAPI) Search(req *tempopb.SearchRequest, out tempopb.Sender[*tempopb.SearchResponse]) error {
	q, err := searchQuery(req)
	if err != nil {
		return badQuery(err)
	}
	if q.Metrics != nil {
		return status.Error(codes.InvalidArgument, "invalid TraceQL query: metrics queries go to MetricsQueryRange")
	}
	tr, err := unixRange(req.Start, req.End)
	if err != nil {
		return err
	}
	sreq := SearchRequest{Query: q, MostRecent: q.HintBool("most_recent"), Range: tr, Limit: int(req.Limit), SpansPerSpanSet: int(req.SpansPerSpanSet),
		MinDuration: time.Duration(req.MinDurationMs) * time.Millisecond, MaxDuration: time.Duration(req.MaxDurationMs) * time.Millisecond}
	ctx, tenantID, release, err := g.admit(out.Context())
	if err != nil {
		return err
	}
	defer release()

	interval := g.ProgressInterval
	if interval == 0 {
		interval = defaultProgressInterval
	}
	var sent int
	var last time.Time
	var sendErr error
	sreq.Progress = func(res *SearchResult) {
		if sendErr != nil || (len(res.Traces) == sent && time.Since(last) < interval) {
			return
		}
		msg := &tempopb.SearchResponse{Traces: []*tempopb.TraceSearchMetadata{}, Metrics: searchMetricsPB(res.Metrics)}
		for i := sent; i < len(res.Traces); i++ {
			msg.Traces = append(msg.Traces, traceMetadataPB(&res.Traces[i]))
		}
		sent, last = len(res.Traces), time.Now()
		sendErr = out.Send(msg)
		if g.afterProgress != nil {
			g.afterProgress(ctx)
		}
	}
	res, err := g.Store.Search(ctx, tenantID, sreq)
	if err != nil {
		return grpcError(err)
	}
	if sendErr != nil {
		return sendErr
	}
	final := &tempopb.SearchResponse{Traces: make([]*tempopb.TraceSearchMetadata, 0, len(res.Traces)), Metrics: searchMetricsPB(res.Metrics)}
	for i := range res.Traces {
		final.Traces = append(final.Traces, traceMetadataPB(&res.Traces[i]))
	}
	return out.Send(final)
}

func searchMetricsPB(m SearchMetrics) *tempopb.SearchMetrics {
	return &tempopb.SearchMetrics{InspectedTraces: uint32(m.InspectedTraces), InspectedBytes: uint64(m.InspectedBytes),
		InspectedSpans: uint64(m.InspectedSpans), TotalBlocks: uint32(m.TotalBlocks),
		CompletedJobs: uint32(m.CompletedJobs), TotalJobs: uint32(m.TotalJobs)}
}

func traceMetadataPB(m *TraceMatch) *tempopb.TraceSearchMetadata {
	t := &tempopb.TraceSearchMetadata{TraceID: traceIDString(m.TraceID), RootServiceName: m.RootServiceName,
		RootTraceName: m.RootTraceName, StartTimeUnixNano: m.StartUnixNano, DurationMs: uint32(m.DurationNanos / 1e6)}
	for _, ss := range m.SpanSets {
		set := &tempopb.SpanSet{Matched: uint32(ss.Matched)}
		if ss.ScalarName != "" {
			set.Attributes = append(set.Attributes, tempopb.KeyValue{Key: ss.ScalarName, Value: staticPB(ss.Scalar)})
		}
		for _, gv := range ss.GroupBy {
			set.Attributes = append(set.Attributes, tempopb.KeyValue{Key: "by(" + gv.Name + ")", Value: staticPB(gv.Value)})
		}
		for _, sp := range ss.Spans {
			s := &tempopb.Span{SpanID: sp.SpanID.String(), Name: sp.Name, StartTimeUnixNano: sp.StartUnixNano, DurationNanos: sp.DurationNanos}
			for _, at := range sp.Attributes {
				s.Attributes = append(s.Attributes, tempopb.KeyValue{Key: at.Key, Value: valuePB(at.Value)})
			}
			set.Spans = append(set.Spans, s)
		}
		t.SpanSets = append(t.SpanSets, set)
	}
	if len(t.SpanSets) > 0 {
		t.SpanSet = t.SpanSets[0]
	}
	if len(m.ServiceStats) > 0 {
		t.ServiceStats = make(map[string]*tempopb.ServiceStats, len(m.ServiceStats))
		for svc, st := range m.ServiceStats {
			t.ServiceStats[svc] = &tempopb.ServiceStats{SpanCount: uint32(st.SpanCount), ErrorCount: uint32(st.ErrorCount)}
		}
	}
	return t
}

// valuePB is otlpValue in protobuf form.
func valuePB(v pcommon.Value) *tempopb.AnyValue {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return &tempopb.AnyValue{Kind: tempopb.KindString, Str: v.Str()}
	case pcommon.ValueTypeInt:
		return &tempopb.AnyValue{Kind: tempopb.KindInt, Int: v.Int()}
	case pcommon.ValueTypeDouble:
		return &tempopb.AnyValue{Kind: tempopb.KindDouble, Double: v.Double()}
	case pcommon.ValueTypeBool:
		return &tempopb.AnyValue{Kind: tempopb.KindBool, Bool: v.Bool()}
	case pcommon.ValueTypeBytes:
		return &tempopb.AnyValue{Kind: tempopb.KindBytes, Bytes: v.Bytes().AsRaw()}
	case pcommon.ValueTypeSlice:
		out := &tempopb.AnyValue{Kind: tempopb.KindArray, Array: []tempopb.AnyValue{}}
		for i := 0; i < v.Slice().Len(); i++ {
			out.Array = append(out.Array, *valuePB(v.Slice().At(i)))
		}
		return out
	case pcommon.ValueTypeMap:
		out := &tempopb.AnyValue{Kind: tempopb.KindKVList, KVList: []tempopb.KeyValue{}}
		v.Map().Range(func(k string, x pcommon.Value) bool {
			out.KVList = append(out.KVList, tempopb.KeyValue{Key: k, Value: valuePB(x)})
			return true
		})
		return out
	}
	return &tempopb.AnyValue{}
}

// staticPB is staticValue in protobuf form.
func staticPB(s traceql.Static) *tempopb.AnyValue {
	switch s.Type {
	case traceql.TypeInt:
		return &tempopb.AnyValue{Kind: tempopb.KindInt, Int: s.N}
	case traceql.TypeDuration:
		return &tempopb.AnyValue{Kind: tempopb.KindString, Str: time.Duration(s.N).String()}
	case traceql.TypeFloat:
		return &tempopb.AnyValue{Kind: tempopb.KindDouble, Double: s.F}
	case traceql.TypeBool:
		return &tempopb.AnyValue{Kind: tempopb.KindBool, Bool: s.B}
	case traceql.TypeString:
		return &tempopb.AnyValue{Kind: tempopb.KindString, Str: s.S}
	case traceql.TypeNil:
		return &tempopb.AnyValue{Kind: tempopb.KindString, Str: "nil"}
	}
	return &tempopb.AnyValue{Kind: tempopb.KindString, Str: s.String()}
}

// tags runs a tag-names query; the answers are small, so there is one message, the final one.
func (g *GRPCAPI) tags(ctx context.Context, req *tempopb.SearchTagsRequest) (map[string][]string, error) {
	tr, err := unixRange(req.Start, req.End)
	if err != nil {
		return nil, err
	}
	ctx, tenantID, release, err := g.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	tags, err := g.Store.Tags(ctx, tenantID, tr)
	return tags, grpcError(err)
}

func validScope(scope string) error {
	switch scope {
	case "", "all", "span", "resource", "intrinsic", "event", "link", "instrumentation":
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "invalid scope %q: want one of all, span, resource, intrinsic", scope)
}

// SearchTags implements tempopb.StreamingQuerierServer.
func (g *GRPCAPI) SearchTags(req *tempopb.SearchTagsRequest, out tempopb.Sender[*tempopb.SearchTagsResponse]) error {
	if err := validScope(req.Scope); err != nil {
		return err
	}
	tags, err := g.tags(out.Context(), req)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	for sc, keys := range tags {
		if req.Scope != "" && req.Scope != "all" && req.Scope != sc {
			continue
		}
		for _, k := range keys {
			set[k] = true
		}
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	return out.Send(&tempopb.SearchTagsResponse{TagNames: names, Metrics: &tempopb.MetadataMetrics{}})
}

// SearchTagsV2 implements tempopb.StreamingQuerierServer.
func (g *GRPCAPI) SearchTagsV2(req *tempopb.SearchTagsRequest, out tempopb.Sender[*tempopb.SearchTagsV2Response]) error {
	if err := validScope(req.Scope); err != nil {
		return err
	}
	tags, err := g.tags(out.Context(), req)
	if err != nil {
		return err
	}
	all := req.Scope == "" || req.Scope == "all"
	resp := &tempopb.SearchTagsV2Response{Metrics: &tempopb.MetadataMetrics{}}
	for _, sc := range []string{"resource", "span"} {
		if all || req.Scope == sc {
			resp.Scopes = append(resp.Scopes, &tempopb.SearchTagsV2Scope{Name: sc, Tags: append([]string{}, tags[sc]...)})
		}
	}
	if all || req.Scope == "intrinsic" {
		resp.Scopes = append(resp.Scopes, &tempopb.SearchTagsV2Scope{Name: "intrinsic", Tags: traceql.IntrinsicTags})
	}
	return out.Send(resp)
}

func (g *GRPCAPI) tagValues(ctx context.Context, req *tempopb.SearchTagValuesRequest) ([]TagValue, error) {
	tr, err := unixRange(req.Start, req.End)
	if err != nil {
		return nil, err
	}
	// As Tempo (and the HTTP API), a query that does not parse filters nothing: editors send half-typed ones.
	var q *traceql.Query
	if req.Query != "" {
		if pq, perr := traceql.Parse(req.Query); perr == nil {
			q = pq
		}
	}
	ctx, tenantID, release, err := g.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	vals, err := g.Store.TagValues(ctx, tenantID, req.TagName, q, tr, int(req.MaxTagValues))
	return vals, grpcError(err)
}

// SearchTagValues implements tempopb.StreamingQuerierServer.
func (g *GRPCAPI) SearchTagValues(req *tempopb.SearchTagValuesRequest, out tempopb.Sender[*tempopb.SearchTagValuesResponse]) error {
	vals, err := g.tagValues(out.Context(), req)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	resp := &tempopb.SearchTagValuesResponse{TagValues: []string{}, Metrics: &tempopb.MetadataMetrics{}}
	for _, v := range vals {
		if !seen[v.Value] {
			seen[v.Value] = true
			resp.TagValues = append(resp.TagValues, v.Value)
		}
	}
	return out.Send(resp)
}

// SearchTagValuesV2 implements tempopb.StreamingQuerierServer.
func (g *GRPCAPI) SearchTagValuesV2(req *tempopb.SearchTagValuesRequest, out tempopb.Sender[*tempopb.SearchTagValuesV2Response]) error {
	vals, err := g.tagValues(out.Context(), req)
	if err != nil {
		return err
	}
	resp := &tempopb.SearchTagValuesV2Response{Metrics: &tempopb.MetadataMetrics{}}
	for _, v := range vals {
		resp.TagValues = append(resp.TagValues, &tempopb.TagValue{Type: v.Type, Value: v.Value})
	}
	return out.Send(resp)
}

// metricsRequest builds a metrics query from a call, as metricsRequest does from an HTTP request: start and
// end in nanoseconds (an hour up to now without them), step in nanoseconds (about 100 steps without it).
func metricsRequestPB(query string, startNs, endNs, stepNs uint64, exemplars uint32, instant bool) (MetricsRequest, error) {
	q, err := traceql.Parse(query)
	if err != nil {
		return MetricsRequest{}, badQuery(err)
	}
	if q.Metrics == nil {
		return MetricsRequest{}, status.Error(codes.InvalidArgument, "invalid TraceQL query: a metrics query ends in | rate(), count_over_time() or quantile_over_time(...)")
	}
	if startNs > math.MaxInt64 || endNs > math.MaxInt64 || stepNs > math.MaxInt64 {
		return MetricsRequest{}, status.Error(codes.InvalidArgument, "invalid range: start, end or step out of range")
	}
	req := MetricsRequest{Query: q, End: time.Now()}
	if endNs > 0 {
		req.End = time.Unix(0, int64(endNs))
	}
	req.Start = req.End.Add(-time.Hour)
	if startNs > 0 {
		req.Start = time.Unix(0, int64(startNs))
	}
	if !req.End.After(req.Start) {
		return MetricsRequest{}, status.Error(codes.InvalidArgument, "invalid range: end must be after start")
	}
	switch {
	case instant:
		req.Step = req.End.Sub(req.Start)
	case stepNs > 0:
		req.Step = time.Duration(stepNs)
	default:
		req.Step, _ = parseStep("", req.End.Sub(req.Start))
	}
	if !instant {
		alignRange(&req, strconv.FormatUint(uint64(exemplars), 10))
	}
	return req, nil
}

// runMetrics runs a metrics query, sending a progress message (metrics only, as Tempo's interim answers carry
// no series) at most every ProgressInterval, after the first job.
func (g *GRPCAPI) runMetrics(ctx context.Context, req MetricsRequest, progress func(*tempopb.SearchMetrics) error) (*MetricsResult, error) {
	ctx, tenantID, release, err := g.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	interval := g.ProgressInterval
	if interval == 0 {
		interval = defaultProgressInterval
	}
	var last time.Time
	var sendErr error
	req.Progress = func(m SearchMetrics) {
		if sendErr != nil || (!last.IsZero() && time.Since(last) < interval) {
			return
		}
		last = time.Now()
		sendErr = progress(searchMetricsPB(m))
	}
	res, err := g.Store.QueryRange(ctx, tenantID, req)
	if err != nil {
		return nil, grpcError(err)
	}
	return res, sendErr
}

// MetricsQueryRange implements tempopb.StreamingQuerierServer.
func (g *GRPCAPI) MetricsQueryRange(in *tempopb.QueryRangeRequest, out tempopb.Sender[*tempopb.QueryRangeResponse]) error {
	req, err := metricsRequestPB(in.Query, in.Start, in.End, in.Step, in.Exemplars, in.Instant)
	if err != nil {
		return err
	}
	res, err := g.runMetrics(out.Context(), req, func(m *tempopb.SearchMetrics) error {
		return out.Send(&tempopb.QueryRangeResponse{Series: []*tempopb.TimeSeries{}, Metrics: m})
	})
	if err != nil {
		return err
	}
	resp := &tempopb.QueryRangeResponse{Series: []*tempopb.TimeSeries{}, Metrics: metricsPB(res.Metrics)}
	for _, s := range res.Series {
		ts := &tempopb.TimeSeries{Labels: seriesLabelsPB(req, s.Labels)}
		shown := map[int]bool{}
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			end := req.Start.Add(time.Duration(i+1) * req.Step) // stamped with the end of its step
			if end.After(req.End) {
				continue
			}
			shown[i] = true
			ts.Samples = append(ts.Samples, tempopb.Sample{TimestampMs: end.UnixMilli(), Value: v})
		}
		for _, e := range s.Exemplars {
			if !shown[stepOf(req, e.TimestampMs)] {
				continue
			}
			ts.Exemplars = append(ts.Exemplars, tempopb.Exemplar{
				Labels: []tempopb.KeyValue{{Key: "trace:id", Value: &tempopb.AnyValue{Kind: tempopb.KindString, Str: e.TraceID}}},
				Value:  e.Value, TimestampMs: e.TimestampMs})
		}
		resp.Series = append(resp.Series, ts)
	}
	return out.Send(resp)
}

// MetricsQueryInstant implements tempopb.StreamingQuerierServer.
func (g *GRPCAPI) MetricsQueryInstant(in *tempopb.QueryInstantRequest, out tempopb.Sender[*tempopb.QueryInstantResponse]) error {
	req, err := metricsRequestPB(in.Query, in.Start, in.End, 0, 0, true)
	if err != nil {
		return err
	}
	res, err := g.runMetrics(out.Context(), req, func(m *tempopb.SearchMetrics) error {
		return out.Send(&tempopb.QueryInstantResponse{Series: []*tempopb.InstantSeries{}, Metrics: m})
	})
	if err != nil {
		return err
	}
	resp := &tempopb.QueryInstantResponse{Series: []*tempopb.InstantSeries{}, Metrics: metricsPB(res.Metrics)}
	for _, s := range res.Series {
		if len(s.Values) == 0 || math.IsNaN(s.Values[0]) {
			continue
		}
		resp.Series = append(resp.Series, &tempopb.InstantSeries{Labels: seriesLabelsPB(req, s.Labels), Value: s.Values[0]})
	}
	return out.Send(resp)
}

// metricsPB is metricsOf in protobuf form: one job for memory and one per block, all done.
func metricsPB(m SearchMetrics) *tempopb.SearchMetrics {
	m.CompletedJobs, m.TotalJobs = m.TotalBlocks+1, m.TotalBlocks+1
	return searchMetricsPB(m)
}

func seriesLabelsPB(req MetricsRequest, ls []SeriesLabel) []tempopb.KeyValue {
	if len(ls) == 0 && req.Query != nil && req.Query.Metrics != nil {
		return []tempopb.KeyValue{{Key: "__name__", Value: &tempopb.AnyValue{Kind: tempopb.KindString, Str: req.Query.Metrics.Fn}}}
	}
	out := make([]tempopb.KeyValue, 0, len(ls))
	for _, l := range ls {
		out = append(out, tempopb.KeyValue{Key: l.Name, Value: staticPB(l.Value)})
	}
	return out
}

// progress reports a search's progress to req.Progress, if set.
func (r *SearchRequest) progress(res *SearchResult) {
	if r.Progress != nil {
		r.Progress(res)
	}
}

// progress reports a metrics query's progress to r.Progress, if set: done of TotalBlocks+1 jobs.
func (r *MetricsRequest) progress(m SearchMetrics, done int) {
	if r.Progress != nil {
		m.CompletedJobs, m.TotalJobs = done, m.TotalBlocks+1
		r.Progress(m)
	}
}
