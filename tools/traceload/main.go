// Command traceload measures how fast an OTLP gRPC server ingests traces. It encodes its batches once, before
// the clock starts, and then only stamps fresh trace ids into the encoded bytes and sends them from a tight loop,
// so that the client spends far less CPU than the server it measures (tools/internal/loadgen).
//
//	go run ./tools/traceload -addr localhost:4317 -workers 4 -duration 20s -batch 500 -spans-per-trace 10
//
// With -pid it also reports the server's CPU seconds during the load and its peak RSS; with -query it then
// times trace by id for ids it sent and a TraceQL search over the HTTP API (Tempo's paths, so the same run
// works against Sprout and Tempo).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/sprout-otel/sprout/tools/internal/loadgen"
)

func main() {
	addr := flag.String("addr", "localhost:4317", "OTLP gRPC endpoint")
	workers := flag.Int("workers", 4, "concurrent senders")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	spans := flag.Int64("spans", 0, "stop after this many spans (0: only -duration bounds the load)")
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

	ctx := context.Background()
	load := loadgen.TraceLoad{Addr: *addr, Workers: *workers, Duration: *duration, Spans: *spans, Batch: *batch,
		SpansPerTrace: *perTrace, Payload: *payload, Tenant: *tenant, Rate: *rate, KeepIDs: *queryURL != ""}
	if *duration == 0 && *spans == 0 {
		load.Workers, load.Spans = 1, 0 // query only: send nothing
	}
	srvCPU0 := loadgen.ProcCPU(*pid)
	res := loadgen.TraceResult{Start: time.Now()}
	if load.Duration > 0 || load.Spans > 0 {
		var err error
		if res, err = load.Run(ctx); err != nil {
			log.Fatal(err)
		}
		el := res.Elapsed.Seconds()
		fmt.Printf("sent %d spans in %.1fs: %.0f spans/s, %d failed requests, client CPU %.2f s (%.2f cores)\n",
			res.Sent, el, float64(res.Sent)/el, res.Failed, res.ClientCPU, res.ClientCPU/el)
		if res.LastErr != "" {
			fmt.Fprintln(os.Stderr, "last error:", res.LastErr)
		}
	}
	if *pid > 0 {
		c := loadgen.ProcCPU(*pid) - srvCPU0
		fmt.Printf("server: %.1f CPU-s during the load, %.2f CPU-s per million spans, peak RSS (VmHWM) %s\n",
			c, c/float64(res.Sent)*1e6, loadgen.ProcStatus(*pid, "VmHWM"))
	}
	if *queryURL == "" {
		return
	}
	time.Sleep(*settle)
	from := res.Start.Add(-time.Minute)
	if *window > 0 {
		from = time.Now().Add(-*window)
	}
	// one id of every seventh request, spread over the run, as before the runner kept one of each
	var ids []string
	for i := 0; i < len(res.IDs); i += 7 {
		ids = append(ids, res.IDs[i])
	}
	lk := loadgen.LookupTraces(ctx, *queryURL, *tenant, loadgen.SpreadPick(ids, *lookups), 0)
	r10 := 10 * time.Microsecond
	fmt.Printf("trace by id: %d found, %d not found, %d failed; p50 %s, p99 %s, max %s\n",
		lk.Found, lk.Missing, lk.Failed, lk.Latency.Pct(0.5).Round(r10), lk.Latency.Pct(0.99).Round(r10), lk.Latency.Pct(1).Round(r10))
	if *search == "" {
		return
	}
	for i := 0; i < 3; i++ {
		s := loadgen.SearchTraces(ctx, *queryURL, *tenant, *search, from, time.Now().Add(time.Minute))
		fmt.Printf("search %s: status %d, %d traces, %s (metrics %v)", *search, s.Status, s.Traces, s.Latency.Round(time.Millisecond), s.Metrics)
		if s.Err != nil {
			fmt.Printf(" error %v", s.Err)
		}
		fmt.Println()
	}
}
