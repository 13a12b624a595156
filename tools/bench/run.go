package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sprout-otel/sprout/tools/internal/loadgen"
)

// Run is one system at one data size: what the load achieved, what the server spent, and what it answers.
type Run struct {
	Signal  string `json:"signal"`
	System  string `json:"system"`
	Version string `json:"version"`
	Scale   int    `json:"scale"`
	Offered int64  `json:"offered"` // items the load tried to send
	Unit    string `json:"unit"`    // spans, lines, samples

	LoadBefore   [3]float64 `json:"load_before"` // /proc/loadavg at the start of the load
	LoadAfter    [3]float64 `json:"load_after"`
	ReadySeconds float64    `json:"ready_seconds"`

	Acked         int64   `json:"acked"`
	FailedReqs    int64   `json:"failed_requests"`
	FirstErr      string  `json:"first_error,omitempty"`
	Seconds       float64 `json:"seconds"`
	ItemsPerSec   float64 `json:"items_per_sec"`
	ServerCPU     float64 `json:"server_cpu_seconds"`
	CPUPerMillion float64 `json:"server_cpu_seconds_per_million"`
	ClientCPU     float64 `json:"client_cpu_seconds"`
	PeakRSSIngest int64   `json:"peak_rss_ingest_bytes"` // VmHWM right after the load
	PeakRSS       int64   `json:"peak_rss_bytes"`        // VmHWM after the count and the queries
	// The peaks of RssAnon and RssFile, sampled every 50 ms from the start: while ingesting, and over the whole
	// run. Their sum can be below VmHWM (the two need not peak together) but says what the peak is made of.
	PeakAnonIngest int64   `json:"peak_rss_anon_ingest_bytes,omitempty"`
	PeakFileIngest int64   `json:"peak_rss_file_ingest_bytes,omitempty"`
	PeakAnon       int64   `json:"peak_rss_anon_bytes,omitempty"`
	PeakFile       int64   `json:"peak_rss_file_bytes,omitempty"`
	DiskBytes      int64   `json:"disk_bytes"` // data directory after the count and queries
	DiskShutdown   int64   `json:"disk_bytes_after_shutdown"`
	CleanStop      bool    `json:"clean_stop"` // exited on SIGTERM within the grace period
	StopSeconds    float64 `json:"stop_seconds"`

	Count   Count   `json:"count"`
	Queries []Query `json:"queries"`
	Error   string  `json:"error,omitempty"` // the run could not be completed
}

// Count is the check that every acknowledged item is queryable.
type Count struct {
	Method  string  `json:"method"` // the query that counted
	Want    int64   `json:"want"`
	Got     int64   `json:"got"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"` // from the end of the load until the count matched (or gave up)
	Err     string  `json:"error,omitempty"`
	Polls   int     `json:"polls"`
	// Above is the largest count seen above Want while polling: items counted twice, or stored although refused
	// (a count above Want that later settles at Want is a transient double count).
	Above    int64 `json:"above,omitempty"`
	Sampled  int   `json:"sampled,omitempty"` // traces: ids looked up
	Complete int   `json:"complete,omitempty"`
}

// Query is one fixed query, run a few times.
type Query struct {
	Name   string    `json:"name"`
	Query  string    `json:"query"`
	Runs   []float64 `json:"runs_ms"`
	P50    float64   `json:"p50_ms"`
	P99    float64   `json:"p99_ms,omitempty"` // trace by id only
	Result string    `json:"result"`
	Err    string    `json:"error,omitempty"`
	// CPU50 is the median of the server's CPU time (user + system) over each run, where measured.
	CPU50 float64 `json:"server_cpu_p50_ms,omitempty"`
}

// ingestPeaks records the memory peaks at the end of the load.
func ingestPeaks(s *server, r *Run) {
	r.PeakRSSIngest = loadgen.ProcStatusBytes(s.pid(), "VmHWM")
	if s.rss != nil {
		r.PeakAnonIngest, r.PeakFileIngest = s.rss.peaks()
	}
}

func loadavg() [3]float64 {
	var l [3]float64
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }

// timed runs f n times and fills q's latencies.
func timed(q *Query, n int, f func() (string, error)) { timedOn(q, n, 0, f) }

// timedOn is timed that also takes the median of the CPU time server pid spent over each run (none when pid
// is 0): on a loaded machine it tells what a query costs better than its wall time.
func timedOn(q *Query, n, pid int, f func() (string, error)) {
	var cpu loadgen.Latencies
	for i := 0; i < n; i++ {
		c0 := loadgen.ProcCPU(pid)
		t0 := time.Now()
		res, err := f()
		d := time.Since(t0)
		if err != nil {
			q.Err = err.Error()
			return
		}
		cpu = append(cpu, time.Duration((loadgen.ProcCPU(pid)-c0)*float64(time.Second)))
		q.Runs = append(q.Runs, ms(d))
		q.Result = res
	}
	lat := make(loadgen.Latencies, 0, len(q.Runs))
	for _, r := range q.Runs {
		lat = append(lat, time.Duration(r*float64(time.Millisecond)))
	}
	q.P50 = ms(lat.Sort().Pct(0.5))
	if pid > 0 && len(cpu) > 0 {
		q.CPU50 = ms(cpu.Sort().Pct(0.5))
	}
}

// poll repeats count until it reaches want or the deadline passes. A count above want does not end it: it is
// recorded (Above), and polling goes on to tell a transient double count from a lasting one.
func poll(ctx context.Context, c *Count, deadline time.Duration, count func() (int64, error)) {
	t0 := time.Now()
	for {
		got, err := count()
		c.Polls++
		c.Got, c.Seconds = got, time.Since(t0).Seconds()
		c.Err = ""
		if err != nil {
			c.Err = err.Error()
		}
		if err == nil && got > c.Want {
			c.Above = max(c.Above, got)
		}
		if err == nil && got == c.Want {
			c.OK = true
			return
		}
		if time.Since(t0) > deadline || ctx.Err() != nil {
			return
		}
		time.Sleep(pollEvery)
	}
}

// pollEvery is the pause between two count queries.
var pollEvery = time.Second

func getJSON(ctx context.Context, u string, v any) error {
	code, body, err := loadgen.HTTPGet(ctx, u, "")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("status %d: %s", code, bytes.TrimSpace(body[:min(len(body), 300)]))
	}
	return json.Unmarshal(body, v)
}

// --- traces ---------------------------------------------------------------------------------------------

const spansPerTrace = 10

func tracesLoad(o options, sc int) loadgen.TraceLoad {
	return loadgen.TraceLoad{Workers: o.workers, Spans: int64(o.base * sc), Batch: 500, SpansPerTrace: spansPerTrace,
		Rate: o.traceRate, KeepIDs: true}
}

func runTraces(ctx context.Context, o options, s *server, r *Run) error {
	l := tracesLoad(o, r.Scale)
	l.Addr = s.ep.Ingest
	cpu0 := loadgen.ProcCPU(s.pid())
	res, err := l.Run(ctx)
	if err != nil {
		return err
	}
	r.ServerCPU = loadgen.ProcCPU(s.pid()) - cpu0
	r.Acked, r.FailedReqs, r.FirstErr, r.Seconds, r.ClientCPU = res.Sent, res.Failed, res.LastErr, res.Elapsed.Seconds(), res.ClientCPU
	ingestPeaks(s, r)
	from, to := res.Start.Add(-time.Minute), time.Now().Add(time.Minute)

	// Every acknowledged span, counted by a TraceQL metrics instant query over the run; and a sample of the
	// acknowledged traces fetched by id, each of which must hold all its spans.
	r.Count = Count{Method: `{ resource.service.name = "traceload" } | count_over_time()`, Want: res.Sent}
	poll(ctx, &r.Count, o.settle, func() (int64, error) {
		v := neturl.Values{"q": {r.Count.Method}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)}}
		var ans struct {
			Series []struct {
				Value float64 `json:"value"`
			} `json:"series"`
		}
		if err := getJSON(ctx, s.ep.Query+"/api/metrics/query?"+v.Encode(), &ans); err != nil {
			return 0, err
		}
		var n float64
		for _, s := range ans.Series {
			n += s.Value
		}
		return int64(n), nil
	})
	ids := loadgen.SpreadPick(res.IDs, o.lookups)
	lk := loadgen.LookupTraces(ctx, s.ep.Query, "", ids, spansPerTrace)
	r.Count.Sampled, r.Count.Complete = len(ids), lk.Found-lk.Short
	if r.Count.Complete != len(ids) {
		r.Count.OK = false
	}
	q := Query{Name: "trace by id", Query: "GET /api/traces/<id>", P50: ms(lk.Latency.Pct(0.5)), P99: ms(lk.Latency.Pct(0.99)),
		Result: fmt.Sprintf("%d found, %d complete, %d missing, %d failed", lk.Found, lk.Found-lk.Short, lk.Missing, lk.Failed)}
	for _, d := range lk.Latency {
		q.Runs = append(q.Runs, ms(d))
	}
	r.Queries = append(r.Queries, q)
	for _, tq := range []struct{ name, q string }{
		{"service and duration (no match)", `{ resource.service.name = "x" && duration > 500ms }`},
		{"name and duration (column scan, no match)", `{ name = "operation-3" && duration > 5ms }`},
		{"name (20 of many)", `{ name = "operation-9" }`},
	} {
		q := Query{Name: tq.name, Query: tq.q}
		timed(&q, o.queryRuns, func() (string, error) {
			sr := loadgen.SearchTraces(ctx, s.ep.Query, "", tq.q, from, to)
			return fmt.Sprintf("%d traces", sr.Traces), sr.Err
		})
		r.Queries = append(r.Queries, q)
	}
	return nil
}

// lokiCount sums the values of a Loki instant query at t.
func lokiCount(ctx context.Context, base, query string, t time.Time) (int64, error) {
	v := neturl.Values{"query": {query}, "time": {strconv.FormatInt(t.UnixNano(), 10)}}
	var ans struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(ctx, base+"/loki/api/v1/query?"+v.Encode(), &ans); err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ans.Data.Result {
		if len(e.Value) == 2 {
			str, _ := e.Value[1].(string)
			f, _ := strconv.ParseFloat(str, 64)
			n += int64(f)
		}
	}
	return n, nil
}

// --- logs -----------------------------------------------------------------------------------------------

type logPlan struct {
	shape  loadgen.LogShape
	bodies [][]loadgen.LogBody
	total  int64
}

func planLogs(o options, sc int) (logPlan, error) {
	const batch = 500
	total := o.base * sc
	perWorker := (total + batch*o.workers - 1) / (batch * o.workers)
	sh := loadgen.LogShape{Batch: batch, Streams: 10, LineSize: 200, Base: time.Now().Add(-time.Minute)}
	bodies, err := loadgen.PrepareLogBodies(o.workers, perWorker, sh, "protobuf")
	return logPlan{sh, bodies, int64(perWorker * batch * o.workers)}, err
}

func runLogs(ctx context.Context, o options, s *server, r *Run, p logPlan) error {
	cpu0 := loadgen.ProcCPU(s.pid())
	res, err := loadgen.LogLoad{URL: s.ep.Ingest, Format: "protobuf", Once: true, Bodies: p.bodies}.Run(ctx)
	if err != nil {
		return err
	}
	r.ServerCPU = loadgen.ProcCPU(s.pid()) - cpu0
	r.Acked, r.FailedReqs, r.FirstErr, r.Seconds, r.ClientCPU = res.Lines, res.FailedPushes, res.FirstErr, res.Elapsed.Seconds(), res.ClientCPU
	ingestPeaks(s, r)
	from, to := p.shape.Base.Add(-time.Minute), time.Now().Add(time.Minute)
	rng := fmt.Sprintf("%dm", int(to.Sub(from).Minutes())+1)
	vl := s.sys.Name == "victorialogs"

	r.Count = Count{Want: res.Lines}
	if vl {
		r.Count.Method = `{env="bench"} | stats count() n`
	} else {
		r.Count.Method = `sum(count_over_time({env="bench"}[` + rng + `]))`
	}
	poll(ctx, &r.Count, o.settle, func() (int64, error) {
		if vl {
			return vlCount(ctx, s.ep.Query, r.Count.Method)
		}
		return lokiCount(ctx, s.ep.Query, r.Count.Method, to)
	})

	// the count of every line, timed once it is right
	cq := Query{Name: "count of every line", Query: r.Count.Method}
	timedOn(&cq, o.queryRuns, s.pid(), func() (string, error) {
		var n int64
		var err error
		if vl {
			n, err = vlCount(ctx, s.ep.Query, r.Count.Method)
		} else {
			n, err = lokiCount(ctx, s.ep.Query, r.Count.Method, to)
		}
		return fmt.Sprintf("%d lines", n), err
	})
	r.Queries = append(r.Queries, cq)

	// a trace id from the middle of the run: 10 lines
	tid := loadgen.LogTraceID(len(p.bodies)*len(p.bodies[0])/2, 0)
	type lq struct{ name, logql, logsql string }
	for _, q := range []lq{
		{"trace id lookup (10 lines)", `{env="bench"} | trace_id="` + tid + `"`, `{env="bench"} trace_id:="` + tid + `"`},
		{"line filter, limit 100", `{env="bench"} |= "timeout retry"`, `{env="bench"} "timeout retry" | limit 100`},
	} {
		qq := Query{Name: q.name, Query: q.logql}
		if vl {
			qq.Query = q.logsql
		}
		timedOn(&qq, o.queryRuns, s.pid(), func() (string, error) {
			if vl {
				n, err := vlLines(ctx, s.ep.Query+"/select/logsql/query?"+neturl.Values{"query": {q.logsql}, "limit": {"100"}}.Encode())
				return fmt.Sprintf("%d lines", n), err
			}
			v := neturl.Values{"query": {q.logql}, "start": {strconv.FormatInt(from.UnixNano(), 10)}, "end": {strconv.FormatInt(to.UnixNano(), 10)}, "limit": {"100"}, "direction": {"backward"}}
			var ans struct {
				Data struct {
					Result []struct {
						Values [][]any `json:"values"`
					} `json:"result"`
				} `json:"data"`
			}
			if err := getJSON(ctx, s.ep.Query+"/loki/api/v1/query_range?"+v.Encode(), &ans); err != nil {
				return "", err
			}
			n := 0
			for _, st := range ans.Data.Result {
				n += len(st.Values)
			}
			return fmt.Sprintf("%d lines", n), nil
		})
		r.Queries = append(r.Queries, qq)
	}
	gq := Query{Name: "grouped count, 1m step", Query: `sum by (service_name) (count_over_time({env="bench"} |= "timeout" [1m]))`}
	if vl {
		gq.Query = `{env="bench"} timeout | stats by (service_name) count() n`
	}
	timedOn(&gq, o.queryRuns, s.pid(), func() (string, error) {
		v := neturl.Values{"query": {gq.Query}, "start": {strconv.FormatInt(from.UnixNano(), 10)}, "end": {strconv.FormatInt(to.UnixNano(), 10)}, "step": {"60s"}}
		path := "/loki/api/v1/query_range?"
		if vl {
			v.Set("start", from.Format(time.RFC3339))
			v.Set("end", to.Format(time.RFC3339))
			v.Set("step", "1m")
			path = "/select/logsql/stats_query_range?"
		}
		var ans struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(ctx, s.ep.Query+path+v.Encode(), &ans); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d series", len(ans.Data.Result)), nil
	})
	r.Queries = append(r.Queries, gq)
	return nil
}

// vlCount runs a LogsQL query ending in `stats count() n` and returns n.
func vlCount(ctx context.Context, base, q string) (int64, error) {
	code, body, err := loadgen.HTTPGet(ctx, base+"/select/logsql/query?"+neturl.Values{"query": {q}}.Encode(), "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("status %d: %s", code, bytes.TrimSpace(body))
	}
	var row struct {
		N string `json:"n"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, nil
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &row); err != nil {
		return 0, fmt.Errorf("read the count %q: %w", body, err)
	}
	return strconv.ParseInt(row.N, 10, 64)
}

// vlLines counts the JSON lines of a LogsQL query answer.
func vlLines(ctx context.Context, u string) (int, error) {
	code, body, err := loadgen.HTTPGet(ctx, u, "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("status %d: %s", code, bytes.TrimSpace(body))
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			n++
		}
	}
	return n, sc.Err()
}

// --- metrics --------------------------------------------------------------------------------------------

func metricsLoad(o options, sc int) loadgen.MetricLoad {
	rounds := o.metricRounds
	if rounds < 1 {
		rounds = 10
	}
	const interval = 10 * time.Second
	// The data ends at least 8 minutes before the load starts, as it did with the 10 rounds it first had.
	back := max(10*time.Minute, time.Duration(rounds)*interval+8*time.Minute)
	return loadgen.MetricLoad{Series: o.base / rounds * sc, Batch: 500, Workers: o.workers, Interval: interval,
		Start: time.Now().Add(-back).Truncate(time.Minute), Rounds: rounds, Values: "counter", UniqueLabel: true}
}

func runMetrics(ctx context.Context, o options, s *server, r *Run) error {
	l := metricsLoad(o, r.Scale)
	l.URL = s.ep.Ingest
	cpu0 := loadgen.ProcCPU(s.pid())
	res, err := l.Run(ctx)
	if err != nil {
		return err
	}
	r.ServerCPU = loadgen.ProcCPU(s.pid()) - cpu0
	r.Acked, r.FailedReqs, r.FirstErr, r.Seconds, r.ClientCPU = res.Samples, res.Failures, res.FirstErr, res.Elapsed.Seconds(), res.ClientCPU
	ingestPeaks(s, r)
	now := time.Now()
	rng := fmt.Sprintf("%dm", int(now.Sub(l.Start).Minutes())+2)
	dataEnd := l.Start.Add(time.Duration(l.Rounds) * l.Interval)

	r.Count = Count{Method: `sum(count_over_time({job="metricload"}[` + rng + `]))`, Want: res.Samples}
	poll(ctx, &r.Count, o.settle, func() (int64, error) {
		_, pr, err := loadgen.PromQuery(ctx, s.ep.Query, "", r.Count.Method, now, 0, 0)
		if err != nil || len(pr.Values) == 0 {
			return 0, err
		}
		return int64(pr.Values[0]), nil
	})
	for _, mq := range []struct{ name, q string }{
		{"sum by (instance) of rate, 15s step", `sum by (instance) (rate({job="metricload"}[1m]))`},
		{"one metric name, 15s step", `max_over_time(load_metric_7[1m])`},
	} {
		q := Query{Name: mq.name, Query: mq.q}
		timedOn(&q, o.queryRuns, s.pid(), func() (string, error) {
			_, pr, err := loadgen.PromQuery(ctx, s.ep.Query, "", mq.q, dataEnd.Add(time.Minute), time.Duration(l.Rounds)*l.Interval+time.Minute, 15*time.Second)
			return fmt.Sprintf("%d series, %d points", pr.Series, pr.Points), err
		})
		r.Queries = append(r.Queries, q)
	}
	return nil
}
