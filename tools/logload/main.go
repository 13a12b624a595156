// Command logload pushes log lines to a Loki-compatible push endpoint (Sprout, Loki, VictoriaLogs) as fast as
// it can and reports the rate the server accepted. Batches are encoded before the clock starts, so the client
// spends its CPU on sending, not on building lines (tools/internal/loadgen).
//
//	go run ./tools/logload -url http://localhost:3200/loki/api/v1/push -format protobuf -workers 4 -duration 20s
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
	var (
		url       = flag.String("url", "http://localhost:3200/loki/api/v1/push", "push endpoint")
		format    = flag.String("format", "json", "json, json-gzip or protobuf")
		workers   = flag.Int("workers", 4, "concurrent pushers")
		duration  = flag.Duration("duration", 20*time.Second, "how long to push")
		batchSize = flag.Int("batch", 500, "lines per push")
		streams   = flag.Int("streams", 10, "streams per push")
		lineSize  = flag.Int("line-size", 200, "approximate line size in bytes")
		random    = flag.Bool("random", false, "random line content (incompressible) instead of repetitive log lines")
		tenantID  = flag.String("tenant", "", "X-Scope-OrgID to send")
		batches   = flag.Int("batches", 256, "distinct pre-encoded batches per worker")
		once      = flag.Bool("once", false, "send each pre-encoded batch once and stop (for bytes-per-line measurements)")
	)
	flag.Parse()
	sh := loadgen.LogShape{Batch: *batchSize, Streams: *streams, LineSize: *lineSize, Random: *random, Base: time.Now().Add(-time.Minute)}
	bodies, err := loadgen.PrepareLogBodies(*workers, *batches, sh, *format)
	if err != nil {
		log.Fatal(err)
	}
	res, err := loadgen.LogLoad{URL: *url, Format: *format, Tenant: *tenantID, Duration: *duration, Once: *once, Bodies: bodies}.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	if res.FirstErr != "" {
		fmt.Fprintln(os.Stderr, res.FirstErr)
	}
	el := res.Elapsed.Seconds()
	fmt.Printf("lines=%d failed_pushes=%d seconds=%.1f lines_per_sec=%.0f wire_MB_per_sec=%.1f\n",
		res.Lines, res.FailedPushes, el, float64(res.Lines)/el, float64(res.Bytes)/el/1e6)
}
