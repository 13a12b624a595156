package metricstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
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

// Sprout's remote write receiver, 1.0 and 2.0. Each body is decompressed once and decoded once (rwdecode.go),
// and the decoded request goes straight into the tenant's appender. The semantics are those of Prometheus'
// receiver for each version:
//
//   - 1.0: one appender per request; series without a metric name, with invalid UTF-8 or a label name twice are
//     skipped and counted; an out-of-order, duplicate, too-old or too-far-ahead sample, or an invalid native
//     histogram, fails the whole request with 400 and rolls it back; exemplar errors drop the exemplar;
//     metadata is kept; 204.
//   - 2.0: partial writes: a series Prometheus' receiver refuses as a bad request (invalid labels or symbol
//     references, no samples, a sample or histogram it refuses as above, an out-of-order exemplar) is left out
//     and named in the 400 answer while the rest is committed; the X-Prometheus-Remote-Write-*-Written headers
//     count what was written; metadata goes with each series.
//
// For both, any other append error (a limit, a full disk) rolls the whole request back and answers with the
// limit's status or 500, so that the sender retries nothing twice. Known series are found through the tenant's
// refCache without building their labels.

const (
	// maxRemoteWriteDecoded bounds a decompressed request, as Prometheus' receiver does.
	maxRemoteWriteDecoded = 32 << 20

	contentTypeProto = "application/x-protobuf"
	protoV1          = "prometheus.WriteRequest"
	protoV2          = "io.prometheus.write.v2.Request"

	writtenSamplesHeader    = "X-Prometheus-Remote-Write-Samples-Written"
	writtenHistogramsHeader = "X-Prometheus-Remote-Write-Histograms-Written"
	writtenExemplarsHeader  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 { // keep the pool from pinning the rare huge request
		bufPool.Put(b)
	}
}

// remoteWriteVersion reads the message a remote write Content-Type names: 1.0 without a proto parameter
// (and without a Content-Type at all), as Prometheus' receiver does. Spaces around the parts are allowed.
func remoteWriteVersion(ct string) (v2 bool, err error) {
	if strings.TrimSpace(ct) == "" {
		return false, nil
	}
	parts := strings.Split(ct, ";")
	if media := strings.TrimSpace(parts[0]); media != contentTypeProto {
		return false, fmt.Errorf("expected %s as the first (media) part, got %s content-type", contentTypeProto, ct)
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return false, fmt.Errorf("expected parameters to be key-values, got %q in %s content-type", p, ct)
		}
		if strings.TrimSpace(k) != "proto" {
			continue
		}
		switch v = strings.TrimSpace(v); v {
		case protoV1:
			return false, nil
		case protoV2:
			return true, nil
		default:
			return false, fmt.Errorf("%s protobuf message is not accepted by this server; only accepts %s, %s", v, protoV1, protoV2)
		}
	}
	return false, nil
}

// writeRemote serves one remote write request, 1.0 or 2.0, snappy-compressed or (after sprout_api undid gzip or
// zstd) plain. The decoded size is held to the server's body limit when it is smaller than Prometheus' 32 MiB,
// and is reserved with the memory governor (tk) before it is decoded.
func (t *Tenant) writeRemote(w http.ResponseWriter, r *http.Request, tk *memguard.Ticket) {
	if r.Method != http.MethodPost {
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	v2, err := remoteWriteVersion(r.Header.Get("Content-Type"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	enc := r.Header.Get("Content-Encoding")
	compressed := strings.EqualFold(enc, "snappy")
	if enc != "" && !compressed {
		http.Error(w, fmt.Sprintf("%s encoding (compression) is not accepted by this server; only snappy is acceptable", enc), http.StatusUnsupportedMediaType)
		return
	}
	limit := int(memguard.DecodedLimit(r.Context(), maxRemoteWriteDecoded))
	raw := bufPool.Get().(*bytes.Buffer)
	defer putBuf(raw)
	raw.Reset()
	if r.ContentLength > 0 && r.ContentLength <= int64(limit) {
		raw.Grow(int(r.ContentLength))
	}
	var body0 io.Reader = r.Body
	if compressed {
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
	if compressed {
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

	req := getRWRequest()
	defer putRWRequest(req)
	if v2 {
		err = req.decodeV2(body)
	} else {
		err = req.decodeV1(body)
	}
	if err != nil {
		if v2 {
			setWrittenHeaders(w.Header(), rwStats{})
		}
		http.Error(w, "decode remote write protobuf message: "+err.Error(), http.StatusBadRequest)
		return
	}
	stats, status, err := t.appendRemoteWrite(r.Context(), req)
	if v2 {
		setWrittenHeaders(w.Header(), stats)
	}
	if err != nil {
		refusal.SetHeaders(w.Header(), err)
		http.Error(w, err.Error(), status)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rwStats counts what a 2.0 request wrote, for the X-Prometheus-Remote-Write-*-Written headers.
type rwStats struct{ samples, histograms, exemplars int }

func setWrittenHeaders(h http.Header, s rwStats) {
	h.Set(writtenSamplesHeader, strconv.Itoa(s.samples))
	h.Set(writtenHistogramsHeader, strconv.Itoa(s.histograms))
	h.Set(writtenExemplarsHeader, strconv.Itoa(s.exemplars))
}

// appendRemoteWrite appends a decoded request and returns what was written and, for an error, the HTTP status.
func (t *Tenant) appendRemoteWrite(ctx context.Context, req *rwRequest) (rwStats, int, error) {
	ctx, ref := withRefusal(ctx)
	a := &rwAppender{
		t:       t,
		req:     req,
		app:     t.Appender(ctx),
		maxTime: time.Now().Add(maxAheadTime).UnixMilli(),
		b:       labels.NewScratchBuilder(16),
	}
	var err error
	if req.v2 {
		err = a.appendV2()
	} else {
		err = a.appendV1()
	}
	if a.invalid > 0 {
		t.store.rwInvalid.WithLabelValues(t.id).Add(float64(a.invalid))
	}
	if err != nil {
		_ = a.app.Rollback()
		if le := ref.get(); le != nil {
			return rwStats{}, le.HTTPStatus(), le
		}
		var le *refusal.Error
		switch {
		case errors.As(err, &le):
			return rwStats{}, le.HTTPStatus(), le
		case isSampleRefusal(err):
			t.logRefused(err)
			return rwStats{}, http.StatusBadRequest, err
		}
		return rwStats{}, http.StatusInternalServerError, err
	}
	if err := a.app.Commit(); err != nil {
		if le := ref.get(); le != nil {
			return rwStats{}, le.HTTPStatus(), le
		}
		return rwStats{}, http.StatusInternalServerError, fmt.Errorf("commit remote write samples: %w", err)
	}
	if len(a.bad) > 0 {
		// 2.0: what was refused is named, what was not is written.
		t.logRefused(a.bad[0])
		return a.stats, http.StatusBadRequest, errors.Join(a.bad...)
	}
	return a.stats, 0, nil
}

// isSampleRefusal reports whether err refuses a sample for what it is (Prometheus answers 400 to these).
func isSampleRefusal(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp) || errors.Is(err, storage.ErrTooOldSample) ||
		isHistogramError(err)
}

// logRefused logs a refused request at most every 10 s per tenant: senders that repeat themselves (an HA pair
// writing the same series) would log on every request, and the TSDB counts every refused sample.
func (t *Tenant) logRefused(err error) {
	if now := time.Now().UnixNano(); now-t.rwRefusedLog.Load() > int64(10*time.Second) {
		t.rwRefusedLog.Store(now)
		t.store.logger.Warn("remote write request refused (logged at most every 10s)", zap.String("tenant", t.id), zap.Error(err))
	}
}

// rwAppender appends one decoded request.
type rwAppender struct {
	t       *Tenant
	req     *rwRequest
	app     storage.Appender
	maxTime int64
	b       labels.ScratchBuilder
	pairs   []rwLabel // 2.0: the current series' labels, resolved through the symbols
	exPairs []rwLabel // 2.0: the current exemplar's labels
	keyBuf  []byte    // 2.0: scratch for labelsKey
	invalid int       // samples of series skipped for their labels
	stats   rwStats
	bad     []error // 2.0: refusals that leave the rest of the request to be written
}

// seriesLabels finds a series' head reference or labels: by its wire labels in the refCache when it is known
// (then lset is empty: the head has the series under ref, as the check against its labels just said),
// otherwise by building and checking its labels. ok is false for a series whose labels Prometheus' receiver
// refuses; then invalid says why. entry, when not nil, is to be cached under key once the series has a
// reference (or, for a cached series whose reference went stale, given the new one).
func (a *rwAppender) seriesLabels(pairs []rwLabel, key uint64, cacheable bool) (ref storage.SeriesRef, lset labels.Labels, entry *refEntry, ok bool, invalid error) {
	if cacheable {
		if e := a.t.refs.get(key); e != nil {
			r := e.ref.Load()
			if a.t.head.LabelsMatch(r, len(pairs), func(i int) ([]byte, []byte) { return pairs[i].name, pairs[i].value }) {
				return storage.SeriesRef(r), labels.EmptyLabels(), e, true, nil
			}
			entry = e // stale (the series left the head) or another series under the same key: the full path
		}
	}
	lset, sorted := a.buildLabels(pairs)
	if !lset.Has(labels.MetricName) || !lset.IsValid(model.UTF8Validation) {
		return 0, lset, nil, false, fmt.Errorf("invalid metric name or labels, got %v", lset.String())
	}
	if name, dup := lset.HasDuplicateLabelNames(); dup {
		return 0, lset, nil, false, fmt.Errorf("invalid labels for series, labels %v, duplicated label %s", lset.String(), name)
	}
	if !cacheable || !sorted {
		// Only labels in Prometheus' order can match the head's (LabelsMatch compares in order).
		return 0, lset, nil, true, nil
	}
	if entry == nil {
		entry = &refEntry{}
	}
	return 0, lset, entry, true, nil
}

// buildLabels copies pairs into sorted labels that do not alias the request; sorted says whether pairs were
// in order already.
func (a *rwAppender) buildLabels(pairs []rwLabel) (lset labels.Labels, sorted bool) {
	a.b.Reset()
	sorted = true
	for i, p := range pairs {
		if i > 0 && bytes.Compare(pairs[i-1].name, p.name) > 0 {
			sorted = false
		}
		a.b.Add(unsafeString(p.name), unsafeString(p.value))
	}
	a.b.Sort()
	return a.b.Labels(), sorted // Labels copies
}

// seriesString names a series in an error: lset, or for a series found in the refCache its pairs.
func (a *rwAppender) seriesString(pairs []rwLabel, lset labels.Labels) string {
	if lset.IsEmpty() {
		lset, _ = a.buildLabels(pairs)
	}
	return lset.String()
}

// cache records the reference a new series got, or the new reference of a cached series whose reference had
// gone stale (the series left the head and came back).
func (a *rwAppender) cache(entry *refEntry, key uint64, oldRef, newRef storage.SeriesRef) {
	if entry == nil || newRef == 0 || newRef == oldRef {
		return
	}
	if entry.ref.Load() != 0 {
		entry.ref.Store(uint32(newRef))
		return
	}
	entry.ref.Store(uint32(newRef))
	a.t.refs.put(key, entry)
}

func (a *rwAppender) appendV1() error {
	r := a.req
	for i := range r.series {
		s := &r.series[i]
		pairs := r.labels[s.labLo:s.labHi]
		var key uint64
		if s.run != nil {
			key = xxhash.Sum64(s.run)
		}
		ref, lset, entry, ok, invalid := a.seriesLabels(pairs, key, s.run != nil && s.smpHi+s.hHi > s.smpLo+s.hLo)
		if !ok {
			a.invalid += s.smpHi - s.smpLo + s.hHi - s.hLo
			a.t.store.logger.Debug("remote write series skipped", zap.String("tenant", a.t.id), zap.Error(invalid))
			continue
		}
		newRef := ref
		for _, smp := range r.samples[s.smpLo:s.smpHi] {
			r, err := a.appendSample(newRef, &lset, pairs, smp)
			if err != nil {
				return err
			}
			newRef = r
		}
		for _, e := range r.exemplars[s.exLo:s.exHi] {
			a.b.Reset()
			for _, l := range r.labels[e.lo:e.hi] {
				a.b.Add(unsafeString(l.name), unsafeString(l.value))
			}
			a.b.Sort()
			if e.t > a.maxTime {
				continue // Prometheus' receiver drops it, as it drops every exemplar error
			}
			// Exemplar storage is best effort, as in Prometheus: errors (out of order, too many labels) drop
			// the exemplar, not the request.
			_, _ = a.app.AppendExemplar(newRef, lset, exemplar.Exemplar{Labels: a.b.Labels(), Value: e.v, Ts: e.t, HasTs: e.t != 0})
		}
		for j := s.hLo; j < s.hHi; j++ {
			r, err := a.appendHistogram(newRef, &lset, pairs, &r.histograms[j])
			if err != nil {
				return err
			}
			newRef = r
		}
		a.cache(entry, key, ref, newRef)
	}
	for _, m := range r.metadata {
		if len(m.name) > 0 {
			// Kept by the appender's Commit, before the request is acknowledged.
			a.t.meta.add(unsafeString(m.name), metadata.Metadata{
				Type: model.MetricType(strings.ToLower(prompb.MetricMetadata_MetricType(m.typ).String())),
				Help: unsafeString(m.help), Unit: unsafeString(m.unit),
			})
		}
	}
	return nil
}

func (a *rwAppender) appendV2() error {
	r := a.req
	for i := range r.series {
		s := &r.series[i]
		refs := r.refs[s.labLo:s.labHi]
		var err error
		a.pairs, err = a.symbolize(a.pairs[:0], refs)
		if err != nil {
			a.bad = append(a.bad, fmt.Errorf("parsing labels for series %v: %w", refs, err))
			a.invalid += s.smpHi - s.smpLo + s.hHi - s.hLo
			continue
		}
		md, err := a.metadataV2(s)
		if err != nil {
			a.bad = append(a.bad, fmt.Errorf("parsing metadata for series %v: %w", refs, err))
			continue
		}
		var key uint64
		key, a.keyBuf = labelsKey(a.keyBuf, a.pairs)
		ref, lset, entry, ok, invalid := a.seriesLabels(a.pairs, key, s.smpHi+s.hHi > s.smpLo+s.hLo)
		if !ok {
			a.bad = append(a.bad, invalid)
			a.invalid += s.smpHi - s.smpLo + s.hHi - s.hLo
			continue
		}
		if s.smpHi == s.smpLo && s.hHi == s.hLo {
			a.bad = append(a.bad, fmt.Errorf("TimeSeries must contain at least one sample or histogram for series %v", a.seriesString(a.pairs, lset)))
			continue
		}
		newRef := ref
		for _, smp := range r.samples[s.smpLo:s.smpHi] {
			r, err := a.appendSample(newRef, &lset, a.pairs, smp)
			if err == nil {
				newRef = r
				a.stats.samples++
				continue
			}
			if !isSampleRefusal(err) {
				return err
			}
			a.bad = append(a.bad, fmt.Errorf("%w for series %v", err, a.seriesString(a.pairs, lset)))
		}
		for j := s.hLo; j < s.hHi; j++ {
			r, err := a.appendHistogram(newRef, &lset, a.pairs, &r.histograms[j])
			if err == nil {
				newRef = r
				a.stats.histograms++
				continue
			}
			if !isSampleRefusal(err) {
				return err
			}
			a.bad = append(a.bad, fmt.Errorf("%w for series %v", err, a.seriesString(a.pairs, lset)))
		}
		for _, e := range r.exemplars[s.exLo:s.exHi] {
			a.exPairs, err = a.symbolize(a.exPairs[:0], r.refs[e.lo:e.hi])
			if err != nil {
				a.bad = append(a.bad, fmt.Errorf("parsing exemplar for series %v: %w", a.seriesString(a.pairs, lset), err))
				continue
			}
			a.b.Reset()
			for _, l := range a.exPairs {
				a.b.Add(unsafeString(l.name), unsafeString(l.value))
			}
			a.b.Sort()
			if e.t > a.maxTime {
				continue // dropped, as Prometheus' receiver drops exemplar errors other than out of order
			}
			_, err = a.app.AppendExemplar(newRef, lset, exemplar.Exemplar{Labels: a.b.Labels(), Value: e.v, Ts: e.t, HasTs: e.t != 0})
			switch {
			case err == nil:
				a.stats.exemplars++
			case errors.Is(err, storage.ErrOutOfOrderExemplar):
				a.bad = append(a.bad, fmt.Errorf("%w for series %v", err, a.seriesString(a.pairs, lset)))
			}
		}
		// Metadata goes to the WAL with the series (and to /api/v1/metadata); an error only loses the metadata.
		// Empty metadata says nothing (the head would record it, /api/v1/metadata skips it): not sent.
		if !md.IsEmpty() {
			if lset.IsEmpty() {
				// Found by the refCache: the appender cannot intern md under the metric's name, so it is done here.
				md = a.t.meta.intern(metricName(a.pairs), md)
			}
			_, _ = a.app.UpdateMetadata(newRef, lset, md)
		}
		a.cache(entry, key, ref, newRef)
	}
	return nil
}

// symbolize appends the labels refs name in the symbol table, checked as Prometheus checks them.
func (a *rwAppender) symbolize(dst []rwLabel, refs []uint32) ([]rwLabel, error) {
	syms := a.req.symbols
	if len(refs)%2 != 0 {
		return dst, fmt.Errorf("invalid labelRefs length %d", len(refs))
	}
	for i := 0; i < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) >= len(syms) || int(v) >= len(syms) {
			return dst, fmt.Errorf("labelRefs %d (name) = %d (value) outside of symbols table (size %d)", n, v, len(syms))
		}
		dst = append(dst, rwLabel{name: syms[n], value: syms[v]})
	}
	return dst, nil
}

// v2MetricTypes maps writev2.Metadata_MetricType to Prometheus' types (anything else is unknown).
var v2MetricTypes = [...]model.MetricType{
	model.MetricTypeUnknown, model.MetricTypeCounter, model.MetricTypeGauge, model.MetricTypeHistogram,
	model.MetricTypeGaugeHistogram, model.MetricTypeSummary, model.MetricTypeInfo, model.MetricTypeStateset,
}

func (a *rwAppender) metadataV2(s *rwSeries) (metadata.Metadata, error) {
	syms := a.req.symbols
	typ := model.MetricTypeUnknown
	if s.mtype >= 0 && int(s.mtype) < len(v2MetricTypes) {
		typ = v2MetricTypes[s.mtype]
	}
	if int(s.unitRef) >= len(syms) {
		return metadata.Metadata{}, fmt.Errorf("metadata unit_ref %d outside of symbols table (size %d)", s.unitRef, len(syms))
	}
	if int(s.helpRef) >= len(syms) {
		return metadata.Metadata{}, fmt.Errorf("metadata help_ref %d outside of symbols table (size %d)", s.helpRef, len(syms))
	}
	return metadata.Metadata{Type: typ, Unit: unsafeString(syms[s.unitRef]), Help: unsafeString(syms[s.helpRef])}, nil
}

// labelsKey hashes a series' labels as the sender ordered them, the refCache key of a 2.0 series (its label
// references change from request to request; the strings they name do not). buf is scratch space.
func labelsKey(buf []byte, pairs []rwLabel) (uint64, []byte) {
	buf = buf[:0]
	for _, p := range pairs {
		buf = append(buf, p.name...)
		buf = append(buf, 0xff)
		buf = append(buf, p.value...)
		buf = append(buf, 0xff)
	}
	return xxhash.Sum64(buf), buf
}

// appendSample appends s to series ref, or to the series *lset. A series found by the refCache (*lset empty)
// that the head collected since is made anew from pairs, and *lset set to its labels.
func (a *rwAppender) appendSample(ref storage.SeriesRef, lset *labels.Labels, pairs []rwLabel, s rwSample) (storage.SeriesRef, error) {
	if s.t > a.maxTime {
		return 0, fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)
	}
	r, err := a.app.Append(ref, *lset, s.t, s.v)
	if a.collected(err, lset, pairs) {
		return a.app.Append(0, *lset, s.t, s.v)
	}
	return r, err
}

// collected reports whether err says that a series found by the refCache left the head meanwhile; then it
// sets *lset to the series' labels, to make it anew.
func (a *rwAppender) collected(err error, lset *labels.Labels, pairs []rwLabel) bool {
	if err == nil || !lset.IsEmpty() || !errors.Is(err, storage.ErrNotFound) {
		return false
	}
	*lset, _ = a.buildLabels(pairs)
	return true
}

// metricName is the value of the __name__ pair, sharing the request's bytes.
func metricName(pairs []rwLabel) string {
	for _, p := range pairs {
		if string(p.name) == labels.MetricName {
			return unsafeString(p.value)
		}
	}
	return ""
}

func (a *rwAppender) appendHistogram(ref storage.SeriesRef, lset *labels.Labels, pairs []rwLabel, rh *rwHistogram) (storage.SeriesRef, error) {
	if rh.t > a.maxTime {
		return 0, fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)
	}
	h, fh := rh.toHistogram()
	if h != nil && histogram.IsExponentialSchemaReserved(h.Schema) && h.Schema > histogram.ExponentialSchemaMax {
		if err := h.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
			return 0, err
		}
	}
	if fh != nil && histogram.IsExponentialSchemaReserved(fh.Schema) && fh.Schema > histogram.ExponentialSchemaMax {
		if err := fh.ReduceResolution(histogram.ExponentialSchemaMax); err != nil {
			return 0, err
		}
	}
	r, err := a.app.AppendHistogram(ref, *lset, rh.t, h, fh)
	if a.collected(err, lset, pairs) {
		return a.app.AppendHistogram(0, *lset, rh.t, h, fh)
	}
	return r, err
}

// refCache maps the labels of a series as a sender writes them (by hash: of their wire bytes for 1.0, of the
// strings they name for 2.0) to the series' head reference, so a known series is appended by reference
// without building its labels and looking them up in the head, and without an allocation. An entry keeps the
// reference alone: a hit is checked against the head's own labels (Head.LabelsMatch), which also tells a
// reference gone stale or another series under the same hash; a copy of the labels per series was a third of
// the store's live heap. Prometheus' scrape loop keeps the same kind of cache per target.
//
// Reads are lock-free: entries live in an immutable map swapped atomically; new entries wait in a second map
// under a mutex and are merged into a new immutable map once they are as many as the immutable map holds, so
// inserting n series copies fewer than 2n entries in all (merging at a quarter copied 5n: at 1M new series
// that was a tenth of the server's CPU and 170 MB of maps for the collector). While series arrive, the waiting
// map is made with room for up to freshRoom entries, so that it does not grow by rehashing from empty; no
// more, so that a trickle of new series into a large cache does not hold a large empty map. A reference that
// went stale (the series left the head and came back) fails the check: the series is made from the request's
// labels, and the new reference replaces the old.
type refCache struct {
	frozen    atomic.Pointer[map[uint64]*refEntry]
	mu        sync.Mutex
	fresh     map[uint64]*refEntry
	freshHits int // lookups answered from fresh since the last merge
}

// refEntry is a series' head reference; 0 until the series is in the head. It is changed in place (the
// frozen map is never written) when the reference goes stale.
type refEntry struct {
	ref atomic.Uint32
}

// freshCap is how many new entries wait beside a frozen map of n entries before they are merged into it.
func freshCap(n int) int { return max(1024, n) }

// freshRoom bounds the room made in a new waiting map (64k entries: about 1 MiB of map).
const freshRoom = 1 << 16

func newRefCache() *refCache {
	c := &refCache{fresh: make(map[uint64]*refEntry, freshCap(0))}
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
		// When new series stop arriving, the last ones stay in fresh (up to half of the entries); once they
		// have been looked up as many times as a merge copies entries (so the copy is paid for), merge them so
		// their lookups stop locking.
		if c.freshHits++; c.freshHits > max(1024, len(*c.frozen.Load())+len(c.fresh)) {
			c.merge(false) // new series have stopped: no room kept for more
		}
	}
	return e
}

func (c *refCache) put(key uint64, e *refEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fresh[key] = e
	if len(c.fresh) >= freshCap(len(*c.frozen.Load())) {
		c.merge(true)
	}
}

// merge makes a new frozen map of frozen and fresh; c.mu is held. growing says that new series are arriving,
// so the next fresh map is made with room for them.
func (c *refCache) merge(growing bool) {
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
	if growing {
		c.fresh = make(map[uint64]*refEntry, min(freshCap(len(m)), freshRoom))
	}
	c.freshHits = 0
}

// reset forgets every entry; called when the head drops series, so the cache does not keep entries of series
// that are gone.
func (c *refCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[uint64]*refEntry{}
	c.frozen.Store(&m)
	c.fresh = make(map[uint64]*refEntry, freshCap(0))
	c.freshHits = 0
}

// len is the number of entries, for tests.
func (c *refCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(*c.frozen.Load()) + len(c.fresh)
}
