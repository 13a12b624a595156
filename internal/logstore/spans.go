package logstore

import (
	"slices"
)

// This file holds time spans: where a chunk's or a head block's timestamps lie, as a few disjoint intervals
// rather than one [minT, maxT].
//
// The read path's duplicate check (see dedup) compares entries only where two sources of a stream share time,
// and a chunk that shares none is counted from its index entry. Senders that push into one stream from
// different stretches of time (several clients replaying or backfilling, or the benchmark runner's four
// senders, each with its own range) make every chunk's [minT, maxT] cover the others', although no two chunks
// hold an entry of the same timestamp. A duplicate is an entry equal in timestamp to another, so two sources
// whose spans do not meet hold no duplicate of each other, whatever their [minT, maxT].

// maxSpans bounds the spans of one chunk or head block: the cut is made at its largest gaps.
const maxSpans = 8

// spansOf returns at most maxSpans disjoint inclusive intervals, ascending, covering the n timestamps at(0) ≤
// at(1) ≤ … ≤ at(n-1), split at the largest gaps between neighbours; nil when n is 0.
func spansOf(n int, at func(int) int64) [][2]int64 {
	if n == 0 {
		return nil
	}
	// The maxSpans-1 largest gaps, largest first: cut[j] is the index of the timestamp before the gap.
	type gap struct {
		d int64
		i int
	}
	var top [maxSpans - 1]gap
	k := 0
	prev := at(0)
	for i := 1; i < n; i++ {
		t := at(i)
		d := t - prev
		prev = t
		if d <= 0 || k == len(top) && d <= top[k-1].d {
			continue
		}
		j := min(k, len(top)-1)
		for j > 0 && top[j-1].d < d {
			top[j] = top[j-1]
			j--
		}
		top[j] = gap{d, i - 1}
		k = min(k+1, len(top))
	}
	cuts := make([]int, k)
	for j := range cuts {
		cuts[j] = top[j].i
	}
	slices.Sort(cuts)
	out := make([][2]int64, 0, k+1)
	first := 0
	for _, c := range cuts {
		out = append(out, [2]int64{at(first), at(c)})
		first = c + 1
	}
	return append(out, [2]int64{at(first), at(n - 1)})
}

// spansOfUnsorted is spansOf for timestamps in any order; scratch is reused for sorting them and returned.
func spansOfUnsorted(ts []int64, scratch []int64) ([][2]int64, []int64) {
	scratch = append(scratch[:0], ts...)
	slices.Sort(scratch)
	return spansOf(len(scratch), func(i int) int64 { return scratch[i] }), scratch
}

// spans are the chunk's time spans: those its index entry records, or [MinT, MaxT] for chunks written before
// spans were recorded (or whose spans do not describe it).
func (c *chunkMeta) spans() [][2]int64 {
	if len(c.Spans) > 0 {
		return c.Spans
	}
	return [][2]int64{{c.MinT, c.MaxT}}
}

// validSpans reports whether ss are spans of a source from minT to maxT: ascending, disjoint, each from ≤ to,
// the first from minT and the last to maxT. An index entry whose spans are not is read as having none.
func validSpans(ss [][2]int64, minT, maxT int64) bool {
	if len(ss) == 0 || len(ss) > maxSpans || ss[0][0] != minT || ss[len(ss)-1][1] != maxT {
		return false
	}
	for i, s := range ss {
		if s[0] > s[1] || i > 0 && s[0] <= ss[i-1][1] {
			return false
		}
	}
	return true
}
