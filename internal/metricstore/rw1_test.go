package metricstore

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// labelRun is the wire encoding of a series' label fields, the refCache's key.
func labelRun(t *testing.T, ls []prompb.Label) []byte {
	t.Helper()
	b, err := (&prompb.TimeSeries{Labels: ls}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := new(rwRequest)
	if err := r.decodeV1(wField(1, b)); err != nil || len(r.series) != 1 || r.series[0].run == nil {
		t.Fatalf("decode: %v", err)
	}
	return r.series[0].run
}

func TestRemoteWriteV1Semantics(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ms := now.UnixMilli()
	sample := func(v float64, ts int64) []prompb.Sample { return []prompb.Sample{{Value: v, Timestamp: ts}} }
	for _, tc := range []struct {
		name     string
		before   []prompb.TimeSeries // written first, must succeed
		req      []prompb.TimeSeries
		wantCode int
		wantText string
		// after the request, these queries at now must give these values ("" = no result)
		want        map[string]string
		wantInvalid float64
	}{
		{
			name: "series with invalid labels are skipped, the rest is kept",
			req: []prompb.TimeSeries{
				{Labels: []prompb.Label{{Name: "job", Value: "no-name"}}, Samples: sample(1, ms)},
				{Labels: series("dup", "a", "1", "a", "2"), Samples: sample(1, ms)},
				{Labels: series("bad_utf8", "a", "\xff"), Samples: sample(1, ms)},
				{Labels: series("good", "a", "1"), Samples: sample(7, ms)},
			},
			wantCode:    204,
			want:        map[string]string{`good`: "7", `dup`: "", `bad_utf8`: "", `{job="no-name"}`: ""},
			wantInvalid: 3,
		},
		{
			name:     "an out-of-order sample refuses the whole request",
			before:   []prompb.TimeSeries{{Labels: series("ooo", "a", "1"), Samples: sample(1, ms)}},
			req:      []prompb.TimeSeries{{Labels: series("other"), Samples: sample(2, ms)}, {Labels: series("ooo", "a", "1"), Samples: sample(3, ms-60000)}},
			wantCode: 400,
			wantText: "out of order",
			want:     map[string]string{`other`: "", `ooo`: "1"},
		},
		{
			name:     "a sample too far in the future refuses the whole request",
			req:      []prompb.TimeSeries{{Labels: series("future"), Samples: sample(1, now.Add(time.Hour).UnixMilli())}},
			wantCode: 400,
			wantText: "too far in the future",
			want:     map[string]string{`future`: ""},
		},
		{
			name:     "labels in any order",
			req:      []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "z", Value: "1"}, {Name: "__name__", Value: "unsorted"}, {Name: "a", Value: "2"}}, Samples: sample(4, ms)}},
			wantCode: 204,
			want:     map[string]string{`unsorted{a="2",z="1"}`: "4"},
		},
		{
			name:     "known series by reference",
			before:   []prompb.TimeSeries{{Labels: series("known", "a", "1"), Samples: sample(1, ms-1000)}},
			req:      []prompb.TimeSeries{{Labels: series("known", "a", "1"), Samples: sample(2, ms)}},
			wantCode: 204,
			want:     map[string]string{`known`: "2", `count_over_time(known[1m])`: "2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := openTestStore(t, testConfig(t))
			if tc.before != nil {
				if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, &prompb.WriteRequest{Timeseries: tc.before})); code != 204 {
					t.Fatalf("before: %d %s", code, body)
				}
			}
			code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, &prompb.WriteRequest{Timeseries: tc.req}))
			if code != tc.wantCode || !strings.Contains(body, tc.wantText) {
				t.Errorf("POST: %d %q, want %d containing %q", code, body, tc.wantCode, tc.wantText)
			}
			for q, want := range tc.want {
				got := instant(t, srv.URL, q, now)
				var v string
				for _, val := range got {
					v = val
				}
				if len(got) > 1 || v != want {
					t.Errorf("%s = %v, want %q", q, got, want)
				}
			}
			if got := promtestutil.ToFloat64(s.rwInvalid.WithLabelValues(tenant.Default)); got != tc.wantInvalid {
				t.Errorf("invalid-label samples counted %v, want %v", got, tc.wantInvalid)
			}
		})
	}
}

// TestRefCacheEntries covers the cache's edge cases through the write path: a reference the head no longer
// knows, an entry whose key collides with another series, and forgetting everything when the head drops series.
func TestRefCacheEntries(t *testing.T) {
	s, srv := openTestStore(t, testConfig(t))
	tn, err := s.Tenant(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	write := func(ls []prompb.Label, v float64, ts time.Time) {
		t.Helper()
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}}}}
		if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, req)); code != 204 {
			t.Fatalf("POST: %d %s", code, body)
		}
	}

	// A stale reference: the head does not know it, so the series is made from the request's labels.
	a := series("stale_ref", "x", "1")
	stale := &refEntry{}
	stale.ref.Store(1 << 30)
	tn.refs.put(xxhash.Sum64(labelRun(t, a)), stale)
	write(a, 3, now)
	if got := instant(t, srv.URL, `stale_ref`, now); got[`map[__name__:stale_ref x:1]`] != "3" {
		t.Errorf("after a stale reference: %v", got)
	}
	if r := stale.ref.Load(); r == 1<<30 || r == 0 {
		t.Errorf("stale reference not replaced: %d", r)
	}

	// A colliding key: the entry's series has other labels, so it is not used.
	b := series("collides", "x", "1")
	other := &refEntry{}
	other.ref.Store(stale.ref.Load())
	tn.refs.put(xxhash.Sum64(labelRun(t, b)), other)
	write(b, 5, now)
	if got := instant(t, srv.URL, `collides`, now); got[`map[__name__:collides x:1]`] != "5" {
		t.Errorf("colliding key: collides = %v", got)
	}
	if got := instant(t, srv.URL, `stale_ref`, now); got[`map[__name__:stale_ref x:1]`] != "3" {
		t.Errorf("colliding key wrote into the other series: %v", got)
	}

	// The head dropping series empties the cache.
	if tn.refs.len() == 0 {
		t.Fatal("cache empty before truncation")
	}
	if err := tn.DB().Head().Truncate(now.Add(time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if n := tn.refs.len(); n != 0 {
		t.Errorf("cache holds %d entries after the head dropped every series", n)
	}
	write(a, 9, now.Add(2*time.Minute))
	if got := instant(t, srv.URL, `stale_ref`, now.Add(2*time.Minute)); got[`map[__name__:stale_ref x:1]`] != "9" {
		t.Errorf("after truncation: %v", got)
	}
}

// TestRemoteWriteV1Concurrent writes overlapping series from several senders (run with -race).
func TestRemoteWriteV1Concurrent(t *testing.T) {
	_, srv := openTestStore(t, testConfig(t))
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	const senders, rounds, nSeries = 4, 30, 50
	var wg sync.WaitGroup
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				var req prompb.WriteRequest
				for i := range nSeries {
					// Each sender owns its instance label; all share the metric names.
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels:  series("concurrent", "i", string(rune('a'+i%26))+string(rune('a'+i/26)), "w", string(rune('0'+w))),
						Samples: []prompb.Sample{{Value: float64(r), Timestamp: start.Add(time.Duration(r) * time.Second).UnixMilli()}},
					})
				}
				code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, &req))
				if code != http.StatusNoContent {
					t.Errorf("POST: %d %s", code, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := instant(t, srv.URL, `sum(count_over_time(concurrent[1h]))`, start.Add(time.Minute))
	if got["map[]"] != "6000" {
		t.Errorf("samples stored = %v, want 6000", got)
	}
}

// TestRefCacheMerge checks that entries survive the merges of fresh into frozen, whichever triggers them.
func TestRefCacheMerge(t *testing.T) {
	c := newRefCache()
	const n = 5000
	for i := range uint64(n) {
		e := &refEntry{}
		e.ref.Store(uint32(i + 1))
		c.put(i, e)
	}
	if c.len() != n {
		t.Fatalf("len = %d, want %d", c.len(), n)
	}
	c.mu.Lock()
	inFresh := len(c.fresh)
	c.mu.Unlock()
	if inFresh == 0 {
		t.Fatal("expected the last entries to wait in fresh")
	}
	// Looking up the fresh entries often enough merges them.
	for range 10 {
		for i := range uint64(n) {
			if e := c.get(i); e == nil || e.ref.Load() != uint32(i+1) {
				t.Fatalf("entry %d: %v", i, e)
			}
		}
	}
	c.mu.Lock()
	inFresh = len(c.fresh)
	c.mu.Unlock()
	if inFresh != 0 || len(*c.frozen.Load()) != n {
		t.Errorf("after many lookups: %d in fresh, %d frozen", inFresh, len(*c.frozen.Load()))
	}
	if c.get(n+1) != nil {
		t.Error("unknown key found")
	}
	c.reset()
	if c.len() != 0 || c.get(1) != nil {
		t.Error("reset kept entries")
	}
}

// TestRemoteWriteV1AfterRestart writes series that the head got back from the WAL: the cache learns them from
// the head (sharing the head's labels) and later requests append by reference.
func TestRemoteWriteV1AfterRestart(t *testing.T) {
	cfg := testConfig(t)
	now := time.Now().Truncate(time.Second)
	req := func(v float64, ts time.Time) []byte {
		return encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: series("restarted", "a", "1"), Samples: []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}},
			{Labels: series("restarted", "a", "2", "empty", ""), Samples: []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}},
		}})
	}
	s := openStore(t, cfg)
	_, srv := serveStore(t, s)
	if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, req(1, now.Add(-2*time.Second))); code != 204 {
		t.Fatalf("POST: %d %s", code, body)
	}
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	_, srv = serveStore(t, s)
	tn, _ := s.Tenant(context.Background(), tenant.Default)
	if n := tn.refs.len(); n != 0 {
		t.Fatalf("cache holds %d entries after a restart", n)
	}
	for i, ts := range []time.Time{now.Add(-time.Second), now} {
		if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, req(float64(i+2), ts)); code != 204 {
			t.Fatalf("POST after restart: %d %s", code, body)
		}
	}
	// Both series are cached: the one with an empty label keeps Sprout's own labels (the head dropped the
	// empty one), which still match the request.
	if n := tn.refs.len(); n != 2 {
		t.Errorf("cache holds %d entries, want 2", n)
	}
	got := instant(t, srv.URL, `count_over_time(restarted[1m])`, now)
	if got["map[a:1]"] != "3" || got["map[a:2]"] != "3" {
		t.Errorf("samples per series = %v, want 3 each", got)
	}
}
