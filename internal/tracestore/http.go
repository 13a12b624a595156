package tracestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// Mux is where the API mounts its routes (the sprout_api server, or an http.ServeMux in tests).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// API serves Tempo's HTTP query API over a Store.
type API struct {
	Store *Store
	// Tenant resolves the tenant of a request, answering the error itself when it returns false.
	Tenant func(w http.ResponseWriter, r *http.Request) (string, bool)
	// Version is reported by /api/status/buildinfo.
	Version string
}

// Register mounts every route.
func (a *API) Register(m Mux) {
	m.Handle("GET /api/traces/{id}", http.HandlerFunc(a.traceV1))
	m.Handle("GET /api/v2/traces/{id}", http.HandlerFunc(a.traceV2))
	m.Handle("GET /api/search", http.HandlerFunc(a.search))
	m.Handle("GET /api/search/tags", http.HandlerFunc(a.tagsV1))
	m.Handle("GET /api/v2/search/tags", http.HandlerFunc(a.tagsV2))
	m.Handle("GET /api/search/tag/{tag}/values", http.HandlerFunc(a.tagValuesV1))
	m.Handle("GET /api/v2/search/tag/{tag}/values", http.HandlerFunc(a.tagValuesV2))
	m.Handle("GET /api/echo", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("echo")) }))
	m.Handle("GET /api/status/buildinfo", http.HandlerFunc(a.buildinfo))
	m.Handle("GET /api/metrics/query_range", http.HandlerFunc(a.queryRange))
	m.Handle("GET /api/metrics/query", http.HandlerFunc(a.queryInstant))
}

const (
	mimeJSON     = "application/json"
	mimeProtobuf = "application/protobuf"
)

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// storeError maps store errors to Tempo's status codes: a refusal's own (400 for bad data and limits, 504 for
// query_timeout, 429 with Retry-After), 404, 499 for a client that left.
func storeError(w http.ResponseWriter, err error) {
	_, refused := refusal.As(err)
	switch {
	case errors.Is(err, ErrNotFound):
		httpError(w, http.StatusNotFound, err.Error())
	case refused:
		refusal.SetHeaders(w.Header(), err)
		httpError(w, refusal.HTTPStatus(err, http.StatusInternalServerError), err.Error())
	case errors.Is(err, context.Canceled):
		httpError(w, 499, "query cancelled: the client went away")
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

// admit waits for a query slot of the tenant and returns the request to serve, whose context carries the query
// timeout and ends when the client leaves, and the function that frees the slot; or it answers the refusal
// (429 or 503 with Retry-After) and returns false.
func (a *API) admit(w http.ResponseWriter, r *http.Request, tenantID string) (*http.Request, func(), bool) {
	ctx, release, err := a.Store.QueryLimiter().Admit(r.Context(), tenantID)
	if err != nil {
		if _, ok := refusal.As(err); ok {
			storeError(w, err)
			return nil, nil, false
		}
		httpError(w, 499, "query cancelled while it waited for a slot: "+err.Error())
		return nil, nil, false
	}
	return r.WithContext(ctx), release, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", mimeJSON)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// parseTime reads Tempo's start/end: unix seconds (also fractional), unix nanoseconds, or RFC 3339.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > 1e15 || n < -1e15 {
			return time.Unix(0, n), nil
		}
		return time.Unix(n, 0), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e12 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a unix timestamp in seconds or an RFC 3339 time", s)
}

func parseRange(r *http.Request) (TimeRange, error) {
	var tr TimeRange
	var err error
	if tr.Start, err = parseTime(r.FormValue("start")); err != nil {
		return tr, fmt.Errorf("invalid start: %w", err)
	}
	if tr.End, err = parseTime(r.FormValue("end")); err != nil {
		return tr, fmt.Errorf("invalid end: %w", err)
	}
	if !tr.Start.IsZero() && !tr.End.IsZero() && tr.End.Before(tr.Start) {
		return tr, errors.New("invalid range: end is before start")
	}
	return tr, nil
}

func wantsProtobuf(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), mimeProtobuf)
}

func (a *API) lookupTrace(w http.ResponseWriter, r *http.Request) (ptrace.Traces, bool) {
	tenantID, ok := a.Tenant(w, r)
	if !ok {
		return ptrace.Traces{}, false
	}
	id, err := ParseTraceID(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid trace id: "+err.Error())
		return ptrace.Traces{}, false
	}
	tr, err := parseRange(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return ptrace.Traces{}, false
	}
	r, release, ok := a.admit(w, r, tenantID)
	if !ok {
		return ptrace.Traces{}, false
	}
	defer release()
	td, err := a.Store.TraceByID(r.Context(), tenantID, id, tr)
	if err != nil {
		storeError(w, err)
		return ptrace.Traces{}, false
	}
	return td, true
}

// traceV1 answers OTLP JSON ({"resourceSpans": [...]}) or, on Accept: application/protobuf, the OTLP
// TracesData message, which has the same wire form as Tempo's tempopb.Trace.
func (a *API) traceV1(w http.ResponseWriter, r *http.Request) {
	td, ok := a.lookupTrace(w, r)
	if !ok {
		return
	}
	if wantsProtobuf(r) {
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", mimeProtobuf)
		_, _ = w.Write(b)
		return
	}
	b, err := tempoTraceJSON(td, "batches")
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", mimeJSON)
	_, _ = w.Write(b)
}

// traceV2 wraps the trace as Tempo 2.x does: {"trace": {...}}; in protobuf, field 1 of TraceByIDResponse.
func (a *API) traceV2(w http.ResponseWriter, r *http.Request) {
	td, ok := a.lookupTrace(w, r)
	if !ok {
		return
	}
	if wantsProtobuf(r) {
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		out := make([]byte, 0, len(b)+12)
		out = append(out, 0x0a) // field 1, wire type 2
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
		w.Header().Set("Content-Type", mimeProtobuf)
		_, _ = w.Write(out)
		return
	}
	b, err := tempoTraceJSON(td, "resourceSpans")
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", mimeJSON)
	_, _ = w.Write([]byte(`{"trace":`))
	_, _ = w.Write(b)
	_, _ = fmt.Fprintf(w, `,"metrics":{"inspectedBytes":"%d"}}`+"\n", traceBytes(td))
}

// tempoTraceJSON renders a trace as Tempo's HTTP API does: the protobuf JSON mapping of its Trace message
// (gogo jsonpb), not OTLP/JSON. Ids are base64, span kind and status code are enum names; v1 calls the list
// of resource spans "batches".
func tempoTraceJSON(td ptrace.Traces, listKey string) ([]byte, error) {
	raw, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	rss, _ := doc["resourceSpans"].([]any)
	for _, rs := range rss {
		for _, ss := range asList(asMap(rs)["scopeSpans"]) {
			for _, sp := range asList(asMap(ss)["spans"]) {
				span := asMap(sp)
				hexToBase64(span, "traceId", "spanId", "parentSpanId")
				if k, ok := span["kind"].(json.Number); ok {
					n, _ := k.Int64()
					span["kind"] = "SPAN_KIND_" + strings.ToUpper(ptrace.SpanKind(n).String())
				}
				if st := asMap(span["status"]); st != nil {
					if c, ok := st["code"].(json.Number); ok {
						n, _ := c.Int64()
						st["code"] = statusEnum(ptrace.StatusCode(n))
					}
				}
				for _, l := range asList(span["links"]) {
					hexToBase64(asMap(l), "traceId", "spanId")
				}
			}
		}
	}
	if rss == nil {
		rss = []any{}
	}
	return json.Marshal(map[string]any{listKey: rss})
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any         { l, _ := v.([]any); return l }

func hexToBase64(m map[string]any, keys ...string) {
	for _, k := range keys {
		if s, ok := m[k].(string); ok {
			if b, err := hex.DecodeString(s); err == nil {
				m[k] = base64.StdEncoding.EncodeToString(b)
			}
		}
	}
}

func statusEnum(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "STATUS_CODE_OK"
	case ptrace.StatusCodeError:
		return "STATUS_CODE_ERROR"
	}
	return "STATUS_CODE_UNSET"
}

// traceBytes is the size of the trace's protobuf encoding (Tempo's inspectedBytes of a trace by id).
func traceBytes(td ptrace.Traces) int {
	return (&ptrace.ProtoMarshaler{}).TracesSize(td)
}

// parseQuery parses q, or builds a query from the older tags= (logfmt) parameter.
func parseQuery(r *http.Request) (*traceql.Query, error) {
	q := r.FormValue("q")
	if q == "" && r.FormValue("tags") != "" {
		var conds []string
		for _, kv := range splitLogfmt(r.FormValue("tags")) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("invalid tags: %q is not key=value", kv)
			}
			attr := "." + k
			if in, ok := traceql.LookupIntrinsic(k); ok && in != traceql.IntrinsicNone {
				attr = k
			}
			switch k {
			case "status", "kind":
				conds = append(conds, fmt.Sprintf("%s = %s", k, v))
			default:
				conds = append(conds, fmt.Sprintf("%s = %s", attr, strconv.Quote(strings.Trim(v, `"`))))
			}
		}
		q = "{ " + strings.Join(conds, " && ") + " }"
	}
	return traceql.Parse(q)
}

func splitLogfmt(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote := false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			cur.WriteRune(r)
		case r == ' ' && !inQuote:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func intParam(r *http.Request, name string) (int, error) {
	s := r.FormValue(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid %s: %q is not a non-negative integer", name, s)
	}
	return n, nil
}

func durParam(r *http.Request, name string) (time.Duration, error) {
	s := r.FormValue(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid %s: %q is not a duration such as 100ms", name, s)
	}
	return d, nil
}

// JSON shapes of Tempo's search API.
type searchResponse struct {
	Traces  []traceJSON `json:"traces"`
	Metrics metricsJSON `json:"metrics"`
}

type traceJSON struct {
	TraceID           string                      `json:"traceID"`
	RootServiceName   string                      `json:"rootServiceName"`
	RootTraceName     string                      `json:"rootTraceName,omitempty"`
	StartTimeUnixNano string                      `json:"startTimeUnixNano"`
	DurationMs        uint64                      `json:"durationMs"`
	SpanSet           *spanSetJSON                `json:"spanSet,omitempty"`
	SpanSets          []spanSetJSON               `json:"spanSets"`
	ServiceStats      map[string]serviceStatsJSON `json:"serviceStats,omitempty"`
}

type serviceStatsJSON struct {
	SpanCount  int `json:"spanCount"`
	ErrorCount int `json:"errorCount,omitempty"`
}

type spanSetJSON struct {
	Spans      []spanJSON `json:"spans"`
	Matched    int        `json:"matched"`
	Attributes []kvJSON   `json:"attributes,omitempty"`
}

type spanJSON struct {
	SpanID            string   `json:"spanID"`
	Name              string   `json:"name,omitempty"`
	StartTimeUnixNano string   `json:"startTimeUnixNano"`
	DurationNanos     string   `json:"durationNanos"`
	Attributes        []kvJSON `json:"attributes,omitempty"`
}

type kvJSON struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

type metricsJSON struct {
	InspectedTraces int    `json:"inspectedTraces"`
	InspectedBytes  string `json:"inspectedBytes"`
	InspectedSpans  string `json:"inspectedSpans,omitempty"`
	TotalBlocks     int    `json:"totalBlocks,omitempty"`
	CompletedJobs   int    `json:"completedJobs,omitempty"`
	TotalJobs       int    `json:"totalJobs,omitempty"`
}

// otlpValue renders a value in OTLP JSON form ({"stringValue": "x"}, {"intValue": "3"}, ...).
func otlpValue(v pcommon.Value) map[string]any {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return map[string]any{"stringValue": v.Str()}
	case pcommon.ValueTypeInt:
		return map[string]any{"intValue": strconv.FormatInt(v.Int(), 10)}
	case pcommon.ValueTypeDouble:
		return map[string]any{"doubleValue": v.Double()}
	case pcommon.ValueTypeBool:
		return map[string]any{"boolValue": v.Bool()}
	case pcommon.ValueTypeBytes:
		return map[string]any{"bytesValue": base64.StdEncoding.EncodeToString(v.Bytes().AsRaw())}
	case pcommon.ValueTypeSlice:
		vals := []map[string]any{}
		for i := 0; i < v.Slice().Len(); i++ {
			vals = append(vals, otlpValue(v.Slice().At(i)))
		}
		return map[string]any{"arrayValue": map[string]any{"values": vals}}
	case pcommon.ValueTypeMap:
		vals := []kvJSON{}
		v.Map().Range(func(k string, x pcommon.Value) bool {
			vals = append(vals, kvJSON{Key: k, Value: otlpValue(x)})
			return true
		})
		return map[string]any{"kvlistValue": map[string]any{"values": vals}}
	}
	return map[string]any{}
}

func staticValue(s traceql.Static) map[string]any {
	switch s.Type {
	case traceql.TypeInt:
		return map[string]any{"intValue": strconv.FormatInt(s.N, 10)}
	case traceql.TypeDuration:
		return map[string]any{"stringValue": time.Duration(s.N).String()}
	case traceql.TypeFloat:
		return map[string]any{"doubleValue": s.F}
	case traceql.TypeBool:
		return map[string]any{"boolValue": s.B}
	case traceql.TypeString:
		return map[string]any{"stringValue": s.S}
	case traceql.TypeNil:
		return map[string]any{"stringValue": "nil"}
	}
	return map[string]any{"stringValue": s.String()}
}

func (a *API) search(w http.ResponseWriter, r *http.Request) {
	tenantID, ok := a.Tenant(w, r)
	if !ok {
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid TraceQL query: "+err.Error())
		return
	}
	if q.Metrics != nil {
		httpError(w, http.StatusBadRequest, "invalid TraceQL query: metrics queries go to /api/metrics/query_range")
		return
	}
	req := SearchRequest{Query: q, MostRecent: q.HintBool("most_recent")}
	var errs []error
	var e error
	req.Range, e = parseRange(r)
	errs = append(errs, e)
	req.Limit, e = intParam(r, "limit")
	errs = append(errs, e)
	req.SpansPerSpanSet, e = intParam(r, "spss")
	errs = append(errs, e)
	req.MinDuration, e = durParam(r, "minDuration")
	errs = append(errs, e)
	req.MaxDuration, e = durParam(r, "maxDuration")
	errs = append(errs, e)
	if err := errors.Join(errs...); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	r, release, ok := a.admit(w, r, tenantID)
	if !ok {
		return
	}
	defer release()
	res, err := a.Store.Search(r.Context(), tenantID, req)
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, renderSearch(res))
}

func renderSearch(res *SearchResult) searchResponse {
	out := searchResponse{Traces: []traceJSON{}, Metrics: metricsJSON{
		InspectedTraces: res.Metrics.InspectedTraces, InspectedBytes: strconv.FormatInt(res.Metrics.InspectedBytes, 10),
		InspectedSpans: strconv.Itoa(res.Metrics.InspectedSpans),
		TotalBlocks:    res.Metrics.TotalBlocks, CompletedJobs: res.Metrics.CompletedJobs, TotalJobs: res.Metrics.TotalJobs,
	}}
	for _, m := range res.Traces {
		tj := traceJSON{TraceID: traceIDString(m.TraceID), RootServiceName: m.RootServiceName, RootTraceName: m.RootTraceName,
			StartTimeUnixNano: strconv.FormatUint(m.StartUnixNano, 10), DurationMs: m.DurationNanos / 1e6, SpanSets: []spanSetJSON{}}
		for _, ss := range m.SpanSets {
			sj := spanSetJSON{Spans: []spanJSON{}, Matched: ss.Matched}
			if ss.ScalarName != "" {
				sj.Attributes = append(sj.Attributes, kvJSON{Key: ss.ScalarName, Value: staticValue(ss.Scalar)})
			}
			for _, g := range ss.GroupBy {
				sj.Attributes = append(sj.Attributes, kvJSON{Key: "by(" + g.Name + ")", Value: staticValue(g.Value)})
			}
			for _, sp := range ss.Spans {
				spj := spanJSON{SpanID: sp.SpanID.String(), Name: sp.Name, StartTimeUnixNano: strconv.FormatUint(sp.StartUnixNano, 10),
					DurationNanos: strconv.FormatUint(sp.DurationNanos, 10)}
				for _, at := range sp.Attributes {
					spj.Attributes = append(spj.Attributes, kvJSON{Key: at.Key, Value: otlpValue(at.Value)})
				}
				sj.Spans = append(sj.Spans, spj)
			}
			tj.SpanSets = append(tj.SpanSets, sj)
		}
		if len(m.ServiceStats) > 0 {
			tj.ServiceStats = map[string]serviceStatsJSON{}
			for svc, st := range m.ServiceStats {
				tj.ServiceStats[svc] = serviceStatsJSON{SpanCount: st.SpanCount, ErrorCount: st.ErrorCount}
			}
		}
		if len(tj.SpanSets) > 0 {
			first := tj.SpanSets[0]
			tj.SpanSet = &first
		}
		out.Traces = append(out.Traces, tj)
	}
	return out
}

func (a *API) tags(w http.ResponseWriter, r *http.Request) (map[string][]string, bool) {
	tenantID, ok := a.Tenant(w, r)
	if !ok {
		return nil, false
	}
	tr, err := parseRange(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	r, release, ok := a.admit(w, r, tenantID)
	if !ok {
		return nil, false
	}
	defer release()
	// As for tag values, a q that does not parse (half-typed in an editor) scopes nothing.
	var q *traceql.Query
	if qs := r.FormValue("q"); qs != "" {
		if pq, perr := traceql.Parse(qs); perr == nil {
			q = pq
		}
	}
	tags, err := a.Store.TagsMatching(r.Context(), tenantID, tr, q)
	if err != nil {
		storeError(w, err)
		return nil, false
	}
	return tags, true
}

func (a *API) tagsV1(w http.ResponseWriter, r *http.Request) {
	tags, ok := a.tags(w, r)
	if !ok {
		return
	}
	set := map[string]bool{}
	scope := r.FormValue("scope")
	for sc, keys := range tags {
		if scope != "" && scope != "all" && scope != sc {
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
	writeJSON(w, map[string]any{"tagNames": names, "metrics": tagsMetrics})
}

// tagsMetrics is the metrics object of the tags APIs (Tempo's MetadataMetrics). Tags come from block summaries
// and memory, not from reading blocks, so nothing is counted as inspected.
var tagsMetrics = map[string]any{"inspectedBytes": "0"}

type scopeJSON struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

func (a *API) tagsV2(w http.ResponseWriter, r *http.Request) {
	scope := r.FormValue("scope")
	switch scope {
	case "", "all", "span", "resource", "intrinsic", "event", "link", "instrumentation":
	default:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("invalid scope %q: want one of all, span, resource, intrinsic", scope))
		return
	}
	tags, ok := a.tags(w, r)
	if !ok {
		return
	}
	var scopes []scopeJSON
	for _, sc := range []string{"resource", "span"} {
		if scope == "" || scope == "all" || scope == sc {
			scopes = append(scopes, scopeJSON{Name: sc, Tags: append([]string{}, tags[sc]...)})
		}
	}
	if scope == "" || scope == "all" || scope == "intrinsic" {
		scopes = append(scopes, scopeJSON{Name: "intrinsic", Tags: traceql.IntrinsicTags})
	}
	if scopes == nil {
		scopes = []scopeJSON{}
	}
	writeJSON(w, map[string]any{"scopes": scopes, "metrics": tagsMetrics})
}

func (a *API) tagValues(w http.ResponseWriter, r *http.Request) ([]TagValue, bool) {
	tenantID, ok := a.Tenant(w, r)
	if !ok {
		return nil, false
	}
	tr, err := parseRange(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	// As Tempo, a q that does not parse (an editor sends half-typed queries while completing) filters nothing.
	var q *traceql.Query
	if qs := r.FormValue("q"); qs != "" {
		if pq, perr := traceql.Parse(qs); perr == nil {
			q = pq
		}
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	r, release, ok := a.admit(w, r, tenantID)
	if !ok {
		return nil, false
	}
	defer release()
	vals, err := a.Store.TagValues(r.Context(), tenantID, r.PathValue("tag"), q, tr, limit)
	if err != nil {
		storeError(w, err)
		return nil, false
	}
	return vals, true
}

func (a *API) tagValuesV1(w http.ResponseWriter, r *http.Request) {
	vals, ok := a.tagValues(w, r)
	if !ok {
		return
	}
	seen := map[string]bool{}
	out := []string{}
	for _, v := range vals {
		if !seen[v.Value] {
			seen[v.Value] = true
			out = append(out, v.Value)
		}
	}
	writeJSON(w, map[string]any{"tagValues": out, "metrics": tagsMetrics})
}

func (a *API) tagValuesV2(w http.ResponseWriter, r *http.Request) {
	vals, ok := a.tagValues(w, r)
	if !ok {
		return
	}
	type tv struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	out := make([]tv, 0, len(vals))
	for _, v := range vals {
		out = append(out, tv{Type: v.Type, Value: v.Value})
	}
	writeJSON(w, map[string]any{"tagValues": out, "metrics": tagsMetrics})
}

// TempoCompatVersion is the Tempo version /api/status/buildinfo reports. Grafana's Tempo data source compares
// it with the versions that unlock its features (featuresToTempoVersion: streaming search from 2.2.0,
// streaming metrics from 2.7.0) and turns off what the version is below; Sprout serves both, and reports the
// lowest version that turns on no more than that. What Sprout really is goes in revision and branch.
const TempoCompatVersion = "2.7.0"

func (a *API) buildinfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]string{
		"version": TempoCompatVersion, "revision": "sprout-" + a.Version, "branch": "sprout", "buildUser": "", "buildDate": "",
		"goVersion": runtime.Version(),
	})
}
