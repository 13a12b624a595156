package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestRunnerEndToEnd runs every signal at a small size against the Sprout binary in SPROUT_BIN and against each
// peer whose SPROUT_PEER_* variable is set, and requires that every acknowledged item was counted and every query
// answered. Skipped without SPROUT_BIN: it starts real servers.
func TestRunnerEndToEnd(t *testing.T) {
	bin := os.Getenv("SPROUT_BIN")
	if bin == "" {
		t.Skip("SPROUT_BIN is not set (go build -o /path/sprout ./cmd/sprout)")
	}
	o := options{base: 2000, workers: 2, lookups: 20, queryRuns: 1, settle: 2 * time.Minute, grace: 5 * time.Second,
		ready: 2 * time.Minute, workdir: t.TempDir()}
	systems := []system{sproutTraces(bin), sproutLogs(bin), sproutMetrics(bin, false)}
	for env, mk := range map[string]func(string) system{
		"SPROUT_PEER_TEMPO": tempo, "SPROUT_PEER_LOKI": loki, "SPROUT_PEER_VICTORIALOGS": victoriaLogs,
		"SPROUT_PEER_PROMETHEUS": prometheus, "SPROUT_PEER_VICTORIAMETRICS": victoriaMetrics,
	} {
		if p := os.Getenv(env); p != "" {
			systems = append(systems, mk(p))
		}
	}
	for _, sys := range systems {
		t.Run(sys.Signal+"/"+sys.Name, func(t *testing.T) {
			r := runOne(context.Background(), o, sys, 1, map[int]*logPlan{})
			if r.Error != "" {
				t.Fatalf("run: %s", r.Error)
			}
			if r.Acked != r.Offered || r.FailedReqs != 0 {
				t.Fatalf("acknowledged %d of %d (%d requests failed: %s)", r.Acked, r.Offered, r.FailedReqs, r.FirstErr)
			}
			if !r.Count.OK {
				t.Errorf("count: %+v", r.Count)
			}
			if r.PeakRSS == 0 || r.ServerCPU <= 0 {
				t.Errorf("no /proc figures: peak RSS %d, CPU %v", r.PeakRSS, r.ServerCPU)
			}
			if r.PeakAnon == 0 || r.PeakFile == 0 || r.PeakAnonIngest == 0 || r.PeakAnonIngest > r.PeakAnon {
				t.Errorf("RSS split not sampled: anon %d (ingesting %d), file %d", r.PeakAnon, r.PeakAnonIngest, r.PeakFile)
			}
			for _, q := range r.Queries {
				if q.Err != "" {
					t.Errorf("query %s: %s", q.Name, q.Err)
				}
			}
		})
	}
}
