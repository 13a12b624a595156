package metrichead

import (
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
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
	h         *Head
	mint      int64 // its oldest sample, while it holds any (registered in Head.appenders)
	series    []record.RefSeries
	samples   []record.RefSample
	hists     []record.RefHistogramSample
	fhists    []record.RefFloatHistogramSample
	kinds     []sampleKind
	exemplars []pendingExemplar
	metadata  []pendingMetadata // the order samples were appended in across the three lists, when histograms are among them
	buf       []byte            // series record
	sbuf      []byte            // samples record
	dropped   int
}

// Appender returns an empty appender.
func (h *Head) Appender() *Appender { return &Appender{h: h} }

// Append adds (t, v) to the series ref, or to the series with lset when ref is 0 or unknown (creating it), and
// returns the series' ref.
func (a *Appender) Append(ref uint32, lset labels.Labels, t int64, v float64) (uint32, error) {
	h := a.h
	if err := a.inWindow(t); err != nil {
		return 0, err
	}
	ref, s, logged, err := a.hold(ref, lset, func(ref uint32, s *series) error {
		_, err := h.appendable(ref, s, t, v)
		return err
	})
	if err != nil {
		return ref, err
	}
	a.logSeries(ref, s, logged)
	a.samples = append(a.samples, record.RefSample{Ref: chunks.HeadSeriesRef(ref), T: t, V: v})
	if len(a.kinds) > 0 {
		a.kinds = append(a.kinds, kindFloat)
	}
	return ref, nil
}

type sampleKind uint8

const (
	kindFloat sampleKind = iota
	kindHistogram
	kindFloatHistogram
)

// AppendHistogram adds an integer (hv) or float (fh) histogram sample, as Append adds a float one.
func (a *Appender) AppendHistogram(ref uint32, lset labels.Labels, t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram) (uint32, error) {
	h := a.h
	if err := a.inWindow(t); err != nil {
		return 0, err
	}
	switch {
	case hv != nil && fh == nil:
		if err := hv.Validate(); err != nil {
			return 0, err
		}
	case fh != nil && hv == nil:
		if err := fh.Validate(); err != nil {
			return 0, err
		}
	default:
		return 0, errors.New("metric head: a histogram sample needs one of an integer and a float histogram")
	}
	ref, s, logged, err := a.hold(ref, lset, func(ref uint32, s *series) error {
		_, err := h.histAppendable(ref, s, t, hv, fh)
		return err
	})
	if err != nil {
		return ref, err
	}
	a.logSeries(ref, s, logged)
	if len(a.kinds) == 0 {
		a.kinds = make([]sampleKind, len(a.samples), len(a.samples)+1) // floats so far
	}
	if hv != nil {
		a.kinds = append(a.kinds, kindHistogram)
		a.hists = append(a.hists, record.RefHistogramSample{Ref: chunks.HeadSeriesRef(ref), T: t, H: hv})
	} else {
		a.kinds = append(a.kinds, kindFloatHistogram)
		a.fhists = append(a.fhists, record.RefFloatHistogramSample{Ref: chunks.HeadSeriesRef(ref), T: t, FH: fh})
	}
	return ref, nil
}

// inWindow refuses a sample older than the head accepts (AppendableMinValidTime) and registers the appender's
// oldest sample, so that writing a block of the range it falls in waits for its commit.
func (a *Appender) inWindow(t int64) error {
	h := a.h
	h.appMu.Lock()
	defer h.appMu.Unlock()
	if t < h.AppendableMinValidTime() {
		return storage.ErrOutOfBounds
	}
	if _, ok := h.appenders[a]; !ok || t < a.mint {
		a.mint = t
		h.appenders[a] = struct{}{}
	}
	return nil
}

// done unregisters the appender.
func (a *Appender) done() {
	h := a.h
	h.appMu.Lock()
	if _, ok := h.appenders[a]; ok {
		delete(h.appenders, a)
		h.appDone.Broadcast()
	}
	h.appMu.Unlock()
}

// hold finds the series (by ref, else by lset), checks the sample with check under the series' lock and
// counts it as pending there, so that the series is not collected before Commit. A series collected between
// the lookup and the lock is looked up again by its labels (made anew).
func (a *Appender) hold(ref uint32, lset labels.Labels, check func(uint32, *series) error) (uint32, *series, bool, error) {
	h := a.h
	for attempt := 0; ; attempt++ {
		r, s, err := a.seriesFor(ref, lset)
		if err != nil {
			return 0, nil, false, err
		}
		lock := &h.locks[r%lockStripes]
		lock.Lock()
		if s.labels == deadLabels {
			lock.Unlock()
			if attempt == 0 && !lset.IsEmpty() {
				ref = 0
				continue
			}
			return 0, nil, false, fmt.Errorf("metric head: series %d collected meanwhile: %w", r, storage.ErrNotFound)
		}
		err = check(r, s)
		if err == nil && s.st.pending == math.MaxUint16 {
			err = errors.New("metric head: too many uncommitted samples for one series")
		}
		if err == nil {
			s.st.pending++
		}
		logged := s.st.logged
		lock.Unlock()
		return r, s, logged, err
	}
}

// unpend releases what the appender holds on series, for samples it will not apply.
func (a *Appender) unpend() {
	release := func(ref chunks.HeadSeriesRef) {
		s := a.h.get(uint32(ref))
		if s == nil {
			return
		}
		lock := &a.h.locks[uint32(ref)%lockStripes]
		lock.Lock()
		if s.st.pending > 0 {
			s.st.pending--
		}
		lock.Unlock()
	}
	for _, s := range a.samples {
		release(s.Ref)
	}
	for _, s := range a.hists {
		release(s.Ref)
	}
	for _, s := range a.fhists {
		release(s.Ref)
	}
}

// logSeries queues the series record of a series the log does not have yet.
func (a *Appender) logSeries(ref uint32, s *series, logged bool) {
	h := a.h
	if logged || h.wal == nil {
		return
	}
	var sb labels.ScratchBuilder
	h.mu.RLock()
	l := toLabels(h.lbls.get(s.labels), &sb)
	h.mu.RUnlock()
	a.series = append(a.series, record.RefSeries{Ref: chunks.HeadSeriesRef(ref), Labels: l})
}

// seriesFor returns series ref, or the series with lset (created when new) when ref is 0 or unknown.
func (a *Appender) seriesFor(ref uint32, lset labels.Labels) (uint32, *series, error) {
	h := a.h
	s := h.get(ref)
	if s == nil {
		if lset.IsEmpty() {
			return 0, nil, fmt.Errorf("metric head: series %d: %w", ref, storage.ErrNotFound)
		}
		// As Prometheus' head: empty values are no labels, and a name twice is refused.
		lset = lset.WithoutEmpty()
		if lset.IsEmpty() {
			return 0, nil, fmt.Errorf("metric head: empty label set: %w", tsdb.ErrInvalidSample)
		}
		if name, dup := lset.HasDuplicateLabelNames(); dup {
			return 0, nil, fmt.Errorf("metric head: label name %q is not unique: %w", name, tsdb.ErrInvalidSample)
		}
		for attempt := 0; s == nil; attempt++ {
			var err error
			if ref, _, err = h.GetOrCreate(lset); err != nil {
				return 0, nil, err
			}
			// A series found without samples may be collected before get; its labels then make a new one.
			if s = h.get(ref); s == nil && attempt == 2 {
				return 0, nil, fmt.Errorf("metric head: series %d: %w", ref, storage.ErrNotFound)
			}
		}
	}
	return ref, s, nil
}

// appendable checks a float sample against a series; the caller holds the series' lock. dup reports the same
// sample again, which is accepted and not stored.
func (h *Head) appendable(ref uint32, s *series, t int64, v float64) (dup bool, err error) {
	last, ok := h.lastT(ref, s)
	switch {
	case !ok || t > last:
		return false, nil
	case t < last:
		return false, storage.ErrOutOfOrderSample
	case (s.chunk != nil || len(s.closed) > 0) && s.st.t == t && math.Float64bits(v) == s.st.v:
		return true, nil
	}
	return false, storage.ErrDuplicateSampleForTimestamp
}

// Commit logs the gathered samples and adds them to the head. When the log cannot be written nothing is added
// and the error says so.
func (a *Appender) Commit() error {
	defer a.reset()
	h := a.h
	if len(a.samples)+len(a.hists)+len(a.fhists)+len(a.exemplars)+len(a.metadata) == 0 {
		return nil
	}
	if h.wal != nil {
		var recs [][]byte
		var enc record.Encoder
		if len(a.series) > 0 {
			a.buf = enc.Series(a.series, a.buf[:0])
			recs = append(recs, a.buf)
		}
		switch {
		case len(a.kinds) > 0:
			recs = a.runRecords(&enc, recs)
		case len(a.samples) > 0:
			a.sbuf = enc.Samples(a.samples, a.sbuf[:0])
			recs = append(recs, a.sbuf)
		}
		recs = a.extraRecords(&enc, recs)
		if err := h.wal.Log(recs...); err != nil {
			a.unpend()
			return fmt.Errorf("metric head: write-ahead log: %w", err)
		}
		for _, s := range a.series {
			ref := uint32(s.Ref)
			ser := h.get(ref)
			if ser == nil {
				continue
			}
			lock := &h.locks[ref%lockStripes]
			lock.Lock()
			ser.st.logged = true
			lock.Unlock()
		}
	}
	if err := a.applyExtras(); err != nil {
		return err
	}
	if len(a.kinds) == 0 {
		for _, s := range a.samples {
			if err := a.apply(h.appendFloat(uint32(s.Ref), s.T, s.V, true)); err != nil {
				return err
			}
		}
		return nil
	}
	// In the order of appending: a series that turns from histograms to floats gets them in time order.
	var fi, hi, fhi int
	for _, k := range a.kinds {
		var err error
		switch k {
		case kindFloat:
			s := a.samples[fi]
			fi++
			err = a.apply(h.appendFloat(uint32(s.Ref), s.T, s.V, true))
		case kindHistogram:
			s := a.hists[hi]
			hi++
			err = a.apply(h.appendHistogram(uint32(s.Ref), s.T, s.H, nil, true))
		case kindFloatHistogram:
			s := a.fhists[fhi]
			fhi++
			err = a.apply(h.appendHistogram(uint32(s.Ref), s.T, nil, s.FH, true))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// runRecords appends one record for each run of samples of one kind, so that replay and remote write read them
// in the order they were appended (a series may turn from histograms to floats within a commit).
func (a *Appender) runRecords(enc *record.Encoder, recs [][]byte) [][]byte {
	var fi, hi, fhi int
	for start := 0; start < len(a.kinds); {
		end := start
		for end < len(a.kinds) && a.kinds[end] == a.kinds[start] {
			end++
		}
		n := end - start
		switch a.kinds[start] {
		case kindFloat:
			recs = append(recs, enc.Samples(a.samples[fi:fi+n], nil))
			fi += n
		case kindHistogram:
			recs = appendHistogramRecords(enc, recs, a.hists[hi:hi+n], nil)
			hi += n
		case kindFloatHistogram:
			recs = appendHistogramRecords(enc, recs, nil, a.fhists[fhi:fhi+n])
			fhi += n
		}
		start = end
	}
	return recs
}

// apply counts a sample that a concurrent commit made invalid, and passes on any other error.
func (a *Appender) apply(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrDuplicateSampleForTimestamp) ||
		errors.Is(err, storage.ErrOutOfBounds) {
		a.dropped++
		a.h.dropped.Add(1)
		return nil
	}
	return fmt.Errorf("metric head: commit: %w", err)
}

// appendHistogramRecords appends the records of histogram samples (those with custom buckets in their own).
func appendHistogramRecords(enc *record.Encoder, recs [][]byte, hs []record.RefHistogramSample, fhs []record.RefFloatHistogramSample) [][]byte {
	if len(hs) > 0 {
		rec, custom := enc.HistogramSamples(hs, nil)
		if len(rec) > 0 {
			recs = append(recs, rec)
		}
		if len(custom) > 0 {
			recs = append(recs, enc.CustomBucketsHistogramSamples(custom, nil))
		}
	}
	if len(fhs) > 0 {
		rec, custom := enc.FloatHistogramSamples(fhs, nil)
		if len(rec) > 0 {
			recs = append(recs, rec)
		}
		if len(custom) > 0 {
			recs = append(recs, enc.CustomBucketsFloatHistogramSamples(custom, nil))
		}
	}
	return recs
}

// Rollback forgets the gathered samples. Series created by Append stay in the head, without samples, until
// the next truncation collects them.
func (a *Appender) Rollback() error {
	a.unpend()
	a.reset()
	return nil
}

func (a *Appender) reset() {
	a.done()
	clear(a.series)
	a.series = a.series[:0]
	a.samples = a.samples[:0]
	clear(a.hists)
	a.hists = a.hists[:0]
	clear(a.fhists)
	a.fhists = a.fhists[:0]
	a.kinds = a.kinds[:0]
	clear(a.exemplars)
	a.exemplars = a.exemplars[:0]
	a.metadata = a.metadata[:0]
}

// Dropped is how many samples commits of this appender dropped because a concurrent commit made them invalid.
func (a *Appender) Dropped() int { return a.dropped }
