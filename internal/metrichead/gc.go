package metrichead

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// Garbage collection of series, after a truncation: a series with no samples left and no appender holding
// samples for it leaves the hash index and the postings, and its ref is not handed out again (Prometheus' head
// does the same, and appenders holding the ref fall back to the labels). Memory comes back by whole pages:
// a page of series structs or of label sets is freed when none of its series is alive; series die roughly in
// the order they were made (pods replaced, jobs renamed), so pages empty.

// empty reports a series without samples; the caller holds its lock.
func (h *Head) empty(ref uint32, s *series) bool {
	if s.chunk != nil || len(s.closed) > 0 || h.hasOOO(ref) {
		return false
	}
	if s.st.hasHist {
		if hs := h.hists.get(ref); hs != nil && (hs.chunk != nil || len(hs.closed) > 0) {
			return false
		}
	}
	return true
}

// collect removes the series that hold no samples and no pending ones, and returns how many. An Appender
// counts a sample as pending under the series' lock and makes the series anew when it was collected first; a
// caller of GetOrCreate and Head.Append (replay) runs before collections start.
func (h *Head) collect() int {
	var cands []uint32
	h.eachSeries(func(ref uint32, s *series) {
		if s.st.pending == 0 && h.empty(ref, s) {
			cands = append(cands, ref)
		}
	})
	if len(cands) == 0 {
		return 0
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	var (
		sb      labels.ScratchBuilder
		touched = map[string]map[string]struct{}{} // lists that lose refs
		dead    = map[uint32]struct{}{}
		// the labels of the collected series, for the series callback
		collected = map[chunks.HeadSeriesRef]labels.Labels{}
	)
	for _, ref := range cands {
		s := h.seriesAt(ref)
		lock := &h.locks[ref%lockStripes]
		lock.Lock()
		if s == nil || s.labels == deadLabels || s.st.pending != 0 || !h.empty(ref, s) {
			lock.Unlock()
			continue // appended to since
		}
		addr := s.labels
		enc := h.lbls.get(addr)
		h.unhash(toLabels(enc, &sb).Hash(), ref)
		rangeLabels(enc, func(name, value string) bool {
			if vp := h.post.names[name]; vp != nil {
				if r, ok := vp.one[value]; ok && r == ref {
					delete(vp.one, value)
					if len(vp.one)+len(vp.many) == 0 {
						delete(h.post.names, name)
					}
				} else if _, ok := vp.many[value]; ok {
					if touched[name] == nil {
						touched[name] = map[string]struct{}{}
					}
					touched[name][value] = struct{}{}
				}
			}
			return true
		})
		if s.st.hasHist {
			h.hists.mu.Lock()
			delete(h.hists.m, ref)
			h.hists.mu.Unlock()
		}
		s.kill()
		h.metaIDs[(ref-1)/seriesPage][(ref-1)%seriesPage] = 0
		lock.Unlock()
		dead[ref] = struct{}{}
		if h.opts.SeriesCallback != nil {
			collected[chunks.HeadSeriesRef(ref)] = toLabels(enc, &sb)
		}
		page, _ := splitAddr(addr)
		h.labelLive[page]--
		h.seriesLive[(ref-1)/seriesPage]--
	}
	if len(collected) > 0 && h.opts.SeriesCallback != nil {
		h.opts.SeriesCallback.PostDeletion(collected)
	}
	if len(dead) > 0 {
		gone := make(map[storage.SeriesRef]struct{}, len(dead))
		for r := range dead {
			gone[storage.SeriesRef(r)] = struct{}{}
		}
		h.tombs.DeleteTombstones(gone)
	}
	// Lists are replaced, not changed in place: readers may hold the old ones.
	for name, values := range touched {
		vp := h.post.names[name]
		for value := range values {
			old := vp.many[value]
			kept := make([]uint32, 0, len(old))
			for _, r := range old {
				if _, ok := dead[r]; !ok {
					kept = append(kept, r)
				}
			}
			switch len(kept) {
			case 0:
				delete(vp.many, value)
			case 1:
				delete(vp.many, value)
				vp.one[value] = kept[0]
			default:
				vp.many[value] = kept
			}
		}
		if len(vp.one)+len(vp.many) == 0 {
			delete(h.post.names, name)
		}
	}
	// Free emptied pages, but not the ones being filled.
	for i := range len(h.pages) - 1 {
		if h.pages[i] != nil && h.seriesLive[i] == 0 {
			h.pages[i] = nil
			h.metaIDs[i] = nil
		}
	}
	for i := range len(h.lbls.pages) - 1 {
		if h.lbls.pages[i] != nil && h.labelLive[i] == 0 {
			h.lbls.pages[i] = nil
		}
	}
	h.publishView()
	h.live -= len(dead)
	return len(dead)
}

// unhash removes ref from the hash index; the caller holds mu for writing.
func (h *Head) unhash(hash uint64, ref uint32) {
	dups := h.dupHash[hash]
	if h.byHash[hash] == ref {
		if len(dups) == 0 {
			delete(h.byHash, hash)
			return
		}
		h.byHash[hash] = dups[0]
		dups = dups[1:]
	} else {
		for i, r := range dups {
			if r == ref {
				dups = append(dups[:i:i], dups[i+1:]...)
				break
			}
		}
	}
	if len(dups) == 0 {
		delete(h.dupHash, hash)
	} else {
		h.dupHash[hash] = dups
	}
}
