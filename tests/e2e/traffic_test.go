package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// This file holds the writers and readers the fault, tenancy and security tests share: each writer records
// an item only once the server acknowledged it (gRPC OK, HTTP 2xx), and each reader lists what the server
// answers for those items, so that a test compares "acknowledged" with "found".

// envValue returns the value of key in an environment list built by defaultEnv.
func envValue(env []string, key string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return v
		}
	}
	return ""
}

// setEnv replaces or adds key=value in env.
func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	return append(out, key+"="+value)
}

// client carries what every request of one writer or reader sends: tenant header, basic auth, TLS.
type client struct {
	tenant     string
	user, pass string
	tlsConfig  *tls.Config
	once       sync.Once
	http       *http.Client
	// pace is the pause between a writer's requests (0: as fast as the server answers).
	pace time.Duration
}

func (c *client) httpClient() *http.Client {
	c.once.Do(func() {
		tr := &http.Transport{TLSClientConfig: c.tlsConfig, MaxIdleConnsPerHost: 8}
		c.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	})
	return c.http
}

func (c *client) decorate(req *http.Request) {
	if c.tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.tenant)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
}

func (c *client) get(u string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, err.Error()
	}
	c.decorate(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *client) post(u, contentType string, body []byte, hdr map[string]string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c.decorate(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// grpcConn dials the OTLP gRPC receiver with the client's TLS settings.
func (c *client) grpcConn(addr string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if c.tlsConfig != nil {
		creds = credentials.NewTLS(c.tlsConfig)
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
}

func (c *client) grpcContext(ctx context.Context) context.Context {
	var kv []string
	if c.tenant != "" {
		kv = append(kv, "X-Scope-OrgID", c.tenant)
	}
	if c.user != "" {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(c.user, c.pass)
		kv = append(kv, "authorization", req.Header.Get("Authorization"))
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// acked records what the server acknowledged, per signal.
type acked struct {
	mu      sync.Mutex
	traces  []string
	samples []string
	lines   []string
	// refused counts answers that were not acknowledgements (errors, non-2xx), by signal and reason.
	refused map[string]int
}

func (a *acked) add(dst *[]string, v string) { a.mu.Lock(); *dst = append(*dst, v); a.mu.Unlock() }

func (a *acked) refuse(what string) {
	a.mu.Lock()
	if a.refused == nil {
		a.refused = map[string]int{}
	}
	a.refused[what]++
	a.mu.Unlock()
}

func (a *acked) counts() (int, int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.traces), len(a.samples), len(a.lines)
}

// traceID is a readable, unique trace id for (prefix, cycle, i).
func traceID(prefix string, cycle, i int) pcommon.TraceID {
	var tid pcommon.TraceID
	copy(tid[:], fmt.Sprintf("%s%02dt%011d", prefix, cycle%100, i))
	return tid
}

// makeTrace builds one 3-span trace of service svc.
func makeTrace(tid pcommon.TraceID, svc string, attrs map[string]string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	ss := rs.ScopeSpans().AppendEmpty()
	now := time.Now()
	for s := 0; s < 3; s++ {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{byte(s + 1), 1, 2, 3, 4, 5, 6, 7})
		if s > 0 {
			sp.SetParentSpanID(pcommon.SpanID{1, 1, 2, 3, 4, 5, 6, 7})
		}
		sp.SetName(fmt.Sprintf("op-%d", s))
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		for k, v := range attrs {
			sp.Attributes().PutStr(k, v)
		}
	}
	return td
}

// sendTraces exports 3-span traces over OTLP gRPC until ctx ends, one per request.
func (c *client) sendTraces(ctx context.Context, addr, prefix string, cycle int, a *acked) {
	conn, err := c.grpcConn(addr)
	if err != nil {
		return
	}
	defer conn.Close()
	cl := ptraceotlp.NewGRPCClient(conn)
	for i := 0; ctx.Err() == nil; i++ {
		tid := traceID(prefix, cycle, i)
		td := makeTrace(tid, "fault-test", nil)
		rctx, cancel := context.WithTimeout(c.grpcContext(context.Background()), 5*time.Second)
		_, err := cl.Export(rctx, ptraceotlp.NewExportRequestFromTraces(td))
		cancel()
		pause(ctx, c.pace)
		if err == nil {
			a.add(&a.traces, hex.EncodeToString(tid[:]))
		} else {
			a.refuse("traces: " + grpcCode(err) + grpcMessage(err))
			pause(ctx, 20*time.Millisecond)
		}
	}
}

// pause waits d or until ctx ends: back-off after a refusal, so a dead server is not hammered.
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// grpcMessage is the start of the status message of a refusal the server answered (not of a dead connection).
func grpcMessage(err error) string {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.Unavailable && strings.Contains(st.Message(), "connection") {
		return ""
	}
	return " " + firstLine(st.Message())
}

func grpcCode(err error) string {
	s := err.Error()
	if i := strings.Index(s, "code = "); i >= 0 {
		s = s[i+len("code = "):]
		if j := strings.IndexByte(s, ' '); j >= 0 {
			s = s[:j]
		}
		return s
	}
	return "transport"
}

// remoteWrite sends one remote write 1.0 request.
func (c *client) remoteWrite(api string, series ...prompb.TimeSeries) (int, string) {
	raw, _ := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	return c.post(api+"/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw), map[string]string{
		"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0",
	})
}

// sendSamples remote-writes one new series (metric name, label i=<id>) per request until ctx ends.
func (c *client) sendSamples(ctx context.Context, api, metric string, cycle int, a *acked) {
	for i := 0; ctx.Err() == nil; i++ {
		id := fmt.Sprintf("%d-%d", cycle, i)
		code, body := c.remoteWrite(api, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: metric}, {Name: "i", Value: id}},
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: time.Now().UnixMilli()}},
		})
		pause(ctx, c.pace)
		if code/100 == 2 {
			a.add(&a.samples, id)
		} else {
			a.refuse(refusal("samples", code, body))
			pause(ctx, 20*time.Millisecond)
		}
	}
}

// pushLine sends one Loki JSON push of line under labels {job=<job>}.
func (c *client) pushLine(api, job, line string) (int, string) {
	body := fmt.Sprintf(`{"streams":[{"stream":{"job":%q},"values":[["%d",%q]]}]}`, job, time.Now().UnixNano(), line)
	return c.post(api+"/loki/api/v1/push", "application/json", []byte(body), nil)
}

// sendLines pushes one log line per request until ctx ends.
func (c *client) sendLines(ctx context.Context, api, job string, cycle int, a *acked) {
	for i := 0; ctx.Err() == nil; i++ {
		line := fmt.Sprintf("%s cycle %d line %d", job, cycle, i)
		code, body := c.pushLine(api, job, line)
		pause(ctx, c.pace)
		if code/100 == 2 {
			a.add(&a.lines, line)
		} else {
			a.refuse(refusal("lines", code, body))
			pause(ctx, 20*time.Millisecond)
		}
	}
}

// refusal names why a write was not acknowledged: the status and message, or "connection" when the server
// did not answer (killed, not yet listening).
func refusal(signal string, code int, body string) string {
	if code == 0 {
		return signal + ": connection"
	}
	return fmt.Sprintf("%s: %d %s", signal, code, firstLine(body))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// countTraces returns how many of ids the trace-by-id API answers with all 3 spans, and up to 3 examples of
// the missing ones.
func (c *client) countTraces(t *testing.T, api string, ids []string) (found int, missing []string) {
	t.Helper()
	for _, id := range ids {
		code, body := c.get(api + "/api/traces/" + id)
		if code == 200 && strings.Count(body, `"spanId"`) == 3 {
			found++
		} else if len(missing) < 3 {
			missing = append(missing, fmt.Sprintf("%s: %d %s", id, code, firstLine(body)))
		}
	}
	return found, missing
}

// seriesIDs returns the values of label i of every series of metric.
func (c *client) seriesIDs(api, metric string) (map[string]bool, error) {
	code, body := c.get(api + "/api/v1/series?match[]=" + url.QueryEscape(metric) + "&start=0")
	if code != 200 {
		return nil, fmt.Errorf("series: %d %s", code, firstLine(body))
	}
	var out struct{ Data []map[string]string }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		return nil, err
	}
	got := map[string]bool{}
	for _, s := range out.Data {
		got[s["i"]] = true
	}
	return got, nil
}

// logLines returns every line of {job=<job>} in the last hour, paging forward under the server's
// max_entries_limit_per_query.
func (c *client) logLines(api, job string) (map[string]bool, error) {
	lines := map[string]bool{}
	start := time.Now().Add(-time.Hour).UnixNano()
	end := time.Now().Add(time.Minute).UnixNano()
	for page := 0; page < 10000; page++ {
		q := url.Values{
			"query": {fmt.Sprintf(`{job=%q}`, job)}, "limit": {"5000"}, "direction": {"forward"},
			"start": {strconv.FormatInt(start, 10)}, "end": {strconv.FormatInt(end, 10)},
		}
		code, body := c.get(api + "/loki/api/v1/query_range?" + q.Encode())
		if code != 200 {
			return nil, fmt.Errorf("loki query: %d %s", code, firstLine(body))
		}
		var lr struct {
			Data struct {
				Result []struct {
					Values [][2]string `json:"values"`
				}
			}
		}
		if err := json.Unmarshal([]byte(body), &lr); err != nil {
			return nil, err
		}
		n, last := 0, start
		for _, r := range lr.Data.Result {
			for _, v := range r.Values {
				n++
				lines[v[1]] = true
				if ts, _ := strconv.ParseInt(v[0], 10, 64); ts > last {
					last = ts
				}
			}
		}
		if n < 5000 {
			return lines, nil
		}
		if last == start {
			return nil, fmt.Errorf("more than 5000 lines share timestamp %d", start)
		}
		start = last // inclusive: lines at the boundary come again and are de-duplicated
	}
	return lines, nil
}

func countIn(items []string, got map[string]bool) (found int, missing []string) {
	for _, s := range items {
		if got[s] {
			found++
		} else if len(missing) < 3 {
			missing = append(missing, s)
		}
	}
	return found, missing
}

// verifyAll checks that every acknowledged trace, sample and line is found, and logs the figures as
// "FIGURE <name>: ..." lines for docs/reliability.md.
func verifyAll(t *testing.T, c *client, name, api, metric, job string, a *acked) {
	t.Helper()
	nt, ns, nl := a.counts()
	ft, mt := c.countTraces(t, api, a.traces)
	var fs, fl int
	var ms, ml []string
	var got, lines map[string]bool
	var err error
	// The metrics and logs stores answer from their replayed WAL as soon as /ready says so; poll briefly in case
	// a store finishes replay just after.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, err = c.seriesIDs(api, metric); err == nil {
			fs, ms = countIn(a.samples, got)
		}
		if lines, err = c.logLines(api, job); err == nil {
			fl, ml = countIn(a.lines, lines)
		}
		if (fs == ns && fl == nl) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("read back: %v", err)
	}
	t.Logf("FIGURE %s: traces acknowledged %d found %d; samples acknowledged %d found %d; log lines acknowledged %d found %d; refusals %v",
		name, nt, ft, ns, fs, nl, fl, a.refused)
	if ft != nt {
		t.Errorf("%s: %d of %d acknowledged traces lost, e.g. %v", name, nt-ft, nt, mt)
	}
	if fs != ns {
		t.Errorf("%s: %d of %d acknowledged samples lost, e.g. %v", name, ns-fs, ns, ms)
	}
	if fl != nl {
		t.Errorf("%s: %d of %d acknowledged log lines lost, e.g. %v", name, nl-fl, nl, ml)
	}
}
