package metrichead

import (
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
