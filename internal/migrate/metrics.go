package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
)

// metricSource reads a tenant's metrics from its TSDB (blocks and the WAL's head, read-only) and from the
// blocks the store shipped to its bucket (downloaded to the scratch directory), merged: a sample in both comes
// once. Each unit is a window of Options.Metrics.Window.
type metricSource struct {
	o       *Options
	scratch string
	q       storage.Querier
	closers []io.Closer
	rw      *poster
	target  objstore.Bucket
}

func openMetrics(ctx context.Context, o *Options) (_ unitSource, err error) {
	m := &metricSource{o: o}
	defer func() {
		if err != nil {
			_ = m.close()
		}
	}()
	m.scratch, err = os.MkdirTemp(o.ScratchDir, "sprout-migrate-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	mint, maxt := o.From.UnixMilli(), o.To.UnixMilli()-1
	var queriers []storage.Querier
	local := map[ulid.ULID]bool{}
	if o.Metrics.DataDir != "" {
		dir := filepath.Join(o.Metrics.DataDir, o.Tenant)
		if _, err := os.Stat(filepath.Join(dir, "wal")); err == nil {
			db, err := tsdb.OpenDBReadOnly(dir, m.scratch, promslog.NewNopLogger())
			if err != nil {
				return nil, fmt.Errorf("open TSDB %s read-only: %w", dir, err)
			}
			m.closers = append(m.closers, db)
			blocks, err := db.Blocks()
			if err != nil {
				return nil, fmt.Errorf("TSDB %s: %w", dir, err)
			}
			for _, b := range blocks {
				local[b.Meta().ULID] = true
				for _, s := range b.Meta().Compaction.Sources {
					local[s] = true
				}
			}
			q, err := db.Querier(mint, maxt)
			if err != nil {
				if strings.Contains(err.Error(), "cross-device") {
					err = fmt.Errorf("%w (the scratch directory must be on the file system of the metrics data_dir: set --scratch-dir)", err)
				}
				return nil, fmt.Errorf("TSDB %s: %w", dir, err)
			}
			queriers = append(queriers, q)
		}
	}
	if o.Metrics.Source != nil {
		bq, err := m.bucketQueriers(ctx, *o.Metrics.Source, local, mint, maxt)
		if err != nil {
			return nil, err
		}
		queriers = append(queriers, bq...)
	}
	m.q = storage.NewMergeQuerier(queriers, nil, storage.ChainedSeriesMerge)
	if o.Metrics.RemoteWrite != "" {
		m.rw = o.poster("remote write", o.Metrics.RemoteWrite)
	}
	if o.Metrics.TargetBucket != nil {
		m.target, err = bucket.New(ctx, *o.Metrics.TargetBucket, zap.NewNop())
		if err != nil {
			return nil, fmt.Errorf("target bucket: %w", err)
		}
	}
	return m, nil
}

// bucketQueriers downloads the tenant's bucket blocks that overlap the range and are not in the local TSDB
// (the store deletes local blocks once shipped and past retention), skipping incomplete blocks and blocks
// marked for deletion, as the store's own bucket queries do.
func (m *metricSource) bucketQueriers(ctx context.Context, cfg bucket.Config, local map[ulid.ULID]bool, mint, maxt int64) ([]storage.Querier, error) {
	bkt, err := openSourceBucket(ctx, cfg)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // the store never shipped a block
		}
		return nil, fmt.Errorf("metrics bucket: %w", err)
	}
	defer bkt.Close()
	prefix := m.o.Tenant + "/"
	var ids []ulid.ULID
	if err := bkt.Iter(ctx, prefix, func(name string) error {
		if id, err := ulid.Parse(strings.TrimSuffix(strings.TrimPrefix(name, prefix), "/")); err == nil {
			ids = append(ids, id)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("metrics bucket: list blocks: %w", err)
	}
	var qs []storage.Querier
	for _, id := range ids {
		if local[id] {
			continue
		}
		raw, err := bucket.ReadAll(ctx, bkt, prefix+id.String()+"/meta.json")
		if bkt.IsObjNotFoundErr(err) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("metrics bucket: block %s: %w", id, err)
		}
		var meta tsdb.BlockMeta
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("metrics bucket: block %s: meta.json: %w", id, err)
		}
		if meta.MaxTime <= mint || meta.MinTime > maxt {
			continue
		}
		if ok, err := bkt.Exists(ctx, prefix+id.String()+"/deletion-mark.json"); err != nil {
			return nil, fmt.Errorf("metrics bucket: block %s: %w", id, err)
		} else if ok {
			continue
		}
		dir := filepath.Join(m.scratch, "source", id.String())
		if err := download(ctx, bkt, prefix+id.String()+"/", dir); err != nil {
			return nil, fmt.Errorf("metrics bucket: download block %s: %w", id, err)
		}
		b, err := tsdb.OpenBlock(promslog.NewNopLogger(), dir, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("metrics bucket: open block %s: %w", id, err)
		}
		m.closers = append(m.closers, b)
		q, err := tsdb.NewBlockQuerier(b, mint, maxt)
		if err != nil {
			return nil, fmt.Errorf("metrics bucket: block %s: %w", id, err)
		}
		qs = append(qs, q)
	}
	return qs, nil
}

func download(ctx context.Context, bkt objstore.Bucket, prefix, dir string) error {
	return bkt.Iter(ctx, prefix, func(name string) error {
		rc, err := bkt.Get(ctx, name)
		if err != nil {
			return err
		}
		defer rc.Close()
		path := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, prefix)))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rc); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	}, objstore.WithRecursiveIter())
}

// units are the windows of the range, aligned to the window length as TSDB blocks are ("2026-11-30T00:00:00Z").
func (m *metricSource) units(context.Context) ([]string, error) {
	w := m.o.Metrics.Window.Milliseconds()
	from, to := m.o.From.UnixMilli(), m.o.To.UnixMilli()
	var out []string
	for s := from - mod(from, w); s < to; s += w {
		out = append(out, time.UnixMilli(s).UTC().Format(time.RFC3339))
	}
	return out, nil
}

func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// batches sends one window: remote-write requests of BatchItems samples (series in label order, samples in
// time order), then, for a bucket target, the window's block as one last batch.
func (m *metricSource) batches(ctx context.Context, unit string, emit func(batch) error) error {
	ws, err := time.Parse(time.RFC3339, unit)
	if err != nil {
		return fmt.Errorf("window %q: %w", unit, err)
	}
	start := max(ws.UnixMilli(), m.o.From.UnixMilli())
	end := min(ws.Add(m.o.Metrics.Window).UnixMilli(), m.o.To.UnixMilli()) // exclusive
	var bw *tsdb.BlockWriter
	var app storage.Appender
	if m.target != nil {
		bdir := filepath.Join(m.scratch, "out")
		if err := os.RemoveAll(bdir); err != nil {
			return err
		}
		if err := os.MkdirAll(bdir, 0o755); err != nil {
			return err
		}
		bw, err = tsdb.NewBlockWriter(promslog.NewNopLogger(), bdir, m.o.Metrics.Window.Milliseconds())
		if err != nil {
			return fmt.Errorf("block writer: %w", err)
		}
		defer bw.Close()
		app = bw.Appender(ctx)
	}
	var (
		req     prompb.WriteRequest
		pending int
		total   int
	)
	flushRW := func() error {
		if pending == 0 || m.rw == nil {
			return nil
		}
		raw, err := req.Marshal()
		if err != nil {
			return fmt.Errorf("encode remote write: %w", err)
		}
		body := snappy.Encode(nil, raw)
		n := pending
		req, pending = prompb.WriteRequest{}, 0
		return emit(batch{items: n, bytes: len(body), send: func(ctx context.Context) error {
			return m.rw.post(ctx, body, map[string]string{
				"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
				"X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "sprout-migrate",
			})
		}})
	}
	ss := m.q.Select(ctx, true, &storage.SelectHints{Start: start, End: end - 1}, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		lset := s.Labels()
		// cur is the series' entry in req (-1: none yet in this request); an index, as req.Timeseries grows.
		cur := -1
		var ref storage.SeriesRef
		it = s.Iterator(it)
		for vt := it.Seek(start); vt != chunkenc.ValNone; vt = it.Next() {
			t := it.AtT()
			if t >= end {
				break
			}
			if t < start {
				continue
			}
			var (
				v  float64
				h  *histogram.Histogram
				fh *histogram.FloatHistogram
			)
			switch vt {
			case chunkenc.ValFloat:
				_, v = it.At()
			case chunkenc.ValHistogram:
				_, h = it.AtHistogram(nil)
			case chunkenc.ValFloatHistogram:
				_, fh = it.AtFloatHistogram(nil)
			}
			total++
			if app != nil {
				if h != nil || fh != nil {
					ref, err = app.AppendHistogram(ref, lset, t, h, fh)
				} else {
					ref, err = app.Append(ref, lset, t, v)
				}
				if err != nil {
					return fmt.Errorf("write block of %s: %s: %w", unit, lset, err)
				}
			}
			if m.rw == nil {
				continue
			}
			if cur < 0 {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: prompb.FromLabels(lset, nil)})
				cur = len(req.Timeseries) - 1
			}
			ts := &req.Timeseries[cur]
			switch {
			case h != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(t, h))
			case fh != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(t, fh))
			default:
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: v})
			}
			pending++
			if pending >= m.o.BatchItems {
				if err := flushRW(); err != nil {
					return err
				}
				cur = -1
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read %s: %w", lset, err)
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("read metrics of %s: %w", unit, err)
	}
	if err := flushRW(); err != nil {
		return err
	}
	if app == nil || total == 0 {
		return nil
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("write block of %s: %w", unit, err)
	}
	id, err := bw.Flush(ctx)
	if err != nil {
		return fmt.Errorf("write block of %s: %w", unit, err)
	}
	dir, size, err := m.finishBlock(filepath.Join(m.scratch, "out"), id, ws)
	if err != nil {
		return err
	}
	return emit(batch{items: total, bytes: int(size), send: func(ctx context.Context) error {
		return m.upload(ctx, dir)
	}})
}

// blockULID is the ULID of a window's block: the window's start time and entropy from the tenant and window,
// so that a window sent again (a run killed after the upload and before its checkpoint) overwrites the same
// objects instead of adding a second block.
func blockULID(tenantID string, window time.Time) ulid.ULID {
	sum := sha256.Sum256([]byte("sprout-migrate\x00" + tenantID + "\x00" + window.UTC().Format(time.RFC3339)))
	return ulid.MustNew(uint64(window.UnixMilli()), bytes.NewReader(sum[:]))
}

// finishBlock renames the block written by the TSDB to its stable ULID and adds the "thanos" section Mimir's
// and Thanos' bucket tools read (external labels, resolution, source, file list).
func (m *metricSource) finishBlock(outDir string, written ulid.ULID, window time.Time) (string, int64, error) {
	id := blockULID(m.o.targetTenant(), window)
	dir := filepath.Join(outDir, id.String())
	if err := os.Rename(filepath.Join(outDir, written.String()), dir); err != nil {
		return "", 0, fmt.Errorf("block %s: %w", id, err)
	}
	var meta map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err == nil {
		err = json.Unmarshal(raw, &meta)
	}
	if err != nil {
		return "", 0, fmt.Errorf("block %s: meta.json: %w", id, err)
	}
	type file struct {
		RelPath   string `json:"rel_path"`
		SizeBytes int64  `json:"size_bytes,omitempty"`
	}
	var (
		files    []file
		segments []string
		size     int64
	)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "meta.json" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, file{RelPath: rel, SizeBytes: info.Size()})
		size += info.Size()
		if seg, ok := strings.CutPrefix(rel, "chunks/"); ok {
			segments = append(segments, seg)
		}
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("block %s: %w", id, err)
	}
	sort.Strings(segments)
	files = append(files, file{RelPath: "meta.json"})
	sort.Slice(files, func(i, j int) bool { return files[i].RelPath < files[j].RelPath })
	meta["ulid"] = id.String()
	if c, ok := meta["compaction"].(map[string]any); ok {
		c["sources"] = []string{id.String()}
	}
	meta["thanos"] = map[string]any{
		"labels":        map[string]string{},
		"downsample":    map[string]int{"resolution": 0},
		"source":        "sprout-migrate",
		"segment_files": segments,
		"files":         files,
	}
	out, err := json.MarshalIndent(meta, "", "\t")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "meta.json"), out, 0o644)
	}
	if err != nil {
		return "", 0, fmt.Errorf("block %s: write meta.json: %w", id, err)
	}
	return dir, size + int64(len(out)), nil
}

// upload puts a block under <tenant>/<ULID>/ in the target bucket: chunks and index first, meta.json last, so
// that a reader never sees a block without its data.
func (m *metricSource) upload(ctx context.Context, dir string) error {
	id := filepath.Base(dir)
	prefix := bucket.Join(m.o.targetTenant(), id)
	target := "bucket " + m.o.Metrics.TargetBucket.String()
	put := func(rel string) error {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := m.target.Upload(ctx, prefix+"/"+rel, f); err != nil {
			return transportError(target, fmt.Errorf("upload %s/%s: %w", prefix, rel, err))
		}
		return nil
	}
	var rels []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel = filepath.ToSlash(rel); rel != "meta.json" {
			rels = append(rels, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(rels)
	for _, rel := range append(rels, "meta.json") {
		if err := put(rel); err != nil {
			return err
		}
	}
	return nil
}

func (m *metricSource) close() error {
	var errs []error
	if m.q != nil {
		errs = append(errs, m.q.Close())
	}
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i].Close())
	}
	if m.target != nil {
		errs = append(errs, m.target.Close())
	}
	if m.scratch != "" {
		errs = append(errs, os.RemoveAll(m.scratch))
	}
	return errors.Join(errs...)
}
