package tracestore

import (
	"context"
	"errors"
	"sync"
)

// A query reads the traces in memory and the blocks as one view. Both are taken under one read lock, so a trace
// that a flush moves from memory into a block (which happens under the write lock) is seen exactly once; and
// each block of the view is held until the query releases it, because compaction and retention take blocks out
// of the list at any time: their files are deleted by reap only once no view holds them.

// view runs mem (which copies what the query needs from memory, with the instance's read lock held: it must
// call only *Locked methods) and returns the blocks at the same instant, each held until release is called.
func (in *instance) view(mem func()) (blocks []*block, release func()) {
	in.mu.RLock()
	if mem != nil {
		mem()
	}
	blocks = append([]*block(nil), in.blocks...)
	for _, b := range blocks {
		b.readers.Add(1)
	}
	in.mu.RUnlock()
	var once sync.Once
	return blocks, func() {
		once.Do(func() {
			for _, b := range blocks {
				b.readers.Add(-1)
			}
		})
	}
}

// removeBlocksLocked takes blocks out of the list (in.mu held for writing); reap deletes their files.
func (in *instance) removeBlocksLocked(gone map[*block]bool) {
	kept := in.blocks[:0]
	for _, b := range in.blocks {
		if gone[b] {
			in.retired = append(in.retired, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(in.blocks[len(kept):])
	in.blocks = kept
	in.s.m.blocks.Set(float64(len(in.blocks)))
}

// reap deletes the files of the blocks taken out of the list that no view holds any more. A retired block is
// in no list, so no new view can take it: a count of zero stays zero. Blocks still held wait for the next pass
// (compaction and retention run it, and shutdown); a block whose deletion fails is tried again then.
func (in *instance) reap(ctx context.Context) error {
	in.mu.Lock()
	var free []*block
	kept := in.retired[:0]
	for _, b := range in.retired {
		if b.readers.Load() == 0 {
			free = append(free, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(in.retired[len(kept):])
	in.retired = kept
	in.mu.Unlock()
	var errs []error
	for _, b := range free {
		if err := in.deleteBlock(ctx, b); err != nil {
			errs = append(errs, err)
			in.mu.Lock()
			in.retired = append(in.retired, b)
			in.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}
