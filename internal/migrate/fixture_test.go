package migrate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/logstore"
	"github.com/sprout-otel/sprout/internal/tracestore"
)

const fixtureTenant = "team-a"

// fixture is what writeFixture stored in Sprout's three stores, under dir, in the layout of the all-in-one
// config (<dir>/traces/blocks, <dir>/logs/bucket, <dir>/metrics/<tenant> with its bucket <dir>/metrics/.bucket).
type fixture struct {
	dir        string
	start, end time.Time // every item is in [start, end)
	spans      int
	traces     int
	lines      int
	samples    int
}

// writeFixture stores traces (in two blocks: two flushes), log lines of three streams with structured metadata,
// and metric samples of four series every 30 s, all within the six hours from start, through the stores' own
// write paths (the metrics store's TSDB directly: it is a Prometheus TSDB per tenant).
func writeFixture(t *testing.T, start time.Time) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{dir: t.TempDir(), start: start, end: start.Add(6 * time.Hour)}

	tcfg := tracestore.DefaultConfig()
	tcfg.DataDir = filepath.Join(f.dir, "traces")
	ts, err := tracestore.Open(ctx, tcfg, tracestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for block := 0; block < 2; block++ {
		for i := 0; i < 15; i++ {
			n := block*15 + i
			td := fixtureTrace(n, start.Add(time.Duration(n)*10*time.Minute))
			f.spans += td.SpanCount()
			f.traces++
			if err := ts.Push(ctx, fixtureTenant, td); err != nil {
				t.Fatal(err)
			}
		}
		if err := ts.CutAndFlush(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Close(ctx); err != nil {
		t.Fatal(err)
	}

	lcfg := logstore.DefaultConfig()
	lcfg.DataDir = filepath.Join(f.dir, "logs")
	lcfg.Limits.RejectOldSamples = false
	lbkt, err := bucket.New(ctx, bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(lcfg.DataDir, "bucket")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := logstore.Open(ctx, lcfg, lbkt, logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 3; s++ {
		var es []logql.Entry
		for i := 0; i < 120; i++ {
			at := start.Add(time.Duration(i) * 3 * time.Minute).Add(time.Duration(s) * time.Second)
			es = append(es, logql.Entry{Timestamp: at.UnixNano(), Line: fmt.Sprintf("stream %d line %d", s, i),
				Metadata: labels.FromStrings("trace_id", traceID(i).String(), "user", "u"+strconv.Itoa(i%7))})
		}
		f.lines += len(es)
		if err := ls.Push(ctx, fixtureTenant, []logstore.PushStream{{Labels: labels.FromStrings("service_name", "svc"+strconv.Itoa(s), "env", "prod"), Entries: es}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ls.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_ = lbkt.Close()

	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = (30 * 24 * time.Hour).Milliseconds()
	db, err := tsdb.Open(filepath.Join(f.dir, "metrics", fixtureTenant), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := db.Appender(ctx)
	for s := 0; s < 4; s++ {
		lset := labels.FromStrings("__name__", "requests_total", "job", "api", "instance", "i"+strconv.Itoa(s))
		for at := start; at.Before(f.end); at = at.Add(30 * time.Second) {
			if _, err := app.Append(0, lset, at.UnixMilli(), float64(at.Unix()%1000)+float64(s)); err != nil {
				t.Fatal(err)
			}
			f.samples++
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

func traceID(n int) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[8:], uint64(n)+1)
	id[0] = 0xab
	return id
}

// fixtureTrace is a trace of three spans with what a migration must keep: resource and scope attributes, span
// attributes, an event and a link.
func fixtureTrace(n int, at time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().Attributes().PutStr("deployment.environment", "prod")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("shop")
	ss.Scope().SetVersion("1.2.3")
	for k := 0; k < 3; k++ {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(traceID(n))
		var sid pcommon.SpanID
		binary.BigEndian.PutUint32(sid[:4], uint32(n))
		sid[7] = byte(k + 1)
		sp.SetSpanID(sid)
		if k > 0 {
			parent := sid
			parent[7] = 1
			sp.SetParentSpanID(parent)
		}
		sp.SetName(fmt.Sprintf("op-%d", k))
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Duration(k) * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Duration(k)*time.Millisecond + 5*time.Millisecond)))
		sp.Attributes().PutInt("http.status_code", 200)
		ev := sp.Events().AppendEmpty()
		ev.SetName("retry")
		ev.SetTimestamp(sp.StartTimestamp())
		ev.Attributes().PutStr("attempt", "2")
		ln := sp.Links().AppendEmpty()
		ln.SetTraceID(traceID(n + 1000))
		ln.SetSpanID(sid)
	}
	return td
}

// sink is a fake of the three targets: it decodes what it is sent (OTLP/HTTP, Loki JSON push, remote write
// 1.0) and counts every item by its identity, so that a test sees both what is missing and what came twice.
type sink struct {
	mu       sync.Mutex
	spans    map[string]int // trace id/span id
	lines    map[string]int // stream|ts|line|metadata
	samples  map[string]int // series|ts
	tenants  map[string]int
	requests int
	// before runs first for every request; a non-zero status is answered instead of taking the request.
	before func(n int, r *http.Request) int
	srv    *httptest.Server
	traces []ptrace.Traces
}

func newSink(t *testing.T) *sink {
	s := &sink{spans: map[string]int{}, lines: map[string]int{}, samples: map[string]int{}, tenants: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	n := s.requests
	before := s.before
	s.mu.Unlock()
	if before != nil {
		if code := before(n, r); code != 0 {
			http.Error(w, "refused by test", code)
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[r.Header.Get("X-Scope-OrgID")]++
	switch r.URL.Path {
	case "/v1/traces":
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		td := req.Traces()
		s.traces = append(s.traces, td)
		eachSpan(td, func(sp ptrace.Span) { s.spans[sp.TraceID().String()+"/"+sp.SpanID().String()]++ })
	case "/loki/api/v1/push":
		var push struct {
			Streams []struct {
				Stream map[string]string   `json:"stream"`
				Values [][]json.RawMessage `json:"values"`
			} `json:"streams"`
		}
		if err := json.Unmarshal(body, &push); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, st := range push.Streams {
			for _, v := range st.Values {
				if len(v) < 2 {
					http.Error(w, "short value", 400)
					return
				}
				meta := ""
				if len(v) > 2 {
					meta = string(v[2])
				}
				s.lines[fmt.Sprint(labels.FromMap(st.Stream))+"|"+string(v[0])+"|"+string(v[1])+"|"+meta]++
			}
		}
	case "/api/v1/write":
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var req prompb.WriteRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, ts := range req.Timeseries {
			var b labels.ScratchBuilder
			lset := ts.ToLabels(&b, nil)
			for _, smp := range ts.Samples {
				s.samples[lset.String()+"|"+strconv.FormatInt(smp.Timestamp, 10)]++
			}
			for _, h := range ts.Histograms {
				s.samples[lset.String()+"|h"+strconv.FormatInt(h.Timestamp, 10)+"|"+strconv.FormatUint(h.GetCountInt(), 10)]++
			}
		}
	default:
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func eachSpan(td ptrace.Traces, fn func(ptrace.Span)) {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				fn(sss.At(j).Spans().At(k))
			}
		}
	}
}

// counts returns the number of distinct items of each kind and the number received more than once.
func (s *sink) counts() (spans, lines, samples, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []map[string]int{s.spans, s.lines, s.samples} {
		for _, n := range m {
			if n > 1 {
				dups++
			}
		}
	}
	return len(s.spans), len(s.lines), len(s.samples), dups
}

// options are the migration of the fixture to the sink, every signal, metrics by remote write.
func (f *fixture) options(s *sink, checkpoint string) Options {
	return Options{
		Tenant: fixtureTenant, TargetTenant: "moved", From: f.start, To: f.end,
		Signals: []string{Traces, Metrics, Logs}, BatchItems: 100, Checkpoint: checkpoint,
		Retry:   RetryPolicy{Initial: time.Millisecond, Max: 10 * time.Millisecond, MaxElapsed: time.Minute},
		Traces:  TracesOptions{Source: bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(f.dir, "traces", "blocks")}}, Endpoint: s.srv.URL},
		Logs:    LogsOptions{Source: bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(f.dir, "logs", "bucket")}}, Endpoint: s.srv.URL},
		Metrics: MetricsOptions{DataDir: filepath.Join(f.dir, "metrics"), Source: &bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(f.dir, "metrics", ".bucket")}}, RemoteWrite: s.srv.URL + "/api/v1/write"},
	}
}
