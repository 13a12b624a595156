package logstore

import (
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// Tailer receives new entries of one tenant as they are pushed. Slow tailers lose entries rather than slow
// down ingestion; Dropped counts them.
type Tailer struct {
	tenant  string
	matches func(labels.Labels) bool
	C       chan TailBatch
	Dropped atomic.Int64
}

// TailBatch is entries of one stream.
type TailBatch struct {
	Labels  labels.Labels
	Entries []logql.Entry
}

// Subscribe starts a tailer for streams matching ms.
func (s *Store) Subscribe(tenantID string, ms []*labels.Matcher) *Tailer {
	t := &Tailer{tenant: tenantID, C: make(chan TailBatch, 256), matches: func(l labels.Labels) bool {
		for _, m := range ms {
			if !m.Matches(l.Get(m.Name)) {
				return false
			}
		}
		return true
	}}
	s.tailMu.Lock()
	s.tailers[t] = struct{}{}
	s.tailMu.Unlock()
	return t
}

// Unsubscribe stops a tailer.
func (s *Store) Unsubscribe(t *Tailer) {
	s.tailMu.Lock()
	delete(s.tailers, t)
	s.tailMu.Unlock()
}

func (s *Store) notifyTailers(tenantID string, r *walRecord) {
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if len(s.tailers) == 0 {
		return
	}
	for t := range s.tailers {
		if t.tenant != tenantID {
			continue
		}
		for _, ws := range r.streams {
			if !t.matches(ws.labels) {
				continue
			}
			select {
			case t.C <- TailBatch{Labels: ws.labels, Entries: ws.entries}:
			default:
				t.Dropped.Add(int64(len(ws.entries)))
			}
		}
	}
}
