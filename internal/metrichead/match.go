package metrichead

import (
	"encoding/binary"
	"sync/atomic"
)

// LabelsMatch reports whether series ref is alive and its labels are the n pairs pair(0) … pair(n-1), in the
// head's order (sorted by name); pairs with an empty value are skipped, as the head drops them when it makes
// a series. It reads the series' labels where the head keeps them and allocates nothing, so a caller can keep
// a series' ref alone and check a later request against it instead of keeping its own copy of the labels.
func (h *Head) LabelsMatch(ref uint32, n int, pair func(i int) (name, value []byte)) bool {
	s := h.viewSeries(ref)
	if s == nil {
		return false
	}
	addr := atomic.LoadUint64(&s.labels)
	if addr == deadLabels {
		return false
	}
	// A label page freed since the view was loaded held only collected series' labels: they are still its
	// bytes, as pages are dropped whole and never reused.
	page, off := splitAddr(addr)
	p := h.view.Load().labels[page]
	if p == nil {
		return false
	}
	b := recordAt(p, off)
	for i := range n {
		name, value := pair(i)
		if len(value) == 0 {
			continue
		}
		var ok bool
		if b, ok = cutString(b, name); !ok {
			return false
		}
		if b, ok = cutString(b, value); !ok {
			return false
		}
	}
	return len(b) == 0
}

// cutString returns what follows the length-prefixed string at the start of b when that string is s.
func cutString(b, s []byte) ([]byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l != uint64(len(s)) || uint64(len(b)-n) < l {
		return b, false
	}
	if string(b[n:n+int(l)]) != string(s) {
		return b, false
	}
	return b[n+int(l):], true
}
