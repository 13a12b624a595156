package logstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// This file holds the chunk index in the bucket: writing it at each flush and loading it at start.

type indexFile struct {
	Chunks []*chunkMeta `json:"chunks"`
}

// Index files are JSON, zstd-compressed since the trace-id blooms made most of their bytes (base64 in JSON
// spends 8 bits on 6): "<time>-<seq>.json.zst". Files of earlier releases, plain "<time>-<seq>.json", are read
// as they are and replaced at the next consolidation.
const (
	indexSuffix      = ".json.zst"
	indexSuffixPlain = ".json"
)

func (s *Store) writeIndex(ctx context.Context, tenantID string, metas []*chunkMeta) error {
	b, err := json.Marshal(indexFile{Chunks: metas})
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s/index/%020d-%d%s", tenantID, time.Now().UnixNano(), nextSeq(), indexSuffix)
	if err := s.bkt.Upload(ctx, key, bytes.NewReader(zenc.EncodeAll(b, nil))); err != nil {
		return fmt.Errorf("upload index %s: %w", key, err)
	}
	return nil
}

// loadIndex reads every tenant's index files from the bucket.
func (s *Store) loadIndex(ctx context.Context) error {
	if s.bkt == nil {
		return errors.New("log store: no bucket")
	}
	var tenants []string
	if err := s.bkt.Iter(ctx, "", func(name string) error {
		if strings.HasSuffix(name, "/") {
			tenants = append(tenants, strings.TrimSuffix(name, "/"))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list bucket: %w", err)
	}
	for _, tid := range tenants {
		if tenant.Validate(tid) != nil {
			continue
		}
		files, err := s.indexFiles(ctx, tid)
		if err != nil {
			// One tenant's unlistable index must not keep every other tenant from starting.
			s.m.indexLoadFailures.WithLabelValues(tid).Inc()
			s.logger.Error("Log store: tenant's index not loaded at start; its chunks stay in the bucket", zap.String("tenant", tid), zap.Error(err))
			continue
		}
		seen := map[string]bool{}
		td := s.tenant(tid)
		for _, f := range files {
			idx, err := s.readIndex(ctx, f)
			if err != nil {
				s.m.indexLoadFailures.WithLabelValues(tid).Inc()
				s.logger.Error("Log store: unreadable chunk index file skipped at start; its chunks are not queried", zap.String("tenant", tid), zap.String("key", f), zap.Error(err))
				continue
			}
			for _, c := range idx.Chunks {
				if seen[c.Key] {
					continue
				}
				seen[c.Key] = true
				if !validSpans(c.Spans, c.MinT, c.MaxT) {
					c.Spans = nil // the read then takes [MinT, MaxT], which holds every entry
				}
				st := td.getOrCreate(c.Stream)
				st.chunks = append(st.chunks, c)
				if c.WALSeg > st.flushedSeg {
					st.flushedSeg = c.WALSeg
				}
			}
		}
		for _, sts := range td.streams {
			for _, st := range sts {
				sort.Slice(st.chunks, func(i, j int) bool { return st.chunks[i].MinT < st.chunks[j].MinT })
			}
		}
		s.m.streams.WithLabelValues(tid).Set(float64(td.count))
		s.logger.Info("Log index loaded", zap.String("tenant", tid), zap.Int("index_files", len(files)), zap.Int("chunks", len(seen)))
	}
	return nil
}

func (s *Store) indexFiles(ctx context.Context, tid string) ([]string, error) {
	var files []string
	if err := s.bkt.Iter(ctx, tid+"/index/", func(name string) error {
		if strings.HasSuffix(name, indexSuffix) || strings.HasSuffix(name, indexSuffixPlain) {
			files = append(files, name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list index of %s: %w", tid, err)
	}
	sort.Strings(files)
	return files, nil
}

func (s *Store) readIndex(ctx context.Context, key string) (*indexFile, error) {
	rc, err := s.bkt.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return decodeIndex(rc, strings.HasSuffix(key, indexSuffix))
}

// decodeIndex reads an index file, zstd-compressed or plain JSON (earlier releases).
func decodeIndex(r io.Reader, compressed bool) (*indexFile, error) {
	if compressed {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, fmt.Errorf("decompress index: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	var idx indexFile
	if err := json.NewDecoder(r).Decode(&idx); err != nil {
		return nil, fmt.Errorf("decode index: %w", err)
	}
	return &idx, nil
}
