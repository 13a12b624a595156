package metricstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"go.uber.org/zap"
)

// verifiedMarker is written into a block directory once every series and chunk of the block has been read back
// with its checksum. Blocks are immutable, so each is read in full once, not at every start.
const verifiedMarker = "sprout-verified"

// corruptDir holds the blocks found unreadable, moved out of the TSDB's sight (it only opens directories named
// by a ULID) and kept for inspection rather than deleted.
const corruptDir = "corrupt"

// verifyBlock reads every series and every chunk of b; the index and chunk readers check their CRC32s.
func verifyBlock(ctx context.Context, b *tsdb.Block) error {
	ir, err := b.Index()
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	defer ir.Close()
	cr, err := b.Chunks()
	if err != nil {
		return fmt.Errorf("open chunks: %w", err)
	}
	defer cr.Close()
	name, value := index.AllPostingsKey()
	p, err := ir.Postings(ctx, name, value)
	if err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	var (
		builder labels.ScratchBuilder
		metas   []chunks.Meta
	)
	for p.Next() {
		if err := ir.Series(p.At(), &builder, &metas); err != nil {
			return fmt.Errorf("read series %d: %w", p.At(), err)
		}
		for _, m := range metas {
			c, it, err := cr.ChunkOrIterable(m)
			if err != nil {
				return fmt.Errorf("read chunk of series %s: %w", builder.Labels(), err)
			}
			if c == nil && it == nil {
				return fmt.Errorf("series %s: empty chunk", builder.Labels())
			}
		}
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("walk postings: %w", err)
	}
	return nil
}

// quarantineCorruptBlocks verifies, before the TSDB opens dir, every block not verified yet, and moves a block
// that fails to read into dir/corrupt/, logging it as an error: Prometheus' TSDB would otherwise fail every query
// that touches the block (a bad index or chunk checksum is an error for the whole query), or refuse to open.
// It returns the blocks it moved.
func quarantineCorruptBlocks(ctx context.Context, dir string, slogger *slog.Logger, logger *zap.Logger, tenantID string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var moved []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := ulid.ParseStrict(e.Name()); err != nil {
			continue
		}
		bdir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(bdir, verifiedMarker)); err == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(bdir, "meta.json")); errors.Is(err, os.ErrNotExist) {
			continue // an unfinished compaction output; the TSDB deletes it
		}
		err := func() error {
			b, err := tsdb.OpenBlock(slogger, bdir, nil, nil)
			if err != nil {
				return err
			}
			defer b.Close()
			return verifyBlock(ctx, b)
		}()
		if err == nil {
			_ = os.WriteFile(filepath.Join(bdir, verifiedMarker), nil, 0o644)
			continue
		}
		dst := filepath.Join(dir, corruptDir, e.Name())
		if merr := os.MkdirAll(filepath.Dir(dst), 0o755); merr == nil {
			merr = os.Rename(bdir, dst)
			if merr == nil {
				moved = append(moved, e.Name())
			}
		}
		logger.Error("Metrics block is unreadable; it is moved aside and queries skip it",
			zap.String("tenant", tenantID), zap.String("block", e.Name()), zap.String("moved_to", dst), zap.Error(err))
	}
	return moved
}
