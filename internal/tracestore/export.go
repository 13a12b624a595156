package tracestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// The export readers below read a tenant's blocks straight from the bucket, without a Store: no WAL is opened
// and nothing is written, so they are safe on the bucket of a stopped Sprout and beside a running one (blocks
// are immutable; one deleted by compaction while it is read gives a not-found error the caller can name).
// `sprout migrate` copies history to other systems with them.

// ExportBlock describes one complete block of a tenant.
type ExportBlock struct {
	ULID string
	// StartUnixNano and EndUnixNano bound the start times of the block's spans.
	StartUnixNano, EndUnixNano uint64
	Traces, Spans              int
	Level                      int
}

// ExportBlocks lists the complete blocks of a tenant (those with a readable meta.json), oldest first, then by
// ULID, so that two listings of the same bucket give the same order.
func ExportBlocks(ctx context.Context, bkt bucket.Bucket, tenantID string) ([]ExportBlock, error) {
	prefix := bucket.Join(tenantID, "blocks") + "/"
	var ids []string
	if err := bkt.Iter(ctx, prefix, func(name string) error {
		ids = append(ids, trimSlash(strings.TrimPrefix(name, prefix)))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list blocks of tenant %s: %w", tenantID, err)
	}
	var out []ExportBlock
	for _, id := range ids {
		raw, err := bucket.ReadAll(ctx, bkt, prefix+id+"/"+metaFile)
		if err != nil {
			if bkt.IsObjNotFoundErr(err) {
				continue // incomplete or being deleted
			}
			return nil, fmt.Errorf("read meta.json of block %s: %w", id, err)
		}
		var m blockMeta
		if err := json.Unmarshal(raw, &m); err != nil || m.Format != blockFormat {
			return nil, fmt.Errorf("block %s: meta.json is not a %s block's", id, blockFormat)
		}
		out = append(out, ExportBlock{ULID: m.ULID, StartUnixNano: m.StartUnixNano, EndUnixNano: m.EndUnixNano,
			Traces: m.Traces, Spans: m.Spans, Level: m.Level})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].StartUnixNano != out[j].StartUnixNano {
			return out[i].StartUnixNano < out[j].StartUnixNano
		}
		return out[i].ULID < out[j].ULID
	})
	return out, nil
}

// ExportTraces calls fn with every trace of a block, in trace id order, as the OTLP that trace by id returns
// (resources, scopes, attributes, events and links as they were sent; a span stored twice once).
func ExportTraces(ctx context.Context, bkt bucket.Bucket, tenantID, blockULID string, fn func(id pcommon.TraceID, td ptrace.Traces) error) error {
	prefix := bucket.Join(tenantID, "blocks", blockULID) + "/"
	raw, err := bucket.ReadAll(ctx, bkt, prefix+metaFile)
	if err != nil {
		return fmt.Errorf("block %s: read meta.json: %w", blockULID, err)
	}
	var m blockMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("block %s: parse meta.json: %w", blockULID, err)
	}
	ra := &bucketReaderAt{ctx: ctx, bkt: bkt, name: prefix + dataFile}
	f, err := parquet.OpenFile(ra, m.Size, parquet.SkipBloomFilters(true), parquet.ReadBufferSize(1<<20))
	if err != nil {
		return fmt.Errorf("block %s: open parquet: %w", blockULID, err)
	}
	dec := newDecoder()
	var (
		cur   pcommon.TraceID
		spans []traceql.Span
		ferr  error
	)
	emit := func() error {
		if len(spans) == 0 {
			return nil
		}
		td := assemble(dedupe(spans))
		spans = nil
		return fn(cur, td)
	}
	errStop := errors.New("stop")
	err = readRows(f, 0, -1, func(rows []spanRow) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for k := range rows {
			var tid pcommon.TraceID
			copy(tid[:], rows[k].TraceID)
			if tid != cur {
				if ferr = emit(); ferr != nil {
					return errStop
				}
			}
			cur = tid
			s, err := dec.decode(&rows[k])
			if err != nil {
				return err
			}
			spans = append(spans, s)
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("block %s: read: %w", blockULID, err)
	}
	return emit()
}
