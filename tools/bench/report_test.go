package main

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func sampleResult() Result {
	mk := func(sys string, scale int, rate, cpu float64, rss, disk int64, p50 float64) Run {
		return Run{Signal: "logs", System: sys, Scale: scale, Unit: "lines", Offered: int64(100_000 * scale), Acked: int64(100_000 * scale),
			ItemsPerSec: rate, CPUPerMillion: cpu, PeakRSS: rss, DiskShutdown: disk, Count: Count{OK: true, Want: 1, Got: 1},
			Queries: []Query{{Name: "trace id lookup", Runs: []float64{p50}, P50: p50, Result: "10 lines"}}}
	}
	return Result{Started: "2026-12-07T06:00:00Z", Command: "go run ./tools/bench -scales 1,10", Runs: []Run{
		mk("sprout", 1, 200_000, 4, 200<<20, 4<<20, 10),
		mk("loki", 1, 50_000, 20, 400<<20, 30<<20, 100),
		mk("sprout", 10, 300_000, 5, 300<<20, 40<<20, 12),
		mk("loki", 10, 60_000, 22, 800<<20, 300<<20, 1000),
		{Signal: "logs", System: "victorialogs", Scale: 10, Unit: "lines", Error: "victorialogs not ready after 2m0s"},
	}}
}

func TestMarkdownRatios(t *testing.T) {
	md := markdown(sampleResult())
	for _, want := range []string{
		"| 1× | loki | 4.00× | 0.20× | 0.50× | 0.13× | 0.10× |",
		"| 10× | loki | 5.00× | 0.23× | 0.38× | 0.13× | 0.012× |",
		"| 10× | victorialogs | error: victorialogs not ready after 2m0s |",
		"go run ./tools/bench -scales 1,10",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestPlotIsWellFormed(t *testing.T) {
	svg := plot(sampleResult(), "logs")
	d := xml.NewDecoder(strings.NewReader(svg))
	lines, points := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plot is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				lines++
			case "circle":
				points++
			}
		}
	}
	// five panels; sprout and loki have two sizes each (a line each), victorialogs failed (nothing drawn)
	if lines != 10 || points != 20 {
		t.Errorf("%d lines and %d points, want 10 and 20", lines, points)
	}
	if plot(sampleResult(), "traces") != "" {
		t.Error("a signal without runs has a plot")
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {0.7, 1}, {1.2, 2}, {3, 5}, {7, 10}, {180_000, 200_000}, {1000, 1000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCommandLineHidesPaths(t *testing.T) {
	old := os.Args
	defer func() { os.Args = old }()
	os.Args = []string{"/tmp/x/bench", "-sprout", "/home/me/sprout", "-tempo=/opt/peers/tempo", "-out", "docs/benchmarks", "-scales", "1,10"}
	want := "go run ./tools/bench -sprout sprout -tempo=tempo -out docs/benchmarks -scales 1,10"
	if got := commandLine(); got != want {
		t.Errorf("commandLine = %q, want %q", got, want)
	}
}

func TestVictoriaLogsAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch q := r.URL.Query().Get("query"); {
		case strings.Contains(q, "stats count()"):
			_, _ = io.WriteString(w, `{"n":"1000000"}`+"\n")
		case strings.Contains(q, "empty"):
		case strings.Contains(q, "bad"):
			http.Error(w, "cannot parse query", http.StatusBadRequest)
		default:
			_, _ = io.WriteString(w, "{\"_msg\":\"a\"}\n{\"_msg\":\"b\"}\n\n{\"_msg\":\"c\"}\n")
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if n, err := vlCount(ctx, srv.URL, `{env="bench"} | stats count() n`); err != nil || n != 1_000_000 {
		t.Errorf("vlCount = %d, %v", n, err)
	}
	if n, err := vlCount(ctx, srv.URL, `empty`); err != nil || n != 0 {
		t.Errorf("vlCount of nothing = %d, %v", n, err)
	}
	if _, err := vlCount(ctx, srv.URL, `bad`); err == nil {
		t.Error("vlCount: a 400 is not an error")
	}
	if n, err := vlLines(ctx, srv.URL+"/select/logsql/query?query=x"); err != nil || n != 3 {
		t.Errorf("vlLines = %d, %v", n, err)
	}
}

func TestPollRecordsOvercount(t *testing.T) {
	pollEvery = 0
	for _, tc := range []struct {
		name   string
		counts []int64
		ok     bool
		above  int64
		polls  int
	}{
		{"settles", []int64{5, 10}, true, 0, 2},
		{"transient double count, then settles", []int64{5, 12, 10}, true, 12, 3},
		{"never settles", []int64{11, 11, 11, 11}, false, 11, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			c := Count{Want: 10}
			// the deadline is never reached in the first three cases: each ends on a match or runs out of
			// counts, after which count reports the last value and the context ends the loop
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			poll(ctx, &c, time.Hour, func() (int64, error) {
				v := tc.counts[min(i, len(tc.counts)-1)]
				i++
				if i >= len(tc.counts) {
					cancel()
				}
				return v, nil
			})
			if c.OK != tc.ok || c.Above != tc.above || c.Polls != tc.polls {
				t.Errorf("got ok=%v above=%d polls=%d, want %v %d %d", c.OK, c.Above, c.Polls, tc.ok, tc.above, tc.polls)
			}
		})
	}
}
