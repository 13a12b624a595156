package metrichead

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/record"
)

// Exemplars live in Prometheus' circular exemplar storage, keyed by series labels, as in Prometheus' head.
// Metadata is kept as an interned id per series (4 bytes), only to log a series' metadata when it changes:
// remote write 2.0 forwards it from the log. Both are logged in Prometheus' record types.

// Exemplars is the head's exemplar storage, nil when Options.MaxExemplars is 0.
func (h *Head) Exemplars() storage.ExemplarQueryable {
	if h.exemplars == nil {
		return nil
	}
	return h.exemplars
}

func newExemplars(o Options) (tsdb.ExemplarStorage, error) {
	if o.MaxExemplars <= 0 {
		return nil, nil
	}
	return tsdb.NewCircularExemplarStorage(o.MaxExemplars, tsdb.NewExemplarMetrics(nil), 0)
}

// seriesLabels returns the labels of a live series.
func (h *Head) seriesLabels(ref uint32) (labels.Labels, bool) {
	b, ok := h.labelsOf(storage.SeriesRef(ref))
	if !ok {
		return labels.EmptyLabels(), false
	}
	var sb labels.ScratchBuilder
	return toLabels(b, &sb), true
}

// existing returns the ref of a live series by ref, else by labels, without making one.
func (h *Head) existing(ref uint32, lset labels.Labels) (uint32, bool) {
	if h.get(ref) != nil {
		return ref, true
	}
	if lset.IsEmpty() {
		return 0, false
	}
	r := h.Lookup(lset)
	return r, r != 0
}

type pendingExemplar struct {
	ref    uint32
	series labels.Labels
	e      exemplar.Exemplar
}

// AppendExemplar adds an exemplar to series ref (or the series with lset); the series must exist, as with
// Prometheus' appender. Without exemplar storage it is accepted and dropped.
func (a *Appender) AppendExemplar(ref uint32, lset labels.Labels, e exemplar.Exemplar) (uint32, error) {
	h := a.h
	r, ok := h.existing(ref, lset)
	if !ok {
		return 0, fmt.Errorf("metric head: exemplar for an unknown series %d: %w", ref, storage.ErrNotFound)
	}
	if h.exemplars == nil {
		return r, nil
	}
	series, ok := h.seriesLabels(r)
	if !ok {
		return 0, fmt.Errorf("metric head: exemplar for an unknown series %d: %w", r, storage.ErrNotFound)
	}
	e.Labels = e.Labels.Copy() // the caller's may be reused
	if err := h.exemplars.ValidateExemplar(series, e); err != nil {
		return r, err
	}
	a.exemplars = append(a.exemplars, pendingExemplar{ref: r, series: series, e: e})
	return r, nil
}

// UpdateMetadata sets the metadata of series ref (or the series with lset); it is logged at Commit when it
// differs from what the series had.
func (a *Appender) UpdateMetadata(ref uint32, lset labels.Labels, m metadata.Metadata) (uint32, error) {
	h := a.h
	r, ok := h.existing(ref, lset)
	if !ok {
		return 0, fmt.Errorf("metric head: metadata for an unknown series %d: %w", ref, storage.ErrNotFound)
	}
	id := h.meta.intern(m)
	if h.metaID(r) != id {
		a.metadata = append(a.metadata, pendingMetadata{ref: r, id: id})
	}
	return r, nil
}

type pendingMetadata struct {
	ref uint32
	id  uint32
}

// metaTable interns metadata values; id 0 is none.
type metaTable struct {
	mu   sync.RWMutex
	ids  map[metadata.Metadata]uint32
	vals []metadata.Metadata
}

func (t *metaTable) intern(m metadata.Metadata) uint32 {
	t.mu.RLock()
	id, ok := t.ids[m]
	t.mu.RUnlock()
	if ok {
		return id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[m]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = map[metadata.Metadata]uint32{}
		t.vals = []metadata.Metadata{{}}
	}
	id = uint32(len(t.vals))
	t.vals = append(t.vals, m)
	t.ids[m] = id
	return id
}

func (t *metaTable) get(id uint32) (metadata.Metadata, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if id == 0 || int(id) >= len(t.vals) {
		return metadata.Metadata{}, false
	}
	return t.vals[id], true
}

// metaID and setMetaID read and write a series' metadata id, kept beside the series page.
func (h *Head) metaID(ref uint32) uint32 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ref == 0 || ref > h.count.Load() || h.pages[(ref-1)/seriesPage] == nil {
		return 0
	}
	lock := &h.locks[ref%lockStripes]
	lock.Lock()
	defer lock.Unlock()
	return h.metaIDs[(ref-1)/seriesPage][(ref-1)%seriesPage]
}

func (h *Head) setMetaID(ref, id uint32) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ref == 0 || ref > h.count.Load() || h.pages[(ref-1)/seriesPage] == nil {
		return
	}
	lock := &h.locks[ref%lockStripes]
	lock.Lock()
	h.metaIDs[(ref-1)/seriesPage][(ref-1)%seriesPage] = id
	lock.Unlock()
}

// Metadata is the metadata last set for series ref.
func (h *Head) Metadata(ref uint32) (metadata.Metadata, bool) { return h.meta.get(h.metaID(ref)) }

// exemplarRecords and metadataRecord encode what an appender holds.
func (a *Appender) extraRecords(enc *record.Encoder, recs [][]byte) [][]byte {
	if len(a.metadata) > 0 {
		ms := make([]record.RefMetadata, 0, len(a.metadata))
		for _, m := range a.metadata {
			v, _ := a.h.meta.get(m.id)
			ms = append(ms, record.RefMetadata{Ref: chunks.HeadSeriesRef(m.ref), Type: record.GetMetricType(v.Type), Unit: v.Unit, Help: v.Help})
		}
		recs = append(recs, enc.Metadata(ms, nil))
	}
	if len(a.exemplars) > 0 {
		es := make([]record.RefExemplar, 0, len(a.exemplars))
		for _, e := range a.exemplars {
			es = append(es, record.RefExemplar{Ref: chunks.HeadSeriesRef(e.ref), T: e.e.Ts, V: e.e.Value, Labels: e.e.Labels})
		}
		recs = append(recs, enc.Exemplars(es, nil))
	}
	return recs
}

// applyExtras stores the metadata and exemplars an appender holds once they are logged. Exemplars the storage
// refuses now (a duplicate, one out of order after a concurrent commit) are dropped, as Prometheus does.
func (a *Appender) applyExtras() error {
	h := a.h
	for _, m := range a.metadata {
		h.setMetaID(m.ref, m.id)
	}
	for _, e := range a.exemplars {
		if err := h.exemplars.AddExemplar(e.series, e.e); err != nil && !errors.Is(err, storage.ErrDuplicateExemplar) &&
			!errors.Is(err, storage.ErrOutOfOrderExemplar) && !errors.Is(err, storage.ErrExemplarsDisabled) {
			return fmt.Errorf("metric head: add exemplar: %w", err)
		}
	}
	return nil
}
