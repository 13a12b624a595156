package diff

import (
	"fmt"
	"math/rand"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// genNativeAndOOO builds the second metrics data set: native histograms (integer buckets, schema 1, with a
// zero bucket, negative buckets and a counter reset) and float series written out of order. It returns two
// write requests: the first holds the histograms and every other float sample; the second the float samples in
// between, each older than its series' newest, so that both stores take them through their out-of-order path.
func genNativeAndOOO(seed int64, base time.Time) (first, second []prompb.TimeSeries) {
	r := rand.New(rand.NewSource(seed))
	steps := int(metricSpan / (15 * time.Second))
	ts := func(i int) int64 {
		return base.Add(7500*time.Millisecond + time.Duration(i)*15*time.Second).UnixMilli()
	}
	lbs := func(kv ...string) []prompb.Label {
		var l []prompb.Label
		for i := 0; i+1 < len(kv); i += 2 {
			l = append(l, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return l
	}
	for _, svc := range []string{"api", "web"} {
		s := prompb.TimeSeries{Labels: lbs("__name__", "rpc_duration_seconds", "job", "diff", "service", svc)}
		pos := make([]int64, 6)
		neg := make([]int64, 2)
		var zero, count uint64
		sum := 0.0
		for i := 0; i < steps; i++ {
			if svc == "web" && i == steps/2 { // a counter reset
				pos, neg, zero, count, sum = make([]int64, 6), make([]int64, 2), 0, 0, 0
			}
			for n := r.Intn(12); n > 0; n-- {
				b := r.Intn(6)
				pos[b]++
				count++
				sum += float64(int(1)<<b) * 0.01
			}
			if r.Intn(4) == 0 {
				neg[r.Intn(2)]++
				count++
				sum -= 0.02
			}
			if r.Intn(5) == 0 {
				zero++
				count++
			}
			h := &histogram.Histogram{Schema: 1, ZeroThreshold: 0.001, ZeroCount: zero, Count: count, Sum: sum,
				PositiveSpans: []histogram.Span{{Offset: -10, Length: 6}}, NegativeSpans: []histogram.Span{{Offset: 0, Length: 2}}}
			h.PositiveBuckets = deltas(pos)
			h.NegativeBuckets = deltas(neg)
			s.Histograms = append(s.Histograms, prompb.FromIntHistogram(ts(i), h))
		}
		first = append(first, s)
	}
	for _, room := range []string{"north", "south"} {
		a := prompb.TimeSeries{Labels: lbs("__name__", "ooo_gauge", "job", "diff", "room", room)}
		b := prompb.TimeSeries{Labels: lbs("__name__", "ooo_gauge", "job", "diff", "room", room)}
		c1 := prompb.TimeSeries{Labels: lbs("__name__", "ooo_requests_total", "job", "diff", "room", room)}
		c2 := prompb.TimeSeries{Labels: lbs("__name__", "ooo_requests_total", "job", "diff", "room", room)}
		v, c := 10.0, 0.0
		for i := 0; i < steps; i++ {
			v += r.NormFloat64()
			c += float64(r.Intn(10))
			if i%2 == 0 || i == steps-1 {
				a.Samples = append(a.Samples, prompb.Sample{Timestamp: ts(i), Value: v})
				c1.Samples = append(c1.Samples, prompb.Sample{Timestamp: ts(i), Value: c})
			} else {
				b.Samples = append(b.Samples, prompb.Sample{Timestamp: ts(i), Value: v})
				c2.Samples = append(c2.Samples, prompb.Sample{Timestamp: ts(i), Value: c})
			}
		}
		first = append(first, a, c1)
		second = append(second, b, c2)
	}
	return first, second
}

func deltas(xs []int64) []int64 {
	out := make([]int64, len(xs))
	prev := int64(0)
	for i, x := range xs {
		out[i] = x - prev
		prev = x
	}
	return out
}

// promqlNativeCorpus asks the native histograms and the out-of-order series.
var promqlNativeCorpus = []string{
	`rpc_duration_seconds`,
	`rpc_duration_seconds{service="web"}`,
	`rate(rpc_duration_seconds[5m])`,
	`increase(rpc_duration_seconds[10m])`,
	`sum(rate(rpc_duration_seconds[5m]))`,
	`sum by (service) (increase(rpc_duration_seconds[5m]))`,
	`histogram_quantile(0.9, rate(rpc_duration_seconds[5m]))`,
	`histogram_quantile(0.5, sum(rate(rpc_duration_seconds[5m])))`,
	`histogram_quantile(0.01, rate(rpc_duration_seconds[10m]))`,
	`histogram_quantile(1, rate(rpc_duration_seconds[5m]))`,
	`histogram_count(rate(rpc_duration_seconds[5m]))`,
	`histogram_sum(rate(rpc_duration_seconds[5m]))`,
	`histogram_count(rpc_duration_seconds)`,
	`histogram_sum(rpc_duration_seconds)`,
	`histogram_fraction(0, 0.1, rate(rpc_duration_seconds[5m]))`,
	`histogram_fraction(-1, 0, rate(rpc_duration_seconds[5m]))`,
	`resets(rpc_duration_seconds[40m])`,
	`count_over_time(rpc_duration_seconds[5m])`,
	`last_over_time(rpc_duration_seconds[5m])`,
	`rpc_duration_seconds offset 5m`,
	`timestamp(rpc_duration_seconds)`,
	`ooo_gauge`,
	`ooo_gauge{room="north"}`,
	`count_over_time(ooo_gauge[5m])`,
	`avg_over_time(ooo_gauge[5m])`,
	`max_over_time(ooo_gauge[90s])`,
	`deriv(ooo_gauge[5m])`,
	`changes(ooo_gauge[10m])`,
	`rate(ooo_requests_total[5m])`,
	`increase(ooo_requests_total[1m])`,
	`irate(ooo_requests_total[1m])`,
	`resets(ooo_requests_total[40m])`,
	`sum by (room) (rate(ooo_requests_total[5m]))`,
	`timestamp(ooo_gauge)`,
	`ooo_gauge - ooo_gauge offset 15s`,
}

// TestPromQLNativeDiff remote-writes native histograms and out-of-order samples to Prometheus (with
// native histograms and an out-of-order window) and to Sprout (with the same window) and compares the answers
// of promqlNativeCorpus, range and instant.
func TestPromQLNativeDiff(t *testing.T) {
	bin := peerBinary(t, "SPROUT_PEER_PROMETHEUS")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: 2h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	startProcess(t, "prometheus", nil, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--enable-feature=native-histograms")
	prom := "http://" + addr
	waitReady(t, prom+"/-/ready", 60*time.Second)

	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	api := port()
	startProcess(t, "sprout", []string{
		"SPROUT_DATA=" + t.TempDir(), "SPROUT_HTTP_ENDPOINT=" + api, "SPROUT_OTLP_GRPC_ENDPOINT=" + port(),
		"SPROUT_OTLP_HTTP_ENDPOINT=" + port(), "SPROUT_HEALTH_ENDPOINT=" + port(),
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)),
	}, sproutBinary(t), "--config=file:../../examples/configs/all-in-one.yaml", "--set=extensions::sprout_metrics::out_of_order_time_window=2h")
	sprout := "http://" + api
	waitReady(t, sprout+"/ready", 90*time.Second)

	base := time.Now().Add(-metricSpan - 5*time.Minute).Truncate(time.Minute)
	first, second := genNativeAndOOO(3, base)
	hdr := map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	for _, series := range [][]prompb.TimeSeries{first, second} {
		raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{prom, sprout} {
			post(t, u+"/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw), hdr)
		}
	}
	start, end := base, base.Add(metricSpan)
	tl := &tally{name: "PromQL native histograms and out-of-order"}
	for _, q := range promqlNativeCorpus {
		for _, r := range []struct {
			path string
			p    url.Values
		}{
			{"/api/v1/query_range", url.Values{"query": {q}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"60"}}},
			{"/api/v1/query", url.Values{"query": {q}, "time": {fmt.Sprint(base.Add(20*time.Minute + 30*time.Second).Unix())}}},
		} {
			pc, pb := get(prom+r.path, r.p)
			sc, sb := get(sprout+r.path, r.p)
			tl.add(r.path, r.p, canonical(pc, pb), canonical(sc, sb))
		}
	}
	for _, r := range tl.reports {
		t.Log(r)
	}
	t.Log(tl.summary())
	// Both must hold every out-of-order sample: a count over the whole span sees all of them.
	q := url.Values{"query": {`count_over_time(ooo_gauge[45m])`}, "time": {fmt.Sprint(end.Unix())}}
	if c, b := get(sprout+"/api/v1/query", q); c != 200 || !strings.Contains(string(b), fmt.Sprintf(`"%d"`, int(metricSpan/(15*time.Second)))) {
		t.Errorf("Sprout did not keep the out-of-order samples: %d %s", c, b)
	}
	if got, floor := tl.counts[equal]+tl.counts[equalTies], equalFloor[tl.name]; got < floor {
		t.Errorf("%s: %d equal answers, fewer than the floor of %d", tl.name, got, floor)
	}
}
