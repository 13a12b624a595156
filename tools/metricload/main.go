// Command metricload drives a Prometheus remote-write receiver (Sprout, Prometheus, VictoriaMetrics, Mimir),
// 1.0 or (-protocol 2) 2.0, as hard as a light client can: requests are encoded once, and each send only patches the sample
// timestamps in place and snappy-compresses the result, so the client stays far below the server's CPU
// (tools/internal/loadgen).
//
//	metricload -url http://127.0.0.1:3200/api/v1/write -series 10000 -batch 500 -workers 4 -duration 20s
//
// Each worker owns a slice of the series and sends them round after round, one sample per series per round,
// timestamps advancing by -interval from -lookback ago, so every sample is new and in order. -rounds bounds the
// rounds (e.g. exactly one hour of data), -values picks what the samples hold: "constant" (cheapest to store),
// "counter" (each series grows by a pseudo-random 0-99 per round, as request counters do) or "gauge" (a
// pseudo-random value with two decimals per round).
//
// With -query, metricload instead times a range query against a Prometheus HTTP API:
//
//	metricload -query 'sum by (instance) (rate({job="metricload"}[1m]))' -query-url http://127.0.0.1:3200 \
//	    -query-range 1h -query-step 15s -query-runs 10
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sprout-otel/sprout/tools/internal/loadgen"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:3200/api/v1/write", "remote write endpoint")
	nSeries := flag.Int("series", 10000, "active series")
	batch := flag.Int("batch", 500, "series (samples) per request")
	workers := flag.Int("workers", 4, "concurrent senders")
	duration := flag.Duration("duration", 20*time.Second, "how long to send (0: until -rounds or -lookback runs out)")
	interval := flag.Duration("interval", 10*time.Second, "timestamp step between rounds")
	lookback := flag.Duration("lookback", 6*time.Hour, "first round's timestamp is this long ago")
	tenant := flag.String("tenant", "", "X-Scope-OrgID to send")
	rounds := flag.Int("rounds", 0, "stop after this many rounds (0: only -duration and -lookback bound them)")
	protocol := flag.Int("protocol", 1, "remote write protocol: 1 (prometheus.WriteRequest) or 2 (io.prometheus.write.v2.Request)")
	withMetadata := flag.Bool("metadata", false, "remote write 2.0: send each series' type and help, as Prometheus 3 does")
	values := flag.String("values", "constant", "sample values: constant, counter or gauge")
	uniqueLabel := flag.Bool("unique-label", false, "give each series a series=\"<n>\" label, so that series stay distinct once PromQL drops the metric name (rate, sum by)")
	query := flag.String("query", "", "time this range query instead of writing")
	queryURL := flag.String("query-url", "http://127.0.0.1:3200", "base URL of the Prometheus HTTP API (for -query)")
	queryRange := flag.Duration("query-range", time.Hour, "range of the query, ending -query-end ago")
	queryEnd := flag.Duration("query-end", 0, "the query range ends this long ago")
	queryStep := flag.Duration("query-step", 15*time.Second, "query resolution")
	queryRuns := flag.Int("query-runs", 10, "how many times to run the query")
	flag.Parse()
	ctx := context.Background()
	if *query != "" {
		os.Exit(runQuery(ctx, *queryURL, *tenant, *query, *queryRange, *queryEnd, *queryStep, *queryRuns))
	}
	// -lookback bounds the rounds as before: none reaches into the future
	maxRounds := int(*lookback / *interval)
	if *rounds > 0 && *rounds < maxRounds {
		maxRounds = *rounds
	}
	res, err := loadgen.MetricLoad{URL: *url, Series: *nSeries, Batch: *batch, Workers: *workers, Duration: *duration,
		Interval: *interval, Start: time.Now().Add(-*lookback), Rounds: maxRounds, Values: *values,
		UniqueLabel: *uniqueLabel, Tenant: *tenant, Protocol: *protocol, Metadata: *withMetadata}.Run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if res.FirstErr != "" {
		fmt.Fprintf(os.Stderr, "first failure: %s\n", res.FirstErr)
	}
	fmt.Printf("samples=%d requests=%d failures=%d elapsed=%s samples/s=%.0f p50=%s p99=%s\n",
		res.Samples, res.Requests, res.Failures, res.Elapsed.Round(time.Millisecond),
		float64(res.Samples)/res.Elapsed.Seconds(), res.Latency.Pct(0.5), res.Latency.Pct(0.99))
	if res.Failures > 0 {
		os.Exit(1)
	}
}

// runQuery runs a range query runs times and prints the latency percentiles and the result's size.
func runQuery(ctx context.Context, base, tenant, q string, rng, endAgo, step time.Duration, runs int) int {
	end := time.Now().Add(-endAgo)
	var lat loadgen.Latencies
	var res loadgen.PromResult
	for i := 0; i < runs; i++ {
		d, r, err := loadgen.PromQuery(ctx, base, tenant, q, end, rng, step)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		lat, res = append(lat, d), r
	}
	lat.Sort()
	fmt.Printf("runs=%d series=%d points=%d min=%s p50=%s max=%s\n", runs, res.Series, res.Points,
		lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return 0
}
