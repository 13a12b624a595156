package metrichead

import (
	"container/heap"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
)

// Stats is the head's cardinality for /api/v1/status/tsdb, as Prometheus' head reports it: the limit largest
// entries of series per metric name (values of statsByLabelName), label values per label name, bytes of label
// values per label name and series per label pair, each largest first. Ties are ordered by name, where
// Prometheus leaves them in map order. Series stay counted until the head drops them, as in the postings.
func (h *Head) Stats(statsByLabelName string, limit int) *tsdb.Stats {
	metrics, names, sizes, pairs := newTopK(limit), newTopK(limit), newTopK(limit), newTopK(limit)
	numPairs := 0
	n := h.NumSeries() // not the highest ref: series may be collected
	h.mu.RLock()
	for name, vp := range h.post.names {
		values := len(vp.one) + len(vp.many)
		names.offer(name, "", uint64(values))
		numPairs += values
		var size uint64
		count := func(v string, series uint64) {
			if name == statsByLabelName {
				metrics.offer(v, "", series)
			}
			pairs.offer(name, v, series)
			size += labels.SizeOfLabels(name, v, series)
		}
		for v := range vp.one {
			count(v, 1)
		}
		for v, l := range vp.many {
			count(v, uint64(len(l)))
		}
		sizes.offer(name, "", size)
	}
	h.mu.RUnlock()
	return &tsdb.Stats{
		NumSeries: n,
		MinTime:   h.MinTime(),
		MaxTime:   h.MaxTime(),
		IndexPostingStats: &index.PostingsStats{
			CardinalityMetricsStats: metrics.sorted(),
			CardinalityLabelStats:   names.sorted(),
			LabelValueStats:         sizes.sorted(),
			LabelValuePairsStats:    pairs.sorted(),
			NumLabelPairs:           numPairs,
		},
	}
}

// topK keeps the k largest stats, the smallest (by count, then the latest name) at the root, so that a pair's
// "name=value" string is built only for the entries that get in.
type topK struct {
	k     int
	items []index.Stat
}

func newTopK(k int) *topK { return &topK{k: max(k, 0)} }

// worse orders a before b when a would leave the top first: a smaller count, or the same count and a later name.
func worse(a, b index.Stat) bool {
	if a.Count != b.Count {
		return a.Count < b.Count
	}
	return a.Name > b.Name
}

func (t *topK) Len() int           { return len(t.items) }
func (t *topK) Less(i, j int) bool { return worse(t.items[i], t.items[j]) }
func (t *topK) Swap(i, j int)      { t.items[i], t.items[j] = t.items[j], t.items[i] }
func (t *topK) Push(x any)         { t.items = append(t.items, x.(index.Stat)) }
func (t *topK) Pop() any {
	x := t.items[len(t.items)-1]
	t.items = t.items[:len(t.items)-1]
	return x
}

// offer considers the stat named name, or name=value when value is not empty.
func (t *topK) offer(name, value string, count uint64) {
	if t.k == 0 {
		return
	}
	if len(t.items) == t.k && count < t.items[0].Count {
		return
	}
	full := name
	if value != "" {
		full = name + "=" + value
	} else {
		full = strings.Clone(name) // names point into the head's arena; a stat outlives the lock
	}
	s := index.Stat{Name: full, Count: count}
	if len(t.items) < t.k {
		heap.Push(t, s)
		return
	}
	if worse(t.items[0], s) {
		t.items[0] = s
		heap.Fix(t, 0)
	}
}

func (t *topK) sorted() []index.Stat {
	out := make([]index.Stat, len(t.items)) // empty, not nil, as Prometheus answers
	copy(out, t.items)
	slices.SortFunc(out, func(a, b index.Stat) int {
		switch {
		case worse(b, a):
			return -1
		case worse(a, b):
			return 1
		}
		return 0
	})
	return out
}
