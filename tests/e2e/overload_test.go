package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// overloadArgs cap Sprout's own ingest so that 10× its sustainable rate can be offered from the same 2-core
// machine: the memory_limiter bounded at 512 MiB, the trace store's live bytes at 64 MiB, the per-tenant
// ingestion rates at 5k samples/s (metrics), 0.3 MB/s (logs) and 300 kB/s of OTLP (traces, about 2,500 spans/s of
// traceload's spans; the sustainable phase sends 1,500).
// The process runs with GOMAXPROCS=1.
var overloadArgs = []string{
	"--config", "sprout:all-in-one",
	"--set=processors.memory_limiter.limit_mib=512", "--set=processors.memory_limiter.spike_limit_mib=128",
	"--set=processors.memory_limiter.limit_percentage=0", "--set=processors.memory_limiter.spike_limit_percentage=0",
	"--set=extensions.sprout_traces.max_live_bytes=67108864",
	"--set=extensions.sprout_traces.limits.ingestion_rate_limit_bytes=300000", "--set=extensions.sprout_traces.limits.ingestion_burst_size_bytes=600000",
	"--set=extensions.sprout_metrics.limits.ingestion_rate=5000", "--set=extensions.sprout_metrics.limits.ingestion_burst_size=10000",
	"--set=extensions.sprout_logs.limits.ingestion_rate_mb=0.3", "--set=extensions.sprout_logs.limits.ingestion_burst_size_mb=0.5",
}

const overloadBoundMiB = 512

// TestOverload is a measurement run by hand, not in CI: SPROUT_OVERLOAD names a directory holding the
// traceload, metricload and logload binaries (go build -o DIR ./tools/...). It runs sustainable load
// (SPROUT_OVERLOAD_RATE spans/s, default 1500; metrics and logs below their limits), then 10× that
// for 30 s with every load tool unthrottled, then sustainable load again; tracked writers (one item per request)
// run throughout, and every item they had acknowledged is read back at the end. It logs peak RSS against the
// bound, the refusals with their retry hints, and the load tools' figures per phase.
func TestOverload(t *testing.T) {
	tools := os.Getenv("SPROUT_OVERLOAD")
	if tools == "" {
		t.Skip("SPROUT_OVERLOAD is not set (a directory with the traceload, metricload and logload binaries)")
	}
	rate := 1500
	if v := os.Getenv("SPROUT_OVERLOAD_RATE"); v != "" {
		rate, _ = strconv.Atoi(v)
	}
	env, api := defaultEnv(t)
	// GOMEMLIMIT keeps the Go heap under the bound between the memory_limiter's 1 s checks (which read the heap,
	// not the RSS that the bound is judged by).
	env = append(env, "GOMAXPROCS=1", fmt.Sprintf("GOMEMLIMIT=%dMiB", overloadBoundMiB*3/4))
	p := startSprout(t, env, overloadArgs...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	grpcAddr := envValue(env, "SPROUT_OTLP_GRPC_ENDPOINT")

	a := &acked{}
	tracked := &client{pace: 20 * time.Millisecond}
	stopTracked := ingest(tracked, env, api, "ovl", "sprout_overload", "overload", 1, a)

	run := func(phase string, d time.Duration, tenX bool) {
		var wg sync.WaitGroup
		out := make([]string, 3)
		start := func(i int, name string, args ...string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := exec.Command(filepath.Join(tools, name), args...).CombinedOutput()
				out[i] = fmt.Sprintf("%s: %s %v", name, strings.Join(strings.Fields(string(b)), " "), err)
			}()
		}
		secs := d.String()
		if tenX {
			start(0, "traceload", "-addr", grpcAddr, "-workers", "8", "-batch", "500", "-duration", secs, "-rate", fmt.Sprint(10*rate))
			// Timestamps from 10 minutes ago, 1 s apart per round: in bounds for the head the tracked writers started.
			start(1, "metricload", "-url", api+"/api/v1/write", "-workers", "4", "-series", "100000", "-batch", "2000", "-lookback", "10m", "-interval", "1s", "-duration", secs)
			start(2, "logload", "-url", api+"/loki/api/v1/push", "-workers", "4", "-duration", secs)
		} else {
			start(0, "traceload", "-addr", grpcAddr, "-workers", "2", "-batch", "500", "-duration", secs, "-rate", fmt.Sprint(rate))
		}
		// Probes during the phase: how a refusal looks, with its retry hint.
		hints := map[string]int{}
		probeCtx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		probe := &client{}
		for probeCtx.Err() == nil {
			series := make([]prompb.TimeSeries, 1000)
			now := time.Now().UnixMilli()
			for i := range series {
				series[i] = prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "probe"}, {Name: "i", Value: fmt.Sprint(i)}}, Samples: []prompb.Sample{{Value: 1, Timestamp: now}}}
			}
			raw, _ := (&prompb.WriteRequest{Timeseries: series}).Marshal()
			code, hdr, _ := probe.postFull(api+"/api/v1/write", "application/x-protobuf", snappy.Encode(nil, raw), map[string]string{
				"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0",
			})
			if code/100 != 2 {
				hints[fmt.Sprintf("remote write %d Retry-After=%q", code, hdr.Get("Retry-After"))]++
			}
			push := fmt.Sprintf(`{"streams":[{"stream":{"job":"probe"},"values":[["%d",%q]]}]}`, time.Now().UnixNano(), strings.Repeat("p", 200))
			code, hdr, _ = probe.postFull(api+"/loki/api/v1/push", "application/json", []byte(push), nil)
			if code/100 != 2 {
				hints[fmt.Sprintf("loki push %d Retry-After=%q", code, hdr.Get("Retry-After"))]++
			}
			for what, o := range otlpExportAll(t, probe, env, "probe", 200) {
				if o.code != "OK" && o.code != "200" {
					hints[fmt.Sprintf("OTLP %s %s retry=%q", what, o.code, o.retry)]++
				}
			}
			pause(probeCtx, 500*time.Millisecond)
		}
		wg.Wait()
		hwm := vmHWM(t, p.cmd.Process.Pid)
		t.Logf("FIGURE overload %s (%s): peak RSS %d MiB (bound %d MiB); %s | %s | %s; probe refusals %v; tracked refusals so far %v; load %s",
			phase, secs, hwm>>10, overloadBoundMiB, out[0], out[1], out[2], hints, a.refused, loadavg())
	}
	run("sustainable", 20*time.Second, false)
	run("10x", 30*time.Second, true)
	run("recovery", 20*time.Second, false)
	stopTracked()
	verifyAll(t, tracked, "overload", api, "sprout_overload", "overload", a)
	if hwm := vmHWM(t, p.cmd.Process.Pid); hwm>>10 > overloadBoundMiB {
		t.Errorf("peak RSS %d MiB is over the %d MiB bound", hwm>>10, overloadBoundMiB)
	}
}

// vmHWM is the process's peak resident set in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
