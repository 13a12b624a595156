package metrichead

import (
	"errors"
	"fmt"
	"math"
	"sync"

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
	h          *Head
	mint       int64 // its oldest sample, while it holds any (registered in Head.appenders)
	registered bool  // in Head.appenders; written by the appender's goroutine under appMu
	series     []record.RefSeries
	samples    []record.RefSample
	hists      []record.RefHistogramSample
	fhists     []record.RefFloatHistogramSample
	kinds      []sampleKind
	exemplars  []pendingExemplar
	metadata   []pendingMetadata // the order samples were appended in across the three lists, when histograms are among them
	buf        []byte            // series record
	sbuf       []byte            // samples record
	dropped    int
	// ooo marks, by position in the order of appending across the three lists, the samples placed out of
	// order at Append (ooo.go); nil while there are none.
	ooo    []bool
	oooRec oooRecords  // the samples that land out of order at Commit, for the write-behind log
	pooled *appendBufs // the holder the buffers came in, kept to put them back without allocating
}

// Appender returns an empty appender; its first float sample takes pooled buffers (takeBufs).
func (h *Head) Appender() *Appender { return &Appender{h: h} }

// appendBufs are an appender's float samples and record buffers. A remote-write request makes an appender of
// its own, and growing these anew for each was 6 % of the CPU of a 10k-series push, so they pass from one
// appender to the next through a pool.
type appendBufs struct {
	samples   []record.RefSample
	buf, sbuf []byte
}

var appendBufPool sync.Pool

// maxPooledSamples bounds the buffers kept in the pool: one huge request's are left to the collector.
const maxPooledSamples = 1 << 16

// takeBufs gives the appender pooled buffers, when there are any; appendFloat calls it while it has none.
func (a *Appender) takeBufs() {
	if b, ok := appendBufPool.Get().(*appendBufs); ok {
		a.samples, a.buf, a.sbuf = b.samples, b.buf, b.sbuf
		*b = appendBufs{}
		a.pooled = b
	}
}

// giveBufs returns the appender's buffers to the pool after a commit or rollback; a later append takes some
// again.
func (a *Appender) giveBufs() {
	if cap(a.samples) == 0 || cap(a.samples) > maxPooledSamples {
		return
	}
	b := a.pooled
	if b == nil {
		b = &appendBufs{}
	}
	b.samples, b.buf, b.sbuf = a.samples[:0], a.buf[:0], a.sbuf[:0]
	a.samples, a.buf, a.sbuf, a.pooled = nil, nil, nil, nil
	appendBufPool.Put(b)
}

// Append adds (t, v) to the series ref, or to the series with lset when ref is 0 or unknown (creating it), and
// returns the series' ref.
func (a *Appender) Append(ref uint32, lset labels.Labels, t int64, v float64) (uint32, error) {
	return a.appendFloat(ref, lset, t, v, true)
}

// AppendSTZero adds the zero sample at a counter's start timestamp st, as Append adds a sample, except that it is
// never placed out of order: a start before the series' newest sample is refused with ErrOutOfOrderST, as
// Prometheus' head does.
func (a *Appender) AppendSTZero(ref uint32, lset labels.Labels, st int64) (uint32, error) {
	return a.appendFloat(ref, lset, st, 0, false)
}

func (a *Appender) appendFloat(ref uint32, lset labels.Labels, t int64, v float64, allowOOO bool) (uint32, error) {
	h := a.h
	minValid, err := a.inWindow(t)
	if err != nil {
		return 0, err
	}
	var ooo bool
	ref, s, logged, err := a.hold(ref, lset, func(ref uint32, s *series) (err error) {
		ooo, _, err = h.placeFloat(ref, s, t, v, minValid, allowOOO)
		return err
	})
	if err != nil {
		return ref, err
	}
	a.logSeries(ref, s, logged)
	a.markOOO(ooo)
	if a.samples == nil {
		a.takeBufs()
	}
	a.samples = append(a.samples, record.RefSample{Ref: chunks.HeadSeriesRef(ref), T: t, V: v})
	if len(a.kinds) > 0 {
		a.kinds = append(a.kinds, kindFloat)
	}
	return ref, nil
}

// markOOO records whether the sample being appended was placed out of order.
func (a *Appender) markOOO(ooo bool) {
	if !ooo && a.ooo == nil {
		return
	}
	if a.ooo == nil {
		a.ooo = make([]bool, len(a.samples)+len(a.hists)+len(a.fhists), len(a.samples)+len(a.hists)+len(a.fhists)+1)
	}
	a.ooo = append(a.ooo, ooo)
}

type sampleKind uint8

const (
	kindFloat sampleKind = iota
	kindHistogram
	kindFloatHistogram
)

// AppendHistogram adds an integer (hv) or float (fh) histogram sample, as Append adds a float one.
func (a *Appender) AppendHistogram(ref uint32, lset labels.Labels, t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram) (uint32, error) {
	return a.appendHistogram(ref, lset, t, hv, fh, true)
}

// AppendHistogramSTZero adds a histogram zero sample at a start timestamp as AppendSTZero adds a float one.
func (a *Appender) AppendHistogramSTZero(ref uint32, lset labels.Labels, st int64, hv *histogram.Histogram, fh *histogram.FloatHistogram) (uint32, error) {
	return a.appendHistogram(ref, lset, st, hv, fh, false)
}

func (a *Appender) appendHistogram(ref uint32, lset labels.Labels, t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram, allowOOO bool) (uint32, error) {
	h := a.h
	minValid, err := a.inWindow(t)
	if err != nil {
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
	var ooo bool
	ref, s, logged, err := a.hold(ref, lset, func(ref uint32, s *series) (err error) {
		ooo, _, err = h.placeHistogram(ref, s, t, hv, fh, minValid, allowOOO)
		return err
	})
	if err != nil {
		return ref, err
	}
	a.logSeries(ref, s, logged)
	a.markOOO(ooo)
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

// inWindow refuses a sample older than the head accepts in order (AppendableMinValidTime), unless it may go out
// of order, and registers the appender's oldest in-order candidate, so that writing a block of the range it
// falls in waits for its commit. It returns the bound the sample was checked against.
func (a *Appender) inWindow(t int64) (int64, error) {
	h := a.h
	if a.registered && t >= a.mint {
		// A block write already waits for this appender when t is in its range; the lock would only guard
		// the registration, which stays as it is.
		if minValid := h.AppendableMinValidTime(); t >= minValid {
			return minValid, nil
		}
	}
	h.appMu.Lock()
	defer h.appMu.Unlock()
	minValid := h.AppendableMinValidTime()
	if t < minValid {
		if h.opts.OutOfOrderTimeWindow <= 0 {
			return minValid, storage.ErrOutOfBounds
		}
		return minValid, nil // out of order or refused (placeOOO): no block write waits for it
	}
	if !a.registered || t < a.mint {
		a.mint = t
		a.registered = true
		h.appenders[a] = struct{}{}
	}
	return minValid, nil
}

// done unregisters the appender.
func (a *Appender) done() {
	h := a.h
	h.appMu.Lock()
	if a.registered {
		a.registered = false
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
	if h.opts.OutOfOrderTimeWindow > 0 || a.ooo != nil {
		// A flush of out-of-order samples starts before or after this commit's, never within (ooo.go).
		h.ooo.mu.RLock()
		defer h.ooo.mu.RUnlock()
	}
	if len(a.kinds) == 0 {
		for i, s := range a.samples {
			if err := a.applyFloat(s, a.place(i)); err != nil {
				return err
			}
		}
		return a.logOOO()
	}
	// In the order of appending: a series that turns from histograms to floats gets them in time order.
	var fi, hi, fhi int
	for i, k := range a.kinds {
		var err error
		switch k {
		case kindFloat:
			err = a.applyFloat(a.samples[fi], a.place(i))
			fi++
		case kindHistogram:
			s := a.hists[hi]
			hi++
			var ooo bool
			if ooo, err = h.appendHistogram(uint32(s.Ref), s.T, s.H, nil, a.place(i)); ooo && err == nil {
				a.oooRec.hists = append(a.oooRec.hists, s)
			}
			err = a.counted(err)
		case kindFloatHistogram:
			s := a.fhists[fhi]
			fhi++
			var ooo bool
			if ooo, err = h.appendHistogram(uint32(s.Ref), s.T, nil, s.FH, a.place(i)); ooo && err == nil {
				a.oooRec.fhists = append(a.oooRec.fhists, s)
			}
			err = a.counted(err)
		}
		if err != nil {
			return err
		}
	}
	return a.logOOO()
}

// applyFloat adds a float sample to the head at Commit; one that lands out of order is gathered for the
// write-behind log.
func (a *Appender) applyFloat(s record.RefSample, p placement) error {
	ooo, err := a.h.appendFloat(uint32(s.Ref), s.T, s.V, p)
	if ooo && err == nil {
		a.oooRec.floats = append(a.oooRec.floats, s)
	}
	return a.counted(err)
}

// place is how the sample at position i is applied at Commit: as it was placed at Append.
func (a *Appender) place(i int) placement {
	if a.ooo != nil && a.ooo[i] {
		return commitOOO
	}
	return commitInOrder
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

// counted counts a sample that a concurrent commit made invalid, and passes on any other error.
func (a *Appender) counted(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrDuplicateSampleForTimestamp) ||
		errors.Is(err, storage.ErrOutOfBounds) || errors.Is(err, storage.ErrTooOldSample) {
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
	a.ooo = nil
	a.oooRec.reset()
	clear(a.exemplars)
	a.exemplars = a.exemplars[:0]
	a.metadata = a.metadata[:0]
	a.giveBufs()
}

// Dropped is how many samples commits of this appender dropped because a concurrent commit made them invalid.
func (a *Appender) Dropped() int { return a.dropped }
