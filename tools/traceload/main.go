// Command traceload measures how fast an OTLP gRPC server ingests traces. It encodes its batches once, before
// the clock starts, and then only stamps fresh trace ids into the encoded bytes and sends them from a tight loop,
// so that the client spends far less CPU than the server it measures.
//
//	go run ./tools/traceload -addr localhost:4317 -workers 4 -duration 20s -batch 500 -spans-per-trace 10
//
// With -pid it also reports the server's CPU seconds during the load and its peak RSS; with -query it then
// times trace by id for ids it sent and a TraceQL search over the HTTP API (Tempo's paths, so the same run
// works against Sprout and Tempo).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

type template struct {
	body    []byte
	offsets [][]int // per trace, offsets of its 16-byte id in body
}

func buildTemplate(spans, perTrace, payload int) template {
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
		log.Fatal(err)
	}
	tpl := template{body: body, offsets: make([][]int, traces)}
	for off := 0; ; {
		i := bytes.Index(body[off:], marker[:])
		if i < 0 {
			break
		}
		pos := off + i
		t := binary.BigEndian.Uint32(body[pos+12:])
		tpl.offsets[t] = append(tpl.offsets[t], pos)
		off = pos + 16
	}
	return tpl
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func main() {
	addr := flag.String("addr", "localhost:4317", "OTLP gRPC endpoint")
	workers := flag.Int("workers", 4, "concurrent senders")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	batch := flag.Int("batch", 500, "spans per request")
	perTrace := flag.Int("spans-per-trace", 10, "spans per trace")
	payload := flag.Int("payload", 0, "bytes of an extra string attribute per span")
	tenant := flag.String("tenant", "", "X-Scope-OrgID to send (empty: none)")
	rate := flag.Int("rate", 0, "target spans/s over all workers (0: as fast as possible)")
	pid := flag.Int("pid", 0, "server process id: report its CPU seconds during the run and its peak RSS (Linux /proc)")
	queryURL := flag.String("query", "", "after the load, query this HTTP API (e.g. http://localhost:3200): trace by id for sent ids, then -search")
	lookups := flag.Int("lookups", 200, "trace-by-id requests after the load (with -query)")
	search := flag.String("search", `{ resource.service.name = "x" && duration > 500ms }`, "TraceQL query timed after the load (with -query); empty: none")
	settle := flag.Duration("settle", 0, "wait this long between the load and the queries")
	window := flag.Duration("window", 0, "search the last this long (0: from a minute before the load began)")
	flag.Parse()
	if *batch < 1 || *perTrace < 1 || *workers < 1 {
		log.Fatal("batch, spans-per-trace and workers must be positive")
	}
	tpl := buildTemplate(*batch, *perTrace, *payload)
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if *tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "X-Scope-OrgID", *tenant)
	}
	var (
		sent, failed atomic.Int64
		lastErr      atomic.Value
		wg           sync.WaitGroup
		deadline     = time.Now().Add(*duration)
		run          = uint32(time.Now().UnixNano())
	)
	var perWorkerInterval time.Duration
	if *rate > 0 {
		perWorkerInterval = time.Duration(float64(time.Second) * float64(*batch) * float64(*workers) / float64(*rate))
	}
	var (
		idMu    sync.Mutex
		sentIDs []string
	)
	srvCPU0 := procCPU(*pid)
	cpu0, start := cpuSeconds(), time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			body := append([]byte(nil), tpl.body...)
			var seq uint64
			next := time.Now()
			for time.Now().Before(deadline) {
				seq++
				for t, offs := range tpl.offsets {
					for _, off := range offs {
						// 16 fresh id bytes: run, worker, sequence, trace index
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
					sent.Add(int64(*batch))
					if *queryURL != "" && seq%7 == 1 {
						idMu.Lock()
						sentIDs = append(sentIDs, fmt.Sprintf("%08x%08x%08x%08x", run, uint32(w), uint32(seq), uint32(int(seq)%len(tpl.offsets))))
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
	el := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	fmt.Printf("sent %d spans in %.1fs: %.0f spans/s, %d failed requests, client CPU %.2f s (%.2f cores)\n",
		sent.Load(), el, float64(sent.Load())/el, failed.Load(), cpu, cpu/el)
	if e := lastErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "last error:", e)
	}
	if *pid > 0 {
		c := procCPU(*pid) - srvCPU0
		fmt.Printf("server: %.1f CPU-s during the load, %.2f CPU-s per million spans, peak RSS (VmHWM) %s\n",
			c, c/float64(sent.Load())*1e6, procStatus(*pid, "VmHWM"))
	}
	if *queryURL != "" {
		time.Sleep(*settle)
		from := start.Add(-time.Minute)
		if *window > 0 {
			from = time.Now().Add(-*window)
		}
		queryPhase(*queryURL, *tenant, sentIDs, *lookups, *search, from, time.Now().Add(time.Minute))
	}
}

// procCPU is the user+system CPU seconds of a process (0 when pid is 0 or unreadable).
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// fields after the command name (which may hold spaces) start after the last ')'
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func procStatus(pid int, key string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func httpGet(url, tenant string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
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

// queryPhase times trace by id for ids sent during the load (spread over the run) and one search.
func queryPhase(base, tenant string, ids []string, n int, search string, from, to time.Time) {
	if len(ids) > n {
		step := float64(len(ids)) / float64(n)
		picked := make([]string, 0, n)
		for i := 0; i < n; i++ {
			picked = append(picked, ids[int(float64(i)*step)])
		}
		ids = picked
	}
	var lat []time.Duration
	missing, failed := 0, 0
	for _, id := range ids {
		t0 := time.Now()
		code, _, err := httpGet(base+"/api/traces/"+id, tenant)
		d := time.Since(t0)
		switch {
		case err != nil || code >= 500:
			failed++
		case code == http.StatusNotFound:
			missing++
		default:
			lat = append(lat, d)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("trace by id: %d found, %d not found, %d failed; p50 %s, p99 %s, max %s\n",
		len(lat), missing, failed, pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	if search == "" {
		return
	}
	q := url.Values{"q": {search}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)}, "limit": {"20"}}
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		code, body, err := httpGet(base+"/api/search?"+q.Encode(), tenant)
		d := time.Since(t0)
		var res struct {
			Traces  []json.RawMessage `json:"traces"`
			Metrics map[string]any    `json:"metrics"`
		}
		_ = json.Unmarshal(body, &res)
		fmt.Printf("search %s: status %d, %d traces, %s (metrics %v)", search, code, len(res.Traces), d.Round(time.Millisecond), res.Metrics)
		if err != nil {
			fmt.Printf(" error %v", err)
		}
		fmt.Println()
	}
}
