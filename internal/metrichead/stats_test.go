package metrichead

import (
	"cmp"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/tsdb/index"
)

// TestStatsLikePrometheusHead compares the cardinality tables with Prometheus' head holding the same series.
// Prometheus leaves entries of equal count in map order, so both sides are sorted by count, then name, first.
func TestStatsLikePrometheusHead(t *testing.T) {
	f := newFixture(t, DefaultOptions(), 300, 3, 5)
	for _, tc := range []struct {
		by    string
		limit int
	}{
		{"__name__", 1000}, // every entry
		{"job", 1000},
		{"instance", 4},
		{"__name__", 0},
	} {
		want := f.ref.Head().Stats(tc.by, tc.limit)
		got := f.head.Stats(tc.by, tc.limit)
		if got.NumSeries != want.NumSeries || got.MinTime != want.MinTime || got.MaxTime != want.MaxTime {
			t.Fatalf("%s/%d: series %d [%d, %d], want %d [%d, %d]", tc.by, tc.limit, got.NumSeries, got.MinTime,
				got.MaxTime, want.NumSeries, want.MinTime, want.MaxTime)
		}
		w, g := want.IndexPostingStats, got.IndexPostingStats
		if g.NumLabelPairs != w.NumLabelPairs {
			t.Fatalf("%s/%d: %d label pairs, want %d", tc.by, tc.limit, g.NumLabelPairs, w.NumLabelPairs)
		}
		for _, table := range []struct {
			name      string
			want, got []index.Stat
		}{
			{"metrics", w.CardinalityMetricsStats, g.CardinalityMetricsStats},
			{"label names", w.CardinalityLabelStats, g.CardinalityLabelStats},
			{"label value bytes", w.LabelValueStats, g.LabelValueStats},
			{"label pairs", w.LabelValuePairsStats, g.LabelValuePairsStats},
		} {
			if len(table.got) != len(table.want) {
				t.Fatalf("%s/%d %s: %d entries %v, want %d %v", tc.by, tc.limit, table.name, len(table.got), table.got,
					len(table.want), table.want)
			}
			// With a limit that cuts through entries of equal count the two may keep different names: compare
			// counts in order, and names too when nothing is cut.
			all := tc.limit >= 1000
			ws, gs := byCountThenName(table.want), byCountThenName(table.got)
			for i := range ws {
				if ws[i].Count != gs[i].Count || (all && ws[i].Name != gs[i].Name) {
					t.Fatalf("%s/%d %s: entry %d is %v, want %v", tc.by, tc.limit, table.name, i, gs[i], ws[i])
				}
				if gs[i] != table.got[i] {
					t.Fatalf("%s/%d %s: not sorted by count, then name: %v", tc.by, tc.limit, table.name, table.got)
				}
			}
		}
	}
}

func byCountThenName(s []index.Stat) []index.Stat {
	out := slices.Clone(s)
	slices.SortFunc(out, func(a, b index.Stat) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}
