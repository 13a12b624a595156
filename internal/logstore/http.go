package logstore

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/refusal"
)

// Mux is where the API mounts its routes (the sprout_api server, or an http.ServeMux in tests).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// API serves Loki's HTTP API over a Store.
type API struct {
	Store *Store
	// Tenant resolves a request's tenant or answers the request itself and returns false.
	Tenant func(w http.ResponseWriter, r *http.Request) (string, bool)
	// OriginAllowed decides whether a tail WebSocket may be opened from the request's Origin (sprout_api's
	// OriginAllowed: no Origin, the same origin, or one of cors.allowed_origins). Nil: no Origin or the same
	// origin only.
	OriginAllowed func(r *http.Request) bool
	Version       string
	// Now is the clock, for tests.
	Now func() time.Time
}

// Register mounts the routes.
func (a *API) Register(m Mux) {
	h := func(f http.HandlerFunc) http.Handler { return f }
	m.Handle("POST /loki/api/v1/push", h(a.push))
	m.Handle("POST /otlp/v1/logs", h(a.otlp))
	for _, method := range []string{"GET", "POST"} {
		m.Handle(method+" /loki/api/v1/query", h(a.query))
		m.Handle(method+" /loki/api/v1/query_range", h(a.queryRange))
		m.Handle(method+" /loki/api/v1/labels", h(a.labels))
		m.Handle(method+" /loki/api/v1/label", h(a.labels))
		m.Handle(method+" /loki/api/v1/label/{name}/values", h(a.labelValues))
		m.Handle(method+" /loki/api/v1/series", h(a.series))
		m.Handle(method+" /loki/api/v1/index/stats", h(a.indexStats))
		m.Handle(method+" /loki/api/v1/index/volume", h(a.indexVolume))
		m.Handle(method+" /loki/api/v1/index/volume_range", h(a.indexVolumeRange))
		m.Handle(method+" /loki/api/v1/detected_fields", h(a.detectedFields))
		m.Handle(method+" /loki/api/v1/detected_field/{name}/values", h(a.detectedFieldValues))
		m.Handle(method+" /loki/api/v1/detected_labels", h(a.detectedLabels))
		m.Handle(method+" /loki/api/v1/patterns", h(a.patterns))
	}
	m.Handle("GET /loki/api/v1/drilldown-limits", h(a.drilldownLimits))
	m.Handle("GET /loki/api/v1/tail", h(a.tail))
	m.Handle("GET /loki/api/v1/status/buildinfo", h(a.buildInfo))
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError answers as Loki does: the status code and the message as plain text.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

func (a *API) push(w http.ResponseWriter, r *http.Request) {
	tid, tk, limit, ok := a.admitPush(w, r)
	if !ok {
		return
	}
	defer tk.Release()
	streams, err := decodePushBody(r.Body, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), limit, tk)
	if err != nil {
		writeRefusal(w, err, http.StatusBadRequest) // a memory refusal, or a body that does not decode
		return
	}
	a.storePush(w, r.Context(), tid, streams)
	if w.Header().Get("Content-Type") == "" {
		w.WriteHeader(http.StatusNoContent)
	}
}

// admitPush is what both push endpoints do before reading a body: the tenant, then the body's bytes reserved
// with the memory governor before they are read (its decoded bytes are reserved before they are decoded: N
// parallel bodies that each decode to the limit cannot all be in memory at once), and the decoded size allowed.
// When ok, the caller releases the ticket.
func (a *API) admitPush(w http.ResponseWriter, r *http.Request) (tid string, tk *memguard.Ticket, limit int64, ok bool) {
	if tid, ok = a.Tenant(w, r); !ok {
		return "", nil, 0, false
	}
	tk = memguard.IngestTicket(r.Context())
	if err := tk.Grow(memguard.WireSize(r.Context(), r.ContentLength)); err != nil {
		tk.Release()
		writeRefusal(w, err, http.StatusServiceUnavailable)
		return "", nil, 0, false
	}
	return tid, tk, memguard.DecodedLimit(r.Context(), MaxPushSize), true
}

// writeRefusal answers err in Loki's plain text: a refusal with its status and Retry-After, any other error
// with fallback.
func writeRefusal(w http.ResponseWriter, err error, fallback int) {
	refusal.SetHeaders(w.Header(), err)
	writeError(w, refusal.HTTPStatus(err, fallback), err.Error())
}

func (a *API) storePush(w http.ResponseWriter, ctx context.Context, tid string, streams []PushStream) bool {
	if err := a.Store.Push(ctx, tid, streams); err != nil {
		writeRefusal(w, err, http.StatusInternalServerError)
		return false
	}
	return true
}

func (a *API) otlp(w http.ResponseWriter, r *http.Request) {
	tid, tk, limit, ok := a.admitPush(w, r)
	if !ok {
		return
	}
	defer tk.Release()
	body := io.Reader(r.Body)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "gzip: "+err.Error())
			return
		}
		defer zr.Close()
		body = zr
	}
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil || int64(len(raw)) > limit {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("read OTLP body: too large or unreadable (limit %d bytes)", limit))
		return
	}
	req := plogotlp.NewExportRequest()
	isJSON := strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/json")
	if isJSON {
		err = req.UnmarshalJSON(raw)
	} else {
		err = req.UnmarshalProto(raw)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "decode OTLP logs: "+err.Error())
		return
	}
	if !a.storePush(w, r.Context(), tid, OTLPToStreams(req.Logs(), a.now())) {
		return
	}
	resp := plogotlp.NewExportResponse()
	var out []byte
	if isJSON {
		out, _ = resp.MarshalJSON()
		w.Header().Set("Content-Type", "application/json")
	} else {
		out, _ = resp.MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	_, _ = w.Write(out)
}

// parseTime reads Loki's timestamps: unix seconds (up to 10 digits), unix nanoseconds, float seconds or RFC3339.
func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if strings.Contains(s, ".") {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if len(strings.TrimPrefix(s, "-")) <= 10 {
			return time.Unix(n, 0), nil
		}
		return time.Unix(0, n), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
	}
	return t, nil
}

func parseStep(s string, start, end time.Time) (time.Duration, error) {
	if s == "" {
		sec := int64(end.Sub(start).Seconds() / 250)
		if sec < 1 {
			sec = 1
		}
		return time.Duration(sec) * time.Second, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		d := time.Duration(f * float64(time.Second))
		if d <= 0 {
			return 0, errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if d2, err2 := logqlDuration(s); err2 == nil {
			d, err = d2, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
	}
	if d <= 0 {
		return 0, errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	return d, nil
}

func logqlDuration(s string) (time.Duration, error) {
	e, err := logql.ParseExpr("count_over_time({a=\"b\"}[" + s + "])")
	if err != nil {
		return 0, err
	}
	return e.(*logql.RangeAggregation).Range, nil
}

type queryParams struct {
	query      string
	start, end time.Time
	step       time.Duration
	limit      int
	direction  logql.Direction
	categorize bool
}

func (a *API) parseQueryParams(r *http.Request, rangeQuery bool) (*queryParams, error) {
	now := a.now()
	q := &queryParams{query: r.FormValue("query"), limit: 100, direction: logql.Backward}
	if q.query == "" {
		return nil, errors.New("query parameter is required")
	}
	var err error
	if rangeQuery {
		if q.end, err = parseTime(r.FormValue("end"), now); err != nil {
			return nil, fmt.Errorf("end: %w", err)
		}
		if q.start, err = parseTime(r.FormValue("start"), q.end.Add(-time.Hour)); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		if q.end.Before(q.start) {
			return nil, errors.New("end timestamp must not be before or equal to start time")
		}
		if q.step, err = parseStep(r.FormValue("step"), q.start, q.end); err != nil {
			return nil, err
		}
	} else {
		if q.end, err = parseTime(r.FormValue("time"), now); err != nil {
			return nil, fmt.Errorf("time: %w", err)
		}
		q.start = q.end
	}
	if l := r.FormValue("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("limit: %q must be a positive integer", l)
		}
		q.limit = n
	}
	if max := a.Store.cfg.Limits.MaxEntriesLimitPerQuery; max > 0 && q.limit > max {
		return nil, fmt.Errorf("max entries limit per query exceeded, limit > max_entries_limit_per_query (%d > %d)", q.limit, max)
	}
	switch strings.ToLower(r.FormValue("direction")) {
	case "", "backward":
	case "forward":
		q.direction = logql.Forward
	default:
		return nil, fmt.Errorf("direction: %q is not forward or backward", r.FormValue("direction"))
	}
	for _, f := range r.Header.Values("X-Loki-Response-Encoding-Flags") {
		for _, p := range strings.Split(f, ",") {
			if strings.TrimSpace(p) == "categorize-labels" {
				q.categorize = true
			}
		}
	}
	return q, nil
}

// errInstantLogQuery is Loki 3's answer (400, plain text) to a log query sent to /loki/api/v1/query.
const errInstantLogQuery = "log queries are not supported as an instant query type, please change your query to a range query type"

func (a *API) query(w http.ResponseWriter, r *http.Request) { a.runQuery(w, r, false) }

func (a *API) queryRange(w http.ResponseWriter, r *http.Request) { a.runQuery(w, r, true) }

func (a *API) runQuery(w http.ResponseWriter, r *http.Request, rangeQuery bool) {
	tid, qp, ok := a.queryRequest(w, r, rangeQuery)
	if !ok {
		return
	}
	expr, err := logql.ParseExpr(qp.query)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := expr.(*logql.LogSelectorExpr); ok && !rangeQuery {
		// Loki 3 refuses a log query asked as an instant query (its querier, before any limit), with this text.
		writeError(w, http.StatusBadRequest, errInstantLogQuery)
		return
	}
	// As Loki, a range query's length is end - start; an instant query reads its range selectors' lookback.
	length := qp.end.Sub(qp.start)
	if !rangeQuery {
		length = logql.Lookback(expr)
	}
	ctx, release, ok := a.admit(w, r, tid, length)
	if !ok {
		return
	}
	defer release()
	r = r.WithContext(ctx)
	var st logql.Stats
	data := map[string]any{}
	switch e := expr.(type) {
	case *logql.LogSelectorExpr:
		start, end := qp.start.UnixNano(), qp.end.UnixNano()
		res, err := a.Store.Engine().SelectLogs(r.Context(), a.Store.Querier(tid), logql.LogQuery{
			Expr: e, Start: start, End: end, Limit: qp.limit, Direction: qp.direction, Categorize: qp.categorize,
		}, &st)
		if err != nil {
			a.queryError(w, err)
			return
		}
		data["resultType"] = "streams"
		data["result"] = streamsJSON(res, qp.direction, qp.categorize)
		if qp.categorize {
			data["encodingFlags"] = []string{"categorize-labels"}
		}
	case logql.SampleExpr:
		step := int64(qp.step)
		if !rangeQuery {
			step = 0
		}
		start, end := qp.start.UnixNano(), qp.end.UnixNano()
		if step > 0 {
			// Loki (its query frontend) aligns a range query's start and end down to a multiple of the step.
			start -= start % step
			end -= end % step
		}
		res, scalar, err := a.Store.Engine().EvalRange(r.Context(), a.Store.Querier(tid), e, start, end, step, &st)
		if err != nil {
			a.queryError(w, err)
			return
		}
		switch {
		case !rangeQuery && scalar:
			data["resultType"] = "scalar"
			v := 0.0
			if len(res) > 0 {
				v = res[0].Points[0].V
			}
			data["result"] = []any{secs(qp.end.UnixNano()), fmtFloat(v)}
		case !rangeQuery:
			data["resultType"] = "vector"
			data["result"] = vectorJSON(res)
		default:
			data["resultType"] = "matrix"
			data["result"] = matrixJSON(res)
		}
	}
	data["stats"] = statsJSON(&st)
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": data})
}

// checkLength refuses a query that reads more than max_query_length of time, with Loki's message.
func (a *API) checkLength(length time.Duration) error {
	if m := a.Store.MaxQueryLength(); m > 0 && length > m {
		return fmt.Errorf("the query time range exceeds the limit (query length: %s, limit: %s) (limit: max_query_length)", length, m)
	}
	return nil
}

// admit refuses a query that reads more than max_query_length of time (400), then waits for a query slot of
// the tenant: it returns the query's context (the query timeout, cancelled when the client leaves) and the
// function that frees the slot, or answers the refusal and returns false.
func (a *API) admit(w http.ResponseWriter, r *http.Request, tid string, length time.Duration) (context.Context, func(), bool) {
	if err := a.checkLength(length); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	ctx, release, err := a.Store.QueryLimiter().Admit(r.Context(), tid)
	if err != nil {
		a.queryError(w, err)
		return nil, nil, false
	}
	return ctx, release, true
}

func (a *API) queryError(w http.ResponseWriter, err error) {
	if _, ok := refusal.As(err); ok {
		writeRefusal(w, err, http.StatusInternalServerError)
		return
	}
	switch {
	case errors.Is(err, logql.ErrLimit), errors.Is(err, logql.ErrPipeline):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("query timed out after %s (limit: query_timeout)", a.Store.QueryTimeout()))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func secs(ns int64) json.Number {
	return json.Number(strconv.FormatFloat(float64(ns)/1e9, 'f', -1, 64))
}

func fmtFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func labelsMap(l labels.Labels) map[string]string {
	m := make(map[string]string, l.Len())
	l.Range(func(x labels.Label) { m[x.Name] = x.Value })
	return m
}

func streamsJSON(res []logql.Stream, dir logql.Direction, categorize bool) []any {
	out := make([]any, 0, len(res))
	for _, s := range res {
		ents := s.Entries
		sort.SliceStable(ents, func(i, j int) bool {
			if dir == logql.Forward {
				return ents[i].Timestamp < ents[j].Timestamp
			}
			return ents[i].Timestamp > ents[j].Timestamp
		})
		vals := make([][]any, len(ents))
		for i, e := range ents {
			v := []any{strconv.FormatInt(e.Timestamp, 10), e.Line}
			if categorize {
				cat := map[string]any{}
				if !e.Metadata.IsEmpty() {
					cat["structuredMetadata"] = labelsMap(e.Metadata)
				}
				if !e.Parsed.IsEmpty() {
					cat["parsed"] = labelsMap(e.Parsed)
				}
				if len(cat) > 0 {
					v = append(v, cat)
				}
			}
			vals[i] = v
		}
		out = append(out, map[string]any{"stream": labelsMap(s.Labels), "values": vals})
	}
	return out
}

func vectorJSON(res []logql.Series) []any {
	out := make([]any, 0, len(res))
	for _, s := range res {
		p := s.Points[len(s.Points)-1]
		out = append(out, map[string]any{"metric": labelsMap(s.Labels), "value": []any{secs(p.T), fmtFloat(p.V)}})
	}
	return out
}

func matrixJSON(res []logql.Series) []any {
	out := make([]any, 0, len(res))
	for _, s := range res {
		vals := make([][]any, len(s.Points))
		for i, p := range s.Points {
			vals[i] = []any{secs(p.T), fmtFloat(p.V)}
		}
		out = append(out, map[string]any{"metric": labelsMap(s.Labels), "values": vals})
	}
	return out
}

func statsJSON(st *logql.Stats) map[string]any {
	exec := st.ExecTime.Seconds()
	per := func(n int64) int64 {
		if exec <= 0 {
			return 0
		}
		return int64(float64(n) / exec)
	}
	return map[string]any{
		"summary": map[string]any{
			"bytesProcessedPerSecond": per(st.TotalBytesProcessed),
			"linesProcessedPerSecond": per(st.TotalLinesProcessed),
			"totalBytesProcessed":     st.TotalBytesProcessed,
			"totalLinesProcessed":     st.TotalLinesProcessed,
			"totalEntriesReturned":    st.TotalEntriesReturned,
			"execTime":                exec,
			"queueTime":               0,
			"subqueries":              0,
			"splits":                  0,
			"shards":                  0,
		},
		"querier":  map[string]any{},
		"ingester": map[string]any{},
		"cache":    map[string]any{},
	}
}

// rangeAndMatchers reads start/end (default: the last 6 hours, as Loki's label endpoints) and an optional
// selector from the named parameter.
func (a *API) rangeAndMatchers(r *http.Request, param string) (int64, int64, []*labels.Matcher, error) {
	now := a.now()
	end, err := parseTime(r.FormValue("end"), now)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("end: %w", err)
	}
	start, err := parseTime(r.FormValue("start"), end.Add(-6*time.Hour))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("start: %w", err)
	}
	var ms []*labels.Matcher
	if q := r.FormValue(param); q != "" {
		sel, err := logql.ParseLogSelector(q)
		if err != nil {
			return 0, 0, nil, err
		}
		ms = sel.Matchers
	}
	return start.UnixNano(), end.UnixNano() + 1, ms, nil
}

// indexRequest resolves the tenant, the range and the selector in param of a label/series/index request, or
// answers the request itself (401, 400) and returns false.
func (a *API) indexRequest(w http.ResponseWriter, r *http.Request, param string) (tid string, start, end int64, ms []*labels.Matcher, ok bool) {
	if tid, ok = a.Tenant(w, r); !ok {
		return "", 0, 0, nil, false
	}
	start, end, ms, err := a.rangeAndMatchers(r, param)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", 0, 0, nil, false
	}
	return tid, start, end, ms, true
}

// queryRequest resolves the tenant and the query parameters, or answers the request itself and returns false.
func (a *API) queryRequest(w http.ResponseWriter, r *http.Request, rangeQuery bool) (string, *queryParams, bool) {
	tid, ok := a.Tenant(w, r)
	if !ok {
		return "", nil, false
	}
	qp, err := a.parseQueryParams(r, rangeQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", nil, false
	}
	return tid, qp, true
}

func (a *API) labels(w http.ResponseWriter, r *http.Request) {
	tid, start, end, ms, ok := a.indexRequest(w, r, "query")
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": nonNil(a.Store.Labels(tid, start, end, ms))})
}

func (a *API) labelValues(w http.ResponseWriter, r *http.Request) {
	tid, start, end, ms, ok := a.indexRequest(w, r, "query")
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": nonNil(a.Store.LabelValues(tid, r.PathValue("name"), start, end, ms))})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *API) series(w http.ResponseWriter, r *http.Request) {
	tid, start, end, _, ok := a.indexRequest(w, r, "")
	if !ok {
		return
	}
	_ = r.ParseForm()
	sels := append(r.Form["match[]"], r.Form["match"]...)
	seen := map[string]bool{}
	out := []map[string]string{}
	add := func(ls []labels.Labels) {
		for _, l := range ls {
			if k := l.String(); !seen[k] {
				seen[k] = true
				out = append(out, labelsMap(l))
			}
		}
	}
	if len(sels) == 0 {
		add(a.Store.Series(tid, start, end, nil))
	}
	for _, s := range sels {
		sel, err := logql.ParseLogSelector(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		add(a.Store.Series(tid, start, end, sel.Matchers))
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": out})
}

func (a *API) indexStats(w http.ResponseWriter, r *http.Request) {
	tid, start, end, ms, ok := a.indexRequest(w, r, "query")
	if !ok {
		return
	}
	var streams, chunks, entries, bytes int64
	for _, s := range a.Store.Stats(tid, start, end, ms) {
		streams++
		chunks += s.Chunks
		entries += s.Entries
		bytes += s.Bytes
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": streams, "chunks": chunks, "entries": entries, "bytes": bytes})
}

func (a *API) indexVolume(w http.ResponseWriter, r *http.Request) {
	tid, start, end, ms, ok := a.indexRequest(w, r, "query")
	if !ok {
		return
	}
	limit := 100
	if l := r.FormValue("limit"); l != "" {
		var err error
		if limit, err = strconv.Atoi(l); err != nil || limit <= 0 {
			writeError(w, http.StatusBadRequest, "limit: must be a positive integer")
			return
		}
	}
	target := volumeTargets(r, ms)
	type vol struct {
		lbs   labels.Labels
		bytes int64
	}
	groups := map[string]*vol{}
	for _, s := range a.Store.Stats(tid, start, end, ms) {
		l := s.Labels
		if len(target) > 0 {
			l = labels.NewBuilder(l).Keep(target...).Labels()
		}
		k := l.String()
		if groups[k] == nil {
			groups[k] = &vol{lbs: l}
		}
		groups[k].bytes += s.Bytes
	}
	vs := make([]*vol, 0, len(groups))
	for _, v := range groups {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool {
		if vs[i].bytes != vs[j].bytes {
			return vs[i].bytes > vs[j].bytes
		}
		return labels.Compare(vs[i].lbs, vs[j].lbs) < 0
	})
	if len(vs) > limit {
		vs = vs[:limit]
	}
	res := make([]any, 0, len(vs))
	for _, v := range vs {
		res = append(res, map[string]any{"metric": labelsMap(v.lbs), "value": []any{secs(end - 1), strconv.FormatInt(v.bytes, 10)}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": res}})
}

// volumeTargets are the labels index/volume groups by: targetLabels, else the selector's label names.
func volumeTargets(r *http.Request, ms []*labels.Matcher) []string {
	var target []string
	if t := r.FormValue("targetLabels"); t != "" {
		target = strings.Split(t, ",")
	} else if r.FormValue("aggregateBy") != "series" {
		for _, m := range ms {
			target = append(target, m.Name)
		}
	}
	return target
}

// indexVolumeRange is index/volume per step: the bytes of the lines in each step, grouped as index/volume
// groups, as a matrix. It runs sum by (...) (bytes_over_time(selector[step])).
func (a *API) indexVolumeRange(w http.ResponseWriter, r *http.Request) {
	tid, start, end, ms, ok := a.indexRequest(w, r, "query")
	if !ok {
		return
	}
	end-- // rangeAndMatchers makes it exclusive
	step, err := parseStep(r.FormValue("step"), time.Unix(0, start), time.Unix(0, end))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	target := volumeTargets(r, ms)
	if len(target) == 0 {
		target = a.Store.Labels(tid, start, end+1, ms)
	}
	by := make([]string, 0, len(target))
	for _, t := range target {
		if t = strings.TrimSpace(t); t != "" && model.LabelName(t).IsValidLegacy() {
			by = append(by, t)
		}
	}
	var sel strings.Builder
	sel.WriteString("{")
	for i, m := range ms {
		if i > 0 {
			sel.WriteString(",")
		}
		fmt.Fprintf(&sel, "%s%s%s", m.Name, m.Type, strconv.Quote(m.Value))
	}
	sel.WriteString("}")
	if len(ms) == 0 {
		writeError(w, http.StatusBadRequest, "query: a stream selector with at least one matcher is required")
		return
	}
	q := fmt.Sprintf("sum by (%s) (bytes_over_time(%s[%s]))", strings.Join(by, ","), sel.String(), model.Duration(step))
	expr, err := logql.ParseExpr(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, release, ok := a.admit(w, r, tid, time.Duration(end-start))
	if !ok {
		return
	}
	defer release()
	var st logql.Stats
	res, _, err := a.Store.Engine().EvalRange(ctx, a.Store.Querier(tid), expr.(logql.SampleExpr), start, end, int64(step), &st)
	if err != nil {
		a.queryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": matrixJSON(res)}})
}

func mustStages(q string) []logql.Stage {
	s, err := logql.ParseLogSelector(q)
	if err != nil {
		panic(err)
	}
	return s.Stages
}

// guessType is the type detected_fields reports for a value, tried in Loki's order: int, float, boolean,
// duration, bytes, else string.
func guessType(v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return "int"
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return "float"
	}
	if _, err := strconv.ParseBool(v); err == nil {
		return "boolean"
	}
	if _, err := time.ParseDuration(v); err == nil {
		return "duration"
	}
	if isBytes(v) {
		return "bytes"
	}
	return "string"
}

// byteUnits are the units a bytes value may end with (SI and IEC, long and short).
var byteUnits = map[string]bool{
	"": true, "b": true, "byte": true, "bytes": true,
	"k": true, "kb": true, "ki": true, "kib": true, "m": true, "mb": true, "mi": true, "mib": true,
	"g": true, "gb": true, "gi": true, "gib": true, "t": true, "tb": true, "ti": true, "tib": true,
	"p": true, "pb": true, "pi": true, "pib": true, "e": true, "eb": true, "ei": true, "eib": true,
}

// isBytes accepts a size: a number (commas allowed) and a unit of byteUnits, with or without a space.
func isBytes(v string) bool {
	i := 0
	digits := false
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.' || v[i] == ',') {
		digits = digits || v[i] >= '0' && v[i] <= '9'
		i++
	}
	if !digits {
		return false
	}
	if _, err := strconv.ParseFloat(strings.ReplaceAll(v[:i], ",", ""), 64); err != nil {
		return false
	}
	return byteUnits[strings.ToLower(strings.TrimSpace(v[i:]))]
}

func mergeType(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case (a == "int" && b == "float") || (a == "float" && b == "int"):
		return "float"
	}
	return "string"
}

func (a *API) buildInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"version": a.Version, "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": runtime.Version(),
	})
}

// maxTailMessage is the largest message a tail client may send (Loki's clients send none).
const maxTailMessage = 4 << 10

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 16 << 10,
	// tail checks Origin itself (checkOrigin) before upgrading, with the API's configuration.
	CheckOrigin: func(*http.Request) bool { return true },
}

// checkOrigin refuses a cross-site WebSocket: a browser opens one to any address, with the user's credentials,
// and CORS does not apply, so without this any web page could read the logs of a Sprout on localhost.
func (a *API) checkOrigin(r *http.Request) bool {
	if a.OriginAllowed != nil {
		return a.OriginAllowed(r)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// tail streams new lines matching a log query over a WebSocket, as Loki's /loki/api/v1/tail: first the lines
// since start (up to limit), then new ones as they arrive.
func (a *API) tail(w http.ResponseWriter, r *http.Request) {
	if !a.checkOrigin(r) {
		http.Error(w, fmt.Sprintf("tail: a WebSocket from origin %q is refused: not this server's origin; list it in sprout_api cors.allowed_origins to allow it", r.Header.Get("Origin")), http.StatusForbidden)
		return
	}
	tid, ok := a.Tenant(w, r)
	if !ok {
		return
	}
	q := r.FormValue("query")
	sel, err := logql.ParseLogSelector(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := a.now()
	start, err := parseTime(r.FormValue("start"), now.Add(-time.Hour))
	if err != nil {
		writeError(w, http.StatusBadRequest, "start: "+err.Error())
		return
	}
	limit := 100
	if l := r.FormValue("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit <= 0 {
			writeError(w, http.StatusBadRequest, "limit: must be a positive integer")
			return
		}
	}
	// The lines sent first are a log query: the same limits apply, refused before the upgrade.
	if max := a.Store.cfg.Limits.MaxEntriesLimitPerQuery; max > 0 && limit > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("max entries limit per query exceeded, limit > max_entries_limit_per_query (%d > %d)", limit, max))
		return
	}
	if err := a.checkLength(now.Sub(start)); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The tailer slot and the query slot for the lines sent first are taken before the upgrade, so a refusal is
	// an ordinary 429/503 the client can retry.
	t, err := a.Store.Subscribe(tid, sel.Matchers)
	if err != nil {
		writeRefusal(w, fmt.Errorf("tail: %w", err), http.StatusInternalServerError)
		return
	}
	defer a.Store.Unsubscribe(t)
	_, release, err := a.Store.QueryLimiter().Admit(r.Context(), tid)
	if err != nil {
		a.queryError(w, err)
		return
	}
	defer release() // idempotent; released as soon as the first lines are sent
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	// A tail client sends nothing but control frames; a larger message is refused at its frame header (close
	// 1009) instead of being read whole into memory.
	conn.SetReadLimit(maxTailMessage)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		// Reading detects the client closing the connection.
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				cancel()
				return
			}
		}
	}()
	var st logql.Stats
	// The first lines run under the query timeout and end when the client leaves (ctx; the request's own
	// context is not cancelled by a hijacked connection closing).
	hctx, hcancel := context.WithTimeout(ctx, a.Store.QueryTimeout())
	hist, err := a.Store.Engine().SelectLogs(hctx, a.Store.Querier(tid), logql.LogQuery{Expr: sel, Start: start.UnixNano(), End: now.UnixNano() + 1, Limit: limit, Direction: logql.Forward}, &st)
	hcancel()
	release()
	if err != nil {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseInternalServerErr, err.Error()), time.Now().Add(time.Second))
		return
	}
	if err := conn.WriteJSON(map[string]any{"streams": streamsJSON(hist, logql.Forward, false)}); err != nil {
		return
	}
	p := logql.NewPipeline(sel.Stages)
	lastDropped := int64(0)
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
				return
			}
		case b := <-t.C:
			byKey := map[string]*logql.Stream{}
			var order []*logql.Stream
			for _, e := range b.Entries {
				line, keep := p.Process(e.Timestamp, e.Line, b.Labels, e.Metadata)
				if !keep {
					continue
				}
				lbs := p.Builder().Labels()
				k := lbs.String()
				s := byKey[k]
				if s == nil {
					s = &logql.Stream{Labels: lbs}
					byKey[k] = s
					order = append(order, s)
				}
				s.Entries = append(s.Entries, logql.ResultEntry{Timestamp: e.Timestamp, Line: line})
			}
			if len(order) == 0 {
				continue
			}
			res := make([]logql.Stream, len(order))
			for i, s := range order {
				res[i] = *s
			}
			msg := map[string]any{"streams": streamsJSON(res, logql.Forward, false)}
			if d := t.Dropped.Load(); d > lastDropped {
				msg["dropped_entries"] = []map[string]any{{"labels": b.Labels.String(), "timestamp": strconv.FormatInt(now.UnixNano(), 10)}}
				lastDropped = d
			}
			if err := conn.WriteJSON(msg); err != nil {
				return
			}
		}
	}
}
