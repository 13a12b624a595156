package logstore

import (
	"context"
	"math"

	"github.com/sprout-otel/sprout/internal/logql"
)

// This file marks chunks that share no entry with the chunks their stream held when they were written
// (chunkMeta.Distinct), so that the read's duplicate check, and with it the counting path's need to read a
// chunk, is left to the chunks that may hold a duplicate: those cut from a head that took a retried push, those
// a replay re-added, compaction's merged chunks, chunks of earlier releases.
//
// Why two Distinct chunks X and Y share no entry: one of them, say Y, was written while the other was in the
// stream's list (chunks leave the list only by retention or compaction, which replaces them with a merged
// chunk that is never Distinct), and Y's check compared every entry of Y that lies where their spans meet with
// X's. A crash that leaves a compaction's inputs and its merged chunk both listed (the new index written, the
// old not yet deleted) pairs Distinct inputs with a merged chunk that is not, so the read still compares them.

// maxDistinctChecks bounds the chunks a new chunk is compared with: a chunk whose spans meet more (a backfill
// into a long stretch of a stream's history) is left unmarked rather than hold the flush up reading them.
const maxDistinctChecks = 4

// markDistinct sets Distinct on each of metas (a flush's new chunks of one stream, in order) that shares no
// entry with prior (the stream's chunks before them) and the metas before it. A chunk whose spans meet
// another's is compared with it entry by entry where they meet; one that cannot be read, or whose spans meet
// more than maxDistinctChecks chunks, is not marked.
func (s *Store) markDistinct(ctx context.Context, prior, metas []*chunkMeta) {
	for i, m := range metas {
		others := append(append([]*chunkMeta(nil), prior...), metas[:i]...)
		type check struct {
			o  *chunkMeta
			ws [][2]int64
		}
		var checks []check
		for _, o := range others {
			if ws := intersectSpans(m.spans(), o.spans()); len(ws) > 0 {
				checks = append(checks, check{o, ws})
			}
		}
		if len(checks) > maxDistinctChecks {
			continue
		}
		m.Distinct = true
		for _, c := range checks {
			if share, err := s.shareEntry(ctx, m, c.o, c.ws); err != nil || share {
				m.Distinct = false
				break
			}
		}
	}
}

// shareEntry reports whether chunks a and b hold an equal entry (timestamp, line, structured metadata, by
// entryKey) within the windows ws.
func (s *Store) shareEntry(ctx context.Context, a, b *chunkMeta, ws [][2]int64) (bool, error) {
	in := func(ts int64) bool {
		for _, w := range ws {
			if w[0] <= ts && ts <= w[1] {
				return true
			}
		}
		return false
	}
	p := &logql.SelectParams{Start: ws[0][0], End: ws[len(ws)-1][1] + 1}
	if p.End < p.Start { // the last window ends at math.MaxInt64
		p.End = math.MaxInt64
	}
	keys := map[entryKey]struct{}{}
	for _, c := range []*chunkMeta{a, b} {
		raw, err := s.loadChunkRaw(ctx, c)
		if err != nil {
			return false, err
		}
		es, err := decodeSelected(raw, p)
		if err != nil {
			return false, err
		}
		for _, e := range es {
			if !in(e.Timestamp) {
				continue
			}
			k := keyOf(e)
			if c == b {
				if _, ok := keys[k]; ok {
					return true, nil
				}
				continue
			}
			keys[k] = struct{}{}
		}
	}
	return false, nil
}
