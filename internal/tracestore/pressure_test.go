package tracestore

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// TestMemoryPressure: past the pressure point (half a block, or a quarter of max_live_bytes if less) the store
// stops waiting. Live traces are all cut once they alone hold that much, and waiting traces are written once
// they fill half a block; below it traces wait for their idle period and for a full block as before.
func TestMemoryPressure(t *testing.T) {
	const max, block = 1 << 20, 128 << 10 // pressure at half a block, 64 KiB (a quarter of max_live_bytes is 256 KiB)
	for _, tc := range []struct {
		name          string
		live, pending int64 // bytes held by live and pending traces
		wantCut       bool  // every live trace is cut although none is idle
		wantFlush     bool
	}{
		{name: "quiet", live: 40 << 10, pending: 16 << 10},
		{name: "live over pressure", live: 100 << 10, wantCut: true},
		{name: "held over pressure, half a block waiting", live: 30 << 10, pending: 70 << 10, wantFlush: true},
		{name: "held over pressure, little waiting", live: 60 << 10, pending: 30 << 10},
		{name: "full block waiting", live: 10 << 10, pending: block, wantFlush: true},
		{name: "over half of max_live_bytes", live: 40 << 10, pending: 600 << 10, wantCut: true, wantFlush: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.MaxLiveBytes, cfg.MaxBlockBytes = max, block
			s := openStore(t, cfg)
			defer s.closeNoFlush()
			in, err := s.instance(context.Background(), tn)
			if err != nil {
				t.Fatal(err)
			}
			now := s.now()
			in.mu.Lock()
			in.live[pcommon.TraceID{1}] = &liveTrace{id: pcommon.TraceID{1}, bytes: tc.live - traceOverhead, firstIn: now, lastIn: now}
			in.liveBytes = tc.live
			if tc.pending > 0 {
				in.pending = []*liveTrace{{id: pcommon.TraceID{2}, bytes: tc.pending - traceOverhead, firstIn: now, lastIn: now}}
				in.pendingBytes, in.pendingSince = tc.pending, now
			}
			in.mu.Unlock()
			if got := in.flushDue(false); got != tc.wantFlush {
				t.Errorf("flush due = %v, want %v", got, tc.wantFlush)
			}
			in.cut(now.Add(time.Second), false)
			in.mu.RLock()
			cut := len(in.live) == 0
			in.mu.RUnlock()
			if cut != tc.wantCut {
				t.Errorf("live trace cut = %v, want %v", cut, tc.wantCut)
			}
		})
	}
}

// TestCutKeepsArrivalOrder: traces cut together go to the pending list in the order they arrived, so that a
// block taken from its front holds whole WAL records, and their memory is released with it.
func TestCutKeepsArrivalOrder(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.closeNoFlush()
	clock := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return clock }
	for b := 0; b < 20; b++ {
		clock = clock.Add(time.Millisecond)
		if err := s.Push(ctx, tn, batch(b*10, 10, 3)); err != nil {
			t.Fatal(err)
		}
	}
	in, err := s.instance(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	in.cut(clock, true)
	in.mu.RLock()
	defer in.mu.RUnlock()
	if len(in.pending) != 200 {
		t.Fatalf("%d traces pending, want 200", len(in.pending))
	}
	for i := 1; i < len(in.pending); i++ {
		if in.pending[i].firstIn.Before(in.pending[i-1].firstIn) {
			t.Fatalf("pending trace %d arrived before trace %d", i, i-1)
		}
	}
}

func TestPressurePoint(t *testing.T) {
	for _, tc := range []struct{ maxLive, maxBlock, want int64 }{
		{maxLive: 192 << 20, maxBlock: 32 << 20, want: 16 << 20}, // the defaults: half a block
		{maxLive: 32 << 20, maxBlock: 32 << 20, want: 8 << 20},   // a quarter of a small max_live_bytes
		{maxLive: 0, maxBlock: 32 << 20, want: 0},                // no bound, no pressure
	} {
		if got := pressurePoint(tc.maxLive, tc.maxBlock); got != tc.want {
			t.Errorf("pressurePoint(%d, %d) = %d, want %d", tc.maxLive, tc.maxBlock, got, tc.want)
		}
	}
}
