package metrichead

import "encoding/binary"

// LabelsMatch reports whether series ref is alive and its labels are the n pairs pair(0) … pair(n-1), in the
// head's order (sorted by name); pairs with an empty value are skipped, as the head drops them when it makes
// a series. It reads the series' labels where the head keeps them and allocates nothing, so a caller can keep
// a series' ref alone and check a later request against it instead of keeping its own copy of the labels.
func (h *Head) LabelsMatch(ref uint32, n int, pair func(i int) (name, value []byte)) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ref == 0 || ref > h.count {
		return false
	}
	s := h.seriesAt(ref)
	if s == nil || s.labels == deadLabels {
		return false
	}
	b := h.lbls.get(s.labels)
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
