package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// MetricLoad drives a Prometheus remote-write receiver (Sprout, Prometheus, VictoriaMetrics, Mimir), 1.0 or 2.0.
// Requests are encoded once; each send only patches the sample timestamps (and values) in place and
// snappy-compresses the result. Each worker owns a slice of the series and sends them round after round, one
// sample per series per round, timestamps advancing by Interval from Start, so every sample is new and in order.
// Series are load_metric_<i%100>{instance="host-<i/100>", job="metricload"}.
type MetricLoad struct {
	URL         string
	Series      int // active series, split evenly over the workers
	Batch       int // series (samples) per request
	Workers     int
	Duration    time.Duration // stop after this long (0: only Rounds bounds the load)
	Interval    time.Duration // timestamp step between rounds
	Start       time.Time     // timestamp of the first round
	Rounds      int           // stop after this many rounds (0: until Duration, or until a round would reach now)
	Values      string        // constant, counter or gauge
	UniqueLabel bool          // a series="<n>" label, so series stay distinct once PromQL drops the name
	Tenant      string
	Protocol    int // remote write 1 (prometheus.WriteRequest, the default) or 2 (io.prometheus.write.v2.Request)
	// Metadata gives each 2.0 series its type and help, as Prometheus 3 sends them with every series.
	Metadata bool
}

// MetricResult is what a MetricLoad measured on the client side.
type MetricResult struct {
	Samples, Requests, Failures int64
	Elapsed                     time.Duration
	ClientCPU                   float64
	Latency                     Latencies // per request
	FirstErr                    string
	Rounds                      int // the most rounds any worker completed
}

// Run sends until every worker finished its rounds or Duration passed.
func (l MetricLoad) Run(ctx context.Context) (MetricResult, error) {
	if l.Values != "constant" && l.Values != "counter" && l.Values != "gauge" {
		return MetricResult{}, fmt.Errorf("values %q: want constant, counter or gauge", l.Values)
	}
	contentType, version := "application/x-protobuf", "0.1.0"
	switch l.Protocol {
	case 0, 1:
	case 2:
		contentType, version = "application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0.0"
	default:
		return MetricResult{}, fmt.Errorf("protocol %d: want 1 or 2", l.Protocol)
	}
	if l.Workers < 1 || l.Batch < 1 || l.Series < l.Workers || l.Interval <= 0 {
		return MetricResult{}, errors.New("workers, batch and interval must be positive, and series at least one per worker")
	}
	start := l.Start.UnixMilli()
	maxRounds := int(time.Since(l.Start) / l.Interval)
	if l.Rounds > 0 && (l.Rounds < maxRounds || maxRounds <= 0) {
		maxRounds = l.Rounds
	}
	if l.Duration <= 0 && l.Rounds <= 0 {
		return MetricResult{}, errors.New("a metric load needs a duration or a round count")
	}
	per := l.Series / l.Workers
	var samples, requests, failures, rounds atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	var lat Latencies
	var deadline time.Time
	if l.Duration > 0 {
		deadline = time.Now().Add(l.Duration)
	}
	reqs := make([][]*metricRequest, l.Workers)
	for w := range reqs {
		var err error
		if reqs[w], err = buildMetricRequests(w*per, per, l.Batch, l.UniqueLabel, l.Protocol == 2, l.Metadata); err != nil {
			return MetricResult{}, err
		}
	}
	cpu0, began := SelfCPU(), time.Now()
	var wg sync.WaitGroup
	for w := 0; w < l.Workers; w++ {
		wg.Add(1)
		go func(reqs []*metricRequest) {
			defer wg.Done()
			client := &http.Client{Timeout: 60 * time.Second}
			var buf []byte
			var mine Latencies
			round := 0
			for ; round < maxRounds && ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)); round++ {
				ts := start + int64(round)*l.Interval.Milliseconds()
				for _, r := range reqs {
					r.setTimestamp(ts)
					r.setValues(l.Values, round)
					buf = snappy.Encode(buf[:cap(buf)], r.raw)
					hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.URL, bytes.NewReader(buf))
					hr.Header.Set("Content-Type", contentType)
					hr.Header.Set("Content-Encoding", "snappy")
					hr.Header.Set("X-Prometheus-Remote-Write-Version", version)
					if l.Tenant != "" {
						hr.Header.Set("X-Scope-OrgID", l.Tenant)
					}
					t0 := time.Now()
					resp, err := client.Do(hr)
					if err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					mine = append(mine, time.Since(t0))
					requests.Add(1)
					if resp.StatusCode/100 == 2 {
						samples.Add(int64(r.n))
					} else {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body)))
					}
				}
			}
			for {
				if old := rounds.Load(); int64(round) <= old || rounds.CompareAndSwap(old, int64(round)) {
					break
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(reqs[w])
	}
	wg.Wait()
	res := MetricResult{Samples: samples.Load(), Requests: requests.Load(), Failures: failures.Load(),
		Elapsed: time.Since(began), ClientCPU: SelfCPU() - cpu0, Latency: lat.Sort(), Rounds: int(rounds.Load())}
	if e, ok := firstErr.Load().(string); ok {
		res.FirstErr = e
	}
	return res, nil
}

// metricRequest is an encoded write request (1.0 or 2.0) and the offsets of its timestamp varints and its values.
type metricRequest struct {
	raw     []byte
	offsets []int
	voffs   []int     // offsets of the 8-byte little-endian doubles
	acc     []float64 // counter state per series
	n       int
}

// tsTemplate is a timestamp whose varint has the same length (6 bytes) as any real one in this era.
const tsTemplate = int64(1_700_000_000_000)

func buildMetricRequests(first, count, batch int, uniqueLabel, v2, metadata bool) ([]*metricRequest, error) {
	var out []*metricRequest
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
			// Values are never 0: a zero value is not encoded. Both versions encode a sample as value (field 1)
			// then timestamp (field 2), so the offsets below are found the same way.
			if !v2 {
				wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
					Labels:  ls,
					Samples: []prompb.Sample{{Value: float64(i) + 1, Timestamp: tsTemplate}},
				})
				continue
			}
			var refs []uint32
			for _, l := range ls {
				refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			}
			ts := writev2.TimeSeries{
				LabelsRefs: refs,
				Samples:    []writev2.Sample{{Value: float64(i) + 1, Timestamp: tsTemplate}},
			}
			if metadata {
				ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER,
					HelpRef: st.Symbolize("Load generated by metricload, metric " + strconv.Itoa(i%100) + ".")}
			}
			wr2.Timeseries = append(wr2.Timeseries, ts)
		}
		var raw []byte
		var err error
		if v2 {
			wr2.Symbols = st.Symbols()
			raw, err = wr2.Marshal()
		} else {
			raw, err = wr.Marshal()
		}
		if err != nil {
			return nil, fmt.Errorf("encode a write request: %w", err)
		}
		pat := append([]byte{0x10}, binary.AppendUvarint(nil, uint64(tsTemplate))...)
		r := &metricRequest{raw: raw, n: hi - lo}
		for off := 0; ; {
			i := bytes.Index(raw[off:], pat)
			if i < 0 {
				break
			}
			r.offsets = append(r.offsets, off+i+1)
			off += i + len(pat)
		}
		if len(r.offsets) != r.n {
			return nil, fmt.Errorf("found %d timestamps in a request of %d samples", len(r.offsets), r.n)
		}
		// A sample is encoded as: 0x09 <8-byte double> 0x10 <timestamp varint>; the value sits right before.
		for _, off := range r.offsets {
			if raw[off-10] != 0x09 {
				return nil, errors.New("unexpected sample encoding")
			}
			r.voffs = append(r.voffs, off-9)
		}
		r.acc = make([]float64, r.n)
		out = append(out, r)
	}
	return out, nil
}

// setValues writes the round's values (a deterministic pseudo-random sequence per series and round).
func (r *metricRequest) setValues(mode string, round int) {
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

func (r *metricRequest) setTimestamp(ts int64) {
	var v [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(v[:], uint64(ts))
	for _, off := range r.offsets {
		copy(r.raw[off:off+n], v[:n])
	}
}

// PromResult is the data of a Prometheus API answer: the series of a matrix or vector.
type PromResult struct {
	Series int
	Points int
	Values []float64 // the value of each vector element, or the last value of each matrix series
}

// PromQuery runs an instant query (rng 0, at end) or a range query (POST, form-encoded) against a Prometheus
// HTTP API and returns its latency and result size.
func PromQuery(ctx context.Context, base, tenant, q string, end time.Time, rng, step time.Duration) (time.Duration, PromResult, error) {
	params := url.Values{"query": {q}}
	path := "/api/v1/query"
	ts := func(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }
	if rng > 0 {
		path = "/api/v1/query_range"
		params.Set("start", ts(end.Add(-rng)))
		params.Set("end", ts(end))
		params.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
	} else {
		params.Set("time", ts(end))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewBufferString(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, PromResult{}, fmt.Errorf("query %s: %w", q, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value  []any   `json:"value"`
				Values [][]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return d, PromResult{}, fmt.Errorf("query %s: status %d: %v %s", q, resp.StatusCode, err, r.Error)
	}
	var pr PromResult
	pr.Series = len(r.Data.Result)
	for _, s := range r.Data.Result {
		v := s.Value
		if len(s.Values) > 0 {
			pr.Points += len(s.Values)
			v = s.Values[len(s.Values)-1]
		} else if len(v) == 2 {
			pr.Points++
		}
		if len(v) == 2 {
			str, _ := v[1].(string)
			f, _ := strconv.ParseFloat(str, 64)
			pr.Values = append(pr.Values, f)
		}
	}
	return d, pr, nil
}
