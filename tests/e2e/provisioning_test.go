package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// provisioning is the part of Grafana's data source provisioning file that the signal jumps use.
type provisioning struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name     string `yaml:"name"`
		UID      string `yaml:"uid"`
		Type     string `yaml:"type"`
		URL      string `yaml:"url"`
		JSONData struct {
			TracesToLogsV2 *struct {
				DatasourceUID      string    `yaml:"datasourceUid"`
				SpanStartTimeShift string    `yaml:"spanStartTimeShift"`
				SpanEndTimeShift   string    `yaml:"spanEndTimeShift"`
				Tags               []spanTag `yaml:"tags"`
				CustomQuery        bool      `yaml:"customQuery"`
				Query              string    `yaml:"query"`
				FilterByTraceID    bool      `yaml:"filterByTraceID"`
			} `yaml:"tracesToLogsV2"`
			TracesToMetrics *struct {
				DatasourceUID      string    `yaml:"datasourceUid"`
				SpanStartTimeShift string    `yaml:"spanStartTimeShift"`
				SpanEndTimeShift   string    `yaml:"spanEndTimeShift"`
				Tags               []spanTag `yaml:"tags"`
				Queries            []struct {
					Name  string `yaml:"name"`
					Query string `yaml:"query"`
				} `yaml:"queries"`
			} `yaml:"tracesToMetrics"`
			ServiceMap *struct {
				DatasourceUID string `yaml:"datasourceUid"`
			} `yaml:"serviceMap"`
			StreamingEnabled *struct {
				Search  bool `yaml:"search"`
				Metrics bool `yaml:"metrics"`
			} `yaml:"streamingEnabled"`
			ExemplarTraceIDDestinations []struct {
				Name          string `yaml:"name"`
				DatasourceUID string `yaml:"datasourceUid"`
			} `yaml:"exemplarTraceIdDestinations"`
			DerivedFields []struct {
				Name          string `yaml:"name"`
				MatcherType   string `yaml:"matcherType"`
				MatcherRegex  string `yaml:"matcherRegex"`
				DatasourceUID string `yaml:"datasourceUid"`
				URL           string `yaml:"url"`
			} `yaml:"derivedFields"`
		} `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type spanTag struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

var grafanaEnvRef = regexp.MustCompile(`\$\$|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)

// grafanaProvisioningExpand does what Grafana does to the values of a provisioning file: $$ is a literal $, and
// $NAME or ${NAME} is the environment variable. The documented file must not depend on the environment, so any
// reference is an error here.
func grafanaProvisioningExpand(s string) (string, error) {
	var err error
	out := grafanaEnvRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if err == nil {
			err = fmt.Errorf("%s would be expanded from the environment by Grafana (write $%s)", m, m)
		}
		return m
	})
	return out, err
}

// loadDocumentedProvisioning reads the provisioning file of docs/getting-started.md as Grafana reads it.
func loadDocumentedProvisioning(t *testing.T) provisioning {
	t.Helper()
	doc, err := os.ReadFile("../../docs/getting-started.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(doc), "```yaml\n")[1:] {
		body, _, _ := strings.Cut(part, "```")
		if strings.HasPrefix(body, "apiVersion: 1\ndatasources:") {
			block = body
		}
	}
	if block == "" {
		t.Fatal("docs/getting-started.md has no provisioning file (a yaml block starting with apiVersion: 1)")
	}
	var raw yaml.Node
	if err := yaml.Unmarshal([]byte(block), &raw); err != nil {
		t.Fatalf("provisioning file: %v", err)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			v, err := grafanaProvisioningExpand(n.Value)
			if err != nil {
				t.Errorf("provisioning file value %q: %v", n.Value, err)
			}
			n.Value = v
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&raw)
	var p provisioning
	if err := raw.Decode(&p); err != nil {
		t.Fatalf("provisioning file: %v", err)
	}
	return p
}

// grafanaSpan is a span as Grafana's Tempo data source hands it to the trace view: its process tags are the
// resource's attributes (service.name included), its tags the span's attributes.
type grafanaSpan struct {
	traceID, spanID, name string
	startMs, endMs        float64
	processTags, tags     []spanTag
}

func (s grafanaSpan) allTags() []spanTag {
	return append(append([]spanTag{}, s.processTags...), s.tags...)
}

// formattedTags is Grafana's getFormattedTags for Loki: the configured tags present on the span (or the span's
// id, trace id, name, duration), as label="value" joined by ", ", named by the mapping's value if it has one.
func (s grafanaSpan) formattedTags(want []spanTag) string {
	all := append(s.allTags(), spanTag{"spanId", s.spanID}, spanTag{"traceId", s.traceID}, spanTag{"name", s.name},
		spanTag{"duration", strconv.FormatFloat(s.endMs-s.startMs, 'f', -1, 64)})
	var out []string
	for _, tag := range all {
		for _, w := range want {
			if w.Key == tag.Key {
				name := w.Value
				if name == "" {
					name = w.Key
				}
				out = append(out, name+`="`+tag.Value+`"`)
				break
			}
		}
	}
	return strings.Join(out, ", ")
}

// metricsTags is Grafana's buildMetricsQuery label list: for each configured tag the span has, name="value".
func (s grafanaSpan) metricsTags(want []spanTag) string {
	var out []string
	for _, w := range want {
		for _, tag := range s.allTags() {
			if tag.Key == w.Key && tag.Value != "" {
				name := w.Value
				if name == "" {
					name = w.Key
				}
				out = append(out, name+`="`+tag.Value+`"`)
				break
			}
		}
	}
	return strings.Join(out, ", ")
}

// timeRange is Grafana's getTimeRangeFromSpan: the span's start and end in ms, shifted, end after start.
func (s grafanaSpan) timeRange(t *testing.T, startShift, endShift string) (from, to int64) {
	shift := func(v string) float64 {
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("time shift %q: %v", v, err)
		}
		return float64(d.Milliseconds())
	}
	from = int64(s.startMs + shift(startShift))
	to = int64(s.endMs + shift(endShift))
	if from == to {
		to++
	}
	return from, to
}

var templateVar = regexp.MustCompile(`\$\{([^}]+)\}`)

// interpolate replaces Grafana's template variables of a span link: ${__tags}, ${__span.traceId},
// ${__span.spanId}, ${__span.name}, ${__trace.traceId}. A variable left undefined means Grafana shows no link.
func (s grafanaSpan) interpolate(t *testing.T, q, tags string) string {
	vars := map[string]string{"__tags": tags, "__span.traceId": s.traceID, "__span.spanId": s.spanID, "__span.name": s.name, "__trace.traceId": s.traceID}
	return templateVar.ReplaceAllStringFunc(q, func(m string) string {
		v, ok := vars[m[2:len(m)-1]]
		if !ok {
			t.Fatalf("%s in %q is not defined for a span: Grafana shows no link", m, q)
		}
		return v
	})
}

// decodeID reads a trace or span id of Tempo's JSON (base64 as protobuf JSON has it, or hex) as Grafana's hex.
func decodeID(s string) string {
	if b, err := hex.DecodeString(s); err == nil && (len(b) == 16 || len(b) == 8) {
		return s
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return s
	}
	return hex.EncodeToString(b)
}

// fetchGrafanaSpan reads the trace over Tempo's API, as Grafana's Tempo data source does, and returns the span
// of that name.
func fetchGrafanaSpan(t *testing.T, api, traceID, name string) grafanaSpan {
	t.Helper()
	type kv struct {
		Key   string `json:"key"`
		Value struct {
			StringValue string `json:"stringValue"`
		} `json:"value"`
	}
	var tr struct {
		Batches []struct {
			Resource struct {
				Attributes []kv `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []struct {
					TraceID           string `json:"traceId"`
					SpanID            string `json:"spanId"`
					Name              string `json:"name"`
					StartTimeUnixNano string `json:"startTimeUnixNano"`
					EndTimeUnixNano   string `json:"endTimeUnixNano"`
					Attributes        []kv   `json:"attributes"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"batches"`
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		code, body := getBody(api + "/api/traces/" + traceID)
		if code != 200 {
			return fmt.Errorf("trace %s: %d %s", traceID, code, tail(body, 300))
		}
		return json.Unmarshal([]byte(body), &tr)
	})
	tags := func(kvs []kv) []spanTag {
		var out []spanTag
		for _, a := range kvs {
			out = append(out, spanTag{a.Key, a.Value.StringValue})
		}
		return out
	}
	for _, b := range tr.Batches {
		for _, ss := range b.ScopeSpans {
			for _, sp := range ss.Spans {
				if sp.Name != name {
					continue
				}
				start, _ := strconv.ParseInt(sp.StartTimeUnixNano, 10, 64)
				end, _ := strconv.ParseInt(sp.EndTimeUnixNano, 10, 64)
				return grafanaSpan{
					traceID: decodeID(sp.TraceID), spanID: decodeID(sp.SpanID), name: sp.Name,
					startMs: float64(start) / 1e6, endMs: float64(end) / 1e6,
					processTags: tags(b.Resource.Attributes), tags: tags(sp.Attributes),
				}
			}
		}
	}
	t.Fatalf("trace %s has no span %q", traceID, name)
	return grafanaSpan{}
}

// linkedRequest is one shop request of the provisioning test: frontend calls checkout, whose charge fails; the
// checkout service logs the failure with the trace's ids, as an OTLP log SDK does.
func linkedRequest(i int, now time.Time) (ptrace.Traces, plog.Logs, string) {
	var tid pcommon.TraceID
	copy(tid[:], fmt.Sprintf("provisioning%04d", i))
	td := ptrace.NewTraces()
	res := func(svc string) ptrace.ScopeSpans {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		return rs.ScopeSpans().AppendEmpty()
	}
	add := func(ss ptrace.ScopeSpans, id, parent byte, name string, kind ptrace.SpanKind, failed bool) {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{id, byte(i), 7})
		if parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID{parent, byte(i), 7})
		}
		sp.SetName(name)
		sp.SetKind(kind)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(30 * time.Millisecond)))
		sp.Attributes().PutStr("http.route", name)
		if failed {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	fe, co := res("frontend"), res("checkout")
	add(fe, 1, 0, "GET /cart", ptrace.SpanKindServer, false)
	add(fe, 2, 1, "HTTP POST", ptrace.SpanKindClient, false)
	add(co, 3, 2, "POST /checkout", ptrace.SpanKindServer, false)
	add(co, 4, 3, "charge card", ptrace.SpanKindInternal, true)

	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(10 * time.Millisecond)))
	lr.SetObservedTimestamp(lr.Timestamp())
	lr.SetTraceID(tid)
	lr.SetSpanID(pcommon.SpanID{4, byte(i), 7})
	lr.SetSeverityText("ERROR")
	lr.Body().SetStr(fmt.Sprintf("charging card failed trace_id=%s", hex.EncodeToString(tid[:])))
	return td, ld, hex.EncodeToString(tid[:])
}

// TestDocumentedProvisioningLinks reads the provisioning file of docs/getting-started.md as Grafana does, sends a
// real trace and its log to the binary, builds every jump of the file exactly as Grafana builds it for that
// trace (createSpanLink: getQueryForLoki with the custom query, buildMetricsQuery for each tracesToMetrics
// query; the Loki derived fields; the Prometheus exemplar destination; the service map's query), runs each
// through Sprout's API and finds the trace's logs, metrics and trace.
func TestDocumentedProvisioningLinks(t *testing.T) {
	p := loadDocumentedProvisioning(t)
	byUID := map[string]int{}
	for i, ds := range p.Datasources {
		byUID[ds.UID] = i
	}
	tempo, prom, loki := p.Datasources[byUID["sprout-tempo"]], p.Datasources[byUID["sprout-prometheus"]], p.Datasources[byUID["sprout-loki"]]
	if tempo.Type != "tempo" || prom.Type != "prometheus" || loki.Type != "loki" {
		t.Fatalf("data sources = %+v", p.Datasources)
	}
	tl, tm := tempo.JSONData.TracesToLogsV2, tempo.JSONData.TracesToMetrics
	switch {
	case tl == nil || !tl.CustomQuery || !strings.Contains(tl.Query, "trace_id="):
		t.Fatalf("tracesToLogsV2 must filter on the trace_id structured metadata with a custom query: %+v", tl)
	case tm == nil || len(tm.Queries) == 0:
		t.Fatalf("tracesToMetrics has no queries, so Grafana makes no span → metrics link: %+v", tm)
	case tempo.JSONData.StreamingEnabled == nil || !tempo.JSONData.StreamingEnabled.Search || !tempo.JSONData.StreamingEnabled.Metrics:
		t.Errorf("streamingEnabled = %+v, want search and metrics on", tempo.JSONData.StreamingEnabled)
	case tl.DatasourceUID != loki.UID || tm.DatasourceUID != prom.UID || tempo.JSONData.ServiceMap == nil || tempo.JSONData.ServiceMap.DatasourceUID != prom.UID:
		t.Fatalf("the links point at the wrong data sources: %+v %+v", tl, tm)
	}

	env, api := defaultEnv(t)
	var grpcAddr string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "SPROUT_OTLP_GRPC_ENDPOINT="); ok {
			grpcAddr = v
		}
	}
	sp := startSprout(t, env)
	sp.waitHTTP(api+"/ready", 60*time.Second)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	traces, logs := ptraceotlp.NewGRPCClient(conn), plogotlp.NewGRPCClient(conn)
	now := time.Now()
	var traceID string
	for i := 0; i < 3; i++ {
		td, ld, id := linkedRequest(i, now.Add(time.Duration(i)*time.Second))
		if _, err := traces.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
			t.Fatalf("export traces: %v", err)
		}
		if _, err := logs.Export(context.Background(), plogotlp.NewExportRequestFromLogs(ld)); err != nil {
			t.Fatalf("export logs: %v", err)
		}
		traceID = id
	}
	span := fetchGrafanaSpan(t, api, traceID, "POST /checkout")
	if span.traceID != traceID {
		t.Fatalf("Tempo's trace id %s, want %s", span.traceID, traceID)
	}

	// Span → logs: the custom query with ${__tags} and ${__span.traceId}, over the shifted span range.
	tags := span.formattedTags(tl.Tags)
	if tags == "" {
		t.Fatalf("no tag of %v on the span: Grafana's ${__tags} is empty", tl.Tags)
	}
	logQuery := span.interpolate(t, tl.Query, tags)
	from, to := span.timeRange(t, tl.SpanStartTimeShift, tl.SpanEndTimeShift)
	t.Logf("span → logs: %s", logQuery)
	var line, metaTraceID string
	testutil.Eventually(t, 30*time.Second, func() error {
		q := url.Values{"query": {logQuery}, "start": {strconv.FormatInt(from*1e6, 10)}, "end": {strconv.FormatInt(to*1e6, 10)}, "limit": {"1000"}, "direction": {"backward"}}
		req, _ := http.NewRequest(http.MethodGet, api+"/loki/api/v1/query_range?"+q.Encode(), nil)
		req.Header.Set("X-Loki-Response-Encoding-Flags", "categorize-labels") // as Grafana's Loki data source
		code, body := doBody(req)
		if code != 200 {
			return fmt.Errorf("loki query: %d %s", code, tail(body, 400))
		}
		var out struct {
			Data struct {
				Result []struct {
					Stream map[string]string `json:"stream"`
					Values [][]any           `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			return err
		}
		for _, s := range out.Data.Result {
			for _, v := range s.Values {
				if len(v) < 3 {
					continue
				}
				l, _ := v[1].(string)
				meta, _ := v[2].(map[string]any)
				sm, _ := meta["structuredMetadata"].(map[string]any)
				if id, _ := sm["trace_id"].(string); id == traceID && strings.Contains(l, "charging card failed") {
					line, metaTraceID = l, id
					return nil
				}
			}
		}
		return fmt.Errorf("the span's log line is not found: %s", tail(body, 600))
	})

	// Log → trace: both derived fields of the Loki data source lead to the trace.
	for _, df := range loki.JSONData.DerivedFields {
		var value string
		if df.MatcherType == "label" {
			if df.MatcherRegex != "trace_id" {
				t.Fatalf("derived field %q reads label %q", df.Name, df.MatcherRegex)
			}
			value = metaTraceID
		} else {
			m := regexp.MustCompile(df.MatcherRegex).FindStringSubmatch(line)
			if len(m) < 2 {
				t.Fatalf("derived field %q (%s) finds nothing in %q", df.Name, df.MatcherRegex, line)
			}
			value = m[1]
		}
		id := strings.ReplaceAll(df.URL, "${__value.raw}", value)
		if df.DatasourceUID != tempo.UID {
			t.Fatalf("derived field %q points at %s", df.Name, df.DatasourceUID)
		}
		if code, body := getBody(api + "/api/v2/traces/" + id); code != 200 {
			t.Errorf("derived field %q → trace %s: %d %s", df.Name, id, code, tail(body, 300))
		}
	}

	// Span → metrics: every query of tracesToMetrics with $__tags, over the shifted span range.
	mtags := span.metricsTags(tm.Tags)
	mfrom, mto := span.timeRange(t, tm.SpanStartTimeShift, tm.SpanEndTimeShift)
	for _, q := range tm.Queries {
		expr := strings.ReplaceAll(q.Query, "$__tags", mtags)
		t.Logf("span → metrics %q: %s", q.Name, expr)
		testutil.Eventually(t, 60*time.Second, func() error {
			return promHasData(api, expr, float64(mfrom)/1000, float64(mto)/1000)
		})
	}

	// Exemplar → trace: the span metrics' exemplars carry trace_id, the destination's name.
	for _, dest := range prom.JSONData.ExemplarTraceIDDestinations {
		testutil.Eventually(t, 60*time.Second, func() error {
			form := url.Values{"query": {`traces_spanmetrics_latency_bucket{service="checkout"}`}, "start": {strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)}, "end": {strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)}}
			code, body := postForm(api+"/api/v1/query_exemplars", form)
			if code != 200 {
				return fmt.Errorf("exemplars: %d %s", code, tail(body, 300))
			}
			var out struct {
				Data []struct {
					Exemplars []struct {
						Labels map[string]string `json:"labels"`
					} `json:"exemplars"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				return err
			}
			for _, s := range out.Data {
				for _, e := range s.Exemplars {
					if id := e.Labels[dest.Name]; id != "" {
						if code, b := getBody(api + "/api/v2/traces/" + id); code != 200 {
							return fmt.Errorf("exemplar trace %s: %d %s", id, code, tail(b, 200))
						}
						return nil
					}
				}
			}
			return fmt.Errorf("no exemplar with label %q: %s", dest.Name, tail(body, 400))
		})
	}

	// Service map: the edge frontend → checkout in the generator's service graph.
	testutil.Eventually(t, 60*time.Second, func() error {
		return promHasData(api, `sum by (client, server) (rate(traces_service_graph_request_total{client="frontend", server="checkout"}[5m]))`, float64(mfrom)/1000, float64(mto)/1000)
	})
}

// promHasData runs a range query as Grafana's Prometheus data source does (POST, form) and wants a series with
// a number in it.
func promHasData(api, expr string, from, to float64) error {
	form := url.Values{"query": {expr}, "start": {strconv.FormatFloat(from, 'f', 3, 64)}, "end": {strconv.FormatFloat(to, 'f', 3, 64)}, "step": {"15"}}
	code, body := postForm(api+"/api/v1/query_range", form)
	if code != 200 {
		return fmt.Errorf("%s: %d %s", expr, code, tail(body, 300))
	}
	var out struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		return err
	}
	for _, r := range out.Data.Result {
		for _, v := range r.Values {
			if s, _ := v[1].(string); s != "NaN" && s != "" {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no data yet: %s", expr, tail(body, 300))
}

func postForm(u string, form url.Values) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return doBody(req)
}

func doBody(req *http.Request) (int, string) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}
