package metrichead

import (
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/record"
)

// Appender gathers samples and writes them in Commit: first to the write-ahead log as one series record (the
// series not logged yet) and one samples record, then into the head. It is used by one goroutine.
//
// A sample is checked against what the head holds when it is appended, so the caller learns of an
// out-of-order or duplicate sample there, as with Prometheus' appender; a sample that a concurrent commit
// makes invalid before this one lands is dropped at Commit and counted (Dropped), as Prometheus does.
type Appender struct {
	h       *Head
	series  []record.RefSeries
	samples []record.RefSample
	buf     []byte // series record
	sbuf    []byte // samples record
	dropped int
}

// Appender returns an empty appender.
func (h *Head) Appender() *Appender { return &Appender{h: h} }

// Append adds (t, v) to the series ref, or to the series with lset when ref is 0 or unknown (creating it), and
// returns the series' ref.
func (a *Appender) Append(ref uint32, lset labels.Labels, t int64, v float64) (uint32, error) {
	h := a.h
	if t < h.minValid.Load() {
		return 0, storage.ErrOutOfBounds
	}
	var s *series
	h.mu.RLock()
	if ref != 0 && ref <= h.count {
		s = h.seriesAt(ref)
	}
	h.mu.RUnlock()
	if s == nil {
		if lset.IsEmpty() {
			return 0, fmt.Errorf("metric head: series %d: %w", ref, storage.ErrNotFound)
		}
		var err error
		if ref, _, err = h.GetOrCreate(lset); err != nil {
			return 0, err
		}
		h.mu.RLock()
		s = h.seriesAt(ref)
		h.mu.RUnlock()
	}
	lock := &h.locks[ref%lockStripes]
	lock.Lock()
	err := appendable(s, t, v)
	logged := s.st.logged
	lock.Unlock()
	if err != nil {
		return ref, err
	}
	if !logged && h.wal != nil {
		var sb labels.ScratchBuilder
		h.mu.RLock()
		l := toLabels(h.lbls.get(s.labels), &sb)
		h.mu.RUnlock()
		a.series = append(a.series, record.RefSeries{Ref: chunks.HeadSeriesRef(ref), Labels: l})
	}
	a.samples = append(a.samples, record.RefSample{Ref: chunks.HeadSeriesRef(ref), T: t, V: v})
	return ref, nil
}

// appendable checks a sample against a series; the caller holds the series' lock.
func appendable(s *series, t int64, v float64) error {
	if s.chunk == nil && len(s.closed) == 0 {
		return nil
	}
	switch {
	case t < s.st.t:
		return storage.ErrOutOfOrderSample
	case t == s.st.t && math.Float64bits(v) != s.st.v:
		return storage.ErrDuplicateSampleForTimestamp
	}
	return nil
}

// Commit logs the gathered samples and adds them to the head. When the log cannot be written nothing is added
// and the error says so.
func (a *Appender) Commit() error {
	defer a.reset()
	h := a.h
	if len(a.samples) == 0 {
		return nil
	}
	if h.wal != nil {
		var recs [][]byte
		var enc record.Encoder
		if len(a.series) > 0 {
			a.buf = enc.Series(a.series, a.buf[:0])
			recs = append(recs, a.buf)
		}
		a.sbuf = enc.Samples(a.samples, a.sbuf[:0])
		recs = append(recs, a.sbuf)
		if err := h.wal.Log(recs...); err != nil {
			return fmt.Errorf("metric head: write-ahead log: %w", err)
		}
		for _, s := range a.series {
			ref := uint32(s.Ref)
			h.mu.RLock()
			ser := h.seriesAt(ref)
			h.mu.RUnlock()
			lock := &h.locks[ref%lockStripes]
			lock.Lock()
			ser.st.logged = true
			lock.Unlock()
		}
	}
	for _, s := range a.samples {
		if err := h.Append(uint32(s.Ref), s.T, s.V); err != nil {
			if errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrDuplicateSampleForTimestamp) ||
				errors.Is(err, storage.ErrOutOfBounds) {
				a.dropped++
				h.dropped.Add(1)
				continue
			}
			return fmt.Errorf("metric head: commit: %w", err)
		}
	}
	return nil
}

// Rollback forgets the gathered samples. Series created by Append stay in the head, without samples.
func (a *Appender) Rollback() error {
	a.reset()
	return nil
}

func (a *Appender) reset() {
	clear(a.series)
	a.series = a.series[:0]
	a.samples = a.samples[:0]
}

// Dropped is how many samples commits of this appender dropped because a concurrent commit made them invalid.
func (a *Appender) Dropped() int { return a.dropped }
