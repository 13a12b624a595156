package metrichead

import (
	"context"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/tombstones"
)

// tombstones is the head's deleted intervals, read by queries and by the compactor, which leaves the deleted
// samples out of the block it writes.
func (h *Head) tombstones() tombstones.Reader { return h.tombs }

// Delete marks the samples in [mint, maxt] of the series matching ms as deleted. As Prometheus' head does, an
// interval is cut to the samples a series holds now, so samples appended later are not deleted.
func (h *Head) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	omin, omax := h.oooBounds()
	mint, maxt = max(mint, min(h.MinTime(), omin)), min(maxt, max(h.MaxTime(), omax))
	if mint > maxt {
		return nil
	}
	// An index reader that registers no reader: Delete reads postings and labels, never chunks.
	ir := &indexReader{r: &RangeHead{h: h, mint: mint, maxt: maxt}}
	p, err := tsdb.PostingsForMatchers(ctx, ir, ms...)
	if err != nil {
		return fmt.Errorf("metric head delete: select series: %w", err)
	}
	var stones []tombstones.Stone
	for n := 0; p.Next(); n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return fmt.Errorf("metric head delete: select series: %w", ctx.Err())
		}
		t0, t1, ok := h.seriesTimeRange(p.At())
		if !ok {
			continue
		}
		t0, t1 = max(t0, mint), min(t1, maxt)
		if t0 > t1 {
			continue
		}
		stones = append(stones, tombstones.Stone{Ref: p.At(), Intervals: tombstones.Intervals{{Mint: t0, Maxt: t1}}})
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("metric head delete: select series: %w", err)
	}
	if len(stones) == 0 {
		return nil
	}
	if h.wal != nil { // logged first, as Prometheus' head does, so replay deletes them again
		var enc record.Encoder
		if err := h.wal.Log(enc.Tombstones(stones, nil)); err != nil {
			return fmt.Errorf("metric head delete: write-ahead log: %w", err)
		}
	}
	for _, s := range stones {
		h.tombs.AddInterval(s.Ref, s.Intervals...)
	}
	return nil
}

// seriesTimeRange is the time range of the samples series ref holds; false when it holds none.
func (h *Head) seriesTimeRange(ref storage.SeriesRef) (mint, maxt int64, ok bool) {
	if ref > math.MaxUint32 {
		return 0, 0, false
	}
	s := h.get(uint32(ref))
	if s == nil {
		return 0, 0, false
	}
	lock := &h.locks[uint32(ref)%lockStripes]
	lock.Lock()
	defer lock.Unlock()
	switch {
	case len(s.closed) > 0:
		mint, maxt, ok = s.closed[0].minT, s.st.t, true
	case s.chunk != nil:
		mint, maxt, ok = s.chunkMinT, s.st.t, true
	}
	if s.st.hasHist {
		if hs := h.hists.get(uint32(ref)); hs != nil {
			var hmin int64
			hok := true
			switch {
			case len(hs.closed) > 0:
				hmin = hs.closed[0].minT
			case hs.chunk != nil:
				hmin = hs.minT
			default:
				hok = false
			}
			if hok {
				if !ok {
					mint, maxt = hmin, hs.lastT
				}
				mint, maxt, ok = min(mint, hmin), max(maxt, hs.lastT), true
			}
		}
	}
	if o := h.ooo.series[uint32(ref)%lockStripes][uint32(ref)]; o != nil {
		for _, l := range [][]oooSample{o.old, o.cur} {
			if len(l) == 0 {
				continue
			}
			if !ok {
				mint, maxt = l[0].t, l[len(l)-1].t
			}
			mint, maxt, ok = min(mint, l[0].t), max(maxt, l[len(l)-1].t), true
		}
	}
	return mint, maxt, ok
}
