// Command bench runs each signal's load against Sprout and each peer, one server at a time on the same machine,
// at one or more data sizes, and writes what it measured as JSON, a Markdown table and one SVG plot per signal:
//
//	traces   Sprout vs Tempo                       OTLP gRPC, 500-span requests of 10-span traces
//	logs     Sprout vs Loki, VictoriaLogs          Loki push (snappy protobuf), 500 lines of ~200 B over 10 streams
//	metrics  Sprout vs Prometheus, VictoriaMetrics remote write 1.0, 500 series per request, 10 rounds of counters
//
// Data size 1× is -base items (100,000 spans, 100,000 lines, 10,000 active series × 10 samples); -scales 1,10,100
// draws the growth curves up to 10M spans, 10M lines and 1M active series. For every run it records items/s,
// server CPU-s per million items (/proc/<pid>/stat), peak RSS (VmHWM), bytes on disk, the load average before
// and after, the latency of a few fixed queries, and whether every acknowledged item is queryable (a count
// query over the run; for traces also a sample of traces by id, each of which must hold all its spans).
//
//	go build -o /tmp/sprout ./cmd/sprout
//	go run ./tools/bench -sprout /tmp/sprout -tempo $TEMPO -loki $LOKI -victoria-logs $VL \
//	    -prometheus /usr/bin/prometheus -victoria-metrics /usr/bin/victoria-metrics -scales 1,10 -out docs/benchmarks
//
// Peer binaries default to the SPROUT_PEER_* variables the peer tests use; a peer without a binary is skipped.
// Nothing of the peers is committed or fetched here.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	signals   []string
	scales    []int
	base      int
	workers   int
	lookups   int
	queryRuns int
	traceRate int
	settle    time.Duration
	grace     time.Duration
	ready     time.Duration
	workdir   string
	out       string
	keep      bool
	// metricRounds is how many samples each metric series gets: with -base, it sets the active series
	// (base/metricRounds) and the span the metric queries cover (metricRounds × 10 s).
	metricRounds int
}

// Result is the whole output of one invocation.
type Result struct {
	Started string  `json:"started"`
	Command string  `json:"command"`
	Machine Machine `json:"machine"`
	Runs    []Run   `json:"runs"`
}

// Machine is where the runs took place.
type Machine struct {
	CPUs     int    `json:"cpus"`
	MemBytes int64  `json:"mem_bytes"`
	Model    string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

func main() {
	var o options
	sproutBin := flag.String("sprout", os.Getenv("SPROUT_BIN"), "Sprout binary (required; env SPROUT_BIN)")
	tempoBin := flag.String("tempo", os.Getenv("SPROUT_PEER_TEMPO"), "Tempo binary (env SPROUT_PEER_TEMPO; empty: skipped)")
	lokiBin := flag.String("loki", os.Getenv("SPROUT_PEER_LOKI"), "Loki binary (env SPROUT_PEER_LOKI; empty: skipped)")
	vlBin := flag.String("victoria-logs", os.Getenv("SPROUT_PEER_VICTORIALOGS"), "VictoriaLogs binary (env SPROUT_PEER_VICTORIALOGS; empty: skipped)")
	promBin := flag.String("prometheus", os.Getenv("SPROUT_PEER_PROMETHEUS"), "Prometheus binary (env SPROUT_PEER_PROMETHEUS; empty: skipped)")
	vmBin := flag.String("victoria-metrics", os.Getenv("SPROUT_PEER_VICTORIAMETRICS"), "VictoriaMetrics binary (env SPROUT_PEER_VICTORIAMETRICS; empty: skipped)")
	signals := flag.String("signals", "traces,logs,metrics", "signals to run, in order")
	scales := flag.String("scales", "1", "data sizes as multiples of -base, e.g. 1,10,100")
	flag.IntVar(&o.base, "base", 100_000, "items at 1×: spans, log lines, samples (active series = base/10)")
	flag.IntVar(&o.workers, "workers", 4, "concurrent senders")
	flag.IntVar(&o.lookups, "lookups", 300, "traces fetched by id after each trace load")
	flag.IntVar(&o.queryRuns, "query-runs", 5, "runs of each fixed query")
	flag.IntVar(&o.traceRate, "trace-rate", 0, "spans/s offered to each trace system (0: as fast as it takes them), e.g. 100000 for issue 22's memory goal")
	flag.DurationVar(&o.settle, "settle", 3*time.Minute, "how long to wait for the count of acknowledged items to match")
	flag.DurationVar(&o.grace, "grace", 2*time.Minute, "how long a server may take to exit on SIGTERM before it is killed")
	flag.DurationVar(&o.ready, "ready-timeout", 2*time.Minute, "how long a server may take to become ready")
	flag.StringVar(&o.workdir, "workdir", os.TempDir(), "where each run's data directory is made (and removed)")
	flag.StringVar(&o.out, "out", "bench-out", "directory for bench.json, bench.md and <signal>.svg")
	flag.BoolVar(&o.keep, "keep", false, "keep each run's data directory")
	sproutEnv := flag.String("sprout-env", "", "comma-separated KEY=VALUE settings added to Sprout's environment only (e.g. GOGC=100), so the peers run as they are")
	cacheResults := flag.Bool("sprout-cache-results", false, "run Sprout's metrics store with its results cache on (frontend.cache_results)")
	flag.IntVar(&o.metricRounds, "metric-rounds", 10, "samples per metric series, 10 s apart: active series = base/metric-rounds, and the metric queries span them (e.g. -base 2400000 -metric-rounds 240: 10k series over 40 minutes)")
	from := flag.String("from", "", "run nothing: write bench.md and the plots again from this bench.json into -out")
	flag.Parse()
	if *from != "" {
		if err := rewrite(*from, o.out); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *sproutBin == "" {
		log.Fatal("-sprout: the Sprout binary is required")
	}
	o.signals = strings.Split(*signals, ",")
	for _, s := range strings.Split(*scales, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			log.Fatalf("-scales: %q is not a positive integer", s)
		}
		o.scales = append(o.scales, n)
	}
	if o.base < 1000 || o.workers < 1 {
		log.Fatal("-base must be at least 1000 and -workers positive")
	}
	if o.metricRounds < 1 || o.base/o.metricRounds < o.workers {
		log.Fatal("-metric-rounds must be positive and leave at least one series per sender")
	}
	for _, b := range []*string{sproutBin, tempoBin, lokiBin, vlBin, promBin, vmBin} {
		if *b == "" {
			continue
		}
		// servers run in their data directory, so a relative path must be made absolute first
		p, err := exec.LookPath(*b)
		if err == nil {
			p, err = filepath.Abs(p)
		}
		if err != nil {
			log.Fatalf("binary %s: %v", *b, err)
		}
		*b = p
	}
	systems := map[string][]system{
		"traces":  {sproutTraces(*sproutBin), tempo(*tempoBin)},
		"logs":    {sproutLogs(*sproutBin), loki(*lokiBin), victoriaLogs(*vlBin)},
		"metrics": {sproutMetrics(*sproutBin, *cacheResults), prometheus(*promBin), victoriaMetrics(*vmBin)},
	}
	if *sproutEnv != "" {
		env := strings.Split(*sproutEnv, ",")
		for _, kv := range env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				log.Fatalf("-sprout-env: %q is not KEY=VALUE", kv)
			}
		}
		for _, sys := range systems {
			sys[0].Env = env
		}
	}
	for _, sig := range o.signals {
		if systems[sig] == nil {
			log.Fatalf("-signals: unknown signal %q (want traces, logs, metrics)", sig)
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res := Result{Started: time.Now().UTC().Format(time.RFC3339), Command: commandLine(), Machine: machine()}
	versions := map[string]string{}
	plans := map[int]*logPlan{} // one set of log bodies per size, the same for every log system
	for _, sig := range o.signals {
		for _, sc := range o.scales {
			for _, sys := range systems[sig] {
				if sys.Bin == "" || ctx.Err() != nil {
					continue
				}
				if versions[sys.Bin] == "" {
					versions[sys.Bin] = version(sys.Bin)
				}
				r := runOne(ctx, o, sys, sc, plans)
				r.Version = versions[sys.Bin]
				log.Printf("%s %s %d×: %s", sig, sys.Name, sc, summary(r))
				res.Runs = append(res.Runs, r)
				if err := write(o.out, res); err != nil { // after every run, so an interrupted run keeps what it has
					log.Fatal(err)
				}
			}
		}
	}
	fmt.Print(markdown(res))
}

// runOne starts one system in a fresh directory, loads it, checks and queries it, and stops it.
func runOne(ctx context.Context, o options, sys system, sc int, plans map[int]*logPlan) Run {
	r := Run{Signal: sys.Signal, System: sys.Name, Scale: sc}
	var plan logPlan
	switch sys.Signal {
	case "traces":
		r.Unit, r.Offered = "spans", tracesLoad(o, sc).Spans
	case "logs":
		if plans[sc] == nil {
			p, err := planLogs(o, sc) // encoded before the server starts: not measured
			if err != nil {
				r.Error = err.Error()
				return r
			}
			for k := range plans { // the previous size's bodies are done with
				delete(plans, k)
			}
			plans[sc] = &p
		}
		plan = *plans[sc]
		r.Unit, r.Offered = "lines", plan.total
	case "metrics":
		l := metricsLoad(o, sc)
		r.Unit, r.Offered = "samples", int64(l.Series/l.Workers*l.Workers*l.Rounds)
	}
	dir, err := os.MkdirTemp(o.workdir, "bench-"+sys.Signal+"-"+sys.Name+"-")
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	s, ready, err := start(ctx, sys, dir, o.ready)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.ReadySeconds = ready.Seconds()
	s.rss = sampleRSS(s.pid(), 50*time.Millisecond)
	time.Sleep(2 * time.Second) // let start-up work (WAL replay, first compaction checks) finish before the clock
	r.LoadBefore = loadavg()
	switch sys.Signal {
	case "traces":
		err = runTraces(ctx, o, s, &r)
	case "logs":
		err = runLogs(ctx, o, s, &r, plan)
	case "metrics":
		err = runMetrics(ctx, o, s, &r)
	}
	if err != nil {
		r.Error = err.Error()
	}
	r.LoadAfter = loadavg()
	if r.Seconds > 0 {
		r.ItemsPerSec = float64(r.Acked) / r.Seconds
	}
	if r.Acked > 0 {
		r.CPUPerMillion = r.ServerCPU / float64(r.Acked) * 1e6
	}
	r.PeakRSS = max(r.PeakRSSIngest, procHWM(s))
	r.PeakAnon, r.PeakFile = s.rss.stop()
	r.DiskBytes = dirBytes(dir)
	clean, took := s.stop(o.grace)
	r.CleanStop, r.StopSeconds = clean, took.Seconds()
	r.DiskShutdown = dirBytes(dir)
	return r
}

func procHWM(s *server) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid()))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}

func summary(r Run) string {
	if r.Error != "" && r.Acked == 0 {
		return "error: " + r.Error
	}
	s := fmt.Sprintf("%d/%d %s acked, %.0f/s, %.2f CPU-s/M, peak RSS %s (ingest %s; anon/file %s/%s, ingest %s/%s), disk %s, count ok=%v (%d of %d)",
		r.Acked, r.Offered, r.Unit, r.ItemsPerSec, r.CPUPerMillion, mib(r.PeakRSS), mib(r.PeakRSSIngest), mib(r.PeakAnon), mib(r.PeakFile),
		mib(r.PeakAnonIngest), mib(r.PeakFileIngest), mib(r.DiskBytes), r.Count.OK, r.Count.Got, r.Count.Want)
	if r.Error != "" {
		s += "; error: " + r.Error
	}
	return s
}

// rewrite writes the table and plots of an earlier result again (after a change to how they are drawn).
func rewrite(path, dir string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return write(dir, res)
}

func write(dir string, res Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.md"), []byte(markdown(res)), 0o644); err != nil {
		return fmt.Errorf("write the table: %w", err)
	}
	for _, sig := range []string{"traces", "logs", "metrics"} {
		svg := plot(res, sig)
		if svg == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, sig+".svg"), []byte(svg), 0o644); err != nil {
			return fmt.Errorf("write the %s plot: %w", sig, err)
		}
	}
	return nil
}

// commandLine is the invocation with binary paths reduced to their base names, so that no machine's paths
// end up in the docs.
func commandLine() string {
	args := []string{"go run ./tools/bench"}
	for _, a := range os.Args[1:] {
		if k, v, ok := strings.Cut(a, "="); ok && filepath.IsAbs(v) {
			a = k + "=" + filepath.Base(v)
		} else if filepath.IsAbs(a) {
			a = filepath.Base(a)
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.Model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			m.MemBytes = kb << 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
