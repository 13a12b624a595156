package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/logstore"
)

type logSource struct {
	o    *Options
	bkt  objstore.Bucket
	post *poster
}

func openLogs(ctx context.Context, o *Options) (unitSource, error) {
	bkt, err := openSourceBucket(ctx, o.Logs.Source)
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	return &logSource{o: o, bkt: bkt, post: o.poster("loki", strings.TrimSuffix(o.Logs.Endpoint, "/")+"/loki/api/v1/push")}, nil
}

func (l *logSource) units(ctx context.Context) ([]string, error) {
	chunks, err := logstore.ExportChunks(ctx, l.bkt, l.o.Tenant)
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	from, to := l.o.From.UnixNano(), l.o.To.UnixNano()
	var keys []string
	for _, c := range chunks {
		if c.MaxT < from || c.MinT >= to {
			continue
		}
		keys = append(keys, c.Key)
	}
	return keys, nil
}

// batches cuts a chunk's lines in [From, To) into pushes of BatchItems lines and about maxBatchBytes. A chunk holds one stream, in time
// order, so each push is one stream in order, which Loki accepts however old the lines (with
// reject_old_samples off).
func (l *logSource) batches(ctx context.Context, unit string, emit func(batch) error) error {
	lbs, es, err := logstore.ExportEntries(ctx, l.bkt, unit)
	if err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	from, to := l.o.From.UnixNano(), l.o.To.UnixNano()
	var sel []logql.Entry
	for _, e := range es {
		if e.Timestamp >= from && e.Timestamp < to {
			sel = append(sel, e)
		}
	}
	for len(sel) > 0 {
		n, size := 0, 0
		for n < len(sel) && n < l.o.BatchItems && (n == 0 || size+entrySize(sel[n]) <= maxBatchBytes) {
			size += entrySize(sel[n])
			n++
		}
		body, err := lokiPushJSON(lbs, sel[:n])
		if err != nil {
			return err
		}
		sel = sel[n:]
		if err := emit(batch{items: n, bytes: len(body), send: func(ctx context.Context) error {
			return l.post.post(ctx, body, map[string]string{"Content-Type": "application/json"})
		}}); err != nil {
			return err
		}
	}
	return nil
}

// entrySize approximates an entry's share of a push body.
func entrySize(e logql.Entry) int {
	n := len(e.Line) + 32
	e.Metadata.Range(func(l labels.Label) { n += len(l.Name) + len(l.Value) + 6 })
	return n
}

// lokiPushJSON encodes one stream as Loki's JSON push body; structured metadata (trace_id, span_id and the
// rest) goes as the third element of each value, as Loki 3 reads it.
func lokiPushJSON(stream labels.Labels, es []logql.Entry) ([]byte, error) {
	type pushStream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	ps := pushStream{Stream: stream.Map(), Values: make([][]any, 0, len(es))}
	for _, e := range es {
		v := []any{strconv.FormatInt(e.Timestamp, 10), e.Line}
		if !e.Metadata.IsEmpty() {
			v = append(v, e.Metadata.Map())
		}
		ps.Values = append(ps.Values, v)
	}
	b, err := json.Marshal(struct {
		Streams []pushStream `json:"streams"`
	}{[]pushStream{ps}})
	if err != nil {
		return nil, fmt.Errorf("encode Loki push: %w", err)
	}
	return b, nil
}

func (l *logSource) close() error { return l.bkt.Close() }
