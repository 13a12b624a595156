package logstore

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/refusal"
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

// ErrTooManyTails refuses a tailer over limits.max_concurrent_tail_requests.
var ErrTooManyTails = errors.New("max concurrent tail requests reached")

// Subscribe starts a tailer for streams matching ms, unless limits.max_concurrent_tail_requests are open.
func (s *Store) Subscribe(tenantID string, ms []*labels.Matcher) (*Tailer, error) {
	t := &Tailer{tenant: tenantID, C: make(chan TailBatch, 256), matches: func(l labels.Labels) bool {
		for _, m := range ms {
			if !m.Matches(l.Get(m.Name)) {
				return false
			}
		}
		return true
	}}
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if max := s.cfg.Limits.MaxConcurrentTailRequests; max > 0 && len(s.tailers) >= max {
		// Retryable, later than a query: a tail holds its slot for as long as its client stays.
		return nil, &refusal.Error{Reason: refusal.RateLimited, Limit: "max_concurrent_tail_requests", RetryAfter: 5 * time.Second,
			Msg: fmt.Sprintf("%v (%d open; limit: limits.max_concurrent_tail_requests)", ErrTooManyTails, len(s.tailers)), Err: ErrTooManyTails}
	}
	s.tailers[t] = struct{}{}
	return t, nil
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
