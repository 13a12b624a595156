package logql

import (
	"math"
	"sort"
)

// window is where one series' range window stood at the previous step: [from, to) of its points.
type window struct {
	from, to int
	q        *slidingQuantile // quantile_over_time only
}

// slidingQuantile answers quantiles of a window that slides forward over a series' points: each point enters
// and leaves once, and a quantile is two order-statistic lookups in a Fenwick tree over the points' ranks, so
// a range query costs O((points + steps) log points) rather than a copy and a sort of the window per step.
type slidingQuantile struct {
	rank     []int     // rank of point i among all the series' values
	byRank   []float64 // values in rank order
	tree     []int     // Fenwick tree of counts, by rank (1-based)
	from, to int       // the points in the tree: [from, to)
	n        int
	logN     int
}

func newSlidingQuantile(pts []Point) *slidingQuantile {
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	// The order of sort.Float64s (NaN first), so that the values match those quantile() would pick.
	sort.SliceStable(idx, func(a, b int) bool { return floatLess(pts[idx[a]].V, pts[idx[b]].V) })
	sq := &slidingQuantile{rank: make([]int, len(pts)), byRank: make([]float64, len(pts)), tree: make([]int, len(pts)+1)}
	for r, i := range idx {
		sq.rank[i] = r
		sq.byRank[r] = pts[i].V
	}
	for sq.logN = 1; 1<<sq.logN <= len(pts); sq.logN++ {
	}
	return sq
}

func floatLess(a, b float64) bool { return a < b || (math.IsNaN(a) && !math.IsNaN(b)) }

func (sq *slidingQuantile) add(i, d int) {
	sq.n += d
	for r := sq.rank[i] + 1; r < len(sq.tree); r += r & -r {
		sq.tree[r] += d
	}
}

// moveTo makes the window [from, to); both bounds only move forward (from may pass the old to).
func (sq *slidingQuantile) moveTo(from, to int) {
	for i := sq.from; i < min(from, sq.to); i++ {
		sq.add(i, -1)
	}
	for i := max(sq.to, from); i < to; i++ {
		sq.add(i, 1)
	}
	sq.from, sq.to = from, to
}

// kth returns the value of the k-th smallest point in the window (0-based).
func (sq *slidingQuantile) kth(k int) float64 {
	pos := 0
	for b := 1 << (sq.logN - 1); b > 0; b >>= 1 {
		if next := pos + b; next < len(sq.tree) && sq.tree[next] <= k {
			pos = next
			k -= sq.tree[next]
		}
	}
	return sq.byRank[pos] // pos is the 1-based rank before the target, so the target's 0-based rank
}

// quantile is quantile(q, window values) without building the window.
func (sq *slidingQuantile) quantile(q float64) float64 {
	if sq.n == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(1)
	}
	n := float64(sq.n)
	rank := q * (n - 1)
	lo := math.Max(0, math.Floor(rank))
	hi := math.Min(n-1, lo+1)
	w := rank - lo
	return sq.kth(int(lo))*(1-w) + sq.kth(int(hi))*w
}
