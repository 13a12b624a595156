package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostileQueryBoundMiB is how much the server's resident set may grow over the whole run of hostile queries
// (the review saw +17 GB from one PromQL subquery, +3.8 GB from a smaller one).
const hostileQueryBoundMiB = 300

// TestHostileQueries sends the queries of the hostile-input review to the default all-in-one binary (no auth):
// each is refused before evaluation, or answered within its budgets, and the process's memory stays bounded.
func TestHostileQueries(t *testing.T) {
	env, api := defaultEnv(t)
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)
	pid := p.cmd.Process.Pid

	// 50,000 log lines over the last 12 hours, for the LogQL attack; pushed before the baseline is taken.
	now := time.Now()
	pushHostileLogs(t, api, now, 50000, 12*time.Hour)
	base := procStatusKiB(t, pid, "VmRSS:")
	t.Logf("baseline RSS %d MiB", base>>10)

	type check struct {
		name, path string
		status     int
		body       string // a substring of the answer
	}
	promql := func(q string) string { return "/api/v1/query?query=" + url.QueryEscape(q) }
	for _, c := range []check{
		// Prometheus' engine allocates per-step arrays for a subquery before any sample limit applies.
		{"promql subquery 30d at 1ms", promql(`sum_over_time(vector(1)[30d:1ms])`), 400, `"errorType":"bad_data"`},
		{"promql subquery 1d at 1ms", promql(`sum_over_time(vector(1)[1d:1ms])`), 400, "max_subquery_points_per_series"},
		{"promql nested subqueries", promql(`max_over_time(avg_over_time(vector(1)[1d:1s])[1d:1h])`), 400, "max_subquery_points_per_series"},
		{"promql subquery in a range query", "/api/v1/query_range?query=" + url.QueryEscape(`max_over_time(vector(1)[1h:1s])`) +
			fmt.Sprintf("&start=%d&end=%d&step=3600", now.Add(-30*24*time.Hour).Unix(), now.Unix()), 400, "max_subquery_points_per_series"},
		{"promql a month at 1m passes", promql(`max_over_time(vector(1)[30d:1m])`), 200, `"status":"success"`},
		// The tail's first frame is a log query: the same entry limit applies, refused before the upgrade.
		{"tail limit 1e9 from 1970", "/loki/api/v1/tail?query=" + url.QueryEscape(`{app="hostile"}`) + "&limit=1000000000&start=0", 400, "max_entries_limit_per_query"},
		{"logql over max_query_length", "/loki/api/v1/query_range?query=" + url.QueryEscape(`count_over_time({app="hostile"}[1m])`) +
			fmt.Sprintf("&start=%d&end=%d&step=3600", now.Add(-60*24*time.Hour).Unix(), now.Unix()), 400, "max_query_length"},
		// TraceQL metrics: a range of centuries used to overflow the step count.
		{"traceql metrics steps", "/api/metrics/query_range?q=" + url.QueryEscape(`{ } | rate()`) + "&start=1&end=100000000000000&step=1s", 400, "max_points_per_series"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := hostileGet(t, api+c.path, 0)
			if status != c.status || !strings.Contains(body, c.body) {
				t.Fatalf("%d %s, want %d containing %q", status, trunc(body, 300), c.status, c.body)
			}
		})
	}

	// LogQL quantile_over_time over a 4h window at 11,000 steps: answered (the window slides instead of being
	// copied and sorted per step), and a client that leaves early leaves no work behind.
	t.Run("logql quantile_over_time at 11000 steps", func(t *testing.T) {
		start, end := now.Add(-12*time.Hour), now
		step := end.Sub(start) / 10999
		q := "/loki/api/v1/query_range?query=" + url.QueryEscape(`quantile_over_time(0.99, {app="hostile"} | logfmt | unwrap v [4h])`) +
			fmt.Sprintf("&start=%d&end=%d&step=%s", start.UnixNano(), end.UnixNano(), strconv.FormatFloat(step.Seconds(), 'f', 3, 64))
		cpu0 := procCPU(t, pid)
		t0 := time.Now()
		status, body := hostileGet(t, api+q, 0)
		if status != 200 || !strings.Contains(body, `"resultType":"matrix"`) {
			t.Fatalf("%d %s", status, trunc(body, 300))
		}
		t.Logf("answered in %s, %.1f s of CPU", time.Since(t0).Round(time.Millisecond), procCPU(t, pid)-cpu0)
		// The same query with a client that gives up after 50 ms: whatever CPU it used, it stops once the
		// client is gone (reported, not asserted: the machine is shared).
		cpu1 := procCPU(t, pid)
		_, _ = hostileGet(t, api+q, 50*time.Millisecond)
		time.Sleep(2 * time.Second)
		cpu2 := procCPU(t, pid)
		time.Sleep(2 * time.Second)
		t.Logf("client left after 50ms: %.2f s of CPU in the 2 s after, %.2f s in the 2 s after that", cpu2-cpu1, procCPU(t, pid)-cpu2)
	})

	// Each store's query limiter reports on /metrics.
	if _, body := hostileGet(t, api+"/metrics", 0); !strings.Contains(body, `sprout_query_running{store="metrics"}`) ||
		!strings.Contains(body, `sprout_query_running{store="logs"}`) || !strings.Contains(body, `sprout_query_running{store="traces"}`) {
		t.Errorf("/metrics lacks a store's sprout_query_running")
	}

	if hwm := procStatusKiB(t, pid, "VmHWM:"); (hwm-base)>>10 > rssBoundMiB(hostileQueryBoundMiB) {
		t.Errorf("peak RSS %d MiB is %d MiB over the baseline %d MiB (bound %d MiB)", hwm>>10, (hwm-base)>>10, base>>10, rssBoundMiB(hostileQueryBoundMiB))
	} else {
		t.Logf("peak RSS %d MiB (baseline %d MiB)", hwm>>10, base>>10)
	}
}

// pushHostileLogs pushes n lines "v=<k>" of stream {app="hostile"}, spread evenly over the span before now.
func pushHostileLogs(t *testing.T, api string, now time.Time, n int, span time.Duration) {
	t.Helper()
	const batch = 10000
	for off := 0; off < n; off += batch {
		var b bytes.Buffer
		b.WriteString(`{"streams":[{"stream":{"app":"hostile"},"values":[`)
		for k := off; k < min(n, off+batch); k++ {
			if k > off {
				b.WriteByte(',')
			}
			ts := now.Add(-span + time.Duration(k)*span/time.Duration(n))
			fmt.Fprintf(&b, `["%d","v=%d"]`, ts.UnixNano(), k%1000)
		}
		b.WriteString(`]}]}`)
		resp, err := http.Post(api+"/loki/api/v1/push", "application/json", &b)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("push: %d %s", resp.StatusCode, body)
		}
	}
}

// hostileGet GETs url; with a timeout the client gives up (and the status is 0).
func hostileGet(t *testing.T, u string, timeout time.Duration) (int, string) {
	t.Helper()
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if timeout > 0 {
			return 0, ""
		}
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// procStatusKiB reads one "<key> <n> kB" line of /proc/<pid>/status.
func procStatusKiB(t *testing.T, pid int, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// procCPU is the process's user+system CPU time in seconds.
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which is in parentheses and may hold spaces): utime is the 14th field.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ is 100 on Linux)
}
