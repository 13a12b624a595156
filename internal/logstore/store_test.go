package logstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixed "now" for deterministic tests; lines are pushed around it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t     *testing.T
	dir   string
	bcfg  bucket.Config
	bkt   bucket.Bucket
	store *Store
	srv   *httptest.Server
	clk   *clock
	cfg   Config
	// realTime runs the store and API on the wall clock (for tests with real clients that stamp lines now).
	realTime bool
}

func fsBucket(t *testing.T, dir string) bucket.Config {
	return bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: dir}}
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, clk: &clock{t: testNow}, bcfg: fsBucket(t, filepath.Join(dir, "bucket"))}
	e.cfg = DefaultConfig()
	e.cfg.DataDir = filepath.Join(dir, "data")
	e.cfg.FlushCheckPeriod = time.Hour
	e.cfg.CompactionInterval = time.Hour
	if mod != nil {
		mod(&e.cfg)
	}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	if e.bkt == nil {
		b, err := bucket.New(context.Background(), e.bcfg, zap.NewNop())
		if err != nil {
			e.t.Fatal(err)
		}
		e.bkt = b
	}
	now := e.clk.Now
	if e.realTime {
		now = time.Now
	}
	s, err := Open(context.Background(), e.cfg, e.bkt, Options{Now: now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = s
	mux := http.NewServeMux()
	api := &API{Store: s, Version: "test", Now: now, Tenant: func(w http.ResponseWriter, r *http.Request) (string, bool) {
		id, err := tenant.FromRequest(r, r.Header.Get(tenant.Header) != "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return "", false
		}
		return id, true
	}}
	api.Register(mux)
	if e.srv != nil {
		e.srv.Close()
	}
	e.srv = httptest.NewServer(mux)
	e.t.Cleanup(e.srv.Close)
}

func (e *env) close() {
	e.t.Helper()
	if err := e.store.Close(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) post(path, ctype string, body []byte, hdr ...string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) get(path string, params url.Values, hdr ...string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path+"?"+params.Encode(), nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func ts(sec int) int64 { return testNow.Add(time.Duration(sec) * time.Second).UnixNano() }

func jsonPush(streams ...string) []byte {
	return []byte(`{"streams":[` + strings.Join(streams, ",") + `]}`)
}

type queryResp struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
		Stats      map[string]any  `json:"stats"`
		Flags      []string        `json:"encodingFlags"`
	} `json:"data"`
}

type streamResult struct {
	Stream map[string]string `json:"stream"`
	Values [][]any           `json:"values"`
}

func (e *env) queryRange(q string, hdr ...string) (queryResp, []streamResult) {
	e.t.Helper()
	code, body := e.get("/loki/api/v1/query_range", url.Values{"query": {q}, "start": {fmt.Sprint(ts(-600))}, "end": {fmt.Sprint(ts(600))}, "limit": {"1000"}, "step": {"60"}}, hdr...)
	if code != 200 {
		e.t.Fatalf("query_range %s: %d %s", q, code, body)
	}
	var r queryResp
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Fatal(err)
	}
	var sr []streamResult
	if r.Data.ResultType == "streams" {
		_ = json.Unmarshal(r.Data.Result, &sr)
	}
	return r, sr
}

func lines(sr []streamResult) []string {
	var out []string
	for _, s := range sr {
		for _, v := range s.Values {
			out = append(out, v[1].(string))
		}
	}
	return out
}

func countLines(sr []streamResult) int { return len(lines(sr)) }

func TestPushJSONAndProtobufThenQuery(t *testing.T) {
	e := newEnv(t, nil)
	code, body := e.post("/loki/api/v1/push", "application/json", jsonPush(
		fmt.Sprintf(`{"stream":{"job":"api","env":"prod"},"values":[["%d","level=info msg=hello"],["%d","level=error msg=boom",{"trace_id":"abc","span_id":"def"}]]}`, ts(1), ts(2)),
	))
	if code != 204 {
		t.Fatalf("JSON push: %d %s", code, body)
	}
	// gzip JSON
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(jsonPush(fmt.Sprintf(`{"stream":{"job":"api","env":"prod"},"values":[["%d","level=warn msg=gzipped"]]}`, ts(3))))
	_ = zw.Close()
	if code, body := e.post("/loki/api/v1/push", "application/json", gz.Bytes(), "Content-Encoding", "gzip"); code != 204 {
		t.Fatalf("gzip push: %d %s", code, body)
	}
	pb := EncodePushProto([]PushStream{{Labels: labels.FromStrings("job", "worker"), Entries: []logql.Entry{
		{Timestamp: ts(4), Line: "proto line error", Metadata: labels.FromStrings("trace_id", "abc")},
		{Timestamp: ts(5), Line: "proto line ok", Metadata: labels.EmptyLabels()},
	}}})
	if code, body := e.post("/loki/api/v1/push", "application/x-protobuf", pb); code != 204 {
		t.Fatalf("protobuf push: %d %s", code, body)
	}
	for q, want := range map[string]int{
		`{job="api"}`:                              3,
		`{job=~".+"} |= "error"`:                   2,
		`{job=~".+"} |~ "error|boom"`:              2,
		`{job="api"} | logfmt | level="error"`:     1,
		`{job=~".+"} | trace_id="abc"`:             2,
		`{job="worker"} != "error"`:                1,
		`{env="prod", job!="worker"} |= "gzipped"`: 1,
	} {
		if _, sr := e.queryRange(q); countLines(sr) != want {
			t.Errorf("%s: got %d lines (%v), want %d", q, countLines(sr), lines(sr), want)
		}
	}
	// Metric query over the same data.
	code, b := e.get("/loki/api/v1/query", url.Values{"query": {`sum by (job) (count_over_time({job=~".+"}[10m]))`}, "time": {fmt.Sprint(ts(10))}})
	if code != 200 || !strings.Contains(string(b), `"metric":{"job":"api"},"value":[`) || !strings.Contains(string(b), `"3"`) {
		t.Fatalf("metric query: %d %s", code, b)
	}
}

func otlpLogs(traceIDs ...[16]byte) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	rl.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	rl.Resource().Attributes().PutStr("host.name", "ip-10-0-0-1")
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("checkout/logger")
	for i, id := range traceIDs {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(testNow.Add(time.Duration(i) * time.Millisecond)))
		lr.Body().SetStr(fmt.Sprintf("order %d placed", i))
		lr.SetTraceID(id)
		lr.SetSpanID([8]byte{1, 2, 3, 4, 5, 6, 7, byte(i)})
		lr.SetSeverityText("INFO")
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.Attributes().PutStr("order.id", fmt.Sprint(1000+i))
	}
	// A resource without service.name.
	rl2 := ld.ResourceLogs().AppendEmpty()
	lr := rl2.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	lr.Body().SetStr("anonymous")
	return ld
}

func TestOTLPLogsTraceLookup(t *testing.T) {
	e := newEnv(t, nil)
	want := [16]byte{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c}
	other := [16]byte{1}
	body, _ := plogotlp.NewExportRequestFromLogs(otlpLogs(want, other, want)).MarshalProto()
	if code, b := e.post("/otlp/v1/logs", "application/x-protobuf", body); code != 200 {
		t.Fatalf("OTLP push: %d %s", code, b)
	}
	check := func(stage string) {
		q := `{service_name=~".+"} | trace_id="0af7651916cd43dd8448eb211c80319c"`
		r, sr := e.queryRange(q, "X-Loki-Response-Encoding-Flags", "categorize-labels")
		if countLines(sr) != 2 {
			t.Fatalf("%s: trace lookup returned %v", stage, lines(sr))
		}
		if len(sr) != 1 || sr[0].Stream["service_name"] != "checkout" || sr[0].Stream["k8s_namespace_name"] != "shop" || sr[0].Stream["host_name"] != "" {
			t.Fatalf("%s: stream labels %v", stage, sr[0].Stream)
		}
		md := sr[0].Values[0][2].(map[string]any)["structuredMetadata"].(map[string]any)
		if md["trace_id"] != "0af7651916cd43dd8448eb211c80319c" || md["span_id"] == "" || md["severity_text"] != "INFO" || md["host_name"] != "ip-10-0-0-1" || md["order_id"] == nil || md["scope_name"] != "checkout/logger" {
			t.Fatalf("%s: structured metadata %v", stage, md)
		}
		if len(r.Data.Flags) != 1 {
			t.Fatalf("%s: encodingFlags missing", stage)
		}
		// The index answered: only the trace's lines were read.
		if n := r.Data.Stats["summary"].(map[string]any)["totalLinesProcessed"].(float64); n != 2 {
			t.Fatalf("%s: processed %v lines, want 2 (trace-id index not used)", stage, n)
		}
		// Without the flag, trace_id is a label of the returned stream.
		_, sr = e.queryRange(q)
		if sr[0].Stream["trace_id"] != "0af7651916cd43dd8448eb211c80319c" {
			t.Fatalf("%s: plain response lacks trace_id: %v", stage, sr[0].Stream)
		}
	}
	check("head")
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	check("chunks")
	if _, sr := e.queryRange(`{service_name="unknown_service"}`); countLines(sr) != 1 {
		t.Fatalf("unknown_service: %v", lines(sr))
	}
}

func TestWALReplayAfterUncleanStop(t *testing.T) {
	e := newEnv(t, nil)
	const n = 200
	for i := 0; i < n; i++ {
		if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: labels.FromStrings("job", fmt.Sprint("j", i%7)), Entries: []logql.Entry{{Timestamp: ts(i), Line: fmt.Sprint("line ", i)}}}}); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			// A forced flush half way: part of the data goes to chunks and a checkpoint, part stays in the WAL.
			if err := e.store.Flush(context.Background(), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Reopen without closing, as after kill -9.
	e.bkt = nil
	e.open()
	var st logql.Stats
	sel, _ := logql.ParseLogSelector(`{job=~"j.*"}`)
	res, err := e.store.Engine().SelectLogs(context.Background(), e.store.Querier("t1"), logql.LogQuery{Expr: sel, Start: 0, End: ts(10000), Limit: 1000}, &st)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, s := range res {
		got += len(s.Entries)
	}
	if got != n {
		t.Fatalf("after replay found %d lines, want %d", got, n)
	}
}

func TestChunksAndRestartFilesystem(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChunkTargetSize = 4096 })
	testChunksAndRestart(t, e)
	var chunks int
	_ = filepath.Walk(filepath.Join(e.dir, "bucket", "single-tenant", "chunks"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			chunks++
		}
		return nil
	})
	if chunks < 2 {
		t.Fatalf("want several chunk files on disk, got %d", chunks)
	}
}

func TestChunksAndRestartS3(t *testing.T) {
	srv := testutil.StartS3(t)
	srv.MakeBucket("logs")
	dir := t.TempDir()
	e := &env{t: t, dir: dir, clk: &clock{t: testNow}, bcfg: bucket.Config{Backend: bucket.BackendS3, Prefix: "logs", S3: bucket.S3Config{
		Bucket: "logs", Endpoint: srv.Endpoint, Region: "us-east-1", Insecure: true, ForcePathStyle: true, AccessKey: srv.AccessKey, SecretKey: "sprout-test-secret",
	}}}
	e.cfg = DefaultConfig()
	e.cfg.DataDir = filepath.Join(dir, "data")
	e.cfg.ChunkTargetSize = 4096
	e.open()
	testChunksAndRestart(t, e)
	if _, err := os.Stat(filepath.Join(srv.Dir, "logs", "logs", "single-tenant", "index")); err != nil {
		t.Fatalf("index not on the S3 server: %v", err)
	}
}

func testChunksAndRestart(t *testing.T, e *env) {
	ctx := context.Background()
	var streams []PushStream
	for s := 0; s < 3; s++ {
		ps := PushStream{Labels: labels.FromStrings("app", fmt.Sprint("a", s))}
		for i := 0; i < 300; i++ {
			md := labels.FromStrings("trace_id", fmt.Sprintf("%032x", i%50))
			ps.Entries = append(ps.Entries, logql.Entry{Timestamp: ts(i), Line: fmt.Sprintf("request %d from stream %d status=%d", i, s, 200+i%3), Metadata: md})
		}
		streams = append(streams, ps)
	}
	if err := e.store.Push(ctx, tenant.Default, streams); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	// Heads are empty now: everything comes from chunks.
	if _, sr := e.queryRange(`{app=~"a.+"} |= "status=201"`); countLines(sr) != 300 {
		t.Fatalf("from chunks: %d lines", countLines(sr))
	}
	e.close()
	e.open()
	if _, sr := e.queryRange(`{app=~"a.+"} |= "status=201"`); countLines(sr) != 300 {
		t.Fatalf("after restart: %d lines", countLines(sr))
	}
	r, sr := e.queryRange(fmt.Sprintf(`{app="a1"} | trace_id="%032x"`, 7))
	if countLines(sr) != 6 {
		t.Fatalf("trace lookup from chunks: %d lines", countLines(sr))
	}
	if n := r.Data.Stats["summary"].(map[string]any)["totalLinesProcessed"].(float64); n != 6 {
		t.Fatalf("trace lookup processed %v lines", n)
	}
	// Compaction merges the small chunks of each stream and keeps every line.
	if err := e.store.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if _, sr := e.queryRange(`{app=~"a.+"}`); countLines(sr) != 900 {
		t.Fatalf("after compaction: %d lines", countLines(sr))
	}
	e.close()
	e.open()
	if _, sr := e.queryRange(`{app=~"a.+"}`); countLines(sr) != 900 {
		t.Fatalf("after compaction and restart: %d lines", countLines(sr))
	}
}

func TestRetention(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Retention = 24 * time.Hour })
	ctx := context.Background()
	push := func(sec int, line string) {
		if err := e.store.Push(ctx, tenant.Default, []PushStream{{Labels: labels.FromStrings("app", "x"), Entries: []logql.Entry{{Timestamp: e.clk.Now().Add(time.Duration(sec) * time.Second).UnixNano(), Line: line}}}}); err != nil {
			t.Fatal(err)
		}
	}
	push(0, "old")
	if err := e.store.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(48 * time.Hour)
	push(0, "new")
	if err := e.store.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	sel, _ := logql.ParseLogSelector(`{app="x"}`)
	var st logql.Stats
	res, err := e.store.Engine().SelectLogs(ctx, e.store.Querier(tenant.Default), logql.LogQuery{Expr: sel, Start: 0, End: e.clk.Now().Add(time.Hour).UnixNano(), Limit: 10}, &st)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Entries) != 1 || res[0].Entries[0].Line != "new" {
		t.Fatalf("after retention: %+v", res)
	}
}

func TestLimitsAndBadInput(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.MaxLineSize = 20
		c.Limits.MaxGlobalStreamsPerUser = 2
	})
	push := func(body string) (int, string) { return e.post("/loki/api/v1/push", "application/json", []byte(body)) }
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"line too long, rest accepted", string(jsonPush(fmt.Sprintf(`{"stream":{"a":"1"},"values":[["%d","short"],["%d","this line is far too long for the limit"]]}`, ts(1), ts(2)))), 400, "max_line_size"},
		{"too old", string(jsonPush(fmt.Sprintf(`{"stream":{"a":"1"},"values":[["%d","ancient"]]}`, testNow.Add(-30*24*time.Hour).UnixNano()))), 400, "reject_old_samples_max_age"},
		{"too new", string(jsonPush(fmt.Sprintf(`{"stream":{"a":"1"},"values":[["%d","future"]]}`, testNow.Add(time.Hour).UnixNano()))), 400, "timestamp too new"},
		{"stream limit", string(jsonPush(`{"stream":{"a":"2"},"values":[["`+fmt.Sprint(ts(1))+`","x"]]}`, `{"stream":{"a":"3"},"values":[["`+fmt.Sprint(ts(1))+`","y"]]}`)), 429, "max_global_streams_per_user"},
		{"malformed JSON", `{"streams":[{"stream":`, 400, "decode JSON push"},
		{"bad timestamp", string(jsonPush(`{"stream":{"a":"1"},"values":[["yesterday","x"]]}`)), 400, "timestamp"},
		{"no labels", string(jsonPush(`{"stream":{},"values":[["` + fmt.Sprint(ts(1)) + `","x"]]}`)), 400, "at least one label"},
		{"bad label name", string(jsonPush(`{"stream":{"1x":"y"},"values":[["` + fmt.Sprint(ts(1)) + `","x"]]}`)), 400, "invalid label name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := push(tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
	if _, sr := e.queryRange(`{a="1"}`); countLines(sr) != 1 || lines(sr)[0] != "short" {
		t.Fatalf("the valid part of the batch: %v", lines(sr))
	}
	if code, body := e.post("/loki/api/v1/push", "application/x-protobuf", []byte("not snappy")); code != 400 || !strings.Contains(body, "snappy") {
		t.Fatalf("bad protobuf: %d %s", code, body)
	}
	if code, body := e.post("/loki/api/v1/push", "text/plain", []byte("x")); code != 400 || !strings.Contains(body, "Content-Type") {
		t.Fatalf("bad content type: %d %s", code, body)
	}
	code, body := e.get("/loki/api/v1/query_range", url.Values{"query": {`{a="1"} |= `}})
	if code != 400 || !strings.HasPrefix(string(body), "parse error at line 1, col 12: syntax error: unexpected $end, expecting STRING") {
		t.Fatalf("bad LogQL: %d %s", code, body)
	}
	code, body = e.get("/loki/api/v1/query_range", url.Values{"query": {`{a="1"}`}, "limit": {"100000"}})
	if code != 400 || !strings.Contains(string(body), "max_entries_limit_per_query") {
		t.Fatalf("limit: %d %s", code, body)
	}
	// Loki 3 answers a log query asked as an instant query with 400 and this plain text; a metric query is
	// answered.
	for _, q := range []string{`{a="1"}`, `{a="1"} |= "short" | logfmt`} {
		code, body = e.get("/loki/api/v1/query", url.Values{"query": {q}, "time": {fmt.Sprint(ts(3))}})
		if code != 400 || string(body) != errInstantLogQuery+"\n" {
			t.Fatalf("instant log query %s: %d %q", q, code, body)
		}
	}
	code, body = e.get("/loki/api/v1/query", url.Values{"query": {`count_over_time({a="1"}[5m])`}, "time": {fmt.Sprint(ts(3))}})
	if code != 200 || !strings.Contains(string(body), `"resultType":"vector"`) {
		t.Fatalf("instant metric query: %d %s", code, body)
	}
}

func TestIngestionRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.IngestionRateMB = 0.001; c.Limits.IngestionBurstSizeMB = 0.001 })
	big := strings.Repeat("x", 2000)
	code, body := e.post("/loki/api/v1/push", "application/json", jsonPush(fmt.Sprintf(`{"stream":{"a":"1"},"values":[["%d","%s"]]}`, ts(1), big)))
	if code != 429 || !strings.Contains(body, "ingestion_rate_mb") {
		t.Fatalf("got %d %s", code, body)
	}
}

func TestTenantsAreSeparate(t *testing.T) {
	e := newEnv(t, nil)
	if code, b := e.post("/loki/api/v1/push", "application/json", jsonPush(fmt.Sprintf(`{"stream":{"a":"1"},"values":[["%d","for team a"]]}`, ts(1))), "X-Scope-OrgID", "team-a"); code != 204 {
		t.Fatal(code, b)
	}
	if _, sr := e.queryRange(`{a="1"}`, "X-Scope-OrgID", "team-b"); countLines(sr) != 0 {
		t.Fatal("team-b sees team-a's logs")
	}
	if _, sr := e.queryRange(`{a="1"}`, "X-Scope-OrgID", "team-a"); countLines(sr) != 1 {
		t.Fatal("team-a does not see its logs")
	}
}

// normalize replaces timing-dependent stats so golden files are stable.
func normalize(t *testing.T, b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	if m, ok := v.(map[string]any); ok {
		if d, ok := m["data"].(map[string]any); ok {
			if st, ok := d["stats"].(map[string]any); ok {
				if s, ok := st["summary"].(map[string]any); ok {
					for _, k := range []string{"execTime", "bytesProcessedPerSecond", "linesProcessedPerSecond"} {
						s[k] = 0
					}
				}
			}
		}
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return append(out, '\n')
}

func TestGoldenResponses(t *testing.T) {
	e := newEnv(t, nil)
	if code, b := e.post("/loki/api/v1/push", "application/json", jsonPush(
		fmt.Sprintf(`{"stream":{"service_name":"api","env":"prod"},"values":[["%d","level=info msg=ok"],["%d","level=error msg=boom",{"trace_id":"0af7651916cd43dd8448eb211c80319c"}]]}`, ts(-30), ts(-20)),
		fmt.Sprintf(`{"stream":{"service_name":"web","env":"prod"},"values":[["%d","{\"level\":\"warn\",\"took\":\"15ms\"}"]]}`, ts(-10)),
	)); code != 204 {
		t.Fatal(code, b)
	}
	rng := url.Values{"start": {fmt.Sprint(ts(-120))}, "end": {fmt.Sprint(ts(0))}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range rng {
			v[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name, path string
		params     url.Values
		hdr        []string
	}{
		{"query_range_streams", "/loki/api/v1/query_range", with("query", `{env="prod"}`), nil},
		{"query_range_categorized", "/loki/api/v1/query_range", with("query", `{env="prod"} | logfmt | level="error"`), []string{"X-Loki-Response-Encoding-Flags", "categorize-labels"}},
		{"query_range_matrix", "/loki/api/v1/query_range", with("query", `sum by (service_name) (count_over_time({env="prod"}[1m]))`, "step", "60"), nil},
		{"query_vector", "/loki/api/v1/query", url.Values{"query": {`sum by (service_name) (count_over_time({env="prod"}[1m]))`}, "time": {fmt.Sprint(ts(0))}}, nil},
		{"query_datasource_test", "/loki/api/v1/query", url.Values{"query": {`vector(1)+vector(1)`}, "time": {fmt.Sprint(ts(0))}}, nil},
		{"query_scalar", "/loki/api/v1/query", url.Values{"query": {`1+1`}, "time": {fmt.Sprint(ts(0))}}, nil},
		{"labels", "/loki/api/v1/labels", rng, nil},
		{"label_values", "/loki/api/v1/label/service_name/values", rng, nil},
		{"series", "/loki/api/v1/series", with("match[]", `{service_name="api"}`), nil},
		{"index_stats", "/loki/api/v1/index/stats", with("query", `{env="prod"}`), nil},
		{"index_volume", "/loki/api/v1/index/volume", with("query", `{service_name=~".+"}`), nil},
		{"index_volume_range", "/loki/api/v1/index/volume_range", with("query", `{service_name=~".+"}`, "step", "60"), nil},
		{"detected_fields", "/loki/api/v1/detected_fields", with("query", `{env="prod"}`), nil},
		{"buildinfo", "/loki/api/v1/status/buildinfo", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.get(tc.path, tc.params, tc.hdr...)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			got := normalize(t, body)
			if tc.name == "buildinfo" {
				got = []byte(strings.Replace(string(got), `"goVersion": "`+goVersion()+`"`, `"goVersion": "GO"`, 1))
			}
			path := filepath.Join("testdata", "golden", tc.name+".json")
			if *update {
				_ = os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if string(want) != string(got) {
				t.Fatalf("response differs from %s:\n%s", path, got)
			}
		})
	}
}

func TestTail(t *testing.T) {
	e := newEnv(t, nil)
	e.clk = &clock{t: time.Now()}
	e.open()
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/loki/api/v1/tail?" + url.Values{"query": {`{app="tail"} |= "keep"`}}.Encode()
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var first map[string]any
	if err := conn.ReadJSON(&first); err != nil { // the (empty) history
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	if err := e.store.Push(context.Background(), tenant.Default, []PushStream{{Labels: labels.FromStrings("app", "tail"), Entries: []logql.Entry{{Timestamp: now, Line: "drop me"}, {Timestamp: now + 1, Line: "keep me"}}}}); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Streams []streamResult `json:"streams"`
	}
	if err := conn.ReadJSON(&msg); err != nil {
		t.Fatal(err)
	}
	if got := lines(msg.Streams); len(got) != 1 || got[0] != "keep me" {
		t.Fatalf("tail got %v", got)
	}
}

func FuzzDecodePushJSON(f *testing.F) {
	f.Add([]byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"trace_id":"t"}]]}]}`))
	f.Add([]byte(`{"streams":[{"labels":"{a=\"b\"}","values":[]}]}`))
	f.Add([]byte(`{"streams":[{"stream":{"a":"b"},"values":[[1,"x"],["2"]]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodePushJSON(b)
	})
}

func FuzzDecodePushProto(f *testing.F) {
	f.Add(EncodePushProto([]PushStream{{Labels: labels.FromStrings("a", "b"), Entries: []logql.Entry{{Timestamp: 12345, Line: "x", Metadata: labels.FromStrings("trace_id", "t")}}}}))
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodePushProto(b); err == nil {
			_ = EncodePushProto(s)
		}
		_, _ = decodePushRequest(b)
	})
}

func TestHeadMemoryPressureFlush(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxHeadBytes = 10 << 10; c.ChunkTargetSize = 4096 })
	e.store.Start()
	defer e.close()
	for i := 0; i < 50; i++ {
		if err := e.store.Push(context.Background(), tenant.Default, []PushStream{{Labels: labels.FromStrings("app", "p"), Entries: []logql.Entry{{Timestamp: ts(i), Line: strings.Repeat("x", 500) + fmt.Sprint(i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := e.store.headBytes.Load(); n > 10<<10 {
			return fmt.Errorf("heads still hold %d bytes", n)
		}
		return nil
	})
	if _, sr := e.queryRange(`{app="p"}`); countLines(sr) != 50 {
		t.Fatalf("%d lines", countLines(sr))
	}
}

// TestHeadCutAtChunkSize checks that a head reaching chunk_target_size is cut into a chunk without waiting for
// the flush tick (an hour here) or for max_head_bytes.
func TestHeadCutAtChunkSize(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChunkTargetSize = 4096 })
	e.store.Start()
	defer e.close()
	for i := 0; i < 20; i++ {
		if err := e.store.Push(context.Background(), tenant.Default, []PushStream{{Labels: labels.FromStrings("app", "p"), Entries: []logql.Entry{{Timestamp: ts(i), Line: strings.Repeat("x", 500) + fmt.Sprint(i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	st := e.store.tenant(tenant.Default).getOrCreate(labels.FromStrings("app", "p"))
	testutil.Eventually(t, 10*time.Second, func() error {
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.chunks) == 0 || st.headBytes >= 4096 {
			return fmt.Errorf("%d chunks, %d bytes in the head", len(st.chunks), st.headBytes)
		}
		return nil
	})
	if _, sr := e.queryRange(`{app="p"}`); countLines(sr) != 20 {
		t.Fatalf("%d lines", countLines(sr))
	}
}

// TestEarlyCutWithoutCheckpointReplays cuts a full head early (which skips the WAL checkpoint), stops uncleanly,
// and checks that every acknowledged line is there exactly once: the cut stream's records still in the WAL are
// skipped by its chunk's WALSeg, the other stream's are replayed. Then the same across a regular flush.
func TestEarlyCutWithoutCheckpointReplays(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChunkTargetSize = 4096 })
	want := map[string]int{}
	push := func(job string, from, to, size int) {
		t.Helper()
		for i := from; i < to; i++ {
			line := fmt.Sprintf("%s line %d %s", job, i, strings.Repeat("x", size))
			if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: labels.FromStrings("job", job), Entries: []logql.Entry{{Timestamp: ts(i), Line: line}}}}); err != nil {
				t.Fatal(err)
			}
			want[line]++
		}
	}
	check := func(stage string) { t.Helper(); checkLines(t, e, `{job=~".+"}`, want, stage) }
	chunks := func(job string) int {
		st := e.store.tenant("t1").getOrCreate(labels.FromStrings("job", job))
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.chunks)
	}
	push("hot", 0, 3, 100)
	push("cold", 0, 3, 10)
	if err := e.store.Flush(context.Background(), false); err != nil { // nothing due: the WAL is left as it is
		t.Fatal(err)
	}
	push("hot", 3, 12, 500) // over the target
	push("cold", 3, 6, 10)
	if err := e.store.flush(context.Background(), false, true); err != nil {
		t.Fatal(err)
	}
	if chunks("hot") == 0 || chunks("cold") != 0 {
		t.Fatalf("early cut: hot has %d chunks, cold %d; want hot cut, cold kept", chunks("hot"), chunks("cold"))
	}
	push("hot", 12, 14, 10)
	push("cold", 6, 8, 10)
	e.bkt = nil
	e.open() // unclean: no Close
	check("after an early cut")

	push("hot", 14, 30, 500)
	if err := e.store.flush(context.Background(), false, true); err != nil {
		t.Fatal(err)
	}
	push("cold", 8, 10, 10)
	if err := e.store.Flush(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	push("hot", 30, 32, 10)
	e.bkt = nil
	e.open()
	check("after an early cut and a regular flush")
	e.close()
}

// TestEarlyCutCheckpointBound: an early cut skips the WAL checkpoint until the WAL holds max_head_bytes since
// the last one, so the WAL on disk stays bounded.
func TestEarlyCutCheckpointBound(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChunkTargetSize = 4096; c.MaxHeadBytes = 64 << 10 })
	defer e.close()
	checkpoint := func() int {
		cps, err := filepath.Glob(filepath.Join(e.cfg.DataDir, "wal", "checkpoint.*"))
		if err != nil || len(cps) == 0 {
			return 0
		}
		cp, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(cps[len(cps)-1]), "checkpoint."))
		return cp
	}
	push := func(from, to int) {
		for i := from; i < to; i++ {
			if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: labels.FromStrings("job", "hot"), Entries: []logql.Entry{{Timestamp: ts(i), Line: strings.Repeat("x", 1000) + fmt.Sprint(i)}}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Rounds of 10 KB, each cut early: the heads stay far below max_head_bytes (no pressure), the WAL grows.
	for round := 0; round < 7; round++ {
		push(round*10, round*10+10)
		if err := e.store.flush(context.Background(), false, true); err != nil {
			t.Fatal(err)
		}
		cp := checkpoint()
		if round < 6 && cp != 0 {
			t.Fatalf("round %d: early cut with %d KB of WAL wrote checkpoint %d", round, (round+1)*10, cp)
		}
		if round == 6 && cp == 0 {
			t.Fatal("early cut with the WAL over max_head_bytes wrote no checkpoint")
		}
	}
	if n := e.store.walBytes.Load(); n != 0 {
		t.Fatalf("WAL bytes since the checkpoint: %d, want 0", n)
	}
}

// TestRegularFlushCheckpointsWhenWorthIt: a regular flush with nothing due and little WAL leaves the WAL alone
// (no rotation, no checkpoint: pushes are not held off); one that cuts a head checkpoints only once the WAL since
// the last checkpoint holds max_head_bytes; every acknowledged line survives an unclean stop at each stage.
func TestRegularFlushCheckpointsWhenWorthIt(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxHeadBytes = 64 << 10 })
	want := map[string]int{}
	n := 0
	push := func(job string, kb int) {
		t.Helper()
		for range kb {
			line := fmt.Sprintf("%s %d %s", job, n, strings.Repeat("y", 1000))
			if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: labels.FromStrings("job", job), Entries: []logql.Entry{{Timestamp: ts(n), Line: line}}}}); err != nil {
				t.Fatal(err)
			}
			want[line]++
			n++
		}
	}
	checkpoints := func() []string {
		cps, err := filepath.Glob(filepath.Join(e.cfg.DataDir, "wal", "checkpoint.*"))
		if err != nil {
			t.Fatal(err)
		}
		return cps
	}
	flush := func() {
		t.Helper()
		if err := e.store.Flush(context.Background(), false); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string) {
		t.Helper()
		e.bkt = nil
		e.open() // unclean: no Close
		checkLines(t, e, `{job=~".+"}`, want, stage)
	}

	push("a", 2)
	seg := e.store.wal.Current()
	flush()
	if got := e.store.wal.Current(); got != seg || len(checkpoints()) != 0 {
		t.Fatalf("a flush with nothing due rotated the WAL (%d → %d) or checkpointed (%v)", seg, got, checkpoints())
	}
	check("after a flush with nothing due")

	push("a", 40)
	e.clk.Add(3 * time.Hour) // over max_chunk_age: the head is due
	seg = e.store.wal.Current()
	flush()
	if e.store.wal.Current() == seg {
		t.Fatal("a flush that cut a head did not rotate the WAL")
	}
	if cps := checkpoints(); len(cps) != 0 {
		t.Fatalf("a cut with %d KB of WAL (max_head_bytes 64 KiB) checkpointed: %v", 42, cps)
	}
	check("after a cut without a checkpoint")

	push("b", 30) // 72 KB of WAL since the last checkpoint, 30 KB in the heads
	flush()
	if len(checkpoints()) != 1 {
		t.Fatalf("a flush with the WAL over max_head_bytes wrote checkpoints %v", checkpoints())
	}
	if w := e.store.walBytes.Load(); w != 0 {
		t.Fatalf("WAL bytes since the checkpoint: %d, want 0", w)
	}
	check("after a checkpoint")
	e.close()
}
