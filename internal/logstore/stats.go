package logstore

import (
	"sort"

	"github.com/prometheus/prometheus/model/labels"
)

// This file holds the label, series and stream-statistics lookups (Loki's labels, series and index/stats APIs).

// Labels returns label names of a tenant's streams with data in [start, end).
func (s *Store) Labels(tenantID string, start, end int64, ms []*labels.Matcher) []string {
	set := map[string]struct{}{}
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		st.lbs.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
	}
	return sortedKeys(set)
}

// LabelValues returns the values of one label.
func (s *Store) LabelValues(tenantID, name string, start, end int64, ms []*labels.Matcher) []string {
	set := map[string]struct{}{}
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		if v := st.lbs.Get(name); v != "" {
			set[v] = struct{}{}
		}
	}
	return sortedKeys(set)
}

// Series returns the label sets of streams matching any of the selectors.
func (s *Store) Series(tenantID string, start, end int64, ms []*labels.Matcher) []labels.Labels {
	var out []labels.Labels
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		out = append(out, st.lbs)
	}
	return out
}

// StreamStats are per-stream figures for index/stats and index/volume.
type StreamStats struct {
	Labels  labels.Labels
	Entries int64
	Bytes   int64
	Chunks  int64
}

// Stats returns figures for streams matching ms with data in [start, end).
func (s *Store) Stats(tenantID string, start, end int64, ms []*labels.Matcher) []StreamStats {
	var out []StreamStats
	for _, st := range s.streamsInRange(tenantID, start, end, ms) {
		ss := StreamStats{Labels: st.lbs}
		st.mu.Lock()
		for _, c := range st.chunks {
			if c.MinT < end && c.MaxT >= start {
				ss.Chunks++
				ss.Entries += int64(c.Entries)
				ss.Bytes += int64(c.Bytes)
			}
		}
		if n, b := st.headIn(start, end); n > 0 {
			ss.Entries += n
			ss.Bytes += b
			ss.Chunks++
		}
		st.mu.Unlock()
		out = append(out, ss)
	}
	return out
}

func (s *Store) streamsInRange(tenantID string, start, end int64, ms []*labels.Matcher) []*stream {
	td := s.tenantIfExists(tenantID)
	if td == nil {
		return nil
	}
	var out []*stream
	for _, st := range td.matchStreams(ms) {
		st.mu.Lock()
		in := false
		for _, c := range st.chunks {
			if c.MinT < end && c.MaxT >= start {
				in = true
				break
			}
		}
		if !in {
			n, _ := st.headIn(start, end)
			in = n > 0
		}
		st.mu.Unlock()
		if in {
			out = append(out, st)
		}
	}
	return out
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
