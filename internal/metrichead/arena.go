package metrichead

import (
	"encoding/binary"
	"strings"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// arenaPage is the size of one arena or chunk page. Label sets and closed chunks are appended to pages and never
// moved, so strings and byte slices into them stay valid; a page is dropped whole.
const arenaPage = 1 << 20

// arena holds label sets end to end, each as a uvarint length and its pairs (uvarint length, bytes), names
// sorted. A series costs its bytes plus an 8-byte address, where a labels.Labels value costs a 16-byte header
// and its string rounded up to Go's size class. Strings handed out (postings keys, label values of queries)
// point into the pages. The caller serializes writes.
type arena struct {
	pages    [][]byte
	pageSize int // arenaPage when 0
}

// addr is a page index and an offset in it.
func addrOf(page, off int) uint64        { return uint64(page)<<32 | uint64(off) }
func splitAddr(a uint64) (page, off int) { return int(a >> 32), int(uint32(a)) }

// put appends b as one length-prefixed record and returns its address.
func (a *arena) put(b []byte) uint64 {
	var lenBuf [binary.MaxVarintLen32]byte
	n := binary.PutUvarint(lenBuf[:], uint64(len(b)))
	need := n + len(b)
	last := len(a.pages) - 1
	if last < 0 || cap(a.pages[last])-len(a.pages[last]) < need {
		size := a.pageSize
		if size == 0 {
			size = arenaPage
		}
		a.pages = append(a.pages, make([]byte, 0, max(size, need)))
		last++
	}
	p := a.pages[last]
	off := len(p)
	p = append(p, lenBuf[:n]...)
	a.pages[last] = append(p, b...)
	return addrOf(last, off)
}

// get returns the record at addr; the bytes must not be changed.
func (a *arena) get(addr uint64) []byte {
	page, off := splitAddr(addr)
	return recordAt(a.pages[page], off)
}

// recordAt returns the record at off of page p.
func recordAt(p []byte, off int) []byte {
	l, n := binary.Uvarint(p[off:])
	return p[off+n : off+n+int(l) : off+n+int(l)]
}

// encodeLabels appends lset's pairs to dst.
func encodeLabels(dst []byte, lset labels.Labels) []byte {
	lset.Range(func(l labels.Label) {
		dst = binary.AppendUvarint(dst, uint64(len(l.Name)))
		dst = append(dst, l.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(l.Value)))
		dst = append(dst, l.Value...)
	})
	return dst
}

// nextString reads one length-prefixed string of an encoded label set, as a string sharing its bytes.
func nextString(b []byte) (string, []byte) {
	l, n := binary.Uvarint(b)
	s := b[n : n+int(l)]
	return unsafe.String(unsafe.SliceData(s), len(s)), b[n+int(l):]
}

// rangeLabels calls f with each pair of an encoded label set, in order, until f returns false.
func rangeLabels(b []byte, f func(name, value string) bool) {
	for len(b) > 0 {
		var name, value string
		name, b = nextString(b)
		value, b = nextString(b)
		if !f(name, value) {
			return
		}
	}
}

// equalLabels reports whether an encoded label set equals lset.
func equalLabels(b []byte, lset labels.Labels) bool {
	eq := true
	lset.Range(func(l labels.Label) {
		if !eq {
			return
		}
		if len(b) == 0 {
			eq = false
			return
		}
		var name, value string
		name, b = nextString(b)
		value, b = nextString(b)
		eq = name == l.Name && value == l.Value
	})
	return eq && len(b) == 0
}

// compareLabels orders two encoded label sets as labels.Compare orders label sets.
func compareLabels(a, b []byte) int {
	for len(a) > 0 && len(b) > 0 {
		var an, av, bn, bv string
		an, a = nextString(a)
		av, a = nextString(a)
		bn, b = nextString(b)
		bv, b = nextString(b)
		if c := strings.Compare(an, bn); c != 0 {
			return c
		}
		if c := strings.Compare(av, bv); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// labelValue returns the value of name in an encoded label set.
func labelValue(b []byte, name string) (string, bool) {
	var v string
	var ok bool
	rangeLabels(b, func(n, value string) bool {
		if n == name {
			v, ok = value, true
			return false
		}
		return n < name
	})
	return v, ok
}

// toLabels builds a labels.Labels (a copy) from an encoded label set.
func toLabels(b []byte, sb *labels.ScratchBuilder) labels.Labels {
	sb.Reset()
	rangeLabels(b, func(n, v string) bool { sb.Add(n, v); return true })
	return sb.Labels()
}
