package logstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
)

// The export readers below read a tenant's chunks straight from the bucket, without a Store: no WAL is opened
// and nothing is written, so they are safe on the bucket of a stopped Sprout (whose Close flushed every head
// into chunks) and beside a running one. `sprout migrate` copies history to other systems with them.

// ExportChunk is one chunk of a tenant's index.
type ExportChunk struct {
	Key        string
	Stream     labels.Labels
	MinT, MaxT int64 // unix nanoseconds of the first and last entry
	Entries    int
	Bytes      int // line bytes
}

// ExportChunks lists the chunks of a tenant's index, by first entry time then key, each once (a chunk listed by
// several index files, as between a compaction's new index and the removal of the old ones, comes once).
func ExportChunks(ctx context.Context, bkt bucket.Bucket, tenantID string) ([]ExportChunk, error) {
	s := &Store{bkt: bkt}
	files, err := s.indexFiles(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []ExportChunk
	for _, f := range files {
		idx, err := s.readIndex(ctx, f)
		if err != nil {
			if bkt.IsObjNotFoundErr(err) {
				continue // replaced by a compaction since the listing
			}
			return nil, fmt.Errorf("read chunk index %s: %w", f, err)
		}
		for _, c := range idx.Chunks {
			if seen[c.Key] {
				continue
			}
			seen[c.Key] = true
			out = append(out, ExportChunk{Key: c.Key, Stream: c.Stream, MinT: c.MinT, MaxT: c.MaxT, Entries: c.Entries, Bytes: c.Bytes})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MinT != out[j].MinT {
			return out[i].MinT < out[j].MinT
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// ExportEntries reads one chunk: its stream labels and its entries in time order, each with its structured
// metadata (trace_id and span_id among it when the line had them).
func ExportEntries(ctx context.Context, bkt bucket.Bucket, key string) (labels.Labels, []logql.Entry, error) {
	rc, err := bkt.Get(ctx, key)
	if err != nil {
		return labels.EmptyLabels(), nil, fmt.Errorf("get chunk %s: %w", key, err)
	}
	defer rc.Close()
	b, err := readAll(rc, nil)
	if err != nil {
		return labels.EmptyLabels(), nil, fmt.Errorf("read chunk %s: %w", key, err)
	}
	lbs, es, err := decodeChunk(b)
	if err != nil {
		return labels.EmptyLabels(), nil, fmt.Errorf("chunk %s: %w", key, err)
	}
	return lbs, es, nil
}
