// Command metricload drives a Prometheus remote-write 1.0 receiver (Sprout, Prometheus, VictoriaMetrics,
// Mimir) as hard as a light client can: requests are encoded once, and each send only patches the sample
// timestamps in place and snappy-compresses the result, so the client stays far below the server's CPU.
//
//	metricload -url http://127.0.0.1:3200/api/v1/write -series 10000 -batch 500 -workers 4 -duration 20s
//
// Each worker owns a slice of the series and sends them round after round, one sample per series per round,
// timestamps advancing by -interval from -lookback ago, so every sample is new and in order.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
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
	flag.Parse()

	start := time.Now().Add(-*lookback).UnixMilli()
	maxRounds := int(*lookback / *interval)
	per := *nSeries / *workers
	var samples, requests, failures atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(*duration)
	began := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		reqs := buildRequests(w*per, per, *batch, start)
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
					buf = snappy.Encode(buf[:cap(buf)], r.raw)
					hr, _ := http.NewRequest(http.MethodPost, *url, bytes.NewReader(buf))
					hr.Header.Set("Content-Type", "application/x-protobuf")
					hr.Header.Set("Content-Encoding", "snappy")
					hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
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

// request is an encoded WriteRequest and the offsets of its timestamp varints.
type request struct {
	raw     []byte
	offsets []int
	n       int
}

// tsTemplate is a timestamp whose varint has the same length (6 bytes) as any real one in this era.
const tsTemplate = int64(1_700_000_000_000)

func buildRequests(first, count, batch int, _ int64) []*request {
	var out []*request
	for lo := first; lo < first+count; lo += batch {
		hi := min(lo+batch, first+count)
		wr := prompb.WriteRequest{}
		for i := lo; i < hi; i++ {
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels: []prompb.Label{
					{Name: "__name__", Value: "load_metric_" + strconv.Itoa(i%100)},
					{Name: "instance", Value: "host-" + strconv.Itoa(i/100)},
					{Name: "job", Value: "metricload"},
				},
				Samples: []prompb.Sample{{Value: float64(i), Timestamp: tsTemplate}},
			})
		}
		raw, err := wr.Marshal()
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
		out = append(out, r)
	}
	return out
}

func (r *request) setTimestamp(ts int64) {
	var v [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(v[:], uint64(ts))
	for _, off := range r.offsets {
		copy(r.raw[off:off+n], v[:n])
	}
}
