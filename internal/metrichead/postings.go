package metrichead

import (
	"sort"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/index"
)

// postings is the inverted index: label name → value → series refs, ascending (refs are handed out in order).
// A value with one series keeps its ref inline (one map slot of a string and a uint32); a list is made when a
// second series arrives. Labels unique to each series (an instance id, a request id) so cost about half of a map
// of slices. Keys point into the arena. The head's lock guards it.
type postings struct {
	names map[string]*valuePostings
}

type valuePostings struct {
	one  map[string]uint32
	many map[string][]uint32
}

func newPostings() postings { return postings{names: map[string]*valuePostings{}} }

func (p *postings) add(name, value string, ref uint32) {
	vp := p.names[name]
	if vp == nil {
		vp = &valuePostings{one: map[string]uint32{}, many: map[string][]uint32{}}
		p.names[name] = vp
	}
	if l, ok := vp.many[value]; ok {
		vp.many[value] = append(l, ref)
		return
	}
	if r, ok := vp.one[value]; ok {
		delete(vp.one, value)
		vp.many[value] = []uint32{r, ref}
		return
	}
	vp.one[value] = ref
}

// list returns the refs of name=value: a shared prefix of the live list (appends go past its length) or a
// one-element slice.
func (p *postings) list(name, value string) []uint32 {
	vp := p.names[name]
	if vp == nil {
		return nil
	}
	if l, ok := vp.many[value]; ok {
		return l[:len(l):len(l)]
	}
	if r, ok := vp.one[value]; ok {
		return []uint32{r}
	}
	return nil
}

// values calls f with each value of name, in no order.
func (p *postings) values(name string, f func(string)) {
	vp := p.names[name]
	if vp == nil {
		return
	}
	for v := range vp.one {
		f(v)
	}
	for v := range vp.many {
		f(v)
	}
}

func (p *postings) sortedNames() []string {
	out := make([]string, 0, len(p.names))
	for n := range p.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// listPostings iterates ascending uint32 refs as index.Postings.
type listPostings struct {
	l []uint32
	i int // the current ref's index; -1 before the first Next
}

func newListPostings(l []uint32) index.Postings {
	if len(l) == 0 {
		return index.EmptyPostings()
	}
	return &listPostings{l: l, i: -1}
}

func (it *listPostings) Next() bool {
	if it.i < len(it.l) {
		it.i++
	}
	return it.i < len(it.l)
}

func (it *listPostings) Seek(x storage.SeriesRef) bool {
	if it.i < 0 {
		it.i = 0
	}
	if it.i >= len(it.l) {
		return false
	}
	if storage.SeriesRef(it.l[it.i]) >= x {
		return true
	}
	rest := it.l[it.i:]
	it.i += sort.Search(len(rest), func(j int) bool { return storage.SeriesRef(rest[j]) >= x })
	return it.i < len(it.l)
}

func (it *listPostings) At() storage.SeriesRef { return storage.SeriesRef(it.l[it.i]) }
func (it *listPostings) Err() error            { return nil }

// rangePostings iterates refs first..last.
type rangePostings struct {
	cur, last storage.SeriesRef
	started   bool
}

func (it *rangePostings) Next() bool {
	if !it.started {
		it.started = true
		return it.cur <= it.last
	}
	if it.cur >= it.last {
		it.cur = it.last + 1
		return false
	}
	it.cur++
	return true
}

func (it *rangePostings) Seek(x storage.SeriesRef) bool {
	if it.started && it.cur >= x {
		return it.cur <= it.last
	}
	it.started = true
	if x > it.cur {
		it.cur = x
	}
	return it.cur <= it.last
}

func (it *rangePostings) At() storage.SeriesRef { return it.cur }
func (it *rangePostings) Err() error            { return nil }
