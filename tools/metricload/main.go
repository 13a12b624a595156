// Command metricload drives a Prometheus remote-write receiver (Sprout, Prometheus, VictoriaMetrics, Mimir),
// 1.0 or (-protocol 2) 2.0, as hard as a light client can: requests are encoded once, and each send only patches the sample
// timestamps in place and snappy-compresses the result, so the client stays far below the server's CPU.
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
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:3200/api/v1/write", "remote write endpoint")
	nSeries := flag.Int("series", 10000, "active series")
	batch := flag.Int("batch", 500, "series (samples) per request")
	workers := flag.Int("workers", 4, "concurrent senders")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	interval := flag.Duration("interval", 10*time.Second, "timestamp step between rounds")
	lookback := flag.Duration("lookback", 6*time.Hour, "first round's timestamp is this long ago")
	tenant := flag.String("tenant", "", "X-Scope-OrgID to send")
	rounds := flag.Int("rounds", 0, "stop after this many rounds (0: only -duration and -lookback bound them)")
	protocol := flag.Int("protocol", 1, "remote write protocol: 1 (prometheus.WriteRequest) or 2 (io.prometheus.write.v2.Request)")
	values := flag.String("values", "constant", "sample values: constant, counter or gauge")
	uniqueLabel := flag.Bool("unique-label", false, "give each series a series=\"<n>\" label, so that series stay distinct once PromQL drops the metric name (rate, sum by)")
	query := flag.String("query", "", "time this range query instead of writing")
	queryURL := flag.String("query-url", "http://127.0.0.1:3200", "base URL of the Prometheus HTTP API (for -query)")
	queryRange := flag.Duration("query-range", time.Hour, "range of the query, ending -query-end ago")
	queryEnd := flag.Duration("query-end", 0, "the query range ends this long ago")
	queryStep := flag.Duration("query-step", 15*time.Second, "query resolution")
	queryRuns := flag.Int("query-runs", 10, "how many times to run the query")
	flag.Parse()
	if *query != "" {
		os.Exit(runQuery(*queryURL, *tenant, *query, *queryRange, *queryEnd, *queryStep, *queryRuns))
	}
	if *protocol != 1 && *protocol != 2 {
		fmt.Fprintf(os.Stderr, "-protocol %d: want 1 or 2\n", *protocol)
		os.Exit(2)
	}
	contentType, version := "application/x-protobuf", "0.1.0"
	if *protocol == 2 {
		contentType, version = "application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0.0"
	}
	if *values != "constant" && *values != "counter" && *values != "gauge" {
		fmt.Fprintf(os.Stderr, "-values %q: want constant, counter or gauge\n", *values)
		os.Exit(2)
	}

	start := time.Now().Add(-*lookback).UnixMilli()
	maxRounds := int(*lookback / *interval)
	if *rounds > 0 && *rounds < maxRounds {
		maxRounds = *rounds
	}
	per := *nSeries / *workers
	var samples, requests, failures atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(*duration)
	began := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		reqs := buildRequests(w*per, per, *batch, *uniqueLabel, *protocol == 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			var buf []byte
			var mine []time.Duration
			for round := 0; round < maxRounds && time.Now().Before(deadline); round++ {
				ts := start + int64(round)*interval.Milliseconds()
				for _, r := range reqs {
					r.setTimestamp(ts)
					r.setValues(*values, round)
					buf = snappy.Encode(buf[:cap(buf)], r.raw)
					hr, _ := http.NewRequest(http.MethodPost, *url, bytes.NewReader(buf))
					hr.Header.Set("Content-Type", contentType)
					hr.Header.Set("Content-Encoding", "snappy")
					hr.Header.Set("X-Prometheus-Remote-Write-Version", version)
					if *tenant != "" {
						hr.Header.Set("X-Scope-OrgID", *tenant)
					}
					t0 := time.Now()
					resp, err := client.Do(hr)
					if err != nil {
						failures.Add(1)
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 && failures.Load() == 0 {
						fmt.Fprintf(os.Stderr, "first failure: %d %s\n", resp.StatusCode, body)
					}
					mine = append(mine, time.Since(t0))
					requests.Add(1)
					if resp.StatusCode/100 == 2 {
						samples.Add(int64(r.n))
					} else {
						failures.Add(1)
					}
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))]
	}
	fmt.Printf("samples=%d requests=%d failures=%d elapsed=%s samples/s=%.0f p50=%s p99=%s\n",
		samples.Load(), requests.Load(), failures.Load(), elapsed.Round(time.Millisecond),
		float64(samples.Load())/elapsed.Seconds(), p(0.5), p(0.99))
	if failures.Load() > 0 {
		os.Exit(1)
	}
}

// request is an encoded WriteRequest (1.0 or 2.0) and the offsets of its timestamp varints and its values.
type request struct {
	raw     []byte
	offsets []int
	voffs   []int     // offsets of the 8-byte little-endian doubles
	acc     []float64 // counter state per series
	n       int
}

// tsTemplate is a timestamp whose varint has the same length (6 bytes) as any real one in this era.
const tsTemplate = int64(1_700_000_000_000)

func buildRequests(first, count, batch int, uniqueLabel, v2 bool) []*request {
	var out []*request
	for lo := first; lo < first+count; lo += batch {
		hi := min(lo+batch, first+count)
		wr := prompb.WriteRequest{}
		st := writev2.NewSymbolTable()
		wr2 := writev2.Request{}
		for i := lo; i < hi; i++ {
			ls := []prompb.Label{
				{Name: "__name__", Value: "load_metric_" + strconv.Itoa(i%100)},
				{Name: "instance", Value: "host-" + strconv.Itoa(i/100)},
				{Name: "job", Value: "metricload"},
			}
			if uniqueLabel {
				ls = append(ls, prompb.Label{Name: "series", Value: strconv.Itoa(i)})
			}
			// Never 0: a zero value is not encoded.
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels:  ls,
				Samples: []prompb.Sample{{Value: float64(i) + 1, Timestamp: tsTemplate}},
			})
			var refs []uint32
			for _, l := range ls {
				refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			}
			wr2.Timeseries = append(wr2.Timeseries, writev2.TimeSeries{
				LabelsRefs: refs,
				Samples:    []writev2.Sample{{Value: float64(i) + 1, Timestamp: tsTemplate}},
			})
		}
		wr2.Symbols = st.Symbols()
		raw, err := wr.Marshal()
		if v2 {
			raw, err = wr2.Marshal()
		}
		if err != nil {
			panic(err)
		}
		pat := append([]byte{0x10}, binary.AppendUvarint(nil, uint64(tsTemplate))...)
		r := &request{raw: raw, n: hi - lo}
		for off := 0; ; {
			i := bytes.Index(raw[off:], pat)
			if i < 0 {
				break
			}
			r.offsets = append(r.offsets, off+i+1)
			off += i + len(pat)
		}
		if len(r.offsets) != r.n {
			panic(fmt.Sprintf("found %d timestamps in a request of %d samples", len(r.offsets), r.n))
		}
		// A sample is encoded as: 0x09 <8-byte double> 0x10 <timestamp varint>; the value sits right before.
		for _, off := range r.offsets {
			if raw[off-10] != 0x09 {
				panic("unexpected sample encoding")
			}
			r.voffs = append(r.voffs, off-9)
		}
		r.acc = make([]float64, r.n)
		out = append(out, r)
	}
	return out
}

// setValues writes the round's values (a deterministic pseudo-random sequence per series and round).
func (r *request) setValues(mode string, round int) {
	if mode == "constant" {
		return
	}
	for i, off := range r.voffs {
		x := uint64(r.offsets[i])*0x9E3779B97F4A7C15 ^ uint64(round)*0xBF58476D1CE4E5B9
		x ^= x >> 31
		x *= 0x94D049BB133111EB
		x ^= x >> 29
		var v float64
		if mode == "counter" {
			r.acc[i] += float64(x % 100)
			v = r.acc[i]
		} else {
			v = float64(x%100000) / 100
		}
		binary.LittleEndian.PutUint64(r.raw[off:off+8], math.Float64bits(v))
	}
}

func (r *request) setTimestamp(ts int64) {
	var v [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(v[:], uint64(ts))
	for _, off := range r.offsets {
		copy(r.raw[off:off+n], v[:n])
	}
}

// runQuery runs a range query runs times and prints the latency percentiles and the result's size.
func runQuery(base, tenant, q string, rng, endAgo, step time.Duration, runs int) int {
	end := time.Now().Add(-endAgo)
	params := url.Values{
		"query": {q},
		"start": {strconv.FormatFloat(float64(end.Add(-rng).UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	var lat []time.Duration
	var series, points int
	for i := 0; i < runs; i++ {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/query_range", bytes.NewBufferString(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tenant != "" {
			req.Header.Set("X-Scope-OrgID", tenant)
		}
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []struct {
					Values [][2]any `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
			fmt.Fprintf(os.Stderr, "query: %d %v %s\n", resp.StatusCode, err, r.Error)
			return 1
		}
		series, points = len(r.Data.Result), 0
		for _, s := range r.Data.Result {
			points += len(s.Values)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("runs=%d series=%d points=%d min=%s p50=%s max=%s\n", runs, series, points,
		lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return 0
}
