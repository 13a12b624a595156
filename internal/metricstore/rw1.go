package metricstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/refusal"
)

// Sprout's remote write 1.0 receiver. It keeps the semantics of Prometheus' handler (one appender per request;
// series with invalid labels are skipped and counted; an out-of-order, duplicate, too-old or too-far-ahead
// sample fails the whole request with 400; exemplar errors are dropped; 204 on success) but decodes the
// request at the wire level and finds known series through the tenant's refCache without building their
// labels. Remote write 2.0 stays on Prometheus' handler.

const (
	// maxRemoteWriteDecoded bounds a decompressed request, as Prometheus' receiver does.
	maxRemoteWriteDecoded = 32 << 20
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// isRemoteWriteV1Request reports whether a write request is remote write 1.0 in an encoding this receiver
// reads: snappy, or none (sprout_api's own decompression already undid gzip or zstd).
func isRemoteWriteV1Request(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	ct := strings.TrimSpace(r.Header.Get("Content-Type"))
	if ct != "" {
		media, _, _ := strings.Cut(ct, ";")
		if strings.TrimSpace(media) != "application/x-protobuf" || !isRemoteWriteV1(ct) {
			return false
		}
	}
	enc := r.Header.Get("Content-Encoding")
	return enc == "" || strings.EqualFold(enc, "snappy")
}

// writeV1 serves one remote write 1.0 request.
// The decoded size is held to the server's body limit when it is smaller than Prometheus' 32 MiB, and is
// reserved with the memory governor (tk) before it is decoded.
func (t *Tenant) writeV1(w http.ResponseWriter, r *http.Request, tk *memguard.Ticket) {
	limit := int(memguard.DecodedLimit(r.Context(), maxRemoteWriteDecoded))
	raw := bufPool.Get().(*bytes.Buffer)
	defer putBuf(raw)
	raw.Reset()
	if r.ContentLength > 0 && r.ContentLength <= int64(limit) {
		raw.Grow(int(r.ContentLength))
	}
	var body0 io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "snappy") {
		rd, err := checkSnappyHeader(r.Body, int64(limit))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body0 = rd
	}
	if _, err := raw.ReadFrom(io.LimitReader(body0, int64(limit)+1)); err != nil {
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if raw.Len() > limit {
		http.Error(w, fmt.Sprintf("request body exceeds the %d bytes limit", limit), http.StatusRequestEntityTooLarge)
		return
	}
	body := raw.Bytes()
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "snappy") {
		n, err := snappy.DecodedLen(body)
		if err != nil {
			http.Error(w, "decode snappy-compressed request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if n > limit {
			http.Error(w, fmt.Sprintf("decode snappy-compressed request body: decoded size %d exceeds the %d bytes limit (sprout_api max_request_body_size)", n, limit), http.StatusBadRequest)
			return
		}
		if err := tk.Grow(int64(n)); err != nil {
			refuseMemory(w, err)
			return
		}
		dec := bufPool.Get().(*bytes.Buffer)
		defer putBuf(dec)
		dec.Reset()
		dec.Grow(n)
		out, err := snappy.Decode(dec.Bytes()[:n], body)
		if err != nil {
			http.Error(w, "decode snappy-compressed request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		body = out
	}
	if status, err := t.appendV1(r.Context(), body); err != nil {
		refusal.SetHeaders(w.Header(), err)
		http.Error(w, err.Error(), status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 { // keep the pool from pinning the rare huge request
		bufPool.Put(b)
	}
}

// appendV1 appends a decompressed WriteRequest and returns the HTTP status for an error.
func (t *Tenant) appendV1(ctx context.Context, body []byte) (int, error) {
	ctx, ref := withRefusal(ctx)
	a := &rw1Appender{
		t:       t,
		app:     t.Appender(ctx),
		maxTime: time.Now().Add(maxAheadTime).UnixMilli(),
		b:       labels.NewScratchBuilder(16),
	}
	err := walkWriteRequest(body, a.series, a.metadata)
	if err != nil {
		_ = a.app.Rollback()
		if le := ref.get(); le != nil {
			return le.HTTPStatus(), le
		}
		var le *refusal.Error
		switch {
		case errors.As(err, &le):
			return le.HTTPStatus(), le
		case errors.Is(err, errDecode):
			return http.StatusBadRequest, fmt.Errorf("decode remote write protobuf message: %w", err)
		case errors.Is(err, storage.ErrOutOfOrderSample), errors.Is(err, storage.ErrOutOfBounds),
			errors.Is(err, storage.ErrDuplicateSampleForTimestamp), errors.Is(err, storage.ErrTooOldSample),
			isHistogramError(err):
			// Senders that repeat themselves (an HA pair writing the same series) would log this on every
			// request; once every 10 s per tenant is enough, the TSDB counts every refused sample.
			if now := time.Now().UnixNano(); now-t.rwRefusedLog.Load() > int64(10*time.Second) {
				t.rwRefusedLog.Store(now)
				t.store.logger.Warn("remote write 1.0 request refused (logged at most every 10s)", zap.String("tenant", t.id), zap.Error(err))
			}
			return http.StatusBadRequest, err
		}
		return http.StatusInternalServerError, err
	}
	if a.invalid > 0 {
		t.store.rwInvalid.WithLabelValues(t.id).Add(float64(a.invalid))
	}
	if err := a.app.Commit(); err != nil {
		if le := ref.get(); le != nil {
			return le.HTTPStatus(), le
		}
		return http.StatusInternalServerError, fmt.Errorf("commit remote write samples: %w", err)
	}
	return 0, nil
}

// errDecode marks malformed protobuf, as opposed to refused samples.
var errDecode = errors.New("malformed message")

type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() []error {
	return []error{e.err, errDecode}
}

func decodeErr(err error) error {
	if err == nil || errors.Is(err, errDecode) {
		return err
	}
	return decodeError{err}
}

// rw1Appender appends one request's series.
type rw1Appender struct {
	t       *Tenant
	app     storage.Appender
	maxTime int64
	b       labels.ScratchBuilder
	invalid int
	hist    prompb.Histogram
}

// series appends one TimeSeries.
func (a *rw1Appender) series(ts []byte) error {
	layout, err := scanSeries(ts)
	if err != nil {
		return decodeErr(err)
	}
	var (
		ref   storage.SeriesRef
		lset  labels.Labels
		entry *refEntry
		key   uint64
	)
	if layout.labels != nil {
		key = xxhash.Sum64(layout.labels)
		if entry = a.t.refs.get(key); entry != nil && entry.matches(layout.labels) {
			ref, lset = storage.SeriesRef(entry.ref.Load()), entry.lset
		} else {
			entry = nil
		}
	}
	if entry == nil {
		var sorted, ok bool
		lset, sorted, ok, err = a.buildLabels(ts)
		if err != nil {
			return decodeErr(err)
		}
		if !ok {
			a.invalid += layout.samples + layout.histograms
			// Skipped, but still read: a malformed message is refused whichever series it is in.
			return a.checkSeries(ts, layout)
		}
		if layout.labels != nil && sorted && layout.samples+layout.histograms > 0 {
			// Cached once the series exists (below); only sorted labels can match a cached entry.
			entry = &refEntry{lset: lset}
		}
	}

	newRef := ref
	if layout.samples > 0 {
		err = forEachSample(ts, func(v float64, ts int64) error {
			if ts > a.maxTime {
				return fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)
			}
			r, err := a.app.Append(newRef, lset, ts, v)
			if err != nil {
				return err
			}
			newRef = r
			return nil
		})
		if err != nil {
			return err
		}
	}
	if layout.exemplars > 0 {
		if err := a.exemplars(ts, newRef, lset); err != nil {
			return err
		}
	}
	if layout.histograms > 0 {
		err = forEachField(ts, 4, func(hb []byte) error {
			r, err := a.histogram(hb, newRef, lset)
			if err == nil {
				newRef = r
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	if entry != nil && newRef != 0 && newRef != ref {
		if entry.ref.Load() == 0 {
			entry.lset = a.headLabels(newRef, lset)
			entry.ref.Store(uint64(newRef))
			a.t.refs.put(key, entry)
		} else {
			entry.ref.Store(uint64(newRef)) // the series was dropped from the head and created again
		}
	}
	return nil
}

// checkSeries reads a series' samples, exemplars and histograms without appending them, for their errors.
func (a *rw1Appender) checkSeries(ts []byte, layout seriesLayout) error {
	if err := forEachSample(ts, func(float64, int64) error { return nil }); err != nil {
		return err
	}
	if layout.exemplars > 0 {
		if err := forEachField(ts, 3, func(eb []byte) error {
			lb, _, _, err := parseExemplar(eb)
			if err == nil {
				err = forEachLabel(lb, func(_, _ []byte) error { return nil })
			}
			return decodeErr(err)
		}); err != nil {
			return err
		}
	}
	return forEachField(ts, 4, func(hb []byte) error {
		a.hist = prompb.Histogram{}
		if err := a.hist.Unmarshal(hb); err != nil {
			return decodeErr(fmt.Errorf("histogram: %w", err))
		}
		return nil
	})
}

// headLabels returns the head's own labels of series ref when they equal lset, so that the cache shares their
// memory instead of holding a second copy (the series may predate this request: WAL replay, OTLP, another
// sender). Otherwise, or if the head does not know ref, lset.
func (a *rw1Appender) headLabels(ref storage.SeriesRef, lset labels.Labels) labels.Labels {
	ir, err := a.t.db.Head().Index()
	if err != nil {
		return lset
	}
	defer ir.Close()
	var b labels.ScratchBuilder
	if err := ir.Series(ref, &b, nil); err != nil {
		return lset
	}
	if hl := b.Labels(); labels.Equal(hl, lset) {
		return hl
	}
	return lset
}

// buildLabels builds the series' labels and checks them as Prometheus' receiver does: a metric name, valid
// UTF-8 names and values, no name twice. ok is false for a series to skip; sorted tells whether the sender's
// order was already Prometheus' order.
func (a *rw1Appender) buildLabels(ts []byte) (lset labels.Labels, sorted, ok bool, err error) {
	a.b.Reset()
	sorted = true
	var prev []byte
	err = forEachLabel(ts, func(name, value []byte) error {
		if prev != nil && bytes.Compare(prev, name) > 0 {
			sorted = false
		}
		prev = name
		a.b.Add(unsafeString(name), unsafeString(value))
		return nil
	})
	if err != nil {
		return labels.EmptyLabels(), false, false, err
	}
	a.b.Sort()
	lset = a.b.Labels() // copies: lset does not alias the request
	if !lset.Has(labels.MetricName) || !lset.IsValid(model.UTF8Validation) {
		a.t.store.logger.Debug("remote write series with an invalid metric name or labels skipped", zap.String("tenant", a.t.id), zap.Stringer("labels", lset))
		return lset, sorted, false, nil
	}
	if name, dup := lset.HasDuplicateLabelNames(); dup {
		a.t.store.logger.Debug("remote write series with a duplicate label name skipped", zap.String("tenant", a.t.id), zap.String("label", name), zap.Stringer("labels", lset))
		return lset, sorted, false, nil
	}
	return lset, sorted, true, nil
}

func (a *rw1Appender) exemplars(ts []byte, ref storage.SeriesRef, lset labels.Labels) error {
	return forEachField(ts, 3, func(eb []byte) error {
		lb, v, t, err := parseExemplar(eb)
		if err != nil {
			return decodeErr(err)
		}
		a.b.Reset()
		if err := forEachLabel(lb, func(name, value []byte) error {
			a.b.Add(unsafeString(name), unsafeString(value))
			return nil
		}); err != nil {
			return decodeErr(err)
		}
		a.b.Sort()
		e := exemplar.Exemplar{Labels: a.b.Labels(), Value: v, Ts: t, HasTs: t != 0}
		if e.Ts > a.maxTime {
			return nil // Prometheus' receiver drops it, as it drops every exemplar error
		}
		// Exemplar storage is best effort, as in Prometheus: errors (out of order, too many labels) drop
		// the exemplar, not the request.
		_, _ = a.app.AppendExemplar(ref, lset, e)
		return nil
	})
}

func (a *rw1Appender) histogram(hb []byte, ref storage.SeriesRef, lset labels.Labels) (storage.SeriesRef, error) {
	a.hist = prompb.Histogram{}
	if err := a.hist.Unmarshal(hb); err != nil {
		return 0, decodeErr(fmt.Errorf("histogram: %w", err))
	}
	if a.hist.Timestamp > a.maxTime {
		return 0, fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)
	}
	var (
		h  *histogram.Histogram
		fh *histogram.FloatHistogram
	)
	if a.hist.IsFloatHistogram() {
		fh = a.hist.ToFloatHistogram()
		if histogram.IsExponentialSchemaReserved(fh.Schema) && fh.Schema > histogram.ExponentialSchemaMax {
			if err := fh.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
				return 0, err
			}
		}
	} else {
		h = a.hist.ToIntHistogram()
		if histogram.IsExponentialSchemaReserved(h.Schema) && h.Schema > histogram.ExponentialSchemaMax {
			if err := h.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
				return 0, err
			}
		}
	}
	return a.app.AppendHistogram(ref, lset, a.hist.Timestamp, h, fh)
}

// metadata keeps one MetricMetadata; the appender's Commit saves it before the request is acknowledged.
func (a *rw1Appender) metadata(b []byte) error {
	var m prompb.MetricMetadata
	if err := m.Unmarshal(b); err != nil {
		return decodeErr(fmt.Errorf("metadata: %w", err))
	}
	if m.MetricFamilyName != "" {
		a.t.meta.add(m.MetricFamilyName, metadata.Metadata{Type: model.MetricType(strings.ToLower(m.Type.String())), Help: m.Help, Unit: m.Unit})
	}
	return nil
}

// refCache maps the wire bytes of a series' labels (by hash) to the series' labels and head reference, so a
// known series is appended by reference without decoding its labels, hashing them again and looking them up
// in the head, and without an allocation. Prometheus' scrape loop keeps the same kind of cache per target.
//
// Reads are lock-free: entries live in an immutable map swapped atomically; new entries wait in a small map
// under a mutex and are merged into a new immutable map once it has grown by a quarter, so inserting n
// series copies O(n) entries in all. A reference that went stale (the series left the head and came back) is
// harmless: the head does not know it and creates the series from the cached labels, and the new reference
// replaces the old.
type refCache struct {
	frozen    atomic.Pointer[map[uint64]*refEntry]
	mu        sync.Mutex
	fresh     map[uint64]*refEntry
	freshHits int // lookups answered from fresh since the last merge
}

type refEntry struct {
	ref  atomic.Uint64
	lset labels.Labels
}

// matches reports whether the label fields lb name exactly e's labels, in order.
func (e *refEntry) matches(lb []byte) bool {
	err := e.lset.Validate(func(l labels.Label) error {
		if len(lb) == 0 {
			return errMismatch
		}
		num, _, val, rest, err := nextField(lb)
		if err != nil || num != 1 {
			return errMismatch
		}
		lb = rest
		name, value, err := parseLabel(val)
		if err != nil || string(name) != l.Name || string(value) != l.Value {
			return errMismatch
		}
		return nil
	})
	return err == nil && len(lb) == 0
}

var errMismatch = errors.New("labels differ")

func newRefCache() *refCache {
	c := &refCache{fresh: map[uint64]*refEntry{}}
	m := map[uint64]*refEntry{}
	c.frozen.Store(&m)
	return c
}

func (c *refCache) get(key uint64) *refEntry {
	if e, ok := (*c.frozen.Load())[key]; ok {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.fresh[key]
	if e != nil {
		// When new series stop arriving, the last ones stay in fresh; once they have been looked up as many
		// times as a merge copies entries (so the copy is paid for), merge them so their lookups stop locking.
		if c.freshHits++; c.freshHits > max(1024, len(*c.frozen.Load())+len(c.fresh)) {
			c.merge()
		}
	}
	return e
}

func (c *refCache) put(key uint64, e *refEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fresh[key] = e
	if len(c.fresh) >= max(1024, len(*c.frozen.Load())/4) {
		c.merge()
	}
}

// merge makes a new frozen map of frozen and fresh; c.mu is held.
func (c *refCache) merge() {
	frozen := *c.frozen.Load()
	m := make(map[uint64]*refEntry, len(frozen)+len(c.fresh))
	for k, v := range frozen {
		m[k] = v
	}
	for k, v := range c.fresh {
		m[k] = v
	}
	c.frozen.Store(&m)
	c.fresh = map[uint64]*refEntry{}
	c.freshHits = 0
}

// reset forgets every entry; called when the head drops series, so the cache does not keep labels of series
// that are gone.
func (c *refCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[uint64]*refEntry{}
	c.frozen.Store(&m)
	c.fresh = map[uint64]*refEntry{}
	c.freshHits = 0
}

// len is the number of entries, for tests.
func (c *refCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(*c.frozen.Load()) + len(c.fresh)
}
