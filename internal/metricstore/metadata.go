package metricstore

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
)

// metadataStore keeps the metric metadata (type, help, unit) that arrives with remote write 1.0 and 2.0 and
// OTLP, for /api/v1/metadata. Prometheus serves that endpoint from its scrape targets, which Sprout does not
// have; Mimir serves it from what was pushed, and so does Sprout. It is kept in memory and saved to
// <tenant>/sprout-metadata.json after every commit that brought something new, so that it survives a restart.
type metadataStore struct {
	path   string
	saveMu sync.Mutex // serialises save

	mu    sync.RWMutex
	m     map[string]map[metadata.Metadata]metadata.Metadata // each entry's value is its key: the store's own copy
	dirty bool
}

// metadataFile is the per-tenant file the metadata is saved in.
const metadataFile = "sprout-metadata.json"

type metadataFileContent struct {
	Version int                        `json:"version"`
	Metrics map[string][]metadataEntry `json:"metrics"`
}

// newMetadataStore loads path if it exists. A file that cannot be read is reported and the store starts empty:
// metadata is re-sent by clients, it must not stop the tenant from opening.
func newMetadataStore(path string) (*metadataStore, error) {
	s := &metadataStore{path: path, m: map[string]map[metadata.Metadata]metadata.Metadata{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read %s: %w", path, err)
	}
	var c metadataFileContent
	if err := json.Unmarshal(b, &c); err != nil {
		return s, fmt.Errorf("parse %s: %w", path, err)
	}
	for name, es := range c.Metrics {
		for _, e := range es {
			s.add(name, metadata.Metadata{Type: model.MetricType(e.Type), Help: e.Help, Unit: e.Unit})
		}
	}
	s.dirty = false
	return s, nil
}

// save writes the metadata to the file (through a temporary file and a rename) if anything was added since
// the last save.
func (s *metadataStore) save() error {
	if s.path == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	s.dirty = false
	s.mu.Unlock()
	b, err := json.Marshal(metadataFileContent{Version: 1, Metrics: s.query("", -1, -1)})
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err == nil {
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("save metric metadata: %w", err)
	}
	return nil
}

// maxMetadataPerMetric bounds how many distinct help texts one metric family may accumulate.
const maxMetadataPerMetric = 10

func (s *metadataStore) add(name string, md metadata.Metadata) { s.intern(name, md) }

// intern records md for metric name, as add does, and returns the store's copy of it: its strings are the
// store's, shared by every series of the metric. The head keeps the metadata it is given in each series, so
// what reaches it must be this copy: remote write's metadata points into the pooled request buffer (the
// head's copy would change under it when the buffer is reused, every later request would look like new
// metadata, and a series would keep its last request's buffer alive), and one help text per metric costs less
// than one per series. Past maxMetadataPerMetric, a copy of its own.
func (s *metadataStore) intern(name string, md metadata.Metadata) metadata.Metadata {
	if name == "" || md.IsEmpty() {
		return md
	}
	s.mu.RLock()
	own, ok := s.m[name][md]
	s.mu.RUnlock()
	if ok {
		return own
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.m[name]
	if !ok {
		set = map[metadata.Metadata]metadata.Metadata{}
		s.m[strings.Clone(name)] = set
	}
	if own, ok := set[md]; ok {
		return own
	}
	own = metadata.Metadata{Type: md.Type, Unit: strings.Clone(md.Unit), Help: strings.Clone(md.Help)}
	if len(set) < maxMetadataPerMetric {
		set[own] = own
		s.dirty = true
	}
	return own
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
