package metrichead

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestLabelsMatch(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := h.GetOrCreate(labels.FromStrings("__name__", "up", "job", "api", "zone", "eu"))
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := h.GetOrCreate(labels.FromStrings("__name__", "gone"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Append(ref, 10, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.Truncate(1); err != nil { // collects the series without samples
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		ref   uint32
		pairs []string
		want  bool
	}{
		{"same", ref, []string{"__name__", "up", "job", "api", "zone", "eu"}, true},
		{"empty value skipped", ref, []string{"__name__", "up", "env", "", "job", "api", "zone", "eu"}, true},
		{"other value", ref, []string{"__name__", "up", "job", "api", "zone", "us"}, false},
		{"value prefix", ref, []string{"__name__", "up", "job", "ap", "zone", "eu"}, false},
		{"one more", ref, []string{"__name__", "up", "job", "api", "zone", "eu", "zz", "1"}, false},
		{"one less", ref, []string{"__name__", "up", "job", "api"}, false},
		{"other order", ref, []string{"job", "api", "__name__", "up", "zone", "eu"}, false},
		{"none", ref, nil, false},
		{"unknown ref", ref + 100, []string{"__name__", "up", "job", "api", "zone", "eu"}, false},
		{"zero ref", 0, nil, false},
		{"collected", gone, []string{"__name__", "gone"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair := func(i int) ([]byte, []byte) { return []byte(tc.pairs[2*i]), []byte(tc.pairs[2*i+1]) }
			if got := h.LabelsMatch(tc.ref, len(tc.pairs)/2, pair); got != tc.want {
				t.Fatalf("LabelsMatch = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLabelsMatchAllocatesNothing(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := h.GetOrCreate(labels.FromStrings("__name__", "up", "job", "api"))
	if err != nil {
		t.Fatal(err)
	}
	pairs := [][2][]byte{{[]byte("__name__"), []byte("up")}, {[]byte("job"), []byte("api")}}
	if n := testing.AllocsPerRun(100, func() {
		if !h.LabelsMatch(ref, len(pairs), func(i int) ([]byte, []byte) { return pairs[i][0], pairs[i][1] }) {
			t.Fatal("no match")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}

// BenchmarkLabelsMatch is the check of a remote-write reference cache hit: a series of 8 labels.
func BenchmarkLabelsMatch(b *testing.B) {
	h, err := New(DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	lset := labels.FromStrings("__name__", "http_requests_total", "cluster", "eu-1", "code", "200", "handler", "/api/v1/query",
		"instance", "10.0.0.1:9090", "job", "prometheus", "method", "GET", "namespace", "monitoring")
	ref, _, err := h.GetOrCreate(lset)
	if err != nil {
		b.Fatal(err)
	}
	var pairs [][2][]byte
	lset.Range(func(l labels.Label) { pairs = append(pairs, [2][]byte{[]byte(l.Name), []byte(l.Value)}) })
	b.ReportAllocs()
	for b.Loop() {
		if !h.LabelsMatch(ref, len(pairs), func(i int) ([]byte, []byte) { return pairs[i][0], pairs[i][1] }) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkLabelsMatchParallel is the same check from every core at once, as remote-write requests make it: it
// shows what the check shares between cores.
func BenchmarkLabelsMatchParallel(b *testing.B) {
	h, err := New(DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	refs := make([]uint32, n)
	pairs := make([][][2][]byte, n)
	for i := range n {
		lset := labels.FromStrings("__name__", "http_requests_total", "instance", fmt.Sprintf("10.0.%d.%d:9090", i/256, i%256), "job", "api")
		if refs[i], _, err = h.GetOrCreate(lset); err != nil {
			b.Fatal(err)
		}
		lset.Range(func(l labels.Label) { pairs[i] = append(pairs[i], [2][]byte{[]byte(l.Name), []byte(l.Value)}) })
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p := pairs[i%n]
			if !h.LabelsMatch(refs[i%n], len(p), func(j int) ([]byte, []byte) { return p[j][0], p[j][1] }) || h.get(refs[i%n]) == nil {
				b.Fatal("no match")
			}
			i++
		}
	})
}

// TestLockFreeReadersWhileCollecting: get and LabelsMatch read the registry without its lock while series are
// made (new pages published) and collected (pages freed). A reader never matches a ref to labels other than
// its own, and a series it appends to after a match is the one it matched (run with -race).
func TestLockFreeReadersWhileCollecting(t *testing.T) {
	h, err := New(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	const (
		rounds    = 8
		perRound  = 3*seriesPage + 100
		readerCnt = 2
	)
	lsetOf := func(round, i int) labels.Labels {
		return labels.FromStrings("__name__", "m", "i", fmt.Sprint(i), "round", fmt.Sprint(round), "pad", strings.Repeat("x", 40))
	}
	pairsOf := func(lset labels.Labels) [][2][]byte {
		var p [][2][]byte
		lset.Range(func(l labels.Label) { p = append(p, [2][]byte{[]byte(l.Name), []byte(l.Value)}) })
		return p
	}
	var made sync.Map // ref → labels.Labels
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, readerCnt)
	for w := range readerCnt {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			matched := 0
			for {
				select {
				case <-done:
					if matched == 0 {
						errs <- errors.New("a reader never matched a series")
					}
					return
				default:
				}
				n := h.count.Load()
				if n < 2 {
					continue
				}
				ref := 1 + rng.Uint32N(n)
				v, ok := made.Load(ref)
				if !ok {
					continue
				}
				own := v.(labels.Labels)
				p := pairsOf(own)
				if h.LabelsMatch(ref, len(p), func(i int) ([]byte, []byte) { return p[i][0], p[i][1] }) {
					matched++
				}
				other, _ := made.Load(1 + (ref % n))
				if other != nil && !labels.Equal(other.(labels.Labels), own) {
					q := pairsOf(other.(labels.Labels))
					if h.LabelsMatch(ref, len(q), func(i int) ([]byte, []byte) { return q[i][0], q[i][1] }) {
						errs <- fmt.Errorf("series %d matched another series' labels %s", ref, other)
						return
					}
				}
				if s := h.get(ref); s != nil {
					h.mu.RLock() // the registry's lock before a series' lock, as the head takes them
					lock := &h.locks[ref%lockStripes]
					lock.Lock()
					alive := s.labels != deadLabels
					var got labels.Labels
					if alive {
						var sb labels.ScratchBuilder
						got = toLabels(h.lbls.get(s.labels), &sb)
					}
					lock.Unlock()
					h.mu.RUnlock()
					if alive && !labels.Equal(got, own) {
						errs <- fmt.Errorf("series %d holds %s, made as %s", ref, got, own)
						return
					}
				}
			}
		}()
	}
	for round := range rounds {
		app := h.Appender()
		for i := range perRound {
			ref, err := app.Append(0, lsetOf(round, i), int64(round+1)*1000, 1)
			if err != nil {
				t.Fatal(err)
			}
			made.Store(ref, lsetOf(round, i))
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := h.Truncate(int64(round+1) * 1000); err != nil { // collects the previous round's series
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := h.NumSeries(); got != perRound {
		t.Fatalf("%d series live, want the last round's %d", got, perRound)
	}
	if h.view.Load().series[0] != nil || h.view.Load().labels[0] != nil {
		t.Fatal("the readers' view still holds freed pages")
	}
}
