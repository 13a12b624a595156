package memguard

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// refusedBy is the setting a refusal names, by class and by what refused ("heap" or "in_flight").
var refusedBy = [2]map[string]string{
	Ingest: {"heap": "sprout_api.memory.ingest_limit_percentage", "in_flight": "sprout_api.memory.ingest_inflight_percentage"},
	Query:  {"heap": "sprout_api.memory.query_limit_percentage", "in_flight": "sprout_api.memory.query_inflight_percentage"},
}

func TestGovernor(t *testing.T) {
	const mb = 1 << 20
	type step struct {
		class   Class
		grow    int64
		refused string // "", "heap" or "in_flight"
	}
	cases := []struct {
		name  string
		heap  int64
		steps []step
	}{
		{"under every budget", 100 * mb, []step{{Ingest, 10 * mb, ""}, {Ingest, 10 * mb, ""}, {Query, 5 * mb, ""}}},
		{"ingest in flight full", 0, []step{{Ingest, 70 * mb, ""}, {Ingest, 50 * mb, ""}, {Ingest, 10 * mb, "in_flight"}}},
		{"one oversize request admitted when nothing is in flight", 0, []step{{Ingest, 500 * mb, ""}, {Ingest, 1, "in_flight"}}},
		{"query budget is separate", 0, []step{{Ingest, 120 * mb, ""}, {Query, 30 * mb, ""}, {Query, 30 * mb, "in_flight"}}},
		{"heap over the query limit refuses queries, not ingest", 720 * mb, []step{{Query, mb, "heap"}, {Ingest, mb, ""}}},
		{"heap over the ingest limit refuses both", 810 * mb, []step{{Query, mb, "heap"}, {Ingest, mb, "heap"}}},
		{"in-flight bytes count against the heap limit", 700 * mb, []step{{Ingest, 90 * mb, ""}, {Query, mb, "heap"}, {Ingest, 20 * mb, "heap"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Budget{Heap: 800 * mb, InFlight: 128 * mb}, Budget{Heap: 700 * mb, InFlight: 50 * mb},
				Options{Limit: 1000 * mb, HeapLive: func() int64 { return tc.heap }})
			var tickets []*Ticket
			for i, s := range tc.steps {
				tk := g.Ticket(s.class)
				err := tk.Grow(s.grow)
				r, _ := refusal.As(err)
				switch {
				case s.refused == "" && err != nil:
					t.Fatalf("step %d: refused: %v", i, err)
				case s.refused != "" && (r == nil || r.Reason != refusal.Overloaded):
					t.Fatalf("step %d: admitted, want a %s refusal", i, s.refused)
				case s.refused != "" && r.Limit != refusedBy[s.class][s.refused]:
					t.Fatalf("step %d: refused by %s, want %s: %v", i, r.Limit, refusedBy[s.class][s.refused], err)
				case s.refused != "" && !strings.Contains(err.Error(), "sprout_api.memory."):
					t.Fatalf("step %d: the refusal does not name the setting to change: %v", i, err)
				}
				tickets = append(tickets, tk)
			}
			for _, tk := range tickets {
				tk.Release()
				tk.Release() // twice is harmless
			}
			if g.InFlight(Ingest) != 0 || g.InFlight(Query) != 0 {
				t.Fatalf("after release: %d ingest, %d query bytes in flight", g.InFlight(Ingest), g.InFlight(Query))
			}
		})
	}
}

func TestAdmitAndCheck(t *testing.T) {
	heap := int64(0)
	g := New(Budget{Heap: 100}, Budget{Heap: 50, InFlight: 40}, Options{HeapLive: func() int64 { return heap }})
	g.sampleEvry = 0
	release, err := g.Admit(Query, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(Query, 30); err == nil {
		t.Fatal("a second query over the in-flight budget was admitted")
	}
	release()
	if err := g.Check(Ingest); err != nil {
		t.Fatal(err)
	}
	heap = 101
	if err := g.Check(Ingest); err == nil {
		t.Fatal("Check admitted with the heap over the ingest limit")
	}
	var nilG *Governor
	if err := nilG.Check(Ingest); err != nil {
		t.Fatal(err)
	}
	if rel, err := nilG.Admit(Query, 1<<40); err != nil {
		t.Fatal(err)
	} else {
		rel()
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if FromContext(ctx) != nil || IngestTicket(ctx) != nil {
		t.Fatal("an empty context carries a governor")
	}
	if got := DecodedLimit(ctx, 32<<20); got != 32<<20 {
		t.Fatalf("DecodedLimit without a server limit = %d", got)
	}
	if got := WireSize(ctx, -1); got != 0 {
		t.Fatalf("WireSize of an unknown length without a limit = %d", got)
	}
	g := New(Budget{}, Budget{}, Options{})
	ctx = NewContext(ctx, g, 20<<20)
	if FromContext(ctx) != g {
		t.Fatal("FromContext lost the governor")
	}
	for _, tc := range []struct{ def, want int64 }{{32 << 20, 20 << 20}, {10 << 20, 10 << 20}, {0, 20 << 20}} {
		if got := DecodedLimit(ctx, tc.def); got != tc.want {
			t.Errorf("DecodedLimit(%d) = %d, want %d", tc.def, got, tc.want)
		}
	}
	for _, tc := range []struct{ cl, want int64 }{{-1, 20 << 20}, {1000, 1000}, {30 << 20, 20 << 20}, {0, 0}} {
		if got := WireSize(ctx, tc.cl); got != tc.want {
			t.Errorf("WireSize(%d) = %d, want %d", tc.cl, got, tc.want)
		}
	}
}

func TestHeapLiveReadsRuntime(t *testing.T) {
	runtime.GC() // the live heap is measured by a GC cycle
	if readHeapLive() <= 0 {
		t.Fatal("runtime/metrics reported no live heap")
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"all off", func(c *Config) { *c = Config{} }, ""},
		{"negative limit", func(c *Config) { c.LimitMiB = -1 }, "memory.limit_mib"},
		{"percentage over 100", func(c *Config) { c.IngestInflightPercentage = 101 }, "memory.ingest_inflight_percentage"},
		{"negative percentage", func(c *Config) { c.QueryInflightPercentage = -5 }, "memory.query_inflight_percentage"},
		{"queries above ingest", func(c *Config) { c.QueryLimitPercentage = 90 }, "memory.query_limit_percentage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	in, q := DefaultConfig().Budgets(1000 << 20)
	if in.Heap != 800<<20 || q.Heap != 700<<20 || in.InFlight != 100<<20 || q.InFlight != 50<<20 {
		t.Fatalf("Budgets(1000 MiB) = %+v, %+v", in, q)
	}
}
