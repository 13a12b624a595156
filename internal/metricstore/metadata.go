package metricstore

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/metadata"
)

// metadataStore keeps the metric metadata (type, help, unit) that arrives with remote write 2.0 and OTLP, for
// /api/v1/metadata. Prometheus serves that endpoint from its scrape targets, which Sprout does not have; Mimir
// serves it from what was pushed, and so does Sprout. It lives in memory and is rebuilt by new pushes.
type metadataStore struct {
	mu sync.RWMutex
	m  map[string]map[metadata.Metadata]struct{}
}

func newMetadataStore() *metadataStore {
	return &metadataStore{m: map[string]map[metadata.Metadata]struct{}{}}
}

// maxMetadataPerMetric bounds how many distinct help texts one metric family may accumulate.
const maxMetadataPerMetric = 10

func (s *metadataStore) add(name string, md metadata.Metadata) {
	if name == "" || md.IsEmpty() {
		return
	}
	s.mu.RLock()
	_, ok := s.m[name][md]
	s.mu.RUnlock()
	if ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.m[name]
	if !ok {
		set = map[metadata.Metadata]struct{}{}
		s.m[strings.Clone(name)] = set
	}
	if len(set) < maxMetadataPerMetric {
		set[metadata.Metadata{Type: md.Type, Unit: strings.Clone(md.Unit), Help: strings.Clone(md.Help)}] = struct{}{}
	}
}

type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// query answers /api/v1/metadata's parameters: metric, limit, limit_per_metric.
func (s *metadataStore) query(metric string, limit, limitPerMetric int) map[string][]metadataEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.m))
	for n := range s.m {
		if metric == "" || n == metric {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := map[string][]metadataEntry{}
	for _, n := range names {
		if limit >= 0 && len(out) >= limit {
			break
		}
		var es []metadataEntry
		for md := range s.m[n] {
			es = append(es, metadataEntry{Type: string(md.Type), Help: md.Help, Unit: md.Unit})
		}
		sort.Slice(es, func(i, j int) bool {
			if es[i].Type != es[j].Type {
				return es[i].Type < es[j].Type
			}
			return es[i].Help < es[j].Help
		})
		if limitPerMetric > 0 && len(es) > limitPerMetric {
			es = es[:limitPerMetric]
		}
		out[n] = es
	}
	return out
}

func (t *Tenant) serveMetadata(w http.ResponseWriter, r *http.Request) {
	limit, limitPerMetric := -1, -1
	for name, dst := range map[string]*int{"limit": &limit, "limit_per_metric": &limitPerMetric} {
		if v := r.FormValue(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				writeAPIError(w, http.StatusBadRequest, "bad_data", name+" must be a number")
				return
			}
			*dst = n
		}
	}
	writeAPIData(w, t.meta.query(r.FormValue("metric"), limit, limitPerMetric))
}
