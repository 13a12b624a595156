package e2e

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// faultCycles is the number of kill cycles: 3 in CI, SPROUT_FAULT_CYCLES=20 for the long form.
func faultCycles(t *testing.T) int {
	cycles := 3
	if v := os.Getenv("SPROUT_FAULT_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SPROUT_FAULT_CYCLES=%q: want a positive integer", v)
		}
		cycles = n
	}
	return cycles
}

// TestKill9 sends traces (OTLP gRPC), samples (remote write) and log lines (Loki push) to the all-in-one
// binary, kills it with SIGKILL mid-stream, restarts it on the same data directory and checks that every item
// it acknowledged is there. CI runs 3 cycles; SPROUT_FAULT_CYCLES=20 runs the long form.
func TestKill9(t *testing.T) {
	cycles := faultCycles(t)
	env, api := defaultEnv(t)
	grpcAddr := envValue(env, "SPROUT_OTLP_GRPC_ENDPOINT")
	c := &client{}
	a := &acked{}
	for cycle := 0; cycle < cycles; cycle++ {
		p := startSprout(t, env)
		p.waitHTTP(api+"/ready", 60*time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); c.sendTraces(ctx, grpcAddr, "k", cycle, a) }()
		go func() { defer wg.Done(); c.sendSamples(ctx, api, "sprout_crash_test", cycle, a) }()
		go func() { defer wg.Done(); c.sendLines(ctx, api, "crash", cycle, a) }()
		// Let traffic flow, then kill mid-stream: wait until each signal has acknowledgements in this cycle
		// (bounded), so every cycle's kill lands while all three writers are busy.
		nt, ns, nl := a.counts()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			t2, s2, l2 := a.counts()
			if t2 > nt+50 && s2 > ns+50 && l2 > nl+50 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.kill()
		cancel()
		wg.Wait()
	}
	nt, ns, nl := a.counts()
	t.Logf("acknowledged before %d kills: %d traces, %d samples, %d log lines; refusals %v", cycles, nt, ns, nl, a.refused)
	if nt == 0 || ns == 0 || nl == 0 {
		t.Fatal("nothing was acknowledged; the test measured nothing")
	}

	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 120*time.Second)
	verifyAll(t, c, "kill -9 x"+strconv.Itoa(cycles), api, "sprout_crash_test", "crash", a)
}
