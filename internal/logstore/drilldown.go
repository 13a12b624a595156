package logstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/querylimit"
)

// The endpoints Grafana's Logs Drilldown app reads besides queries: detected_labels, detected_fields,
// detected_field/{name}/values, patterns and drilldown-limits, in the shapes Loki 3.7 answers them.

// maxPointsPerSeries is Loki's bound on a range request's steps.
const maxPointsPerSeries = 11000

// drilldownParams are the parameters of a detected_* or patterns request.
type drilldownParams struct {
	query      string
	start, end time.Time
	step       time.Duration
	// lineLimit bounds the lines a detected_fields request reads; limit the fields or values it answers.
	lineLimit, limit int
}

// parseDrilldownParams reads query, start and end (default: the last hour, as Loki), step, line_limit and
// limit (alias field_limit).
func (a *API) parseDrilldownParams(r *http.Request) (*drilldownParams, error) {
	now := a.now()
	p := &drilldownParams{query: r.FormValue("query"), lineLimit: defaultDetectedLineLimit, limit: 1000}
	var err error
	if p.end, err = parseTime(r.FormValue("end"), now); err != nil {
		return nil, fmt.Errorf("end: %w", err)
	}
	if p.start, err = parseTime(r.FormValue("start"), p.end.Add(-time.Hour)); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if p.end.Before(p.start) {
		return nil, errors.New("end timestamp must not be before or equal to start time")
	}
	if p.step, err = parseStep(r.FormValue("step"), p.start, p.end); err != nil {
		return nil, err
	}
	if p.end.Sub(p.start)/p.step > maxPointsPerSeries {
		return nil, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try increasing the value of the step parameter")
	}
	posInt := func(name, v string, def int) (int, error) {
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s: cannot parse %q to an integer", name, v)
		}
		if n <= 0 {
			return 0, errors.New("limit must be a positive value")
		}
		return n, nil
	}
	if p.lineLimit, err = posInt("line_limit", r.FormValue("line_limit"), p.lineLimit); err != nil {
		return nil, err
	}
	if max := a.Store.cfg.Limits.MaxEntriesLimitPerQuery; max > 0 && p.lineLimit > max {
		return nil, fmt.Errorf("max entries limit per query exceeded, limit > max_entries_limit_per_query (%d > %d)", p.lineLimit, max)
	}
	lim := r.FormValue("limit")
	if lim == "" {
		lim = r.FormValue("field_limit")
	}
	if p.limit, err = posInt("limit", lim, p.limit); err != nil {
		return nil, err
	}
	return p, nil
}

// drilldownRequest resolves the tenant and the parameters, or answers the request and returns false.
func (a *API) drilldownRequest(w http.ResponseWriter, r *http.Request) (string, *drilldownParams, bool) {
	tid, ok := a.Tenant(w, r)
	if !ok {
		return "", nil, false
	}
	p, err := a.parseDrilldownParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", nil, false
	}
	return tid, p, true
}

// staticLabels are kept by detected_labels even when their values look like ids (Loki's list).
var staticLabels = map[string]bool{"cluster": true, "namespace": true, "instance": true, "pod": true}

// detectedLabels answers the stream labels of the streams the selector matches over the range, with their
// number of values, leaving out those Loki leaves out: labels whose values are all numbers or UUIDs (ids that
// make no useful breakdown), except cluster, namespace, instance and pod, and except 0/1 flags.
func (a *API) detectedLabels(w http.ResponseWriter, r *http.Request) {
	tid, p, ok := a.drilldownRequest(w, r)
	if !ok {
		return
	}
	var ms []*labels.Matcher
	if p.query != "" {
		sel, err := logql.ParseLogSelector(p.query)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		ms = sel.Matchers
	}
	_, release, ok := a.admit(w, r, tid, p.end.Sub(p.start))
	if !ok {
		return
	}
	defer release()
	start, end := p.start.UnixNano(), p.end.UnixNano()+1
	out := []map[string]any{}
	for _, name := range a.Store.Labels(tid, start, end, ms) {
		vals := a.Store.LabelValues(tid, name, start, end, ms)
		if !(staticLabels[name] && len(vals) > 0) && rejectDetectedLabel(vals) {
			continue
		}
		out = append(out, map[string]any{"label": name, "cardinality": len(vals)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"detectedLabels": out})
}

// rejectDetectedLabel reports a label detected_labels leaves out: no values, or only ids (numbers, UUIDs), but
// not one or two values that are all 0 or 1.
func rejectDetectedLabel(vals []string) bool {
	if len(vals) == 0 {
		return true
	}
	if len(vals) <= 2 {
		flags := true
		for _, v := range vals {
			flags = flags && (v == "0" || v == "1")
		}
		if flags {
			return false
		}
	}
	for _, v := range vals {
		if _, err := strconv.ParseFloat(v, 64); err != nil && !isUUID(v) {
			return false
		}
	}
	return true
}

// isUUID accepts the forms of a UUID in use: 8-4-4-4-12 hex digits, bare, in braces or as a urn:uuid:, or 32
// hex digits.
func isUUID(s string) bool {
	switch len(s) {
	case 36 + 9:
		if !strings.EqualFold(s[:9], "urn:uuid:") {
			return false
		}
		s = s[9:]
	case 36 + 2:
		if s[0] != '{' || s[len(s)-1] != '}' {
			return false
		}
		s = s[1 : len(s)-1]
	case 32:
		for i := 0; i < len(s); i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	}
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// defaultDetectedLineLimit is the lines detected_fields reads when line_limit is not given. Loki's default is 100
// per shard of its query, and a Loki spreads a query over several shards; Sprout reads one range, so it takes
// more lines to see as many fields.
const defaultDetectedLineLimit = 1000

// detectedField is what detected_fields learns of one field.
type detectedField struct {
	values   map[string]struct{}
	parsers  []string
	typ      string
	jsonPath []string
}

// maxDetectedValues bounds the distinct values counted per field.
const maxDetectedValues = 10000

// scanFields reads the newest lineLimit lines of the query and calls note for each structured-metadata field
// (parser "") and each field a json, else logfmt parser finds in the line, with the json path of a json field.
func (a *API) scanFields(ctx context.Context, tid string, p *drilldownParams, sel *logql.LogSelectorExpr,
	note func(name, value, parser string, jsonPath []string)) error {
	var st logql.Stats
	res, err := a.Store.Engine().SelectLogs(ctx, a.Store.Querier(tid), logql.LogQuery{
		Expr: sel, Start: p.start.UnixNano(), End: p.end.UnixNano() + 1, Limit: p.lineLimit, Categorize: true,
	}, &st)
	if err != nil {
		return err
	}
	logfmtP := logql.NewPipeline(mustStages(`{a="b"} | logfmt`))
	for _, s := range res {
		for _, e := range s.Entries {
			e.Metadata.Range(func(l labels.Label) { note(l.Name, l.Value, "", nil) })
			// The labels the query's own parsers extracted count as parsed fields, as in Loki; the line is parsed
			// again below for the parser's name and the json paths.
			stream := labels.NewBuilder(s.Labels)
			e.Parsed.Range(func(l labels.Label) {
				if l.Name != logql.ErrorLabel && l.Name != logql.ErrorDetailsLabel {
					stream.Del(l.Name)
				}
			})
			base := stream.Labels()
			if fs, ok := logql.JSONFields(e.Line, base); ok {
				for _, f := range fs {
					note(f.Name, f.Value, "json", f.Path)
				}
				noteParsed(e.Parsed, "json", note)
				continue
			}
			logfmtP.Process(e.Timestamp, e.Line, base, labels.EmptyLabels())
			_, _, parsed := logfmtP.Builder().Categorized()
			if parsed.Has(logql.ErrorLabel) || parsed.IsEmpty() {
				noteParsed(e.Parsed, "", note)
				continue
			}
			parsed.Range(func(l labels.Label) { note(l.Name, l.Value, "logfmt", nil) })
			noteParsed(e.Parsed, "logfmt", note)
		}
	}
	return nil
}

func noteParsed(parsed labels.Labels, parser string, note func(name, value, parser string, jsonPath []string)) {
	parsed.Range(func(l labels.Label) {
		if l.Name != logql.ErrorLabel && l.Name != logql.ErrorDetailsLabel {
			note(l.Name, l.Value, parser, nil)
		}
	})
}

// fieldsRequest parses a detected_fields or detected_field values request and admits it, or answers it.
func (a *API) fieldsRequest(w http.ResponseWriter, r *http.Request) (string, *drilldownParams, *logql.LogSelectorExpr, context.Context, func(), bool) {
	tid, p, ok := a.drilldownRequest(w, r)
	if !ok {
		return "", nil, nil, nil, nil, false
	}
	if p.query == "" {
		writeError(w, http.StatusBadRequest, "query parameter is required")
		return "", nil, nil, nil, nil, false
	}
	sel, err := logql.ParseLogSelector(p.query)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", nil, nil, nil, nil, false
	}
	ctx, release, ok := a.admit(w, r, tid, p.end.Sub(p.start))
	if !ok {
		return "", nil, nil, nil, nil, false
	}
	return tid, p, sel, ctx, release, true
}

// detectedFields reads the newest lines of the query (line_limit) and reports the fields in their structured
// metadata (parsers null) and those a json or logfmt parser finds in them, with their number of values, a type
// guessed from the values, the parser and, for json fields, the path of keys (jsonPath), as Loki 3.7 does.
func (a *API) detectedFields(w http.ResponseWriter, r *http.Request) {
	tid, p, sel, ctx, release, ok := a.fieldsRequest(w, r)
	if !ok {
		return
	}
	defer release()
	fields := map[string]*detectedField{}
	err := a.scanFields(ctx, tid, p, sel, func(name, val, parser string, jsonPath []string) {
		f := fields[name]
		if f == nil {
			if len(fields) >= p.limit {
				return
			}
			f = &detectedField{values: map[string]struct{}{}}
			fields[name] = f
		}
		if len(f.values) < maxDetectedValues {
			f.values[val] = struct{}{}
		}
		if parser != "" && !slices.Contains(f.parsers, parser) {
			f.parsers = append(f.parsers, parser)
		}
		if jsonPath != nil {
			f.jsonPath = jsonPath
		}
		f.typ = mergeType(f.typ, guessType(val))
	})
	if err != nil {
		a.queryError(w, err)
		return
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []map[string]any{}
	for _, n := range names {
		f := fields[n]
		var ps []string
		if len(f.parsers) > 0 {
			ps = append(ps, f.parsers...)
			sort.Strings(ps)
		}
		m := map[string]any{"label": n, "type": f.typ, "cardinality": len(f.values), "parsers": ps}
		if f.jsonPath != nil {
			m["jsonPath"] = f.jsonPath
		}
		out = append(out, m)
	}
	resp := map[string]any{"fields": out}
	if len(out) > 0 {
		// Loki reports the limit only with fields.
		resp["limit"] = p.limit
	}
	writeJSON(w, http.StatusOK, resp)
}

// detectedFieldValues answers the values of one detected field (structured metadata or parsed from the lines)
// over the newest lines of the query, up to limit values.
func (a *API) detectedFieldValues(w http.ResponseWriter, r *http.Request) {
	tid, p, sel, ctx, release, ok := a.fieldsRequest(w, r)
	if !ok {
		return
	}
	defer release()
	name := r.PathValue("name")
	seen := map[string]struct{}{}
	err := a.scanFields(ctx, tid, p, sel, func(n, val, _ string, _ []string) {
		if n == name && len(seen) < p.limit {
			seen[val] = struct{}{}
		}
	})
	if err != nil {
		a.queryError(w, err)
		return
	}
	vals := make([]string, 0, len(seen))
	for v := range seen {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	resp := map[string]any{"values": vals}
	if len(vals) > 0 {
		resp["limit"] = p.limit
	}
	writeJSON(w, http.StatusOK, resp)
}

// patterns mines the lines of the query over the range into patterns (see pattern.go) and answers them as
// Loki's /loki/api/v1/patterns: per pattern and level, the lines per step. Loki answers from the patterns its
// pattern ingester learnt at ingest; Sprout mines the stored lines when asked, under the query budget.
func (a *API) patterns(w http.ResponseWriter, r *http.Request) {
	tid, p, ok := a.drilldownRequest(w, r)
	if !ok {
		return
	}
	if p.query == "" {
		writeError(w, http.StatusBadRequest, "query parameter is required")
		return
	}
	sel, err := logql.ParseLogSelector(p.query)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, release, ok := a.admit(w, r, tid, p.end.Sub(p.start))
	if !ok {
		return
	}
	defer release()
	step := int64(p.step)
	start, end := p.start.UnixNano(), p.end.UnixNano()
	start -= start % step
	steps := int((end-start)/step) + 1
	miner := newPatternMiner(start, step, steps, defaultMaxPatterns)
	pl := logql.NewPipeline(sel.Stages)
	var read, lines int64
	maxBytes := a.Store.cfg.Limits.MaxQueryBytesRead
	err = a.Store.Querier(tid).SelectLogs(ctx, logql.SelectParams{
		Matchers: sel.Matchers, Start: start, End: end + 1, TraceID: logql.TraceIDHint(sel),
		LineFilter: logql.LinePrefilter(sel.Stages), Direction: logql.Forward,
	}, func(stream labels.Labels, e logql.Entry) error {
		read += int64(len(e.Line))
		if lines++; lines%1024 == 0 {
			if err := querylimit.Checkpoint(ctx); err != nil {
				return err
			}
		}
		if maxBytes > 0 && read > maxBytes {
			return fmt.Errorf("%w: the query would read more than %d bytes (limit: max_query_bytes_read)", logql.ErrLimit, maxBytes)
		}
		line, keep := pl.Process(e.Timestamp, e.Line, stream, e.Metadata)
		if !keep {
			return nil
		}
		miner.Add(e.Timestamp, patternLevel(stream, e.Metadata), line)
		return nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		a.queryError(w, err)
		return
	}
	data := []map[string]any{}
	for _, mp := range miner.Patterns() {
		samples := make([][2]int64, len(mp.Samples))
		copy(samples, mp.Samples)
		data = append(data, map[string]any{"pattern": mp.Pattern, "level": mp.Level, "samples": samples})
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": data})
}

// patternLevel is the level a line's pattern is kept under: its detected_level, else its stream's level label,
// else "unknown" (Loki's pattern ingester's levels).
func patternLevel(stream, md labels.Labels) string {
	if v := md.Get(DetectedLevelLabel); v != "" {
		return v
	}
	for _, n := range []string{DetectedLevelLabel, "level"} {
		if v := stream.Get(n); v != "" {
			return strings.ToLower(v)
		}
	}
	return "unknown"
}

// drilldownLimits answers the limits Logs Drilldown reads (GET /loki/api/v1/drilldown-limits): the fields of
// Loki's published allowlist, with Sprout's values, whether patterns are served, and the version.
func (a *API) drilldownLimits(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.Tenant(w, r); !ok {
		return
	}
	l := a.Store.cfg.Limits
	dur := func(d time.Duration) string { return model.Duration(d).String() }
	bytesRead := "0B"
	if l.MaxQueryBytesRead > 0 {
		bytesRead = strconv.FormatInt(l.MaxQueryBytesRead, 10) + "B"
	}
	limits := map[string]any{
		"discover_log_levels": l.DiscoverLogLevels,
		// Sprout names the service of OTLP logs (service_name); it discovers none from other labels.
		"discover_service_name":       []string{},
		"log_level_fields":            levelFields,
		"max_entries_limit_per_query": l.MaxEntriesLimitPerQuery,
		"max_line_size_truncate":      l.MaxLineSizeTruncate,
		"max_query_bytes_read":        bytesRead,
		"max_query_length":            dur(l.MaxQueryLength),
		"max_query_lookback":          dur(0),
		"max_query_range":             dur(0),
		"max_query_series":            l.MaxQuerySeries,
		"metric_aggregation_enabled":  false,
		"otlp_config":                 otlpConfigJSON,
		"pattern_persistence_enabled": false,
		"query_timeout":               dur(l.QueryTimeout),
		"retention_period":            dur(a.Store.cfg.Retention),
		"volume_enabled":              true,
		"volume_max_series":           1000,
	}
	writeJSON(w, http.StatusOK, map[string]any{"limits": limits, "pattern_ingester_enabled": true, "version": a.Version})
}

// otlpConfigJSON is how Sprout maps OTLP logs (otlp.go), in the shape of Loki's otlp_config: Loki's default
// index attributes become stream labels, everything else structured metadata.
var otlpConfigJSON = map[string]any{
	"resource_attributes": map[string]any{
		"attributes_config": []any{
			map[string]any{"action": "index_label", "attributes": DefaultIndexLabels},
		},
	},
}
