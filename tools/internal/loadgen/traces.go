package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
)

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// rawCodec sends pre-encoded bytes as they are and discards the reply.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)   { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(_ []byte, _ any) error { return nil }
func (rawCodec) Name() string                    { return "proto" }

var _ encoding.Codec = rawCodec{}

// marker is the trace id written into the template; every occurrence is replaced before each send.
var marker = [12]byte{0x5e, 0x17, 0xa1, 0x0a, 0xd5, 0x3c, 0x9b, 0x42, 0x77, 0xe1, 0x0f, 0xc3}

// TraceTemplate is one encoded OTLP export request and where each trace's id sits in it.
type TraceTemplate struct {
	Body    []byte
	Offsets [][]int // per trace, offsets of its 16-byte id in Body
}

// BuildTraceTemplate encodes spans spans in traces of perTrace spans (service "traceload", span names
// operation-0…, the k-th span of a trace lasting k+1 ms), each with a payload-byte attribute when payload > 0.
func BuildTraceTemplate(spans, perTrace, payload int) (TraceTemplate, error) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "traceload")
	rs.Resource().Attributes().PutStr("host.name", "loadgen-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("traceload")
	traces := (spans + perTrace - 1) / perTrace
	now := time.Now()
	n := 0
	for t := 0; t < traces && n < spans; t++ {
		var id pcommon.TraceID
		copy(id[:12], marker[:])
		binary.BigEndian.PutUint32(id[12:], uint32(t))
		for s := 0; s < perTrace && n < spans; s++ {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(id)
			sp.SetSpanID(pcommon.SpanID{byte(s + 1), byte(t), byte(t >> 8), 1, 2, 3, 4, 5})
			if s > 0 {
				sp.SetParentSpanID(pcommon.SpanID{1, byte(t), byte(t >> 8), 1, 2, 3, 4, 5})
				sp.SetKind(ptrace.SpanKindInternal)
			} else {
				sp.SetKind(ptrace.SpanKindServer)
			}
			sp.SetName(fmt.Sprintf("operation-%d", s))
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(s+1) * time.Millisecond)))
			sp.Attributes().PutStr("http.method", "GET")
			sp.Attributes().PutInt("http.status_code", 200)
			if payload > 0 {
				sp.Attributes().PutStr("payload", string(bytes.Repeat([]byte("x"), payload)))
			}
			n++
		}
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return TraceTemplate{}, fmt.Errorf("encode the trace template: %w", err)
	}
	tpl := TraceTemplate{Body: body, Offsets: make([][]int, traces)}
	for off := 0; ; {
		i := bytes.Index(body[off:], marker[:])
		if i < 0 {
			break
		}
		pos := off + i
		t := binary.BigEndian.Uint32(body[pos+12:])
		tpl.Offsets[t] = append(tpl.Offsets[t], pos)
		off = pos + 16
	}
	return tpl, nil
}

// TraceLoad is one run of OTLP gRPC exports.
type TraceLoad struct {
	Addr          string        // OTLP gRPC endpoint, host:port
	Workers       int           // concurrent senders
	Duration      time.Duration // stop sending after this long (0: no bound but Spans)
	Spans         int64         // stop once this many spans were sent (0: no bound but Duration)
	Batch         int           // spans per request
	SpansPerTrace int
	Payload       int    // bytes of an extra string attribute per span
	Tenant        string // X-Scope-OrgID (empty: none)
	Rate          int    // target spans/s over all workers (0: as fast as possible)
	// KeepIDs keeps the id of one trace of every acknowledged request (for lookups and counts afterwards).
	KeepIDs bool
}

// TraceResult is what a TraceLoad measured on the client side.
type TraceResult struct {
	Sent      int64 // spans acknowledged
	Failed    int64 // requests refused or failed
	Elapsed   time.Duration
	ClientCPU float64  // CPU seconds of this process during the load
	LastErr   string   // the last failure, if any
	IDs       []string // one acknowledged trace per request (with KeepIDs), hex
	Start     time.Time
}

// Run sends until Duration or Spans is reached. Every trace id is fresh: run, worker, sequence and trace index.
func (l TraceLoad) Run(ctx context.Context) (TraceResult, error) {
	if l.Batch < 1 || l.SpansPerTrace < 1 || l.Workers < 1 {
		return TraceResult{}, errors.New("batch, spans per trace and workers must be positive")
	}
	if l.Duration <= 0 && l.Spans <= 0 {
		return TraceResult{}, errors.New("a trace load needs a duration or a span count")
	}
	tpl, err := BuildTraceTemplate(l.Batch, l.SpansPerTrace, l.Payload)
	if err != nil {
		return TraceResult{}, err
	}
	conn, err := grpc.NewClient(l.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return TraceResult{}, fmt.Errorf("connect to %s: %w", l.Addr, err)
	}
	defer conn.Close()
	if l.Tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "X-Scope-OrgID", l.Tenant)
	}
	var (
		sent, failed, reserved atomic.Int64
		lastErr                atomic.Value
		wg                     sync.WaitGroup
		idMu                   sync.Mutex
		ids                    []string
		run                    = uint32(time.Now().UnixNano())
	)
	var deadline time.Time
	if l.Duration > 0 {
		deadline = time.Now().Add(l.Duration)
	}
	var perWorkerInterval time.Duration
	if l.Rate > 0 {
		perWorkerInterval = time.Duration(float64(time.Second) * float64(l.Batch) * float64(l.Workers) / float64(l.Rate))
	}
	cpu0, start := SelfCPU(), time.Now()
	for w := 0; w < l.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			body := append([]byte(nil), tpl.Body...)
			var seq uint64
			next := time.Now()
			for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
				if l.Spans > 0 && reserved.Add(int64(l.Batch)) > l.Spans {
					return
				}
				seq++
				for t, offs := range tpl.Offsets {
					for _, off := range offs {
						binary.BigEndian.PutUint32(body[off:], run)
						binary.BigEndian.PutUint32(body[off+4:], uint32(w))
						binary.BigEndian.PutUint32(body[off+8:], uint32(seq))
						binary.BigEndian.PutUint32(body[off+12:], uint32(t))
					}
				}
				if err := conn.Invoke(ctx, exportMethod, &body, &body); err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
				} else {
					sent.Add(int64(l.Batch))
					if l.KeepIDs {
						id := fmt.Sprintf("%08x%08x%08x%08x", run, uint32(w), uint32(seq), uint32(int(seq)%len(tpl.Offsets)))
						idMu.Lock()
						ids = append(ids, id)
						idMu.Unlock()
					}
				}
				if perWorkerInterval > 0 {
					next = next.Add(perWorkerInterval)
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	res := TraceResult{Sent: sent.Load(), Failed: failed.Load(), Elapsed: time.Since(start),
		ClientCPU: SelfCPU() - cpu0, IDs: ids, Start: start}
	if e, ok := lastErr.Load().(string); ok {
		res.LastErr = e
	}
	return res, nil
}

// HTTPGet fetches a URL with an optional tenant and returns status and body.
func HTTPGet(ctx context.Context, u, tenant string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// SpreadPick picks at most n items spread evenly over ids, in order.
func SpreadPick(ids []string, n int) []string {
	if n <= 0 || len(ids) <= n {
		return ids
	}
	step := float64(len(ids)) / float64(n)
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, ids[int(float64(i)*step)])
	}
	return out
}

// Latencies are sorted durations with percentile helpers.
type Latencies []time.Duration

// Sort sorts the latencies in place and returns them.
func (l Latencies) Sort() Latencies {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l
}

// Pct is the p-quantile (0..1) of sorted latencies, 0 when empty.
func (l Latencies) Pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(p*float64(len(l))))]
}

// TraceLookup is the outcome of trace-by-id requests.
type TraceLookup struct {
	Found, Missing, Failed int
	Short                  int // found with fewer spans than wanted
	Latency                Latencies
}

// LookupTraces fetches each id from a Tempo-compatible API (GET /api/traces/<id>) and, when spans > 0, checks
// that each trace holds that many spans.
func LookupTraces(ctx context.Context, base, tenant string, ids []string, spans int) TraceLookup {
	var r TraceLookup
	for _, id := range ids {
		t0 := time.Now()
		code, body, err := HTTPGet(ctx, base+"/api/traces/"+id, tenant)
		d := time.Since(t0)
		switch {
		case err != nil || code >= 500:
			r.Failed++
		case code == http.StatusNotFound:
			r.Missing++
		default:
			r.Found++
			r.Latency = append(r.Latency, d)
			if spans > 0 && CountTraceSpans(body) < spans {
				r.Short++
			}
		}
	}
	r.Latency.Sort()
	return r
}

// CountTraceSpans counts the spans of a trace in Tempo's JSON (batches or resourceSpans, scopeSpans or
// instrumentationLibrarySpans); 0 when the body is not such a trace.
func CountTraceSpans(body []byte) int {
	type scope struct {
		Spans []json.RawMessage `json:"spans"`
	}
	type resource struct {
		ScopeSpans []scope `json:"scopeSpans"`
		ILS        []scope `json:"instrumentationLibrarySpans"`
	}
	var t struct {
		Batches       []resource `json:"batches"`
		ResourceSpans []resource `json:"resourceSpans"`
	}
	if json.Unmarshal(body, &t) != nil {
		return 0
	}
	n := 0
	for _, r := range append(t.Batches, t.ResourceSpans...) {
		for _, s := range append(r.ScopeSpans, r.ILS...) {
			n += len(s.Spans)
		}
	}
	return n
}

// SearchResult is one TraceQL search over the HTTP API.
type SearchResult struct {
	Status  int
	Traces  int
	Latency time.Duration
	Metrics map[string]any
	Err     error
}

// SearchTraces runs a TraceQL search (GET /api/search) over [from, to] with limit 20.
func SearchTraces(ctx context.Context, base, tenant, q string, from, to time.Time) SearchResult {
	v := url.Values{"q": {q}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)}, "limit": {"20"}}
	t0 := time.Now()
	code, body, err := HTTPGet(ctx, base+"/api/search?"+v.Encode(), tenant)
	r := SearchResult{Status: code, Latency: time.Since(t0), Err: err}
	var res struct {
		Traces  []json.RawMessage `json:"traces"`
		Metrics map[string]any    `json:"metrics"`
	}
	_ = json.Unmarshal(body, &res)
	r.Traces, r.Metrics = len(res.Traces), res.Metrics
	if err == nil && code != http.StatusOK {
		r.Err = fmt.Errorf("search: status %d: %s", code, bytes.TrimSpace(body[:min(len(body), 300)]))
	}
	return r
}
