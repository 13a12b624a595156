package metricstore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/sprout-otel/sprout/internal/bucket"
)

// shipperFile records which blocks' data is already in the bucket, by source block ULID, so that a restart
// does not upload them again and local retention knows what it may delete.
const shipperFile = "sprout-shipper.json"

type shipperState struct {
	Version int         `json:"version"`
	Shipped []ulid.ULID `json:"shipped"`
}

// shipper uploads completed local blocks to the bucket under <tenant>/<ulid>/ (chunks and index first,
// meta.json last, so that a block is visible only once complete). A block is shipped when any of its source
// blocks is not yet in the bucket: normally the 2h blocks cut from the head; a block compacted locally from
// sources that were never shipped is shipped whole. Overlaps in the bucket are harmless: queries merge and
// deduplicate identical samples.
type shipper struct {
	t       *Tenant
	path    string
	mu      sync.Mutex // serialises Ship
	smu     sync.RWMutex
	shipped map[ulid.ULID]struct{}
}

func newShipper(t *Tenant) (*shipper, error) {
	s := &shipper{t: t, path: filepath.Join(t.dir, shipperFile), shipped: map[ulid.ULID]struct{}{}}
	b, err := os.ReadFile(s.path)
	switch {
	case os.IsNotExist(err):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	var st shipperState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", s.path, err)
	}
	for _, id := range st.Shipped {
		s.shipped[id] = struct{}{}
	}
	return s, nil
}

// covered reports whether every source of the block is in the bucket.
func (s *shipper) covered(m tsdb.BlockMeta) bool {
	s.smu.RLock()
	defer s.smu.RUnlock()
	srcs := m.Compaction.Sources
	if len(srcs) == 0 {
		srcs = []ulid.ULID{m.ULID}
	}
	for _, id := range srcs {
		if _, ok := s.shipped[id]; !ok {
			return false
		}
	}
	return true
}

func (s *shipper) markAndSave(m tsdb.BlockMeta, live []*tsdb.Block) error {
	s.smu.Lock()
	s.shipped[m.ULID] = struct{}{}
	for _, id := range m.Compaction.Sources {
		s.shipped[id] = struct{}{}
	}
	// Forget sources no local block refers to any more: they were deleted locally.
	keep := map[ulid.ULID]struct{}{m.ULID: {}}
	for _, b := range live {
		keep[b.Meta().ULID] = struct{}{}
		for _, id := range b.Meta().Compaction.Sources {
			keep[id] = struct{}{}
		}
	}
	st := shipperState{Version: 1}
	for id := range s.shipped {
		if _, ok := keep[id]; !ok {
			delete(s.shipped, id)
			continue
		}
		st.Shipped = append(st.Shipped, id)
	}
	s.smu.Unlock()
	sort.Slice(st.Shipped, func(i, j int) bool { return st.Shipped[i].Compare(st.Shipped[j]) < 0 })
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// Ship uploads the tenant's completed blocks that are not in the bucket yet and returns how many it uploaded.
func (t *Tenant) Ship(ctx context.Context) (int, error) {
	if t.shipper == nil {
		return 0, nil
	}
	s := t.shipper
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	blocks := t.db.Blocks()
	for _, b := range blocks {
		m := b.Meta()
		if s.covered(m) {
			continue
		}
		if err := uploadBlock(ctx, t.store.bkt, t.id, b.Dir(), m.ULID); err != nil {
			return n, fmt.Errorf("upload block %s: %w", m.ULID, err)
		}
		if err := s.markAndSave(m, blocks); err != nil {
			return n, fmt.Errorf("record shipped block %s: %w", m.ULID, err)
		}
		t.blocks.addShipped(m)
		n++
	}
	return n, nil
}

func uploadBlock(ctx context.Context, bkt bucket.Bucket, tenantID, dir string, id ulid.ULID) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel != "meta.json" && !strings.HasSuffix(rel, ".tmp") {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	files = append(files, "meta.json") // last: a block without meta.json is incomplete and ignored
	for _, rel := range files {
		if err := uploadFile(ctx, bkt, filepath.Join(dir, rel), bucket.Join(tenantID, id.String(), rel)); err != nil {
			return err
		}
	}
	return nil
}

func uploadFile(ctx context.Context, bkt bucket.Bucket, src, key string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return bkt.Upload(ctx, key, f)
}

// blocksToDelete is local retention with a bucket behind it: blocks compacted into others go, and blocks whose
// newest sample is older than `retention` (by the wall clock, as Mimir's ingesters do) go once their data is in
// the bucket. A block not shipped yet is kept whatever its age.
func (t *Tenant) blocksToDelete(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
	del := map[ulid.ULID]struct{}{}
	cutoff := time.Now().Add(-t.store.cfg.Retention).UnixMilli()
	for _, b := range blocks {
		m := b.Meta()
		switch {
		case m.Compaction.Deletable:
			del[m.ULID] = struct{}{}
		case t.store.cfg.Retention > 0 && m.MaxTime < cutoff && t.shipper.covered(m):
			del[m.ULID] = struct{}{}
		}
	}
	return del
}
